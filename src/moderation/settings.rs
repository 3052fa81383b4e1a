//! Per-server settings: stored in the database; the environment's values are the defaults
//! for every server that sets nothing.

use crate::db::{Db, DbError, GuildSettingsRow};

/// The environment's values (`MAX_CHARACTERS_PER_PLAYER`, `UPLOADS_PER_10_MINUTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub max_characters: u64,
    pub uploads_per_10_minutes: u32,
}

/// What applies in a server: its own value where it set one, else the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveSettings {
    pub mod_channel: Option<u64>,
    pub approval_required: bool,
    pub max_characters: u64,
    pub uploads_per_10_minutes: u32,
    /// Which values the server set itself (the rest are defaults), for `/admin settings show`.
    pub own: OwnSettings,
}

/// Which settings a server set itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OwnSettings {
    pub approval_required: bool,
    pub max_characters: bool,
    pub uploads_per_10_minutes: bool,
}

/// A change asked for; `None` leaves a setting as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SettingsChange {
    pub mod_channel: Option<u64>,
    pub approval_required: Option<bool>,
    pub max_characters: Option<u64>,
    pub uploads_per_10_minutes: Option<u32>,
}

/// The most characters per player a server may allow.
pub const MAX_CHARACTERS_LIMIT: u64 = 100;
/// The most uploads per 10 minutes a server may allow.
pub const MAX_UPLOADS_LIMIT: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("max_characters must be between 1 and {MAX_CHARACTERS_LIMIT}")]
    MaxCharacters,
    #[error("uploads_per_10_minutes must be between 1 and {MAX_UPLOADS_LIMIT}")]
    Uploads,
    #[error("set mod_channel before turning approval_required on: approvals are posted there")]
    ApprovalWithoutChannel,
    #[error(
        "approval_required is on, and uploads wait in the mod channel: turn approval_required \
         off (or reset it) before resetting mod_channel"
    )]
    ChannelNeededForApproval,
    #[error(transparent)]
    Database(#[from] DbError),
}

/// Which of a server's own values to forget, so the default applies again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingReset {
    All,
    ModChannel,
    ApprovalRequired,
    MaxCharacters,
    UploadsPer10Minutes,
}

impl SettingReset {
    fn columns(self) -> &'static [&'static str] {
        match self {
            SettingReset::All => &crate::db::GUILD_SETTING_COLUMNS,
            SettingReset::ModChannel => &["mod_channel_id"],
            SettingReset::ApprovalRequired => &["approval_required"],
            SettingReset::MaxCharacters => &["max_characters"],
            SettingReset::UploadsPer10Minutes => &["uploads_per_10_minutes"],
        }
    }
}

impl EffectiveSettings {
    /// Combines a server's stored settings with the defaults.
    pub fn resolve(stored: &GuildSettingsRow, defaults: &Defaults) -> EffectiveSettings {
        EffectiveSettings {
            mod_channel: stored.mod_channel_id,
            approval_required: stored.approval_required.unwrap_or(false),
            max_characters: stored.max_characters.unwrap_or(defaults.max_characters),
            uploads_per_10_minutes: stored
                .uploads_per_10_minutes
                .unwrap_or(defaults.uploads_per_10_minutes),
            own: OwnSettings {
                approval_required: stored.approval_required.is_some(),
                max_characters: stored.max_characters.is_some(),
                uploads_per_10_minutes: stored.uploads_per_10_minutes.is_some(),
            },
        }
    }
}

/// The settings that apply in a server.
pub async fn effective(
    db: &Db,
    guild_id: u64,
    defaults: &Defaults,
) -> Result<EffectiveSettings, DbError> {
    Ok(EffectiveSettings::resolve(
        &db.guild_settings(guild_id).await?,
        defaults,
    ))
}

/// Checks and stores a change; returns the settings that apply afterwards.
pub async fn update(
    db: &Db,
    guild_id: u64,
    change: &SettingsChange,
    updated_by: u64,
    defaults: &Defaults,
) -> Result<EffectiveSettings, SettingsError> {
    if change
        .max_characters
        .is_some_and(|max| !(1..=MAX_CHARACTERS_LIMIT).contains(&max))
    {
        return Err(SettingsError::MaxCharacters);
    }
    if change
        .uploads_per_10_minutes
        .is_some_and(|max| !(1..=MAX_UPLOADS_LIMIT).contains(&max))
    {
        return Err(SettingsError::Uploads);
    }
    if change.approval_required == Some(true) && change.mod_channel.is_none() {
        let stored = db.guild_settings(guild_id).await?;
        if stored.mod_channel_id.is_none() {
            return Err(SettingsError::ApprovalWithoutChannel);
        }
    }
    let stored = db
        .update_guild_settings(
            guild_id,
            &GuildSettingsRow {
                mod_channel_id: change.mod_channel,
                approval_required: change.approval_required,
                max_characters: change.max_characters,
                uploads_per_10_minutes: change.uploads_per_10_minutes,
            },
            updated_by,
        )
        .await?;
    Ok(EffectiveSettings::resolve(&stored, defaults))
}

/// Puts a server's own value(s) back to the default; returns the settings that apply
/// afterwards. The mod channel alone cannot go while approval is on: uploads wait there.
pub async fn reset(
    db: &Db,
    guild_id: u64,
    which: SettingReset,
    updated_by: u64,
    defaults: &Defaults,
) -> Result<EffectiveSettings, SettingsError> {
    if which == SettingReset::ModChannel
        && db.guild_settings(guild_id).await?.approval_required == Some(true)
    {
        return Err(SettingsError::ChannelNeededForApproval);
    }
    let stored = db
        .clear_guild_settings(guild_id, which.columns(), updated_by)
        .await?;
    Ok(EffectiveSettings::resolve(&stored, defaults))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Defaults = Defaults {
        max_characters: 10,
        uploads_per_10_minutes: 5,
    };

    #[test]
    fn a_server_that_set_nothing_gets_the_environment_defaults() {
        let settings = EffectiveSettings::resolve(&GuildSettingsRow::default(), &DEFAULTS);
        assert_eq!(settings.max_characters, 10);
        assert_eq!(settings.uploads_per_10_minutes, 5);
        assert!(!settings.approval_required);
        assert_eq!(settings.mod_channel, None);
        assert_eq!(settings.own, OwnSettings::default());
    }

    #[test]
    fn a_server_value_overrides_only_its_own_default() {
        let stored = GuildSettingsRow {
            max_characters: Some(3),
            ..GuildSettingsRow::default()
        };
        let settings = EffectiveSettings::resolve(&stored, &DEFAULTS);
        assert_eq!(settings.max_characters, 3);
        assert_eq!(settings.uploads_per_10_minutes, 5);
        assert!(settings.own.max_characters && !settings.own.uploads_per_10_minutes);
    }
}
