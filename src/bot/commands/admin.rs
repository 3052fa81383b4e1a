//! `/admin …`: server admin tools, gated twice — Discord hides them from members without
//! Manage Server, and every call is checked again here, since a client-side gate can be
//! bypassed.

use poise::serenity_prelude as serenity;
use poise::CreateReply;

use crate::bot::{BotError, Context};
use crate::units::human_bytes;

/// R2's free tier: 10 GB of storage a month.
const R2_FREE_TIER_BYTES: u64 = 10_000_000_000;

/// Server admin tools.
#[poise::command(
    slash_command,
    guild_only,
    subcommands("stats"),
    subcommand_required,
    default_member_permissions = "MANAGE_GUILD",
    check = "require_admin"
)]
pub async fn admin(_ctx: Context<'_>) -> Result<(), BotError> {
    Ok(())
}

/// Characters, stored portraits, storage used, and portrait fallbacks.
#[poise::command(
    slash_command,
    guild_only,
    default_member_permissions = "MANAGE_GUILD",
    check = "require_admin"
)]
async fn stats(ctx: Context<'_>) -> Result<(), BotError> {
    ctx.defer_ephemeral().await?;
    let stats = ctx.data().app.db.stats().await?;
    let share = stats.stored_bytes as f64 / R2_FREE_TIER_BYTES as f64 * 100.0;
    let embed = serenity::CreateEmbed::new()
        .title("Portrait bot statistics")
        .field("Characters", stats.characters.to_string(), true)
        .field("Stored portraits", stats.portraits.to_string(), true)
        .field(
            "Storage used",
            format!(
                "{} ({share:.2}% of R2's 10 GB free tier)",
                human_bytes(stats.stored_bytes)
            ),
            false,
        )
        .field(
            "Fallbacks to the default portrait",
            stats.fallbacks.to_string(),
            false,
        );
    ctx.send(CreateReply::default().embed(embed).ephemeral(true))
        .await?;
    Ok(())
}

/// Members with Manage Server (or Administrator), and users listed in `ADMIN_USER_IDS`. The
/// permissions are the ones Discord computed for this interaction.
async fn require_admin(ctx: Context<'_>) -> Result<bool, BotError> {
    if ctx
        .data()
        .settings
        .admin_user_ids
        .contains(&ctx.author().id.get())
    {
        return Ok(true);
    }
    let permissions = match ctx {
        poise::Context::Application(app) => app
            .interaction
            .member
            .as_ref()
            .and_then(|member| member.permissions),
        poise::Context::Prefix(_) => None,
    };
    if permissions.is_some_and(|p| p.manage_guild() || p.administrator()) {
        return Ok(true);
    }
    Err(BotError::player(
        "Only server admins (members with Manage Server) can use `/admin` commands.",
    ))
}
