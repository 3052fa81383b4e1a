//! The application's database over a fresh database per test (the kit's [`FreshDatabase`]),
//! and [`on_both_databases!`](crate::on_both_databases) to run a test on SQLite and PostgreSQL.

use portrait_bot::db::Db;
use testkit::database::FreshDatabase;

pub struct TestDb {
    pub db: Db,
    /// The URL the application would be configured with.
    pub url: String,
    /// Dropped after `db`: removes the file, or drops the PostgreSQL database.
    _database: FreshDatabase,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        Self::open(FreshDatabase::sqlite(), "SQLite").await
    }

    /// `None` (after saying so loudly) when `TEST_POSTGRES_URL` is unset, unless
    /// `REQUIRE_POSTGRES` is set, in which case the test fails.
    pub async fn postgres(test: &str) -> Option<TestDb> {
        Some(Self::open(FreshDatabase::postgres(test).await?, "PostgreSQL").await)
    }

    async fn open(database: FreshDatabase, backend: &str) -> TestDb {
        let url = database.url.clone();
        let db = Db::connect(&url, &url)
            .await
            .unwrap_or_else(|err| panic!("{backend} opens: {err}"));
        TestDb {
            db,
            url,
            _database: database,
        }
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
