//! Migrating Discord CDN portraits into the bucket: a community's mixed bag of links, through
//! the simulated CDN and Discord API, s3s-fs, SQLite and PostgreSQL.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use portrait_bot::db::Character;
use portrait_bot::discord_api::DiscordApi;
use portrait_bot::fetch::Origin;
use portrait_bot::migration::cdn::{CdnMigrator, MigrateOptions, MigrationSummary};
use portrait_bot::moderation::history::Actor;
use portrait_bot::secret::Secret;

use crate::cli::portrait_bot;
use crate::on_both_databases;
use crate::support::app::{new_character, TestApp, GUILD, MAX_UPLOAD_BYTES};
use crate::support::database::TestDb;
use crate::support::r2::R2Access;
use testkit::discord::{TestDiscord, BOT_TOKEN};
use testkit::images;
use testkit::s3;

/// What the scenario expects of one character after a run.
#[derive(Debug, Clone)]
enum Expect {
    Migrated { bytes: Vec<u8> },
    Failed { reason: &'static str },
    LeftAlone,
}

struct Planted {
    character: Character,
    original_url: String,
    expect: Expect,
}

/// An `ex` an hour in the past, as Discord signs links (hex Unix seconds).
fn expired_query() -> String {
    format!(
        "ex={:x}&is=0&hm=deadbeef",
        chrono::Utc::now().timestamp() - 3600
    )
}

/// 200 characters: 110 valid links, 20 expired links that refresh, 15 gone for good,
/// 10 non-images, 5 over the size cap, 20 sharing four images, 20 non-Discord URLs.
async fn plant_community(t: &TestApp, discord: &TestDiscord) -> Vec<Planted> {
    let mut planted = Vec::new();
    let mut specs = Vec::new();
    for i in 0..110u32 {
        let png = images::png(8 + i % 40, 8 + i / 40);
        let url = t.cdn.host(
            &format!("/attachments/1/{i}/valid.png"),
            png.clone(),
            "image/png",
        );
        specs.push((format!("Valid {i}"), url, Expect::Migrated { bytes: png }));
    }
    for i in 0..20u32 {
        let png = images::png(60 + i, 9);
        let old_path = format!("/attachments/2/{i}/expired.png");
        t.cdn.expire(&old_path);
        let old = format!("{}{old_path}?{}", t.cdn.origin(), expired_query());
        let new = t.cdn.host(
            &format!("/attachments/2/{i}/refreshed.png"),
            png.clone(),
            "image/png",
        );
        discord.set_refreshed_url(&old, &new);
        specs.push((format!("Expired {i}"), old, Expect::Migrated { bytes: png }));
    }
    for i in 0..15u32 {
        let path = format!("/attachments/3/{i}/gone.png");
        t.cdn.expire(&path);
        // Some carry an expired signature (refreshed up front), some look fine but 404.
        let url = if i % 2 == 0 {
            format!("{}{path}?{}", t.cdn.origin(), expired_query())
        } else {
            format!("{}{path}", t.cdn.origin())
        };
        specs.push((format!("Gone {i}"), url, Expect::Failed { reason: "gone" }));
    }
    for i in 0..10u32 {
        let url = t.cdn.host(
            &format!("/attachments/4/{i}/page.png"),
            "<html>nope</html>",
            "image/png",
        );
        specs.push((
            format!("Html {i}"),
            url,
            Expect::Failed {
                reason: "not_an_image",
            },
        ));
    }
    for i in 0..5u32 {
        let big = vec![0u8; MAX_UPLOAD_BYTES as usize + 1];
        let url = t
            .cdn
            .host(&format!("/attachments/5/{i}/huge.png"), big, "image/png");
        specs.push((
            format!("Huge {i}"),
            url,
            Expect::Failed {
                reason: "too_large",
            },
        ));
    }
    for i in 0..20u32 {
        let png = images::png(90 + i / 5, 90);
        let url = t.cdn.host(
            &format!("/attachments/6/{}/shared.png", i / 5),
            png.clone(),
            "image/png",
        );
        specs.push((format!("Shared {i}"), url, Expect::Migrated { bytes: png }));
    }
    for i in 0..20u32 {
        let url = format!("https://images.example.com/portraits/{i}.png");
        specs.push((format!("Elsewhere {i}"), url, Expect::LeftAlone));
    }
    for (name, url, expect) in specs {
        let character = t
            .app
            .db
            .create_character(
                &new_character(GUILD, 10_000 + planted.len() as u64, &name),
                None,
            )
            .await
            .unwrap();
        t.app
            .db
            .set_character_external_portrait(character.id, &url)
            .await
            .unwrap();
        planted.push(Planted {
            character,
            original_url: url,
            expect,
        });
    }
    planted
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

fn options(dry_run: bool) -> MigrateOptions {
    MigrateOptions {
        dry_run,
        limit: None,
        concurrency: 4,
        started_by: "test".into(),
    }
}

async fn run(migrator: &CdnMigrator, dry_run: bool) -> MigrationSummary {
    migrator
        .run(&options(dry_run), &|_| {})
        .await
        .expect("the run completes")
}

/// Every character's (portrait_id, portrait_url), by id: the state a run changes.
async fn rows(t: &TestApp) -> BTreeMap<i64, (Option<i64>, Option<String>)> {
    let mut rows = BTreeMap::new();
    for owner in 10_000..10_200u64 {
        for c in t.app.db.list_characters(GUILD, owner).await.unwrap() {
            rows.insert(c.id, (c.portrait_id, c.portrait_url));
        }
    }
    rows
}

on_both_databases! {
    async fn one_run_migrates_every_good_link_and_lists_every_failure_with_its_reason(t: TestDb) {
        let t = TestApp::start(t).await;
        let discord = TestDiscord::start().await;
        let planted = plant_community(&t, &discord).await;
        t.cdn.throttle(6, 0.2);

        let summary = run(&migrator(&t, &discord), false).await;

        assert_eq!(summary.selected, 180, "every Discord CDN link, and no other");
        assert_eq!(summary.migrated, 150, "{summary}");
        assert_eq!(summary.failures.len(), 30, "{summary}");
        let store = t.s3.store();
        for p in &planted {
            let now = t.app.db.character_by_id(p.character.id).await.unwrap().unwrap();
            match &p.expect {
                Expect::Migrated { bytes } => {
                    let record = t.app.db.portrait_by_id(now.portrait_id.expect("migrated")).await.unwrap().unwrap();
                    assert_eq!(now.portrait_url.as_deref(), Some(store.public_url(&record.storage_key).as_str()));
                    assert_eq!(store.get(&record.storage_key).await.unwrap().bytes.as_ref(), bytes.as_slice(), "{}", p.character.name);
                    assert!(record.legacy_url.is_some(), "the legacy URL is kept");
                }
                Expect::Failed { reason } => {
                    assert_eq!(now.portrait_url.as_deref(), Some(p.original_url.as_str()), "{} keeps its URL", p.character.name);
                    assert_eq!(now.portrait_id, None);
                    let failure = summary.failures.iter().find(|f| f.character_id == p.character.id)
                        .unwrap_or_else(|| panic!("{} is listed as failed", p.character.name));
                    assert!(failure.reason.contains(reason), "{}: {}", p.character.name, failure.reason);
                    assert!(!failure.url.contains("hm="), "signatures are not shown: {}", failure.url);
                }
                Expect::LeftAlone => {
                    assert_eq!(now.portrait_url.as_deref(), Some(p.original_url.as_str()));
                    assert_eq!(now.portrait_id, None);
                }
            }
        }
        let items = t.app.db.migration_items(summary.run_id).await.unwrap();
        assert_eq!(items.iter().filter(|i| i.status == "migrated").count(), 150);
        assert_eq!(items.iter().filter(|i| i.status == "failed").count(), 30);
        for call in discord.rest_calls().iter().filter(|c| c.path.ends_with("/attachments/refresh-urls")) {
            let urls = call.body()["attachment_urls"].as_array().unwrap().len();
            assert!(urls <= 50, "refresh batches hold at most 50 links, got {urls}");
        }
        // 164 distinct links (the 20 "Shared" characters have 4), each fetched once, plus the
        // retries of the throttled requests and of the gone links after their refresh.
        assert!(t.cdn.requests().len() > 164, "the throttled requests were retried");
        assert_eq!(t.metric(r#"portrait_migration_items_total{outcome="migrated"}"#), 150.0);
        assert_eq!(t.metric(r#"portrait_migration_items_total{outcome="failed"}"#), 30.0);

        let keys_after_first = t.bucket_keys().await;
        let second = run(&migrator(&t, &discord), false).await;
        assert_eq!(second.migrated, 0, "a second run migrates nothing");
        assert_eq!(t.bucket_keys().await, keys_after_first, "and creates no objects");
    }

    async fn a_dry_run_reports_what_would_happen_and_changes_nothing(t: TestDb) {
        let t = TestApp::start(t).await;
        let discord = TestDiscord::start().await;
        plant_community(&t, &discord).await;
        let rows_before = rows(&t).await;
        let keys_before = t.bucket_keys().await;

        let summary = run(&migrator(&t, &discord), true).await;

        assert!(summary.dry_run);
        assert_eq!(summary.selected, 180);
        assert_eq!(summary.expired, 28, "20 refreshable + 8 gone links carry an expired signature");
        assert_eq!(summary.sample.len(), 10);
        assert!(summary.sample[0].starts_with("Valid 0: http://127.0.0.1"), "{:?}", summary.sample);
        assert!(summary.to_string().contains("Nothing was changed"), "{summary}");
        assert_eq!(rows(&t).await, rows_before, "rows identical");
        assert_eq!(t.bucket_keys().await, keys_before, "bucket identical");
        assert!(t.cdn.requests().is_empty(), "nothing downloaded");
    }

    async fn a_second_concurrent_migration_is_refused_naming_the_running_one(t: TestDb) {
        let t = TestApp::start(t).await;
        let discord = TestDiscord::start().await;
        for i in 0..8u32 {
            let character = t.app.db.create_character(&new_character(GUILD, 10_000 + u64::from(i), &format!("Slow {i}")), None).await.unwrap();
            let url = t.cdn.host_slowly(&format!("/attachments/9/{i}/slow.png"), images::png(12 + i, 12), "image/png", Duration::from_millis(700));
            t.app.db.set_character_external_portrait(character.id, &url).await.unwrap();
        }
        let first = migrator(&t, &discord);
        let running = tokio::spawn(async move {
            let options = MigrateOptions { started_by: "first-admin".into(), ..options(false) };
            first.run(&options, &|_| {}).await
        });
        // The run is recorded once it holds the lease.
        for _ in 0..100 {
            if !t.app.db.migration_runs(1).await.unwrap().is_empty() { break; }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let second = migrator(&t, &discord);
        let options = MigrateOptions { started_by: "second-admin".into(), ..options(false) };
        let refused = second.run(&options, &|_| {}).await.expect_err("refused while the first runs");
        let message = refused.to_string();
        assert!(message.contains("already running") && message.contains("first-admin"), "{message}");
        assert_eq!(t.app.db.migration_runs(5).await.unwrap().len(), 1, "the refused run recorded nothing");

        let done = running.await.unwrap().expect("the first run completes");
        assert_eq!(done.migrated, 8);
        let after = second.run(&options, &|_| {}).await.expect("free again once the first is done");
        assert_eq!(after.migrated, 0);
    }

    async fn a_rollback_restores_every_legacy_url_of_the_run(t: TestDb) {
        let t = TestApp::start(t).await;
        let discord = TestDiscord::start().await;
        let planted = plant_community(&t, &discord).await;
        let migrator = migrator(&t, &discord);
        let summary = run(&migrator, false).await;
        assert_eq!(summary.migrated, 150);

        let restored = migrator.rollback(summary.run_id, Actor::Operator).await.unwrap();

        assert_eq!(restored, 150);
        for p in &planted {
            let now = t.app.db.character_by_id(p.character.id).await.unwrap().unwrap();
            assert_eq!(now.portrait_url.as_deref(), Some(p.original_url.as_str()), "{}", p.character.name);
            assert_eq!(now.portrait_id, None);
        }
        let runs = t.app.db.migration_runs(5).await.unwrap();
        assert_eq!(runs[0].status, "rolled_back");
    }
}

/// Runs `portrait-bot migrate` against this environment, killing it with SIGKILL after
/// `kill_after` when given. Returns whether it ran to the end (false: killed, or failed).
async fn cli_migrate(t: &TestApp, discord: &TestDiscord, kill_after: Option<Duration>) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let mut command = portrait_bot(dir.path());
    command
        .env("DATABASE_URL", &t.db.url)
        .env("R2_ENDPOINT", t.s3.endpoint())
        .env("R2_ACCESS_KEY_ID", s3::ACCESS_KEY)
        .env("R2_SECRET_ACCESS_KEY", s3::SECRET_KEY)
        .env("R2_BUCKET_NAME", s3::BUCKET)
        .env("R2_PUBLIC_URL", s3::PUBLIC_URL)
        .env("CDN_ALLOWED_ORIGINS", t.cdn.origin())
        .env("MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES.to_string())
        .env("DISCORD_TOKEN", BOT_TOKEN)
        .env("DISCORD_API_BASE", discord.api_base())
        .arg("migrate")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("migrate starts");
    let status = match kill_after {
        Some(after) => {
            tokio::time::sleep(after).await;
            if child.try_wait().unwrap().is_none() {
                child.kill().expect("SIGKILL");
            }
            tokio::task::spawn_blocking(move || child.wait())
                .await
                .unwrap()
                .unwrap()
        }
        None => tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap(),
    };
    status.success()
}

/// What a migration leaves behind, comparable across environments: each character's portrait
/// (the content of its object, or the path of the link it kept) and the content of each
/// object in the bucket, sorted (an image stored twice shows up twice).
///
/// Contents, not keys: a key names the character that stored the image first, and two links
/// with the same bytes migrated at once may take turns in either order.
async fn final_state(t: &TestApp, context: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut characters = BTreeMap::new();
    for owner in 10_000..10_200u64 {
        for c in t.app.db.list_characters(GUILD, owner).await.unwrap() {
            let shown = match c.portrait_id {
                Some(id) => {
                    let row = t.app.db.portrait_by_id(id).await.unwrap().unwrap();
                    format!("stored {}", row.sha256)
                }
                None => {
                    let url = url::Url::parse(c.portrait_url.as_deref().unwrap()).unwrap();
                    format!("kept {}", url.path())
                }
            };
            characters.insert(c.name, shown);
        }
    }
    let mut objects = Vec::new();
    for key in t.bucket_keys().await {
        let row = t.app.db.portrait_by_key(&key).await.unwrap();
        let row = row.unwrap_or_else(|| panic!("orphan object {key} ({context})"));
        objects.push(format!("stored {}", row.sha256));
    }
    objects.sort();
    (characters, objects)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_migration_killed_at_five_random_points_ends_like_an_uninterrupted_one() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut random = seed | 1;
    let mut next_kill = || {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        Duration::from_millis(150 + random % 850)
    };

    let interrupted = TestApp::start(TestDb::sqlite().await).await;
    let interrupted_discord = TestDiscord::start().await;
    plant_community(&interrupted, &interrupted_discord).await;
    // A distant CDN makes a whole run take several seconds, so every kill lands mid-run.
    interrupted.cdn.set_latency(Duration::from_millis(100));
    let mut kills = Vec::new();
    let mut interrupted_runs = 0;
    for _ in 0..5 {
        let after = next_kill();
        kills.push(after);
        if !cli_migrate(&interrupted, &interrupted_discord, Some(after)).await {
            interrupted_runs += 1;
        }
    }
    // Late runs have only the failing links left and may finish before their kill.
    assert!(
        interrupted_runs >= 3,
        "only {interrupted_runs} of 5 kills interrupted a run (seed {seed}, kills {kills:?})"
    );
    assert!(
        cli_migrate(&interrupted, &interrupted_discord, None).await,
        "the last run completes"
    );

    let uninterrupted = TestApp::start(TestDb::sqlite().await).await;
    let uninterrupted_discord = TestDiscord::start().await;
    plant_community(&uninterrupted, &uninterrupted_discord).await;
    assert!(cli_migrate(&uninterrupted, &uninterrupted_discord, None).await);

    let context = format!("seed {seed}, kills after {kills:?}");
    let (characters, objects) = final_state(&interrupted, &context).await;
    let (expected_characters, expected_objects) = final_state(&uninterrupted, &context).await;
    assert_eq!(characters, expected_characters, "{context}");
    assert_eq!(
        objects, expected_objects,
        "no duplicate or missing objects ({context})"
    );
    assert_eq!(
        characters
            .values()
            .filter(|v| v.starts_with("stored "))
            .count(),
        150,
        "{context}"
    );
}
