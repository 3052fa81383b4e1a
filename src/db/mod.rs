//! The database: SQLite by default, PostgreSQL for several machines.
//!
//! All SQL lives in this module and is written once, in SQL both backends accept (`$1`
//! placeholders, `RETURNING`, `ON CONFLICT`), through sqlx's `Any` driver. Schema migrations are
//! numbered per backend under `migrations/` and applied at startup.
//!
//! # Query plans at scale
//!
//! Every query `import`, `migrate` (and its rollback), `cleanup-orphans`, `migrate-prefix` and
//! `/admin stats` issue was checked with `EXPLAIN QUERY PLAN` (SQLite) and `EXPLAIN`
//! (PostgreSQL) on a million characters, half of them with a migrated portrait (issue 11). None
//! scans a table for a text match; one index was added to read fewer pages:
//!
//! - import: the character by its unique key (PostgreSQL may take `characters_gallery` and
//!   filter on the owner: still one row), its migration items by `migration_items_character`,
//!   updates by primary key;
//! - migrate: candidates as a keyset range on `id` of `characters_external_portrait` (SQLite
//!   picks `characters_portrait_id`, the same range), stopping at `--limit`; an unlimited count
//!   on PostgreSQL is a parallel sequential scan, which the planner prefers when half the
//!   table qualifies; rollback reads items by `migration_items_run_page`;
//! - cleanup-orphans and migrate-prefix: portraits by the unique `storage_key`, "in use" by
//!   `characters_portrait_id`, characters by `characters_portrait_file`; renames and deletes by
//!   those indexes or the primary key. The orphan check, which needs no URL, is an index-only
//!   scan of `portraits_storage_key_id` on PostgreSQL (migration 0011): by key, the table's
//!   rows were one random page read per listed object once it outgrew `shared_buffers`;
//! - a player's history (`/admin history`, privacy requests): their characters' ids by the
//!   unique key and `deleted_characters_owner`, then `portrait_history_character`; a server's
//!   by `portrait_history_guild` (migration 0012, which dropped the history's own index by
//!   owner: kept in owner order, it cost an import a page write per player per batch);
//! - `/admin stats`: `COUNT(*)` and `SUM(size_bytes)` over the smallest covering indexes
//!   (`characters_portrait_id`, `portraits_size_bytes`): proportional to the rows, about 0.2 s
//!   for a million characters on PostgreSQL.

mod approval;
mod characters;
mod imports;
mod migration_runs;
mod moderation;
mod objects;
mod portraits;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Connection, Executor};

pub use approval::{PendingPortrait, QueuedPortrait, SubmittedPending};
pub use characters::Character;
pub use imports::{ImportKey, ImportTarget, ImportTransaction, ImportedCharacter};
pub use migration_runs::{LeaseHolder, MigrationItem, MigrationRun};
pub use moderation::{
    BlockedImage, GuildSettingsRow, HistoryBy, HistoryRow, NewHistory, GUILD_SETTING_COLUMNS,
};
pub use objects::{url_file_name, KeyReferences, PortraitReference, RenameOutcome};
pub use portraits::{AttachedPortrait, NewFallback, NewPortrait, PortraitRecord, Stats};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("could not open the database at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("could not create the folder {path} for the SQLite database: {source}")]
    CreateFolder {
        path: String,
        source: std::io::Error,
    },
    #[error("could not apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("you already have a character named `{name}` here")]
    CharacterExists { name: String },
    /// The player already has the most characters allowed in the server.
    #[error("you already have {existing} characters here, the most allowed is {max}")]
    TooManyCharacters { existing: u64, max: u64 },
    #[error("that character no longer exists")]
    CharacterNotFound,
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// Which engine is behind the pool; only connection setup and migrations differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The connection pool and every query the application makes.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects, creating a SQLite file and its folder when missing, and applies migrations.
    ///
    /// `display_url` is what errors show (the caller passes a password-free form).
    pub async fn connect(url: &str, display_url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let connect_error = |source| DbError::Connect {
            url: display_url.to_owned(),
            source,
        };

        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url).map_err(connect_error)?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // One writer at a time is SQLite's model anyway; a few readers help /healthz
                // and autocomplete stay responsive during an upload.
                Backend::Sqlite => 4,
                Backend::Postgres => 10,
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers proceed during a write; the busy timeout makes a
                        // second writer wait instead of failing with "database is locked".
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(connect_error)?;

        apply_migrations(&pool, backend).await?;
        Ok(Db { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A trivial query, for health checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Waits for in-flight queries and closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Applies the pending migrations, safely when several processes start at once.
///
/// sqlx's `Migrator` reads the applied versions and then applies each missing one in its own
/// transaction. Two processes starting together on a fresh database both see nothing applied
/// and both run `0001`; the second fails with "table … already exists". Its cure is a lock held
/// from that read to the last write:
///
/// - **PostgreSQL**: `Migrator::run` already takes `pg_advisory_lock` for the whole run (see
///   `sqlx-postgres`'s `Migrate::lock`), so the second process waits and then finds every
///   migration applied.
/// - **SQLite**: sqlx's `Migrate::lock` is a no-op there. So the whole run happens inside one
///   `BEGIN IMMEDIATE` transaction: it takes SQLite's own write lock *before* reading the
///   applied versions, other processes' `BEGIN IMMEDIATE` waits in the busy timeout (set on
///   every connection), and each migration becomes a savepoint inside it (SQLite's DDL is
///   transactional). This is the database's own lock on exactly the file being migrated —
///   unlike a lock file beside it, it cannot disagree with the database about who holds it,
///   and unlike retrying on "already exists" it never runs half a migration twice. The run is
///   a few milliseconds on a fresh database and one read of `_sqlx_migrations` afterwards.
async fn apply_migrations(pool: &AnyPool, backend: Backend) -> Result<(), DbError> {
    match backend {
        Backend::Sqlite => {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            SQLITE_MIGRATIONS.run_direct(&mut *tx).await?;
            tx.commit().await?;
        }
        Backend::Postgres => POSTGRES_MIGRATIONS.run(pool).await?,
    }
    Ok(())
}

/// SQLite will not create a file's folder, and sqlx opens read-write without `create` unless
/// asked: make both happen so `sqlite://data/portraits.db` just works on a fresh clone.
fn prepare_sqlite_url(url: &str) -> Result<String, DbError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    if path != ":memory:" && !path.is_empty() {
        if let Some(parent) = Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|source| DbError::CreateFolder {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
        }
    }
    Ok(match query {
        Some(query) if query.contains("mode=") => url.to_owned(),
        Some(_) => format!("{url}&mode=rwc"),
        None => format!("{url}?mode=rwc"),
    })
}

/// Timestamps are stored as RFC 3339 text in UTC: portable, readable in both `sqlite3` and
/// `psql`, and ordered correctly as strings.
fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Rows (or ids) in one multi-row statement: far below the limits on parameters of SQLite
/// (32,766) and PostgreSQL (65,535) even at 9 columns a row.
const ROWS_PER_STATEMENT: usize = 500;

/// The placeholders of a statement built with lists of parameters, written in the order their
/// values are bound: `$1, $2, …` on PostgreSQL, `?` on SQLite.
///
/// Not `$n` on SQLite too because sqlx binds each named SQLite parameter after looking up its
/// name, which SQLite does by a linear search: binding costs the square of the parameters, and
/// a statement of 4,000 made an import twice as slow as one statement per row. An anonymous
/// `?` has no name to look up. Every placeholder of such a statement comes from here, as
/// SQLite numbers a `?` after the largest number written before it.
///
/// Such statements are run through [`list_query`], planned afresh every time. Kept prepared,
/// PostgreSQL switches to one generic plan after five runs, made with the table sizes of that
/// moment: an import into an empty table kept a hash join over a sequential scan of
/// `characters` (planned for 250 rows) while the table grew to 100,000, and each batch took
/// longer than the last. Planning a statement for hundreds of rows costs next to nothing.
struct Placeholders {
    backend: Backend,
    written: usize,
}

impl Placeholders {
    fn new(backend: Backend) -> Placeholders {
        Placeholders {
            backend,
            written: 0,
        }
    }

    /// The next parameter.
    fn next(&mut self) -> String {
        self.written += 1;
        match self.backend {
            Backend::Sqlite => "?".to_owned(),
            Backend::Postgres => format!("${}", self.written),
        }
    }

    /// `count` parameters, comma-separated (for `IN (…)`).
    fn list(&mut self, count: usize) -> String {
        (0..count)
            .map(|_| self.next())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `(…), (…), …`: `rows` rows of `columns` parameters each (for `VALUES`).
    fn rows(&mut self, rows: usize, columns: usize) -> String {
        (0..rows)
            .map(|_| format!("({})", self.list(columns)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A statement built with [`Placeholders`], not kept prepared (see there why).
fn list_query(sql: &str) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    sqlx::query(sql).persistent(false)
}

/// Discord ids are u64 snowflakes; both databases store signed 64-bit integers. The cast is a
/// bit-for-bit round trip, and every real snowflake is below 2^63 anyway.
fn to_db_id(id: u64) -> i64 {
    id as i64
}

fn from_db_id(id: i64) -> u64 {
    id as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_the_order_they_are_written() {
        let mut postgres = Placeholders::new(Backend::Postgres);
        assert_eq!(postgres.next(), "$1");
        assert_eq!(postgres.list(2), "$2, $3");
        assert_eq!(postgres.rows(2, 2), "($4, $5), ($6, $7)");
        let mut sqlite = Placeholders::new(Backend::Sqlite);
        assert_eq!(sqlite.next(), "?");
        assert_eq!(sqlite.rows(2, 2), "(?, ?), (?, ?)");
    }

    #[test]
    fn sqlite_urls_gain_create_mode_and_keep_explicit_modes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nested/deeper/portraits.db");
        let url = format!("sqlite://{}", file.display());
        assert_eq!(prepare_sqlite_url(&url).unwrap(), format!("{url}?mode=rwc"));
        assert!(file.parent().unwrap().is_dir(), "the folder is created");
        assert_eq!(
            prepare_sqlite_url("sqlite::memory:?mode=memory").unwrap(),
            "sqlite::memory:?mode=memory"
        );
    }

    #[test]
    fn discord_ids_round_trip_through_signed_storage() {
        for id in [0, 1, 80351110224678912, u64::MAX] {
            assert_eq!(from_db_id(to_db_id(id)), id);
        }
    }
}
