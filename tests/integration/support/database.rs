//! Fresh databases per test: a SQLite file in a temp folder, or a PostgreSQL database created
//! from `TEST_POSTGRES_URL` and dropped afterwards.

use portrait_bot::db::Db;
use sqlx::Connection;

/// The variable naming a PostgreSQL server the tests may create databases on.
pub const TEST_POSTGRES_URL: &str = "TEST_POSTGRES_URL";
/// Set (as CI does) to make a missing `TEST_POSTGRES_URL` a failure instead of a skip.
pub const REQUIRE_POSTGRES: &str = "REQUIRE_POSTGRES";

pub struct TestDb {
    pub db: Db,
    /// The URL the application would be configured with.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<PostgresDatabase>,
}

struct PostgresDatabase {
    admin_url: String,
    name: String,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("portraits.db").display());
        let db = Db::connect(&url, &url).await.expect("SQLite opens");
        TestDb {
            db,
            url,
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// `None` (after saying so loudly) when `TEST_POSTGRES_URL` is unset, unless
    /// `REQUIRE_POSTGRES` is set, in which case the test fails.
    pub async fn postgres(test: &str) -> Option<TestDb> {
        let admin_url = postgres_admin_url(test)?;
        let name = format!("portrait_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to {TEST_POSTGRES_URL}: {err}"));
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let url = database_url(&admin_url, &name);
        let db = Db::connect(&url, &url).await.expect("PostgreSQL opens");
        Some(TestDb {
            db,
            url,
            _dir: None,
            postgres: Some(PostgresDatabase { admin_url, name }),
        })
    }
}

fn postgres_admin_url(test: &str) -> Option<String> {
    match std::env::var(TEST_POSTGRES_URL) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var_os(REQUIRE_POSTGRES).is_some() => {
            panic!("{REQUIRE_POSTGRES} is set but {TEST_POSTGRES_URL} is not: cannot run {test} on PostgreSQL")
        }
        _ => {
            eprintln!(
                "\n!!! PostgreSQL SKIPPED for {test}: set {TEST_POSTGRES_URL}=postgres://postgres@127.0.0.1:5432/postgres to run it !!!\n"
            );
            None
        }
    }
}

fn database_url(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url).expect("TEST_POSTGRES_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(pg) = self.postgres.take() else {
            return;
        };
        // Drop runs outside async code (and possibly while unwinding): use a thread with its
        // own runtime. FORCE ends the pool's connections that are still open.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&pg.admin_url).await {
                    let _ = sqlx::query(&format!(
                        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                        pg.name
                    ))
                    .execute(&mut admin)
                    .await;
                }
            });
        })
        .join();
    }
}

/// Runs each test body once on SQLite and once on PostgreSQL, as `sqlite::NAME` and
/// `postgres::NAME`.
#[macro_export]
macro_rules! on_both_databases {
    ($(async fn $name:ident($db:ident: TestDb) $body:block)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $db = $crate::support::database::TestDb::sqlite().await;
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some($db) = $crate::support::database::TestDb::postgres(stringify!($name)).await else {
                        return;
                    };
                    $body
                }
            )*
        }
    };
}
