//! `/admin settings show|set|reset`: this server's own limits and moderation settings; what a
//! server does not set comes from the bot's environment.

use poise::serenity_prelude as serenity;
use poise::CreateReply;

use crate::bot::commands::guild_id;
use crate::bot::{BotError, Context};
use crate::moderation::settings::{
    self, update, EffectiveSettings, SettingReset, SettingsChange, SettingsError,
};

/// This server's moderation settings and limits.
#[poise::command(
    slash_command,
    guild_only,
    subcommands("show", "set", "reset"),
    subcommand_required
)]
pub async fn settings(_ctx: Context<'_>) -> Result<(), BotError> {
    Ok(())
}

/// Show this server's settings, and which ones are the bot's defaults.
#[poise::command(slash_command, guild_only)]
async fn show(ctx: Context<'_>) -> Result<(), BotError> {
    let current = ctx.data().server_settings(guild_id(ctx)?).await?;
    reply(ctx, describe(&current, "Settings in this server")).await
}

/// Change this server's settings; what you leave out stays as it is.
#[poise::command(slash_command, guild_only)]
async fn set(
    ctx: Context<'_>,
    #[description = "Channel for moderation records and portraits awaiting approval"]
    #[channel_types("Text")]
    mod_channel: Option<serenity::ChannelId>,
    #[description = "New portraits wait for a moderator's approval (needs a mod channel)"]
    approval_required: Option<bool>,
    #[description = "Most characters one player may have here"] max_characters: Option<u64>,
    #[description = "Most portrait uploads one player may make here per 10 minutes"]
    uploads_per_10_minutes: Option<u32>,
) -> Result<(), BotError> {
    let change = SettingsChange {
        mod_channel: mod_channel.map(|channel| channel.get()),
        approval_required,
        max_characters,
        uploads_per_10_minutes,
    };
    if change == SettingsChange::default() {
        return Err(BotError::player(
            "Choose at least one setting to change. `/admin settings show` lists them.",
        ));
    }
    let data = ctx.data();
    let updated = update(
        &data.app.db,
        guild_id(ctx)?,
        &change,
        ctx.author().id.get(),
        &data.moderation_defaults(),
    )
    .await
    .map_err(refused)?;
    reply(ctx, describe(&updated, "Settings saved")).await
}

/// A setting `/admin settings reset` can put back to the default.
#[derive(Debug, Clone, Copy, poise::ChoiceParameter)]
enum Resettable {
    #[name = "all"]
    All,
    #[name = "mod_channel"]
    ModChannel,
    #[name = "approval_required"]
    ApprovalRequired,
    #[name = "max_characters"]
    MaxCharacters,
    #[name = "uploads_per_10_minutes"]
    UploadsPer10Minutes,
}

/// Put this server's own value back to the bot's default (or unset the mod channel).
#[poise::command(slash_command, guild_only)]
async fn reset(
    ctx: Context<'_>,
    #[description = "The setting to put back to the default, or all of them"] setting: Resettable,
) -> Result<(), BotError> {
    let which = match setting {
        Resettable::All => SettingReset::All,
        Resettable::ModChannel => SettingReset::ModChannel,
        Resettable::ApprovalRequired => SettingReset::ApprovalRequired,
        Resettable::MaxCharacters => SettingReset::MaxCharacters,
        Resettable::UploadsPer10Minutes => SettingReset::UploadsPer10Minutes,
    };
    let data = ctx.data();
    let updated = settings::reset(
        &data.app.db,
        guild_id(ctx)?,
        which,
        ctx.author().id.get(),
        &data.moderation_defaults(),
    )
    .await
    .map_err(refused)?;
    reply(ctx, describe(&updated, "Settings saved")).await
}

/// A refused change, as the admin reads it; nothing was stored.
fn refused(err: SettingsError) -> BotError {
    match err {
        SettingsError::Database(err) => err.into(),
        other => BotError::player(format!("Nothing was changed: {other}.")),
    }
}

async fn reply(ctx: Context<'_>, text: String) -> Result<(), BotError> {
    ctx.send(CreateReply::default().content(text).ephemeral(true))
        .await?;
    Ok(())
}

/// The settings as `/admin settings` shows them: each value, and whether the server set it or
/// it is the bot's default (from its environment).
fn describe(current: &EffectiveSettings, heading: &str) -> String {
    let origin = |own: bool| {
        if own {
            "set by this server"
        } else {
            "the bot's default"
        }
    };
    let mod_channel = match current.mod_channel {
        Some(channel) => format!("<#{channel}>"),
        None => "none: moderation records are not posted".to_owned(),
    };
    let own = current.own;
    format!(
        "**{heading}**\n\
         Mod channel: {mod_channel}\n\
         Approval required: {} ({})\n\
         Max characters per player: {} ({})\n\
         Uploads per 10 minutes: {} ({})",
        if current.approval_required {
            "yes"
        } else {
            "no"
        },
        origin(own.approval_required),
        current.max_characters,
        origin(own.max_characters),
        current.uploads_per_10_minutes,
        origin(own.uploads_per_10_minutes),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moderation::settings::OwnSettings;

    #[test]
    fn each_value_says_whether_the_server_set_it() {
        let current = EffectiveSettings {
            mod_channel: Some(42),
            approval_required: false,
            max_characters: 3,
            uploads_per_10_minutes: 5,
            own: OwnSettings {
                max_characters: true,
                ..OwnSettings::default()
            },
        };
        assert_eq!(
            describe(&current, "Settings in this server"),
            "**Settings in this server**\n\
             Mod channel: <#42>\n\
             Approval required: no (the bot's default)\n\
             Max characters per player: 3 (set by this server)\n\
             Uploads per 10 minutes: 5 (the bot's default)"
        );
    }
}
