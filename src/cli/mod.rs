//! Command-line interface: parse, build the application, run one command.
//!
//! Like `bot/commands/`, one file per command group holds its arguments and its handler;
//! this file holds the command list, the dispatch, and how an error becomes an exit status
//! ([`exit`]).

mod check;
pub mod exit;
mod import;
mod migrate;
mod purge;
mod run;
mod upload;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

pub use exit::{ExitStatus, Refused};
pub use import::ImportArgs;
pub use migrate::{CleanupOrphansArgs, MigrateArgs, MigratePrefixArgs};
pub use purge::PurgeArgs;
pub use run::{run_bot, shutdown_signal, BotArgs};
pub use upload::UploadArgs;

/// portrait-bot: permanent character portraits for Discord communities, stored in your own
/// Cloudflare R2 bucket (or a local folder).
#[derive(Debug, Parser)]
#[command(
    name = "portrait-bot",
    version,
    about,
    long_about = None,
    after_help = exit::EXIT_STATUS_HELP
)]
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
    /// Delete a server's characters (or one player's, with --owner) and the portraits only
    /// they show; --dry-run lists exactly what would be deleted.
    Purge(PurgeArgs),
}

/// Runs the parsed command. An error is printed here, with its whole chain, and becomes the
/// exit status its type calls for ([`ExitStatus`]), so this never returns `Err`.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match dispatch(cli).await {
        Ok(code) => Ok(code),
        Err(err) => {
            let status = exit::classify(&err);
            if status == ExitStatus::Refused {
                eprintln!("refused: {err:#}");
            } else {
                eprintln!("error: {err:#}");
            }
            Ok(status.into())
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = cli.config.validate()?;
    match cli.command {
        Command::Run(args) => run::run(settings, args).await,
        Command::RegisterCommands(args) => run::register_commands(args).await,
        Command::Import(args) => import::import(settings, args).await,
        Command::Migrate(args) => migrate::migrate(settings, args).await,
        Command::MigratePrefix(args) => migrate::migrate_prefix(settings, args).await,
        Command::CleanupOrphans(args) => migrate::cleanup_orphans(settings, args).await,
        Command::Serve => run::serve(settings).await,
        Command::Check => Ok(check::check(settings).await),
        Command::Upload(args) => upload::upload(settings, args).await,
        Command::Purge(args) => purge::purge(settings, args).await,
    }
}
