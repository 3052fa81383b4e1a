//! Whole-table jobs read the database and the bucket in pages (issue 11). These tests use tiny
//! pages so every run crosses many page boundaries, and pin what paging must not change:
//! dry-run counts, `--limit`, resuming after an interruption, rollback, orphan verdicts and
//! prefix moves. On s3s-fs, the simulated CDN, SQLite and PostgreSQL.

use std::collections::BTreeMap;
use std::time::Duration;

use portrait_bot::db::{Character, NewPortrait};
use portrait_bot::fetch::Origin;
use portrait_bot::migration::bucket::{KeyFailure, LISTED};
use portrait_bot::migration::cdn::{CdnMigrator, MigrateOptions, MigrationSummary};
use portrait_bot::migration::orphans::{
    cleanup_orphans_paged, delete_orphans, find_orphans, find_orphans_paged,
};
use portrait_bot::migration::prefix::{migrate_prefix, migrate_prefix_paged};
use portrait_bot::moderation::history::Actor;
use portrait_bot::storage::Store;

use crate::on_both_databases;
use crate::support::app::{new_character, TestApp, GUILD, PLAYER};
use crate::support::r2::R2Access;
use testkit::images;

/// Candidates read per page in these tests.
const PAGE: usize = 3;

fn migrator(t: &TestApp) -> CdnMigrator {
    CdnMigrator::new(
        t.app.db.clone(),
        t.app.portraits.clone(),
        None,
        vec![Origin::parse(&t.cdn.origin()).unwrap()],
    )
    .with_page_size(PAGE)
}

fn options(dry_run: bool, limit: Option<usize>) -> MigrateOptions {
    MigrateOptions {
        dry_run,
        limit,
        concurrency: 2,
        started_by: "test".into(),
    }
}

async fn run(migrator: &CdnMigrator, dry_run: bool, limit: Option<usize>) -> MigrationSummary {
    migrator
        .run(&options(dry_run, limit), &|_| {})
        .await
        .expect("the run completes")
}

/// 14 characters by id: every third one shows a non-Discord URL (never selected), two share one
/// link, one link is gone, the rest have their own image. Returns them with the bytes each
/// should end up with (`None`: not migrated).
async fn plant(t: &TestApp) -> Vec<(Character, Option<Vec<u8>>)> {
    let shared = images::png(70, 70);
    let shared_link = t
        .cdn
        .host("/attachments/1/0/shared.png", shared.clone(), "image/png");
    let mut planted = Vec::new();
    for i in 0..14u32 {
        let (url, bytes) = match i {
            _ if i % 3 == 2 => (format!("https://images.example.com/{i}.png"), None),
            4 | 10 => (shared_link.clone(), Some(shared.clone())),
            7 => {
                t.cdn.expire("/attachments/1/7/gone.png");
                (format!("{}/attachments/1/7/gone.png", t.cdn.origin()), None)
            }
            _ => {
                let png = images::png(10 + i, 11);
                let url = t.cdn.host(
                    &format!("/attachments/1/{i}/p.png"),
                    png.clone(),
                    "image/png",
                );
                (url, Some(png))
            }
        };
        let character = t
            .app
            .db
            .create_character(
                &new_character(GUILD, 50_000 + u64::from(i), &format!("Hero {i}")),
                None,
            )
            .await
            .unwrap();
        t.app
            .db
            .set_character_external_portrait(character.id, &url)
            .await
            .unwrap();
        planted.push((t.reload(&character).await, bytes));
    }
    planted
}

/// Every planted character's (portrait_id is set, portrait_url).
async fn state(
    t: &TestApp,
    planted: &[(Character, Option<Vec<u8>>)],
) -> BTreeMap<i64, (bool, Option<String>)> {
    let mut rows = BTreeMap::new();
    for (c, _) in planted {
        let now = t.reload(c).await;
        rows.insert(c.id, (now.portrait_id.is_some(), now.portrait_url));
    }
    rows
}

fn portrait(key: &str, url: &str) -> NewPortrait<'static> {
    NewPortrait {
        storage_key: key.to_owned().leak(),
        public_url: url.to_owned().leak(),
        sha256: "ef".repeat(32).leak(),
        size_bytes: 5,
        content_type: "image/png",
        width: 8,
        height: 8,
        uploader_id: PLAYER,
        source: "slash_command",
        legacy_url: None,
    }
}

/// 11 objects under `dev/`: some shown through a portrait row, some through a URL, one through a
/// row nobody uses, some by nothing; plus 3 unprefixed objects (two shown).
async fn plant_objects(t: &TestApp, store: &Store) {
    for i in 0..11u32 {
        let key = format!("dev/portraits/2026/0{}/{i:016}_o{i}.png", 1 + i % 3);
        store
            .put(&key, format!("bytes {i}").into(), "image/png", &[])
            .await
            .unwrap();
        let url = store.public_url(&key);
        match i % 4 {
            0 => {
                let c = t.create_character(&format!("Row {i}")).await;
                t.app
                    .db
                    .attach_portrait(c.id, &portrait(&key, &url), None)
                    .await
                    .unwrap();
            }
            1 => {
                let c = t.create_character(&format!("Url {i}")).await;
                t.app
                    .db
                    .set_character_external_portrait(c.id, &url)
                    .await
                    .unwrap();
            }
            2 => {
                t.app
                    .db
                    .record_portrait(&portrait(&key, &url))
                    .await
                    .unwrap();
            }
            _ => {}
        }
    }
    for i in 0..3u32 {
        let key = format!("portraits/2024/05/{i:016}_legacy{i}.png");
        store
            .put(&key, format!("legacy {i}").into(), "image/png", &[])
            .await
            .unwrap();
        if i < 2 {
            let c = t.create_character(&format!("Legacy {i}")).await;
            t.app
                .db
                .set_character_external_portrait(c.id, &store.public_url(&key))
                .await
                .unwrap();
        }
    }
}

on_both_databases! {
    async fn a_paged_dry_run_counts_every_candidate_and_a_limit_selects_the_first_by_id(t: TestDb) {
        let t = TestApp::start(t).await;
        let planted = plant(&t).await;
        let before = state(&t, &planted).await;
        let candidates: Vec<i64> = planted.iter().filter(|(c, _)| !c.portrait_url.as_deref().unwrap().contains("example.com")).map(|(c, _)| c.id).collect();
        assert_eq!(candidates.len(), 10);

        let dry = run(&migrator(&t), true, None).await;
        assert_eq!(dry.selected, 10, "{dry}");
        assert_eq!(dry.sample.len(), 10);
        assert!(dry.sample[0].starts_with("Hero 0: "), "{:?}", dry.sample);
        let limited = run(&migrator(&t), true, Some(7)).await;
        assert_eq!(limited.selected, 7, "{limited}");
        assert_eq!(state(&t, &planted).await, before, "dry runs change nothing");

        let first = run(&migrator(&t), false, Some(7)).await;
        assert_eq!(first.selected, 7);
        let touched: Vec<i64> = state(&t, &planted).await.into_iter().filter(|(id, row)| before[id] != *row).map(|(id, _)| id).collect();
        let first_seven_ok: Vec<i64> = candidates[..7].iter().copied().filter(|id| *id != planted[7].0.id).collect();
        assert_eq!(touched, first_seven_ok, "the first seven candidates by id, but the gone one");
        assert_eq!((first.migrated, first.failed), (6, 1), "{first}");

        let rest = run(&migrator(&t), false, None).await;
        assert_eq!((rest.selected, rest.migrated, rest.failed), (4, 3, 1), "the three left and the gone one again: {rest}");
        for (c, bytes) in &planted {
            let now = t.reload(c).await;
            match bytes {
                Some(bytes) => {
                    let record = t.app.db.portrait_by_id(now.portrait_id.expect("migrated")).await.unwrap().unwrap();
                    assert_eq!(t.s3.store().get(&record.storage_key).await.unwrap().bytes.as_ref(), bytes.as_slice(), "{}", c.name);
                }
                None => assert_eq!(now.portrait_url, c.portrait_url, "{} left alone", c.name),
            }
        }
        assert_eq!(t.bucket_keys().await.len(), 8, "9 migrated characters, two sharing one object");
    }

    async fn an_interrupted_paged_migration_resumes_to_the_same_end_and_rolls_back_across_pages(t: TestDb) {
        let t = TestApp::start(t).await;
        let planted = plant(&t).await;
        let before = state(&t, &planted).await;
        t.cdn.set_latency(Duration::from_millis(150));

        // Interrupted in the middle of a page: the future is dropped, as a killed process stops.
        let interrupted = tokio::time::timeout(Duration::from_millis(500), migrator(&t).run(&options(false, None), &|_| {})).await;
        assert!(interrupted.is_err(), "the first run was interrupted");
        t.cdn.set_latency(Duration::ZERO);
        let partly = state(&t, &planted).await;
        assert_ne!(partly, before, "some characters were migrated before the interruption");

        let resumed = run(&migrator(&t), false, None).await;
        let runs = t.app.db.migration_runs(5).await.unwrap();
        assert_eq!(runs[1].status, "interrupted", "{runs:?}");
        let done = state(&t, &planted).await;
        for (c, bytes) in &planted {
            assert_eq!(done[&c.id].0, bytes.is_some(), "{}", c.name);
        }
        assert_eq!(t.bucket_keys().await.len(), 8, "no duplicates after resuming");

        let restored = migrator(&t).rollback(resumed.run_id, Actor::Operator).await.unwrap();
        assert_eq!(restored, resumed.migrated);
        let first_run = runs[1].id;
        migrator(&t).rollback(first_run, Actor::Operator).await.unwrap();
        assert_eq!(state(&t, &planted).await, before, "both runs rolled back: every legacy link is back");
    }

    async fn orphan_verdicts_and_deletions_are_the_same_whatever_the_page_size(t: TestDb) {
        let t = TestApp::start(t).await;
        let store = t.s3.store();
        plant_objects(&t, &store).await;

        let whole = find_orphans(&t.app.db, &store, "dev", Duration::ZERO).await.unwrap();
        let paged = find_orphans_paged(&t.app.db, &store, "dev", Duration::ZERO, 2).await.unwrap();
        assert_eq!(paged, whole);
        // o2, o6, o10: unused rows; o3, o7: nothing.
        let expected: Vec<String> = [2, 3, 6, 7, 10].iter().map(|i| format!("_o{i}.png")).collect();
        let mut found: Vec<String> = whole.orphan_keys().iter().map(|k| k.rsplit_once('/').unwrap().1[16..].to_owned()).collect();
        found.sort();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort();
        assert_eq!(found, expected_sorted, "{whole}");
        assert_eq!((whole.scanned, whole.referenced), (11, 6));

        let report = delete_orphans(&t.app.db, &store, paged).await;
        let orphans: Vec<_> = whole.orphans.listed().iter().map(|o| o.object.clone()).collect();
        assert_eq!(report.deleted.listed(), orphans);
        assert_eq!(t.bucket_keys().await.len(), 14 - 5);
        assert_eq!(t.app.db.stats().await.unwrap().portraits, 3, "the three unused rows went with their objects");
    }

    async fn a_paged_prefix_migration_reports_and_moves_like_a_whole_one(t: TestDb) {
        let t = TestApp::start(t).await;
        let store = t.s3.store();
        plant_objects(&t, &store).await;

        let whole = migrate_prefix(&t.app.db, &store, "dev", true, &[]).await.unwrap();
        let paged = migrate_prefix_paged(&t.app.db, &store, "dev", true, &[], 2).await.unwrap();
        assert_eq!(paged, whole);
        assert_eq!(whole.moves.total(), 3);
        assert_eq!(whole.characters_updated, 2);

        let moved = migrate_prefix_paged(&t.app.db, &store, "dev", false, &[], 2).await.unwrap();
        assert!(moved.is_complete(), "{moved}");
        assert_eq!(moved.moved_keys(), whole.moved_keys());
        assert!(t.bucket_keys().await.iter().all(|k| k.starts_with("dev/")));
    }

    async fn a_cleanup_of_many_orphans_deletes_page_by_page_and_lists_only_the_first(t: TestDb) {
        let t = TestApp::start(t).await;
        let store = t.s3.store();
        // 25 orphans (every fifth with an unused row), two objects characters show, and a
        // default portrait no row references.
        let mut orphans = Vec::new();
        for i in 0..25u32 {
            let key = format!("dev/portraits/2026/0{}/{i:016}_lost{i}.png", 1 + i % 3);
            store.put(&key, format!("lost {i}").into(), "image/png", &[]).await.unwrap();
            if i % 5 == 0 {
                t.app.db.record_portrait(&portrait(&key, &store.public_url(&key))).await.unwrap();
            }
            orphans.push(key);
        }
        orphans.sort();
        let shown = ["dev/portraits/2026/01/aa_shown.png", "dev/portraits/2026/02/bb_shown.png"];
        for (i, key) in shown.iter().enumerate() {
            store.put(key, "shown".into(), "image/png", &[]).await.unwrap();
            let c = t.create_character(&format!("Shown {i}")).await;
            t.app.db.attach_portrait(c.id, &portrait(key, &store.public_url(key)), None).await.unwrap();
        }
        let default = KeyFailure { key: "dev/defaults/portrait.png".into(), reason: "it is the default portrait".into() };
        store.put(&default.key, "default".into(), "image/png", &[]).await.unwrap();
        let keep = std::slice::from_ref(&default);

        let dry = cleanup_orphans_paged(&t.app.db, &store, "dev", Duration::ZERO, false, keep, 4).await.unwrap();
        assert_eq!((dry.scanned, dry.referenced, dry.orphans.total()), (28, 2, 25));
        assert_eq!(dry.orphan_keys(), orphans[..LISTED].iter().map(String::as_str).collect::<Vec<_>>(), "the first by key");
        assert_eq!(dry.orphans.listed().iter().filter(|o| o.unused_row.is_some()).count(), 4);
        assert_eq!(dry.kept.listed(), keep);
        let text = dry.to_string();
        assert!(text.contains("Would delete 25 orphans"), "{text}");
        assert!(text.contains("  … and 5 more (not listed)"), "{text}");
        assert!(text.contains("dev/defaults/portrait.png: it is the default portrait"), "{text}");
        assert_eq!(t.bucket_keys().await.len(), 28, "a dry run deletes nothing");

        let report = cleanup_orphans_paged(&t.app.db, &store, "dev", Duration::ZERO, true, keep, 4).await.unwrap();
        assert_eq!((report.orphans.total(), report.deleted.total(), report.failures.total()), (25, 25, 0), "{report}");
        assert_eq!(report.deleted_keys(), dry.orphan_keys());
        assert_eq!(report.orphans, dry.orphans, "the same verdicts as the dry run");
        assert!(report.to_string().contains("Deleted 25 orphans"), "{report}");
        let mut left = vec![default.key.clone(), shown[0].to_owned(), shown[1].to_owned()];
        left.sort();
        assert_eq!(t.bucket_keys().await, left, "every orphan deleted, across pages; the rest kept");
        assert_eq!(t.app.db.stats().await.unwrap().portraits, 2, "the unused rows went with their objects");
    }

    async fn a_prefix_move_of_many_objects_counts_them_all_and_lists_the_first(t: TestDb) {
        let t = TestApp::start(t).await;
        let store = t.s3.store();
        let mut keys = Vec::new();
        for i in 0..25u32 {
            let key = format!("portraits/2024/0{}/{i:016}_old{i}.png", 1 + i % 3);
            store.put(&key, format!("old {i}").into(), "image/png", &[]).await.unwrap();
            if i % 5 == 0 {
                let c = t.create_character(&format!("Old {i}")).await;
                t.app.db.attach_portrait(c.id, &portrait(&key, &store.public_url(&key)), None).await.unwrap();
            }
            keys.push(key);
        }
        keys.sort();

        let dry = migrate_prefix_paged(&t.app.db, &store, "dev", true, &[], 4).await.unwrap();
        assert_eq!((dry.moves.total(), dry.portraits_updated, dry.characters_updated), (25, 5, 5));
        assert_eq!(dry.moved_keys(), keys[..LISTED].iter().map(String::as_str).collect::<Vec<_>>());
        assert!(dry.to_string().contains("  … and 5 more (not listed)"), "{dry}");

        let moved = migrate_prefix_paged(&t.app.db, &store, "dev", false, &[], 4).await.unwrap();
        assert!(moved.is_complete(), "{moved}");
        assert_eq!((moved.moves.total(), moved.portraits_updated, moved.characters_updated), (25, 5, 5));
        assert_eq!(moved.moved_keys(), dry.moved_keys());
        let mut expected: Vec<String> = keys.iter().map(|k| format!("dev/{k}")).collect();
        expected.sort();
        assert_eq!(t.bucket_keys().await, expected);
    }
}

#[tokio::test]
async fn the_local_store_lists_page_by_page_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(dir.path().to_owned(), "http://127.0.0.1:1/objects".into()).unwrap();
    // `a-b` sorts before `a/…` as keys, though the folder `a` sorts before the file `a-b`.
    let keys = [
        "a/c.png",
        "a-b.png",
        "a/b/z.png",
        "b.png",
        "dev/x/1.png",
        "dev/x/2.png",
        "dev/y.png",
    ];
    for key in keys {
        store.put(key, "x".into(), "image/png", &[]).await.unwrap();
    }
    let mut expected: Vec<&str> = keys.to_vec();
    expected.sort();
    for page_size in [1, 2, 3, 100] {
        let (mut listed, mut token) = (Vec::new(), None);
        loop {
            let page = store.list_prefix_page("", token, page_size).await.unwrap();
            assert!(page.objects.len() <= page_size);
            listed.extend(page.objects.into_iter().map(|o| o.key));
            token = page.next;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(listed, expected, "page size {page_size}");
    }
    let page = store.list_prefix_page("dev/", None, 10).await.unwrap();
    let dev: Vec<String> = page.objects.into_iter().map(|o| o.key).collect();
    assert_eq!(dev, ["dev/x/1.png", "dev/x/2.png", "dev/y.png"]);
}

/// A listing continued page by page sees objects added or deleted after its last page, as S3's
/// does: the folder a page stopped in is not reused once it has changed.
#[tokio::test]
async fn the_local_store_sees_changes_between_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(dir.path().to_owned(), "http://127.0.0.1:1/objects".into()).unwrap();
    for key in ["p/1.png", "p/2.png", "p/4.png", "p/5.png"] {
        store.put(key, "x".into(), "image/png", &[]).await.unwrap();
    }
    // A folder untouched for an hour, as a past month's folder is: one the listing may keep.
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::open(dir.path().join("p"))
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(an_hour_ago))
        .unwrap();
    let first = store.list_prefix_page("p/", None, 2).await.unwrap();
    let keys = |page: &portrait_bot::storage::ListPage| {
        page.objects
            .iter()
            .map(|o| o.key.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&first), ["p/1.png", "p/2.png"]);

    store
        .put("p/3.png", "x".into(), "image/png", &[])
        .await
        .unwrap();
    store.delete("p/4.png").await.unwrap();
    let second = store
        .list_prefix_page("p/", first.next.clone(), 2)
        .await
        .unwrap();
    assert_eq!(keys(&second), ["p/3.png", "p/5.png"]);

    // Unchanged folders give the same pages again, from the same token.
    let again = store.list_prefix_page("p/", first.next, 2).await.unwrap();
    assert_eq!(keys(&again), ["p/3.png", "p/5.png"]);

    // A job deleting what it listed (as the orphan cleanup does) misses nothing after it.
    for key in ["p/1.png", "p/2.png", "p/3.png"] {
        store.delete(key).await.unwrap();
    }
    store
        .put("p/6.png", "x".into(), "image/png", &[])
        .await
        .unwrap();
    let third = store.list_prefix_page("p/", again.next, 2).await.unwrap();
    assert_eq!(keys(&third), ["p/6.png"]);
    assert_eq!(third.next, None);
}
