//! Who counts as a server admin: the one rule every `/admin` command and every moderation
//! button checks. Discord's `default_member_permissions` only hides commands in the client;
//! a press or a call can still arrive from anyone, so the bot checks again itself.

use poise::serenity_prelude as serenity;

use crate::config::BotSettings;

/// Members with Manage Server (or Administrator) in the server the interaction came from, and
/// users listed in `ADMIN_USER_IDS`. `permissions` are the ones Discord computed for the
/// interaction (`member.permissions`); `None` outside a server.
pub fn is_admin(
    settings: &BotSettings,
    user_id: u64,
    permissions: Option<serenity::Permissions>,
) -> bool {
    settings.admin_user_ids.contains(&user_id)
        || permissions.is_some_and(|p| p.manage_guild() || p.administrator())
}

/// The private answer a non-admin gets.
pub const ADMINS_ONLY: &str = "Only server admins (members with Manage Server) can do this.";
