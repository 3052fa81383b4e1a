//! `import`: characters from another bot's export.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Settings;
use crate::db::Db;
use crate::migration::import::{import_file, ImportOptions};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The export: a JSON array of objects or a CSV file with a header row; columns guild_id,
    /// owner_id, name, class, bio, portrait_url.
    pub file: PathBuf,
    /// Check the file and report what would change, saving nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub(super) async fn import(settings: Settings, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let db = Db::connect(
        settings.database_url.expose(),
        &settings.database_url.redacted(),
    )
    .await?;
    let options = ImportOptions {
        cdn_origins: settings.fetch.allowed_origins.clone(),
        dry_run: args.dry_run,
        ..ImportOptions::default()
    };
    let result = import_file(&db, &args.file, &options).await;
    db.close().await;
    let report = result?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}
