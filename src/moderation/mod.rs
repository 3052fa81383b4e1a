//! Moderation: what a server's admins (and the operator) do to the portraits their community
//! shows. Per-server [`settings`], the portrait [`history`], the [`blocklist`], the
//! [`approval`] queue, removing a portrait or a whole character, and [`privacy`] (export,
//! delete-my-data, purge).
//!
//! Discord-free: the bot's `/admin` and `/privacy` commands and the CLI's `purge` call these.

pub mod approval;
pub mod blocklist;
pub mod history;
pub mod privacy;
pub mod settings;

use std::sync::Arc;

use crate::db::{BlockedImage, Character, Db, DbError};
use crate::portrait::PortraitService;
use crate::storage::Store;

use history::{Action, Actor};

/// Why a moderation action did not happen.
/// The longest reason a moderator may give, in characters (the player is shown it in a DM and
/// moderators in an embed).
pub const MAX_REASON_CHARS: usize = 500;

/// Why a moderator's reason was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReasonError {
    #[error("Give a reason: the player is told it. Nothing was changed.")]
    Missing,
    #[error("The reason is longer than {MAX_REASON_CHARS} characters. Nothing was changed.")]
    TooLong,
}

/// A reason as moderators type it, for a rejection, a removal or a deletion alike: trimmed,
/// not empty, not too long.
pub fn check_reason(reason: &str) -> Result<&str, ReasonError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ReasonError::Missing);
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ReasonError::TooLong);
    }
    Ok(reason)
}

#[derive(Debug, thiserror::Error)]
pub enum ModerationError {
    #[error(transparent)]
    Reason(#[from] ReasonError),
    #[error("that character no longer exists")]
    CharacterNotFound,
    #[error("`{name}` already shows the default portrait")]
    NoPortrait { name: String },
    #[error(transparent)]
    Database(#[from] DbError),
}

/// What a removal or deletion did.
#[derive(Debug, Clone)]
pub struct Removal {
    /// The character as it was before.
    pub character: Character,
    /// The URL it showed, which is no longer shown.
    pub removed_url: Option<String>,
    /// The block-list entry made for the image (none when the image could not be read, e.g. a
    /// legacy link to a file we never stored).
    pub blocked: Option<BlockedImage>,
    /// The stored object was deleted (false when another character still shows it, or there
    /// was none).
    pub object_deleted: bool,
}

/// Removes portraits and characters, blocking their images.
#[derive(Debug, Clone)]
pub struct ModerationService {
    db: Db,
    store: Arc<Store>,
    portraits: PortraitService,
}

impl ModerationService {
    pub fn new(db: Db, store: Arc<Store>, portraits: PortraitService) -> Self {
        Self {
            db,
            store,
            portraits,
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn portraits(&self) -> &PortraitService {
        &self.portraits
    }

    /// Puts a character back on the default portrait, blocks its image in the server, deletes
    /// the stored object when no other character shows it, and records the removal.
    pub async fn remove_portrait(
        &self,
        character_id: i64,
        admin: Actor,
        reason: &str,
    ) -> Result<Removal, ModerationError> {
        let reason = check_reason(reason)?;
        let character = self.character(character_id).await?;
        if character.portrait_url.is_none() {
            return Err(ModerationError::NoPortrait {
                name: character.name.clone(),
            });
        }
        let blocked = self.block(&character, admin, reason).await?;
        self.db.clear_character_portrait(character.id).await?;
        self.finish_removal(character, blocked, admin, Action::Removed, reason)
            .await
    }

    /// Deletes a character, blocking its portrait's image and deleting the stored object when
    /// no other character shows it; the deletion is recorded in the history.
    pub async fn delete_character(
        &self,
        character_id: i64,
        admin: Actor,
        reason: &str,
    ) -> Result<Removal, ModerationError> {
        let reason = check_reason(reason)?;
        let character = self.character(character_id).await?;
        let blocked = if character.portrait_url.is_some() {
            self.block(&character, admin, reason).await?
        } else {
            None
        };
        self.portraits
            .delete_character(character.id)
            .await?
            .ok_or(ModerationError::CharacterNotFound)?;
        self.finish_removal(character, blocked, admin, Action::Deleted, reason)
            .await
    }

    async fn character(&self, id: i64) -> Result<Character, ModerationError> {
        self.db
            .character_by_id(id)
            .await?
            .ok_or(ModerationError::CharacterNotFound)
    }

    /// What a removal and a deletion share once the character no longer shows its portrait:
    /// the object goes when nothing else uses it, the history and the metric record it.
    async fn finish_removal(
        &self,
        character: Character,
        blocked: Option<BlockedImage>,
        admin: Actor,
        action: Action,
        reason: &str,
    ) -> Result<Removal, ModerationError> {
        let object_deleted = self.release(character.portrait_id).await?;
        history::record(
            &self.db,
            &character,
            admin,
            action,
            character.portrait_url.as_deref(),
            Some(reason),
        )
        .await?;
        self.count(action);
        Ok(Removal {
            removed_url: character.portrait_url.clone(),
            character,
            blocked,
            object_deleted,
        })
    }

    /// Adds the character's stored image to its server's block-list.
    async fn block(
        &self,
        character: &Character,
        admin: Actor,
        reason: &str,
    ) -> Result<Option<BlockedImage>, DbError> {
        let Some(portrait_id) = character.portrait_id else {
            return Ok(None);
        };
        self.block_portrait(
            character.guild_id,
            Some(&character.name),
            portrait_id,
            admin,
            reason,
        )
        .await
    }

    /// Adds a stored image to a server's block-list, hashed through the same bounded decode
    /// check as an upload (so a re-upload of it gets the same hash). An image that cannot be
    /// read (no stored object, a storage fault, or refused by limits lowered since it was
    /// stored) is logged and not blocked: the removal itself must still happen.
    async fn block_portrait(
        &self,
        guild_id: u64,
        character_name: Option<&str>,
        portrait_id: i64,
        admin: Actor,
        reason: &str,
    ) -> Result<Option<BlockedImage>, DbError> {
        let Some(record) = self.db.portrait_by_id(portrait_id).await? else {
            return Ok(None);
        };
        let bytes = match self.store.get(&record.storage_key).await {
            Ok(object) => object.bytes,
            Err(err) => {
                tracing::warn!(key = %record.storage_key, error = %err,
                    "could not read a removed portrait to block it");
                return Ok(None);
            }
        };
        let hash = match self.portraits.thumbnail_of(bytes).await {
            Ok(thumbnail) => blocklist::hash(&thumbnail),
            Err(err) => {
                tracing::warn!(key = %record.storage_key, error = %err,
                    "could not hash a removed portrait to block it");
                return Ok(None);
            }
        };
        self.db
            .add_blocked_image(guild_id, &hash, character_name, Some(reason), admin.id())
            .await
            .map(Some)
    }

    /// Counts a moderation action in `portrait_moderation_actions_total`.
    fn count(&self, action: Action) {
        self.portraits
            .metrics()
            .moderation_actions_total
            .with_label_values(&[action.as_str()])
            .inc();
    }

    /// Lets go of a portrait a character no longer shows; true when its object was deleted.
    async fn release(&self, portrait_id: Option<i64>) -> Result<bool, DbError> {
        let Some(portrait_id) = portrait_id else {
            return Ok(false);
        };
        self.portraits.release_portrait(portrait_id).await;
        Ok(self.db.portrait_by_id(portrait_id).await?.is_none())
    }
}

#[cfg(test)]
mod reason_tests {
    use super::*;

    #[test]
    fn a_reason_is_trimmed_and_must_say_something_briefly() {
        assert_eq!(
            check_reason("  not the character  "),
            Ok("not the character")
        );
        assert_eq!(check_reason(" \n "), Err(ReasonError::Missing));
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        assert_eq!(check_reason(&long), Err(ReasonError::TooLong));
        assert!(
            check_reason(&"é".repeat(MAX_REASON_CHARS)).is_ok(),
            "characters, not bytes"
        );
    }
}
