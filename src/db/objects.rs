//! What the database says about stored objects as a whole: which keys and URLs rows point at,
//! and renaming an object's key everywhere at once. Used by the prefix migration and orphan
//! cleanup, which compare the bucket's listing against these answers.

use std::collections::HashMap;

use futures::TryStreamExt;
use sqlx::Row;

use super::{now_text, Db, DbError};

/// Every reference from the database to stored objects, read in one pass: the portrait rows'
/// keys and URLs, and the URLs characters show. Held in memory so a bucket of 100k objects is
/// compared with hash lookups, not 100k queries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectReferences {
    /// `portraits.storage_key` → that row's `public_url`.
    pub portraits: HashMap<String, String>,
    /// Each distinct non-null `characters.portrait_url` → how many characters show it.
    pub character_urls: HashMap<String, u64>,
}

/// A fresh look at what references one key, taken right before acting on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyReferences {
    /// Ids of the portrait rows whose `storage_key` is the key.
    pub portrait_ids: Vec<i64>,
    /// `(id, portrait_url)` of characters whose URL contains the fragment asked for. A superset
    /// (SQLite's `LIKE` ignores ASCII case): the caller decides which really point at the key.
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
    /// Every portrait key and every character URL (see [`ObjectReferences`]). Rows are streamed
    /// rather than collected first, so memory holds only the maps.
    pub async fn object_references(&self) -> Result<ObjectReferences, DbError> {
        let mut references = ObjectReferences::default();

        let mut rows =
            sqlx::query("SELECT storage_key, public_url FROM portraits").fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            references
                .portraits
                .insert(row.try_get("storage_key")?, row.try_get("public_url")?);
        }
        drop(rows);

        let mut rows =
            sqlx::query("SELECT portrait_url FROM characters WHERE portrait_url IS NOT NULL")
                .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            let url: String = row.try_get("portrait_url")?;
            *references.character_urls.entry(url).or_default() += 1;
        }
        Ok(references)
    }

    /// What references `key` right now: portrait rows with that key, and characters whose URL
    /// contains `url_fragment` (matched literally: `%`, `_` and `\` are escaped).
    pub async fn key_references(
        &self,
        key: &str,
        url_fragment: &str,
    ) -> Result<KeyReferences, DbError> {
        let portrait_ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM portraits WHERE storage_key = $1 ORDER BY id")
                .bind(key)
                .fetch_all(&self.pool)
                .await?;
        // `ESCAPE '\'` is one backslash on both engines (PostgreSQL has standard-conforming
        // strings on by default since 9.1), so the escaped pattern means the same everywhere.
        let rows = sqlx::query(
            "SELECT id, portrait_url FROM characters \
             WHERE portrait_url LIKE $1 ESCAPE '\\' ORDER BY id",
        )
        .bind(format!("%{}%", escape_like(url_fragment)))
        .fetch_all(&self.pool)
        .await?;
        let characters = rows
            .iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("portrait_url")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(KeyReferences {
            portrait_ids,
            characters,
        })
    }

    /// Points every row that references `old_key` at `new_key`, in one transaction, so no
    /// reader ever sees half of the rows moved:
    ///
    /// - the portrait row with `old_key` gets `new_key` and `new_url`; if a row with `new_key`
    ///   already exists (the same bytes were stored there meanwhile), the old row's characters
    ///   are moved onto it and the old row is removed, since keys are unique;
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

        let updated = sqlx::query(
            "UPDATE characters SET portrait_url = $1, updated_at = $2 \
             WHERE portrait_url = $3 OR portrait_url = $4",
        )
        .bind(new_url)
        .bind(now_text())
        .bind(old_url)
        .bind(&old_row_url)
        .execute(&mut *tx)
        .await?;
        outcome.characters_updated = updated.rows_affected();

        tx.commit().await?;
        Ok(outcome)
    }
}

/// Escapes `\`, `%` and `_` so `text` matches only itself inside a `LIKE … ESCAPE '\'`
/// pattern. Keys are full of `_` (`{hash}_{slug}`), which `LIKE` would take as "any character".
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_in_keys_are_escaped() {
        assert_eq!(
            escape_like("dev/portraits/2026/11/0123_zoe.png"),
            "dev/portraits/2026/11/0123\\_zoe.png"
        );
        assert_eq!(escape_like("100%\\x"), "100\\%\\\\x");
        assert_eq!(escape_like("plain"), "plain");
    }
}
