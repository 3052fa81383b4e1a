//! Fresh databases, one per test: a SQLite file in a temp folder, or a PostgreSQL database
//! created on the server `TEST_POSTGRES_URL` names and dropped (with its connections) when
//! the [`FreshDatabase`] is dropped. Only URLs leave this module: the tests open them with the
//! application's own database layer.

use sqlx::Connection;

/// The variable naming a PostgreSQL server the tests may create databases on.
pub const TEST_POSTGRES_URL: &str = "TEST_POSTGRES_URL";
/// Set (as CI does) to make a missing `TEST_POSTGRES_URL` a failure instead of a skip.
pub const REQUIRE_POSTGRES: &str = "REQUIRE_POSTGRES";

/// A database nobody has used yet; removed when dropped.
pub struct FreshDatabase {
    /// The URL the application would be configured with.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<PostgresDatabase>,
}

struct PostgresDatabase {
    admin_url: String,
    name: String,
}

impl FreshDatabase {
    /// A `sqlite://` URL to a file (not yet created) in a new temp folder.
    pub fn sqlite() -> FreshDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("portraits.db").display());
        FreshDatabase {
            url,
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A new, empty PostgreSQL database; `None` (after saying so loudly) when
    /// `TEST_POSTGRES_URL` is unset, unless `REQUIRE_POSTGRES` is set, in which case `test`
    /// fails.
    pub async fn postgres(test: &str) -> Option<FreshDatabase> {
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
        Some(FreshDatabase {
            url: database_url(&admin_url, &name),
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
            crate::say_loudly(&format!(
                "PostgreSQL SKIPPED for {test}: set {TEST_POSTGRES_URL}=postgres://postgres@127.0.0.1:5432/postgres to run it"
            ));
            None
        }
    }
}

fn database_url(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url).expect("TEST_POSTGRES_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let Some(pg) = self.postgres.take() else {
            return;
        };
        // Drop runs outside async code (and possibly while unwinding): use a thread with its
        // own runtime. FORCE ends the connections the test's pool still holds.
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
