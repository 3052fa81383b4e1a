//! What the database says about stored objects as a whole: which keys and URLs rows point at,
//! and renaming an object's key everywhere at once. Used by the prefix migration and orphan
//! cleanup, which compare the bucket's listing against these answers.

use std::collections::HashMap;

use futures::TryStreamExt;
use sqlx::Row;

use super::{list_query, now_text, Db, DbError, Placeholders, ROWS_PER_STATEMENT};

/// A portrait row, as the object maintenance commands see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortraitReference {
    pub id: i64,
    /// `None` when not asked for (see [`Db::portraits_by_key`]).
    pub public_url: Option<String>,
    /// Whether some character shows this portrait (`characters.portrait_id`) or an upload
    /// waiting for approval is it (`pending_portraits.portrait_id`).
    pub in_use: bool,
}

/// A fresh look at what references one key, taken right before acting on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyReferences {
    /// Ids of the portrait rows whose `storage_key` is the key.
    pub portrait_ids: Vec<i64>,
    /// Whether a character shows one of those rows, or an upload waiting for approval is one.
    pub portrait_in_use: bool,
    /// `(id, portrait_url)` of characters whose URL ends with the key's file name (a superset:
    /// the caller decides which really point at the key).
    pub characters: Vec<(i64, String)>,
}

impl KeyReferences {
    /// Whether a portrait row has this key.
    pub fn has_portrait_row(&self) -> bool {
        !self.portrait_ids.is_empty()
    }
}

/// What [`Db::rename_object`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenameOutcome {
    /// Portrait rows whose key and URL were rewritten (0 or 1).
    pub portraits_renamed: u64,
    /// Portrait rows folded into a row that already had the new key (0 or 1); their
    /// characters now point at that row.
    pub portraits_merged: u64,
    /// Characters whose `portrait_url` was rewritten to the new URL.
    pub characters_updated: u64,
}

impl Db {
    /// The portrait rows with `keys` (unique index on `storage_key`), by key, each with whether
    /// it is in use, and its URL if `with_url`. One query per [`ROWS_PER_STATEMENT`] keys.
    /// Without the URL the query reads indexes only (`portraits_storage_key_id` on PostgreSQL,
    /// the key's own index on SQLite), not a row of the table per key.
    pub async fn portraits_by_key(
        &self,
        keys: &[&str],
        with_url: bool,
    ) -> Result<HashMap<String, PortraitReference>, DbError> {
        let mut portraits = HashMap::with_capacity(keys.len());
        let url_column = if with_url { "p.public_url" } else { "NULL" };
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT p.id, p.storage_key, {url_column} AS public_url, \
                   CAST(CASE WHEN EXISTS (SELECT 1 FROM characters c WHERE c.portrait_id = p.id) \
                        OR EXISTS (SELECT 1 FROM pending_portraits w WHERE w.portrait_id = p.id) \
                        THEN 1 ELSE 0 END AS BIGINT) AS in_use \
                 FROM portraits p WHERE p.storage_key IN ({})",
                Placeholders::new(self.backend).list(chunk.len())
            );
            let mut query = list_query(&sql);
            for key in chunk {
                query = query.bind(*key);
            }
            let mut rows = query.fetch(&self.pool);
            while let Some(row) = rows.try_next().await? {
                portraits.insert(
                    row.try_get("storage_key")?,
                    PortraitReference {
                        id: row.try_get("id")?,
                        public_url: row.try_get("public_url")?,
                        in_use: row.try_get::<i64, _>("in_use")? != 0,
                    },
                );
            }
        }
        Ok(portraits)
    }

    /// `(id, portrait_url)` of characters whose URL's last path segment (without query string
    /// or fragment) is one of `file_names` (index on `portrait_file`). A superset: the caller
    /// decides which URLs really show which key.
    pub async fn characters_by_file_name(
        &self,
        file_names: &[&str],
    ) -> Result<Vec<(i64, String)>, DbError> {
        let mut characters = Vec::new();
        let mut names: Vec<&str> = file_names.to_vec();
        names.sort_unstable();
        names.dedup();
        for chunk in names.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id, portrait_url FROM characters WHERE portrait_file IN ({}) ORDER BY id",
                Placeholders::new(self.backend).list(chunk.len())
            );
            let mut query = list_query(&sql);
            for name in chunk {
                query = query.bind(*name);
            }
            let mut rows = query.fetch(&self.pool);
            while let Some(row) = rows.try_next().await? {
                characters.push((row.try_get("id")?, row.try_get("portrait_url")?));
            }
        }
        Ok(characters)
    }

    /// What references `key` right now: portrait rows with that key (and whether a character
    /// shows one), and characters whose URL's file name is `file_name`.
    pub async fn key_references(
        &self,
        key: &str,
        file_name: &str,
    ) -> Result<KeyReferences, DbError> {
        let rows = sqlx::query(
            "SELECT p.id, \
               CAST(CASE WHEN EXISTS (SELECT 1 FROM characters c WHERE c.portrait_id = p.id) \
                        OR EXISTS (SELECT 1 FROM pending_portraits w WHERE w.portrait_id = p.id) \
                    THEN 1 ELSE 0 END AS BIGINT) AS in_use \
             FROM portraits p WHERE p.storage_key = $1 ORDER BY p.id",
        )
        .bind(key)
        .fetch_all(&self.pool)
        .await?;
        let mut references = KeyReferences::default();
        for row in &rows {
            references.portrait_ids.push(row.try_get("id")?);
            references.portrait_in_use |= row.try_get::<i64, _>("in_use")? != 0;
        }
        references.characters = self.characters_by_file_name(&[file_name]).await?;
        Ok(references)
    }

    /// Points every row that references `old_key` at `new_key`, in one transaction, so no
    /// reader ever sees half of the rows moved:
    ///
    /// - the portrait row with `old_key` gets `new_key` and `new_url`; if a row with `new_key`
    ///   already exists (the same bytes were stored there meanwhile), the old row's characters
    ///   (and uploads waiting for approval) are moved onto it and the old row is removed, since
    ///   keys are unique;
    /// - characters whose `portrait_url` is the old row's URL or `old_url` (the URL the store
    ///   gives `old_key` today; the two differ when the public base URL changed) get `new_url`.
    ///
    /// Running it again changes nothing, which is what lets an interrupted move converge.
    pub async fn rename_object(
        &self,
        old_key: &str,
        new_key: &str,
        old_url: &str,
        new_url: &str,
    ) -> Result<RenameOutcome, DbError> {
        let mut outcome = RenameOutcome::default();
        let mut tx = self.pool.begin().await?;
        // Write first. A SQLite transaction that reads and then writes fails at once with
        // "database is locked" when another connection wrote in between (its snapshot is
        // stale, so the busy timeout cannot help), which parallel moves make likely. A write as
        // the first statement takes the write lock up front and waits its turn instead. On
        // PostgreSQL the same no-op update locks both rows against concurrent changes.
        sqlx::query(
            "UPDATE portraits SET storage_key = storage_key \
             WHERE storage_key = $1 OR storage_key = $2",
        )
        .bind(old_key)
        .bind(new_key)
        .execute(&mut *tx)
        .await?;

        let old_row =
            sqlx::query("SELECT id, public_url, legacy_url FROM portraits WHERE storage_key = $1")
                .bind(old_key)
                .fetch_optional(&mut *tx)
                .await?;
        let new_row_id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM portraits WHERE storage_key = $1")
                .bind(new_key)
                .fetch_optional(&mut *tx)
                .await?;

        let mut old_row_url = old_url.to_owned();
        if let Some(old_row) = old_row {
            let old_id: i64 = old_row.try_get("id")?;
            old_row_url = old_row.try_get("public_url")?;
            match new_row_id {
                Some(new_id) => {
                    sqlx::query(
                        "UPDATE characters SET portrait_id = $1, updated_at = $2 WHERE portrait_id = $3",
                    )
                    .bind(new_id)
                    .bind(now_text())
                    .bind(old_id)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE pending_portraits SET portrait_id = $1 WHERE portrait_id = $2",
                    )
                    .bind(new_id)
                    .bind(old_id)
                    .execute(&mut *tx)
                    .await?;
                    // Keep the Discord link the old row remembered, so a rollback of the CDN
                    // migration can still find it.
                    let legacy_url: Option<String> = old_row.try_get("legacy_url")?;
                    sqlx::query(
                        "UPDATE portraits SET legacy_url = COALESCE(legacy_url, $1) WHERE id = $2",
                    )
                    .bind(legacy_url)
                    .bind(new_id)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("DELETE FROM portraits WHERE id = $1")
                        .bind(old_id)
                        .execute(&mut *tx)
                        .await?;
                    outcome.portraits_merged = 1;
                }
                None => {
                    sqlx::query(
                        "UPDATE portraits SET storage_key = $1, public_url = $2 WHERE id = $3",
                    )
                    .bind(new_key)
                    .bind(new_url)
                    .bind(old_id)
                    .execute(&mut *tx)
                    .await?;
                    outcome.portraits_renamed = 1;
                }
            }
        }

        // Found through the `portrait_file` index, then matched exactly.
        let updated = sqlx::query(
            "UPDATE characters SET portrait_url = $1, updated_at = $2 \
             WHERE portrait_file IN ($5, $6) AND (portrait_url = $3 OR portrait_url = $4)",
        )
        .bind(new_url)
        .bind(now_text())
        .bind(old_url)
        .bind(&old_row_url)
        .bind(url_file_name(old_url))
        .bind(url_file_name(&old_row_url))
        .execute(&mut *tx)
        .await?;
        outcome.characters_updated = updated.rows_affected();

        tx.commit().await?;
        Ok(outcome)
    }
}

/// The last path segment of `url`, without query string or fragment: exactly what the
/// generated column `characters.portrait_file` holds for it (migration 0005), so a lookup by
/// this value finds every character showing `url` through the index.
pub fn url_file_name(url: &str) -> &str {
    let path = url.split('#').next().unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    path.rsplit('/').next().unwrap_or(path)
}
