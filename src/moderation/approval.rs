//! The approval queue, for servers that turn `approval_required` on: an upload goes through the
//! whole portrait pipeline and is stored, but waits for a moderator before its character shows
//! it.
//!
//! - Submitting stores the upload as the character's *pending* portrait; a second upload while
//!   one waits replaces it (a new queue entry: the first one's buttons no longer decide
//!   anything, so nobody approves an image they did not see) and its object is released.
//! - Approving makes it what the character shows and releases the portrait it replaces, as an
//!   ordinary upload does.
//! - Rejecting discards it, adds the image to the server's block-list, and deletes the object
//!   when nothing else uses it.
//! - A character deleted while its upload waits takes the upload out of the queue with it
//!   (the database cascades); a decision on it then finds nothing to decide.
//!
//! Every decision is one database statement or transaction on the queue entry, so of two
//! moderators pressing at once exactly one decides and the other is told it is decided.

use super::history::{self, Action, Actor};
use super::{check_reason, ModerationService, ReasonError};
use crate::db::{BlockedImage, Character, DbError, PendingPortrait, QueuedPortrait};
use crate::portrait::{IngestError, IngestRequest, PendingUpload, PortraitOutcome, Upload};

/// How many waiting uploads `/admin queue` lists.
pub const QUEUE_PAGE: u32 = 20;
/// What the history says of an upload stored but not shown yet.
const AWAITING_APPROVAL: &str = "waiting for approval";

/// Why a decision did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error(
        "This upload is no longer waiting for approval: it was already approved or rejected, \
         replaced by a newer upload, or its character was deleted."
    )]
    NotPending,
    #[error(transparent)]
    Reason(#[from] ReasonError),
    #[error(transparent)]
    Database(#[from] DbError),
}

impl ApprovalError {
    /// True when the moderator is told the message as is (nothing went wrong on our side).
    pub fn is_moderators_to_know(&self) -> bool {
        !matches!(self, ApprovalError::Database(_))
    }
}

/// What an approval did.
#[derive(Debug, Clone)]
pub struct Approved {
    /// The character as it is now, showing the approved portrait.
    pub character: Character,
    pub pending: PendingPortrait,
}

/// What a rejection did.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// The character, which still shows what it showed (`None` if it was deleted meanwhile).
    pub character: Option<Character>,
    pub pending: PendingPortrait,
    /// The reason as recorded (trimmed).
    pub reason: String,
    /// The block-list entry made for the image (none when the image could not be read).
    pub blocked: Option<BlockedImage>,
    /// The stored object was deleted (false when a character shows the same bytes).
    pub object_deleted: bool,
}

impl ModerationService {
    /// Runs an upload through the portrait pipeline (every check, the block-list, storage) and
    /// keeps it waiting for approval instead of showing it; the history records who uploaded
    /// it. Errors and our faults are as for an ordinary upload
    /// ([`ingest_or_default`](crate::portrait::PortraitService::ingest_or_default)).
    pub async fn submit_for_approval(
        &self,
        upload: Upload,
        request: &IngestRequest<'_>,
    ) -> Result<PortraitOutcome<PendingUpload>, IngestError> {
        let outcome = self
            .portraits
            .ingest_pending_or_default(upload, request)
            .await?;
        if let PortraitOutcome::Stored(pending) = &outcome {
            let recorded = history::record(
                &self.db,
                request.character,
                Actor::Player(request.uploader_id),
                Action::Uploaded,
                Some(&pending.record.public_url),
                Some(AWAITING_APPROVAL),
            )
            .await;
            if let Err(err) = recorded {
                tracing::warn!(character_id = request.character.id, error = %err,
                    "could not record an upload waiting for approval");
            }
        }
        Ok(outcome)
    }

    /// An upload still waiting for approval.
    pub async fn pending(&self, id: i64) -> Result<Option<PendingPortrait>, DbError> {
        self.db.pending_portrait(id).await
    }

    /// Remembers where the upload's Approve / Reject message was posted.
    pub async fn record_approval_message(
        &self,
        id: i64,
        channel_id: u64,
        message_id: u64,
    ) -> Result<(), DbError> {
        self.db
            .set_pending_message(id, channel_id, message_id)
            .await
    }

    /// Takes an upload out of the queue without a decision, releasing its portrait — when
    /// the moderators could not be asked (the mod channel is gone). True when it was waiting.
    pub async fn withdraw(&self, id: i64) -> Result<bool, DbError> {
        let Some(pending) = self.db.take_pending_portrait(id).await? else {
            return Ok(false);
        };
        self.portraits.release_portrait(pending.portrait_id).await;
        Ok(true)
    }

    /// Makes a waiting upload what its character shows; the portrait it replaces is released
    /// (deleted when nothing else uses it), the history and the metric record the approval.
    pub async fn approve(&self, id: i64, admin: u64) -> Result<Approved, ApprovalError> {
        let (pending, attached) = self
            .db
            .approve_pending_portrait(id)
            .await?
            .ok_or(ApprovalError::NotPending)?;
        if let Some(previous) = attached.previous_portrait_id {
            self.portraits.release_portrait(previous).await;
        }
        let character = attached.character;
        history::record(
            &self.db,
            &character,
            Actor::Admin(admin),
            Action::Approved,
            character.portrait_url.as_deref(),
            None,
        )
        .await?;
        self.count(Action::Approved);
        Ok(Approved { character, pending })
    }

    /// Discards a waiting upload: its image goes on the server's block-list, its object is
    /// deleted when nothing else uses it, the history and the metric record the rejection and
    /// its reason. A missing or too long reason changes nothing.
    pub async fn reject(
        &self,
        id: i64,
        admin: u64,
        reason: &str,
    ) -> Result<Rejected, ApprovalError> {
        let reason = check_reason(reason)?;
        let pending = self
            .db
            .take_pending_portrait(id)
            .await?
            .ok_or(ApprovalError::NotPending)?;
        let character = self.db.character_by_id(pending.character_id).await?;
        let url = self
            .db
            .portrait_by_id(pending.portrait_id)
            .await?
            .map(|record| record.public_url);
        let blocked = self
            .block_portrait(
                pending.guild_id,
                character.as_ref().map(|c| c.name.as_str()),
                pending.portrait_id,
                Actor::Admin(admin),
                reason,
            )
            .await?;
        let object_deleted = self.release(Some(pending.portrait_id)).await?;
        if let Some(character) = &character {
            history::record(
                &self.db,
                character,
                Actor::Admin(admin),
                Action::Rejected,
                url.as_deref(),
                Some(reason),
            )
            .await?;
        }
        self.count(Action::Rejected);
        Ok(Rejected {
            character,
            pending,
            reason: reason.to_owned(),
            blocked,
            object_deleted,
        })
    }

    /// A server's uploads waiting for approval, oldest first (at most [`QUEUE_PAGE`]), and how
    /// many wait in all.
    pub async fn queue(&self, guild_id: u64) -> Result<(Vec<QueuedPortrait>, u64), DbError> {
        let listed = self.db.pending_queue(guild_id, QUEUE_PAGE).await?;
        let total = self.db.count_pending(guild_id).await?;
        Ok((listed, total))
    }
}
