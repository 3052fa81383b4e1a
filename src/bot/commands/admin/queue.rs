//! `/admin queue`: the portraits waiting for a moderator in this server.

use poise::serenity_prelude as serenity;
use poise::CreateReply;

use super::require_admin;
use crate::bot::commands::guild_id;
use crate::bot::{BotError, Context};
use crate::db::QueuedPortrait;

/// Portraits waiting for approval in this server, oldest first, with links to their posts.
#[poise::command(
    slash_command,
    guild_only,
    default_member_permissions = "MANAGE_GUILD",
    check = "require_admin"
)]
pub async fn queue(ctx: Context<'_>) -> Result<(), BotError> {
    ctx.defer_ephemeral().await?;
    let guild = guild_id(ctx)?;
    let (listed, total) = ctx.data().moderation().queue(guild).await?;
    let reply = if total == 0 {
        CreateReply::default().content("No portraits are waiting for approval in this server.")
    } else {
        let mut title = format!(
            "{total} portrait{} waiting for approval",
            if total == 1 { "" } else { "s" }
        );
        if total > listed.len() as u64 {
            title.push_str(&format!(" (the oldest {} below)", listed.len()));
        }
        let lines: Vec<String> = listed.iter().map(|entry| line(guild, entry)).collect();
        CreateReply::default().embed(
            serenity::CreateEmbed::new()
                .title(title)
                .description(lines.join("\n")),
        )
    };
    ctx.send(reply.ephemeral(true)).await?;
    Ok(())
}

/// "**Aria** · <@player> · <t:…:R> · [open the post](link)".
fn line(guild: u64, entry: &QueuedPortrait) -> String {
    let when = chrono::DateTime::parse_from_rfc3339(&entry.pending.created_at)
        .map(|at| format!("<t:{}:R>", at.timestamp()))
        .unwrap_or_else(|_| entry.pending.created_at.clone());
    let post = match (entry.pending.mod_channel_id, entry.pending.mod_message_id) {
        (Some(channel), Some(message)) => format!(
            "[open the post]({})",
            serenity::MessageId::new(message).link(
                serenity::ChannelId::new(channel),
                Some(serenity::GuildId::new(guild))
            )
        ),
        _ => "not posted yet".to_owned(),
    };
    format!(
        "**{}** · <@{}> · {when} · {post}",
        entry.character_name, entry.owner_id
    )
}
