//! `/admin portrait remove` and `/admin character delete`: a moderator takes down what a
//! player showed. The admin is answered privately with what happened, the player is told why
//! by DM (best effort), and the server's mod channel gets a record.

use poise::serenity_prelude as serenity;
use poise::CreateReply;

use super::autocomplete_players_character;
use crate::bot::commands::{find_character, guild_id};
use crate::bot::notify::{self, Delivery};
use crate::bot::{BotError, Context};
use crate::moderation::history::Actor;
use crate::moderation::{check_reason, ModerationError, Removal};

/// Take down a player's portrait.
#[poise::command(slash_command, guild_only, subcommands("remove"), subcommand_required)]
pub async fn portrait(_ctx: Context<'_>) -> Result<(), BotError> {
    Ok(())
}

/// Take down a player's character.
#[poise::command(slash_command, guild_only, subcommands("delete"), subcommand_required)]
pub async fn character(_ctx: Context<'_>) -> Result<(), BotError> {
    Ok(())
}

/// Put a character back on the default portrait and block its image in this server.
#[poise::command(slash_command, guild_only)]
async fn remove(
    ctx: Context<'_>,
    #[description = "The player whose character it is"] player: serenity::User,
    #[description = "The character's name"]
    #[autocomplete = "autocomplete_players_character"]
    #[max_length = 64]
    character: String,
    #[description = "Why: the player is told this"]
    #[max_length = 500]
    reason: String,
) -> Result<(), BotError> {
    take_down(ctx, &player, &character, &reason, TakeDown::RemovePortrait).await
}

/// Delete a player's character and block its portrait's image in this server.
#[poise::command(slash_command, guild_only)]
async fn delete(
    ctx: Context<'_>,
    #[description = "The player whose character it is"] player: serenity::User,
    #[description = "The character's name"]
    #[autocomplete = "autocomplete_players_character"]
    #[max_length = 64]
    character: String,
    #[description = "Why: the player is told this"]
    #[max_length = 500]
    reason: String,
) -> Result<(), BotError> {
    take_down(ctx, &player, &character, &reason, TakeDown::DeleteCharacter).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TakeDown {
    RemovePortrait,
    DeleteCharacter,
}

impl TakeDown {
    fn title(self) -> &'static str {
        match self {
            TakeDown::RemovePortrait => "Portrait removed",
            TakeDown::DeleteCharacter => "Character deleted",
        }
    }

    /// What was done, completed by the character's name.
    fn done_to(self, name: &str) -> String {
        match self {
            TakeDown::RemovePortrait => format!("removed the portrait of **{name}**"),
            TakeDown::DeleteCharacter => format!("deleted the character **{name}**"),
        }
    }
}

/// What became of the mod channel record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    Posted(u64),
    NoChannel,
    Failed(u64),
}

async fn take_down(
    ctx: Context<'_>,
    player: &serenity::User,
    name: &str,
    reason: &str,
    action: TakeDown,
) -> Result<(), BotError> {
    // Reading and hashing the image, deleting it and two messages take longer than Discord's
    // 3 seconds.
    ctx.defer_ephemeral().await?;
    let reason = check_reason(reason).map_err(|err| BotError::player(err.to_string()))?;
    let data = ctx.data();
    let guild = guild_id(ctx)?;
    let character = find_character(ctx, player.id.get(), name).await?;
    let admin = Actor::Admin(ctx.author().id.get());
    let moderation = data.moderation();
    let removal = match action {
        TakeDown::RemovePortrait => {
            moderation
                .remove_portrait(character.id, admin, reason)
                .await
        }
        TakeDown::DeleteCharacter => {
            moderation
                .delete_character(character.id, admin, reason)
                .await
        }
    }
    .map_err(refused)?;

    let server = ctx
        .guild()
        .map(|guild| guild.name.clone())
        .unwrap_or_else(|| "a server".to_owned());
    let notice = serenity::CreateMessage::new().content(player_notice(
        &server,
        action,
        &removal.character.name,
        reason,
    ));
    let delivery = notify::direct_message(ctx.http(), player.id.get(), notice).await;

    let mod_channel = data.server_settings(guild).await?.mod_channel;
    let record = match mod_channel {
        None => Record::NoChannel,
        Some(channel) => {
            let embed = record_embed(action, ctx.author().id.get(), &removal, reason);
            let message = serenity::CreateMessage::new().embed(embed);
            match notify::mod_channel_record(ctx.http(), Some(channel), message).await {
                Some(_) => Record::Posted(channel),
                None => Record::Failed(channel),
            }
        }
    };
    ctx.send(
        CreateReply::default()
            .content(outcome(action, &removal, delivery, record))
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

/// A take-down that did not happen, as the admin reads it.
fn refused(err: ModerationError) -> BotError {
    match err {
        ModerationError::Database(err) => err.into(),
        ModerationError::Reason(err) => BotError::player(err.to_string()),
        ModerationError::CharacterNotFound => {
            BotError::player("That character no longer exists. Nothing was changed.")
        }
        ModerationError::NoPortrait { name } => BotError::player(format!(
            "**{name}** already shows the default portrait: there is nothing to remove."
        )),
    }
}

/// The DM the player gets: which character, what was done, and why.
fn player_notice(server: &str, action: TakeDown, name: &str, reason: &str) -> String {
    let done = match action {
        TakeDown::RemovePortrait => format!(
            "The moderators of **{server}** removed the portrait of your character **{name}**. \
             It shows the default portrait now, and that image cannot be uploaded there again."
        ),
        TakeDown::DeleteCharacter => format!(
            "The moderators of **{server}** deleted your character **{name}**, and its portrait \
             cannot be uploaded there again."
        ),
    };
    format!("{done}\nReason: {reason}")
}

/// The mod channel's record: who did what to whose character, and why.
fn record_embed(
    action: TakeDown,
    admin: u64,
    removal: &Removal,
    reason: &str,
) -> serenity::CreateEmbed {
    let character = &removal.character;
    let mut embed = serenity::CreateEmbed::new()
        .title(action.title())
        .colour(serenity::Colour::from_rgb(237, 66, 69))
        .field("Moderator", format!("<@{admin}>"), true)
        .field("Player", format!("<@{}>", character.owner_id), true)
        .field("Character", &character.name, true)
        .field("Reason", reason, false)
        .timestamp(serenity::Timestamp::now());
    if let Some(entry) = &removal.blocked {
        embed = embed.footer(serenity::CreateEmbedFooter::new(format!(
            "Block-list entry #{}",
            entry.id
        )));
    }
    embed
}

/// The admin's private answer: what was done, what became of the image, whether the player
/// was told and whether the mod channel got its record.
fn outcome(action: TakeDown, removal: &Removal, delivery: Delivery, record: Record) -> String {
    let character = &removal.character;
    let mut lines = vec![format!(
        "Done: {} (<@{}>).",
        action.done_to(&character.name),
        character.owner_id
    )];
    if removal.removed_url.is_some() {
        lines.push(match &removal.blocked {
            Some(entry) => format!(
                "The image is on this server's block-list (entry #{}): uploads of the same \
                 picture are refused.",
                entry.id
            ),
            None => "The image could not be read, so it is not on the block-list.".to_owned(),
        });
        lines.push(
            if removal.object_deleted {
                "The stored image was deleted."
            } else {
                "The stored image is kept: another character still shows it."
            }
            .to_owned(),
        );
    }
    lines.push(delivery.note().to_owned());
    lines.push(match record {
        Record::Posted(channel) => format!("Recorded in <#{channel}>."),
        Record::NoChannel => {
            "No mod channel is set, so no record was posted (`/admin settings set mod_channel`)."
                .to_owned()
        }
        Record::Failed(channel) => {
            format!("The record could not be posted in <#{channel}> (see the logs).")
        }
    });
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{BlockedImage, Character};

    fn removal(blocked: bool, object_deleted: bool) -> Removal {
        Removal {
            character: Character {
                id: 1,
                guild_id: 10,
                owner_id: 20,
                name: "Aria".into(),
                class: None,
                bio: None,
                portrait_url: Some("https://cdn.example/a.png".into()),
                portrait_id: Some(5),
                created_at: String::new(),
                updated_at: String::new(),
            },
            removed_url: Some("https://cdn.example/a.png".into()),
            blocked: blocked.then(|| BlockedImage {
                id: 7,
                guild_id: 10,
                phash: "hash".into(),
                character_name: Some("Aria".into()),
                reason: Some("offensive".into()),
                blocked_by: Some(30),
                created_at: String::new(),
            }),
            object_deleted,
        }
    }

    #[test]
    fn the_admin_learns_what_became_of_the_image_the_player_and_the_record() {
        let text = outcome(
            TakeDown::RemovePortrait,
            &removal(true, false),
            Delivery::Closed,
            Record::Posted(99),
        );
        assert_eq!(
            text,
            "Done: removed the portrait of **Aria** (<@20>).\n\
             The image is on this server's block-list (entry #7): uploads of the same picture \
             are refused.\n\
             The stored image is kept: another character still shows it.\n\
             The player does not accept DMs, so they were not told.\n\
             Recorded in <#99>."
        );
    }

    #[test]
    fn a_character_without_portrait_says_nothing_about_an_image() {
        let mut gone = removal(false, false);
        gone.removed_url = None;
        let text = outcome(
            TakeDown::DeleteCharacter,
            &gone,
            Delivery::Sent,
            Record::NoChannel,
        );
        assert!(!text.contains("image"), "{text}");
        assert!(text.starts_with("Done: deleted the character **Aria**"));
        assert!(text.contains("No mod channel is set"));
    }

    #[test]
    fn the_player_is_told_the_character_the_action_and_the_reason() {
        let text = player_notice("Tavern", TakeDown::RemovePortrait, "Aria", "offensive");
        assert!(text.contains("**Tavern**") && text.contains("**Aria**"));
        assert!(text.contains("removed the portrait"));
        assert!(text.ends_with("Reason: offensive"));
    }

    /// poise's `#[max_length]` takes a literal only: keep the reason options at the domain's limit.
    #[test]
    fn reason_options_are_limited_to_what_the_service_accepts() {
        for command in [remove(), delete()] {
            let registered = command.create_as_slash_command().expect("a slash command");
            let json = serde_json::to_value(&registered).expect("serialisable");
            let reason = json["options"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|option| option["name"] == "reason")
                .expect("a reason option");
            assert_eq!(
                reason["max_length"],
                crate::moderation::MAX_REASON_CHARS as u64
            );
        }
    }
}
