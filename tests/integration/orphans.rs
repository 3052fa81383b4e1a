//! `cleanup-orphans`: only unreferenced, old-enough objects under the environment's prefix are
//! listed, and only those are deleted. On s3s-fs, on SQLite and PostgreSQL.
//!
//! Ages are tested without sleeping: every object is seconds old, so `older_than = 0s` makes
//! all of them old enough and `7d` none.

use std::time::Duration;

use bytes::Bytes;
use portrait_bot::db::{Character, Db, NewPortrait};

use crate::support::app::new_character;
use portrait_bot::migration::orphans::{cleanup_orphans, delete_orphans, find_orphans, parse_age};
use portrait_bot::storage::{ListedObject, Store};

use crate::on_both_databases;
use crate::support::r2::R2Access;
use testkit::s3::TestS3;

const GUILD: u64 = 1_400_000_000_000_000_001;
const PLAYER: u64 = 600_000_000_000_000_002;

/// A portrait row and the character Aria reference it.
const ATTACHED: &str = "dev/portraits/2026/01/1111111111111111_aria.png";
/// Only a portrait row references it and no character uses that row: an orphan, row and all.
const RECORDED: &str = "dev/portraits/2026/01/2222222222222222_brom.png";
/// No row; the character Cass shows it through its public URL (an import, or a prefix move).
const SHOWN: &str = "dev/old-bot/cass portrait.png";
/// No row; the character Dana shows it through the bucket's former public domain.
const SHOWN_ELSEWHERE: &str = "dev/portraits/2025/12/3333333333333333_dana.png";
/// Nothing references these two.
const LOST: &str = "dev/portraits/2025/11/4444444444444444_lost.png";
const PROBE: &str = "dev/portrait-bot-check-0123.txt";
/// Unreferenced, but another environment's or not yet prefixed: never considered here.
const PROD_ORPHAN: &str = "prod/portraits/2026/01/5555555555555555_eve.png";
const LEGACY_ORPHAN: &str = "portraits/2024/05/6666666666666666_old.png";

const ALL: [&str; 8] = [
    ATTACHED,
    RECORDED,
    SHOWN,
    SHOWN_ELSEWHERE,
    LOST,
    PROBE,
    PROD_ORPHAN,
    LEGACY_ORPHAN,
];
const DELETES: [&str; 2] = ["DeleteObject", "DeleteObjects"];
const WEEK: Duration = Duration::from_secs(7 * 86_400);

fn bytes_of(key: &str) -> Bytes {
    Bytes::from(format!("the bytes of {key}"))
}

fn portrait<'a>(key: &'a str, url: &'a str) -> NewPortrait<'a> {
    NewPortrait {
        storage_key: key,
        public_url: url,
        sha256: "ef".repeat(32).leak(),
        size_bytes: bytes_of(key).len() as u64,
        content_type: "image/png",
        width: 64,
        height: 64,
        uploader_id: PLAYER,
        source: "slash",
        legacy_url: None,
    }
}

async fn character(db: &Db, name: &str) -> Character {
    db.create_character(&new_character(GUILD, PLAYER, name), None)
        .await
        .expect("character created")
}

struct Fixture {
    s3: TestS3,
    store: Store,
}

impl Fixture {
    async fn listing(&self) -> Vec<ListedObject> {
        self.store.list_prefix("").await.expect("list the bucket")
    }

    fn deletes(&self) -> usize {
        DELETES.iter().map(|op| self.s3.requests(op)).sum()
    }

    /// The fixture's keys still in the bucket, sorted.
    async fn keys(&self) -> Vec<String> {
        self.s3.keys().await
    }
}

fn sorted(keys: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    keys.sort();
    keys
}

async fn fixture(db: &Db) -> Fixture {
    let s3 = TestS3::start().await;
    let store = s3.store();
    for key in ALL {
        store
            .put(key, bytes_of(key), "image/png", &[])
            .await
            .unwrap();
    }
    let aria = character(db, "Aria").await;
    let url = store.public_url(ATTACHED);
    db.attach_portrait(aria.id, &portrait(ATTACHED, &url), None)
        .await
        .unwrap();
    let url = store.public_url(RECORDED);
    db.record_portrait(&portrait(RECORDED, &url)).await.unwrap();
    let cass = character(db, "Cass").await;
    db.set_character_external_portrait(cass.id, &store.public_url(SHOWN))
        .await
        .unwrap();
    let dana = character(db, "Dana").await;
    db.set_character_external_portrait(
        dana.id,
        &format!("https://pub-0123.r2.dev/{SHOWN_ELSEWHERE}"),
    )
    .await
    .unwrap();
    s3.clear_request_log();
    Fixture { s3, store }
}

on_both_databases! {
    async fn a_dry_run_lists_exactly_the_unreferenced_old_enough_objects_of_this_environment(t: TestDb) {
        let f = fixture(&t.db).await;
        let listing = f.listing().await;

        let report = cleanup_orphans(&t.db, &f.store, "dev", Duration::ZERO, false, &[]).await.expect("dry run");

        assert_eq!(report.orphan_keys(), [PROBE, LOST, RECORDED], "in key order");
        assert_eq!(report.orphans.listed().iter().map(|o| o.object.size).collect::<Vec<_>>(),
            [bytes_of(PROBE).len() as u64, bytes_of(LOST).len() as u64, bytes_of(RECORDED).len() as u64]);
        assert!(!report.executed);
        assert_eq!((report.scanned, report.referenced, report.too_young), (6, 3, 0));
        assert!(report.deleted.is_empty());
        let text = report.to_string();
        assert!(text.contains("Would delete 3 orphans"), "{text}");
        assert!(text.contains(&format!("  {LOST} (")), "{text}");
        assert!(text.contains("nothing was deleted"), "{text}");

        assert_eq!(f.listing().await, listing, "the bucket is unchanged");
        assert_eq!(f.deletes(), 0);
    }

    async fn objects_younger_than_the_age_guard_are_never_listed_or_deleted(t: TestDb) {
        let f = fixture(&t.db).await;
        let listing = f.listing().await;

        let report = cleanup_orphans(&t.db, &f.store, "dev", WEEK, true, &[]).await.expect("run");

        assert!(report.orphans.is_empty());
        assert!(report.deleted.is_empty());
        assert_eq!((report.scanned, report.referenced, report.too_young), (6, 3, 3));
        assert!(report.to_string().contains("3 unreferenced but newer than 7d (kept)"), "{report}");
        assert_eq!(f.listing().await, listing);
        assert_eq!(f.deletes(), 0);
    }

    async fn an_executed_cleanup_deletes_exactly_the_orphans_it_listed(t: TestDb) {
        let f = fixture(&t.db).await;
        let planned = cleanup_orphans(&t.db, &f.store, "dev", Duration::ZERO, false, &[]).await.unwrap();

        let report = cleanup_orphans(&t.db, &f.store, "dev", Duration::ZERO, true, &[]).await.expect("run");

        assert!(report.executed);
        assert_eq!(report.orphans, planned.orphans);
        let planned_objects: Vec<_> = planned.orphans.listed().iter().map(|o| o.object.clone()).collect();
        assert_eq!(report.deleted.listed(), planned_objects, "deleted exactly what the dry run listed");
        assert_eq!((report.kept.total(), report.failures.total()), (0, 0));
        assert!(report.to_string().contains("Deleted 3 orphans"), "{report}");
        assert_eq!(f.keys().await, sorted(&[ATTACHED, SHOWN, SHOWN_ELSEWHERE, PROD_ORPHAN, LEGACY_ORPHAN]));
        assert_eq!(t.db.portrait_by_key(RECORDED).await.unwrap(), None, "the unused row went with its object");
        for key in [ATTACHED, SHOWN, SHOWN_ELSEWHERE, PROD_ORPHAN, LEGACY_ORPHAN] {
            assert_eq!(f.store.get(key).await.unwrap().bytes, bytes_of(key), "{key}");
        }

        let again = cleanup_orphans(&t.db, &f.store, "dev", Duration::ZERO, true, &[]).await.unwrap();
        assert_eq!((again.orphans.total(), again.deleted.total()), (0, 0));
        assert!(again.to_string().contains("No orphans"), "{again}");
    }

    async fn in_prod_only_prod_objects_are_considered(t: TestDb) {
        let f = fixture(&t.db).await;
        let report = cleanup_orphans(&t.db, &f.store, "prod", Duration::ZERO, true, &[]).await.expect("run");
        assert_eq!(report.orphan_keys(), [PROD_ORPHAN]);
        assert_eq!(report.deleted_keys(), [PROD_ORPHAN]);
        assert_eq!(report.scanned, 1);
        assert_eq!(f.keys().await, sorted(&[ATTACHED, RECORDED, SHOWN, SHOWN_ELSEWHERE, LOST, PROBE, LEGACY_ORPHAN]));
    }

    async fn an_orphan_referenced_after_the_listing_is_kept_by_the_check_before_deleting(t: TestDb) {
        let f = fixture(&t.db).await;
        let report = find_orphans(&t.db, &f.store, "dev", Duration::ZERO).await.unwrap();
        assert_eq!(report.orphan_keys(), [PROBE, LOST, RECORDED]);

        // Between the listing and the delete: an upload of the same bytes records LOST again,
        // and an import points Fay at PROBE.
        let url = f.store.public_url(LOST);
        t.db.record_portrait(&portrait(LOST, &url)).await.unwrap();
        let fay = character(&t.db, "Fay").await;
        t.db.set_character_external_portrait(fay.id, &f.store.public_url(PROBE)).await.unwrap();

        let report = delete_orphans(&t.db, &f.store, report).await;
        assert_eq!(report.deleted_keys(), [RECORDED], "the one nothing saved");
        assert!(report.failures.is_empty());
        let kept: Vec<(&str, &str)> = report.kept.listed().iter().map(|k| (k.key.as_str(), k.reason.as_str())).collect();
        let fay_reason = format!("character #{} shows it now ({})", fay.id, f.store.public_url(PROBE));
        assert_eq!(kept, [(PROBE, fay_reason.as_str()), (LOST, "a portrait row references it now")]);
        assert!(report.to_string().contains("Kept 2 objects:"), "{report}");
        assert_eq!(f.deletes(), 1);
        let left: Vec<&str> = ALL.into_iter().filter(|k| *k != RECORDED).collect();
        assert_eq!(f.keys().await, sorted(&left));
    }

    async fn an_orphan_already_gone_is_reported_and_others_are_still_deleted(t: TestDb) {
        let f = fixture(&t.db).await;
        let report = find_orphans(&t.db, &f.store, "dev", Duration::ZERO).await.unwrap();
        f.store.delete(PROBE).await.unwrap();

        let report = delete_orphans(&t.db, &f.store, report).await;
        assert_eq!(report.deleted_keys(), [LOST, RECORDED]);
        assert_eq!(report.kept.total(), 1);
        assert_eq!((report.kept.listed()[0].key.as_str(), report.kept.listed()[0].reason.as_str()), (PROBE, "it no longer exists"));
    }

    async fn an_unknown_environment_is_refused_before_the_bucket_is_touched(t: TestDb) {
        let f = fixture(&t.db).await;
        let err = cleanup_orphans(&t.db, &f.store, "", Duration::ZERO, true, &[]).await.expect_err("refused");
        assert!(err.to_string().contains("use `dev` or `prod`"), "{err}");
        assert_eq!(f.s3.request_log(), Vec::<String>::new());
    }
}

#[test]
fn the_age_flag_reads_seconds_minutes_hours_and_days() {
    assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
    assert_eq!(parse_age("24h"), Ok(Duration::from_secs(86_400)));
    assert_eq!(parse_age("7d"), Ok(WEEK));
    assert!(parse_age("24").unwrap_err().contains("e.g. 24h"));
}
