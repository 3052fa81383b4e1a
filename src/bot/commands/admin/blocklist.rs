//! `/admin blocklist list|remove`: the images this server's moderators removed or rejected,
//! refused at upload, and a way to let one back in.

use poise::CreateReply;

use crate::bot::commands::guild_id;
use crate::bot::{BotError, Context};
use crate::db::BlockedImage;

/// The most entries one listing shows; the rest are counted.
const LISTED: usize = 20;
/// Reasons are cut to this many characters in the listing.
const REASON_CHARS: usize = 80;
/// A message holds 2000 characters; the rest is room for the count of entries left out.
const MESSAGE_BUDGET: usize = 1950;

/// Images refused at upload in this server because moderators removed or rejected them.
#[poise::command(
    slash_command,
    guild_only,
    subcommands("list", "remove"),
    subcommand_required
)]
pub async fn blocklist(_ctx: Context<'_>) -> Result<(), BotError> {
    Ok(())
}

/// The newest entries of this server's block-list.
#[poise::command(slash_command, guild_only)]
async fn list(ctx: Context<'_>) -> Result<(), BotError> {
    let entries = ctx.data().app.db.blocked_images(guild_id(ctx)?).await?;
    ctx.send(
        CreateReply::default()
            .content(describe(&entries))
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

/// Let a blocked image be uploaded again in this server.
#[poise::command(slash_command, guild_only)]
async fn remove(
    ctx: Context<'_>,
    #[description = "The entry's number, from /admin blocklist list"] entry: i64,
) -> Result<(), BotError> {
    if !ctx
        .data()
        .app
        .db
        .remove_blocked_image(guild_id(ctx)?, entry)
        .await?
    {
        return Err(BotError::player(format!(
            "This server's block-list has no entry #{entry}. `/admin blocklist list` shows its \
             entries."
        )));
    }
    ctx.send(
        CreateReply::default()
            .content(format!(
                "Entry #{entry} is off the block-list: that image can be uploaded again here."
            ))
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

/// The listing: newest first, as many entries as fit in one message (at most [`LISTED`]),
/// and a count of the older ones.
fn describe(entries: &[BlockedImage]) -> String {
    if entries.is_empty() {
        return "This server's block-list is empty.".to_owned();
    }
    let mut text = format!(
        "**Block-list of this server** ({} entries, newest first)",
        entries.len()
    );
    let mut shown = 0;
    for entry in entries.iter().rev().take(LISTED) {
        let line = entry_line(entry);
        if text.chars().count() + 1 + line.chars().count() > MESSAGE_BUDGET {
            break;
        }
        text.push('\n');
        text.push_str(&line);
        shown += 1;
    }
    if entries.len() > shown {
        text.push_str(&format!("\n…and {} older entries.", entries.len() - shown));
    }
    text
}

/// "- #12 · Aria · 2026-11-30 · by <@1> · reason"
fn entry_line(entry: &BlockedImage) -> String {
    let mut line = format!(
        "- #{} · {} · {}",
        entry.id,
        entry
            .character_name
            .as_deref()
            .unwrap_or("unknown character"),
        entry.created_at.get(..10).unwrap_or(&entry.created_at)
    );
    if let Some(admin) = entry.blocked_by {
        line.push_str(&format!(" · by <@{admin}>"));
    }
    if let Some(reason) = entry.reason.as_deref().filter(|r| !r.is_empty()) {
        line.push_str(" · ");
        line.push_str(&shorten(reason, REASON_CHARS));
    }
    line
}

fn shorten(text: &str, chars: usize) -> String {
    let one_line = text.replace('\n', " ");
    match one_line.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, reason: &str) -> BlockedImage {
        BlockedImage {
            id,
            guild_id: 1,
            phash: "hash".into(),
            character_name: Some(format!("Hero {id}")),
            reason: Some(reason.into()),
            blocked_by: Some(42),
            created_at: "2026-11-30T14:02:03.000Z".into(),
        }
    }

    #[test]
    fn the_listing_shows_the_newest_entries_and_counts_the_rest() {
        let entries: Vec<_> = (1..=25).map(|id| entry(id, "offensive")).collect();
        let text = describe(&entries);
        assert!(text.starts_with("**Block-list of this server** (25 entries, newest first)\n- #25 · Hero 25 · 2026-11-30 · by <@42> · offensive\n"), "{text}");
        assert!(
            text.contains("- #6 ·") && !text.contains("- #5 ·"),
            "{text}"
        );
        assert!(text.ends_with("…and 5 older entries."), "{text}");
        // Long reasons mean fewer lines, still in one message, and the rest counted.
        let long = "x".repeat(500);
        let long_entries: Vec<_> = (1..=25).map(|id| entry(id, &long)).collect();
        let text = describe(&long_entries);
        assert!(text.chars().count() <= 2000, "{text}");
        let shown = text.lines().filter(|l| l.starts_with("- #")).count();
        assert!(shown >= 10, "{text}");
        assert!(
            text.ends_with(&format!("…and {} older entries.", 25 - shown)),
            "{text}"
        );
    }

    #[test]
    fn an_empty_block_list_says_so() {
        assert_eq!(describe(&[]), "This server's block-list is empty.");
    }
}
