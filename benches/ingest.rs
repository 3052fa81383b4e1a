//! Ingest benchmark against s3s-fs in process: memory under concurrent large uploads, memory
//! while refusing an endless download, throughput beside a bare `put_object` loop, and the
//! decode check's real memory beside its estimate for progressive JPEGs.
//!
//! Reproduce: `cargo bench --bench ingest`

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use portrait_bot::app::App;
use portrait_bot::character::{DiscordId, NewCharacter};
use portrait_bot::config::{AppEnv, DatabaseUrl, Settings, StorageSettings};
use portrait_bot::fetch::{FetchConfig, FetchError, Origin};
use portrait_bot::portrait::inspect::{self, InspectLimits};
use portrait_bot::portrait::{IngestRequest, PortraitSource, Upload};
use portrait_bot::secret::Secret;
use portrait_bot::storage::{R2Settings, Store};
use testkit::allocation_meter::{self, Meter};
use testkit::file_cdn::{self, FileCdn};
use testkit::images;
use testkit::s3::{self, TestS3};

const MIB: u64 = 1024 * 1024;
const MAX_UPLOAD_BYTES: u64 = 10 * MIB;
const CONCURRENT_UPLOADS: usize = 16;
const THROUGHPUT_IMAGES: usize = 48;
const THROUGHPUT_CONCURRENCY: usize = 4;

#[global_allocator]
static METER: Meter = Meter;

fn main() {
    file_cdn::main_serving_cdn(run);
}

async fn run() {
    println!("portrait-bot ingest benchmark (reproduce: cargo bench --bench ingest)\n");
    let fixtures = tempfile::tempdir().expect("temp dir");
    let large = tokio::task::spawn_blocking({
        let dir = fixtures.path().to_owned();
        move || write_large_fixtures(&dir)
    })
    .await
    .expect("fixtures");

    let s3 = TestS3::start().await;
    let cdn = FileCdn::spawn(fixtures.path(), Duration::ZERO).await;
    let db_dir = tempfile::tempdir().expect("temp dir");
    let app = App::build(settings(&s3, &cdn, db_dir.path()))
        .await
        .expect("app");

    // Refusal first: later phases leave freed-but-resident heap pages that a refusal could
    // reuse, which would hide its growth.
    let (refuse_before_kib, refuse_peak_kib, refuse_heap_bytes, refused) =
        refuse_endless_download(&app, &cdn).await;
    let (baseline_kib, peak_kib, elapsed) = concurrent_large_uploads(&app, &cdn, &large).await;
    let small: Vec<Bytes> = (0..THROUGHPUT_IMAGES)
        .map(|i| Bytes::from(images::photo_jpeg(2000, 1500, i as u32, 92)))
        .collect();
    let (ingest_secs, bare_secs, bytes) = throughput(&app, &s3, &small).await;
    drop(small);
    let progressive = tokio::task::spawn_blocking(progressive_checks)
        .await
        .expect("progressive checks");

    let peak_mib = peak_kib as f64 / 1024.0;
    let growth_mib = refuse_peak_kib.saturating_sub(refuse_before_kib) as f64 / 1024.0;
    let cap_mib = MAX_UPLOAD_BYTES as f64 / MIB as f64;
    let ingest_rate = bytes as f64 / MIB as f64 / ingest_secs;
    let bare_rate = bytes as f64 / MIB as f64 / bare_secs;
    let verdict = |ok: bool| if ok { "within budget" } else { "OVER BUDGET" };

    println!("| figure | value | budget | verdict |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| peak RSS, {CONCURRENT_UPLOADS} concurrent ~10 MiB ingests incl. a 40 MP photo ({:.1} s) | {peak_mib:.1} MiB (baseline {:.1} MiB) | ≤ 200 MiB | {} |",
        elapsed.as_secs_f64(),
        baseline_kib as f64 / 1024.0,
        verdict(peak_mib <= 200.0)
    );
    println!(
        "| RSS growth refusing a 1 GiB download ({refused}) | {growth_mib:.2} MiB | ≤ cap + 2 = {:.0} MiB | {} |",
        cap_mib + 2.0,
        verdict(growth_mib <= cap_mib + 2.0)
    );
    println!(
        "| heap growth refusing it (bytes allocated and not freed, at the peak; RSS adds the allocator's own state) | {:.2} MiB | — | — |",
        refuse_heap_bytes as f64 / MIB as f64
    );
    println!(
        "| ingest throughput, {THROUGHPUT_IMAGES} JPEGs of {:.1} MiB avg, concurrency {THROUGHPUT_CONCURRENCY} | {ingest_rate:.1} MiB/s | — | — |",
        bytes as f64 / THROUGHPUT_IMAGES as f64 / MIB as f64
    );
    println!("| bare put_object loop, same bytes, same server, same concurrency | {bare_rate:.1} MiB/s | — | — |");
    println!(
        "| ingest / bare put ratio | {:.2} | — | — |",
        ingest_rate / bare_rate
    );
    println!("\nDecode check of progressive 4:2:0 JPEGs, one at a time, against `MAX_DECODE_MEMORY_MIB` (default {} MiB):\n", InspectLimits::default().max_decode_memory / MIB);
    println!("| image | file | estimated decode memory | RSS growth during the check | outcome |");
    println!("| --- | --- | --- | --- | --- |");
    for check in &progressive {
        println!(
            "| {} | {:.1} MiB | {:.1} MiB | {} | {} |",
            check.name,
            check.file_bytes as f64 / MIB as f64,
            check.estimated as f64 / MIB as f64,
            check
                .growth_kib
                .map_or("— (not decoded)".to_owned(), |kib| format!(
                    "{:.1} MiB",
                    kib as f64 / 1024.0
                )),
            check.outcome
        );
    }
    println!("\nreproduce: cargo bench --bench ingest");
}

struct ProgressiveCheck {
    name: &'static str,
    file_bytes: u64,
    estimated: u64,
    /// Peak RSS above the RSS before the check; `None` when refused before decoding.
    growth_kib: Option<u64>,
    outcome: String,
}

/// The largest progressive photo the default limit admits, and a 40 MP one it refuses.
fn progressive_checks() -> Vec<ProgressiveCheck> {
    let limits = InspectLimits::default();
    [
        ("24 MP (6000×4000)", 6000, 4000),
        ("40 MP (8000×5000)", 8000, 5000),
    ]
    .into_iter()
    .map(|(name, width, height)| {
        let jpeg = images::progressive_photo_jpeg(width, height, 70);
        let estimated = inspect::inspect_header(
            &jpeg,
            &InspectLimits {
                max_decode_memory: u64::MAX,
                ..limits
            },
        )
        .expect("header")
        .decode_memory;
        let (growth_kib, outcome) = match inspect::inspect_header(&jpeg, &limits) {
            Err(refusal) => (
                None,
                format!("refused before decoding ({})", refusal.reason()),
            ),
            Ok(info) => {
                let rss = RssPeak::start();
                let result = inspect::verify_decodes(&jpeg, &info, &limits);
                let (before, peak) = rss.stop();
                (
                    Some(peak.saturating_sub(before)),
                    match result {
                        Ok(_) => "decoded".to_owned(),
                        Err(err) => format!("refused: {err}"),
                    },
                )
            }
        };
        ProgressiveCheck {
            name,
            file_bytes: jpeg.len() as u64,
            estimated,
            growth_kib,
            outcome,
        }
    })
    .collect()
}

/// 15 incompressible ~9.5 MiB PNGs and one 40-megapixel JPEG photo, written to disk so the
/// simulated CDN streams them instead of holding them in this process's memory.
fn write_large_fixtures(dir: &Path) -> Vec<(String, u64)> {
    let mut files = Vec::new();
    let photo = images::photo_jpeg(8000, 5000, 7, 80);
    assert!(
        photo.len() as u64 <= MAX_UPLOAD_BYTES,
        "photo is {} bytes",
        photo.len()
    );
    std::fs::write(dir.join("photo-40mp.jpg"), &photo).expect("write");
    files.push(("photo-40mp.jpg".to_owned(), photo.len() as u64));
    drop(photo);
    for i in 0..CONCURRENT_UPLOADS - 1 {
        let png = images::noise_png(1800, 1800, i as u64);
        assert!(png.len() as u64 <= MAX_UPLOAD_BYTES);
        let name = format!("noise-{i}.png");
        std::fs::write(dir.join(&name), &png).expect("write");
        files.push((name, png.len() as u64));
    }
    files
}

fn settings(s3: &TestS3, cdn: &FileCdn, db_dir: &Path) -> Settings {
    let url = format!("sqlite://{}", db_dir.join("bench.db").display());
    Settings {
        database_url: DatabaseUrl::from_str(&url).expect("url"),
        app_env: AppEnv::Dev,
        storage: StorageSettings::R2(r2_settings(s3)),
        default_portrait_url: "https://bot.example.test/default.png".into(),
        inspect_limits: InspectLimits {
            max_bytes: MAX_UPLOAD_BYTES,
            ..InspectLimits::default()
        },
        fetch: FetchConfig {
            allowed_origins: vec![Origin::parse(&cdn.origin()).expect("origin")],
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(120),
        },
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        ingest_concurrency: 4,
        decode_concurrency: 1,
    }
}

async fn concurrent_large_uploads(
    app: &App,
    cdn: &FileCdn,
    files: &[(String, u64)],
) -> (u64, u64, Duration) {
    let mut characters = Vec::new();
    for (i, _) in files.iter().enumerate() {
        characters.push(character(app, &format!("Large {i}")).await);
    }
    let rss = RssPeak::start();
    let started = Instant::now();
    let uploads = files
        .iter()
        .zip(&characters)
        .map(|((name, size), character)| {
            let upload = Upload::Url {
                url: format!("{}/files/{name}", cdn.origin()),
                declared_size: Some(*size),
            };
            async move {
                app.portraits
                    .ingest(upload, &request(character))
                    .await
                    .unwrap_or_else(|err| panic!("{name} refused: {err}"))
            }
        });
    let stored = futures::future::join_all(uploads).await;
    let elapsed = started.elapsed();
    let (baseline, peak) = rss.stop();
    assert_eq!(stored.len(), files.len());
    (baseline, peak, elapsed)
}

/// (RSS before in KiB, peak RSS in KiB, peak heap growth in bytes, outcome).
async fn refuse_endless_download(app: &App, cdn: &FileCdn) -> (u64, u64, u64, String) {
    // Warm up first: the first download also sets up the connection pool and the resolver
    // thread, one-time costs that are not buffering.
    let warm_up = app
        .fetcher
        .fetch(&format!("{}/endless", cdn.origin()), 64 * 1024)
        .await;
    assert!(matches!(warm_up, Err(FetchError::TooLarge { .. })));
    let rss = RssPeak::start();
    allocation_meter::reset_process_peak();
    let result = app
        .fetcher
        .fetch(&format!("{}/endless", cdn.origin()), MAX_UPLOAD_BYTES)
        .await;
    let heap_growth = allocation_meter::process_peak_growth();
    let (before, peak) = rss.stop();
    let outcome = match result {
        Err(FetchError::TooLarge { .. }) => "refused at the cap".to_owned(),
        other => panic!("expected TooLarge, got {:?}", other.map(|f| f.bytes.len())),
    };
    (before, peak, heap_growth, outcome)
}

async fn throughput(app: &App, s3: &TestS3, images: &[Bytes]) -> (f64, f64, u64) {
    let bytes: u64 = images.iter().map(|b| b.len() as u64).sum();
    let mut characters = Vec::new();
    for i in 0..images.len() {
        characters.push(character(app, &format!("Throughput {i}")).await);
    }

    let started = Instant::now();
    futures::stream::iter(images.iter().zip(&characters))
        .for_each_concurrent(THROUGHPUT_CONCURRENCY, |(image, character)| async move {
            app.portraits
                .ingest(Upload::Bytes(image.clone()), &request(character))
                .await
                .expect("ingest");
        })
        .await;
    let ingest_secs = started.elapsed().as_secs_f64();

    let store = Store::r2(r2_settings(s3)).expect("R2 settings");
    let store = &store;
    let started = Instant::now();
    futures::stream::iter(images.iter().enumerate())
        .for_each_concurrent(THROUGHPUT_CONCURRENCY, |(i, image)| async move {
            store
                .put(
                    &format!("bench/bare/{i}.jpg"),
                    image.clone(),
                    "image/jpeg",
                    &[],
                )
                .await
                .expect("bare put");
        })
        .await;
    let bare_secs = started.elapsed().as_secs_f64();
    (ingest_secs, bare_secs, bytes)
}

async fn character(app: &App, name: &str) -> portrait_bot::db::Character {
    app.db
        .create_character(
            &NewCharacter::parse(
                DiscordId::new(1).expect("an id"),
                DiscordId::new(2).expect("an id"),
                name,
                None,
                None,
            )
            .expect("a valid character"),
            None,
        )
        .await
        .expect("character")
}

fn request(character: &portrait_bot::db::Character) -> IngestRequest<'_> {
    IngestRequest {
        character,
        uploader_id: 2,
        source: PortraitSource::Cli,
        legacy_url: None,
        migration_run: None,
    }
}

/// Peak resident set size so far (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    proc_status_kib("VmHWM:")
}

fn current_rss_kib() -> u64 {
    proc_status_kib("VmRSS:")
}

fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The peak RSS over a stretch of work: VmHWM, reset at the start (Linux `clear_refs` 5) so
/// earlier work does not count, cross-checked by sampling RSS every few milliseconds on a
/// plain thread for kernels where `clear_refs` is not permitted.
struct RssPeak {
    /// RSS when the measurement started, in KiB.
    baseline_kib: u64,
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl RssPeak {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(current_rss_kib()));
        let (running, started) = std::sync::mpsc::channel();
        let thread = std::thread::spawn({
            let (stop, peak) = (stop.clone(), peak.clone());
            move || {
                peak.fetch_max(current_rss_kib(), Ordering::Relaxed);
                // Its stack and allocator arena now exist; whatever RSS grows by from here
                // is what is being measured.
                let _ = running.send(());
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                    peak.fetch_max(current_rss_kib(), Ordering::Relaxed);
                }
            }
        });
        let _ = started.recv();
        // The sampler thread is the instrument, not the measured work: the baseline is taken
        // once it runs.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        Self {
            baseline_kib: current_rss_kib(),
            stop,
            peak,
            thread,
        }
    }

    /// (RSS at the start, peak RSS since), in KiB.
    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        let peak = self.peak.load(Ordering::Relaxed).max(peak_rss_kib());
        (self.baseline_kib, peak)
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
