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

/// A database that ran every migration before 0012 (which stopped indexing history by
/// owner), holding Aria (alive) and the history of Brom and Cyd, deleted back then; then the
/// application opens it. Each player's history, deleted characters included, is found as
/// before, and a player's privacy request still forgets exactly that player's.
async fn history_of_characters_deleted_before_0012_is_still_found_by_their_player(
    database: testkit::database::FreshDatabase,
    backend: &str,
) {
    const OTHER: u64 = PLAYER + 1;
    let earlier = tempfile::tempdir().unwrap();
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.as_str() < "0012" {
            std::fs::copy(&path, earlier.path().join(name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(earlier.path()).await.unwrap();
    let rows = [
        format!("INSERT INTO characters (id, guild_id, owner_id, name, name_key, created_at, updated_at) \
                 VALUES (1, {GUILD}, {PLAYER}, 'Aria', 'aria', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"),
        history_sql(1, PLAYER, 1, "Aria", "uploaded"),
        history_sql(2, PLAYER, 2, "Brom", "uploaded"),
        history_sql(3, PLAYER, 2, "Brom", "deleted"),
        history_sql(4, OTHER, 3, "Cyd", "deleted"),
    ];
    sqlx::any::install_default_drivers();
    let raw_url = match backend {
        "sqlite" => format!("{}?mode=rwc", database.url),
        _ => database.url.clone(),
    };
    let raw = sqlx::AnyPool::connect(&raw_url).await.unwrap();
    migrator.run(&raw).await.unwrap();
    for sql in &rows {
        sqlx::query(sql).execute(&raw).await.unwrap();
    }
    let remembered = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT owner_id FROM deleted_characters ORDER BY character_id",
        )
        .fetch_all(&raw)
        .await
        .unwrap()
    };

    let db = portrait_bot::db::Db::connect(&database.url, &database.url)
        .await
        .expect("upgrades");
    assert_eq!(
        db.history_characters(GUILD, PLAYER).await.unwrap(),
        vec![(2, "Brom".to_owned()), (1, "Aria".to_owned())]
    );
    assert_eq!(
        db.history_characters(GUILD, OTHER).await.unwrap(),
        vec![(3, "Cyd".to_owned())]
    );
    let brom = history::of_named_character(&db, GUILD, PLAYER, "brom", 10)
        .await
        .unwrap()
        .expect("found");
    assert!(brom.deleted);
    assert_eq!(brom.rows.len(), 2);
    assert_eq!(db.count_history(GUILD, Some(PLAYER)).await.unwrap(), 3);
    assert_eq!(db.count_history(GUILD, None).await.unwrap(), 4);

    assert_eq!(
        remembered().await,
        vec![PLAYER as i64, OTHER as i64],
        "backfilled"
    );

    assert_eq!(db.delete_history(GUILD, Some(PLAYER)).await.unwrap(), 3);
    assert_eq!(db.history_characters(GUILD, PLAYER).await.unwrap(), vec![]);
    assert_eq!(
        db.history_characters(GUILD, OTHER).await.unwrap(),
        vec![(3, "Cyd".to_owned())],
        "another player's is kept"
    );
    assert_eq!(
        remembered().await,
        vec![OTHER as i64],
        "whose Brom was is forgotten with the history; Cyd's owner is kept"
    );
    db.close().await;
    raw.close().await;
}

fn history_sql(id: i64, owner: u64, character: i64, name: &str, action: &str) -> String {
    format!(
        "INSERT INTO portrait_history (id, guild_id, owner_id, character_id, character_name, actor_kind, \
                                       action, created_at) \
         VALUES ({id}, {GUILD}, {owner}, {character}, '{name}', 'player', '{action}', '2026-01-0{id}T00:00:00Z')"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_history_of_characters_deleted_before_0012_is_still_found_by_their_player() {
    history_of_characters_deleted_before_0012_is_still_found_by_their_player(
        testkit::database::FreshDatabase::sqlite(),
        "sqlite",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_history_of_characters_deleted_before_0012_is_still_found_by_their_player() {
    let test = "postgres_history_of_characters_deleted_before_0012_is_still_found_by_their_player";
    if let Some(database) = testkit::database::FreshDatabase::postgres(test).await {
        history_of_characters_deleted_before_0012_is_still_found_by_their_player(
            database, "postgres",
        )
        .await;
    }
}
