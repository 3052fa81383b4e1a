//! Slash commands, one file per group. Doc comments here are what players see in Discord.

mod admin;
mod character;
mod portrait;
pub(crate) mod privacy;
mod register;

pub(crate) use register::not_created;

use super::{BotError, Context, Data};
use crate::character::DiscordId;
use crate::db::Character;

pub fn all() -> Vec<poise::Command<Data, BotError>> {
    vec![
        register::register(),
        portrait::portrait(),
        character::character(),
        admin::admin(),
        privacy::privacy(),
    ]
}

fn guild_id(ctx: Context<'_>) -> Result<u64, BotError> {
    ctx.guild_id()
        .map(|id| id.get())
        .ok_or_else(|| BotError::player("Use this command in a server, not in DMs."))
}

/// A character of `owner` in this server, or a reply telling the player what exists.
async fn find_character(ctx: Context<'_>, owner: u64, name: &str) -> Result<Character, BotError> {
    let guild = guild_id(ctx)?;
    match ctx.data().app.db.find_character(guild, owner, name).await? {
        Some(character) => Ok(character),
        None if owner == ctx.author().id.get() => Err(BotError::player(format!(
            "You have no character named `{}` here. `/character list` shows yours.",
            name.trim()
        ))),
        None => Err(BotError::player(format!(
            "<@{owner}> has no character named `{}` here.",
            name.trim()
        ))),
    }
}

/// Shows a player's character card (the caller's when no player is given) to the channel;
/// `/portrait show` and `/character show` are two doors to the same card.
async fn show_card(
    ctx: Context<'_>,
    name: &str,
    player: Option<&poise::serenity_prelude::User>,
) -> Result<(), BotError> {
    let owner = player.unwrap_or(ctx.author()).id.get();
    let character = find_character(ctx, owner, name).await?;
    ctx.send(super::embeds::card(ctx, &character).await).await?;
    Ok(())
}

/// Suggests the caller's own characters whose names contain what they typed.
async fn autocomplete_own_character(ctx: Context<'_>, partial: &str) -> Vec<String> {
    character_names(ctx, ctx.author().id.get(), partial).await
}

/// Up to 25 names of `owner`'s characters in this server containing `partial`, for
/// autocomplete (nothing on a failure, which is logged).
async fn character_names(ctx: Context<'_>, owner: u64, partial: &str) -> Vec<String> {
    let Some(guild) = ctx.guild_id() else {
        return Vec::new();
    };
    let partial = partial.trim().to_lowercase();
    match ctx.data().app.db.list_characters(guild.get(), owner).await {
        Ok(characters) => characters
            .into_iter()
            .map(|c| c.name)
            .filter(|name| name.to_lowercase().contains(&partial))
            .take(25)
            .collect(),
        Err(err) => {
            tracing::warn!(error = %err, "autocomplete could not list characters");
            Vec::new()
        }
    }
}

/// A Discord id as the domain holds it; Discord's own ids always fit.
pub(crate) fn discord_id(id: u64) -> Result<DiscordId, BotError> {
    DiscordId::new(id).ok_or_else(|| BotError::player("Discord sent an id this bot cannot store."))
}

#[cfg(test)]
mod tests;
