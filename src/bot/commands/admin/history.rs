//! `/admin history`: the last changes of a character's portrait, for a moderator deciding what
//! to do about it.

use poise::serenity_prelude as serenity;
use poise::CreateReply;

use super::autocomplete_players_character;
use crate::bot::commands::guild_id;
use crate::bot::{BotError, Context};
use crate::moderation::history::{
    describe as describe_change, of_named_character, NamedHistory, DEFAULT_HISTORY_LIMIT,
};

/// The last changes of a character's portrait: when, who, what and why.
#[poise::command(slash_command, guild_only)]
pub async fn history(
    ctx: Context<'_>,
    #[description = "The player whose character it is"] player: serenity::User,
    #[description = "The character's name (also a deleted one)"]
    #[autocomplete = "autocomplete_players_character"]
    #[max_length = 64]
    character: String,
) -> Result<(), BotError> {
    ctx.defer_ephemeral().await?;
    let found = of_named_character(
        &ctx.data().app.db,
        guild_id(ctx)?,
        player.id.get(),
        &character,
        DEFAULT_HISTORY_LIMIT,
    )
    .await?;
    let Some(found) = found else {
        return Err(BotError::player(format!(
            "<@{}> has no character named `{}` here, and none with a recorded history.",
            player.id,
            character.trim()
        )));
    };
    ctx.send(
        CreateReply::default()
            .content(describe(&found, player.id.get()))
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

/// The history as `/admin history` shows it: a heading, then one line per change.
fn describe(found: &NamedHistory, player: u64) -> String {
    let deleted = if found.deleted { " (deleted)" } else { "" };
    let heading = format!("**{}**{deleted} of <@{player}>", found.name);
    if found.rows.is_empty() {
        return format!("{heading}: no portrait changes recorded yet.");
    }
    let lines: Vec<String> = found
        .rows
        .iter()
        .map(|row| format!("- {}", describe_change(row)))
        .collect();
    format!(
        "{heading}, last {} changes, newest first:\n{}",
        found.rows.len(),
        lines.join("\n")
    )
}
