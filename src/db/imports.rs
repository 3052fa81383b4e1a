//! Importing characters from another bot's export: the SQL behind
//! [`crate::migration::import`].
//!
//! The import works in batches, each one transaction ([`Db::begin_import`]): either every
//! record of a batch is saved or none is, so a failure never leaves a half-updated character
//! and running the import again is always safe. A batch is read with one statement
//! ([`ImportTransaction::find_many`]) and its new characters written with one
//! ([`ImportTransaction::create_many`]), so the cost is a few round trips per batch rather than
//! several per record (on PostgreSQL each is a network round trip); a changed character is one
//! guarded write ([`ImportTransaction::compare_and_update`]). The rules deciding what to write
//! live in the service, not here.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::characters::character_from_row;
use super::moderation::{record_history_in, HistoryBy};
use super::{
    list_query, now_text, to_db_id, Backend, Character, Db, DbError, Placeholders,
    ROWS_PER_STATEMENT,
};
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

/// The key an import finds a character by: guild, owner and name (ignoring case and
/// surrounding spaces, as the unique index does).
#[derive(Debug, Clone, Copy)]
pub struct ImportKey<'a> {
    pub guild_id: DiscordId,
    pub owner_id: DiscordId,
    pub name: &'a CharacterName,
}

/// An [`ImportKey`] as the database stores it: guild, owner, `name_key`.
type StoredKey = (i64, i64, String);

impl ImportKey<'_> {
    fn db_key(&self) -> StoredKey {
        (
            to_db_id(self.guild_id.get()),
            to_db_id(self.owner_id.get()),
            self.name.key(),
        )
    }
}

impl<'a> ImportedCharacter<'a> {
    fn key(&self) -> ImportKey<'a> {
        ImportKey {
            guild_id: self.guild_id,
            owner_id: self.owner_id,
            name: self.name,
        }
    }
}

/// A character row that also has `name_key`, and the key it is found by.
fn character_and_key(row: &AnyRow) -> Result<(Character, StoredKey), DbError> {
    let character = character_from_row(row)?;
    let key = (
        to_db_id(character.guild_id),
        to_db_id(character.owner_id),
        row.try_get("name_key")?,
    );
    Ok((character, key))
}

/// One batch of an import: a transaction that is committed or rolled back as a whole.
///
/// Dropping it without [`ImportTransaction::commit`] rolls it back.
#[derive(Debug)]
pub struct ImportTransaction {
    tx: Transaction<'static, Any>,
    backend: Backend,
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
        Ok(ImportTransaction {
            tx,
            backend: self.backend,
        })
    }
}

impl ImportTransaction {
    /// Characters by key (guild, owner and name ignoring case and surrounding spaces), with
    /// the links their stored portraits came from: `found[i]` is the character of `keys[i]`.
    ///
    /// A whole batch is read with a few statements rather than two per key, and
    /// both are index lookups: the characters by their unique key (joined to the list of keys),
    /// the migration items by `migration_items_character` (migration 0007). So an import costs
    /// one round trip per page of records, and a re-import costs the same whether or not
    /// portraits were migrated.
    pub async fn find_many(
        &mut self,
        keys: &[ImportKey<'_>],
    ) -> Result<Vec<Option<ImportTarget>>, DbError> {
        let mut found: Vec<Option<ImportTarget>> = vec![None; keys.len()];
        let position: HashMap<StoredKey, usize> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| (key.db_key(), i))
            .collect();
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "WITH wanted (guild_id, owner_id, name_key) AS (VALUES {}) \
                 SELECT {CHARACTER_COLUMNS}, c.name_key, p.legacy_url AS portrait_legacy_url \
                 FROM wanted w \
                 JOIN characters c ON c.guild_id = w.guild_id AND c.owner_id = w.owner_id \
                                  AND c.name_key = w.name_key \
                 LEFT JOIN portraits p ON p.id = c.portrait_id",
                Placeholders::new(self.backend).rows(chunk.len(), 3)
            );
            let mut query = list_query(&sql);
            for key in chunk {
                let (guild_id, owner_id, name_key) = key.db_key();
                query = query.bind(guild_id).bind(owner_id).bind(name_key);
            }
            for row in query.fetch_all(&mut *self.tx).await? {
                let (character, db_key) = character_and_key(&row)?;
                let Some(&i) = position.get(&db_key) else {
                    continue;
                };
                let migrated_from = row
                    .try_get::<Option<String>, _>("portrait_legacy_url")?
                    .into_iter()
                    .collect();
                found[i] = Some(ImportTarget {
                    character,
                    migrated_from,
                });
            }
        }
        self.add_migration_links(&mut found).await?;
        Ok(found)
    }

    /// Adds to each stored portrait's `migrated_from` the legacy URLs of the migration runs
    /// whose result is still what the character shows: a migration later replaced by a
    /// player's own upload does not make that upload "from a link".
    async fn add_migration_links(
        &mut self,
        found: &mut [Option<ImportTarget>],
    ) -> Result<(), DbError> {
        let with_portrait: HashMap<i64, usize> = found
            .iter()
            .enumerate()
            .filter_map(|(i, target)| {
                let character = &target.as_ref()?.character;
                character.portrait_id.map(|_| (character.id, i))
            })
            .collect();
        let ids: Vec<i64> = with_portrait.keys().copied().collect();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut placeholders = Placeholders::new(self.backend);
            let sql = format!(
                "SELECT character_id, legacy_url, new_url FROM migration_items \
                 WHERE status = {} AND character_id IN ({}) ORDER BY id",
                placeholders.next(),
                placeholders.list(chunk.len())
            );
            let mut query = list_query(&sql).bind(MIGRATED);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut *self.tx).await? {
                let character_id: i64 = row.try_get("character_id")?;
                let new_url: Option<String> = row.try_get("new_url")?;
                let link: String = row.try_get("legacy_url")?;
                let Some(target) = with_portrait
                    .get(&character_id)
                    .and_then(|&i| found[i].as_mut())
                else {
                    continue;
                };
                if new_url.is_some()
                    && new_url == target.character.portrait_url
                    && !target.migrated_from.contains(&link)
                {
                    target.migrated_from.push(link);
                }
            }
        }
        Ok(())
    }

    /// Creates characters; `created[i]` is `new[i]` as saved, or `None` when one with the
    /// same key already exists (created concurrently, say by a player registering it during
    /// the import): the caller then reads it and updates it instead. A few statements for a
    /// whole batch. `ON CONFLICT DO NOTHING` rather than catching the unique violation,
    /// because on PostgreSQL a failed statement aborts the whole transaction, and with it the
    /// batch.
    pub async fn create_many(
        &mut self,
        new: &[ImportedCharacter<'_>],
    ) -> Result<Vec<Option<Character>>, DbError> {
        const COLUMNS: usize = 9;
        let mut created: Vec<Option<Character>> = vec![None; new.len()];
        let position: HashMap<StoredKey, usize> = new
            .iter()
            .enumerate()
            .map(|(i, character)| (character.key().db_key(), i))
            .collect();
        let now = now_text();
        for chunk in new.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO characters (guild_id, owner_id, name, name_key, class, bio, \
                                         portrait_url, created_at, updated_at) \
                 VALUES {} \
                 ON CONFLICT (guild_id, owner_id, name_key) DO NOTHING \
                 RETURNING id, guild_id, owner_id, name, name_key, class, bio, portrait_id, \
                           portrait_url, created_at, updated_at",
                Placeholders::new(self.backend).rows(chunk.len(), COLUMNS)
            );
            let mut query = list_query(&sql);
            for character in chunk {
                query = query
                    .bind(to_db_id(character.guild_id.get()))
                    .bind(to_db_id(character.owner_id.get()))
                    .bind(character.name.as_str())
                    .bind(character.name.key())
                    .bind(character.class.map(CharacterClass::as_str))
                    .bind(character.bio.map(CharacterBio::as_str))
                    .bind(character.portrait_url)
                    .bind(now.as_str())
                    .bind(now.as_str());
            }
            for row in query.fetch_all(&mut *self.tx).await? {
                let (character, db_key) = character_and_key(&row)?;
                if let Some(&i) = position.get(&db_key) {
                    created[i] = Some(character);
                }
            }
        }
        Ok(created)
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

    /// Records `by`'s change of the portraits of `character_ids` in their history, in this
    /// batch's transaction (so a dry run, rolled back, records nothing).
    pub async fn record_history(
        &mut self,
        character_ids: &[i64],
        by: &HistoryBy<'_>,
    ) -> Result<(), DbError> {
        for chunk in character_ids.chunks(ROWS_PER_STATEMENT) {
            record_history_in(&mut self.tx, self.backend, chunk, by).await?;
        }
        Ok(())
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
