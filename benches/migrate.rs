//! CDN migration benchmark: 2,000 portraits of ~500 KiB moved from the simulated Discord CDN
//! (a child process serving JPEG files from disk) into s3s-fs, beside a bare GET→PUT copy loop
//! at the same concurrency and beside a one-at-a-time run. Each phase gets a fresh SQLite
//! database and a fresh bucket; all of them share the one CDN process. A second CDN process
//! that answers after 50 ms repeats the migration/bare comparison on 500 portraits, to show
//! what the ratio is once the network, not the CPU, sets the pace.
//!
//! Reproduce: `cargo bench --bench migrate`

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use portrait_bot::app::App;
use portrait_bot::config::{AppEnv, DatabaseUrl, Settings, StorageSettings};
use portrait_bot::db::NewCharacter;
use portrait_bot::fetch::{FetchConfig, Origin};
use portrait_bot::migration::cdn::{CdnMigrator, MigrateOptions};
use portrait_bot::portrait::inspect::{self, InspectLimits};
use portrait_bot::portrait::sanitize;
use portrait_bot::secret::Secret;
use portrait_bot::storage::{R2Settings, Store};
use sha2::{Digest, Sha256};
use testkit::file_cdn::{self, FileCdn};
use testkit::images;
use testkit::s3::{self, TestS3};

const MIB: f64 = 1024.0 * 1024.0;
const PORTRAITS: usize = 2_000;
/// The migration's default concurrency, used for the headline figure and the bare loop.
const CONCURRENCY: usize = 4;
/// The one-at-a-time run and the slow-CDN runs cover the first portraits only: the full set
/// would take most of the benchmark's time budget and tell nothing more per item.
const SUBSET_PORTRAITS: usize = 500;
/// Time to first byte of the slow CDN: a plausible figure for a CDN across the internet (an
/// assumption, not a measurement of Discord).
const CDN_LATENCY: Duration = Duration::from_millis(50);
/// A 1.4-megapixel photo (4:4:4) at quality 92 comes out at 490–520 KiB with this generator.
const PHOTO_WIDTH: u32 = 1280;
const PHOTO_HEIGHT: u32 = 1080;
const PHOTO_QUALITY: u8 = 92;
/// Stages the pipeline records in `portrait_ingest_stage_seconds`, in pipeline order.
const STAGES: [&str; 5] = ["fetch", "inspect", "check", "store", "record"];
/// Portraits whose decode check is timed alone, for the CPU cost without queueing.
const CHECK_SAMPLE: usize = 40;

fn main() {
    file_cdn::main_serving_cdn(run);
}

/// One portrait on the simulated CDN.
struct Fixture {
    /// Path and query of the signed-looking Discord CDN link planted on the character.
    path: String,
    size: u64,
}

/// What one phase measured.
struct Measured {
    items: usize,
    bytes: u64,
    secs: f64,
    /// CPU seconds used meanwhile by this process (the bot and s3s-fs) and the CDN process.
    cpu_secs: f64,
    /// Per stage: (name, count, total seconds), migration phases only.
    stages: Vec<(&'static str, u64, f64)>,
}

impl Measured {
    fn mib_per_sec(&self) -> f64 {
        self.bytes as f64 / MIB / self.secs
    }

    fn items_per_sec(&self) -> f64 {
        self.items as f64 / self.secs
    }

    fn cpu_ms_per_item(&self) -> f64 {
        self.cpu_secs / self.items as f64 * 1e3
    }
}

/// Wall time and CPU time (this process plus the CDN process) over one phase.
struct CpuClock {
    cdn_pid: u32,
    started: Instant,
    cpu_before: f64,
}

impl CpuClock {
    fn start(cdn: &FileCdn) -> Self {
        let cdn_pid = cdn.pid();
        Self {
            cdn_pid,
            cpu_before: cpu_seconds("self") + cpu_seconds(&cdn_pid.to_string()),
            started: Instant::now(),
        }
    }

    /// (wall seconds, CPU seconds).
    fn stop(self) -> (f64, f64) {
        let secs = self.started.elapsed().as_secs_f64();
        let cpu = cpu_seconds("self") + cpu_seconds(&self.cdn_pid.to_string());
        (secs, cpu - self.cpu_before)
    }
}

/// User plus system CPU time of a process, from `/proc/PID/stat` (Linux clock ticks, which
/// are 1/100 s); 0 where that cannot be read.
fn cpu_seconds(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the `(comm)`, which may hold spaces: state is the first, utime
            // and stime the 12th and 13th.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks: u64 =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

async fn run() {
    println!("portrait-bot CDN migration benchmark (reproduce: cargo bench --bench migrate)\n");
    let fixtures_dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let cpu_before = cpu_seconds("self");
    let sizes = tokio::task::spawn_blocking({
        let dir = fixtures_dir.path().to_owned();
        move || write_photos(&dir, PORTRAITS)
    })
    .await
    .expect("fixtures");
    let generation = started.elapsed();
    let generation_cpu = cpu_seconds("self") - cpu_before;
    let total_bytes: u64 = sizes.iter().sum();
    println!(
        "generated {PORTRAITS} distinct {PHOTO_WIDTH}×{PHOTO_HEIGHT} JPEGs (q{PHOTO_QUALITY}), {:.0} KiB avg ({:.0}–{:.0} KiB), {:.1} MiB in all, in {:.1} s ({:.0} CPU-seconds)",
        total_bytes as f64 / PORTRAITS as f64 / 1024.0,
        *sizes.iter().min().expect("fixtures") as f64 / 1024.0,
        *sizes.iter().max().expect("fixtures") as f64 / 1024.0,
        total_bytes as f64 / MIB,
        generation.as_secs_f64(),
        generation_cpu
    );

    let cdn = FileCdn::spawn(fixtures_dir.path(), Duration::ZERO).await;
    // Links look like Discord's signed ones, valid for another day, so none is refreshed.
    let expires = chrono::Utc::now().timestamp() + 86_400;
    let fixtures: Vec<Fixture> = sizes
        .iter()
        .enumerate()
        .map(|(i, size)| Fixture {
            path: format!(
                "/attachments/{}/{}/{}?ex={expires:x}&is={:x}&hm={:064x}&",
                1_100_000_000_000_000_000u64 + i as u64 / 100,
                1_200_000_000_000_000_000u64 + i as u64,
                photo_name(i),
                expires - 86_400,
                i
            ),
            size: *size,
        })
        .collect();

    let headline = migration_phase(&cdn, &fixtures, CONCURRENCY, 1).await;
    let decode_two = migration_phase(&cdn, &fixtures, CONCURRENCY, 2).await;
    let bare = bare_copy_phase(&cdn, &fixtures, CONCURRENCY).await;
    let subset = &fixtures[..SUBSET_PORTRAITS];
    let one_at_a_time = migration_phase(&cdn, subset, 1, 1).await;
    drop(cdn);
    // The same comparison with a CDN that takes a while to answer, as a real one does.
    let slow_cdn = FileCdn::spawn(fixtures_dir.path(), CDN_LATENCY).await;
    let slow_bare = bare_copy_phase(&slow_cdn, subset, CONCURRENCY).await;
    let slow_migration = migration_phase(&slow_cdn, subset, CONCURRENCY, 1).await;
    drop(slow_cdn);
    let (check_secs, sha256_secs) = tokio::task::spawn_blocking({
        let dir = fixtures_dir.path().to_owned();
        move || check_cost(&dir)
    })
    .await
    .expect("check cost");

    let verdict = |ratio: f64| {
        if ratio >= 0.8 {
            "within budget"
        } else {
            "OVER BUDGET"
        }
    };
    let row = |figure: &str, m: &Measured| {
        println!(
            "| {figure} | {} | {:.1} s | {:.1} MiB/s | {:.1} items/s | {:.1} ms |",
            m.items,
            m.secs,
            m.mib_per_sec(),
            m.items_per_sec(),
            m.cpu_ms_per_item()
        );
    };
    let latency_ms = CDN_LATENCY.as_millis();
    println!();
    println!("| figure | portraits | time | throughput | items | CPU per portrait (bot + s3s-fs + CDN) |");
    println!("| --- | --- | --- | --- | --- | --- |");
    row(
        &format!("migration, concurrency {CONCURRENCY}, deployment defaults (INGEST_CONCURRENCY 4, DECODE_CONCURRENCY 1)"),
        &headline,
    );
    row(
        &format!("migration, concurrency {CONCURRENCY}, DECODE_CONCURRENCY 2"),
        &decode_two,
    );
    row(
        &format!("bare GET→PUT copy loop, concurrency {CONCURRENCY}"),
        &bare,
    );
    row(
        &format!("migration one at a time (concurrency 1, defaults), first {SUBSET_PORTRAITS}"),
        &one_at_a_time,
    );
    row(
        &format!("bare GET→PUT copy loop, concurrency {CONCURRENCY}, CDN answering after {latency_ms} ms, first {SUBSET_PORTRAITS}"),
        &slow_bare,
    );
    row(
        &format!("migration, concurrency {CONCURRENCY}, defaults, CDN answering after {latency_ms} ms, first {SUBSET_PORTRAITS}"),
        &slow_migration,
    );
    println!();
    println!("| ratio | value | budget | verdict |");
    println!("| --- | --- | --- | --- |");
    let ratio = headline.mib_per_sec() / bare.mib_per_sec();
    println!(
        "| migration (defaults) / bare copy loop | {ratio:.2} | ≥ 0.8 | {} |",
        verdict(ratio)
    );
    let ratio_two = decode_two.mib_per_sec() / bare.mib_per_sec();
    println!(
        "| migration (DECODE_CONCURRENCY 2) / bare copy loop | {ratio_two:.2} | ≥ 0.8 | {} |",
        verdict(ratio_two)
    );
    println!(
        "| migration (defaults) / one at a time | {:.2} | — | — |",
        headline.mib_per_sec() / one_at_a_time.mib_per_sec()
    );
    let slow_ratio = slow_migration.mib_per_sec() / slow_bare.mib_per_sec();
    println!(
        "| with a {latency_ms} ms CDN: migration (defaults) / bare copy loop | {slow_ratio:.2} | ≥ 0.8 | {} |",
        verdict(slow_ratio)
    );

    println!();
    println!("Per-stage time (`portrait_ingest_stage_seconds`): mean per portrait, and the mean number of portraits in the stage at once (stage seconds ÷ wall seconds). `check` includes the wait for a decode slot; `store` is a HEAD then a PUT.");
    println!();
    println!(
        "| stage | defaults (decode 1) | decode 2 | one at a time | defaults, {latency_ms} ms CDN |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for (i, stage) in STAGES.iter().enumerate() {
        let cell = |m: &Measured| {
            let (_, count, sum) = m.stages[i];
            if count == 0 {
                return "—".to_owned();
            }
            format!(
                "{:.1} ms, {:.2} at once",
                sum / count as f64 * 1e3,
                sum / m.secs
            )
        };
        println!(
            "| {stage} | {} | {} | {} | {} |",
            cell(&headline),
            cell(&decode_two),
            cell(&one_at_a_time),
            cell(&slow_migration)
        );
    }
    println!(
        "\ndecode check alone (verify_decodes + strip_metadata + header re-check, one thread, {CHECK_SAMPLE} portraits): {:.1} ms per portrait, i.e. at most {:.0} portraits/s per decode slot",
        check_secs * 1e3,
        1.0 / check_secs
    );
    // While the CPU is the bottleneck (loopback, two shared cores) the check's CPU is spent on
    // top of everything the bare loop spends, so this bounds the ratio whatever the pipeline
    // does around it.
    let bare_cpu_secs = bare.cpu_ms_per_item() / 1e3;
    println!(
        "CPU-bound ceiling for migration / bare copy loop on this machine: bare CPU {:.1} ms ÷ (bare CPU + decode check {:.1} ms) = {:.2}",
        bare_cpu_secs * 1e3,
        check_secs * 1e3,
        bare_cpu_secs / (bare_cpu_secs + check_secs)
    );
    println!(
        "SHA-256 of one portrait (computed on an async worker in `store_and_record`): {:.2} ms",
        sha256_secs * 1e3
    );
    println!(
        "cores: {}; load average at the end: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    );
    println!("\nreproduce: cargo bench --bench migrate");
}

fn photo_name(i: usize) -> String {
    format!("portrait-{i:04}.jpg")
}

/// `count` distinct photo-like JPEGs, written on every core at once.
fn write_photos(dir: &Path, count: usize) -> Vec<u64> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut sizes = vec![0u64; count];
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..count)
                        .step_by(threads)
                        .map(|i| {
                            let jpeg = images::photo_jpeg(
                                PHOTO_WIDTH,
                                PHOTO_HEIGHT,
                                i as u32 * 7919,
                                PHOTO_QUALITY,
                            );
                            std::fs::write(dir.join(photo_name(i)), &jpeg).expect("write photo");
                            (i, jpeg.len() as u64, Sha256::digest(&jpeg))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut digests = HashSet::new();
        for worker in workers {
            for (i, size, digest) in worker.join().expect("photo worker") {
                sizes[i] = size;
                digests.insert(digest);
            }
        }
        // Keys are content-addressed: every portrait must really be a different file.
        assert_eq!(
            digests.len(),
            count,
            "the generated photos are not all distinct"
        );
    });
    sizes
}

/// Seconds per portrait for the pipeline's decode check alone, and for its SHA-256, on one
/// thread.
fn check_cost(dir: &Path) -> (f64, f64) {
    let limits = InspectLimits::default();
    let photos: Vec<Bytes> = (0..CHECK_SAMPLE)
        .map(|i| Bytes::from(std::fs::read(dir.join(photo_name(i * 37))).expect("photo")))
        .collect();
    let started = Instant::now();
    for photo in &photos {
        let info = inspect::inspect_header(photo, &limits).expect("header");
        inspect::verify_decodes(photo, &info, &limits).expect("decodes");
        let sanitized = sanitize::strip_metadata(photo.clone(), info.format).expect("sanitize");
        inspect::inspect_header(&sanitized.bytes, &limits).expect("header after");
    }
    let check = started.elapsed().as_secs_f64() / CHECK_SAMPLE as f64;
    let started = Instant::now();
    for photo in &photos {
        std::hint::black_box(Sha256::digest(photo));
    }
    (check, started.elapsed().as_secs_f64() / CHECK_SAMPLE as f64)
}

fn settings(s3: &TestS3, cdn: &FileCdn, db_dir: &Path, decode_concurrency: usize) -> Settings {
    let url = format!("sqlite://{}", db_dir.join("bench.db").display());
    Settings {
        database_url: DatabaseUrl::from_str(&url).expect("url"),
        app_env: AppEnv::Dev,
        storage: StorageSettings::R2(r2_settings(s3)),
        default_portrait_url: "https://bot.example.test/default.png".into(),
        inspect_limits: InspectLimits::default(),
        fetch: FetchConfig {
            allowed_origins: vec![Origin::parse(&cdn.origin()).expect("CDN origin")],
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(60),
        },
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        ingest_concurrency: 4,
        decode_concurrency,
    }
}

/// A fresh database and bucket, `fixtures.len()` characters with CDN links, then one timed
/// migration run.
async fn migration_phase(
    cdn: &FileCdn,
    fixtures: &[Fixture],
    concurrency: usize,
    decode_concurrency: usize,
) -> Measured {
    let s3 = TestS3::start().await;
    let db_dir = tempfile::tempdir().expect("temp dir");
    let app = App::build(settings(&s3, cdn, db_dir.path(), decode_concurrency))
        .await
        .expect("app");
    for (i, fixture) in fixtures.iter().enumerate() {
        let character = app
            .db
            .create_character(&NewCharacter {
                guild_id: 1,
                owner_id: 10_000 + i as u64,
                name: &format!("Hero {i}"),
                class: None,
                bio: None,
            })
            .await
            .expect("character");
        app.db
            .set_character_external_portrait(
                character.id,
                &format!("{}{}", cdn.origin(), fixture.path),
            )
            .await
            .expect("CDN link");
    }

    let migrator = CdnMigrator::new(
        app.db.clone(),
        app.portraits.clone(),
        None,
        vec![Origin::parse(&cdn.origin()).expect("CDN origin")],
    );
    let options = MigrateOptions {
        dry_run: false,
        limit: None,
        concurrency,
        started_by: "bench".into(),
    };
    let cpu = CpuClock::start(cdn);
    let summary = migrator
        .run(&options, &|_| {})
        .await
        .expect("migration run");
    let (secs, cpu_secs) = cpu.stop();

    assert!(
        summary.failures.is_empty(),
        "failures: {:?}",
        &summary.failures[..summary.failures.len().min(5)]
    );
    assert_eq!(summary.migrated, fixtures.len() as u64);
    assert_eq!(app.metrics.uploads_total.get(), fixtures.len() as u64);
    let stages = STAGES
        .iter()
        .map(|stage| {
            let histogram = app
                .metrics
                .ingest_stage_seconds
                .with_label_values(&[*stage]);
            (
                *stage,
                histogram.get_sample_count(),
                histogram.get_sample_sum(),
            )
        })
        .collect();
    app.shutdown().await;
    Measured {
        items: fixtures.len(),
        bytes: fixtures.iter().map(|f| f.size).sum(),
        secs,
        cpu_secs,
        stages,
    }
}

/// The floor the migration is held to: GET each link, PUT the bytes, nothing else.
async fn bare_copy_phase(cdn: &FileCdn, fixtures: &[Fixture], concurrency: usize) -> Measured {
    let s3 = TestS3::start().await;
    let store = Store::r2(r2_settings(&s3)).expect("R2 settings");
    let client = reqwest::Client::new();
    let (store, client) = (&store, &client);
    let cpu = CpuClock::start(cdn);
    futures::stream::iter(fixtures.iter().enumerate())
        .for_each_concurrent(concurrency, |(i, fixture)| async move {
            let bytes = client
                .get(format!("{}{}", cdn.origin(), fixture.path))
                .send()
                .await
                .and_then(|response| response.error_for_status())
                .expect("GET")
                .bytes()
                .await
                .expect("GET body");
            assert_eq!(bytes.len() as u64, fixture.size);
            store
                .put(&format!("bare/{i}.jpg"), bytes, "image/jpeg", &[])
                .await
                .expect("PUT");
        })
        .await;
    let (secs, cpu_secs) = cpu.stop();
    assert_eq!(s3.requests("PutObject"), fixtures.len());
    Measured {
        items: fixtures.len(),
        bytes: fixtures.iter().map(|f| f.size).sum(),
        secs,
        cpu_secs,
        stages: Vec::new(),
    }
}

/// The application's settings for the kit's S3 server.
fn r2_settings(s3: &TestS3) -> R2Settings {
    R2Settings {
        endpoint: s3.endpoint().to_owned(),
        access_key_id: s3::ACCESS_KEY.to_owned(),
        secret_access_key: Secret::new(s3::SECRET_KEY),
        bucket: s3.bucket().to_owned(),
        public_url: s3::PUBLIC_URL.to_owned(),
    }
}
