//! Interactions that are not slash commands: button presses and form submits. poise hands
//! every gateway event here; commands' own short-lived collectors (the delete confirmation)
//! see their presses too, so anything without one of our prefixes is left alone.

use poise::serenity_prelude as serenity;

use super::commands::privacy;
use super::{approval, forms, gallery, BotError, Data};

pub async fn handle(
    ctx: &serenity::Context,
    event: &serenity::FullEvent,
    data: &Data,
) -> Result<(), BotError> {
    let serenity::FullEvent::InteractionCreate { interaction } = event else {
        return Ok(());
    };
    match interaction {
        serenity::Interaction::Component(press)
            if gallery::is_gallery_press(&press.data.custom_id) =>
        {
            if let Err(err) = gallery::press(ctx, data, press).await {
                tracing::error!(error = %err, custom_id = %press.data.custom_id, "gallery press failed");
            }
        }
        serenity::Interaction::Component(press)
            if privacy::is_privacy_press(&press.data.custom_id) =>
        {
            if let Err(err) = privacy::press(ctx, data, press).await {
                tracing::error!(error = %err, custom_id = %press.data.custom_id, "privacy press failed");
            }
        }
        serenity::Interaction::Component(press)
            if approval::is_approval_press(&press.data.custom_id) =>
        {
            if let Err(err) = approval::press(ctx, data, press).await {
                tracing::error!(error = %err, custom_id = %press.data.custom_id, "approval press failed");
            }
        }
        serenity::Interaction::Modal(submit)
            if approval::is_reason_form(&submit.data.custom_id) =>
        {
            if let Err(err) = approval::submit_reason(ctx, data, submit).await {
                tracing::error!(error = %err, custom_id = %submit.data.custom_id, "rejection form failed");
            }
        }
        serenity::Interaction::Modal(submit) if forms::is_our_form(&submit.data.custom_id) => {
            if let Err(err) = forms::submit(ctx, data, submit).await {
                tracing::error!(error = %err, custom_id = %submit.data.custom_id, "form submit failed");
            }
        }
        _ => {}
    }
    Ok(())
}
