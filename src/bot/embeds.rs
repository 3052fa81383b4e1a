//! What characters look like in Discord.

use poise::serenity_prelude as serenity;
use poise::CreateReply;

use super::{Context, Data};
use crate::db::Character;

/// Discord's limit for an embed description.
const MAX_DESCRIPTION: usize = 4096;

/// A reply showing the character card. The portrait is linked, or attached when its URL is
/// one Discord's servers cannot fetch (the laptop defaults serve it from localhost).
pub async fn card(ctx: Context<'_>, character: &Character) -> CreateReply {
    card_for(ctx.data(), character).await
}

/// [`card`] outside a command (a button press or a form submit).
pub async fn card_for(data: &Data, character: &Character) -> CreateReply {
    let portraits = &data.app.portraits;
    match portraits.inline_image(character).await {
        Some(image) => CreateReply::default()
            .embed(character_embed(
                character,
                &format!("attachment://{}", image.filename),
            ))
            .attachment(serenity::CreateAttachment::bytes(
                image.bytes.to_vec(),
                image.filename,
            )),
        None => CreateReply::default()
            .embed(character_embed(character, &portraits.shown_url(character))),
    }
}

/// A character card: name, class, bio, owner, and the portrait as the embed image.
pub(super) fn character_embed(character: &Character, portrait_url: &str) -> serenity::CreateEmbed {
    let mut embed = serenity::CreateEmbed::new()
        .title(&character.name)
        .image(portrait_url)
        .colour(serenity::Colour::from_rgb(88, 101, 242))
        .field("Player", format!("<@{}>", character.owner_id), true);
    if let Some(class) = character.class.as_deref().filter(|c| !c.is_empty()) {
        embed = embed.field("Class", class, true);
    }
    if let Some(bio) = character.bio.as_deref().filter(|b| !b.is_empty()) {
        embed = embed.description(truncate(bio, MAX_DESCRIPTION));
    }
    embed
}

/// A visible warning that the upload did not land, and why.
pub fn fallback_warning(reason: &str, kept_existing: bool) -> String {
    let shown = if kept_existing {
        "The previous portrait is still shown."
    } else {
        "The default portrait is shown for now."
    };
    format!("⚠️ The portrait could not be saved: {reason} {shown} Try `/portrait set` again later.")
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max_chars - 1).collect();
        cut.push('…');
        cut
    }
}
