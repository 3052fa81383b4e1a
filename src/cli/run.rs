//! `run`, `register-commands` and `serve`: the long-running processes.

use std::future::Future;
use std::process::ExitCode;

use anyhow::Context;

use crate::app::App;
use crate::bot;
use crate::config::{BotConfig, BotSettings, Settings};
use crate::http;

#[derive(Debug, clap::Args)]
pub struct BotArgs {
    #[command(flatten)]
    pub bot: BotConfig,
}

pub(super) async fn run(settings: Settings, args: BotArgs) -> anyhow::Result<ExitCode> {
    let bot = args.bot.validate()?;
    run_bot(settings, bot, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn register_commands(args: BotArgs) -> anyhow::Result<ExitCode> {
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

pub(super) async fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
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

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what Fly.io and most supervisors send).
pub async fn shutdown_signal() {
    let signal = crate::signals::next_stop_signal().await;
    tracing::info!("received {}; shutting down", signal.name());
}
