//! Moderation services over real parts (s3s-fs, SQLite and PostgreSQL): removing a portrait or
//! a character, the block-list at upload, per-server settings, history, privacy export and
//! delete-my-data, and the operator's `purge` through the real binary.

use std::path::Path;

use bytes::Bytes;
use image::imageops::FilterType;
use portrait_bot::db::Character;
use portrait_bot::moderation::history::{self, Actor};
use portrait_bot::moderation::settings::{self, Defaults, SettingsChange};
use portrait_bot::moderation::{ModerationError, ModerationService};
use portrait_bot::portrait::{IngestError, IngestRequest, PortraitSource, Upload};

use crate::cli::portrait_bot;
use crate::on_both_databases;
use crate::support::app::{new_character, TestApp, GUILD, PLAYER};
use crate::support::pictures::{jpeg, picture, png};

const ADMIN: u64 = 900_000_000_000_000_009;
const OTHER_GUILD: u64 = 1_200_000_000_000_000_077;
const OTHER_PLAYER: u64 = 800_000_000_000_000_055;

fn moderation(app: &TestApp) -> ModerationService {
    ModerationService::new(
        app.app.db.clone(),
        app.app.store.clone(),
        app.app.portraits.clone(),
    )
}

async fn upload(
    app: &TestApp,
    character: &Character,
    bytes: Bytes,
) -> Result<Character, IngestError> {
    let request = IngestRequest {
        character,
        uploader_id: character.owner_id,
        source: PortraitSource::SlashCommand,
        legacy_url: None,
        migration_run: None,
    };
    let stored = app
        .app
        .portraits
        .ingest(Upload::Bytes(bytes), &request)
        .await?;
    Ok(stored.character)
}

async fn character_in(app: &TestApp, guild: u64, owner: u64, name: &str) -> Character {
    app.app
        .db
        .create_character(&new_character(guild, owner, name), None)
        .await
        .expect("character created")
}

on_both_databases! {
    async fn removing_a_portrait_shows_the_default_deletes_the_object_records_why_and_blocks_the_picture(db: TestDb) {
        let app = TestApp::start(db).await;
        let aria = app.create_character("Aria").await;
        let original = picture(1);
        let aria = upload(&app, &aria, png(&original)).await.expect("stored");
        assert_eq!(app.bucket_keys().await.len(), 1);

        let removal = moderation(&app)
            .remove_portrait(aria.id, Actor::Admin(ADMIN), "not safe for work")
            .await
            .expect("removed");
        assert!(removal.object_deleted);
        assert!(removal.blocked.is_some(), "the picture is blocked");
        let after = app.reload(&aria).await;
        assert_eq!(after.portrait_url, None, "the default portrait is shown");
        assert!(app.bucket_keys().await.is_empty(), "the object is gone");

        let rows = history::last(&app.app.db, aria.id, 10).await.unwrap();
        let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["removed", "uploaded"], "newest first");
        assert_eq!(rows[0].actor_kind, "admin");
        assert_eq!(rows[0].actor_id, Some(ADMIN));
        assert_eq!(rows[0].reason.as_deref(), Some("not safe for work"));
        assert_eq!(rows[1].actor_kind, "player");

        // The same picture, re-encoded as JPEG and resized, is refused; nothing is stored.
        let resized = original.resize_exact(480, 480, FilterType::Triangle);
        for again in [jpeg(&original, 70), jpeg(&resized, 85)] {
            let err = upload(&app, &after, again).await.expect_err("refused");
            assert_eq!(err.player_message(), "This image was removed by this server's moderators.");
            assert!(err.is_players_to_fix());
        }
        assert!(app.bucket_keys().await.is_empty());
        assert_eq!(app.reload(&aria).await.portrait_url, None);
        assert_eq!(app.metric("portrait_moderation_actions_total{action=\"removed\"}"), 1.0);
        assert_eq!(app.metric("portrait_moderation_actions_total{action=\"blocked_upload\"}"), 2.0);

        // A different picture passes, and so does the blocked one in another server.
        upload(&app, &after, png(&picture(2))).await.expect("an unrelated picture is stored");
        let elsewhere = character_in(&app, OTHER_GUILD, PLAYER, "Aria").await;
        upload(&app, &elsewhere, jpeg(&original, 70)).await.expect("another server blocks nothing");
    }

    async fn deleting_a_character_keeps_the_object_another_character_still_shows(db: TestDb) {
        let app = TestApp::start(db).await;
        // Same name and bytes give the same key: one object shown by two characters.
        let here = app.create_character("Brom").await;
        let there = character_in(&app, OTHER_GUILD, OTHER_PLAYER, "Brom").await;
        let bytes = png(&picture(3));
        let here = upload(&app, &here, bytes.clone()).await.unwrap();
        let there = upload(&app, &there, bytes).await.unwrap();
        assert_eq!(here.portrait_url, there.portrait_url);
        assert_eq!(app.bucket_keys().await.len(), 1);

        let removal = moderation(&app)
            .delete_character(here.id, Actor::Admin(ADMIN), "spam")
            .await
            .expect("deleted");
        assert!(!removal.object_deleted, "the other server's Brom still shows it");
        assert_eq!(app.bucket_keys().await.len(), 1);
        assert!(app.app.db.character_by_id(here.id).await.unwrap().is_none());
        assert_eq!(app.reload(&there).await.portrait_url, there.portrait_url);
        let rows = history::last(&app.app.db, here.id, 1).await.unwrap();
        assert_eq!(rows[0].action, "deleted");
        assert_eq!(rows[0].character_name, "Brom");

        let again = moderation(&app)
            .delete_character(here.id, Actor::Admin(ADMIN), "spam")
            .await;
        assert!(matches!(again, Err(ModerationError::CharacterNotFound)));
        let bare = app.create_character("Cass").await;
        let err = moderation(&app)
            .remove_portrait(bare.id, Actor::Admin(ADMIN), "x")
            .await
            .expect_err("nothing to remove");
        assert_eq!(err.to_string(), "`Cass` already shows the default portrait");
    }

    async fn each_server_keeps_its_own_settings_and_the_environment_fills_the_rest(db: TestDb) {
        let defaults = Defaults { max_characters: 10, uploads_per_10_minutes: 5 };
        let set = |max, uploads| SettingsChange {
            max_characters: max,
            uploads_per_10_minutes: uploads,
            ..SettingsChange::default()
        };
        settings::update(&db.db, GUILD, &set(Some(2), None), ADMIN, &defaults).await.unwrap();
        settings::update(&db.db, OTHER_GUILD, &set(None, Some(20)), ADMIN, &defaults).await.unwrap();
        settings::update(&db.db, GUILD, &set(None, Some(3)), ADMIN, &defaults).await.unwrap();

        let here = settings::effective(&db.db, GUILD, &defaults).await.unwrap();
        let there = settings::effective(&db.db, OTHER_GUILD, &defaults).await.unwrap();
        let fresh = settings::effective(&db.db, 5, &defaults).await.unwrap();
        assert_eq!((here.max_characters, here.uploads_per_10_minutes), (2, 3));
        assert_eq!((there.max_characters, there.uploads_per_10_minutes), (10, 20));
        assert_eq!((fresh.max_characters, fresh.uploads_per_10_minutes), (10, 5));

        let refused = settings::update(&db.db, GUILD, &set(Some(0), None), ADMIN, &defaults).await;
        assert_eq!(refused.unwrap_err().to_string(), "max_characters must be between 1 and 100");
        let approval = SettingsChange { approval_required: Some(true), ..SettingsChange::default() };
        let refused = settings::update(&db.db, GUILD, &approval, ADMIN, &defaults).await;
        assert!(refused.unwrap_err().to_string().starts_with("set mod_channel"));
        let with_channel = SettingsChange { mod_channel: Some(77), ..approval };
        let now = settings::update(&db.db, GUILD, &with_channel, ADMIN, &defaults).await.unwrap();
        assert!(now.approval_required);
        assert_eq!(now.mod_channel, Some(77));
        assert_eq!(now.max_characters, 2, "earlier values are kept");
    }

    async fn a_player_exports_and_deletes_only_their_own_data_in_one_server(db: TestDb) {
        let app = TestApp::start(db).await;
        let mine = upload(&app, &app.create_character("Dana").await, png(&picture(4))).await.unwrap();
        let theirs = character_in(&app, GUILD, OTHER_PLAYER, "Eve").await;
        let theirs = upload(&app, &theirs, png(&picture(5))).await.unwrap();
        let elsewhere = character_in(&app, OTHER_GUILD, PLAYER, "Fay").await;
        let service = moderation(&app);

        let export = service.export(GUILD, PLAYER).await.unwrap();
        let json = serde_json::to_value(&export).unwrap();
        assert_eq!(json["player_id"], PLAYER.to_string());
        assert_eq!(json["characters"].as_array().unwrap().len(), 1);
        assert_eq!(json["characters"][0]["name"], "Dana");
        assert_eq!(json["characters"][0]["portrait_url"], mine.portrait_url.clone().unwrap());

        let report = service.delete_my_data(GUILD, PLAYER).await.unwrap();
        assert_eq!(report.characters.len(), 1);
        assert_eq!(report.objects.len(), 1);
        assert!(app.app.db.character_by_id(mine.id).await.unwrap().is_none());
        assert_eq!(app.reload(&theirs).await, theirs, "another player is untouched");
        assert!(app.app.db.character_by_id(elsewhere.id).await.unwrap().is_some());
        let keys = app.bucket_keys().await;
        assert_eq!(keys.len(), 1, "only Eve's object is left: {keys:?}");
        assert!(theirs.portrait_url.unwrap().ends_with(&keys[0]));
        assert!(history::last(&app.app.db, mine.id, 10).await.unwrap().is_empty());
        assert_eq!(history::last(&app.app.db, theirs.id, 10).await.unwrap().len(), 1);
    }

    async fn purge_dry_run_lists_exactly_what_purge_then_deletes(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let cli = |args: &[&str]| {
            let output = portrait_bot(dir.path())
                .env("DATABASE_URL", &db.url)
                .env("LOCAL_STORAGE_DIR", dir.path().join("objects"))
                .args(args)
                .output()
                .expect("the binary runs");
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            assert!(output.status.success(), "{args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
            stdout
        };
        let write = |name: &str, image: Bytes| {
            std::fs::write(dir.path().join(name), &image).unwrap();
        };
        write("a.png", png(&picture(6)));
        write("b.png", png(&picture(7)));
        write("c.png", png(&picture(8)));
        write("d.png", png(&picture(9)));
        let guild = "1200000000000000001";
        let other_guild = "1200000000000000077";
        for (file, guild, owner, name) in [
            ("a.png", guild, "11", "Aria"),
            ("b.png", guild, "12", "Brom"),
            ("c.png", guild, "12", "Cass"),
            // The same bytes and name in another server share Aria's object.
            ("a.png", other_guild, "13", "Aria"),
            ("d.png", other_guild, "12", "Dana"),
        ] {
            cli(&["upload", file, "--guild", guild, "--owner", owner, "--character", name]);
        }
        let objects = |dir: &Path| count_files(&dir.join("objects"));
        assert_eq!(objects(dir.path()), 4);

        let items = |stdout: &str| -> Vec<String> {
            stdout
                .lines()
                .filter(|l| l.starts_with("character ") || l.starts_with("object "))
                .map(str::to_owned)
                .collect()
        };
        let planned = cli(&["purge", "--guild", guild, "--dry-run"]);
        assert!(planned.contains("dry run: would delete 3 characters, 2 objects"), "{planned}");
        assert_eq!(objects(dir.path()), 4, "a dry run deletes nothing");
        assert_eq!(
            db.db.guild_characters(GUILD, None).await.unwrap().len(),
            3
        );

        let done = cli(&["purge", "--guild", guild]);
        assert_eq!(items(&done), items(&planned));
        assert_eq!(items(&done).len(), 5, "{done}");
        assert!(done.contains("deleted 3 characters, 2 objects"), "{done}");
        assert!(db.db.guild_characters(GUILD, None).await.unwrap().is_empty());
        let left = db.db.guild_characters(OTHER_GUILD, None).await.unwrap();
        assert_eq!(left.len(), 2, "the other server is untouched");
        assert_eq!(objects(dir.path()), 2, "Aria's shared object and Dana's are kept");

        // One player only.
        let one = cli(&["purge", "--guild", other_guild, "--owner", "12"]);
        assert!(one.contains("deleted 1 characters, 1 objects"), "{one}");
        assert_eq!(db.db.guild_characters(OTHER_GUILD, None).await.unwrap().len(), 1);
        assert_eq!(objects(dir.path()), 1);
    }
}

/// Stored objects in the local store's folder (not its hidden metadata sidecars).
fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if entry.file_name() == ".portrait-meta" {
                0
            } else if path.is_dir() {
                count_files(&path)
            } else {
                1
            }
        })
        .sum()
}
