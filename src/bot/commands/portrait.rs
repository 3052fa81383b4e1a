//! `/portrait set|show|reset`.

use poise::serenity_prelude as serenity;

use super::{autocomplete_own_character, find_character, show_card};
use crate::bot::upload::{self, AttachmentLink};
use crate::bot::{embeds, BotError, Context};
use crate::moderation::history::Actor;
use crate::portrait::PortraitSource;

/// Change, show or reset a character's portrait.
#[poise::command(
    slash_command,
    guild_only,
    subcommands("set", "show", "reset"),
    subcommand_required
)]
pub async fn portrait(_ctx: Context<'_>) -> Result<(), BotError> {
    Ok(())
}

/// Give one of your characters a new portrait (attach it, or leave it out to get a form).
#[poise::command(slash_command, guild_only)]
async fn set(
    ctx: Context<'_>,
    #[description = "Which of your characters"]
    #[autocomplete = "autocomplete_own_character"]
    character: String,
    #[description = "The new portrait: PNG, JPEG, GIF or WebP (leave out to get an upload form)"]
    image: Option<serenity::Attachment>,
) -> Result<(), BotError> {
    let Some(image) = image else {
        // The form must be the first response: no defer before it.
        let character = find_character(ctx, ctx.author().id.get(), &character).await?;
        return crate::bot::forms::open_portrait(ctx, &character).await;
    };
    ctx.defer_ephemeral().await?;
    let character = find_character(ctx, ctx.author().id.get(), &character).await?;
    let link = AttachmentLink {
        url: image.url.clone(),
        size: u64::from(image.size),
    };
    let reply = upload::set_portrait(ctx, &character, link, PortraitSource::SlashCommand).await?;
    ctx.send(reply).await?;
    Ok(())
}

/// Show a character's portrait to the channel.
#[poise::command(slash_command, guild_only)]
async fn show(
    ctx: Context<'_>,
    #[description = "The character's name"]
    #[autocomplete = "autocomplete_own_character"]
    character: String,
    #[description = "Whose character (yours if left out)"] player: Option<serenity::User>,
) -> Result<(), BotError> {
    show_card(ctx, &character, player.as_ref()).await
}

/// Put one of your characters back on the default portrait.
#[poise::command(slash_command, guild_only)]
async fn reset(
    ctx: Context<'_>,
    #[description = "Which of your characters"]
    #[autocomplete = "autocomplete_own_character"]
    character: String,
) -> Result<(), BotError> {
    ctx.defer_ephemeral().await?;
    let character = find_character(ctx, ctx.author().id.get(), &character).await?;
    let character = ctx
        .data()
        .app
        .portraits
        .reset_portrait(character.id, Actor::Player(ctx.author().id.get()))
        .await?
        .ok_or_else(|| BotError::player("That character was just deleted."))?;
    let reply = embeds::card(ctx, &character)
        .await
        .content(format!(
            "**{}** is back on the default portrait.",
            character.name
        ))
        .ephemeral(true);
    ctx.send(reply).await?;
    Ok(())
}
