//! `check`: the configuration, the database and storage, each reported.

use std::process::ExitCode;

use super::ExitStatus;
use crate::config::Settings;
use crate::db::Db;
use crate::storage::Store;

/// Each dependency in turn, reporting all of them, so one run shows everything to fix.
pub(super) async fn check(settings: Settings) -> ExitCode {
    println!("configuration: ok");
    let mut healthy = true;

    match Db::connect(
        settings.database_url.expose(),
        &settings.database_url.redacted(),
    )
    .await
    {
        Ok(db) => {
            println!(
                "database: ok ({}, migrations applied)",
                settings.database_url.redacted()
            );
            db.close().await;
        }
        Err(err) => {
            healthy = false;
            println!("database: FAILED — {err}");
        }
    }

    match Store::from_settings(&settings.storage) {
        Ok(store) => match store.round_trip_check(settings.app_env.as_str()).await {
            Ok(()) => println!(
                "storage: ok ({}; write, read and delete succeeded)",
                store.describe()
            ),
            Err(err) => {
                healthy = false;
                println!("storage: FAILED — {err}");
            }
        },
        Err(err) => {
            healthy = false;
            println!("storage: FAILED — {err}");
        }
    }

    if healthy {
        println!("all checks passed");
        ExitCode::SUCCESS
    } else {
        ExitStatus::Fault.into()
    }
}
