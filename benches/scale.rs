//! Cost at scale (issue 11): for N characters (10k, 100k and 1M by default) on SQLite and, when
//! `TEST_POSTGRES_URL` is set, PostgreSQL, runs the release binary as a child process and prints
//! the wall time and peak RSS (the child's own `ru_maxrss`, from `wait4`) of:
//!
//! 1. `import FILE`: the first import of an N-row CSV export (every character created);
//! 2. `import FILE` again after half the portraits were migrated (every character unchanged);
//! 3. `migrate --dry-run` (every remaining candidate read);
//! 4. `migrate --dry-run --limit 1000` (must not depend on N);
//! 5. `cleanup-orphans` as a dry run, then 6. with `--execute`, with N/10 orphans in the bucket.
//!
//! The data set is written directly, not through Discord: the CSV by this program, "half
//! migrated" with SQL the way the CDN migration records it (a portrait row with the legacy URL,
//! the character pointing at it, a completed run's migration item), and objects as files in a
//! local storage folder: one per migrated portrait plus N/10 orphans, half of which keep a
//! portrait row no character uses.
//!
//! Budgets (DESIGN.md): peak RSS ≤ 64 MiB for every job at every N; time at most ~12× per 10× N
//! for the whole-table jobs; flat for `--limit 1000`.
//!
//! Reproduce: `cargo bench --bench scale` (all sizes), or for a quick run
//! `SCALE_NS=10000,100000 TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench scale`.
//! `SCALE_ENGINES=postgres` (or `sqlite`) runs one engine only. With `SCALE_KEEP=1` each data
//! set (folder, and PostgreSQL database) is kept and its place printed, to profile a job on it
//! afterwards.
//!
//! Every job is run `SCALE_REPEAT` times (3 by default) and its fastest time and largest peak
//! RSS are kept: on a shared machine a run is only ever slowed by noise, and a 0.1 s job at 10k,
//! slowed by a twentieth of a second, would otherwise distort its ratio. A job that changes the
//! data set runs each time on the data set as it was: the first import on a fresh database,
//! the executed cleanup after its orphans were written again. Before each run the file
//! system's pending writes are flushed (`sync`), so no job pays for the writes of the setup or
//! of the job before it.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Connection, Executor};

const BIN: &str = env!("CARGO_BIN_EXE_portrait-bot");
const DEFAULT_NS: &str = "10000,100000,1000000";
/// Budget from the design: peak RSS of any job, at every N.
const RSS_BUDGET_MIB: f64 = 64.0;
/// Budget from the design: time growth per 10× N for whole-table jobs.
const GROWTH_BUDGET: f64 = 12.0;
/// "Flat" for `--limit 1000`: at most this much slower per 10× N (noise on a shared machine).
const FLAT_BUDGET: f64 = 2.0;
/// Rows per INSERT statement while generating the orphans' rows.
const INSERT_BATCH: usize = 500;
const GUILD: u64 = 1_100_000_000_000_000_001;
/// What `LOCAL_PUBLIC_URL` is set to: the migrated portraits' URLs start with it.
const PUBLIC_URL: &str = "https://img.example.test";
/// Every object's bytes: the jobs never read them.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n bench object";

/// One command timed at every N, in the order they run on one data set.
struct Job {
    name: &'static str,
    args: &'static [&'static str],
    /// Its cost should not grow with N (`--limit`).
    flat: bool,
    /// Runs after the data set is marked half migrated.
    after_marking: bool,
    /// What must be put back before it runs again (see the module docs).
    rerun: Rerun,
    /// A line its report must contain (`{n}`, `{half}` and `{tenth}` are replaced), so a job
    /// that did not do the work is not timed as if it had.
    expect: &'static str,
}

/// What a job changes, and so what is put back before it runs again.
enum Rerun {
    /// Nothing: it runs again on the same data set.
    AsIs,
    /// Everything: it runs on a fresh, empty database.
    OnFreshDatabase,
    /// The orphans it deleted: their objects and unused portrait rows are written again.
    AfterRestoringOrphans,
}

/// `{file}` is replaced by the CSV export's path.
const JOBS: &[Job] = &[
    Job {
        name: "import (first)",
        args: &["import", "{file}"],
        flat: false,
        after_marking: false,
        rerun: Rerun::OnFreshDatabase,
        expect: "created:      {n}",
    },
    Job {
        name: "re-import, half migrated",
        args: &["import", "{file}"],
        flat: false,
        after_marking: true,
        rerun: Rerun::AsIs,
        expect: "unchanged:    {n}",
    },
    Job {
        name: "migrate --dry-run",
        args: &["migrate", "--dry-run"],
        flat: false,
        after_marking: true,
        rerun: Rerun::AsIs,
        expect: "{half} portraits would be migrated",
    },
    Job {
        name: "migrate --dry-run --limit 1000",
        args: &["migrate", "--dry-run", "--limit", "1000"],
        flat: true,
        after_marking: true,
        rerun: Rerun::AsIs,
        expect: "1000 portraits would be migrated",
    },
    Job {
        name: "cleanup-orphans (dry run)",
        args: &["cleanup-orphans", "--older-than", "0s"],
        flat: false,
        after_marking: true,
        rerun: Rerun::AsIs,
        expect: "Would delete {tenth} orphans",
    },
    Job {
        name: "cleanup-orphans --execute",
        args: &["cleanup-orphans", "--older-than", "0s", "--execute"],
        flat: false,
        after_marking: true,
        rerun: Rerun::AfterRestoringOrphans,
        expect: "Deleted {tenth} orphans",
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
/// Where the runner writes the job's standard output.
const RUNNER_STDOUT: &str = "PORTRAIT_SCALE_STDOUT";

fn main() {
    if std::env::var_os(RUNNER).is_some() {
        return runner();
    }
    let ns = sizes();
    let postgres = std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    sqlx::any::install_default_drivers();

    let mut engines: Vec<&'static str> = vec!["sqlite"];
    if postgres.is_some() {
        engines.push("postgres");
    } else {
        eprintln!("note: TEST_POSTGRES_URL is not set; PostgreSQL is skipped");
    }
    if let Ok(only) = std::env::var("SCALE_ENGINES") {
        engines.retain(|engine| only.split(',').any(|o| o.trim() == *engine));
    }
    let repeats: u32 = std::env::var("SCALE_REPEAT")
        .map(|r| r.parse().expect("SCALE_REPEAT is a number, e.g. 3"))
        .unwrap_or(3)
        .max(1);
    let mut results = Vec::new();
    for &n in &ns {
        let exports = tempfile::tempdir().expect("temp dir");
        let file = exports.path().join(format!("export-{n}.csv"));
        write_export(&file, n);
        for &engine in &engines {
            let dir = tempfile::tempdir().expect("temp dir");
            let database =
                runtime.block_on(Database::create(engine, postgres.as_deref(), n, dir.path()));
            let url = database.url.clone();
            let objects = dir.path().join("objects");
            let mut marked = false;
            for job in JOBS {
                if job.after_marking && !marked {
                    let started = Instant::now();
                    runtime.block_on(mark_half_migrated(&url, &objects, n));
                    runtime.block_on(write_orphans(&url, &objects, n));
                    eprintln!(
                        "{engine} N={n}: half marked migrated, orphans written in {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                    marked = true;
                }
                let (mut secs, mut peak_kib) = (f64::INFINITY, 0);
                for run in 0..repeats {
                    if run > 0 {
                        match job.rerun {
                            Rerun::AsIs => {}
                            Rerun::OnFreshDatabase => runtime.block_on(database.recreate()),
                            Rerun::AfterRestoringOrphans => {
                                runtime.block_on(write_orphans(&url, &objects, n))
                            }
                        }
                    }
                    let (run_secs, run_kib) = run_job(job, &url, &objects, &file, dir.path(), n);
                    secs = secs.min(run_secs);
                    peak_kib = peak_kib.max(run_kib);
                }
                let peak_mib = peak_kib as f64 / 1024.0;
                eprintln!(
                    "{engine} N={n}: {} took {secs:.2} s, peak RSS {peak_mib:.1} MiB",
                    job.name
                );
                results.push(Measured {
                    engine,
                    n,
                    job,
                    secs,
                    peak_mib,
                });
            }
            if std::env::var_os("SCALE_KEEP").is_some() {
                let kept = dir.keep();
                eprintln!(
                    "{engine} N={n}: data set kept in {} (database {url})",
                    kept.display()
                );
                continue;
            }
            runtime.block_on(database.drop());
        }
    }
    print_table(&results, &ns, postgres.is_some(), repeats);
}

/// `SCALE_NS` (or `SCALE_SIZES`): the numbers of characters, comma-separated.
fn sizes() -> Vec<u64> {
    std::env::var("SCALE_NS")
        .or_else(|_| std::env::var("SCALE_SIZES"))
        .unwrap_or_else(|_| DEFAULT_NS.to_owned())
        .split(',')
        .filter(|n| !n.trim().is_empty())
        .map(|n| {
            n.trim()
                .replace('_', "")
                .parse()
                .expect("SCALE_NS is a list of numbers, e.g. 10000,100000")
        })
        .collect()
}

/// Runs one job; returns wall seconds and the job's peak RSS in KiB.
///
/// Linux carries a process's peak RSS across `fork` and `exec` into `ru_maxrss`, so a job
/// started straight from this (large, after writing the data set) process would report this
/// process's peak. The job is therefore started by a fresh, small copy of this program (the
/// runner), whose own peak is a few MiB; the runner reaps the job with `wait4` and prints its
/// `ru_maxrss`.
fn run_job(
    job: &Job,
    database_url: &str,
    objects: &Path,
    file: &Path,
    dir: &Path,
    n: u64,
) -> (f64, u64) {
    let slug = job.name.replace([' ', '-', ',', '(', ')'], "_");
    let log = dir.join(format!("{slug}.log"));
    let out = dir.join(format!("{slug}.out"));
    let stderr = std::fs::File::create(&log).expect("log file");
    let file = file.to_str().expect("a UTF-8 temp path");
    let args: Vec<&str> = job
        .args
        .iter()
        .map(|a| if *a == "{file}" { file } else { a })
        .collect();
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    let started = Instant::now();
    let output = Command::new(std::env::current_exe().expect("this program"))
        .args(&args)
        .env_clear()
        .env(RUNNER, "1")
        .env(RUNNER_STDOUT, &out)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("APP_ENV", "dev")
        .env("LOCAL_STORAGE_DIR", objects)
        .env("LOCAL_PUBLIC_URL", PUBLIC_URL)
        .env("DEFAULT_PORTRAIT_URL", format!("{PUBLIC_URL}/default.png"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stderr(stderr)
        .output()
        .expect("start the runner");
    let secs = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&output.stdout);
    let report = std::fs::read_to_string(&out).unwrap_or_default();
    let fail = |why: &str| -> ! {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        panic!(
            "`portrait-bot {}` {why} ({}):\n{report}\n{log}",
            args.join(" "),
            output.status
        )
    };
    let Some(kib) = text.trim().strip_prefix("maxrss_kib=") else {
        fail("failed");
    };
    if !output.status.success() {
        fail("failed");
    }
    let expect = job
        .expect
        .replace("{n}", &format!("{n:>6}"))
        .replace("{half}", &(n / 2).to_string())
        .replace("{tenth}", &(n / 10).to_string());
    if !report.contains(&expect) {
        fail(&format!("did not report `{expect}`"));
    }
    (secs, kib.parse().expect("a number"))
}

/// The runner: starts the release binary with this process's arguments and environment (less
/// the runner's own variables), its output to a file, waits for it with `wait4`, and prints
/// `maxrss_kib=N`. Fails if the job did.
fn runner() {
    let stdout = std::fs::File::create(std::env::var_os(RUNNER_STDOUT).expect("set by run_job"))
        .expect("the job's output file");
    // Reaped below with `wait4`, which also reports the child's peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(BIN)
        .args(std::env::args_os().skip(1))
        .env_remove(RUNNER)
        .env_remove(RUNNER_STDOUT)
        .stdin(Stdio::null())
        .stdout(stdout)
        .spawn()
        .expect("start the release binary");
    let pid = i32::try_from(child.id()).expect("a pid fits in i32");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for the child we just spawned, writing into the two locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 failed");
    println!("maxrss_kib={}", usage.ru_maxrss);
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        eprintln!("the job failed (wait status {status})");
        std::process::exit(1);
    }
}

/// The database of one data set: a SQLite file, or a PostgreSQL database of its own.
struct Database {
    url: String,
    /// For PostgreSQL: `TEST_POSTGRES_URL` and the database's name.
    postgres: Option<(String, String)>,
}

impl Database {
    async fn create(engine: &str, admin: Option<&str>, n: u64, dir: &Path) -> Database {
        let database = match engine {
            "sqlite" => Database {
                url: format!("sqlite://{}", dir.join("scale.db").display()),
                postgres: None,
            },
            _ => {
                let admin = admin.expect("PostgreSQL runs only with TEST_POSTGRES_URL");
                let name = format!("portrait_scale_{n}_{}", std::process::id());
                let mut url = url::Url::parse(admin).expect("TEST_POSTGRES_URL is a URL");
                url.set_path(&format!("/{name}"));
                Database {
                    url: url.to_string(),
                    postgres: Some((admin.to_owned(), name)),
                }
            }
        };
        database.recreate().await;
        database
    }

    /// Empties the database: the next job starts from nothing (the binary applies the
    /// migrations).
    async fn recreate(&self) {
        self.drop().await;
        if let Some((admin, name)) = &self.postgres {
            admin_sql(admin, &format!("CREATE DATABASE \"{name}\"")).await;
        }
    }

    async fn drop(&self) {
        match &self.postgres {
            Some((admin, name)) => {
                admin_sql(
                    admin,
                    &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                )
                .await
            }
            None => {
                let file = self.url.trim_start_matches("sqlite://");
                for suffix in ["", "-wal", "-shm"] {
                    match std::fs::remove_file(format!("{file}{suffix}")) {
                        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                            panic!("remove {file}{suffix}: {err}")
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

async fn admin_sql(admin_url: &str, sql: &str) {
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to TEST_POSTGRES_URL");
    sqlx::query(sql).execute(&mut conn).await.expect(sql);
}

/// A CSV export as another bot writes it: signed Discord CDN links (a quarter of them with a
/// visibly expired signature), multi-line bios, a thousand players.
fn write_export(path: &Path, n: u64) {
    let mut out = BufWriter::new(std::fs::File::create(path).expect("export file"));
    writeln!(out, "guild_id,owner_id,name,class,bio,portrait_url").unwrap();
    for i in 0..n {
        writeln!(
            out,
            "{GUILD},{},Hero {i},Class {},\"Born in the north, {i} winters ago.\nLikes cats.\",\
             https://cdn.discordapp.com/attachments/1100000000000000001/{}/hero-{i}.png\
             ?ex={:x}&is=65a06143&hm=0123456789abcdef0123456789abcdef",
            900_000_000_000_000_000u64 + i % 1000,
            i % 7,
            1_200_000_000_000_000_000u64 + i,
            if i % 4 == 1 { 1_000 } else { 4_000_000_000u64 },
        )
        .unwrap();
    }
    out.flush().unwrap();
}

/// The storage key of the migrated portrait of character `id`, or of orphan `id`: spread over
/// 75 year/month folders, as years of uploads are. `key_sql` is the same in SQL.
fn key(id: i64, what: &str) -> String {
    format!(
        "dev/portraits/{}/{}/{id}_{what}.png",
        2000 + id % 25,
        10 + (id / 25) % 3
    )
}

fn key_sql(id: &str) -> String {
    format!(
        "'dev/portraits/' || (2000 + {id} % 25) || '/' || (10 + ({id} / 25) % 3) || '/' || {id} \
         || '_hero.png'"
    )
}

/// Marks every second character's portrait as migrated, as the CDN migration records it, and
/// writes each migrated portrait's object.
async fn mark_half_migrated(url: &str, objects: &Path, n: u64) {
    let pool = connect(url).await;
    let key_c = key_sql("c.id");
    let statements = [
        format!(
            "INSERT INTO portraits (storage_key, public_url, sha256, size_bytes, content_type, \
                                    width, height, uploader_id, source, legacy_url, created_at) \
             SELECT {key_c}, '{PUBLIC_URL}/' || {key_c}, '{}', {}, 'image/png', 64, 64, \
                    c.owner_id, 'migration', c.portrait_url, c.created_at \
             FROM characters c WHERE c.id % 2 = 0",
            "ab".repeat(32),
            PNG.len()
        ),
        format!(
            "UPDATE characters SET \
                 portrait_id = (SELECT p.id FROM portraits p WHERE p.storage_key = {}), \
                 portrait_url = '{PUBLIC_URL}/' || {} \
             WHERE id % 2 = 0",
            key_sql("characters.id"),
            key_sql("characters.id")
        ),
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
        pool.execute(statement.as_str()).await.expect(&statement);
    }
    let migrated: Vec<i64> = sqlx::query_scalar("SELECT id FROM characters WHERE id % 2 = 0")
        .fetch_all(&pool)
        .await
        .expect("migrated ids");
    assert_eq!(migrated.len() as u64, n / 2, "half the characters marked");
    pool.close().await;
    write_objects(objects, migrated, "hero").await;
}

/// Writes N/10 orphans: objects no character shows, the even ones with a portrait row no
/// character uses. Run again after `cleanup-orphans --execute` deleted them, it puts them back.
async fn write_orphans(url: &str, objects: &Path, n: u64) {
    let pool = connect(url).await;
    let first_orphan = i64::try_from(n).expect("N fits") + 1;
    let orphans: Vec<i64> = (first_orphan..first_orphan + (n / 10) as i64).collect();
    for batch in orphans.chunks(INSERT_BATCH) {
        let rows: Vec<String> = batch
            .iter()
            .filter(|i| *i % 2 == 0)
            .map(|i| {
                let key = key(*i, "orphan");
                format!(
                    "('{key}', '{PUBLIC_URL}/{key}', '{:064x}', {}, 'image/png', 8, 8, 1, \
                     'slash_command', NULL, '2025-01-01T00:00:00.000Z')",
                    i,
                    PNG.len()
                )
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        let sql = format!(
            "INSERT INTO portraits (storage_key, public_url, sha256, size_bytes, content_type, \
             width, height, uploader_id, source, legacy_url, created_at) VALUES {}",
            rows.join(", ")
        );
        pool.execute(sql.as_str())
            .await
            .expect("insert orphan rows");
    }
    // What autovacuum does after a bulk load or delete on a normal PostgreSQL (this machine's
    // has it off): statistics, and the visibility map that lets index-only scans skip the table.
    let analyze = if url.starts_with("postgres") {
        "VACUUM ANALYZE"
    } else {
        "ANALYZE"
    };
    pool.execute(analyze).await.expect(analyze);
    pool.close().await;
    write_objects(objects, orphans, "orphan").await;
}

async fn connect(url: &str) -> AnyPool {
    AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("connect")
}

/// Writes the object `key(id, what)` of each id.
async fn write_objects(objects: &Path, ids: Vec<i64>, what: &'static str) {
    let objects = objects.to_owned();
    tokio::task::spawn_blocking(move || {
        for id in ids {
            write_object(&objects, &key(id, what), PNG);
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

/// `(time ratio to the previous N, the same ratio per 10× N)`.
fn growth(previous: &Measured, m: &Measured) -> (f64, f64) {
    let ratio = m.secs / previous.secs.max(1e-3);
    let decades = (m.n as f64 / previous.n as f64).log10().max(1e-9);
    (ratio, ratio.powf(1.0 / decades))
}

fn print_table(results: &[Measured], ns: &[u64], postgres: bool, repeats: u32) {
    println!();
    println!("## Cost at scale: the release binary as a child process (peak RSS = its ru_maxrss)");
    println!();
    println!("| engine | job | N | wall time | × previous N | peak RSS | verdict |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | --- |");
    let mut over = 0;
    for (i, m) in results.iter().enumerate() {
        let previous = results[..i]
            .iter()
            .rev()
            .find(|p| p.engine == m.engine && std::ptr::eq(p.job, m.job));
        let (shown, time_ok) = match previous {
            Some(p) => {
                let (ratio, per_10x) = growth(p, m);
                let budget = if m.job.flat {
                    FLAT_BUDGET
                } else {
                    GROWTH_BUDGET
                };
                (format!("{ratio:.1}×"), per_10x <= budget)
            }
            None => ("—".to_owned(), true),
        };
        let rss_ok = m.peak_mib <= RSS_BUDGET_MIB;
        let verdict = match (rss_ok, time_ok) {
            (true, true) => "PASS".to_owned(),
            (false, true) => format!("OVER: RSS > {RSS_BUDGET_MIB} MiB"),
            (true, false) if m.job.flat => "OVER: not flat".to_owned(),
            (true, false) => format!("OVER: time > {GROWTH_BUDGET}× per 10× N"),
            (false, false) => "OVER: RSS and time".to_owned(),
        };
        if verdict != "PASS" {
            over += 1;
        }
        println!(
            "| {} | `{}` | {} | {:.2} s | {} | {:.1} MiB | {} |",
            m.engine, m.job.name, m.n, m.secs, shown, m.peak_mib, verdict
        );
    }
    println!();
    println!(
        "Budgets (DESIGN.md): peak RSS ≤ {RSS_BUDGET_MIB} MiB for every job at every N; whole-table \
         jobs ≤ {GROWTH_BUDGET}× time per 10× N; `--limit 1000` flat (≤ {FLAT_BUDGET}× per 10× N). \
         {} of {} rows over budget. Fastest of {repeats} runs of each job.",
        over,
        results.len()
    );
    if !postgres {
        println!("PostgreSQL: skipped (TEST_POSTGRES_URL is not set).");
    }
    println!(
        "Reproduce: SCALE_NS={} {}cargo bench --bench scale",
        ns.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
        if postgres {
            "TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres "
        } else {
            ""
        }
    );
}
