//! Import at scale: `portrait-bot import FILE` (the real binary, as a child process) on CSV
//! exports of N characters, timed and with its peak RSS (VmHWM, polled from
//! /proc/PID/status), three times per N on a fresh database:
//!
//! 1. the first import (every character created);
//! 2. a re-import with no portrait migrated (every character unchanged);
//! 3. a re-import after half the characters' portraits were marked migrated the way the CDN
//!    migration records them (a portraits row with the legacy URL, the character pointing at
//!    it, and a completed run's migration item), directly with SQL.
//!
//! The budget (DESIGN.md): peak RSS ≤ 64 MiB at every N, time ≤ ~12× per 10× N, and the two
//! re-imports costing about the same.
//!
//! Reproduce: `SCALE_NS=10000,100000,1000000 cargo bench --bench import_scale`
//! (PostgreSQL too with `TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres`).

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

const MIB: f64 = 1024.0 * 1024.0;
const GUILD: u64 = 1_100_000_000_000_000_001;
const POLL: Duration = Duration::from_millis(5);

fn main() {
    let ns: Vec<usize> = std::env::var("SCALE_NS")
        .unwrap_or_else(|_| "10000,100000,1000000".to_owned())
        .split(',')
        .filter(|n| !n.trim().is_empty())
        .map(|n| n.trim().parse().expect("SCALE_NS is a list of numbers"))
        .collect();
    let postgres = std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();

    let mut table = String::new();
    table.push_str(
        "| database | N | file | import | peak RSS | re-import, none migrated | peak RSS | \
         re-import, half migrated | peak RSS | half ÷ none |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for &n in &ns {
        let file = dir.path().join(format!("export-{n}.csv"));
        write_export(&file, n);
        let size = std::fs::metadata(&file).unwrap().len() as f64 / MIB;
        let mut databases = vec![(
            "SQLite",
            format!(
                "sqlite://{}",
                dir.path().join(format!("bench-{n}.db")).display()
            ),
            None,
        )];
        if let Some(base) = &postgres {
            let name = format!("import_scale_{}_{n}", std::process::id());
            runtime.block_on(admin(base, &format!("CREATE DATABASE {name}")));
            databases.push(("PostgreSQL", with_database(base, &name), Some((base, name))));
        }
        for (label, url, created) in databases {
            let first = import(&file, &url, n);
            let again = import(&file, &url, n);
            runtime.block_on(mark_half_migrated(&url));
            let migrated = import(&file, &url, n);
            writeln!(
                table,
                "| {label} | {n} | {size:.0} MiB | {} | {} | {} | {} | {} | {} | {:.2} |",
                secs(first.0),
                rss(first.1),
                secs(again.0),
                rss(again.1),
                secs(migrated.0),
                rss(migrated.1),
                migrated.0.as_secs_f64() / again.0.as_secs_f64(),
            )
            .unwrap();
            eprint!("{table}");
            if let Some((base, name)) = created {
                runtime.block_on(admin(base, &format!("DROP DATABASE {name} WITH (FORCE)")));
            }
        }
        std::fs::remove_file(&file).unwrap();
    }
    println!("\nImport at scale (the release binary, one child process per run):\n");
    print!("{table}");
    println!(
        "\nReproduce: SCALE_NS={} cargo bench --bench import_scale",
        ns.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn rss(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A CSV export as another bot writes it: signed Discord CDN links, short bios, a thousand
/// players.
fn write_export(path: &Path, n: usize) {
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "guild_id,owner_id,name,class,bio,portrait_url").unwrap();
    for i in 0..n {
        writeln!(
            out,
            "{GUILD},{},Hero {i},Class {},\"Born in the north, {i} winters ago.\nLikes cats.\",\
             https://cdn.discordapp.com/attachments/1100000000000000001/{}/hero-{i}.png\
             ?ex=65a1b2c3&is=65a06143&hm=0123456789abcdef0123456789abcdef",
            900_000_000_000_000_000u64 + (i % 1000) as u64,
            i % 7,
            1_200_000_000_000_000_000u64 + i as u64,
        )
        .unwrap();
    }
    out.flush().unwrap();
}

/// Runs `portrait-bot import FILE`; returns its wall time and peak RSS in KiB.
fn import(file: &Path, database_url: &str, n: usize) -> (Duration, u64) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portrait-bot"))
        .args(["import", file.to_str().unwrap()])
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .env_remove("DISCORD_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the release binary runs");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
            {
                peak = peak.max(kib);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(POLL);
    };
    let elapsed = started.elapsed();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        status.success(),
        "import failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("records read: {n:>6}")),
        "every record read: {stdout}"
    );
    assert!(stdout.contains("rejected:          0"), "{stdout}");
    (elapsed, peak)
}

/// Marks every second character's portrait as migrated, as the CDN migration records it.
async fn mark_half_migrated(url: &str) {
    let pool: AnyPool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let key = "'bench/portraits/2025/01/' || id || '_hero.png'";
    let statements = [
        format!(
            "INSERT INTO portraits (storage_key, public_url, sha256, size_bytes, content_type, \
                                    width, height, uploader_id, source, legacy_url, created_at) \
             SELECT {key}, 'https://bucket.example/' || {key}, '{}', 1234, 'image/png', 64, 64, \
                    owner_id, 'migration', portrait_url, created_at \
             FROM characters WHERE id % 2 = 0",
            "ab".repeat(32)
        ),
        "UPDATE characters SET \
             portrait_id = (SELECT p.id FROM portraits p \
                            WHERE p.storage_key = 'bench/portraits/2025/01/' || characters.id || '_hero.png'), \
             portrait_url = 'https://bucket.example/bench/portraits/2025/01/' || id || '_hero.png' \
         WHERE id % 2 = 0"
            .to_owned(),
        "INSERT INTO migration_runs (dry_run, status, started_by, started_at, finished_at, \
                                     selected, migrated, failed) \
         VALUES (0, 'completed', 'bench', '2025-01-01T00:00:00.000Z', \
                 '2025-01-01T01:00:00.000Z', 0, 0, 0)"
            .to_owned(),
        "INSERT INTO migration_items (run_id, character_id, legacy_url, new_url, status, created_at) \
         SELECT (SELECT MAX(id) FROM migration_runs), c.id, p.legacy_url, p.public_url, \
                'migrated', c.created_at \
         FROM characters c JOIN portraits p ON p.id = c.portrait_id"
            .to_owned(),
    ];
    for statement in statements {
        pool.execute(statement.as_str()).await.unwrap();
    }
    pool.close().await;
}

/// The same server URL with another database.
fn with_database(base: &str, name: &str) -> String {
    let mut url = url::Url::parse(base).expect("TEST_POSTGRES_URL is a URL");
    url.set_path(name);
    url.to_string()
}

async fn admin(base: &str, statement: &str) {
    let pool: AnyPool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(base)
        .await
        .unwrap();
    pool.execute(statement).await.unwrap();
    pool.close().await;
}
