//! Importing characters from another bot's export: the SQL behind
//! [`crate::migration::import`].
//!
//! The import works in batches, each one transaction ([`Db::begin_import`]): either every
//! record of a batch is saved or none is, so a failure never leaves a half-updated character
//! and running the import again is always safe. Inside a batch each record is a read
//! ([`ImportTransaction::find`]) followed by one guarded write
//! ([`ImportTransaction::create`] or [`ImportTransaction::compare_and_update`]); the rules
//! deciding what to write live in the service, not here.

use sqlx::{Any, Row, Transaction};

use super::characters::character_from_row;
use super::moderation::{record_history_in, HistoryBy};
use super::{now_text, to_db_id, Backend, Character, Db, DbError};
use crate::character::{CharacterBio, CharacterClass, CharacterName, DiscordId};

/// A character found by an import, and where its stored portrait came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportTarget {
    /// The row as read inside the batch's transaction.
    pub character: Character,
    /// The links the character's stored portrait was migrated from: the portrait's own
    /// `legacy_url`, and the legacy URL of every migration run that put the portrait it shows
    /// now on this character. The second matters when several characters share one image:
    /// the portrait row (one per object) keeps only the first character's link. Empty when the
    /// character has no stored portrait, or when a player uploaded it themselves.
    pub migrated_from: Vec<String>,
}

/// A character an import creates, each part already checked by the domain.
#[derive(Debug, Clone, Copy)]
pub struct ImportedCharacter<'a> {
    pub guild_id: DiscordId,
    pub owner_id: DiscordId,
    pub name: &'a CharacterName,
    pub class: Option<&'a CharacterClass>,
    pub bio: Option<&'a CharacterBio>,
    /// An external portrait link (no stored object yet: the CDN migration stores it later).
    pub portrait_url: Option<&'a str>,
}

/// One batch of an import: a transaction that is committed or rolled back as a whole.
///
/// Dropping it without [`ImportTransaction::commit`] rolls it back.
#[derive(Debug)]
pub struct ImportTransaction {
    tx: Transaction<'static, Any>,
}

const CHARACTER_COLUMNS: &str = "c.id, c.guild_id, c.owner_id, c.name, c.class, c.bio, \
                                 c.portrait_id, c.portrait_url, c.created_at, c.updated_at";

/// Must match `migration_runs::ITEM_MIGRATED`: the status of a migration item whose change
/// is in place (not failed, not rolled back).
const MIGRATED: &str = "migrated";

impl Db {
    /// Starts one batch of an import.
    ///
    /// On SQLite the transaction takes the write lock up front (`BEGIN IMMEDIATE`): a
    /// transaction that reads first and writes later fails at once with "database is locked"
    /// when the running bot wrote in between, whereas waiting for the lock is covered by the
    /// busy timeout. PostgreSQL needs no such thing; its lost updates are prevented by
    /// [`ImportTransaction::compare_and_update`].
    pub async fn begin_import(&self) -> Result<ImportTransaction, DbError> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(ImportTransaction { tx })
    }
}

impl ImportTransaction {
    /// A player's character by name (ignoring case and surrounding spaces), with the links
    /// its stored portrait came from.
    ///
    /// Both lookups are indexed: the character by its unique key, the migration items by
    /// `migration_items_character` (migration 0007), so a re-import costs the same whether
    /// or not portraits were migrated.
    pub async fn find(
        &mut self,
        guild_id: DiscordId,
        owner_id: DiscordId,
        name: &CharacterName,
    ) -> Result<Option<ImportTarget>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {CHARACTER_COLUMNS}, p.legacy_url AS portrait_legacy_url \
             FROM characters c LEFT JOIN portraits p ON p.id = c.portrait_id \
             WHERE c.guild_id = $1 AND c.owner_id = $2 AND c.name_key = $3"
        ))
        .bind(to_db_id(guild_id.get()))
        .bind(to_db_id(owner_id.get()))
        .bind(name.key())
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let character = character_from_row(&row)?;
        let mut migrated_from = Vec::new();
        if let Some(url) = row.try_get::<Option<String>, _>("portrait_legacy_url")? {
            migrated_from.push(url);
        }
        if character.portrait_id.is_some() {
            // Only runs whose result is still what the character shows: a migration later
            // replaced by a player's own upload does not make that upload "from a link".
            let links: Vec<String> = sqlx::query_scalar(
                "SELECT legacy_url FROM migration_items \
                 WHERE character_id = $1 AND status = $2 AND new_url = $3 ORDER BY id",
            )
            .bind(character.id)
            .bind(MIGRATED)
            .bind(&character.portrait_url)
            .fetch_all(&mut *self.tx)
            .await?;
            for link in links {
                if !migrated_from.contains(&link) {
                    migrated_from.push(link);
                }
            }
        }
        Ok(Some(ImportTarget {
            character,
            migrated_from,
        }))
    }

    /// Creates a character, or returns `None` when one with the same key already exists
    /// (created concurrently, say by a player registering it during the import): the caller
    /// then reads it and updates it instead. `ON CONFLICT DO NOTHING` rather than catching
    /// the unique violation, because on PostgreSQL a failed statement aborts the whole
    /// transaction, and with it the batch.
    pub async fn create(
        &mut self,
        new: &ImportedCharacter<'_>,
    ) -> Result<Option<Character>, DbError> {
        let row = sqlx::query(
            "INSERT INTO characters (guild_id, owner_id, name, name_key, class, bio, \
                                     portrait_url, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (guild_id, owner_id, name_key) DO NOTHING \
             RETURNING id, guild_id, owner_id, name, class, bio, portrait_id, portrait_url, \
                       created_at, updated_at",
        )
        .bind(to_db_id(new.guild_id.get()))
        .bind(to_db_id(new.owner_id.get()))
        .bind(new.name.as_str())
        .bind(crate::character::name_key(new.name.as_str()))
        .bind(new.class.map(CharacterClass::as_str))
        .bind(new.bio.map(CharacterBio::as_str))
        .bind(new.portrait_url)
        .bind(now_text())
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.as_ref().map(character_from_row).transpose()?)
    }

    /// Writes `wanted`'s class, bio and portrait (`portrait_id`, `portrait_url`) to the
    /// character `seen` describes, only if those four columns still hold what `seen` says.
    ///
    /// Returns `false`, writing nothing, when something changed them since `seen` was read
    /// (on PostgreSQL a player's upload can commit between the read and this write); the
    /// caller reads again and decides again, so a concurrent change is never overwritten with
    /// a decision made on stale data. Name and ids are never changed by an import.
    pub async fn compare_and_update(
        &mut self,
        seen: &Character,
        wanted: &Character,
    ) -> Result<bool, DbError> {
        let result = sqlx::query(
            "UPDATE characters \
             SET class = $2, bio = $3, portrait_id = $4, portrait_url = $5, updated_at = $6 \
             WHERE id = $1 \
               AND class IS NOT DISTINCT FROM $7 AND bio IS NOT DISTINCT FROM $8 \
               AND portrait_id IS NOT DISTINCT FROM $9 AND portrait_url IS NOT DISTINCT FROM $10",
        )
        .bind(seen.id)
        .bind(&wanted.class)
        .bind(&wanted.bio)
        .bind(wanted.portrait_id)
        .bind(&wanted.portrait_url)
        .bind(now_text())
        .bind(&seen.class)
        .bind(&seen.bio)
        .bind(seen.portrait_id)
        .bind(&seen.portrait_url)
        .execute(&mut *self.tx)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Records `by`'s change of the character's portrait in its history, in this batch's
    /// transaction (so a dry run, rolled back, records nothing).
    pub async fn record_history(
        &mut self,
        character_id: i64,
        by: &HistoryBy<'_>,
    ) -> Result<(), DbError> {
        record_history_in(&mut self.tx, character_id, by).await
    }

    /// Saves the batch.
    pub async fn commit(self) -> Result<(), DbError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Discards the batch (a dry run).
    pub async fn rollback(self) -> Result<(), DbError> {
        self.tx.rollback().await?;
        Ok(())
    }
}
