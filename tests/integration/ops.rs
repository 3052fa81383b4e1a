//! Promises an operator relies on, kept under races, outages and hostile requests: the real
//! binary, started the way a supervisor or a deploy starts it.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use sqlx::Connection;

use crate::support::database::TEST_POSTGRES_URL;
use crate::support::images;
use crate::support::variables::{BOT_VARIABLES, CONFIG_VARIABLES};

const BINARY: &str = env!("CARGO_BIN_EXE_portrait-bot");

/// The binary in `dir` with none of the developer's own settings.
fn portrait_bot(dir: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command.current_dir(dir).env("RUST_LOG", "warn");
    for variable in CONFIG_VARIABLES.iter().chain(BOT_VARIABLES) {
        command.env_remove(variable);
    }
    command.env_remove("NO_COLOR");
    command
}

// ---------------------------------------------------------------------------------------------
// Migrations applied by processes that start together.

/// Starts `count` uploads at once against `database_url`, each for its own character, and
/// returns each one's exit status and output.
fn upload_at_once(dir: &Path, database_url: &str, count: usize) -> Vec<(bool, String)> {
    std::fs::write(dir.join("hero.png"), images::png(32, 32)).unwrap();
    let children: Vec<Child> = (0..count)
        .map(|n| {
            portrait_bot(dir)
                .env("DATABASE_URL", database_url)
                .args(["upload", "hero.png", "--guild", "42", "--owner", "7"])
                .args(["--character", &format!("Hero {n}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("upload starts")
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().expect("upload ends");
            (
                output.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            )
        })
        .collect()
}

async fn assert_every_upload_succeeded(results: &[(bool, String)], database_url: &str) {
    let failures: Vec<&String> = results
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, out)| out)
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} uploads failed; the first said:\n{}",
        failures.len(),
        results.len(),
        failures[0]
    );
    let db = portrait_bot::db::Db::connect(database_url, database_url)
        .await
        .expect("the database opens");
    for n in 0..results.len() {
        let hero = db
            .find_character(42, 7, &format!("Hero {n}"))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("Hero {n} exists"));
        assert!(hero.portrait_url.is_some(), "Hero {n} has its portrait");
    }
    db.close().await;
}

#[tokio::test]
async fn twenty_uploads_started_at_once_on_a_new_sqlite_database_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("data/new.db").display());
    let results = {
        let (dir, url) = (dir.path().to_owned(), url.clone());
        tokio::task::spawn_blocking(move || upload_at_once(&dir, &url, 20))
            .await
            .unwrap()
    };
    assert_every_upload_succeeded(&results, &url).await;
}

#[tokio::test]
async fn twenty_uploads_started_at_once_on_a_new_postgres_database_all_succeed() {
    let Some(admin_url) = std::env::var(TEST_POSTGRES_URL)
        .ok()
        .filter(|url| !url.trim().is_empty())
    else {
        assert!(
            std::env::var_os("REQUIRE_POSTGRES").is_none(),
            "REQUIRE_POSTGRES is set but {TEST_POSTGRES_URL} is not"
        );
        eprintln!("\n!!! PostgreSQL SKIPPED for twenty_uploads_started_at_once_on_a_new_postgres_database_all_succeed: set {TEST_POSTGRES_URL} !!!\n");
        return;
    };
    // A database nothing has touched yet: no tables, no `_sqlx_migrations`.
    let name = format!("portrait_race_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    let url = url.to_string();

    let dir = tempfile::tempdir().unwrap();
    let results = {
        let (dir, url) = (dir.path().to_owned(), url.clone());
        tokio::task::spawn_blocking(move || upload_at_once(&dir, &url, 20))
            .await
            .unwrap()
    };
    let outcome = tokio::spawn({
        let url = url.clone();
        async move { assert_every_upload_succeeded(&results, &url).await }
    })
    .await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}
