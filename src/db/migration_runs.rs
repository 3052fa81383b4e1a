//! Migration runs and what each did to each character.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::characters::{character_from_row, COLUMNS as CHARACTER_COLUMNS};
use super::moderation::{record_history_in, HistoryBy};
use super::{now_text, Character, Db, DbError};

/// One migration run, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationRun {
    pub id: i64,
    pub dry_run: bool,
    /// `running`, `completed`, `rolled_back`, or `interrupted` (killed mid-way; marked so when
    /// the next run takes over its lease, with the counts it had reached).
    pub status: String,
    pub started_by: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub selected: u64,
    pub migrated: u64,
    pub failed: u64,
}

/// What a run did to one character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationItem {
    pub run_id: i64,
    pub character_id: i64,
    pub legacy_url: String,
    pub new_url: Option<String>,
    /// `migrated`, `failed` or `rolled_back`.
    pub status: String,
    pub reason: Option<String>,
}

pub const ITEM_MIGRATED: &str = "migrated";
pub const ITEM_FAILED: &str = "failed";
pub const ITEM_ROLLED_BACK: &str = "rolled_back";
pub const RUN_RUNNING: &str = "running";
pub const RUN_COMPLETED: &str = "completed";
pub const RUN_ROLLED_BACK: &str = "rolled_back";
pub const RUN_INTERRUPTED: &str = "interrupted";

/// Items restored per query in a rollback.
const ROLLBACK_PAGE: i64 = 500;

const RUN_COLUMNS: &str =
    "id, dry_run, status, started_by, started_at, finished_at, selected, migrated, failed";

fn run_from_row(row: &AnyRow) -> Result<MigrationRun, sqlx::Error> {
    let count = |column: &str| -> Result<u64, sqlx::Error> {
        Ok(row.try_get::<i64, _>(column)?.max(0) as u64)
    };
    Ok(MigrationRun {
        id: row.try_get("id")?,
        dry_run: row.try_get::<i64, _>("dry_run")? != 0,
        status: row.try_get("status")?,
        started_by: row.try_get("started_by")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        selected: count("selected")?,
        migrated: count("migrated")?,
        failed: count("failed")?,
    })
}

fn item_from_row(row: &AnyRow) -> Result<MigrationItem, sqlx::Error> {
    Ok(MigrationItem {
        run_id: row.try_get("run_id")?,
        character_id: row.try_get("character_id")?,
        legacy_url: row.try_get("legacy_url")?,
        new_url: row.try_get("new_url")?,
        status: row.try_get("status")?,
        reason: row.try_get("reason")?,
    })
}

impl Db {
    pub async fn start_migration_run(
        &self,
        dry_run: bool,
        started_by: &str,
    ) -> Result<MigrationRun, DbError> {
        let row = sqlx::query(&format!(
            "INSERT INTO migration_runs (dry_run, status, started_by, started_at) \
             VALUES ($1, $2, $3, $4) RETURNING {RUN_COLUMNS}"
        ))
        .bind(i64::from(dry_run))
        .bind(RUN_RUNNING)
        .bind(started_by)
        .bind(now_text())
        .fetch_one(&self.pool)
        .await?;
        Ok(run_from_row(&row)?)
    }

    pub async fn finish_migration_run(
        &self,
        run_id: i64,
        selected: u64,
        migrated: u64,
        failed: u64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE migration_runs SET status = $2, finished_at = $3, selected = $4, \
             migrated = $5, failed = $6 WHERE id = $1",
        )
        .bind(run_id)
        .bind(RUN_COMPLETED)
        .bind(now_text())
        .bind(selected as i64)
        .bind(migrated as i64)
        .bind(failed as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn record_migration_failure(
        &self,
        run_id: i64,
        character_id: i64,
        legacy_url: &str,
        reason: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO migration_items (run_id, character_id, legacy_url, status, reason, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(run_id)
        .bind(character_id)
        .bind(legacy_url)
        .bind(ITEM_FAILED)
        .bind(reason)
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The latest runs first.
    pub async fn migration_runs(&self, limit: u32) -> Result<Vec<MigrationRun>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM migration_runs ORDER BY id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(run_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn migration_run(&self, id: i64) -> Result<Option<MigrationRun>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM migration_runs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(run_from_row).transpose()?)
    }

    pub async fn migration_items(&self, run_id: i64) -> Result<Vec<MigrationItem>, DbError> {
        let rows = sqlx::query(
            "SELECT run_id, character_id, legacy_url, new_url, status, reason \
             FROM migration_items WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(item_from_row).collect::<Result<_, _>>()?)
    }

    /// Records how many characters a run selected, as soon as it knows, so a run that is
    /// killed still shows its size.
    pub async fn set_migration_run_selected(
        &self,
        run_id: i64,
        selected: u64,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE migration_runs SET selected = $2 WHERE id = $1")
            .bind(run_id)
            .bind(selected as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks every real run still `running` as `interrupted`, with the counts it really
    /// reached (from its items), and returns them. Called by a run that has just taken the
    /// migration lease: only the lease holder runs, so any other `running` run is dead.
    pub async fn interrupt_abandoned_runs(&self) -> Result<Vec<MigrationRun>, DbError> {
        let rows = sqlx::query(&format!(
            "UPDATE migration_runs SET status = $1, finished_at = $2, \
                 migrated = (SELECT COUNT(*) FROM migration_items i \
                             WHERE i.run_id = migration_runs.id AND i.status = $4), \
                 failed = (SELECT COUNT(*) FROM migration_items i \
                           WHERE i.run_id = migration_runs.id AND i.status = $5) \
             WHERE status = $3 AND dry_run = 0 RETURNING {RUN_COLUMNS}"
        ))
        .bind(RUN_INTERRUPTED)
        .bind(now_text())
        .bind(RUN_RUNNING)
        .bind(ITEM_MIGRATED)
        .bind(ITEM_FAILED)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(run_from_row).collect::<Result<_, _>>()?)
    }

    /// How many characters [`Db::external_portraits_page`] would return in all, counting no
    /// further than `limit` (so a limited run's count costs no more than its limit).
    pub async fn count_external_portraits(
        &self,
        url_prefixes: &[String],
        limit: Option<usize>,
    ) -> Result<u64, DbError> {
        let (filter, binds) = prefix_filter(url_prefixes, 2);
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT id FROM characters \
             WHERE portrait_id IS NULL AND portrait_url IS NOT NULL AND {filter} \
             ORDER BY id LIMIT $1) AS candidates"
        );
        let mut query = sqlx::query_scalar::<_, i64>(&sql)
            .bind(limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX)));
        for (prefix, length) in binds {
            query = query.bind(length).bind(prefix);
        }
        Ok(query.fetch_one(&self.pool).await?.max(0) as u64)
    }

    /// Up to `limit` characters showing a URL that starts with one of `url_prefixes` with no
    /// stored object behind it (imported legacy links), with ids above `after_id`, by id.
    /// Keyset paging: each page is an index range, whatever the table's size.
    pub async fn external_portraits_page(
        &self,
        url_prefixes: &[String],
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<Character>, DbError> {
        let (filter, binds) = prefix_filter(url_prefixes, 3);
        let sql = format!(
            "SELECT {CHARACTER_COLUMNS} FROM characters \
             WHERE portrait_id IS NULL AND portrait_url IS NOT NULL AND id > $1 AND {filter} \
             ORDER BY id LIMIT $2"
        );
        let mut query = sqlx::query(&sql)
            .bind(after_id)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        for (prefix, length) in binds {
            query = query.bind(length).bind(prefix);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(character_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Puts back the legacy URL of every character the run migrated, in one transaction,
    /// recording each restored character's change as `by`'s in the history in that same
    /// transaction. A character whose portrait changed since (a new upload) keeps it. Returns
    /// how many were restored.
    pub async fn rollback_migration_run(
        &self,
        run_id: i64,
        by: &HistoryBy<'_>,
    ) -> Result<u64, DbError> {
        let mut tx = self.pool.begin().await?;
        // Write first: on SQLite a transaction that reads before writing fails at once with
        // "database is locked" if another connection wrote in between.
        sqlx::query("UPDATE migration_runs SET status = $2 WHERE id = $1")
            .bind(run_id)
            .bind(RUN_ROLLED_BACK)
            .execute(&mut *tx)
            .await?;
        let now = now_text();
        let mut restored = 0;
        // A page of items at a time (keyset on the item id), so a run of any size is rolled
        // back in flat memory, still in one transaction.
        let mut after_id = 0i64;
        loop {
            let items = sqlx::query(
                "SELECT id, run_id, character_id, legacy_url, new_url, status, reason \
                 FROM migration_items WHERE run_id = $1 AND status = $2 AND id > $3 \
                 ORDER BY id LIMIT $4",
            )
            .bind(run_id)
            .bind(ITEM_MIGRATED)
            .bind(after_id)
            .bind(ROLLBACK_PAGE)
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = items.last() else {
                break;
            };
            after_id = last.try_get("id")?;
            for row in &items {
                let item = item_from_row(row)?;
                let updated = sqlx::query(
                    "UPDATE characters SET portrait_id = NULL, portrait_url = $2, updated_at = $3 \
                     WHERE id = $1 AND portrait_url = $4",
                )
                .bind(item.character_id)
                .bind(&item.legacy_url)
                .bind(&now)
                .bind(&item.new_url)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 1 {
                    restored += 1;
                    record_history_in(&mut tx, self.backend, &[item.character_id], by).await?;
                }
            }
        }
        sqlx::query("UPDATE migration_items SET status = $3 WHERE run_id = $1 AND status = $2")
            .bind(run_id)
            .bind(ITEM_MIGRATED)
            .bind(ITEM_ROLLED_BACK)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(restored)
    }
}

/// `substr(portrait_url, 1, $n) = $n+1 OR …` for each prefix, with parameters numbered from
/// `first`, and the `(prefix, length)` pairs to bind in that order. An exact, case-sensitive
/// comparison on both engines (`LIKE` is not: SQLite ignores ASCII case). No prefixes: false.
///
/// Written as `CASE WHEN … THEN 1 ELSE 0 END <> 0` for PostgreSQL's planner: it guesses that
/// each `substr(…) = $p` keeps 0.5% of the rows, so with `LIMIT 1000` it expected fewer rows
/// than the limit and sorted all 50,000 candidates of a 100k-character table instead of
/// walking `characters_external_portrait` in id order and stopping at the limit. It guesses
/// that `<> 0` keeps nearly every row, which is the truth for a table of Discord links.
fn prefix_filter(prefixes: &[String], first: usize) -> (String, Vec<(String, i32)>) {
    if prefixes.is_empty() {
        return ("1 = 0".to_owned(), Vec::new());
    }
    let clauses: Vec<String> = (0..prefixes.len())
        .map(|i| {
            let n = first + 2 * i;
            format!("substr(portrait_url, 1, ${n}) = ${}", n + 1)
        })
        .collect();
    let binds = prefixes
        .iter()
        .map(|p| {
            (
                p.clone(),
                i32::try_from(p.chars().count()).unwrap_or(i32::MAX),
            )
        })
        .collect();
    (
        format!(
            "(CASE WHEN {} THEN 1 ELSE 0 END <> 0)",
            clauses.join(" OR ")
        ),
        binds,
    )
}

/// Inside [`Db::attach_portrait`]'s transaction: what a migration run did to the character.
pub(super) async fn insert_migrated_item(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run_id: i64,
    character_id: i64,
    legacy_url: &str,
    new_url: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO migration_items (run_id, character_id, legacy_url, new_url, status, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(run_id)
    .bind(character_id)
    .bind(legacy_url)
    .bind(new_url)
    .bind(ITEM_MIGRATED)
    .bind(now_text())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Who holds a lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub holder: String,
    pub expires_at: String,
}

impl Db {
    /// Takes the named lease for `ttl` if it is free, expired, or already ours; otherwise
    /// says who holds it.
    pub async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Result<(), LeaseHolder>, DbError> {
        let now = now_text();
        let expires = lease_expiry(ttl);
        let acquired = sqlx::query(
            "INSERT INTO migration_leases (name, holder, acquired_at, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 acquired_at = excluded.acquired_at, expires_at = excluded.expires_at \
             WHERE migration_leases.expires_at < $3 OR migration_leases.holder = $2 \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(&now)
        .bind(&expires)
        .fetch_optional(&self.pool)
        .await?;
        if acquired.is_some() {
            return Ok(Ok(()));
        }
        let row = sqlx::query("SELECT holder, expires_at FROM migration_leases WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Err(LeaseHolder {
                holder: row.try_get("holder")?,
                expires_at: row.try_get("expires_at")?,
            })),
            // Released between the two statements: try once more.
            None => Box::pin(self.try_acquire_lease(name, holder, ttl)).await,
        }
    }

    /// Takes the lease from `previous` (a holder known to be dead); false if it changed hands.
    pub async fn take_over_lease(
        &self,
        name: &str,
        previous: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, DbError> {
        let updated = sqlx::query(
            "UPDATE migration_leases SET holder = $3, acquired_at = $4, expires_at = $5 \
             WHERE name = $1 AND holder = $2",
        )
        .bind(name)
        .bind(previous)
        .bind(holder)
        .bind(now_text())
        .bind(lease_expiry(ttl))
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Extends our lease; false if we no longer hold it.
    pub async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, DbError> {
        let updated = sqlx::query(
            "UPDATE migration_leases SET expires_at = $3 WHERE name = $1 AND holder = $2",
        )
        .bind(name)
        .bind(holder)
        .bind(lease_expiry(ttl))
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM migration_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn lease_expiry(ttl: std::time::Duration) -> String {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    (chrono::Utc::now() + ttl).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
