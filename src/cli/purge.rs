//! `purge`: the operator deletes a server's characters (or one player's) and the portraits
//! only they show, e.g. after the bot left a server. `--dry-run` lists exactly what the real
//! run deletes, in the same lines.

use std::process::ExitCode;

use crate::app::App;
use crate::character::DiscordId;
use crate::config::Settings;
use crate::moderation::privacy::{PurgePlan, PurgeReport};

#[derive(Debug, clap::Args)]
pub struct PurgeArgs {
    /// Discord server (guild) id whose data is deleted.
    #[arg(long, value_parser = DiscordId::parse)]
    pub guild: DiscordId,
    /// Only this player's characters in the server.
    #[arg(long, value_parser = DiscordId::parse)]
    pub owner: Option<DiscordId>,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub(super) async fn purge(settings: Settings, args: PurgeArgs) -> anyhow::Result<ExitCode> {
    let app = App::build(settings).await?;
    let result = purge_with(&app, &args).await;
    app.shutdown().await;
    result
}

async fn purge_with(app: &App, args: &PurgeArgs) -> anyhow::Result<ExitCode> {
    let moderation = app.moderation();
    let plan = moderation
        .plan_purge(args.guild.get(), args.owner.map(|owner| owner.get()))
        .await?;
    if args.dry_run {
        print_items(&plan.characters, &plan.objects);
        println!("{}", dry_run_summary(&plan));
        return Ok(ExitCode::SUCCESS);
    }
    let report = moderation.purge(&plan).await?;
    print_items(&report.characters, &report.objects);
    println!("{}", summary(&report));
    Ok(ExitCode::SUCCESS)
}

/// One line per character and per object, the same in a dry run and a real run.
fn print_items(characters: &[crate::db::Character], objects: &[String]) {
    for character in characters {
        println!(
            "character {} owner {} `{}`",
            character.id, character.owner_id, character.name
        );
    }
    for key in objects {
        println!("object {key}");
    }
}

fn dry_run_summary(plan: &PurgePlan) -> String {
    format!(
        "dry run: would delete {} characters, {} objects and {} history rows; nothing was deleted",
        plan.characters.len(),
        plan.objects.len(),
        plan.history_rows
    )
}

fn summary(report: &PurgeReport) -> String {
    format!(
        "deleted {} characters, {} objects and {} history rows",
        report.characters.len(),
        report.objects.len(),
        report.history_rows
    )
}
