//! Player characters.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::moderation::remember_deleted_character;
use super::{from_db_id, now_text, to_db_id, Backend, Db, DbError};
use crate::character::{name_key, CharacterBio, CharacterClass, CharacterName, NewCharacter};

/// A player's character as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Character {
    pub id: i64,
    pub guild_id: u64,
    pub owner_id: u64,
    pub name: String,
    pub class: Option<String>,
    pub bio: Option<String>,
    /// The stored portrait object, when the portrait is ours.
    pub portrait_id: Option<i64>,
    /// What embeds show: our object's URL, a legacy external URL, or `None` for the default.
    pub portrait_url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub(super) const COLUMNS: &str =
    "id, guild_id, owner_id, name, class, bio, portrait_id, portrait_url, \
                       created_at, updated_at";

pub(super) fn character_from_row(row: &AnyRow) -> Result<Character, sqlx::Error> {
    Ok(Character {
        id: row.try_get("id")?,
        guild_id: from_db_id(row.try_get("guild_id")?),
        owner_id: from_db_id(row.try_get("owner_id")?),
        name: row.try_get("name")?,
        class: row.try_get("class")?,
        bio: row.try_get("bio")?,
        portrait_id: row.try_get("portrait_id")?,
        portrait_url: row.try_get("portrait_url")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Db {
    /// Creates a character, each part already checked by the domain types.
    ///
    /// A second one with the same name (ignoring case) for the same player and server is
    /// refused with [`DbError::CharacterExists`]. With `max_per_player`, a player who already
    /// has that many characters in the server is refused with
    /// [`DbError::TooManyCharacters`]: the count and the insert are one statement, and on
    /// PostgreSQL the player's registrations are serialised by an advisory lock, so two
    /// concurrent registrations cannot both slip under the cap.
    pub async fn create_character(
        &self,
        new: &NewCharacter,
        max_per_player: Option<u64>,
    ) -> Result<Character, DbError> {
        let guild_id = to_db_id(new.guild_id.get());
        let owner_id = to_db_id(new.owner_id.get());
        let name = new.name.as_str();
        // No cap is a cap no player reaches (both databases count in signed 64 bits).
        let max = max_per_player.map_or(i64::MAX, |max| i64::try_from(max).unwrap_or(i64::MAX));
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            // Held until the transaction ends; a collision between two players' keys only
            // makes them wait for each other briefly.
            // Selected inside a subquery: the lock function returns `void`, a type the `Any`
            // driver cannot decode.
            sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS locked")
                .bind(guild_id ^ owner_id)
                .execute(&mut *tx)
                .await?;
        }
        let result = sqlx::query(&format!(
            "INSERT INTO characters (guild_id, owner_id, name, name_key, class, bio, created_at, updated_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $7 \
             WHERE (SELECT COUNT(*) FROM characters WHERE guild_id = $1 AND owner_id = $2) < $8 \
             RETURNING {COLUMNS}"
        ))
        .bind(guild_id)
        .bind(owner_id)
        .bind(name)
        .bind(new.name.key())
        .bind(new.class.as_ref().map(|class| class.as_str()))
        .bind(new.bio.as_ref().map(|bio| bio.as_str()))
        .bind(now_text())
        .bind(max)
        .fetch_optional(&mut *tx)
        .await;
        let row = match result {
            Ok(row) => row,
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
                return Err(DbError::CharacterExists {
                    name: name.to_owned(),
                })
            }
            Err(err) => return Err(err.into()),
        };
        tx.commit().await?;
        match row {
            Some(row) => Ok(character_from_row(&row)?),
            None => Err(DbError::TooManyCharacters {
                existing: self
                    .count_characters(new.guild_id.get(), new.owner_id.get())
                    .await?,
                max: max_per_player.unwrap_or(u64::MAX),
            }),
        }
    }

    /// A player's character by name, ignoring case.
    pub async fn find_character(
        &self,
        guild_id: u64,
        owner_id: u64,
        name: &str,
    ) -> Result<Option<Character>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM characters WHERE guild_id = $1 AND owner_id = $2 AND name_key = $3"
        ))
        .bind(to_db_id(guild_id))
        .bind(to_db_id(owner_id))
        .bind(name_key(name))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(character_from_row).transpose()?)
    }

    pub async fn character_by_id(&self, id: i64) -> Result<Option<Character>, DbError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM characters WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(character_from_row).transpose()?)
    }

    /// A player's characters in a guild, by name.
    pub async fn list_characters(
        &self,
        guild_id: u64,
        owner_id: u64,
    ) -> Result<Vec<Character>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM characters WHERE guild_id = $1 AND owner_id = $2 ORDER BY name_key"
        ))
        .bind(to_db_id(guild_id))
        .bind(to_db_id(owner_id))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(character_from_row)
            .collect::<Result<_, _>>()?)
    }

    pub async fn count_characters(&self, guild_id: u64, owner_id: u64) -> Result<u64, DbError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM characters WHERE guild_id = $1 AND owner_id = $2",
        )
        .bind(to_db_id(guild_id))
        .bind(to_db_id(owner_id))
        .fetch_one(&self.pool)
        .await?;
        Ok(count.max(0) as u64)
    }

    /// Deletes a character; returns the portrait it had, so the caller can remove the object
    /// when nothing else references it. `None` when there was no such character.
    pub async fn delete_character(&self, id: i64) -> Result<Option<Character>, DbError> {
        let mut tx = self.pool.begin().await?;
        let deleted = delete_character_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// Deletes a character like [`Db::delete_character`], and also returns the portrait of the
    /// upload it had waiting for approval (the queue entry goes with the character), so the
    /// caller can release that too.
    pub async fn delete_character_and_pending(
        &self,
        id: i64,
    ) -> Result<Option<(Character, Option<i64>)>, DbError> {
        // Lock the character before reading its pending row, in the order approval takes
        // them, so an approval racing this either finishes first or finds nothing waiting.
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE characters SET updated_at = updated_at WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let pending: Option<i64> =
            sqlx::query_scalar("SELECT portrait_id FROM pending_portraits WHERE character_id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let deleted = delete_character_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(deleted.map(|character| (character, pending)))
    }

    /// Shows the default portrait again; returns the character as it was before, so the
    /// caller knows which portrait it let go of.
    pub async fn clear_character_portrait(&self, id: i64) -> Result<Option<Character>, DbError> {
        // One transaction, writing first: the portrait returned is the one the row held when
        // it was cleared, even with an upload to the same character racing this.
        let mut tx = self.pool.begin().await?;
        let locked = sqlx::query("UPDATE characters SET updated_at = updated_at WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM characters WHERE id = $1"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let before = character_from_row(&row)?;
        sqlx::query(
            "UPDATE characters SET portrait_id = NULL, portrait_url = NULL, updated_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(now_text())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(before))
    }

    /// Points a character at an external URL (an imported legacy portrait) with no stored
    /// object behind it.
    pub async fn set_character_external_portrait(&self, id: i64, url: &str) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE characters SET portrait_id = NULL, portrait_url = $2, updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(url)
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// The gallery: a server's characters (or one player's there), in name order, read one page
/// at a time so a server with thousands of characters never loads them all.
impl Db {
    /// How many characters the gallery of `guild_id` (only `owner_id`'s, when given) shows.
    pub async fn count_gallery(
        &self,
        guild_id: u64,
        owner_id: Option<u64>,
    ) -> Result<u64, DbError> {
        let count: i64 = match owner_id {
            Some(owner) => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM characters WHERE guild_id = $1 AND owner_id = $2",
                )
                .bind(to_db_id(guild_id))
                .bind(to_db_id(owner))
                .fetch_one(&self.pool)
                .await?
            }
            None => {
                sqlx::query_scalar("SELECT COUNT(*) FROM characters WHERE guild_id = $1")
                    .bind(to_db_id(guild_id))
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        Ok(count.max(0) as u64)
    }

    /// The character at `position` (from 0) of the gallery, ordered by name then id; `None`
    /// past the end.
    pub async fn gallery_character(
        &self,
        guild_id: u64,
        owner_id: Option<u64>,
        position: u64,
    ) -> Result<Option<Character>, DbError> {
        let offset = i64::try_from(position).unwrap_or(i64::MAX);
        let row = match owner_id {
            Some(owner) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM characters WHERE guild_id = $1 AND owner_id = $2 \
                     ORDER BY name_key, id LIMIT 1 OFFSET $3"
                ))
                .bind(to_db_id(guild_id))
                .bind(to_db_id(owner))
                .bind(offset)
                .fetch_optional(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM characters WHERE guild_id = $1 \
                     ORDER BY name_key, id LIMIT 1 OFFSET $2"
                ))
                .bind(to_db_id(guild_id))
                .bind(offset)
                .fetch_optional(&self.pool)
                .await?
            }
        };
        Ok(row.as_ref().map(character_from_row).transpose()?)
    }
}

impl Db {
    /// Renames a character and replaces its class and bio; a name another of the owner's
    /// characters in the guild already has (ignoring case) is refused with
    /// [`DbError::CharacterExists`]. `None` when there is no such character.
    pub async fn update_character_text(
        &self,
        id: i64,
        name: &CharacterName,
        class: Option<&CharacterClass>,
        bio: Option<&CharacterBio>,
    ) -> Result<Option<Character>, DbError> {
        let name = name.as_str();
        let result = sqlx::query(&format!(
            "UPDATE characters SET name = $2, name_key = $3, class = $4, bio = $5, updated_at = $6 \
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(name)
        .bind(name_key(name))
        .bind(class.map(CharacterClass::as_str))
        .bind(bio.map(CharacterBio::as_str))
        .bind(now_text())
        .fetch_optional(&self.pool)
        .await;
        match result {
            Ok(row) => Ok(row.as_ref().map(character_from_row).transpose()?),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
                Err(DbError::CharacterExists {
                    name: name.to_owned(),
                })
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// Deletes a character in `executor`'s transaction, remembering whose it was for its history.
async fn delete_character_in(
    executor: &mut sqlx::AnyConnection,
    id: i64,
) -> Result<Option<Character>, DbError> {
    let row = sqlx::query(&format!(
        "DELETE FROM characters WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(&mut *executor)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let character = character_from_row(&row)?;
    remember_deleted_character(executor, &character).await?;
    Ok(Some(character))
}
