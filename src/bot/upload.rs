//! The one way the bot turns a Discord attachment into a character's portrait.

use poise::serenity_prelude as serenity;
use poise::CreateReply;

use super::{approval, embeds, BotError, Context, Data};
use crate::db::Character;
use crate::portrait::{IngestRequest, PortraitOutcome, PortraitSource, Upload};
use crate::units::human_duration;

/// An attachment as Discord described it: where to download it and its declared size.
#[derive(Debug, Clone)]
pub struct AttachmentLink {
    pub url: String,
    pub size: u64,
}

/// Applies the per-player limit, runs the shared pipeline, and builds the private reply: the
/// character card with the new portrait, or with a visible warning when storage failed.
/// A file the player must fix comes back as [`BotError::Player`] and changes nothing. In a
/// server that requires approval the portrait is stored but waits for a moderator (see
/// [`approval`]).
pub async fn set_portrait(
    ctx: Context<'_>,
    character: &Character,
    attachment: AttachmentLink,
    source: PortraitSource,
) -> Result<CreateReply, BotError> {
    set_portrait_for(
        ctx.http(),
        ctx.data(),
        ctx.author().id.get(),
        character,
        attachment,
        source,
    )
    .await
}

/// [`set_portrait`] outside a command (a form submit), for `uploader`.
pub async fn set_portrait_for(
    http: &serenity::Http,
    data: &Data,
    uploader: u64,
    character: &Character,
    attachment: AttachmentLink,
    source: PortraitSource,
) -> Result<CreateReply, BotError> {
    let allowed = data
        .server_settings(character.guild_id)
        .await?
        .uploads_per_10_minutes;
    if let Err(wait) = data
        .limiter
        .try_acquire(character.guild_id, uploader, allowed)
    {
        return Err(BotError::player(format!(
            "You have reached this server's limit of {allowed} portrait uploads per 10 \
             minutes. Please try again in {}.",
            human_duration(wait)
        )));
    }
    let Some(_in_flight) = data.lifecycle.begin() else {
        return Err(BotError::player(
            "The bot is restarting. Please try again in a minute.",
        ));
    };

    let request = IngestRequest {
        character,
        uploader_id: uploader,
        source,
        legacy_url: None,
        migration_run: None,
    };
    let upload = Upload::Url {
        url: attachment.url,
        declared_size: Some(attachment.size),
    };
    if let Some(mod_channel) = approval::approval_channel(data, character.guild_id).await? {
        let outcome = data
            .moderation()
            .submit_for_approval(upload, &request)
            .await?;
        let reply = match outcome {
            PortraitOutcome::Stored(pending) => {
                approval::ask_moderators(http, data, mod_channel, character, pending).await?
            }
            PortraitOutcome::Fallback {
                character,
                kept_existing,
                reason,
                ..
            } => fallback(data, &character, &reason, kept_existing).await,
        };
        return Ok(reply.ephemeral(true));
    }
    let reply = match data
        .app
        .portraits
        .ingest_or_default(upload, &request)
        .await?
    {
        PortraitOutcome::Stored(stored) => embeds::card_for(data, &stored.character)
            .await
            .content(format!("Portrait saved for **{}**.", stored.character.name)),
        PortraitOutcome::Fallback {
            character,
            kept_existing,
            reason,
            ..
        } => fallback(data, &character, &reason, kept_existing).await,
    };
    Ok(reply.ephemeral(true))
}

/// The card as it still is, with a visible warning that the upload did not land, and why.
async fn fallback(
    data: &Data,
    character: &Character,
    reason: &str,
    kept_existing: bool,
) -> CreateReply {
    embeds::card_for(data, character)
        .await
        .content(embeds::fallback_warning(reason, kept_existing))
}
