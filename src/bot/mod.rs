//! The Discord bot: poise commands over serenity. The only layer that knows Discord types.

mod commands;
mod embeds;
mod error;
mod events;
mod forms;
mod gallery;
mod lifecycle;
mod limits;
mod upload;

use std::future::Future;
use std::sync::Arc;

use poise::serenity_prelude as serenity;

pub use error::BotError;
use lifecycle::Lifecycle;
use limits::{UploadLimiter, UPLOAD_WINDOW};

use crate::app::App;
use crate::config::{BotSettings, ShardPlan};

pub type Context<'a> = poise::Context<'a, Data, BotError>;

/// Shared state every command sees.
pub struct Data {
    pub app: App,
    pub settings: BotSettings,
    limiter: UploadLimiter,
    lifecycle: Arc<Lifecycle>,
    galleries: gallery::Watchers,
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Data").finish_non_exhaustive()
    }
}

/// Why the bot stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "Discord refused the Message Content intent (gateway close 4014). Either enable \
         \"Message Content Intent\" for your bot in the Discord Developer Portal (your \
         application → Bot → Privileged Gateway Intents), or set REGISTRATION_MESSAGE_STEP=false \
         to run without the step that reads images from posted messages."
    )]
    DisallowedIntents,
    #[error("Discord rejected DISCORD_TOKEN (gateway close 4004): copy a fresh token from the Developer Portal")]
    InvalidToken,
    #[error("Discord error: {0}")]
    Discord(#[from] serenity::Error),
}

/// Reading an attachment from a posted message needs the privileged Message Content intent, so
/// it is asked for only while that registration step is enabled.
pub fn intents(settings: &BotSettings) -> serenity::GatewayIntents {
    let base = serenity::GatewayIntents::GUILDS;
    if settings.registration_message_step {
        base | serenity::GatewayIntents::GUILD_MESSAGES
            | serenity::GatewayIntents::DIRECT_MESSAGES
            | serenity::GatewayIntents::MESSAGE_CONTENT
    } else {
        base
    }
}

/// The REST client. With `DISCORD_API_BASE` every call goes there, with serenity's own rate
/// limiter off (serenity ignores the proxy while it is on; the proxy, or the simulated
/// Discord, is then responsible for rate limits).
pub fn http_client(settings: &BotSettings) -> serenity::Http {
    let builder = serenity::HttpBuilder::new(settings.token.expose());
    match &settings.api_base {
        Some(base) => builder
            .proxy(base.as_str())
            .ratelimiter_disabled(true)
            .build(),
        None => builder.build(),
    }
}

/// Every command the bot registers.
pub fn commands() -> Vec<poise::Command<Data, BotError>> {
    commands::all()
}

/// Registers the commands (globally, or to `DEV_GUILD_ID`) without connecting to the gateway.
/// Returns how many top-level commands were registered.
pub async fn register_commands(settings: &BotSettings) -> Result<usize, RunError> {
    let http = http_client(settings);
    let application = http.get_current_application_info().await?;
    http.set_application_id(application.id);
    let commands = commands();
    register(&http, &commands, settings.dev_guild_id).await?;
    Ok(commands.len())
}

async fn register(
    http: &serenity::Http,
    commands: &[poise::Command<Data, BotError>],
    dev_guild_id: Option<u64>,
) -> Result<(), serenity::Error> {
    match dev_guild_id {
        Some(guild) => {
            poise::builtins::register_in_guild(http, commands, serenity::GuildId::new(guild))
                .await?;
            tracing::info!(
                guild,
                count = commands.len(),
                "registered commands to the dev guild"
            );
        }
        None => {
            poise::builtins::register_globally(http, commands).await?;
            tracing::info!(
                count = commands.len(),
                "registered commands globally (Discord may take up to an hour to show changes)"
            );
        }
    }
    Ok(())
}

/// Connects to Discord and serves commands until `shutdown` resolves; then stops taking
/// commands, lets uploads in flight finish within the grace period, and disconnects.
pub async fn run(
    app: App,
    settings: BotSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let lifecycle = Arc::new(Lifecycle::default());
    let http = http_client(&settings);
    let intents = intents(&settings);
    let grace = settings.shutdown_grace;
    let shards = settings.shards;

    let data = Data {
        limiter: UploadLimiter::new(settings.uploads_per_10_minutes, UPLOAD_WINDOW),
        lifecycle: lifecycle.clone(),
        galleries: gallery::Watchers::default(),
        app,
        settings,
    };
    let framework = poise::Framework::builder()
        .options(poise::FrameworkOptions {
            commands: commands(),
            on_error: |error| Box::pin(error::on_error(error)),
            event_handler: |ctx, event, _framework, data| {
                Box::pin(events::handle(ctx, event, data))
            },
            command_check: Some(|ctx| Box::pin(accepting_commands(ctx))),
            ..Default::default()
        })
        .setup(move |ctx, ready, framework| {
            Box::pin(async move {
                tracing::info!(
                    user = %ready.user.name,
                    guilds = ready.guilds.len(),
                    shard = ?ready.shard,
                    "connected to Discord"
                );
                // Every machine would register the same commands; shard 0's does it once.
                if data.settings.shards.includes_first_shard() {
                    register(
                        &ctx.http,
                        &framework.options().commands,
                        data.settings.dev_guild_id,
                    )
                    .await?;
                }
                Ok(data)
            })
        })
        .initialize_owners(false)
        .build();

    let mut client = serenity::ClientBuilder::new_with_http(http, intents)
        .framework(framework)
        .await?;

    let shard_manager = client.shard_manager.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: no new commands; waiting for uploads in flight"
        );
        let unfinished = lifecycle.drain(grace).await;
        if unfinished > 0 {
            tracing::warn!(
                unfinished,
                "grace period over; exiting with uploads still running"
            );
        }
        shard_manager.shutdown_all().await;
    });

    let started = match shards {
        ShardPlan::Single => client.start().await,
        ShardPlan::Auto => client.start_autosharded().await,
        // serenity treats the range's end as the last shard, inclusive.
        ShardPlan::Range { first, last, total } => {
            tracing::info!(first, last, total, "running gateway shards");
            client.start_shard_range(first..last, total).await
        }
    };
    match started {
        Ok(()) => Ok(()),
        Err(serenity::Error::Gateway(serenity::GatewayError::DisallowedGatewayIntents)) => {
            Err(RunError::DisallowedIntents)
        }
        Err(serenity::Error::Gateway(serenity::GatewayError::InvalidAuthentication)) => {
            Err(RunError::InvalidToken)
        }
        Err(err) => Err(err.into()),
    }
}

/// Runs before every command: during shutdown, new commands are turned away politely.
async fn accepting_commands(ctx: Context<'_>) -> Result<bool, BotError> {
    if ctx.data().lifecycle.is_draining() {
        return Err(BotError::player(
            "The bot is restarting. Please try again in a minute.",
        ));
    }
    Ok(true)
}
