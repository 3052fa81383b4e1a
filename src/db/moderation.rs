//! Moderation storage: per-server settings, portrait history, the block-list, and the
//! per-server (or per-player) listings privacy and purge work from.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::characters::{character_from_row, COLUMNS as CHARACTER_COLUMNS};
use super::{
    from_db_id, list_query, now_text, to_db_id, Backend, Character, Db, DbError, Placeholders,
};

/// A server's own settings as stored; `None` means "the environment's default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuildSettingsRow {
    pub mod_channel_id: Option<u64>,
    pub approval_required: Option<bool>,
    pub max_characters: Option<u64>,
    pub uploads_per_10_minutes: Option<u32>,
}

/// One change of a character's portrait, to record.
#[derive(Debug, Clone)]
pub struct NewHistory<'a> {
    pub guild_id: u64,
    pub owner_id: u64,
    pub character_id: i64,
    pub character_name: &'a str,
    /// `player`, `admin`, `migration` or `import`.
    pub actor_kind: &'a str,
    pub actor_id: Option<u64>,
    /// `uploaded`, `approved`, `rejected`, `removed`, `reset`, `migrated`, `rolled_back`, …
    pub action: &'a str,
    pub portrait_url: Option<&'a str>,
    pub reason: Option<&'a str>,
}

/// Who made a change that a database write records by itself, inside its own transaction
/// (a migration rollback, an import): the row takes the character's name and its portrait
/// URL as the same transaction left them.
#[derive(Debug, Clone, Copy)]
pub struct HistoryBy<'a> {
    /// As in [`NewHistory`].
    pub actor_kind: &'a str,
    pub actor_id: Option<u64>,
    pub action: &'a str,
}

/// Records `by`'s change of each of `character_ids` on `executor` (a transaction's
/// connection), taking the rest of each row from the character as it now stands. One
/// statement: callers pass at most [`super::ROWS_PER_STATEMENT`] ids.
pub(super) async fn record_history_in(
    executor: &mut sqlx::AnyConnection,
    backend: Backend,
    character_ids: &[i64],
    by: &HistoryBy<'_>,
) -> Result<(), DbError> {
    if character_ids.is_empty() {
        return Ok(());
    }
    let mut placeholders = Placeholders::new(backend);
    let sql = format!(
        "INSERT INTO portrait_history (guild_id, owner_id, character_id, character_name, \
             actor_kind, actor_id, action, portrait_url, reason, created_at) \
         SELECT guild_id, owner_id, id, name, {}, portrait_url, NULL, {} \
         FROM characters WHERE id IN ({}) ORDER BY id",
        placeholders.list(3),
        placeholders.next(),
        placeholders.list(character_ids.len())
    );
    let mut query = list_query(&sql)
        .bind(by.actor_kind)
        .bind(by.actor_id.map(to_db_id))
        .bind(by.action)
        .bind(now_text());
    for id in character_ids {
        query = query.bind(*id);
    }
    query.execute(executor).await?;
    Ok(())
}

/// The ids of a player's characters in a server, those that exist and those deleted since:
/// whose history is theirs (`$1` guild, `$2` owner). Both halves are index lookups, the
/// characters' unique key and `deleted_characters_owner`.
const PLAYER_CHARACTER_IDS: &str =
    "SELECT id FROM characters WHERE guild_id = $1 AND owner_id = $2 \
     UNION ALL \
     SELECT character_id FROM deleted_characters WHERE guild_id = $1 AND owner_id = $2";

/// A server's history, or one player's in it: the `WHERE` clauses that select it and the
/// values they bind (`$1` guild, `$2` owner).
struct HistoryScope {
    guild_id: i64,
    owner_id: Option<i64>,
}

impl HistoryScope {
    fn new(guild_id: u64, owner_id: Option<u64>) -> Self {
        Self {
            guild_id: to_db_id(guild_id),
            owner_id: owner_id.map(to_db_id),
        }
    }

    /// Its rows of `portrait_history`: a whole server's by `portrait_history_guild`.
    fn history(&self) -> String {
        match self.owner_id {
            Some(_) => format!("character_id IN ({PLAYER_CHARACTER_IDS})"),
            None => "guild_id = $1".to_owned(),
        }
    }

    /// Its rows of `deleted_characters`.
    fn deleted_characters(&self) -> &'static str {
        match self.owner_id {
            Some(_) => "guild_id = $1 AND owner_id = $2",
            None => "guild_id = $1",
        }
    }

    fn bind<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        let query = query.bind(self.guild_id);
        match self.owner_id {
            Some(owner_id) => query.bind(owner_id),
            None => query,
        }
    }
}

/// Remembers whose `character` was, in the transaction that deletes it, so its history is
/// still found by its player (see migration 0012).
pub(super) async fn remember_deleted_character(
    executor: &mut sqlx::AnyConnection,
    character: &Character,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO deleted_characters (character_id, guild_id, owner_id, deleted_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(character.id)
    .bind(to_db_id(character.guild_id))
    .bind(to_db_id(character.owner_id))
    .bind(now_text())
    .execute(executor)
    .await?;
    Ok(())
}

/// A recorded change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub id: i64,
    pub guild_id: u64,
    pub owner_id: u64,
    pub character_id: i64,
    pub character_name: String,
    pub actor_kind: String,
    pub actor_id: Option<u64>,
    pub action: String,
    pub portrait_url: Option<String>,
    pub reason: Option<String>,
    pub created_at: String,
}

/// A block-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedImage {
    pub id: i64,
    pub guild_id: u64,
    /// The perceptual hash, base64 as `image_hasher` writes it.
    pub phash: String,
    pub character_name: Option<String>,
    pub reason: Option<String>,
    pub blocked_by: Option<u64>,
    pub created_at: String,
}

fn history_from_row(row: &AnyRow) -> Result<HistoryRow, sqlx::Error> {
    Ok(HistoryRow {
        id: row.try_get("id")?,
        guild_id: from_db_id(row.try_get("guild_id")?),
        owner_id: from_db_id(row.try_get("owner_id")?),
        character_id: row.try_get("character_id")?,
        character_name: row.try_get("character_name")?,
        actor_kind: row.try_get("actor_kind")?,
        actor_id: row.try_get::<Option<i64>, _>("actor_id")?.map(from_db_id),
        action: row.try_get("action")?,
        portrait_url: row.try_get("portrait_url")?,
        reason: row.try_get("reason")?,
        created_at: row.try_get("created_at")?,
    })
}

fn blocked_from_row(row: &AnyRow) -> Result<BlockedImage, sqlx::Error> {
    Ok(BlockedImage {
        id: row.try_get("id")?,
        guild_id: from_db_id(row.try_get("guild_id")?),
        phash: row.try_get("phash")?,
        character_name: row.try_get("character_name")?,
        reason: row.try_get("reason")?,
        blocked_by: row.try_get::<Option<i64>, _>("blocked_by")?.map(from_db_id),
        created_at: row.try_get("created_at")?,
    })
}

const HISTORY_COLUMNS: &str = "id, guild_id, owner_id, character_id, character_name, actor_kind, \
                               actor_id, action, portrait_url, reason, created_at";
const BLOCKED_COLUMNS: &str = "id, guild_id, phash, character_name, reason, blocked_by, created_at";

/// The server's own settings, each NULL when the default applies.
pub const GUILD_SETTING_COLUMNS: [&str; 4] = [
    "mod_channel_id",
    "approval_required",
    "max_characters",
    "uploads_per_10_minutes",
];

impl Db {
    /// A server's stored settings (all `None` when it never set any).
    pub async fn guild_settings(&self, guild_id: u64) -> Result<GuildSettingsRow, DbError> {
        let row = sqlx::query(
            "SELECT mod_channel_id, approval_required, max_characters, uploads_per_10_minutes \
             FROM guild_settings WHERE guild_id = $1",
        )
        .bind(to_db_id(guild_id))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(GuildSettingsRow::default());
        };
        let int = |column: &str| row.try_get::<Option<i64>, _>(column);
        Ok(GuildSettingsRow {
            mod_channel_id: int("mod_channel_id")?.map(from_db_id),
            approval_required: int("approval_required")?.map(|v| v != 0),
            max_characters: int("max_characters")?.map(|v| v.max(0) as u64),
            uploads_per_10_minutes: int("uploads_per_10_minutes")?
                .map(|v| u32::try_from(v.max(0)).unwrap_or(u32::MAX)),
        })
    }

    /// Sets the given settings of a server, leaving the others as they were; returns what is
    /// stored afterwards.
    pub async fn update_guild_settings(
        &self,
        guild_id: u64,
        change: &GuildSettingsRow,
        updated_by: u64,
    ) -> Result<GuildSettingsRow, DbError> {
        sqlx::query(
            "INSERT INTO guild_settings (guild_id, mod_channel_id, approval_required, \
                 max_characters, uploads_per_10_minutes, updated_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (guild_id) DO UPDATE SET \
                 mod_channel_id = COALESCE(excluded.mod_channel_id, guild_settings.mod_channel_id), \
                 approval_required = COALESCE(excluded.approval_required, guild_settings.approval_required), \
                 max_characters = COALESCE(excluded.max_characters, guild_settings.max_characters), \
                 uploads_per_10_minutes = COALESCE(excluded.uploads_per_10_minutes, guild_settings.uploads_per_10_minutes), \
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(to_db_id(guild_id))
        .bind(change.mod_channel_id.map(to_db_id))
        .bind(change.approval_required.map(i64::from))
        .bind(
            change
                .max_characters
                .map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
        )
        .bind(change.uploads_per_10_minutes.map(i64::from))
        .bind(to_db_id(updated_by))
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        self.guild_settings(guild_id).await
    }

    /// Forgets a server's own values of `columns` (from [`GUILD_SETTING_COLUMNS`]), so their
    /// defaults apply again; returns what is stored afterwards.
    pub async fn clear_guild_settings(
        &self,
        guild_id: u64,
        columns: &[&str],
        updated_by: u64,
    ) -> Result<GuildSettingsRow, DbError> {
        // Only fixed column names are spliced in, never input.
        let cleared: Vec<String> = columns
            .iter()
            .filter(|column| GUILD_SETTING_COLUMNS.contains(column))
            .map(|column| format!("{column} = NULL"))
            .collect();
        if !cleared.is_empty() {
            sqlx::query(&format!(
                "UPDATE guild_settings SET {}, updated_by = $2, updated_at = $3 WHERE guild_id = $1",
                cleared.join(", ")
            ))
            .bind(to_db_id(guild_id))
            .bind(to_db_id(updated_by))
            .bind(now_text())
            .execute(&self.pool)
            .await?;
        }
        self.guild_settings(guild_id).await
    }

    /// Records one change of a character's portrait.
    pub async fn record_history(&self, entry: &NewHistory<'_>) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO portrait_history (guild_id, owner_id, character_id, character_name, \
                 actor_kind, actor_id, action, portrait_url, reason, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(to_db_id(entry.guild_id))
        .bind(to_db_id(entry.owner_id))
        .bind(entry.character_id)
        .bind(entry.character_name)
        .bind(entry.actor_kind)
        .bind(entry.actor_id.map(to_db_id))
        .bind(entry.action)
        .bind(entry.portrait_url)
        .bind(entry.reason)
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The last `limit` changes of a character's portrait, newest first.
    pub async fn character_history(
        &self,
        character_id: i64,
        limit: u32,
    ) -> Result<Vec<HistoryRow>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {HISTORY_COLUMNS} FROM portrait_history WHERE character_id = $1 \
             ORDER BY id DESC LIMIT $2"
        ))
        .bind(character_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(history_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// The characters of a player in a server that have recorded changes, even deleted ones,
    /// as `(character id, name in its latest row)`, most recently changed first.
    pub async fn history_characters(
        &self,
        guild_id: u64,
        owner_id: u64,
    ) -> Result<Vec<(i64, String)>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT h.character_id, h.character_name FROM portrait_history h \
             JOIN (SELECT character_id, MAX(id) AS last_id FROM portrait_history \
                   WHERE character_id IN ({PLAYER_CHARACTER_IDS}) GROUP BY character_id) latest \
               ON h.id = latest.last_id \
             ORDER BY h.id DESC"
        ))
        .bind(to_db_id(guild_id))
        .bind(to_db_id(owner_id))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|row| Ok((row.try_get("character_id")?, row.try_get("character_name")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Forgets the history of a server, or of one player in it, and whose its deleted
    /// characters were. Returns how many history rows went.
    pub async fn delete_history(
        &self,
        guild_id: u64,
        owner_id: Option<u64>,
    ) -> Result<u64, DbError> {
        let scope = HistoryScope::new(guild_id, owner_id);
        let mut tx = self.pool.begin().await?;
        let history = scope
            .bind(sqlx::query(&format!(
                "DELETE FROM portrait_history WHERE {}",
                scope.history()
            )))
            .execute(&mut *tx)
            .await?;
        scope
            .bind(sqlx::query(&format!(
                "DELETE FROM deleted_characters WHERE {}",
                scope.deleted_characters()
            )))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(history.rows_affected())
    }

    /// How many history rows [`delete_history`](Self::delete_history) would remove.
    pub async fn count_history(
        &self,
        guild_id: u64,
        owner_id: Option<u64>,
    ) -> Result<u64, DbError> {
        let scope = HistoryScope::new(guild_id, owner_id);
        let row = scope
            .bind(sqlx::query(&format!(
                "SELECT COUNT(*) AS history_rows FROM portrait_history WHERE {}",
                scope.history()
            )))
            .fetch_one(&self.pool)
            .await?;
        let count: i64 = row.try_get("history_rows")?;
        Ok(count.max(0) as u64)
    }

    /// Every character of a server, or of one player in it, by owner then name.
    pub async fn guild_characters(
        &self,
        guild_id: u64,
        owner_id: Option<u64>,
    ) -> Result<Vec<Character>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {CHARACTER_COLUMNS} FROM characters \
             WHERE guild_id = $1 AND ($2 IS NULL OR owner_id = $2) ORDER BY owner_id, name_key, id"
        ))
        .bind(to_db_id(guild_id))
        .bind(owner_id.map(to_db_id))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(character_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Adds a perceptual hash to a server's block-list.
    pub async fn add_blocked_image(
        &self,
        guild_id: u64,
        phash: &str,
        character_name: Option<&str>,
        reason: Option<&str>,
        blocked_by: Option<u64>,
    ) -> Result<BlockedImage, DbError> {
        let row = sqlx::query(&format!(
            "INSERT INTO blocked_images (guild_id, phash, character_name, reason, blocked_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {BLOCKED_COLUMNS}"
        ))
        .bind(to_db_id(guild_id))
        .bind(phash)
        .bind(character_name)
        .bind(reason)
        .bind(blocked_by.map(to_db_id))
        .bind(now_text())
        .fetch_one(&self.pool)
        .await?;
        Ok(blocked_from_row(&row)?)
    }

    /// A server's block-list, oldest first.
    pub async fn blocked_images(&self, guild_id: u64) -> Result<Vec<BlockedImage>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {BLOCKED_COLUMNS} FROM blocked_images WHERE guild_id = $1 ORDER BY id"
        ))
        .bind(to_db_id(guild_id))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(blocked_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Whether a server blocks anything at all (a cheap check before hashing an upload).
    pub async fn has_blocked_images(&self, guild_id: u64) -> Result<bool, DbError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM blocked_images WHERE guild_id = $1 LIMIT 1")
                .bind(to_db_id(guild_id))
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    /// Removes one entry of a server's block-list; false when it had no such entry.
    pub async fn remove_blocked_image(&self, guild_id: u64, id: i64) -> Result<bool, DbError> {
        let result = sqlx::query("DELETE FROM blocked_images WHERE guild_id = $1 AND id = $2")
            .bind(to_db_id(guild_id))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Forgets a server's settings and block-list (when the whole server is purged).
    pub async fn delete_guild_moderation(&self, guild_id: u64) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        for table in ["guild_settings", "blocked_images"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE guild_id = $1"))
                .bind(to_db_id(guild_id))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
