//! `/character list|show|delete`.

use std::time::Duration;

use futures::StreamExt;
use poise::serenity_prelude as serenity;
use poise::CreateReply;

use super::{autocomplete_own_character, find_character, guild_id, show_card};
use crate::bot::{BotError, Context};

/// How long the delete confirmation buttons stay active.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);

/// List, show, edit, browse or delete characters.
#[poise::command(
    slash_command,
    guild_only,
    subcommands("list", "show", "edit", "delete", "gallery"),
    subcommand_required
)]
pub async fn character(_ctx: Context<'_>) -> Result<(), BotError> {
    Ok(())
}

/// List a player's characters in this server (yours if no player is given).
#[poise::command(slash_command, guild_only)]
async fn list(
    ctx: Context<'_>,
    #[description = "Whose characters (yours if left out)"] player: Option<serenity::User>,
) -> Result<(), BotError> {
    let owner = player.as_ref().unwrap_or(ctx.author());
    let characters = ctx
        .data()
        .app
        .db
        .list_characters(guild_id(ctx)?, owner.id.get())
        .await?;
    let reply = if characters.is_empty() {
        CreateReply::default()
            .content(format!(
                "<@{}> has no characters here yet. `/register` creates one.",
                owner.id
            ))
            .ephemeral(true)
    } else {
        let lines: Vec<String> = characters
            .iter()
            .map(|c| match c.class.as_deref() {
                Some(class) => format!("• **{}** — {class}", c.name),
                None => format!("• **{}**", c.name),
            })
            .collect();
        CreateReply::default().embed(
            serenity::CreateEmbed::new()
                .title(format!("Characters of {}", owner.name))
                .description(lines.join("\n")),
        )
    };
    ctx.send(reply).await?;
    Ok(())
}

/// Show a character card to the channel.
#[poise::command(slash_command, guild_only)]
async fn show(
    ctx: Context<'_>,
    #[description = "The character's name"]
    #[autocomplete = "autocomplete_own_character"]
    name: String,
    #[description = "Whose character (yours if left out)"] player: Option<serenity::User>,
) -> Result<(), BotError> {
    show_card(ctx, &name, player.as_ref()).await
}

/// Rename one of your characters or change its class and bio, in a form.
#[poise::command(slash_command, guild_only)]
async fn edit(
    ctx: Context<'_>,
    #[description = "Which of your characters"]
    #[autocomplete = "autocomplete_own_character"]
    character: String,
) -> Result<(), BotError> {
    let character = find_character(ctx, ctx.author().id.get(), &character).await?;
    crate::bot::forms::open_edit(ctx, &character).await
}

/// Browse this server's characters (or one player's), one card a page.
#[poise::command(slash_command, guild_only)]
async fn gallery(
    ctx: Context<'_>,
    #[description = "Only this player's characters (everyone's if left out)"] player: Option<
        serenity::User,
    >,
) -> Result<(), BotError> {
    crate::bot::gallery::open(ctx, guild_id(ctx)?, player.as_ref()).await
}

/// Delete one of your characters and its portrait. Asks you to confirm first.
#[poise::command(slash_command, guild_only)]
async fn delete(
    ctx: Context<'_>,
    #[description = "Which of your characters"]
    #[autocomplete = "autocomplete_own_character"]
    name: String,
) -> Result<(), BotError> {
    let character = find_character(ctx, ctx.author().id.get(), &name).await?;
    let confirm_id = format!("{}-delete", ctx.id());
    let cancel_id = format!("{}-keep", ctx.id());
    // Listen before showing the buttons, so a quick click is not missed.
    let ids = (confirm_id.clone(), cancel_id.clone());
    let mut presses = serenity::ComponentInteractionCollector::new(ctx.serenity_context())
        .author_id(ctx.author().id)
        .channel_id(ctx.channel_id())
        .timeout(CONFIRM_TIMEOUT)
        .filter(move |press| press.data.custom_id == ids.0 || press.data.custom_id == ids.1)
        .stream();
    ctx.send(
        CreateReply::default()
            .content(format!(
                "Delete **{}** and its portrait? This can't be undone.",
                character.name
            ))
            .components(vec![serenity::CreateActionRow::Buttons(vec![
                serenity::CreateButton::new(&confirm_id)
                    .label("Delete")
                    .style(serenity::ButtonStyle::Danger),
                serenity::CreateButton::new(&cancel_id)
                    .label("Keep")
                    .style(serenity::ButtonStyle::Secondary),
            ])])
            .ephemeral(true),
    )
    .await?;

    let Some(press) = presses.next().await else {
        ctx.send(
            CreateReply::default()
                .content(format!("No answer, so **{}** was kept.", character.name))
                .ephemeral(true),
        )
        .await?;
        return Ok(());
    };

    let outcome = if press.data.custom_id == confirm_id {
        let data = ctx.data();
        if let Some(deleted) = data.app.portraits.delete_character(character.id).await? {
            if let Some(portrait) = deleted.portrait_id {
                data.app.portraits.release_portrait(portrait).await;
            }
        }
        format!("**{}** was deleted.", character.name)
    } else {
        format!("**{}** was kept.", character.name)
    };
    press
        .create_response(
            ctx,
            serenity::CreateInteractionResponse::UpdateMessage(
                serenity::CreateInteractionResponseMessage::new()
                    .content(outcome)
                    .components(Vec::new()),
            ),
        )
        .await?;
    Ok(())
}
