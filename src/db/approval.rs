//! The approval queue: uploads stored but waiting for a moderator before their character shows
//! them (`pending_portraits`, migration 0010).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::portraits::{
    insert_or_get_portrait, lock_character, portrait_from_row, show_portrait,
    COLUMNS as PORTRAIT_COLUMNS,
};
use super::{
    from_db_id, now_text, to_db_id, AttachedPortrait, Db, DbError, NewPortrait, PortraitRecord,
};

/// An upload waiting for approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPortrait {
    pub id: i64,
    pub guild_id: u64,
    pub character_id: i64,
    /// The stored portrait row, shown by no character while it waits.
    pub portrait_id: i64,
    pub uploader_id: u64,
    /// Where the message with the Approve / Reject buttons was posted, once it was.
    pub mod_channel_id: Option<u64>,
    pub mod_message_id: Option<u64>,
    pub created_at: String,
}

/// What [`Db::submit_pending_portrait`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmittedPending {
    pub portrait: PortraitRecord,
    pub pending: PendingPortrait,
    /// The upload that was waiting for the same character before, now replaced: the caller
    /// releases its portrait and retires its message.
    pub replaced: Option<PendingPortrait>,
}

/// One line of a server's queue: the waiting upload with its character and image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedPortrait {
    pub pending: PendingPortrait,
    pub character_name: String,
    pub owner_id: u64,
    pub public_url: String,
}

const COLUMNS: &str = "id, guild_id, character_id, portrait_id, uploader_id, mod_channel_id, \
                       mod_message_id, created_at";

fn pending_from_row(row: &AnyRow) -> Result<PendingPortrait, sqlx::Error> {
    let id = |column: &str| -> Result<Option<u64>, sqlx::Error> {
        Ok(row.try_get::<Option<i64>, _>(column)?.map(from_db_id))
    };
    Ok(PendingPortrait {
        id: row.try_get("id")?,
        guild_id: from_db_id(row.try_get("guild_id")?),
        character_id: row.try_get("character_id")?,
        portrait_id: row.try_get("portrait_id")?,
        uploader_id: from_db_id(row.try_get("uploader_id")?),
        mod_channel_id: id("mod_channel_id")?,
        mod_message_id: id("mod_message_id")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Db {
    /// Records a stored object as the upload waiting for approval for a character, replacing
    /// the one that waited before, in one transaction; the character keeps showing what it
    /// shows. [`DbError::CharacterNotFound`] when the character was deleted meanwhile.
    pub async fn submit_pending_portrait(
        &self,
        character_id: i64,
        new: &NewPortrait<'_>,
    ) -> Result<SubmittedPending, DbError> {
        let mut tx = self.pool.begin().await?;
        if lock_character(&mut tx, character_id).await?.is_none() {
            tx.rollback().await?;
            return Err(DbError::CharacterNotFound);
        }
        let portrait = insert_or_get_portrait(&mut tx, new).await?;
        let replaced = sqlx::query(&format!(
            "DELETE FROM pending_portraits WHERE character_id = $1 RETURNING {COLUMNS}"
        ))
        .bind(character_id)
        .fetch_optional(&mut *tx)
        .await?;
        let row = sqlx::query(&format!(
            "INSERT INTO pending_portraits (guild_id, character_id, portrait_id, uploader_id, created_at) \
             SELECT guild_id, id, $2, $3, $4 FROM characters WHERE id = $1 \
             RETURNING {COLUMNS}"
        ))
        .bind(character_id)
        .bind(portrait.id)
        .bind(to_db_id(new.uploader_id))
        .bind(now_text())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(SubmittedPending {
            portrait,
            pending: pending_from_row(&row)?,
            replaced: replaced.as_ref().map(pending_from_row).transpose()?,
        })
    }

    /// Remembers the message with the upload's Approve / Reject buttons.
    pub async fn set_pending_message(
        &self,
        id: i64,
        channel_id: u64,
        message_id: u64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE pending_portraits SET mod_channel_id = $2, mod_message_id = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(to_db_id(channel_id))
        .bind(to_db_id(message_id))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An upload still waiting for approval.
    pub async fn pending_portrait(&self, id: i64) -> Result<Option<PendingPortrait>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM pending_portraits WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(pending_from_row).transpose()?)
    }

    /// Takes an upload out of the queue without showing it (rejected, or withdrawn); `None`
    /// when it no longer waits. Of two moderators deciding at once, exactly one gets it.
    pub async fn take_pending_portrait(&self, id: i64) -> Result<Option<PendingPortrait>, DbError> {
        let row = sqlx::query(&format!(
            "DELETE FROM pending_portraits WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(pending_from_row).transpose()?)
    }

    /// Takes an upload out of the queue and makes it what its character shows, in one
    /// transaction; `None` when it no longer waits (decided already, replaced, or its
    /// character deleted). The portrait the character showed before is returned in
    /// [`AttachedPortrait::previous_portrait_id`] for the caller to release.
    pub async fn approve_pending_portrait(
        &self,
        id: i64,
    ) -> Result<Option<(PendingPortrait, AttachedPortrait)>, DbError> {
        let mut tx = self.pool.begin().await?;
        // Write first (see `lock_character`), and lock the character before the pending row,
        // in the order a character deletion takes them, so the two cannot deadlock.
        let locked = sqlx::query(
            "UPDATE characters SET updated_at = updated_at \
             WHERE id = (SELECT character_id FROM pending_portraits WHERE id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if locked.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let taken = sqlx::query(&format!(
            "DELETE FROM pending_portraits WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(taken) = taken else {
            tx.rollback().await?;
            return Ok(None);
        };
        let pending = pending_from_row(&taken)?;
        let character_id = pending.character_id;
        let previous_portrait_id: Option<i64> =
            sqlx::query_scalar("SELECT portrait_id FROM characters WHERE id = $1")
                .bind(character_id)
                .fetch_one(&mut *tx)
                .await?;
        let row = sqlx::query(&format!(
            "SELECT {PORTRAIT_COLUMNS} FROM portraits WHERE id = $1"
        ))
        .bind(pending.portrait_id)
        .fetch_one(&mut *tx)
        .await?;
        let portrait = portrait_from_row(&row)?;
        let character = show_portrait(&mut tx, character_id, &portrait).await?;
        tx.commit().await?;
        Ok(Some((
            pending,
            AttachedPortrait {
                previous_portrait_id: previous_portrait_id.filter(|p| *p != portrait.id),
                portrait,
                character,
            },
        )))
    }

    /// A server's uploads waiting for approval, oldest first, at most `limit`.
    pub async fn pending_queue(
        &self,
        guild_id: u64,
        limit: u32,
    ) -> Result<Vec<QueuedPortrait>, DbError> {
        let rows = sqlx::query(
            "SELECT w.id, w.guild_id, w.character_id, w.portrait_id, w.uploader_id, \
                    w.mod_channel_id, w.mod_message_id, w.created_at, \
                    c.name AS character_name, c.owner_id, p.public_url \
             FROM pending_portraits w \
             JOIN characters c ON c.id = w.character_id \
             JOIN portraits p ON p.id = w.portrait_id \
             WHERE w.guild_id = $1 ORDER BY w.created_at, w.id LIMIT $2",
        )
        .bind(to_db_id(guild_id))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let queued = |row: &AnyRow| -> Result<QueuedPortrait, sqlx::Error> {
            Ok(QueuedPortrait {
                pending: pending_from_row(row)?,
                character_name: row.try_get("character_name")?,
                owner_id: from_db_id(row.try_get("owner_id")?),
                public_url: row.try_get("public_url")?,
            })
        };
        Ok(rows.iter().map(queued).collect::<Result<_, _>>()?)
    }

    /// How many uploads wait for approval in a server.
    pub async fn count_pending(&self, guild_id: u64) -> Result<u64, DbError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pending_portraits WHERE guild_id = $1")
                .bind(to_db_id(guild_id))
                .fetch_one(&self.pool)
                .await?;
        Ok(count.max(0) as u64)
    }
}
