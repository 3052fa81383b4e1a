//! `/register`: create a character, with a portrait from an attachment or a posted message.

use std::time::Duration;

use futures::StreamExt;
use poise::serenity_prelude as serenity;
use poise::CreateReply;

use super::{discord_id, guild_id};
use crate::bot::upload::{self, AttachmentLink};
use crate::bot::{embeds, BotError, Context};
use crate::character::NewCharacter;
use crate::db::{Character, DbError};
use crate::portrait::registration::{self, IfExists, RegistrationError};
use crate::portrait::PortraitSource;
use crate::units::human_duration;

/// Create a new character. Leave the name out to fill in a form with an upload field.
#[poise::command(slash_command, guild_only)]
pub async fn register(
    ctx: Context<'_>,
    #[description = "Your character's name (leave out to get a form)"]
    #[max_length = 64]
    name: Option<String>,
    #[description = "Class or role, e.g. Ranger"]
    #[max_length = 64]
    class: Option<String>,
    #[description = "A short biography"]
    #[max_length = 1000]
    bio: Option<String>,
    #[description = "Portrait image: PNG, JPEG, GIF or WebP"] portrait: Option<
        serenity::Attachment,
    >,
) -> Result<(), BotError> {
    let Some(name) = name else {
        // The form must be the first response: no defer before it.
        return crate::bot::forms::open_registration(ctx).await;
    };
    // Answer Discord within its 3 seconds, before any download.
    ctx.defer_ephemeral().await?;
    let data = ctx.data();
    let new = NewCharacter::parse(
        discord_id(guild_id(ctx)?)?,
        discord_id(ctx.author().id.get())?,
        &name,
        class.as_deref(),
        bio.as_deref(),
    )?;
    let max_per_player = data.character_cap(new.guild_id.get()).await?;

    if let Some(attachment) = portrait {
        let link = AttachmentLink {
            url: attachment.url.clone(),
            size: u64::from(attachment.size),
        };
        // A refused image registers nothing: the player fixes the file and runs /register
        // again, with no half-made character in the way.
        let registered = registration::register(
            &data.app.db,
            &new,
            max_per_player,
            IfExists::Refuse,
            async |character: &Character| {
                upload::set_portrait(ctx, character, link, PortraitSource::SlashCommand).await
            },
        )
        .await
        .map_err(|err| match err {
            RegistrationError::Character(err) => not_created(err),
            RegistrationError::Portrait(err) => err,
        })?;
        ctx.send(registered.portrait).await?;
        return Ok(());
    }

    let character = data
        .app
        .db
        .create_character(&new, max_per_player)
        .await
        .map_err(not_created)?;

    if !data.settings.registration_message_step {
        ctx.send(registered_reply(ctx, &character, None).await)
            .await?;
        return Ok(());
    }
    ask_for_image(ctx, character).await
}

/// Why the character was not created, as the player reads it.
pub(crate) fn not_created(err: DbError) -> BotError {
    match err {
        DbError::CharacterExists { name } => BotError::player(format!(
            "You already have a character named `{name}` here. \
             Use `/portrait set` to change its portrait."
        )),
        DbError::TooManyCharacters { existing, .. } => BotError::player(format!(
            "You already have {existing} characters here, the most allowed in this server. \
             Delete one with `/character delete` first."
        )),
        err => err.into(),
    }
}

/// Asks the player to post their image, and reads it from the first message of theirs that
/// has an attachment (or says `skip`), here or in a DM.
async fn ask_for_image(ctx: Context<'_>, character: Character) -> Result<(), BotError> {
    let timeout = ctx.data().settings.registration_timeout;
    // Listen before prompting, so an image posted the instant the prompt appears is not missed.
    let mut replies = image_replies(ctx, timeout);
    ctx.send(
        CreateReply::default()
            .content(format!(
                "**{}** is registered! Now post the portrait image in this channel (or in a DM \
                 to me) within {}, or reply `skip` to keep the default portrait.",
                character.name,
                human_duration(timeout)
            ))
            .ephemeral(true),
    )
    .await?;

    let Some(message) = replies.next().await else {
        let note = format!(
            "No image arrived within {}, so **{}** keeps the default portrait. \
             Use `/portrait set` any time.",
            human_duration(timeout),
            character.name
        );
        ctx.send(registered_reply(ctx, &character, Some(note)).await)
            .await?;
        return Ok(());
    };
    let Some(attachment) = message.attachments.first() else {
        ctx.send(
            registered_reply(
                ctx,
                &character,
                Some(format!(
                    "**{}** keeps the default portrait.",
                    character.name
                )),
            )
            .await,
        )
        .await?;
        return Ok(());
    };

    let link = AttachmentLink {
        url: attachment.url.clone(),
        size: u64::from(attachment.size),
    };
    match upload::set_portrait(ctx, &character, link, PortraitSource::RegistrationMessage).await {
        Ok(reply) => {
            ctx.send(reply).await?;
        }
        Err(BotError::Player(problem)) => {
            let note = format!(
                "{problem}\n**{}** is registered with the default portrait; \
                 use `/portrait set` to try another image.",
                character.name
            );
            ctx.send(registered_reply(ctx, &character, Some(note)).await)
                .await?;
        }
        Err(err) => return Err(err),
    }
    Ok(())
}

/// The caller's messages in this channel (or a DM) that carry an attachment or say `skip`,
/// until the timeout; other users' messages and chatter are ignored.
fn image_replies(
    ctx: Context<'_>,
    timeout: Duration,
) -> impl futures::Stream<Item = serenity::Message> + Unpin {
    let channel = ctx.channel_id();
    serenity::MessageCollector::new(ctx.serenity_context())
        .author_id(ctx.author().id)
        .timeout(timeout)
        .filter(move |message| {
            (message.channel_id == channel || message.guild_id.is_none())
                && (!message.attachments.is_empty()
                    || message.content.trim().eq_ignore_ascii_case("skip"))
        })
        .stream()
}

async fn registered_reply(
    ctx: Context<'_>,
    character: &Character,
    note: Option<String>,
) -> CreateReply {
    embeds::card(ctx, character)
        .await
        .content(note.unwrap_or_else(|| {
            format!(
                "**{}** is registered with the default portrait. Use `/portrait set` to add one.",
                character.name
            )
        }))
        .ephemeral(true)
}
