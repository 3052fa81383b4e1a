//! The Discord bot: poise commands over serenity. The only layer that knows Discord types.

mod access;
mod approval;
mod commands;
mod embeds;
mod error;
mod events;
mod forms;
mod gallery;
mod lifecycle;
mod limits;
mod notify;
mod upload;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use poise::serenity_prelude as serenity;

pub use error::BotError;
use lifecycle::Lifecycle;
use limits::{UploadLimiter, UPLOAD_WINDOW};

use crate::app::App;
use crate::config::{BotSettings, ShardPlan};
use crate::db::DbError;
use crate::moderation::{settings, ModerationService};

pub type Context<'a> = poise::Context<'a, Data, BotError>;

/// Shared state every command sees.
pub struct Data {
    pub app: App,
    pub settings: BotSettings,
    limiter: UploadLimiter,
    lifecycle: Arc<Lifecycle>,
    galleries: gallery::Watchers,
}

impl Data {
    /// The environment's limits: what a server that set nothing gets.
    pub(crate) fn moderation_defaults(&self) -> settings::Defaults {
        settings::Defaults {
            max_characters: self.settings.max_characters_per_player,
            uploads_per_10_minutes: self.settings.uploads_per_10_minutes,
        }
    }

    /// The settings that apply in a server: its own, else the environment's.
    pub(crate) async fn server_settings(
        &self,
        guild_id: u64,
    ) -> Result<settings::EffectiveSettings, DbError> {
        settings::effective(&self.app.db, guild_id, &self.moderation_defaults()).await
    }

    /// The most characters one player may have in a server: every way of registering a
    /// character passes this to `create_character`.
    pub(crate) async fn character_cap(&self, guild_id: u64) -> Result<Option<u64>, DbError> {
        Ok(Some(self.server_settings(guild_id).await?.max_characters))
    }

    pub(crate) fn moderation(&self) -> ModerationService {
        self.app.moderation()
    }
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
    #[error(
        "Discord rejected DISCORD_TOKEN ({0}): copy a fresh token from the Discord Developer \
         Portal (your application → Bot → Reset Token)"
    )]
    InvalidToken(&'static str),
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

/// How long one startup request to Discord may take before it counts as failed.
const STARTUP_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The wait between startup attempts while Discord is unreachable: doubling up to the cap.
const STARTUP_RETRY_FIRST: Duration = Duration::from_secs(1);
const STARTUP_RETRY_MAX: Duration = Duration::from_secs(60);

/// Connects to Discord and serves commands until `shutdown` resolves; then stops taking
/// commands, lets uploads in flight finish within the grace period, and disconnects.
///
/// Startup and shutdown race each other: whatever state the connection is in (checking the
/// token, waiting to retry an unreachable Discord, opening the gateway, connected), a stop
/// signal ends `run` within `SHUTDOWN_GRACE_SECS` with `Ok`. serenity alone cannot promise
/// that: `ShardManager::shutdown_all` returns without ending `Client::start` while no shard
/// runner exists yet (the gateway is still being reached), and its REST client has no
/// timeout. A second SIGINT or SIGTERM during the grace period stops at once.
pub async fn run(
    app: App,
    settings: BotSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let lifecycle = Arc::new(Lifecycle::default());
    let shard_manager = Arc::new(OnceLock::new());
    let grace = settings.shutdown_grace;
    let gateway = connect_and_serve(app, settings, lifecycle.clone(), shard_manager.clone());
    let stop = stop_after(shutdown, lifecycle, grace, shard_manager);
    tokio::select! {
        result = gateway => result,
        () = stop => Ok(()),
    }
}

/// Checks the token, connects, and serves until the gateway stops.
async fn connect_and_serve(
    app: App,
    settings: BotSettings,
    lifecycle: Arc<Lifecycle>,
    shard_manager: Arc<OnceLock<Arc<serenity::ShardManager>>>,
) -> Result<(), RunError> {
    let http = http_client(&settings);
    verify_token(&http, settings.api_base.is_some()).await?;
    let intents = intents(&settings);
    let shards = settings.shards;

    let data = Data {
        limiter: UploadLimiter::new(UPLOAD_WINDOW),
        lifecycle,
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
    let _ = shard_manager.set(client.shard_manager.clone());

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
            Err(RunError::InvalidToken("gateway close 4004"))
        }
        Err(err) => Err(err.into()),
    }
}

/// Asks Discord who the token belongs to before connecting. A 401 is final: no retry can fix a
/// wrong token, so the bot stops saying so. Anything else (refused connections, no answer,
/// 5xx, 429) is an outage that ends some day: retried with backoff, saying so in the log,
/// until it works or a stop signal arrives.
async fn verify_token(http: &serenity::Http, custom_base: bool) -> Result<(), RunError> {
    let mut delay = STARTUP_RETRY_FIRST;
    loop {
        let failure =
            match tokio::time::timeout(STARTUP_REQUEST_TIMEOUT, http.get_current_user()).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(serenity::Error::Http(err)))
                    if err.status_code().map(|status| status.as_u16()) == Some(401) =>
                {
                    return Err(RunError::InvalidToken("401 Unauthorized"));
                }
                Ok(Err(err)) => err.to_string(),
                Err(_) => format!("no answer within {} s", STARTUP_REQUEST_TIMEOUT.as_secs()),
            };
        tracing::warn!(
            error = %failure,
            retry_in_secs = delay.as_secs(),
            "could not reach Discord{}; retrying",
            if custom_base { " at DISCORD_API_BASE" } else { "" }
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(STARTUP_RETRY_MAX);
    }
}

/// Once `shutdown` resolves: no new commands, uploads in flight get the grace period, then the
/// gateway is closed with whatever time is left. Returns when all that is done, when the grace
/// period is over, or at once on a second stop signal.
async fn stop_after(
    shutdown: impl Future<Output = ()>,
    lifecycle: Arc<Lifecycle>,
    grace: Duration,
    shard_manager: Arc<OnceLock<Arc<serenity::ShardManager>>>,
) {
    shutdown.await;
    let deadline = tokio::time::Instant::now() + grace;
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: no new commands; waiting for uploads in flight"
    );
    let stopping = async {
        let unfinished = lifecycle.drain(grace).await;
        if unfinished > 0 {
            tracing::warn!(
                unfinished,
                "grace period over; exiting with uploads still running"
            );
        }
        if let Some(manager) = shard_manager.get() {
            if tokio::time::timeout_at(deadline, manager.shutdown_all())
                .await
                .is_err()
            {
                tracing::warn!("the gateway did not close within the grace period; leaving it");
            }
        }
    };
    tokio::select! {
        () = stopping => {}
        // Listened to only once shutdown has begun: a second signal means "stop now".
        _ = crate::signals::next_stop_signal() => tracing::warn!(
            unfinished = lifecycle.in_flight(),
            "second stop signal: exiting now without waiting for uploads in flight"
        ),
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
