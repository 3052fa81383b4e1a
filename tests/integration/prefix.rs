//! `migrate-prefix`: objects without a `dev/` or `prod/` prefix move under the environment's
//! prefix, rows follow them, and nothing else in the bucket is touched. On s3s-fs, on SQLite
//! and PostgreSQL.

use bytes::Bytes;
use portrait_bot::db::{Character, Db, NewPortrait, PortraitRecord};

use crate::support::app::new_character;
use portrait_bot::migration::prefix::{migrate_prefix, MigrationError, PrefixReport};
use portrait_bot::storage::{ListedObject, Store};

use crate::on_both_databases;
use crate::support::r2::R2Access;
use testkit::s3::TestS3;

const GUILD: u64 = 1_300_000_000_000_000_001;
const PLAYER: u64 = 700_000_000_000_000_002;

/// A legacy object a portrait row and the character Aria point at.
const ARIA: &str = "portraits/2024/05/0123456789abcdef_aria.png";
/// A legacy object with a portrait row that no character shows.
const BROM: &str = "portraits/2024/06/fedcba9876543210_brom.png";
/// A legacy object with no row, shown by Cass through its plain public URL (an import).
const CASS: &str = "old-bot/cass portrait.png";
/// This environment's object, with a row and the character Dana.
const DANA: &str = "dev/portraits/2026/01/1111111111111111_dana.png";
/// The other environment's object (its rows live in prod's database).
const EVE: &str = "prod/portraits/2026/01/2222222222222222_eve.png";

/// Operations that change the bucket.
const WRITES: [&str; 4] = ["PutObject", "CopyObject", "DeleteObject", "DeleteObjects"];

fn bytes_of(key: &str) -> Bytes {
    // Distinct bytes per key, so a mixed-up copy cannot pass for the right one.
    Bytes::from(format!("\u{89}PNG not really, but the bytes of {key}").repeat(key.len()))
}

fn dev(key: &str) -> String {
    format!("dev/{key}")
}

fn portrait<'a>(key: &'a str, url: &'a str) -> NewPortrait<'a> {
    NewPortrait {
        storage_key: key,
        public_url: url,
        sha256: "cd".repeat(32).leak(),
        size_bytes: bytes_of(key).len() as u64,
        content_type: "image/png",
        width: 64,
        height: 64,
        uploader_id: PLAYER,
        source: "legacy",
        legacy_url: Some("https://cdn.discordapp.com/attachments/1/2/old.png"),
    }
}

struct Fixture {
    s3: TestS3,
    store: Store,
    aria: Character,
    cass: Character,
    dana: Character,
}

impl Fixture {
    /// Every row the fixture made, under both the old and the new keys, for before/after
    /// comparisons.
    async fn rows(&self, db: &Db) -> (Vec<Option<PortraitRecord>>, Vec<Option<Character>>) {
        let mut portraits = Vec::new();
        for key in [ARIA, BROM, CASS, DANA, EVE] {
            portraits.push(db.portrait_by_key(key).await.unwrap());
            portraits.push(db.portrait_by_key(&dev(key)).await.unwrap());
        }
        let mut characters = Vec::new();
        for id in [self.aria.id, self.cass.id, self.dana.id] {
            characters.push(db.character_by_id(id).await.unwrap());
        }
        (portraits, characters)
    }

    async fn listing(&self) -> Vec<ListedObject> {
        self.store.list_prefix("").await.expect("list the bucket")
    }

    async fn bytes(&self, key: &str) -> Bytes {
        self.store.get(key).await.expect("object exists").bytes
    }

    fn writes(&self) -> Vec<String> {
        self.s3
            .request_log()
            .into_iter()
            .filter(|op| WRITES.contains(&op.as_str()))
            .collect()
    }

    async fn character(&self, db: &Db, id: i64) -> Character {
        db.character_by_id(id)
            .await
            .unwrap()
            .expect("character exists")
    }
}

async fn character(db: &Db, name: &str) -> Character {
    db.create_character(&new_character(GUILD, PLAYER, name), None)
        .await
        .expect("character created")
}

async fn fixture(db: &Db) -> Fixture {
    let s3 = TestS3::start().await;
    let store = s3.store();
    for key in [ARIA, BROM, CASS, DANA, EVE] {
        store
            .put(key, bytes_of(key), "image/png", &[])
            .await
            .unwrap();
    }
    let aria = character(db, "Aria").await;
    let url = store.public_url(ARIA);
    db.attach_portrait(aria.id, &portrait(ARIA, &url), None)
        .await
        .unwrap();
    let url = store.public_url(BROM);
    db.record_portrait(&portrait(BROM, &url)).await.unwrap();
    let cass = character(db, "Cass").await;
    db.set_character_external_portrait(cass.id, &store.public_url(CASS))
        .await
        .unwrap();
    let dana = character(db, "Dana").await;
    let url = store.public_url(DANA);
    db.attach_portrait(dana.id, &portrait(DANA, &url), None)
        .await
        .unwrap();
    let aria = db.character_by_id(aria.id).await.unwrap().unwrap();
    let cass = db.character_by_id(cass.id).await.unwrap().unwrap();
    let dana = db.character_by_id(dana.id).await.unwrap().unwrap();
    s3.clear_request_log();
    Fixture {
        s3,
        store,
        aria,
        cass,
        dana,
    }
}

fn moves(report: &PrefixReport) -> Vec<(&str, &str, bool, u64, u64)> {
    report
        .moves
        .listed()
        .iter()
        .map(|m| {
            (
                m.from.as_str(),
                m.to.as_str(),
                m.copied,
                m.portraits_updated,
                m.characters_updated,
            )
        })
        .collect()
}

on_both_databases! {
    async fn a_dry_run_lists_exactly_the_unprefixed_objects_and_changes_nothing(t: TestDb) {
        let f = fixture(&t.db).await;
        let (listing, rows) = (f.listing().await, f.rows(&t.db).await);

        let report = migrate_prefix(&t.db, &f.store, "dev", true, &[]).await.expect("dry run");

        let (aria_to, brom_to, cass_to) = (dev(ARIA), dev(BROM), dev(CASS));
        assert_eq!(moves(&report), [
            (CASS, cass_to.as_str(), true, 0, 1),
            (ARIA, aria_to.as_str(), true, 1, 1),
            (BROM, brom_to.as_str(), true, 1, 0),
        ]);
        assert!(report.dry_run);
        assert_eq!((report.scanned, report.already_prefixed), (5, 2));
        assert!(report.failures.is_empty(), "{report}");
        let text = report.to_string();
        assert!(text.contains("Would move 3 objects"), "{text}");
        assert!(text.contains(&format!("  {ARIA} → {aria_to}")), "{text}");
        assert!(text.contains("nothing was changed"), "{text}");

        assert_eq!(f.listing().await, listing, "the bucket is unchanged");
        assert_eq!(f.rows(&t.db).await, rows, "the rows are unchanged");
        assert_eq!(f.writes(), Vec::<String>::new(), "nothing was written to the bucket");
    }

    async fn an_executed_run_moves_exactly_the_unprefixed_objects_and_points_the_rows_at_them(t: TestDb) {
        let f = fixture(&t.db).await;
        let aria_row = t.db.portrait_by_key(ARIA).await.unwrap().unwrap();
        let brom_row = t.db.portrait_by_key(BROM).await.unwrap().unwrap();
        let dana_row = t.db.portrait_by_key(DANA).await.unwrap().unwrap();

        let report = migrate_prefix(&t.db, &f.store, "dev", false, &[]).await.expect("run");

        let (aria_to, brom_to, cass_to) = (dev(ARIA), dev(BROM), dev(CASS));
        assert_eq!(moves(&report), [
            (CASS, cass_to.as_str(), true, 0, 1),
            (ARIA, aria_to.as_str(), true, 1, 1),
            (BROM, brom_to.as_str(), true, 1, 0),
        ]);
        assert!(report.failures.is_empty(), "{report}");
        assert!(report.to_string().contains("Moved 3 objects"), "{report}");

        let mut expected = vec![aria_to.clone(), brom_to.clone(), cass_to.clone(), DANA.to_owned(), EVE.to_owned()];
        expected.sort();
        assert_eq!(f.s3.keys().await, expected, "sources gone, copies there, the rest untouched");
        for key in [ARIA, BROM, CASS] {
            let copy = f.store.get(&dev(key)).await.unwrap();
            assert_eq!(copy.bytes, bytes_of(key), "{key}");
            assert_eq!(copy.info.content_type.as_deref(), Some("image/png"), "{key}");
        }
        assert_eq!(f.bytes(DANA).await, bytes_of(DANA));
        assert_eq!(f.bytes(EVE).await, bytes_of(EVE));

        let aria_now = t.db.portrait_by_key(&aria_to).await.unwrap().expect("row renamed");
        assert_eq!(aria_now.id, aria_row.id, "the same row, renamed");
        assert_eq!(aria_now.public_url, f.store.public_url(&aria_to));
        assert_eq!(aria_now.legacy_url, aria_row.legacy_url);
        let brom_now = t.db.portrait_by_key(&brom_to).await.unwrap().expect("row renamed");
        assert_eq!((brom_now.id, brom_now.public_url.as_str()), (brom_row.id, f.store.public_url(&brom_to).as_str()));
        assert_eq!(t.db.portrait_by_key(ARIA).await.unwrap(), None);
        assert_eq!(t.db.portrait_by_key(BROM).await.unwrap(), None);
        assert_eq!(t.db.portrait_by_key(DANA).await.unwrap(), Some(dana_row));

        let aria = f.character(&t.db, f.aria.id).await;
        assert_eq!(aria.portrait_id, Some(aria_row.id));
        assert_eq!(aria.portrait_url, Some(f.store.public_url(&aria_to)));
        let cass = f.character(&t.db, f.cass.id).await;
        assert_eq!(cass.portrait_url, Some(f.store.public_url(&cass_to)));
        assert!(cass.portrait_url.as_deref().unwrap().ends_with("/dev/old-bot/cass%20portrait.png"));
        assert_eq!(f.character(&t.db, f.dana.id).await, f.dana, "Dana's portrait was already prefixed");
    }

    async fn a_second_run_finds_nothing_to_move_and_writes_nothing(t: TestDb) {
        let f = fixture(&t.db).await;
        migrate_prefix(&t.db, &f.store, "dev", false, &[]).await.expect("first run");
        let (listing, rows) = (f.listing().await, f.rows(&t.db).await);
        f.s3.clear_request_log();

        let again = migrate_prefix(&t.db, &f.store, "dev", false, &[]).await.expect("second run");
        assert!(again.moves.is_empty());
        assert!(again.failures.is_empty());
        assert_eq!((again.scanned, again.already_prefixed), (5, 5));
        assert!(again.to_string().contains("Nothing to move"), "{again}");
        assert_eq!(f.writes(), Vec::<String>::new());
        assert_eq!(f.listing().await, listing);
        assert_eq!(f.rows(&t.db).await, rows);
    }

    async fn a_run_stopped_after_copying_is_finished_by_the_next_run(t: TestDb) {
        let f = fixture(&t.db).await;
        // Aria's move stopped after the rows were renamed, Brom's right after the copy: both
        // sources are still in the bucket.
        let (aria_to, brom_to) = (dev(ARIA), dev(BROM));
        f.store.copy(ARIA, &aria_to).await.unwrap();
        t.db.rename_object(ARIA, &aria_to, &f.store.public_url(ARIA), &f.store.public_url(&aria_to)).await.unwrap();
        f.store.copy(BROM, &brom_to).await.unwrap();
        f.s3.clear_request_log();

        let planned = migrate_prefix(&t.db, &f.store, "dev", true, &[]).await.expect("dry run");
        let cass_to = dev(CASS);
        let expected = [
            (CASS, cass_to.as_str(), true, 0, 1),
            (ARIA, aria_to.as_str(), false, 0, 0),
            (BROM, brom_to.as_str(), false, 1, 0),
        ];
        assert_eq!(moves(&planned), expected);
        assert!(planned.to_string().contains("(already copied by an earlier run)"), "{planned}");

        let report = migrate_prefix(&t.db, &f.store, "dev", false, &[]).await.expect("run");
        assert_eq!(moves(&report), expected);
        assert!(report.failures.is_empty(), "{report}");
        assert_eq!(f.s3.requests("CopyObject"), 1, "only Cass still needed copying");

        let mut keys = vec![aria_to.clone(), brom_to.clone(), cass_to, DANA.to_owned(), EVE.to_owned()];
        keys.sort();
        assert_eq!(f.s3.keys().await, keys);
        assert_eq!(t.db.portrait_by_key(&brom_to).await.unwrap().map(|r| r.public_url), Some(f.store.public_url(&brom_to)));
        assert_eq!(f.character(&t.db, f.aria.id).await.portrait_url, Some(f.store.public_url(&aria_to)));
        assert!(migrate_prefix(&t.db, &f.store, "dev", false, &[]).await.unwrap().moves.is_empty());
    }

    async fn an_object_whose_destination_holds_other_bytes_is_left_alone_and_reported(t: TestDb) {
        let f = fixture(&t.db).await;
        let brom_to = dev(BROM);
        let other = Bytes::from_static(b"someone else's bytes");
        f.store.put(&brom_to, other.clone(), "image/png", &[]).await.unwrap();
        let brom_row = t.db.portrait_by_key(BROM).await.unwrap();

        for dry_run in [true, false] {
            let report = migrate_prefix(&t.db, &f.store, "dev", dry_run, &[]).await.expect("run");
            assert_eq!(report.moved_keys(), [CASS, ARIA]);
            assert_eq!(report.failures.total(), 1);
            assert_eq!(report.failures.listed()[0].key, BROM);
            let reason = &report.failures.listed()[0].reason;
            assert!(reason.contains(&format!("`{brom_to}` already exists with different content")), "{reason}");
            assert!(report.to_string().contains(&format!("  {BROM}: ")), "{report}");
        }
        assert_eq!(f.bytes(BROM).await, bytes_of(BROM), "the source is kept");
        assert_eq!(f.bytes(&brom_to).await, other, "the destination is not overwritten");
        assert_eq!(t.db.portrait_by_key(BROM).await.unwrap(), brom_row, "its row still points at it");
    }

    async fn a_character_showing_a_legacy_object_through_another_domain_keeps_its_source(t: TestDb) {
        let f = fixture(&t.db).await;
        let fay = character(&t.db, "Fay").await;
        let old_domain_url = format!("https://old-cdn.example.org/{BROM}");
        t.db.set_character_external_portrait(fay.id, &old_domain_url).await.unwrap();

        let planned = migrate_prefix(&t.db, &f.store, "dev", true, &[]).await.expect("dry run");
        assert_eq!(planned.moved_keys(), [CASS, ARIA]);
        assert_eq!(planned.failures.total(), 1);
        assert_eq!(planned.failures.listed()[0].key, BROM);
        assert!(planned.failures.listed()[0].reason.contains(&old_domain_url), "{}", planned.failures.listed()[0].reason);

        for _ in 0..2 {
            let report = migrate_prefix(&t.db, &f.store, "dev", false, &[]).await.expect("run");
            assert_eq!(report.failures.total(), 1, "{report}");
            assert_eq!(report.failures.listed()[0].key, BROM);
            assert!(report.failures.listed()[0].reason.contains(&old_domain_url), "{}", report.failures.listed()[0].reason);
        }
        assert_eq!(f.bytes(BROM).await, bytes_of(BROM), "Fay's portrait still loads");
        assert_eq!(f.bytes(&dev(BROM)).await, bytes_of(BROM), "the copy is there for the rows");
        assert_eq!(f.character(&t.db, fay.id).await.portrait_url, Some(old_domain_url));
        assert_eq!(t.db.portrait_by_key(&dev(BROM)).await.unwrap().map(|r| r.public_url), Some(f.store.public_url(&dev(BROM))));
    }

    async fn a_legacy_row_whose_new_key_already_has_a_row_is_merged_into_it(t: TestDb) {
        let f = fixture(&t.db).await;
        // The new bot stored the same bytes under the prefixed key for another character.
        let aria_to = dev(ARIA);
        f.store.put(&aria_to, bytes_of(ARIA), "image/png", &[]).await.unwrap();
        let gus = character(&t.db, "Gus").await;
        let url = f.store.public_url(&aria_to);
        let (existing, _) = t.db.attach_portrait(gus.id, &NewPortrait { legacy_url: None, ..portrait(&aria_to, &url) }, None).await.unwrap();

        let report = migrate_prefix(&t.db, &f.store, "dev", false, &[]).await.expect("run");
        assert!(report.failures.is_empty(), "{report}");
        let aria_move = report.moves.listed().iter().find(|m| m.from == ARIA).expect("Aria moved");
        assert_eq!((aria_move.copied, aria_move.portraits_updated, aria_move.characters_updated), (false, 1, 1));

        assert_eq!(t.db.portrait_by_key(ARIA).await.unwrap(), None);
        let merged = t.db.portrait_by_key(&aria_to).await.unwrap().expect("one row");
        assert_eq!(merged.id, existing.id);
        assert_eq!(merged.legacy_url.as_deref(), Some("https://cdn.discordapp.com/attachments/1/2/old.png"), "the legacy link is kept");
        let aria = f.character(&t.db, f.aria.id).await;
        assert_eq!((aria.portrait_id, aria.portrait_url), (Some(existing.id), Some(url.clone())));
        assert_eq!(f.character(&t.db, gus.id).await.portrait_url, Some(url));
        assert!(!f.store.exists(ARIA).await.unwrap());
    }

    async fn in_prod_objects_move_under_prod_and_dev_objects_stay(t: TestDb) {
        let f = fixture(&t.db).await;
        let report = migrate_prefix(&t.db, &f.store, "prod/", false, &[]).await.expect("run");
        assert_eq!(report.env_prefix, "prod");
        assert_eq!(report.moves.listed().iter().map(|m| m.to.as_str()).collect::<Vec<_>>(),
            [format!("prod/{CASS}"), format!("prod/{ARIA}"), format!("prod/{BROM}")]);
        let mut keys = vec![format!("prod/{ARIA}"), format!("prod/{BROM}"), format!("prod/{CASS}"), DANA.to_owned(), EVE.to_owned()];
        keys.sort();
        assert_eq!(f.s3.keys().await, keys);
        assert_eq!(f.bytes(DANA).await, bytes_of(DANA));
        assert_eq!(f.character(&t.db, f.dana.id).await, f.dana);
        assert_eq!(f.character(&t.db, f.aria.id).await.portrait_url, Some(f.store.public_url(&format!("prod/{ARIA}"))));
    }

    async fn an_unknown_environment_is_refused_before_the_bucket_is_touched(t: TestDb) {
        let f = fixture(&t.db).await;
        let err = migrate_prefix(&t.db, &f.store, "staging", false, &[]).await.expect_err("refused");
        assert!(matches!(err, MigrationError::InvalidEnvPrefix(_)), "{err:?}");
        assert_eq!(err.to_string(), "`staging` is not an environment prefix: use `dev` or `prod` (APP_ENV)");
        assert_eq!(f.s3.request_log(), Vec::<String>::new());
    }
}
