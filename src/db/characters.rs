//! Player characters.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{from_db_id, now_text, to_db_id, Db, DbError};

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

/// What a player supplies to create a character.
#[derive(Debug, Clone, Copy)]
pub struct NewCharacter<'a> {
    pub guild_id: u64,
    pub owner_id: u64,
    pub name: &'a str,
    pub class: Option<&'a str>,
    pub bio: Option<&'a str>,
}

pub(super) const COLUMNS: &str =
    "id, guild_id, owner_id, name, class, bio, portrait_id, portrait_url, \
                       created_at, updated_at";

/// The key under which a player's character names are unique in a guild: surrounding
/// spaces and case do not matter, so "Aria" and "aria " are the same character (and an
/// import finds the characters players registered themselves).
pub fn character_name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

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
    /// Creates a character; a second one with the same name (ignoring case) for the same
    /// player and guild is refused with [`DbError::CharacterExists`].
    pub async fn create_character(&self, new: &NewCharacter<'_>) -> Result<Character, DbError> {
        let now = now_text();
        let name = new.name.trim();
        let result = sqlx::query(&format!(
            "INSERT INTO characters (guild_id, owner_id, name, name_key, class, bio, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {COLUMNS}"
        ))
        .bind(to_db_id(new.guild_id))
        .bind(to_db_id(new.owner_id))
        .bind(name)
        .bind(character_name_key(name))
        .bind(new.class)
        .bind(new.bio)
        .bind(&now)
        .fetch_one(&self.pool)
        .await;
        match result {
            Ok(row) => Ok(character_from_row(&row)?),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
                Err(DbError::CharacterExists {
                    name: name.to_owned(),
                })
            }
            Err(err) => Err(err.into()),
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
        .bind(character_name_key(name))
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
        let row = sqlx::query(&format!(
            "DELETE FROM characters WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(character_from_row).transpose()?)
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
