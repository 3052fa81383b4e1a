//! Whole-table jobs at scale: for N characters (10k, 100k, 1M by default) on SQLite and, when
//! `TEST_POSTGRES_URL` is set, PostgreSQL, runs the real release binary as a child process and
//! prints the wall time and peak RSS (the child's `ru_maxrss`, from `wait4`) of:
//!
//! - `migrate --dry-run` (every candidate read),
//! - `migrate --dry-run --limit 1000` (must not depend on N),
//! - `cleanup-orphans` as a dry run and with `--execute`, with N/10 orphans in the bucket.
//!
//! The data set is written directly: rows with bulk `INSERT`s, objects as files in a local
//! storage folder. Half the characters have a stored portrait (row + object), the other half a
//! Discord CDN link (migration candidates); N/10 objects under `dev/` are orphans (half of them
//! with a portrait row no character uses).
//!
//! Reproduce: `cargo bench --bench scale` (all sizes), or for a quick run
//! `SCALE_NS=10000,100000 TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench scale`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Connection};

const BIN: &str = env!("CARGO_BIN_EXE_portrait-bot");
const DEFAULT_NS: &str = "10000,100000,1000000";
/// Budget from the design: peak RSS of any whole-table job, at every N.
const RSS_BUDGET_MIB: f64 = 64.0;
/// Budget from the design: time growth per 10× N for whole-table jobs.
const GROWTH_BUDGET: f64 = 12.0;
/// Rows per INSERT statement while generating the data set.
const INSERT_BATCH: usize = 500;
const MIB: f64 = 1024.0;

/// One command timed at every N.
struct Job {
    name: &'static str,
    args: &'static [&'static str],
    /// `true`: its cost should not grow with N (`--limit`).
    flat: bool,
}

/// The jobs, in the order they run on one data set (the executed cleanup last, since it
/// changes the data). Hook for `import`: once `portrait-bot import FILE` streams its input,
/// write an N-row CSV beside the data set in `generate` and add
/// `Job { name: "import N rows", args: &["import", "<file>"], flat: false }` here.
const JOBS: &[Job] = &[
    Job {
        name: "migrate --dry-run",
        args: &["migrate", "--dry-run"],
        flat: false,
    },
    Job {
        name: "migrate --dry-run --limit 1000",
        args: &["migrate", "--dry-run", "--limit", "1000"],
        flat: true,
    },
    Job {
        name: "cleanup-orphans (dry run)",
        args: &["cleanup-orphans", "--older-than", "0s"],
        flat: false,
    },
    Job {
        name: "cleanup-orphans --execute",
        args: &["cleanup-orphans", "--older-than", "0s", "--execute"],
        flat: false,
    },
];

struct Measured {
    engine: &'static str,
    n: u64,
    job: &'static Job,
    secs: f64,
    peak_mib: f64,
}

/// Set when this program runs as the small process that starts one job (see [`run_job`]).
const RUNNER: &str = "PORTRAIT_SCALE_RUNNER";

fn main() {
    if std::env::var_os(RUNNER).is_some() {
        return runner();
    }
    let ns: Vec<u64> = std::env::var("SCALE_NS")
        .unwrap_or_else(|_| DEFAULT_NS.to_owned())
        .split(',')
        .map(|n| {
            n.trim()
                .replace('_', "")
                .parse()
                .expect("SCALE_NS is a list of numbers")
        })
        .collect();
    let postgres = std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    sqlx::any::install_default_drivers();

    let mut results = Vec::new();
    let mut engines: Vec<&'static str> = vec!["sqlite"];
    if postgres.is_some() {
        engines.push("postgres");
    } else {
        eprintln!("note: TEST_POSTGRES_URL is not set; PostgreSQL is skipped");
    }
    for engine in engines {
        for &n in &ns {
            let dir = tempfile::tempdir().expect("temp dir");
            let (url, cleanup) = match engine {
                "sqlite" => (
                    format!("sqlite://{}", dir.path().join("scale.db").display()),
                    None,
                ),
                _ => {
                    let admin = postgres.clone().expect("checked");
                    let name = format!("portrait_scale_{n}_{}", std::process::id());
                    runtime.block_on(admin_sql(
                        &admin,
                        &format!("DROP DATABASE IF EXISTS \"{name}\""),
                    ));
                    runtime.block_on(admin_sql(&admin, &format!("CREATE DATABASE \"{name}\"")));
                    let mut url = url::Url::parse(&admin).expect("TEST_POSTGRES_URL is a URL");
                    url.set_path(&format!("/{name}"));
                    (url.to_string(), Some((admin, name)))
                }
            };
            let objects = dir.path().join("objects");
            let started = Instant::now();
            runtime.block_on(generate(&url, &objects, n));
            eprintln!(
                "{engine} N={n}: data set written in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            for job in JOBS {
                let (secs, peak_kib) = run_job(job, &url, &objects, dir.path());
                eprintln!(
                    "{engine} N={n}: {} took {secs:.2} s, peak RSS {:.1} MiB",
                    job.name,
                    peak_kib as f64 / MIB
                );
                results.push(Measured {
                    engine,
                    n,
                    job,
                    secs,
                    peak_mib: peak_kib as f64 / MIB,
                });
            }
            if let Some((admin, name)) = cleanup {
                runtime.block_on(admin_sql(
                    &admin,
                    &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                ));
            }
        }
    }
    print_table(&results);
}

/// Runs one job; returns wall seconds and the job's peak RSS in KiB.
///
/// Linux carries a process's peak RSS across `fork` and `exec` into `ru_maxrss`, so a job
/// started straight from this (large, after writing the data set) process would report this
/// process's peak. The job is therefore started by a fresh, small copy of this program (the
/// runner), whose own peak is a few MiB; the runner reaps the job with `wait4` and prints its
/// `ru_maxrss`.
fn run_job(job: &Job, database_url: &str, objects: &Path, dir: &Path) -> (f64, u64) {
    let log = dir.join(format!("{}.log", job.name.replace([' ', '-'], "_")));
    let stderr = std::fs::File::create(&log).expect("log file");
    let started = Instant::now();
    let output = Command::new(std::env::current_exe().expect("this program"))
        .args(job.args)
        .env_clear()
        .env(RUNNER, "1")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("APP_ENV", "dev")
        .env("LOCAL_STORAGE_DIR", objects)
        .env("LOCAL_PUBLIC_URL", "https://img.example.test")
        .env(
            "DEFAULT_PORTRAIT_URL",
            "https://img.example.test/default.png",
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stderr(stderr)
        .output()
        .expect("start the runner");
    let secs = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&output.stdout);
    match text.trim().strip_prefix("maxrss_kib=") {
        Some(kib) if output.status.success() => (secs, kib.parse().expect("a number")),
        _ => {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!(
                "`portrait-bot {}` failed ({}): {text}\n{log}",
                job.args.join(" "),
                output.status
            );
        }
    }
}

/// The runner: starts the release binary with this process's arguments and environment (less
/// the runner flag), waits for it with `wait4`, and prints `maxrss_kib=N`. Fails if the job did.
fn runner() {
    // Reaped below with `wait4`, which also reports the child's peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(BIN)
        .args(std::env::args_os().skip(1))
        .env_remove(RUNNER)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the release binary");
    let pid = i32::try_from(child.id()).expect("a pid fits in i32");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for the child we just spawned, writing into the two locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 failed");
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        eprintln!("the job failed (wait status {status})");
        std::process::exit(1);
    }
    println!("maxrss_kib={}", usage.ru_maxrss);
}

async fn admin_sql(admin_url: &str, sql: &str) {
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to TEST_POSTGRES_URL");
    sqlx::query(sql).execute(&mut conn).await.expect(sql);
}

/// The storage key of object `i`: spread over 100 months, as years of uploads are.
fn key(i: u64, slug: &str) -> String {
    let month = i % 100;
    format!(
        "dev/portraits/{}/{:02}/{i:016x}_{slug}.png",
        2018 + month / 12,
        1 + month % 12
    )
}

/// Writes the data set: migrations (through the application's own connect), then rows in bulk
/// and objects as files.
async fn generate(url: &str, objects: &Path, n: u64) {
    let db = portrait_bot::db::Db::connect(url, url)
        .await
        .expect("open and migrate the database");
    db.close().await;
    let pool: AnyPool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("bulk connection");
    let now = "2026-01-01T00:00:00.000Z";
    let png: &[u8] = b"\x89PNG\r\n\x1a\n bench object";

    // Even characters have a stored portrait (row id = character number); odd ones a CDN link.
    let mut tx = pool.begin().await.expect("begin");
    let portraits: Vec<u64> = (1..=n).filter(|i| i % 2 == 0).collect();
    for batch in portraits.chunks(INSERT_BATCH) {
        let mut sql = String::from(
            "INSERT INTO portraits (id, storage_key, public_url, sha256, size_bytes, content_type, \
             width, height, uploader_id, source, legacy_url, created_at) VALUES ",
        );
        let rows: Vec<String> = batch
            .iter()
            .map(|i| {
                let key = key(*i, &format!("hero-{i}"));
                format!(
                    "({i}, '{key}', 'https://img.example.test/{key}', '{:064x}', {}, 'image/png', \
                     8, 8, {i}, 'slash_command', NULL, '{now}')",
                    i,
                    png.len()
                )
            })
            .collect();
        sql.push_str(&rows.join(", "));
        sqlx::query(&sql)
            .execute(&mut *tx)
            .await
            .expect("insert portraits");
    }
    let ids: Vec<u64> = (1..=n).collect();
    for batch in ids.chunks(INSERT_BATCH) {
        let mut sql = String::from(
            "INSERT INTO characters (id, guild_id, owner_id, name, name_key, portrait_id, \
             portrait_url, created_at, updated_at) VALUES ",
        );
        let rows: Vec<String> = batch
            .iter()
            .map(|i| {
                let (portrait_id, url) = if i % 2 == 0 {
                    (
                        i.to_string(),
                        format!("'https://img.example.test/{}'", key(*i, &format!("hero-{i}"))),
                    )
                } else {
                    (
                        "NULL".to_owned(),
                        format!(
                            "'https://cdn.discordapp.com/attachments/{i}/{i}/hero.png?ex={:x}&is=0&hm=0'",
                            if i % 4 == 1 { 1_000 } else { 4_000_000_000u64 }
                        ),
                    )
                };
                format!(
                    "({i}, 1, {i}, 'Hero {i}', 'hero {i}', {portrait_id}, {url}, '{now}', '{now}')"
                )
            })
            .collect();
        sql.push_str(&rows.join(", "));
        sqlx::query(&sql)
            .execute(&mut *tx)
            .await
            .expect("insert characters");
    }
    // Orphans: N/10 objects no character uses; the even ones also keep an unused row.
    let orphans: Vec<u64> = (0..n / 10).map(|i| n + 1 + i).collect();
    for batch in orphans.chunks(INSERT_BATCH) {
        let rows: Vec<String> = batch
            .iter()
            .filter(|i| *i % 2 == 0)
            .map(|i| {
                let key = key(*i, "orphan");
                format!(
                    "({i}, '{key}', 'https://img.example.test/{key}', '{:064x}', {}, 'image/png', \
                     8, 8, 1, 'slash_command', NULL, '{now}')",
                    i,
                    png.len()
                )
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        let sql = format!(
            "INSERT INTO portraits (id, storage_key, public_url, sha256, size_bytes, content_type, \
             width, height, uploader_id, source, legacy_url, created_at) VALUES {}",
            rows.join(", ")
        );
        sqlx::query(&sql)
            .execute(&mut *tx)
            .await
            .expect("insert orphan rows");
    }
    tx.commit().await.expect("commit");
    sqlx::query("ANALYZE")
        .execute(&pool)
        .await
        .expect("analyze");
    pool.close().await;

    let objects = objects.to_owned();
    tokio::task::spawn_blocking(move || {
        for i in portraits {
            write_object(&objects, &key(i, &format!("hero-{i}")), png);
        }
        for i in orphans {
            write_object(&objects, &key(i, "orphan"), png);
        }
    })
    .await
    .expect("objects written");
}

fn write_object(root: &Path, key: &str, bytes: &[u8]) {
    let path: PathBuf = root.join(key);
    if let Err(err) = std::fs::write(&path, bytes) {
        if err.kind() == std::io::ErrorKind::NotFound {
            std::fs::create_dir_all(path.parent().expect("a folder")).expect("create folders");
            std::fs::write(&path, bytes).expect("write an object");
        } else {
            panic!("write {}: {err}", path.display());
        }
    }
}

fn print_table(results: &[Measured]) {
    println!();
    println!("## Whole-table jobs at scale (the portrait-bot binary as a child process; peak RSS = its ru_maxrss)");
    println!();
    println!("| engine | job | N | wall time | × previous N | peak RSS | budget |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | --- |");
    for (i, m) in results.iter().enumerate() {
        let previous = results[..i]
            .iter()
            .rev()
            .find(|p| p.engine == m.engine && std::ptr::eq(p.job, m.job));
        let (growth, growth_ok) = match previous {
            Some(p) => {
                let ratio = m.secs / p.secs.max(1e-3);
                let per_10x = ratio.powf(1.0 / ((m.n as f64 / p.n as f64).log10()).max(1e-9));
                let ok = if m.job.flat {
                    ratio <= 3.0
                } else {
                    per_10x <= GROWTH_BUDGET
                };
                (format!("{ratio:.1}×"), ok)
            }
            None => ("—".to_owned(), true),
        };
        let rss_ok = m.peak_mib <= RSS_BUDGET_MIB;
        let budget = match (rss_ok, growth_ok) {
            (true, true) => "ok".to_owned(),
            (false, _) => format!("RSS over {RSS_BUDGET_MIB} MiB"),
            (true, false) => {
                if m.job.flat {
                    "not flat".to_owned()
                } else {
                    format!("time over {GROWTH_BUDGET}× per 10× N")
                }
            }
        };
        println!(
            "| {} | `{}` | {} | {:.2} s | {} | {:.1} MiB | {} |",
            m.engine, m.job.name, m.n, m.secs, growth, m.peak_mib, budget
        );
    }
    println!();
    println!(
        "Budgets (design): peak RSS ≤ {RSS_BUDGET_MIB} MiB at every N; whole-table jobs ≤ ~{GROWTH_BUDGET}× \
         time per 10× N; `--limit 1000` flat (here: ≤ 3× between sizes)."
    );
    println!(
        "Reproduce: SCALE_NS={} {}cargo bench --bench scale",
        results
            .iter()
            .map(|m| m.n)
            .fold(Vec::<u64>::new(), |mut ns, n| {
                if !ns.contains(&n) {
                    ns.push(n);
                }
                ns
            })
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
        if results.iter().any(|m| m.engine == "postgres") {
            "TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres "
        } else {
            ""
        }
    );
}
