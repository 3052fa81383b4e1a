//! The approval queue in Discord, for servers with `approval_required` and a mod channel.
//!
//! An upload waiting for approval is posted to the mod channel with **Approve** and **Reject**
//! buttons whose `custom_id`s carry the queue entry's id (`approval:approve:<id>`,
//! `approval:reject:<id>`); Reject opens a form (`approval:reason:<id>`) asking for the reason.
//! Everything else lives in the database, so the buttons keep working after a restart.
//!
//! Only admins ([`access::is_admin`]) decide — checked here on every press and every submit,
//! whatever Discord shows. Every press is answered within Discord's 3 s: Approve defers the
//! update (type 6) before doing anything; Reject's form must be the first response, so it
//! opens after one indexed read.

use poise::serenity_prelude as serenity;
use poise::CreateReply;
use serde_json::json;

use super::forms::{self, Submitted};
use super::notify;
use super::{access, embeds, gallery, BotError, Data};
use crate::db::{Character, PendingPortrait};
use crate::moderation::approval::ApprovalError;
use crate::moderation::ModerationService;
use crate::moderation::MAX_REASON_CHARS;
use crate::portrait::PendingUpload;

const APPROVE: &str = "approval:approve:";
const REJECT: &str = "approval:reject:";
const REASON_FORM: &str = "approval:reason:";
/// The reason's Text Input in the rejection form.
const REASON: &str = "reason";

/// Whether a press is on an Approve or Reject button.
pub fn is_approval_press(custom_id: &str) -> bool {
    custom_id.starts_with(APPROVE) || custom_id.starts_with(REJECT)
}

/// Whether a submitted form is a rejection reason.
pub fn is_reason_form(custom_id: &str) -> bool {
    custom_id.starts_with(REASON_FORM)
}

/// The queue entry id after `prefix`, if `custom_id` is exactly that.
fn entry_id(custom_id: &str, prefix: &str) -> Option<i64> {
    custom_id.strip_prefix(prefix)?.parse().ok()
}

/// The mod channel a server's uploads wait in, when it requires approval.
pub async fn approval_channel(data: &Data, guild_id: u64) -> Result<Option<u64>, BotError> {
    let settings = data.server_settings(guild_id).await?;
    Ok(settings.mod_channel.filter(|_| settings.approval_required))
}

/// Asks the moderators about an upload stored as waiting for approval: posts it to the mod
/// channel with the buttons, and builds the uploader's private reply — their character's card
/// as it still is, and that a moderator will review the new portrait. The post about the
/// upload it replaced, if any, says so and loses its buttons.
pub async fn ask_moderators(
    http: &serenity::Http,
    data: &Data,
    mod_channel: u64,
    character: &Character,
    pending: PendingUpload,
) -> Result<CreateReply, BotError> {
    let service = data.moderation();
    if let Some(replaced) = &pending.replaced {
        retire(
            http,
            replaced,
            format!(
                "↪️ Replaced by a newer upload for **{}**; see the next message.",
                character.name
            ),
        )
        .await;
    }
    let message = approval_message(data, character, &pending).await;
    let Some(posted) = notify::mod_channel_record(http, Some(mod_channel), message).await else {
        service.withdraw(pending.pending.id).await?;
        return Err(BotError::player(format!(
            "Your new portrait could not be sent to this server's moderators for review (their \
             channel could not be reached), so it was not kept. **{}** still shows its current \
             portrait; please tell a server admin.",
            character.name
        )));
    };
    service
        .record_approval_message(pending.pending.id, mod_channel, posted.id.get())
        .await?;
    Ok(embeds::card_for(data, character).await.content(format!(
        "Thanks! A moderator will review the new portrait for **{}** before it is shown; until \
         then it keeps its current portrait. You will get a DM with the decision.",
        character.name
    )))
}

/// The mod channel's post: who uploaded what for which character, the image, and the buttons.
async fn approval_message(
    data: &Data,
    character: &Character,
    pending: &PendingUpload,
) -> serenity::CreateMessage {
    let id = pending.pending.id;
    let buttons = serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new(format!("{APPROVE}{id}"))
            .label("Approve")
            .style(serenity::ButtonStyle::Success),
        serenity::CreateButton::new(format!("{REJECT}{id}"))
            .label("Reject")
            .style(serenity::ButtonStyle::Danger),
    ]);
    let mut message = serenity::CreateMessage::new()
        .content(format!(
            "🕒 New portrait for **{}** from <@{}>, waiting for approval.",
            character.name, pending.pending.uploader_id
        ))
        // Naming the player must not ping them (or anyone) in the mod channel.
        .allowed_mentions(serenity::CreateAllowedMentions::new())
        .components(vec![buttons]);
    let image_url = match data.app.portraits.inline_portrait(&pending.record).await {
        Some(image) => {
            let url = format!("attachment://{}", image.filename);
            message = message.add_file(serenity::CreateAttachment::bytes(
                image.bytes.to_vec(),
                image.filename,
            ));
            url
        }
        None => pending.record.public_url.clone(),
    };
    message.embed(embeds::character_embed(character, &image_url))
}

/// Answers a press on Approve or Reject.
pub async fn press(
    ctx: &serenity::Context,
    data: &Data,
    interaction: &serenity::ComponentInteraction,
) -> Result<(), BotError> {
    let permissions = interaction.member.as_ref().and_then(|m| m.permissions);
    if !access::is_admin(&data.settings, interaction.user.id.get(), permissions) {
        return gallery::refuse(ctx, interaction, access::ADMINS_ONLY).await;
    }
    let custom_id = interaction.data.custom_id.as_str();
    if let Some(id) = entry_id(custom_id, APPROVE) {
        approve(ctx, data, interaction, id).await
    } else if let Some(id) = entry_id(custom_id, REJECT) {
        open_reason_form(ctx, data, interaction, id).await
    } else {
        gallery::refuse(
            ctx,
            interaction,
            "This button is from an older version of the bot; use `/admin queue`.",
        )
        .await
    }
}

/// Approve: defer (type 6), switch the character, edit the post, tell the player.
async fn approve(
    ctx: &serenity::Context,
    data: &Data,
    interaction: &serenity::ComponentInteraction,
    id: i64,
) -> Result<(), BotError> {
    interaction.defer(ctx).await?;
    let admin = interaction.user.id.get();
    let service = data.moderation();
    let decided = match waiting_here(&service, id, interaction.guild_id).await {
        Ok(()) => service.approve(id, admin).await,
        Err(err) => Err(err),
    };
    let approved = match decided {
        Ok(approved) => approved,
        Err(err) => return decision_failed(ctx, interaction, err).await,
    };
    let character = &approved.character;
    retire(
        &ctx.http,
        &approved.pending,
        format!(
            "✅ Approved by <@{admin}>: **{}** of <@{}> now shows this portrait.",
            character.name, character.owner_id
        ),
    )
    .await;
    let delivery = notify::direct_message(
        &ctx.http,
        character.owner_id,
        serenity::CreateMessage::new().content(format!(
            "Your new portrait for **{}** in {} was approved by the moderators and is now shown.",
            character.name,
            server_name(ctx, character.guild_id)
        )),
    )
    .await;
    follow_up(
        ctx,
        &interaction.token,
        &format!("Approved. {}", delivery.note()),
    )
    .await
}

/// Reject: the form asking for the reason, when the upload still waits.
async fn open_reason_form(
    ctx: &serenity::Context,
    data: &Data,
    interaction: &serenity::ComponentInteraction,
    id: i64,
) -> Result<(), BotError> {
    if let Err(err) = waiting_here(&data.moderation(), id, interaction.guild_id).await {
        if matches!(err, ApprovalError::NotPending) {
            strip_buttons(&ctx.http, interaction.channel_id, interaction.message.id).await;
        }
        return gallery::refuse(ctx, interaction, &decision_text(&err, interaction)).await;
    }
    let form = forms::modal(
        &format!("{REASON_FORM}{id}"),
        "Reject this portrait",
        vec![forms::text_label(
            "Reason (the player is told)",
            REASON,
            true,
            MAX_REASON_CHARS,
            true,
            None,
        )],
    );
    ctx.http
        .create_interaction_response(interaction.id, &interaction.token, &form, Vec::new())
        .await?;
    Ok(())
}

/// The rejection form's submit: check the admin again, reject, edit the post, tell the player.
pub async fn submit_reason(
    ctx: &serenity::Context,
    data: &Data,
    interaction: &serenity::ModalInteraction,
) -> Result<(), BotError> {
    let admin = interaction.user.id.get();
    let permissions = interaction.member.as_ref().and_then(|m| m.permissions);
    if !access::is_admin(&data.settings, admin, permissions) {
        let refusal = serenity::CreateInteractionResponseMessage::new()
            .content(access::ADMINS_ONLY)
            .ephemeral(true);
        interaction
            .create_response(ctx, serenity::CreateInteractionResponse::Message(refusal))
            .await?;
        return Ok(());
    }
    interaction.defer_ephemeral(ctx).await?;
    let Some(id) = entry_id(&interaction.data.custom_id, REASON_FORM) else {
        return Ok(());
    };
    let form = Submitted::read(&interaction.data);
    let reason = form.text(REASON).unwrap_or_default();
    let service = data.moderation();
    let decided = match waiting_here(&service, id, interaction.guild_id).await {
        Ok(()) => service.reject(id, admin, reason).await,
        Err(err) => Err(err),
    };
    let text = match decided {
        Ok(rejected) => {
            let name = rejected
                .character
                .as_ref()
                .map_or("a deleted character", |c| c.name.as_str());
            retire(
                &ctx.http,
                &rejected.pending,
                format!(
                    "❌ Rejected by <@{admin}>: the new portrait for **{name}** from <@{}> was \
                     discarded and blocked in this server.\n**Reason:** {}",
                    rejected.pending.uploader_id, rejected.reason
                ),
            )
            .await;
            let delivery = notify::direct_message(
                &ctx.http,
                rejected.pending.uploader_id,
                serenity::CreateMessage::new().content(format!(
                    "Your new portrait for **{name}** in {} was rejected by the moderators.\n\
                     **Reason:** {}\n**{name}** keeps its current portrait.",
                    server_name(ctx, rejected.pending.guild_id),
                    rejected.reason
                )),
            )
            .await;
            format!(
                "Rejected: the image is blocked in this server. {}",
                delivery.note()
            )
        }
        Err(err) if err.is_moderators_to_know() => err.to_string(),
        Err(err) => super::error::unexpected(&interaction.data.custom_id, admin, &err),
    };
    follow_up(ctx, &interaction.token, &text).await
}

/// Whether entry `id` still waits for approval in the server the interaction comes from (an
/// id from another server is as good as unknown).
async fn waiting_here(
    service: &ModerationService,
    id: i64,
    guild: Option<serenity::GuildId>,
) -> Result<(), ApprovalError> {
    match service.pending(id).await? {
        Some(pending) if Some(pending.guild_id) == guild.map(|g| g.get()) => Ok(()),
        _ => Err(ApprovalError::NotPending),
    }
}

/// After a deferred press: the moderator is told privately why nothing was decided; a post
/// whose upload no longer waits loses its buttons.
async fn decision_failed(
    ctx: &serenity::Context,
    interaction: &serenity::ComponentInteraction,
    err: ApprovalError,
) -> Result<(), BotError> {
    if matches!(err, ApprovalError::NotPending) {
        strip_buttons(&ctx.http, interaction.channel_id, interaction.message.id).await;
    }
    follow_up(ctx, &interaction.token, &decision_text(&err, interaction)).await
}

fn decision_text(err: &ApprovalError, interaction: &serenity::ComponentInteraction) -> String {
    if err.is_moderators_to_know() {
        err.to_string()
    } else {
        super::error::unexpected(&interaction.data.custom_id, interaction.user.id.get(), err)
    }
}

/// Edits the post of a decided (or replaced) upload: `content` says what happened, the buttons
/// go. Best effort: the decision stands even if the post cannot be edited.
async fn retire(http: &serenity::Http, pending: &PendingPortrait, content: String) {
    let (Some(channel), Some(message)) = (pending.mod_channel_id, pending.mod_message_id) else {
        return;
    };
    let edit = serenity::EditMessage::new()
        .content(content)
        .allowed_mentions(serenity::CreateAllowedMentions::new())
        .components(Vec::new());
    if let Err(err) = serenity::ChannelId::new(channel)
        .edit_message(http, serenity::MessageId::new(message), edit)
        .await
    {
        tracing::warn!(channel, message, error = %err, "could not update an approval post");
    }
}

/// Takes the buttons off a post whose upload no longer waits.
async fn strip_buttons(
    http: &serenity::Http,
    channel: serenity::ChannelId,
    message: serenity::MessageId,
) {
    let edit = json!({ "components": [] });
    if let Err(err) = http.edit_message(channel, message, &edit, Vec::new()).await {
        tracing::warn!(%channel, %message, error = %err, "could not take stale approval buttons away");
    }
}

/// "**Server name**", or a neutral phrase when the server is not in the cache.
fn server_name(ctx: &serenity::Context, guild_id: u64) -> String {
    serenity::GuildId::new(guild_id)
        .name(&ctx.cache)
        .map_or_else(|| "a server".to_owned(), |name| format!("**{name}**"))
}

async fn follow_up(ctx: &serenity::Context, token: &str, text: &str) -> Result<(), BotError> {
    let message = serenity::CreateInteractionResponseFollowup::new()
        .content(text)
        .ephemeral(true);
    ctx.http
        .create_followup_message(token, &message, Vec::new())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_round_trip_through_the_buttons_and_the_form() {
        for prefix in [APPROVE, REJECT, REASON_FORM] {
            let custom_id = format!("{prefix}{}", i64::MAX);
            assert!(custom_id.len() <= 100, "Discord's limit");
            assert_eq!(entry_id(&custom_id, prefix), Some(i64::MAX));
        }
        assert!(is_approval_press("approval:approve:7") && is_approval_press("approval:reject:7"));
        assert!(!is_approval_press("approval:reason:7") && is_reason_form("approval:reason:7"));
        for bad in [
            "approval:approve:",
            "approval:approve:x",
            "approval:approve:1:2",
        ] {
            assert_eq!(entry_id(bad, APPROVE), None, "{bad}");
        }
    }
}
