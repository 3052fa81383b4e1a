//! Errors in commands: a player's mistake gets a short private reply saying how to fix it; an
//! unexpected error gets a generic reply with an error id, and the full chain is logged.

use poise::CreateReply;

use super::{Context, Data};
use crate::character::CharacterError;
use crate::db::DbError;
use crate::portrait::registration::Refusal;
use crate::portrait::IngestError;

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    /// Shown to the player as is.
    #[error("{0}")]
    Player(String),
    #[error("database error: {0}")]
    Database(#[from] DbError),
    /// Boxed: serenity's error is large, and every command returns this type.
    #[error("Discord API error: {0}")]
    Discord(Box<poise::serenity_prelude::Error>),
    #[error("portrait upload failed: {0}")]
    Ingest(#[source] IngestError),
}

impl BotError {
    pub fn player(message: impl Into<String>) -> Self {
        BotError::Player(message.into())
    }
}

impl From<poise::serenity_prelude::Error> for BotError {
    fn from(err: poise::serenity_prelude::Error) -> Self {
        BotError::Discord(Box::new(err))
    }
}

impl From<IngestError> for BotError {
    fn from(err: IngestError) -> Self {
        if err.is_players_to_fix() {
            BotError::Player(err.player_message())
        } else {
            BotError::Ingest(err)
        }
    }
}

/// A name, class or bio the domain refused: the player's to fix, its message shown as is.
impl From<CharacterError> for BotError {
    fn from(err: CharacterError) -> Self {
        BotError::Player(err.to_string())
    }
}

/// Every reply the player gets as is (a refused file, a rate limit) is theirs to fix.
impl Refusal for BotError {
    fn is_players_to_fix(&self) -> bool {
        matches!(self, BotError::Player(_))
    }
}

/// The whole `source()` chain on one line, for logs.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn reply_privately(ctx: Context<'_>, message: String) {
    let reply = CreateReply::default().content(message).ephemeral(true);
    if let Err(err) = ctx.send(reply).await {
        tracing::warn!(error = %err, "could not send an error reply");
    }
}

/// Answers an unexpected error with an id the player can quote, and logs the chain with it.
pub async fn report_unexpected(ctx: Context<'_>, error: &(dyn std::error::Error + Send + Sync)) {
    let text = unexpected(&ctx.command().qualified_name, ctx.author().id.get(), error);
    reply_privately(ctx, text).await;
}

/// Logs an unexpected error (in a command, a button press or a form; `what` says which) with a
/// new error id, and returns the generic reply that quotes the id.
pub fn unexpected(what: &str, user: u64, error: &(dyn std::error::Error + Send + Sync)) -> String {
    let error_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    tracing::error!(error_id, what, user, error = %chain(error), "interaction failed");
    format!(
        "Something went wrong on our side (error id `{error_id}`). Please try again in a \
         moment; if it keeps happening, give that id to a server admin."
    )
}

pub async fn on_error(error: poise::FrameworkError<'_, Data, BotError>) {
    match error {
        poise::FrameworkError::Command { error, ctx, .. }
        | poise::FrameworkError::CommandCheckFailed {
            error: Some(error),
            ctx,
            ..
        } => match error {
            BotError::Player(message) => reply_privately(ctx, message).await,
            other => report_unexpected(ctx, &other).await,
        },
        poise::FrameworkError::CommandCheckFailed {
            error: None, ctx, ..
        } => {
            reply_privately(ctx, "You can't use this command here.".to_owned()).await;
        }
        poise::FrameworkError::ArgumentParse {
            error, input, ctx, ..
        } => {
            let what = input.map(|i| format!(" `{i}`")).unwrap_or_default();
            reply_privately(ctx, format!("That option{what} isn't valid: {error}")).await;
        }
        poise::FrameworkError::GuildOnly { ctx, .. } => {
            reply_privately(ctx, "Use this command in a server, not in DMs.".to_owned()).await;
        }
        poise::FrameworkError::CommandPanic { ctx, payload, .. } => {
            let panic = payload.unwrap_or_else(|| "unknown panic".to_owned());
            report_unexpected(ctx, &BotError::Player(panic)).await;
        }
        other => {
            if let Err(err) = poise::builtins::on_error(other).await {
                tracing::error!(error = %err, "could not handle a framework error");
            }
        }
    }
}
