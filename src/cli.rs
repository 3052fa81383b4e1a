//! Command-line interface: parse, build the application, run one command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bytes::Bytes;
use clap::{Parser, Subcommand};

use crate::app::App;
use std::future::Future;

use crate::bot;
use crate::config::{BotConfig, BotSettings, Config, DiscordApiConfig, Settings, StorageSettings};
use crate::db::{Db, DbError, NewCharacter};
use crate::discord_api::DiscordApi;
use crate::http;
use crate::migration::cdn::{CdnMigrator, MigrateOptions};
use crate::migration::import::{import_file, ImportOptions};
use crate::migration::orphans::{delete_orphans, find_orphans, parse_age, spare, OrphanReport};
use crate::migration::prefix::{migrate_prefix, KeyFailure, MigrationError};
use crate::portrait::{IngestRequest, PortraitSource, Upload};
use crate::storage::Store;
use crate::units::human_bytes;

/// portrait-bot: permanent character portraits for Discord communities, stored in your own
/// Cloudflare R2 bucket (or a local folder).
#[derive(Debug, Parser)]
#[command(name = "portrait-bot", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Discord bot beside the HTTP server (the normal way to run portrait-bot).
    Run(BotArgs),
    /// Register the slash commands with Discord (globally, or to DEV_GUILD_ID) and exit.
    RegisterCommands(BotArgs),
    /// Import characters from another bot's export (JSON or CSV); safe to run again.
    Import(ImportArgs),
    /// Move every portrait still on Discord's CDN into storage (or roll a run back).
    Migrate(MigrateArgs),
    /// Move objects stored without a `dev/` or `prod/` prefix under this environment's
    /// prefix (copy, verify, update rows, then delete the source).
    MigratePrefix(MigratePrefixArgs),
    /// List stored objects no character uses any more; delete them with --execute.
    CleanupOrphans(CleanupOrphansArgs),
    /// Run the HTTP server alone: /healthz, /metrics, the default portrait and local objects.
    Serve,
    /// Verify the configuration, the database and a write/read/delete round trip on storage.
    Check,
    /// Store a local image file as a character's portrait, through the same checks as Discord
    /// uploads (creating the character if needed).
    Upload(UploadArgs),
}

#[derive(Debug, clap::Args)]
pub struct BotArgs {
    #[command(flatten)]
    pub bot: BotConfig,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The export: a JSON array of objects or a CSV file with a header row; columns guild_id,
    /// owner_id, name, class, bio, portrait_url.
    pub file: PathBuf,
    /// Check the file and report what would change, saving nothing.
    #[arg(long)]
    pub dry_run: bool,
}

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

#[derive(Debug, clap::Args)]
pub struct UploadArgs {
    /// The image file (PNG, JPEG, GIF or WebP).
    pub file: PathBuf,
    /// Discord server (guild) id the character belongs to.
    #[arg(long)]
    pub guild: u64,
    /// Discord user id of the character's owner (also recorded as the uploader).
    #[arg(long)]
    pub owner: u64,
    /// Character name.
    #[arg(long)]
    pub character: String,
    /// Character class, when the character is created.
    #[arg(long)]
    pub class: Option<String>,
    /// Character bio, when the character is created.
    #[arg(long)]
    pub bio: Option<String>,
}

/// Runs the parsed command; the error, if any, is printed with its whole chain by `main`.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = cli.config.validate()?;
    match cli.command {
        Command::Run(args) => {
            let bot = args.bot.validate()?;
            run_bot(settings, bot, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::RegisterCommands(args) => {
            let bot = args.bot.validate()?;
            let count = bot::register_commands(&bot).await?;
            match bot.dev_guild_id {
                Some(guild) => println!("registered {count} commands to server {guild}"),
                None => println!(
                    "registered {count} commands globally (Discord may take up to an hour to show them)"
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Import(args) => import(settings, args).await,
        Command::Migrate(args) => migrate(settings, args).await,
        Command::MigratePrefix(args) => {
            let app = App::build(settings).await?;
            let keep_in_place = Vec::from_iter(default_portrait_in_store(&app));
            let result = migrate_prefix(
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
        Command::CleanupOrphans(args) => {
            let app = App::build(settings).await?;
            let result = cleanup(&app, &args).await;
            app.shutdown().await;
            let report = result?;
            print!("{report}");
            Ok(if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Serve => serve(settings).await,
        Command::Check => Ok(check(settings).await),
        Command::Upload(args) => upload(settings, args).await,
    }
}

/// The bot and the HTTP server together until `shutdown` resolves: then the bot stops taking
/// commands and lets uploads in flight finish, the HTTP server stops, and the database closes.
pub async fn run_bot(
    settings: Settings,
    bot_settings: BotSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = settings.http_addr;
    let app = App::build(settings).await?;
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(http::serve(
        app.clone(),
        addr,
        |bound| tracing::info!(%bound, "HTTP server listening"),
        async {
            let _ = http_stopped.await;
        },
    ));
    let result = bot::run(app.clone(), bot_settings, shutdown).await;
    let _ = stop_http.send(());
    match http.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::error!(error = %err, "the HTTP server failed (HTTP_ADDR)"),
        Err(err) => tracing::error!(error = %err, "the HTTP server task failed"),
    }
    app.shutdown().await;
    result?;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn import(settings: Settings, args: ImportArgs) -> anyhow::Result<ExitCode> {
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

/// Finds the orphans, spares the default portrait when it is hosted in the store, then
/// deletes if asked.
async fn cleanup(app: &App, args: &CleanupOrphansArgs) -> Result<OrphanReport, MigrationError> {
    let mut report = find_orphans(
        &app.db,
        &app.store,
        app.settings.app_env.as_str(),
        args.older_than,
    )
    .await?;
    if let Some(default) = default_portrait_in_store(app) {
        spare(&mut report, &default.key, &default.reason);
    }
    Ok(if args.execute {
        delete_orphans(&app.db, &app.store, report).await
    } else {
        report
    })
}

async fn migrate(settings: Settings, args: MigrateArgs) -> anyhow::Result<ExitCode> {
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
    let migrator = CdnMigrator::new(
        app.db.clone(),
        app.portraits.clone(),
        discord,
        app.settings.fetch.allowed_origins.clone(),
    );
    let result = migrate_with(&migrator, &args).await;
    app.shutdown().await;
    result
}

async fn migrate_with(migrator: &CdnMigrator, args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    if let Some(run) = args.rollback {
        let restored = migrator.rollback(run).await?;
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

async fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    let addr = settings.http_addr;
    let app = App::build(settings).await?;
    http::serve(
        app.clone(),
        addr,
        |bound| tracing::info!(%bound, "HTTP server listening"),
        shutdown_signal(),
    )
    .await
    .with_context(|| format!("could not serve HTTP on {addr} (HTTP_ADDR)"))?;
    app.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Each dependency in turn, reporting all of them, so one run shows everything to fix.
async fn check(settings: Settings) -> ExitCode {
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

    let store = match &settings.storage {
        StorageSettings::R2(r2) => Store::r2(r2.clone()),
        StorageSettings::Local {
            root,
            public_base_url,
        } => Store::local(root.clone(), public_base_url.clone()),
    };
    match store {
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
        ExitCode::FAILURE
    }
}

async fn upload(settings: Settings, args: UploadArgs) -> anyhow::Result<ExitCode> {
    let max_bytes = settings.inspect_limits.max_bytes;
    let size = tokio::fs::metadata(&args.file)
        .await
        .with_context(|| format!("cannot read {}", args.file.display()))?
        .len();
    if size > max_bytes {
        anyhow::bail!(
            "{} is {}; the limit is {} (MAX_UPLOAD_BYTES)",
            args.file.display(),
            human_bytes(size),
            human_bytes(max_bytes)
        );
    }
    let bytes = tokio::fs::read(&args.file)
        .await
        .with_context(|| format!("cannot read {}", args.file.display()))?;

    let app = App::build(settings).await?;
    let result = upload_with(&app, args, Bytes::from(bytes)).await;
    app.shutdown().await;
    result
}

async fn upload_with(app: &App, args: UploadArgs, bytes: Bytes) -> anyhow::Result<ExitCode> {
    let new = NewCharacter {
        guild_id: args.guild,
        owner_id: args.owner,
        name: &args.character,
        class: args.class.as_deref(),
        bio: args.bio.as_deref(),
    };
    let character = match app.db.create_character(&new).await {
        Ok(character) => {
            println!("created character `{}`", character.name);
            character
        }
        Err(DbError::CharacterExists { .. }) => app
            .db
            .find_character(args.guild, args.owner, &args.character)
            .await?
            .context("the character exists but could not be read back")?,
        Err(err) => return Err(err.into()),
    };

    let request = IngestRequest {
        character: &character,
        uploader_id: args.owner,
        source: PortraitSource::Cli,
        legacy_url: None,
        migration_run: None,
    };
    match app.portraits.ingest(Upload::Bytes(bytes), &request).await {
        Ok(stored) => {
            let record = &stored.record;
            println!("key:        {}", record.storage_key);
            println!("url:        {}", record.public_url);
            println!("bytes:      {}", record.size_bytes);
            println!("type:       {}", record.content_type);
            println!("dimensions: {}x{}", record.width, record.height);
            if !stored.removed_metadata.is_empty() {
                println!("removed:    {}", stored.removed_metadata.join(", "));
            }
            if stored.already_stored {
                println!("(the same image was already stored; nothing new was written)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) if err.is_players_to_fix() => {
            eprintln!("refused: {}", err.player_message());
            Ok(ExitCode::FAILURE)
        }
        Err(err) => Err(anyhow::Error::new(err).context("the portrait was not stored")),
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what Fly.io and most supervisors send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "could not listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "could not listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C; shutting down"),
        () = terminate => tracing::info!("received SIGTERM; shutting down"),
    }
}
