//! `/privacy export|delete-my-data`: a player's own data in one server.
//!
//! `delete-my-data` asks first, saying exactly what goes. Everything its buttons need is in
//! their `custom_id` (`privacy:delete:<server>:<player>:<asked at, unix seconds>:<y|n>`), so a
//! confirmation still works after the bot restarts and the bot keeps no state for it. Only the
//! player it was shown to may answer, and only within [`CONFIRM_WINDOW`]: an old confirmation
//! found in a scrolled-up message must not delete characters made since.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use poise::serenity_prelude as serenity;
use poise::CreateReply;

use super::guild_id;
use crate::bot::{BotError, Context, Data};
use crate::moderation::privacy::{PurgePlan, PurgeReport};
use crate::units::human_duration;

const PREFIX: &str = "privacy:delete:";

/// How long a delete-my-data confirmation can be answered.
const CONFIRM_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Discord refuses message content above 2000 characters; long name lists are cut before.
const NAMES_BUDGET: usize = 1200;

/// Your data in this server: get a copy of it, or delete it.
#[poise::command(
    slash_command,
    guild_only,
    subcommands("export", "delete_my_data"),
    subcommand_required
)]
pub async fn privacy(_ctx: Context<'_>) -> Result<(), BotError> {
    Ok(())
}

/// Get a file (JSON, only you see it) of your characters and their portrait links here.
#[poise::command(slash_command, guild_only)]
async fn export(ctx: Context<'_>) -> Result<(), BotError> {
    ctx.defer_ephemeral().await?;
    let guild = guild_id(ctx)?;
    let export = ctx
        .data()
        .app
        .moderation()
        .export(guild, ctx.author().id.get())
        .await?;
    let count = export.characters.len();
    let file = serenity::CreateAttachment::bytes(
        export.to_json(),
        format!("portrait-bot-export-{guild}.json"),
    );
    ctx.send(
        CreateReply::default()
            .content(format!(
                "Your data in this server: {} (attached). `/privacy delete-my-data` deletes it.",
                characters(count)
            ))
            .attachment(file)
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

/// Delete all your characters and their portraits in this server. Asks you to confirm first.
#[poise::command(slash_command, guild_only, rename = "delete-my-data")]
async fn delete_my_data(ctx: Context<'_>) -> Result<(), BotError> {
    ctx.defer_ephemeral().await?;
    let guild = guild_id(ctx)?;
    let player = ctx.author().id.get();
    let plan = ctx
        .data()
        .app
        .moderation()
        .plan_purge(guild, Some(player))
        .await?;
    if plan.characters.is_empty() {
        return Err(BotError::player(
            "You have no characters in this server, so there is nothing to delete.",
        ));
    }
    let asked = Confirmation {
        guild,
        player,
        asked_at: now_secs(),
    };
    let buttons = serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new(asked.custom_id(Choice::Delete))
            .label("Delete my data")
            .style(serenity::ButtonStyle::Danger),
        serenity::CreateButton::new(asked.custom_id(Choice::Keep))
            .label("Cancel")
            .style(serenity::ButtonStyle::Secondary),
    ]);
    ctx.send(
        CreateReply::default()
            .content(describe_plan(&plan))
            .components(vec![buttons])
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

/// A delete-my-data confirmation as its buttons remember it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Confirmation {
    guild: u64,
    player: u64,
    /// Unix seconds when the player asked.
    asked_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    Delete,
    Keep,
}

impl Confirmation {
    fn custom_id(&self, choice: Choice) -> String {
        let choice = match choice {
            Choice::Delete => 'y',
            Choice::Keep => 'n',
        };
        format!(
            "{PREFIX}{}:{}:{}:{choice}",
            self.guild, self.player, self.asked_at
        )
    }

    fn parse(custom_id: &str) -> Option<(Confirmation, Choice)> {
        let mut parts = custom_id.strip_prefix(PREFIX)?.split(':');
        let guild = parts.next()?.parse().ok()?;
        let player = parts.next()?.parse().ok()?;
        let asked_at = parts.next()?.parse().ok()?;
        let choice = match parts.next()? {
            "y" => Choice::Delete,
            "n" => Choice::Keep,
            _ => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some((
            Confirmation {
                guild,
                player,
                asked_at,
            },
            choice,
        ))
    }
}

/// Whether a press belongs to a delete-my-data confirmation.
pub(crate) fn is_privacy_press(custom_id: &str) -> bool {
    custom_id.starts_with(PREFIX)
}

/// Answers a press on a delete-my-data button: someone else is refused privately, an expired
/// confirmation says so, Cancel leaves everything, and Delete acknowledges at once (Discord
/// allows 3 s; deleting many portraits may take longer), deletes, then edits the message to
/// list what was deleted.
pub(crate) async fn press(
    ctx: &serenity::Context,
    data: &Data,
    interaction: &serenity::ComponentInteraction,
) -> Result<(), BotError> {
    let Some((asked, choice)) = Confirmation::parse(&interaction.data.custom_id) else {
        return refuse(
            ctx,
            interaction,
            "This button is from an older version of the bot. Run `/privacy delete-my-data` again.",
        )
        .await;
    };
    let in_its_server = interaction.guild_id.map(|g| g.get()) == Some(asked.guild);
    if interaction.user.id.get() != asked.player || !in_its_server {
        return refuse(
            ctx,
            interaction,
            &format!(
                "Only <@{}> can answer this. `/privacy delete-my-data` deletes your own data.",
                asked.player
            ),
        )
        .await;
    }
    if now_secs().saturating_sub(asked.asked_at) > CONFIRM_WINDOW.as_secs() {
        return update(
            ctx,
            interaction,
            format!(
                "This confirmation expired after {}; nothing was deleted. Run \
                 `/privacy delete-my-data` again.",
                human_duration(CONFIRM_WINDOW)
            ),
        )
        .await;
    }
    if choice == Choice::Keep {
        return update(
            ctx,
            interaction,
            "Cancelled: nothing was deleted.".to_owned(),
        )
        .await;
    }
    interaction
        .create_response(ctx, serenity::CreateInteractionResponse::Acknowledge)
        .await?;
    let outcome = match data
        .app
        .moderation()
        .delete_my_data(asked.guild, asked.player)
        .await
    {
        Ok(report) => describe_report(&report),
        Err(err) => {
            let error_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
            tracing::error!(error_id, user = asked.player, guild = asked.guild, error = %err,
                "delete-my-data failed");
            format!(
                "Something went wrong on our side (error id `{error_id}`), so some of your \
                 data may be left. Please run `/privacy delete-my-data` again in a moment."
            )
        }
    };
    interaction
        .edit_response(
            ctx,
            serenity::EditInteractionResponse::new()
                .content(outcome)
                .components(Vec::new()),
        )
        .await?;
    Ok(())
}

/// What the confirmation says will go.
fn describe_plan(plan: &PurgePlan) -> String {
    let names: Vec<&str> = plan.characters.iter().map(|c| c.name.as_str()).collect();
    format!(
        "This deletes your {} in this server: {}. With them go their portraits ({} no other \
         character shows; a picture another character also shows is kept) and this server's \
         record of their portrait changes. This can't be undone. The buttons work for {}.",
        characters(names.len()),
        bold_list(&names),
        images(plan.objects.len()),
        human_duration(CONFIRM_WINDOW)
    )
}

/// What the confirmation says once done.
fn describe_report(report: &PurgeReport) -> String {
    if report.characters.is_empty() {
        return "Nothing was left to delete: you have no characters in this server.".to_owned();
    }
    let names: Vec<&str> = report.characters.iter().map(|c| c.name.as_str()).collect();
    format!(
        "Deleted your {}: {}, and {}.",
        characters(names.len()),
        bold_list(&names),
        images(report.objects.len())
    )
}

fn characters(count: usize) -> String {
    match count {
        1 => "1 character".to_owned(),
        n => format!("{n} characters"),
    }
}

fn images(count: usize) -> String {
    match count {
        1 => "1 stored image".to_owned(),
        n => format!("{n} stored images"),
    }
}

/// `**A**, **B**, **C**`, ending in "and N more" once the names outgrow a message.
fn bold_list(names: &[&str]) -> String {
    let mut shown = Vec::new();
    let mut length = 0;
    for name in names {
        length += name.len() + 6;
        if length > NAMES_BUDGET {
            break;
        }
        shown.push(format!("**{name}**"));
    }
    let rest = names.len() - shown.len();
    let mut list = shown.join(", ");
    if rest > 0 {
        list.push_str(&format!(" and {rest} more"));
    }
    list
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Replaces the confirmation's text and takes its buttons away.
async fn update(
    ctx: &serenity::Context,
    interaction: &serenity::ComponentInteraction,
    content: String,
) -> Result<(), BotError> {
    let message = serenity::CreateInteractionResponseMessage::new()
        .content(content)
        .components(Vec::new());
    interaction
        .create_response(
            ctx,
            serenity::CreateInteractionResponse::UpdateMessage(message),
        )
        .await?;
    Ok(())
}

async fn refuse(
    ctx: &serenity::Context,
    interaction: &serenity::ComponentInteraction,
    message: &str,
) -> Result<(), BotError> {
    let reply = serenity::CreateInteractionResponseMessage::new()
        .content(message)
        .ephemeral(true);
    interaction
        .create_response(ctx, serenity::CreateInteractionResponse::Message(reply))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirmation_survives_the_round_trip_through_its_buttons_ids() {
        let asked = Confirmation {
            guild: 1_200_000_000_000_000_001,
            player: 987_654_321_098_765_432,
            asked_at: 1_800_000_000,
        };
        for choice in [Choice::Delete, Choice::Keep] {
            let id = asked.custom_id(choice);
            assert!(id.len() <= 100, "{id} is longer than Discord allows");
            assert!(is_privacy_press(&id));
            assert_eq!(Confirmation::parse(&id), Some((asked, choice)));
        }
        for id in [
            "privacy:delete:1:2:3",
            "privacy:delete:1:2:3:x",
            "privacy:delete:a:2:3:y",
            "privacy:delete:1:2:3:y:4",
            "gallery:1:2:3:4:n",
        ] {
            assert_eq!(Confirmation::parse(id), None, "{id}");
        }
    }

    #[test]
    fn a_long_list_of_names_ends_in_how_many_more() {
        let names: Vec<String> = (0..100).map(|n| format!("{n:0>60}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let list = bold_list(&names);
        assert!(list.len() < 1400, "{}", list.len());
        assert!(list.ends_with(" more"), "{list}");
        assert_eq!(bold_list(&["Aria", "Brom"]), "**Aria**, **Brom**");
    }
}
