//! The portrait history names who made every change: an import, the CDN migration, a
//! rollback, a player's upload and reset — through the services, the CLI's code paths and the
//! bot, read back from the database on SQLite and PostgreSQL.

use portrait_bot::db::HistoryRow;
use portrait_bot::fetch::Origin;
use portrait_bot::migration::cdn::{CdnMigrator, MigrateOptions};
use portrait_bot::migration::import::{import_text, ImportOptions};
use portrait_bot::moderation::history::{self, Actor};
use portrait_bot::portrait::{IngestRequest, PortraitSource, Upload};

use crate::on_both_databases;
use crate::support::app::{TestApp, GUILD, PLAYER};
use crate::support::bot::{embed_image, TestBot};
use crate::support::pictures::{picture, png};
use testkit::discord::slash_command;

/// (action, who, portrait URL) of each row, newest first.
fn changes(rows: &[HistoryRow]) -> Vec<(String, String, Option<String>)> {
    rows.iter()
        .map(|row| {
            let who = match row.actor_id {
                Some(id) => format!("{} {id}", row.actor_kind),
                None => row.actor_kind.clone(),
            };
            (row.action.clone(), who, row.portrait_url.clone())
        })
        .collect()
}

fn change(action: &str, who: &str, url: Option<&str>) -> (String, String, Option<String>) {
    (action.to_owned(), who.to_owned(), url.map(str::to_owned))
}

on_both_databases! {
    async fn import_migration_rollback_upload_and_reset_each_record_who_did_it(t: TestDb) {
        let t = TestApp::start(t).await;
        let link = t.cdn.host("/attachments/1/2/aria.png", png(&picture(11)).to_vec(), "image/png");
        let file = format!("guild_id,owner_id,name,portrait_url\n{GUILD},{PLAYER},Aria,{link}\n");
        import_text(&t.app.db, &file, &ImportOptions::default()).await.expect("imported");
        // A re-import of the same file changes nothing, so records nothing.
        import_text(&t.app.db, &file, &ImportOptions::default()).await.expect("imported");
        let aria = t.app.db.find_character(GUILD, PLAYER, "Aria").await.unwrap().unwrap();

        let migrator = CdnMigrator::new(
            t.app.db.clone(),
            t.app.portraits.clone(),
            None,
            vec![Origin::parse(&t.cdn.origin()).unwrap()],
        );
        let options = MigrateOptions { dry_run: false, limit: None, concurrency: 1, started_by: "test".into() };
        let summary = migrator.run(&options, &|_| {}).await.expect("the run completes");
        assert_eq!(summary.migrated, 1);
        let migrated = t.reload(&aria).await.portrait_url.expect("a stored portrait");
        assert_eq!(migrator.rollback(summary.run_id, Actor::Operator).await.unwrap(), 1);

        let request = IngestRequest {
            character: &t.reload(&aria).await,
            uploader_id: PLAYER,
            source: PortraitSource::SlashCommand,
            legacy_url: None,
            migration_run: None,
        };
        let uploaded = t.app.portraits.ingest(Upload::Bytes(png(&picture(12))), &request).await.unwrap();
        let uploaded = uploaded.character.portrait_url.expect("the upload is shown");
        t.app.portraits.reset_portrait(aria.id, Actor::Player(PLAYER)).await.unwrap();
        // Resetting the default portrait changes nothing, so records nothing.
        t.app.portraits.reset_portrait(aria.id, Actor::Player(PLAYER)).await.unwrap();

        let rows = history::last(&t.app.db, aria.id, 10).await.unwrap();
        let player = format!("player {PLAYER}");
        assert_eq!(
            changes(&rows),
            [
                change("reset", &player, Some(&uploaded)),
                change("uploaded", &player, Some(&uploaded)),
                change("rolled_back", "operator", Some(&link)),
                change("migrated", "migration", Some(&migrated)),
                change("uploaded", "import", Some(&link)),
            ]
        );
        assert!(rows.iter().all(|r| r.character_name == "Aria" && r.guild_id == GUILD && r.owner_id == PLAYER));
    }

    async fn portrait_reset_in_discord_records_the_player_and_the_image_it_stopped_showing(t: TestDb) {
        let bot = TestBot::start(t).await;
        let image = bot.attachment("aria.png", &png(&picture(13)), "image/png");
        let reply = bot
            .command(&slash_command("register").option_str("name", "Aria").option_attachment("portrait", &image).build())
            .await;
        let url = embed_image(&reply).expect("the portrait").to_owned();
        bot.command(&slash_command("portrait").subcommand("reset").option_str("character", "Aria").build()).await;

        let aria = bot.character(PLAYER, "Aria").await.unwrap();
        assert_eq!(aria.portrait_url, None);
        let rows = history::last(&bot.db.db, aria.id, 10).await.unwrap();
        let player = format!("player {PLAYER}");
        assert_eq!(
            changes(&rows),
            [change("reset", &player, Some(&url)), change("uploaded", &player, Some(&url))]
        );
    }
}
