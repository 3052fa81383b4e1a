//! Stored portrait objects, the characters that show them, and fallbacks.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::characters::{character_from_row, COLUMNS as CHARACTER_COLUMNS};
use super::{from_db_id, now_text, to_db_id, Character, Db, DbError};

/// What [`Db::replace_portrait`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedPortrait {
    pub portrait: PortraitRecord,
    /// The character as it is now.
    pub character: Character,
    /// The portrait the character showed right before, when it was another one: the caller
    /// releases it (it is deleted when no character uses it any more).
    pub previous_portrait_id: Option<i64>,
}

/// A stored object, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortraitRecord {
    pub id: i64,
    pub storage_key: String,
    pub public_url: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub uploader_id: u64,
    pub source: String,
    pub legacy_url: Option<String>,
    pub created_at: String,
}

/// What the pipeline knows about an object it has just stored.
#[derive(Debug, Clone)]
pub struct NewPortrait<'a> {
    pub storage_key: &'a str,
    pub public_url: &'a str,
    pub sha256: &'a str,
    pub size_bytes: u64,
    pub content_type: &'a str,
    pub width: u32,
    pub height: u32,
    pub uploader_id: u64,
    pub source: &'a str,
    pub legacy_url: Option<&'a str>,
}

/// A player who got the default portrait because of a fault on our side.
#[derive(Debug, Clone)]
pub struct NewFallback<'a> {
    pub guild_id: u64,
    pub owner_id: u64,
    pub character_id: Option<i64>,
    pub error_kind: &'a str,
    pub reason: &'a str,
}

/// Totals for the admin overview.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub characters: u64,
    pub portraits: u64,
    pub stored_bytes: u64,
    pub fallbacks: u64,
}

pub(super) const COLUMNS: &str =
    "id, storage_key, public_url, sha256, size_bytes, content_type, width, \
                       height, uploader_id, source, legacy_url, created_at";

pub(super) fn portrait_from_row(row: &AnyRow) -> Result<PortraitRecord, sqlx::Error> {
    let non_negative = |v: i64| v.max(0) as u64;
    Ok(PortraitRecord {
        id: row.try_get("id")?,
        storage_key: row.try_get("storage_key")?,
        public_url: row.try_get("public_url")?,
        sha256: row.try_get("sha256")?,
        size_bytes: non_negative(row.try_get("size_bytes")?),
        content_type: row.try_get("content_type")?,
        width: u32::try_from(row.try_get::<i64, _>("width")?).unwrap_or(0),
        height: u32::try_from(row.try_get::<i64, _>("height")?).unwrap_or(0),
        uploader_id: from_db_id(row.try_get("uploader_id")?),
        source: row.try_get("source")?,
        legacy_url: row.try_get("legacy_url")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Db {
    /// Records a stored object and makes it the character's portrait, in one transaction:
    /// either both happen or neither does. Recording a key that exists (the same bytes
    /// stored again) reuses its row.
    ///
    /// With `migration_run`, the run's record of what it did to the character (its legacy URL
    /// and new URL) is written in the same transaction, so a rollback can never miss a change.
    pub async fn attach_portrait(
        &self,
        character_id: i64,
        new: &NewPortrait<'_>,
        migration_run: Option<i64>,
    ) -> Result<(PortraitRecord, Character), DbError> {
        let attached = self
            .replace_portrait(character_id, new, migration_run)
            .await?;
        Ok((attached.portrait, attached.character))
    }

    /// [`Db::attach_portrait`], also returning the portrait the character showed at the moment
    /// of the change. It is read inside the transaction, after the character's row is locked
    /// (PostgreSQL: the row lock; SQLite: the database write lock), so of many concurrent
    /// uploads to one character each learns exactly the portrait it replaced, and every
    /// replaced portrait can be released.
    pub async fn replace_portrait(
        &self,
        character_id: i64,
        new: &NewPortrait<'_>,
        migration_run: Option<i64>,
    ) -> Result<AttachedPortrait, DbError> {
        let mut tx = self.pool.begin().await?;
        let Some(previous_portrait_id) = lock_character(&mut tx, character_id).await? else {
            // The character was deleted while its upload was in flight: keep nothing.
            tx.rollback().await?;
            return Err(DbError::CharacterNotFound);
        };
        let portrait = insert_or_get_portrait(&mut tx, new).await?;
        let character = show_portrait(&mut tx, character_id, &portrait).await?;
        if let (Some(run_id), Some(legacy_url)) = (migration_run, new.legacy_url) {
            super::migration_runs::insert_migrated_item(
                &mut tx,
                run_id,
                character_id,
                legacy_url,
                &portrait.public_url,
            )
            .await?;
        }
        tx.commit().await?;
        let previous_portrait_id = previous_portrait_id.filter(|id| *id != portrait.id);
        Ok(AttachedPortrait {
            portrait,
            character,
            previous_portrait_id,
        })
    }

    /// A stored portrait with exactly these bytes (by SHA-256) whose key starts with
    /// `key_prefix`, the oldest first: the same image is stored once, whoever uploads it.
    pub async fn portrait_by_sha256(
        &self,
        sha256: &str,
        key_prefix: &str,
    ) -> Result<Option<PortraitRecord>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM portraits WHERE sha256 = $1 ORDER BY id LIMIT 20"
        ))
        .bind(sha256)
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            let record = portrait_from_row(row)?;
            if record.storage_key.starts_with(key_prefix) {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    /// Records a stored object that no character shows yet (or returns the existing row).
    pub async fn record_portrait(&self, new: &NewPortrait<'_>) -> Result<PortraitRecord, DbError> {
        let mut tx = self.pool.begin().await?;
        let portrait = insert_or_get_portrait(&mut tx, new).await?;
        tx.commit().await?;
        Ok(portrait)
    }

    pub async fn portrait_by_id(&self, id: i64) -> Result<Option<PortraitRecord>, DbError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM portraits WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(portrait_from_row).transpose()?)
    }

    pub async fn portrait_by_key(&self, key: &str) -> Result<Option<PortraitRecord>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM portraits WHERE storage_key = $1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(portrait_from_row).transpose()?)
    }

    /// How many characters show this portrait.
    pub async fn portrait_references(&self, portrait_id: i64) -> Result<u64, DbError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM characters WHERE portrait_id = $1")
                .bind(portrait_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(count.max(0) as u64)
    }

    /// Forgets a portrait row only if no character shows it and no upload waiting for approval
    /// is it, in one statement so a concurrent attach cannot slip in between the check and the
    /// delete. Returns the row removed; the caller then deletes its object.
    pub async fn delete_portrait_if_unreferenced(
        &self,
        portrait_id: i64,
    ) -> Result<Option<PortraitRecord>, DbError> {
        let row = sqlx::query(&format!(
            "DELETE FROM portraits WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM characters WHERE portrait_id = $1) \
             AND NOT EXISTS (SELECT 1 FROM pending_portraits WHERE portrait_id = $1) \
             RETURNING {COLUMNS}"
        ))
        .bind(portrait_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(portrait_from_row).transpose()?)
    }

    /// Records that a player got the default portrait, and why.
    pub async fn record_fallback(&self, fallback: &NewFallback<'_>) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO portrait_fallbacks (guild_id, owner_id, character_id, error_kind, reason, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(to_db_id(fallback.guild_id))
        .bind(to_db_id(fallback.owner_id))
        .bind(fallback.character_id)
        .bind(fallback.error_kind)
        .bind(fallback.reason)
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Characters, stored portraits, their bytes, and fallbacks, across all guilds.
    pub async fn stats(&self) -> Result<Stats, DbError> {
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM characters) AS characters, \
               (SELECT COUNT(*) FROM portraits) AS portraits, \
               (SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM portraits) AS stored_bytes, \
               (SELECT COUNT(*) FROM portrait_fallbacks) AS fallbacks",
        )
        .fetch_one(&self.pool)
        .await?;
        let count = |column: &str| -> Result<u64, sqlx::Error> {
            Ok(row.try_get::<i64, _>(column)?.max(0) as u64)
        };
        Ok(Stats {
            characters: count("characters")?,
            portraits: count("portraits")?,
            stored_bytes: count("stored_bytes")?,
            fallbacks: count("fallbacks")?,
        })
    }
}

/// Locks a character's row for the rest of the transaction and reads the portrait it shows;
/// `None` when there is no such character. Written first on purpose: the write locks the row
/// (and on SQLite takes the write lock before anything is read, so the read cannot be stale).
pub(super) async fn lock_character(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    character_id: i64,
) -> Result<Option<Option<i64>>, DbError> {
    let locked = sqlx::query("UPDATE characters SET updated_at = updated_at WHERE id = $1")
        .bind(character_id)
        .execute(&mut **tx)
        .await?;
    if locked.rows_affected() == 0 {
        return Ok(None);
    }
    let shown: Option<i64> = sqlx::query_scalar("SELECT portrait_id FROM characters WHERE id = $1")
        .bind(character_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(Some(shown))
}

/// Makes `portrait` what a (locked) character shows; returns the character as it is now.
pub(super) async fn show_portrait(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    character_id: i64,
    portrait: &PortraitRecord,
) -> Result<Character, DbError> {
    let row = sqlx::query(&format!(
        "UPDATE characters SET portrait_id = $2, portrait_url = $3, updated_at = $4 \
         WHERE id = $1 RETURNING {CHARACTER_COLUMNS}"
    ))
    .bind(character_id)
    .bind(portrait.id)
    .bind(&portrait.public_url)
    .bind(now_text())
    .fetch_one(&mut **tx)
    .await?;
    Ok(character_from_row(&row)?)
}

pub(super) async fn insert_or_get_portrait(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    new: &NewPortrait<'_>,
) -> Result<PortraitRecord, DbError> {
    // The no-op update makes RETURNING yield the existing row on a conflict, on both
    // backends, so a re-upload of the same bytes is idempotent.
    let row = sqlx::query(&format!(
        "INSERT INTO portraits (storage_key, public_url, sha256, size_bytes, content_type, width, \
                                height, uploader_id, source, legacy_url, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (storage_key) DO UPDATE SET storage_key = excluded.storage_key \
         RETURNING {COLUMNS}"
    ))
    .bind(new.storage_key)
    .bind(new.public_url)
    .bind(new.sha256)
    .bind(i64::try_from(new.size_bytes).unwrap_or(i64::MAX))
    .bind(new.content_type)
    .bind(i64::from(new.width))
    .bind(i64::from(new.height))
    .bind(to_db_id(new.uploader_id))
    .bind(new.source)
    .bind(new.legacy_url)
    .bind(now_text())
    .fetch_one(&mut **tx)
    .await?;
    Ok(portrait_from_row(&row)?)
}
