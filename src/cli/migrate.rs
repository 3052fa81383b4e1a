//! `migrate`, `migrate-prefix` and `cleanup-orphans`: whole-table jobs on stored portraits.

use std::process::ExitCode;

use crate::app::App;
use crate::config::{DiscordApiConfig, Settings};
use crate::discord_api::DiscordApi;
use crate::migration::cdn::{CdnMigrator, MigrateOptions};
use crate::migration::orphans::{self, parse_age};
use crate::migration::prefix::{self, KeyFailure};
use crate::moderation::history::Actor;

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Report what would be migrated, changing nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Migrate at most this many characters.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Downloads at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Instead of migrating, restore the old links of this run (see the run number printed
    /// by a migration).
    #[arg(long, value_name = "RUN", conflicts_with_all = ["dry_run", "limit"])]
    pub rollback: Option<i64>,
    #[command(flatten)]
    pub discord: DiscordApiConfig,
}

#[derive(Debug, clap::Args)]
pub struct MigratePrefixArgs {
    /// List what would move, changing nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct CleanupOrphansArgs {
    /// Delete the orphans (without it, only list them).
    #[arg(long)]
    pub execute: bool,
    /// Only objects at least this old (e.g. 24h, 30m, 7d): a fresh upload may not have its
    /// database row yet.
    #[arg(long, default_value = "24h", value_parser = parse_age)]
    pub older_than: std::time::Duration,
}

pub(super) async fn migrate_prefix(
    settings: Settings,
    args: MigratePrefixArgs,
) -> anyhow::Result<ExitCode> {
    let app = App::build(settings).await?;
    let keep_in_place = Vec::from_iter(default_portrait_in_store(&app));
    let result = prefix::migrate_prefix(
        &app.db,
        &app.store,
        app.settings.app_env.as_str(),
        args.dry_run,
        &keep_in_place,
    )
    .await;
    app.shutdown().await;
    let report = result?;
    print!("{report}");
    Ok(if report.is_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(super) async fn cleanup_orphans(
    settings: Settings,
    args: CleanupOrphansArgs,
) -> anyhow::Result<ExitCode> {
    let app = App::build(settings).await?;
    let keep_in_place = Vec::from_iter(default_portrait_in_store(&app));
    let result = orphans::cleanup_orphans(
        &app.db,
        &app.store,
        app.settings.app_env.as_str(),
        args.older_than,
        args.execute,
        &keep_in_place,
    )
    .await;
    app.shutdown().await;
    let report = result?;
    print!("{report}");
    Ok(if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The default portrait's object, when DEFAULT_PORTRAIT_URL points into the store: no row
/// references it, yet every character without a portrait shows it, so the object maintenance
/// commands must leave it where it is.
fn default_portrait_in_store(app: &App) -> Option<KeyFailure> {
    let key = app
        .store
        .key_of_public_url(&app.settings.default_portrait_url)?;
    Some(KeyFailure {
        key,
        reason: "it is the default portrait (DEFAULT_PORTRAIT_URL)".to_owned(),
    })
}

pub(super) async fn migrate(settings: Settings, args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let discord = match &args.discord.discord_token {
        Some(token) if !token.is_empty() => Some(DiscordApi::new(
            token.clone(),
            args.discord.discord_api_base.as_deref(),
        )?),
        _ => {
            eprintln!(
                "note: DISCORD_TOKEN is not set, so expired Discord links cannot be refreshed"
            );
            None
        }
    };
    let app = App::build(settings).await?;
    let migrator = app.cdn_migrator(discord);
    let result = migrate_with(&migrator, &args).await;
    app.shutdown().await;
    result
}

async fn migrate_with(migrator: &CdnMigrator, args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    if let Some(run) = args.rollback {
        let restored = migrator.rollback(run, Actor::Operator).await?;
        println!("Run {run} rolled back: {restored} characters show their old link again.");
        return Ok(ExitCode::SUCCESS);
    }
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{bar:40}] {pos}/{len} {msg} (ETA {eta})",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    let options = MigrateOptions {
        dry_run: args.dry_run,
        limit: args.limit,
        concurrency: args.concurrency.max(1),
        started_by: "cli".to_owned(),
    };
    let summary = migrator
        .run(&options, &|progress| {
            bar.set_length(progress.total);
            bar.set_position(progress.done);
            bar.set_message(format!(
                "{} migrated, {} failed",
                progress.migrated, progress.failed
            ));
        })
        .await?;
    bar.finish_and_clear();
    print!("{summary}");
    Ok(ExitCode::SUCCESS)
}
