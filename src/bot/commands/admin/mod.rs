//! `/admin …`: server admin tools, gated twice — Discord hides them from members without
//! Manage Server, and every call is checked again here, since a client-side gate can be
//! bypassed. poise runs a parent's checks before any of its subcommands (and their
//! autocomplete), so `/admin`'s `require_admin` guards every command in the submodules.

mod blocklist;
mod history;
mod moderation;
mod queue;
mod settings;

use std::time::{Duration, Instant};

use poise::serenity_prelude as serenity;
use poise::CreateReply;

use crate::bot::{access, BotError, Context};
use crate::discord_api::DiscordApi;
use crate::migration::cdn::{MigrateOptions, MigrationSummary, Progress};
use crate::moderation::history::Actor;
use crate::units::human_bytes;

/// Discord allows 5 edits per 5 s per channel; one edit per 5 s leaves room for everything else.
const PROGRESS_EDIT_INTERVAL: Duration = Duration::from_secs(5);
/// Longer summaries go in an attached file: a message holds 2000 characters.
const MAX_SUMMARY_CHARS: usize = 1800;

/// R2's free tier: 10 GB of storage a month.
const R2_FREE_TIER_BYTES: u64 = 10_000_000_000;

/// Server admin tools.
#[poise::command(
    slash_command,
    guild_only,
    subcommands(
        "stats",
        "migrate_portraits",
        "migration_status",
        "settings::settings",
        "moderation::portrait",
        "moderation::character",
        "history::history",
        "blocklist::blocklist",
        "queue::queue"
    ),
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

/// Move every portrait still on Discord's CDN into the bot's storage, or roll a run back.
#[poise::command(
    slash_command,
    guild_only,
    rename = "migrate-portraits",
    default_member_permissions = "MANAGE_GUILD",
    check = "require_admin"
)]
async fn migrate_portraits(
    ctx: Context<'_>,
    #[description = "Only report what would be migrated; change nothing"] dry_run: Option<bool>,
    #[description = "Migrate at most this many characters"]
    #[min = 1]
    limit: Option<u32>,
    #[description = "Restore the old links of this run number instead"]
    #[min = 1]
    rollback: Option<i64>,
) -> Result<(), BotError> {
    ctx.defer_ephemeral().await?;
    let data = ctx.data();
    let discord = DiscordApi::new(
        data.settings.token.clone(),
        data.settings.api_base.as_deref(),
    )
    .map_err(|err| BotError::player(format!("Could not set up Discord access: {err}")))?;
    let migrator = data.app.cdn_migrator(Some(discord));

    if let Some(run) = rollback {
        let restored = migrator
            .rollback(run, Actor::Admin(ctx.author().id.get()))
            .await
            .map_err(|err| BotError::player(err.to_string()))?;
        ctx.send(
            CreateReply::default()
                .content(format!(
                    "Run {run} rolled back: {restored} characters show their old link again."
                ))
                .ephemeral(true),
        )
        .await?;
        return Ok(());
    }

    let options = MigrateOptions {
        dry_run: dry_run.unwrap_or(false),
        limit: limit.map(|l| l as usize),
        concurrency: 4,
        started_by: ctx.author().id.to_string(),
    };
    // The interaction token expires after 15 minutes; a long job reports in a channel
    // message instead, edited as it goes.
    let channel = ctx.channel_id();
    let mut status = channel
        .send_message(
            ctx,
            serenity::CreateMessage::new().content("Portrait migration: starting…"),
        )
        .await?;
    ctx.send(
        CreateReply::default()
            .content("Migration started; progress is posted in this channel.")
            .ephemeral(true),
    )
    .await?;

    let (progress_tx, mut progress_rx) = tokio::sync::watch::channel(Progress::default());
    let report_progress = |progress| {
        progress_tx.send_replace(progress);
    };
    let run = migrator.run(&options, &report_progress);
    tokio::pin!(run);
    let mut last_edit: Option<Instant> = None;
    let summary = loop {
        tokio::select! {
            result = &mut run => break result,
            changed = progress_rx.changed() => {
                if changed.is_err() { continue; }
                if last_edit.is_some_and(|at| at.elapsed() < PROGRESS_EDIT_INTERVAL) {
                    continue;
                }
                let progress = *progress_rx.borrow_and_update();
                if let Err(err) = status
                    .edit(ctx, serenity::EditMessage::new().content(progress_text(&progress)))
                    .await
                {
                    tracing::warn!(error = %err, "could not update the migration progress message");
                }
                last_edit = Some(Instant::now());
            }
        }
    };
    let summary = match summary {
        Ok(summary) => summary,
        Err(err) => {
            let _ = status
                .edit(
                    ctx,
                    serenity::EditMessage::new()
                        .content("Portrait migration stopped by an error; see the logs."),
                )
                .await;
            return Err(BotError::player(format!("The migration stopped: {err}")));
        }
    };
    if let Some(at) = last_edit {
        // The final summary respects the same pace as the progress edits.
        tokio::time::sleep(PROGRESS_EDIT_INTERVAL.saturating_sub(at.elapsed())).await;
    }
    status.edit(ctx, summary_message(&summary)).await?;
    Ok(())
}

/// The latest migration runs.
#[poise::command(
    slash_command,
    guild_only,
    rename = "migration-status",
    default_member_permissions = "MANAGE_GUILD",
    check = "require_admin"
)]
async fn migration_status(ctx: Context<'_>) -> Result<(), BotError> {
    ctx.defer_ephemeral().await?;
    let runs = ctx.data().app.db.migration_runs(5).await?;
    let text = if runs.is_empty() {
        "No migration has run yet. `/admin migrate-portraits dry_run:true` shows what one would do."
            .to_owned()
    } else {
        runs.iter()
            .map(|run| {
                format!(
                    "**Run {}**{} — {}: {} of {} migrated, {} failed (started {} by <@{}>)",
                    run.id,
                    if run.dry_run { " (dry run)" } else { "" },
                    run.status.replace('_', " "),
                    run.migrated,
                    run.selected,
                    run.failed,
                    run.started_at,
                    run.started_by
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    ctx.send(CreateReply::default().content(text).ephemeral(true))
        .await?;
    Ok(())
}

fn progress_text(progress: &Progress) -> String {
    const WIDTH: u64 = 20;
    let filled = (progress.done * WIDTH)
        .checked_div(progress.total)
        .unwrap_or(0);
    format!(
        "Portrait migration: `[{}{}]` {}/{} — {} migrated, {} failed",
        "█".repeat(filled as usize),
        "░".repeat((WIDTH - filled) as usize),
        progress.done,
        progress.total,
        progress.migrated,
        progress.failed
    )
}

fn summary_message(summary: &MigrationSummary) -> serenity::EditMessage {
    let text = summary.to_string();
    if text.chars().count() <= MAX_SUMMARY_CHARS {
        return serenity::EditMessage::new().content(text);
    }
    let headline = text.lines().next().unwrap_or_default().to_owned();
    serenity::EditMessage::new()
        .content(format!("{headline}\nThe full list is attached."))
        .new_attachment(serenity::CreateAttachment::bytes(
            text.into_bytes(),
            format!("migration-run-{}.txt", summary.run_id),
        ))
}

/// The `/admin` gate: [`access::is_admin`] with the permissions Discord computed for this
/// interaction.
async fn require_admin(ctx: Context<'_>) -> Result<bool, BotError> {
    let permissions = match ctx {
        poise::Context::Application(app) => app
            .interaction
            .member
            .as_ref()
            .and_then(|member| member.permissions),
        poise::Context::Prefix(_) => None,
    };
    if access::is_admin(&ctx.data().settings, ctx.author().id.get(), permissions) {
        return Ok(true);
    }
    Err(BotError::player(access::ADMINS_ONLY))
}

/// Suggests the characters of the player already chosen in the command's `player` option.
/// poise runs the `/admin` checks before autocomplete too, so only admins get suggestions.
async fn autocomplete_players_character(ctx: Context<'_>, partial: &str) -> Vec<String> {
    let poise::Context::Application(app) = ctx else {
        return Vec::new();
    };
    let player = app.args.iter().find_map(|option| match &option.value {
        _ if option.name != "player" => None,
        serenity::ResolvedValue::User(user, _) => Some(user.id),
        serenity::ResolvedValue::Unresolved(serenity::Unresolved::User(id)) => Some(*id),
        _ => None,
    });
    let Some(player) = player else {
        return Vec::new();
    };
    super::character_names(ctx, player.get(), partial).await
}
