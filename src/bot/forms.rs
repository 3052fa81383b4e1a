//! Forms (Discord modals): registration, editing a character, and a portrait upload for
//! clients where attachment options are awkward.
//!
//! A form is Labels (component type 18) each wrapping a Text Input (type 4) or a File Upload
//! (type 19), sent as interaction response type 9 — always the first response to the
//! interaction. Its submit arrives as an interaction of type 5 whose `data.components` are the
//! Labels, each with its child's `custom_id` and `value` (text) or `values` (attachment ids,
//! described in `data.resolved.attachments`). The submit is deferred (type 5, ephemeral) and
//! answered with a follow-up, like the slash commands.
//!
//! serenity 0.12.5 knows neither Labels nor File Uploads. What was verified in its source:
//! a modal is sent fine as raw JSON (`Http::create_interaction_response` takes any
//! `Serialize`), but a submitted Label deserializes as an `ActionRow` of kind `Unknown(18)`
//! with no components, and `data.resolved` is dropped — the event parses without error, so
//! neither a `RawEventHandler` nor `Event::Unknown` ever sees the raw JSON. The project
//! therefore builds serenity from `vendor/serenity`, the published 0.12.5 plus two fields that
//! keep those parts as JSON (`ActionRow::component`, `ModalInteractionData::resolved`; see
//! `vendor/serenity/PATCHED.md`). This module is the only reader of those fields.
//!
//! Every value goes through the same rules as the slash commands: names, classes and bios
//! through [`crate::character`], files through the one portrait pipeline (a File Upload's
//! type filter is only a hint to Discord's picker; the magic-byte checks decide).

use poise::serenity_prelude as serenity;
use poise::CreateReply;
use serde::Deserialize;
use serde_json::{json, Value};

use super::commands::discord_id;
use super::upload::{self, AttachmentLink};
use super::{embeds, BotError, Data};
use crate::character::{
    CharacterBio, CharacterClass, CharacterName, NewCharacter, MAX_BIO_CHARS, MAX_CLASS_CHARS,
    MAX_NAME_CHARS,
};
use crate::db::{Character, DbError};
use crate::portrait::PortraitSource;

/// The registration form's `custom_id`.
const REGISTER: &str = "register";
/// `edit:<character id>`: the edit form of one character.
const EDIT: &str = "edit:";
/// `portrait:<character id>`: the portrait upload form of one character.
const PORTRAIT: &str = "portrait:";

const NAME: &str = "name";
const CLASS: &str = "class";
const BIO: &str = "bio";
const FILE: &str = "portrait";

/// Whether a submitted form is one of ours.
pub fn is_our_form(custom_id: &str) -> bool {
    custom_id == REGISTER || custom_id.starts_with(EDIT) || custom_id.starts_with(PORTRAIT)
}

/// A Label wrapping a Text Input.
pub(super) fn text_label(
    label: &str,
    custom_id: &str,
    paragraph: bool,
    max_length: usize,
    required: bool,
    value: Option<&str>,
) -> Value {
    let mut input = json!({
        "type": 4,
        "custom_id": custom_id,
        "style": if paragraph { 2 } else { 1 },
        "max_length": max_length,
        "required": required,
    });
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        input["value"] = json!(value);
    }
    json!({ "type": 18, "label": label, "component": input })
}

/// A Label wrapping a File Upload of one image.
fn file_label(required: bool) -> Value {
    json!({
        "type": 18,
        "label": "Portrait",
        "description": "PNG, JPEG, GIF or WebP",
        "component": {
            "type": 19,
            "custom_id": FILE,
            "min_values": if required { 1 } else { 0 },
            "max_values": 1,
            "required": required,
        },
    })
}

/// A modal: response type 9 with its Labels.
pub(super) fn modal(custom_id: &str, title: &str, components: Vec<Value>) -> Value {
    json!({
        "type": 9,
        "data": { "custom_id": custom_id, "title": title, "components": components },
    })
}

/// Opens a form as the first response to a slash command.
async fn open(ctx: super::Context<'_>, form: Value) -> Result<(), BotError> {
    let poise::Context::Application(app) = ctx else {
        return Err(BotError::player("Forms only open from slash commands."));
    };
    ctx.http()
        .create_interaction_response(
            app.interaction.id,
            &app.interaction.token,
            &form,
            Vec::new(),
        )
        .await?;
    // The modal was the initial response: anything poise sends later must be a follow-up.
    app.has_sent_initial_response
        .store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

/// `/register` without a name: the registration form.
pub async fn open_registration(ctx: super::Context<'_>) -> Result<(), BotError> {
    open(
        ctx,
        modal(
            REGISTER,
            "Register a character",
            vec![
                text_label("Name", NAME, false, MAX_NAME_CHARS, true, None),
                text_label("Class", CLASS, false, MAX_CLASS_CHARS, false, None),
                text_label("Bio", BIO, true, MAX_BIO_CHARS, false, None),
                file_label(false),
            ],
        ),
    )
    .await
}

/// `/character edit`: the form prefilled with the character's name, class and bio.
pub async fn open_edit(ctx: super::Context<'_>, character: &Character) -> Result<(), BotError> {
    open(
        ctx,
        modal(
            &format!("{EDIT}{}", character.id),
            "Edit character",
            vec![
                text_label(
                    "Name",
                    NAME,
                    false,
                    MAX_NAME_CHARS,
                    true,
                    Some(&character.name),
                ),
                text_label(
                    "Class",
                    CLASS,
                    false,
                    MAX_CLASS_CHARS,
                    false,
                    character.class.as_deref(),
                ),
                text_label(
                    "Bio",
                    BIO,
                    true,
                    MAX_BIO_CHARS,
                    false,
                    character.bio.as_deref(),
                ),
            ],
        ),
    )
    .await
}

/// `/portrait set` without an image: a form with only a File Upload.
pub async fn open_portrait(ctx: super::Context<'_>, character: &Character) -> Result<(), BotError> {
    open(
        ctx,
        modal(
            &format!("{PORTRAIT}{}", character.id),
            "New portrait",
            vec![file_label(true)],
        ),
    )
    .await
}

/// One submitted field: a Label's child.
#[derive(Debug, Deserialize)]
struct Field {
    custom_id: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    values: Vec<String>,
}

/// What a player typed and uploaded in a form.
#[derive(Debug, Default)]
pub(super) struct Submitted {
    fields: Vec<Field>,
    attachments: Vec<AttachmentLink>,
}

impl Submitted {
    pub(super) fn read(data: &serenity::ModalInteractionData) -> Submitted {
        let mut fields: Vec<Field> = data
            .components
            .iter()
            .filter_map(|row| row.component.clone())
            .filter_map(|child| serde_json::from_value(child).ok())
            .collect();
        // Text inputs in action rows (the older layout) are still read.
        for row in &data.components {
            for component in &row.components {
                if let serenity::ActionRowComponent::InputText(input) = component {
                    fields.push(Field {
                        custom_id: input.custom_id.clone(),
                        value: input.value.clone(),
                        values: Vec::new(),
                    });
                }
            }
        }
        let attachments = fields
            .iter()
            .filter(|f| f.custom_id == FILE)
            .flat_map(|f| f.values.iter())
            .filter_map(|id| {
                let attachment = data.resolved.as_ref()?.get("attachments")?.get(id)?;
                Some(AttachmentLink {
                    url: attachment.get("url")?.as_str()?.to_owned(),
                    size: attachment.get("size")?.as_u64()?,
                })
            })
            .collect();
        Submitted {
            fields,
            attachments,
        }
    }

    pub(super) fn text(&self, custom_id: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.custom_id == custom_id)
            .and_then(|f| f.value.as_deref())
    }
}

/// Answers a submitted form: defers privately, then posts the outcome as a follow-up.
pub async fn submit(
    ctx: &serenity::Context,
    data: &Data,
    interaction: &serenity::ModalInteraction,
) -> Result<(), serenity::Error> {
    interaction.defer_ephemeral(ctx).await?;
    let form = Submitted::read(&interaction.data);
    let custom_id = interaction.data.custom_id.as_str();
    let outcome = if custom_id == REGISTER {
        register(&ctx.http, data, interaction, &form).await
    } else if let Some(id) = custom_id.strip_prefix(EDIT) {
        edit(data, interaction, id, &form).await
    } else if let Some(id) = custom_id.strip_prefix(PORTRAIT) {
        portrait(&ctx.http, data, interaction, id, &form).await
    } else {
        return Ok(());
    };
    let reply = match outcome {
        Ok(reply) => reply,
        Err(BotError::Player(message)) => CreateReply::default().content(message),
        Err(err) => CreateReply::default().content(super::error::unexpected(
            custom_id,
            interaction.user.id.get(),
            &err,
        )),
    };
    interaction
        .create_followup(
            ctx,
            reply
                .ephemeral(true)
                .to_slash_followup_response(serenity::CreateInteractionResponseFollowup::new()),
        )
        .await?;
    Ok(())
}

fn guild_of(interaction: &serenity::ModalInteraction) -> Result<u64, BotError> {
    interaction
        .guild_id
        .map(|g| g.get())
        .ok_or_else(|| BotError::player("Use this form in a server, not in DMs."))
}

/// The character a form was opened for, if it is still the submitter's.
async fn own_character(
    data: &Data,
    interaction: &serenity::ModalInteraction,
    id: &str,
) -> Result<Character, BotError> {
    let gone = || BotError::player("That character no longer exists.");
    let id: i64 = id.parse().map_err(|_| gone())?;
    let character = data.app.db.character_by_id(id).await?.ok_or_else(gone)?;
    if character.owner_id != interaction.user.id.get() {
        return Err(BotError::player("You can only change your own characters."));
    }
    Ok(character)
}

/// The registration form: creates the character, then runs the uploaded file (if any)
/// through the pipeline. A refused file leaves the character on the default portrait — the
/// player keeps what they typed and is told why and how to add a portrait.
async fn register(
    http: &serenity::Http,
    data: &Data,
    interaction: &serenity::ModalInteraction,
    form: &Submitted,
) -> Result<CreateReply, BotError> {
    let new = NewCharacter::parse(
        discord_id(guild_of(interaction)?)?,
        discord_id(interaction.user.id.get())?,
        form.text(NAME).unwrap_or_default(),
        form.text(CLASS),
        form.text(BIO),
    )?;
    let character = create_character(data, &new).await?;

    let Some(link) = form.attachments.first().cloned() else {
        return Ok(embeds::card_for(data, &character).await.content(format!(
            "**{}** is registered with the default portrait. Add one any time with \
             `/portrait set` (attach an image, or leave it out to get an upload form).",
            character.name
        )));
    };
    match upload::set_portrait_for(
        http,
        data,
        new.owner_id.get(),
        &character,
        link,
        PortraitSource::Form,
    )
    .await
    {
        Ok(reply) => Ok(reply),
        Err(BotError::Player(problem)) => {
            Ok(embeds::card_for(data, &character).await.content(format!(
                "{problem}\n**{}** is registered with the default portrait; use `/portrait set` \
                 to try another image.",
                character.name
            )))
        }
        Err(err) => Err(err),
    }
}

/// Creates a checked character within the per-player limit.
async fn create_character(data: &Data, new: &NewCharacter) -> Result<Character, BotError> {
    let max_per_player = data.character_cap(new.guild_id.get()).await?;
    data.app
        .db
        .create_character(new, max_per_player)
        .await
        .map_err(super::commands::not_created)
}

/// The edit form: new name, class and bio, checked like a registration.
async fn edit(
    data: &Data,
    interaction: &serenity::ModalInteraction,
    id: &str,
    form: &Submitted,
) -> Result<CreateReply, BotError> {
    let character = own_character(data, interaction, id).await?;
    let name = CharacterName::parse(form.text(NAME).unwrap_or_default())?;
    let class = form
        .text(CLASS)
        .map(CharacterClass::parse)
        .transpose()?
        .flatten();
    let bio = form
        .text(BIO)
        .map(CharacterBio::parse)
        .transpose()?
        .flatten();
    let updated = match data
        .app
        .db
        .update_character_text(character.id, &name, class.as_ref(), bio.as_ref())
        .await
    {
        Ok(Some(updated)) => updated,
        Ok(None) => return Err(BotError::player("That character no longer exists.")),
        Err(DbError::CharacterExists { name }) => {
            return Err(BotError::player(format!(
                "You already have a character named `{name}` here. Pick another name."
            )))
        }
        Err(err) => return Err(err.into()),
    };
    Ok(embeds::card_for(data, &updated)
        .await
        .content(format!("**{}** is updated.", updated.name)))
}

/// The portrait upload form.
async fn portrait(
    http: &serenity::Http,
    data: &Data,
    interaction: &serenity::ModalInteraction,
    id: &str,
    form: &Submitted,
) -> Result<CreateReply, BotError> {
    let character = own_character(data, interaction, id).await?;
    let Some(link) = form.attachments.first().cloned() else {
        return Err(BotError::player(
            "No image arrived with the form, so the portrait is unchanged.",
        ));
    };
    upload::set_portrait_for(
        http,
        data,
        interaction.user.id.get(),
        &character,
        link,
        PortraitSource::Form,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modal_data(value: Value) -> serenity::ModalInteractionData {
        serde_json::from_value(value).expect("modal submit data parses")
    }

    #[test]
    fn a_submitted_label_form_yields_its_text_and_its_uploaded_file() {
        let data = modal_data(json!({
            "custom_id": "register",
            "components": [
                { "type": 18, "id": 1, "component": { "type": 4, "id": 2, "custom_id": "name", "value": "Aria" } },
                { "type": 18, "id": 3, "component": { "type": 4, "id": 4, "custom_id": "bio", "value": "" } },
                { "type": 18, "id": 5, "component": { "type": 19, "id": 6, "custom_id": "portrait", "values": ["111"] } },
            ],
            "resolved": { "attachments": { "111": {
                "id": "111", "filename": "aria.png", "size": 1234,
                "url": "https://cdn.discordapp.com/attachments/1/111/aria.png",
                "proxy_url": "https://media.discordapp.net/attachments/1/111/aria.png",
                "content_type": "image/png",
            } } },
        }));
        let form = Submitted::read(&data);
        assert_eq!(form.text(NAME), Some("Aria"));
        assert_eq!(form.text(BIO), Some(""));
        assert_eq!(form.text(CLASS), None);
        assert_eq!(form.attachments.len(), 1);
        assert_eq!(
            form.attachments[0].url,
            "https://cdn.discordapp.com/attachments/1/111/aria.png"
        );
        assert_eq!(form.attachments[0].size, 1234);
    }

    #[test]
    fn a_form_submitted_without_a_file_has_no_attachment() {
        let data = modal_data(json!({
            "custom_id": "register",
            "components": [
                { "type": 18, "component": { "type": 4, "custom_id": "name", "value": "Aria" } },
                { "type": 18, "component": { "type": 19, "custom_id": "portrait", "values": [] } },
            ],
        }));
        assert!(Submitted::read(&data).attachments.is_empty());
    }

    #[test]
    fn the_registration_form_wraps_each_input_in_a_label() {
        let form = modal(
            REGISTER,
            "Register a character",
            vec![
                text_label("Name", NAME, false, MAX_NAME_CHARS, true, None),
                file_label(false),
            ],
        );
        assert_eq!(form["type"], 9);
        assert_eq!(form["data"]["custom_id"], "register");
        let components = form["data"]["components"].as_array().expect("components");
        assert!(components.iter().all(|c| c["type"] == 18));
        assert_eq!(components[0]["component"]["type"], 4);
        assert_eq!(components[1]["component"]["type"], 19);
        assert_eq!(components[1]["component"]["required"], false);
        assert_eq!(components[1]["component"]["max_values"], 1);
    }
}
