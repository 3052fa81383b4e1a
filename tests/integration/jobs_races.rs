//! Races and bookkeeping (issue 10): concurrent uploads to one character, one link shared by
//! many characters, killed migration runs, and a failing link refresh. On s3s-fs, the simulated
//! CDN and Discord, SQLite and PostgreSQL.

use std::time::Duration;

use bytes::Bytes;
use portrait_bot::db::{Character, NewPortrait};
use portrait_bot::discord_api::DiscordApi;
use portrait_bot::fetch::Origin;
use portrait_bot::migration::cdn::{CdnMigrator, MigrateOptions, MigrationSummary};
use portrait_bot::migration::orphans::cleanup_orphans;
use portrait_bot::moderation::history::Actor;
use portrait_bot::portrait::{IngestRequest, PortraitSource, Upload};
use portrait_bot::secret::Secret;

use crate::on_both_databases;
use crate::support::app::{new_character, TestApp, GUILD, PLAYER};
use crate::support::r2::R2Access;
use testkit::discord::{TestDiscord, BOT_TOKEN};
use testkit::images;

fn request(character: &Character) -> IngestRequest<'_> {
    IngestRequest {
        character,
        uploader_id: PLAYER,
        source: PortraitSource::SlashCommand,
        legacy_url: None,
        migration_run: None,
    }
}

fn migrator(t: &TestApp, discord: &TestDiscord) -> CdnMigrator {
    let api = DiscordApi::new(Secret::new(BOT_TOKEN), Some(&discord.api_base())).unwrap();
    CdnMigrator::new(
        t.app.db.clone(),
        t.app.portraits.clone(),
        Some(api),
        vec![Origin::parse(&t.cdn.origin()).unwrap()],
    )
}

async fn migrate(migrator: &CdnMigrator) -> MigrationSummary {
    migrator
        .run(
            &MigrateOptions {
                dry_run: false,
                limit: None,
                concurrency: 4,
                started_by: "test".into(),
            },
            &|_| {},
        )
        .await
        .expect("the run completes")
}

/// A character of its own owner (so names never collide) showing `url`.
async fn character_with_link(t: &TestApp, owner: u64, name: &str, url: &str) -> Character {
    let character = t
        .app
        .db
        .create_character(&new_character(GUILD, owner, name), None)
        .await
        .unwrap();
    t.app
        .db
        .set_character_external_portrait(character.id, url)
        .await
        .unwrap();
    t.reload(&character).await
}

/// An `ex` an hour in the past, as Discord signs links (hex Unix seconds).
fn expired_query() -> String {
    format!(
        "ex={:x}&is=0&hm=deadbeef",
        chrono::Utc::now().timestamp() - 3600
    )
}

on_both_databases! {
    async fn twenty_concurrent_uploads_to_one_character_leave_only_the_portrait_it_shows(t: TestDb) {
        let t = TestApp::start(t).await;
        let aria = t.create_character("Aria").await;

        // Every upload starts from the same view of Aria (no portrait yet), as twenty clicks
        // arriving together do.
        let uploads = (0..20u32).map(|i| {
            let png = Bytes::from(images::png(20 + i, 20));
            let portraits = t.app.portraits.clone();
            let aria = aria.clone();
            async move { portraits.ingest(Upload::Bytes(png), &request(&aria)).await }
        });
        for result in futures::future::join_all(uploads).await {
            result.expect("every upload is stored");
        }

        let aria = t.reload(&aria).await;
        let shown = t.app.db.portrait_by_id(aria.portrait_id.expect("a portrait")).await.unwrap().unwrap();
        assert_eq!(t.bucket_keys().await, std::slice::from_ref(&shown.storage_key), "only the portrait Aria shows is stored");
        assert_eq!(t.app.db.stats().await.unwrap().portraits, 1, "and only its row is left");
    }

    async fn cleanup_removes_portrait_rows_and_objects_no_character_uses_after_the_age_threshold(t: TestDb) {
        let t = TestApp::start(t).await;
        let store = t.s3.store();
        // What an earlier race left: a stored object with its row, shown by nobody.
        let key = "dev/portraits/2026/01/7777777777777777_aria.png";
        let png = images::png(30, 30);
        store.put(key, png.clone().into(), "image/png", &[]).await.unwrap();
        let url = store.public_url(key);
        let row = t.app.db.record_portrait(&NewPortrait {
            storage_key: key,
            public_url: &url,
            sha256: &"ab".repeat(32),
            size_bytes: png.len() as u64,
            content_type: "image/png",
            width: 30,
            height: 30,
            uploader_id: PLAYER,
            source: "slash_command",
            legacy_url: None,
        }).await.unwrap();
        // A portrait Brom shows stays.
        let brom = t.create_character("Brom").await;
        let shown = t.app.portraits.ingest(Upload::Bytes(images::png(31, 31).into()), &request(&brom)).await.unwrap();

        let young = cleanup_orphans(&t.app.db, &store, "dev", Duration::from_secs(7 * 86_400), true, &[]).await.unwrap();
        assert!(young.orphans.is_empty(), "younger than the threshold: kept");
        assert_eq!(young.too_young, 1);
        assert!(t.app.db.portrait_by_id(row.id).await.unwrap().is_some());

        let dry = cleanup_orphans(&t.app.db, &store, "dev", Duration::ZERO, false, &[]).await.unwrap();
        assert_eq!(dry.orphan_keys(), [key]);
        assert_eq!((dry.scanned, dry.referenced), (2, 1));

        let report = cleanup_orphans(&t.app.db, &store, "dev", Duration::ZERO, true, &[]).await.unwrap();
        assert_eq!(report.deleted_keys(), [key], "{report}");
        assert_eq!(t.app.db.portrait_by_id(row.id).await.unwrap(), None, "the unused row is gone");
        assert_eq!(t.bucket_keys().await, std::slice::from_ref(&shown.record.storage_key), "and its object");
        assert!(t.app.db.portrait_by_id(shown.record.id).await.unwrap().is_some());
    }

    async fn a_cdn_link_shared_by_six_characters_is_downloaded_once_and_stored_once(t: TestDb) {
        let t = TestApp::start(t).await;
        let discord = TestDiscord::start().await;
        let png = images::png(44, 33);
        let path = "/attachments/9/9/party.png";
        let link = t.cdn.host(path, png.clone(), "image/png");
        let mut party = Vec::new();
        for (i, name) in ["Aria", "Brom", "Cass", "Dana", "Eve", "Fay"].into_iter().enumerate() {
            party.push(character_with_link(&t, 20_000 + i as u64, name, &link).await);
        }

        let summary = migrate(&migrator(&t, &discord)).await;

        assert_eq!((summary.selected, summary.migrated, summary.failed), (6, 6, 0), "{summary}");
        let downloads = t.cdn.requests().iter().filter(|r| r.path == path).count();
        assert_eq!(downloads, 1, "the link is downloaded once");
        let keys = t.bucket_keys().await;
        assert_eq!(keys.len(), 1, "and stored once: {keys:?}");
        assert!(keys[0].ends_with("_aria.png"), "under the first character's name: {}", keys[0]);
        let mut ids = Vec::new();
        for character in &party {
            let now = t.reload(character).await;
            ids.push(now.portrait_id.expect("migrated"));
            assert_eq!(now.portrait_url, Some(t.s3.store().public_url(&keys[0])));
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "one portrait row, shared");
        assert_eq!(t.app.db.stats().await.unwrap().portraits, 1);
        let items = t.app.db.migration_items(summary.run_id).await.unwrap();
        assert_eq!(items.iter().filter(|i| i.status == "migrated").count(), 6, "each change is recorded for rollback");

        // The object goes only when no character uses it any more.
        for character in &party[..5] {
            t.app.portraits.reset_portrait(character.id, Actor::Player(character.owner_id)).await.unwrap();
        }
        assert_eq!(t.bucket_keys().await, keys, "Fay still shows it");
        t.app.portraits.reset_portrait(party[5].id, Actor::Player(party[5].owner_id)).await.unwrap();
        assert_eq!(t.bucket_keys().await, Vec::<String>::new());
        assert_eq!(t.app.db.stats().await.unwrap().portraits, 0);
    }

    async fn the_same_bytes_uploaded_for_two_characters_are_stored_once_under_the_first_name(t: TestDb) {
        let t = TestApp::start(t).await;
        let aria = t.create_character("Aria").await;
        let brom = t.create_character("Brom").await;
        let png = Bytes::from(images::png(40, 41));

        let first = t.app.portraits.ingest(Upload::Bytes(png.clone()), &request(&aria)).await.unwrap();
        let second = t.app.portraits.ingest(Upload::Bytes(png), &request(&brom)).await.unwrap();

        assert_eq!(second.record.id, first.record.id, "the row is shared");
        assert!(second.already_stored, "nothing was written the second time");
        assert!(first.record.storage_key.ends_with("_aria.png"), "{}", first.record.storage_key);
        assert_eq!(t.bucket_keys().await, std::slice::from_ref(&first.record.storage_key));
    }

    async fn the_same_bytes_uploaded_for_eight_characters_at_once_are_stored_once(t: TestDb) {
        let t = TestApp::start(t).await;
        let mut party = Vec::new();
        for name in ["Aria", "Brom", "Cyd", "Dax", "Eve", "Fay", "Gus", "Hal"] {
            party.push(t.create_character(name).await);
        }
        let png = Bytes::from(images::png(42, 43));

        let uploads = party.iter().map(|character| {
            let portraits = t.app.portraits.clone();
            let png = png.clone();
            async move { portraits.ingest(Upload::Bytes(png), &request(character)).await }
        });
        let stored: Vec<_> = futures::future::join_all(uploads)
            .await
            .into_iter()
            .map(|result| result.expect("every upload is stored"))
            .collect();

        let keys = t.bucket_keys().await;
        assert_eq!(keys.len(), 1, "one object for one image: {keys:?}");
        assert_eq!(t.app.db.stats().await.unwrap().portraits, 1, "and one row");
        for (character, upload) in party.iter().zip(&stored) {
            assert_eq!(upload.record.storage_key, keys[0], "{}", character.name);
            assert_eq!(t.reload(character).await.portrait_id, Some(upload.record.id), "{}", character.name);
        }
        assert_eq!(stored.iter().filter(|upload| !upload.already_stored).count(), 1, "written once");
    }

    async fn a_killed_run_is_marked_interrupted_with_its_counts_when_its_lease_is_taken_over(t: TestDb) {
        let t = TestApp::start(t).await;
        let discord = TestDiscord::start().await;
        let db = &t.app.db;
        // What a run killed mid-way leaves: its record `running`, one character migrated, one
        // failure, and its lease (held by a process on a machine that is gone).
        let killed = db.start_migration_run(false, "cli").await.unwrap();
        db.set_migration_run_selected(killed.id, 3).await.unwrap();
        let link = t.cdn.host("/attachments/8/1/a.png", images::png(10, 12), "image/png");
        let done = character_with_link(&t, 30_001, "Done", &link).await;
        db.attach_portrait(done.id, &NewPortrait {
            storage_key: "dev/portraits/2026/01/1212121212121212_done.png",
            public_url: "https://img.example.test/done.png",
            sha256: &"cd".repeat(32),
            size_bytes: 10,
            content_type: "image/png",
            width: 10,
            height: 12,
            uploader_id: PLAYER,
            source: "migration",
            legacy_url: Some(&link),
        }, Some(killed.id)).await.unwrap();
        let failed = character_with_link(&t, 30_002, "Failed", &format!("{}/attachments/8/2/gone.png", t.cdn.origin())).await;
        db.record_migration_failure(killed.id, failed.id, failed.portrait_url.as_deref().unwrap(), "gone").await.unwrap();
        let held = db.try_acquire_lease("cdn-migration", "started by cli on a-dead-machine (pid 1)", Duration::from_millis(1)).await.unwrap();
        assert!(held.is_ok());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(db.migration_run(killed.id).await.unwrap().unwrap().status, "running");

        let summary = migrate(&migrator(&t, &discord)).await;

        let before = db.migration_run(killed.id).await.unwrap().unwrap();
        assert_eq!(before.status, "interrupted", "{before:?}");
        assert_eq!((before.selected, before.migrated, before.failed), (3, 1, 1), "{before:?}");
        assert!(before.finished_at.is_some());
        let latest = db.migration_runs(2).await.unwrap();
        assert_eq!(latest[0].id, summary.run_id);
        assert_eq!(latest[0].status, "completed");
    }

    async fn expired_links_are_reported_as_not_refreshed_when_the_refresh_call_fails_and_migrate_next_time(t: TestDb) {
        let t = TestApp::start(t).await;
        let discord = TestDiscord::start().await;
        let png = images::png(21, 22);
        let old_path = "/attachments/7/1/old.png";
        t.cdn.expire(old_path);
        let old = format!("{}{old_path}?{}", t.cdn.origin(), expired_query());
        let fresh = t.cdn.host("/attachments/7/1/fresh.png", png.clone(), "image/png");
        discord.set_refreshed_url(&old, &fresh);
        let expired = character_with_link(&t, 40_001, "Expired", &old).await;
        // Really gone: Discord refreshes it, and the refreshed link is gone too.
        let gone_path = "/attachments/7/2/gone.png";
        t.cdn.expire(gone_path);
        let gone = character_with_link(&t, 40_002, "Gone", &format!("{}{gone_path}", t.cdn.origin())).await;
        // Both refresh calls of the first run (up front, then the retry) fail.
        discord.fail_rest("POST", "attachments/refresh-urls", 502, serde_json::json!({"message": "Bad Gateway"}), 2);

        let first = migrate(&migrator(&t, &discord)).await;

        assert_eq!((first.migrated, first.failed), (0, 2), "{first}");
        let reason_of = |summary: &MigrationSummary, c: &Character| summary.failures.iter()
            .find(|f| f.character_id == c.id).map(|f| f.reason.clone()).expect("listed");
        let not_refreshed = reason_of(&first, &expired);
        assert!(not_refreshed.starts_with("not refreshed"), "{not_refreshed}");
        assert!(not_refreshed.contains("will be retried"), "{not_refreshed}");
        assert!(not_refreshed.contains("502"), "{not_refreshed}");
        assert!(!not_refreshed.contains("gone"), "{not_refreshed}");
        let unknown = reason_of(&first, &gone);
        assert!(unknown.starts_with("not refreshed"), "not known to be gone yet: {unknown}");
        assert_eq!(t.reload(&expired).await.portrait_url.as_deref(), Some(old.as_str()), "left as it was");

        let second = migrate(&migrator(&t, &discord)).await;
        assert_eq!((second.migrated, second.failed), (1, 1), "{second}");
        let really_gone = reason_of(&second, &gone);
        assert!(really_gone.contains("gone even after refreshing"), "{really_gone}");
        let now = t.reload(&expired).await;
        let record = t.app.db.portrait_by_id(now.portrait_id.expect("migrated")).await.unwrap().unwrap();
        assert_eq!(t.s3.store().get(&record.storage_key).await.unwrap().bytes.as_ref(), png.as_slice());
    }
}
