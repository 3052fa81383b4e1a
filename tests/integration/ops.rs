//! Promises an operator relies on, kept under races, outages and hostile requests: the real
//! binary, started the way a supervisor or a deploy starts it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection;

use crate::support::bot::ANSWER;
use testkit::cdn::TestCdn;
use testkit::database::TEST_POSTGRES_URL;
use testkit::discord::{is_callback, slash_command, Attachment, TestDiscord, BOT_TOKEN, GUILD_ID};
use testkit::images;
use testkit::s3::{self, TestS3};
use testkit::variables::{BOT_VARIABLES, CONFIG_VARIABLES};

const BINARY: &str = env!("CARGO_BIN_EXE_portrait-bot");

/// The binary in `dir` with none of the developer's own settings.
fn portrait_bot(dir: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command.current_dir(dir).env("RUST_LOG", "warn");
    for variable in CONFIG_VARIABLES.iter().chain(BOT_VARIABLES) {
        command.env_remove(variable);
    }
    command.env_remove("NO_COLOR");
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -TERM {}", child.id());
}

/// A running `portrait-bot` whose stderr is collected as it comes.
struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn start(command: &mut Command) -> Running {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("portrait-bot starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr is piped");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Running { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (up to `limit`) until stderr contains `text`.
    async fn wait_for_log(&self, text: &str, limit: Duration) {
        let started = Instant::now();
        while !self.stderr().contains(text) {
            assert!(
                started.elapsed() < limit,
                "no `{text}` in the log after {limit:?}:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The exit status, if the process ends within `limit`; otherwise it is killed and `None`.
    async fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader thread take the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Some(status);
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Migrations applied by processes that start together.

/// Starts `count` uploads at once against `database_url`, each for its own character, and
/// returns each one's exit status and output.
fn upload_at_once(dir: &Path, database_url: &str, count: usize) -> Vec<(bool, String)> {
    std::fs::write(dir.join("hero.png"), images::png(32, 32)).unwrap();
    let children: Vec<Child> = (0..count)
        .map(|n| {
            portrait_bot(dir)
                .env("DATABASE_URL", database_url)
                .args(["upload", "hero.png", "--guild", "42", "--owner", "7"])
                .args(["--character", &format!("Hero {n}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("upload starts")
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().expect("upload ends");
            (
                output.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            )
        })
        .collect()
}

async fn assert_every_upload_succeeded(results: &[(bool, String)], database_url: &str) {
    let failures: Vec<&String> = results
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, out)| out)
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} uploads failed; the first said:\n{}",
        failures.len(),
        results.len(),
        failures[0]
    );
    let db = portrait_bot::db::Db::connect(database_url, database_url)
        .await
        .expect("the database opens");
    for n in 0..results.len() {
        let hero = db
            .find_character(42, 7, &format!("Hero {n}"))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("Hero {n} exists"));
        assert!(hero.portrait_url.is_some(), "Hero {n} has its portrait");
    }
    db.close().await;
}

#[tokio::test]
async fn twenty_uploads_started_at_once_on_a_new_sqlite_database_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("data/new.db").display());
    let results = {
        let (dir, url) = (dir.path().to_owned(), url.clone());
        tokio::task::spawn_blocking(move || upload_at_once(&dir, &url, 20))
            .await
            .unwrap()
    };
    assert_every_upload_succeeded(&results, &url).await;
}

#[tokio::test]
async fn twenty_uploads_started_at_once_on_a_new_postgres_database_all_succeed() {
    let Some(admin_url) = std::env::var(TEST_POSTGRES_URL)
        .ok()
        .filter(|url| !url.trim().is_empty())
    else {
        assert!(
            std::env::var_os("REQUIRE_POSTGRES").is_none(),
            "REQUIRE_POSTGRES is set but {TEST_POSTGRES_URL} is not"
        );
        eprintln!("\n!!! PostgreSQL SKIPPED for twenty_uploads_started_at_once_on_a_new_postgres_database_all_succeed: set {TEST_POSTGRES_URL} !!!\n");
        return;
    };
    // A database nothing has touched yet: no tables, no `_sqlx_migrations`.
    let name = format!("portrait_race_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    let url = url.to_string();

    let dir = tempfile::tempdir().unwrap();
    let results = {
        let (dir, url) = (dir.path().to_owned(), url.clone());
        tokio::task::spawn_blocking(move || upload_at_once(&dir, &url, 20))
            .await
            .unwrap()
    };
    let outcome = tokio::spawn({
        let url = url.clone();
        async move { assert_every_upload_succeeded(&results, &url).await }
    })
    .await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

// ---------------------------------------------------------------------------------------------
// Stopping while Discord is out of reach, and a token Discord rejects.

/// A TCP server that accepts connections and never answers them.
async fn silent_server() -> (String, Arc<Mutex<usize>>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(Mutex::new(0));
    let count = accepted.clone();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            *count.lock().unwrap() += 1;
            held.push(socket);
        }
    });
    (addr.to_string(), accepted, server)
}

/// A Discord REST API that knows the token but whose gateway never answers.
async fn discord_with_a_silent_gateway(gateway: &str) -> (String, tokio::task::JoinHandle<()>) {
    let ws_url = format!("ws://{gateway}");
    let router = axum::Router::new()
        .route(
            "/api/v10/users/@me",
            axum::routing::get(|| async {
                axum::Json(json!({
                    "id": "1100000000000000002", "username": "Portrait Bot",
                    "discriminator": "0000", "avatar": null, "bot": true,
                }))
            }),
        )
        .route(
            "/api/v10/gateway",
            axum::routing::get(move || {
                let ws_url = ws_url.clone();
                async move { axum::Json(json!({ "url": ws_url })) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}"), server)
}

fn run_bot(dir: &Path, api_base: &str, grace_secs: u64) -> Running {
    Running::start(
        portrait_bot(dir)
            .env("DISCORD_TOKEN", "a-token-for-the-outage-tests")
            .env("DISCORD_API_BASE", api_base)
            .env("SHUTDOWN_GRACE_SECS", grace_secs.to_string())
            .env("HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
            .arg("run"),
    )
}

const GRACE_SECS: u64 = 3;

/// SIGTERM, then the exit status if the bot ends within the grace period (and a moment to
/// close the database and end the process).
async fn stop_within_grace(bot: &mut Running) -> Option<ExitStatus> {
    sigterm(&bot.child);
    bot.exit_within(Duration::from_secs(GRACE_SECS) + Duration::from_millis(1500))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_on_sigterm_within_the_grace_while_retrying_an_unreachable_discord() {
    let dir = tempfile::tempdir().unwrap();
    let closed = format!("http://127.0.0.1:{}", free_port());
    let mut bot = run_bot(dir.path(), &closed, GRACE_SECS);
    bot.wait_for_log(
        "could not reach Discord at DISCORD_API_BASE; retrying",
        Duration::from_secs(30),
    )
    .await;

    let exit = stop_within_grace(&mut bot).await;
    assert!(
        exit.is_some_and(|status| status.success()),
        "exit 0 within {GRACE_SECS} s of SIGTERM, got {exit:?}:\n{}",
        bot.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_on_sigterm_within_the_grace_while_discord_never_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (silent, accepted, _server) = silent_server().await;
    let mut bot = run_bot(dir.path(), &format!("http://{silent}"), GRACE_SECS);
    let started = Instant::now();
    while *accepted.lock().unwrap() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the bot never called Discord"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let exit = stop_within_grace(&mut bot).await;
    assert!(
        exit.is_some_and(|status| status.success()),
        "exit 0 within {GRACE_SECS} s of SIGTERM, got {exit:?}:\n{}",
        bot.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_on_sigterm_within_the_grace_while_the_gateway_never_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, accepted, _gateway_server) = silent_server().await;
    let (api_base, _api) = discord_with_a_silent_gateway(&gateway).await;
    let mut bot = run_bot(dir.path(), &api_base, GRACE_SECS);
    let started = Instant::now();
    while *accepted.lock().unwrap() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the bot never opened the gateway:\n{}",
            bot.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let exit = stop_within_grace(&mut bot).await;
    assert!(
        exit.is_some_and(|status| status.success()),
        "exit 0 within {GRACE_SECS} s of SIGTERM, got {exit:?}:\n{}",
        bot.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_stops_run_at_once_without_waiting_for_the_upload_in_flight() {
    let discord = TestDiscord::start().await;
    discord.add_guild(GUILD_ID);
    let cdn = TestCdn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut bot = Running::start(
        portrait_bot(dir.path())
            .env("RUST_LOG", "info")
            .env("DISCORD_TOKEN", BOT_TOKEN)
            .env("DISCORD_API_BASE", discord.api_base())
            .env("DEV_GUILD_ID", GUILD_ID.to_string())
            .env("CDN_ALLOWED_ORIGINS", cdn.origin())
            .env("SHUTDOWN_GRACE_SECS", "120")
            .env("HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
            .arg("run"),
    );
    discord.wait_ready(1).await;
    discord
        .wait_for_rest("command registration", |c| c.method == "PUT", ANSWER)
        .await;

    // An upload whose download takes a minute: the first SIGTERM waits for it.
    let png = images::png(26, 26);
    let url = cdn.host_slowly(
        "/attachments/7/7/slow.png",
        png.clone(),
        "image/png",
        Duration::from_secs(60),
    );
    let image = Attachment::new("slow.png", &url, png.len() as u64);
    let interaction = slash_command("register")
        .option_str("name", "Mira")
        .option_attachment("portrait", &image)
        .build();
    discord.send_interaction(interaction.clone()).await;
    discord
        .wait_for_rest("the defer", is_callback(&interaction), ANSWER)
        .await;

    sigterm(&bot.child);
    bot.wait_for_log("shutting down", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        bot.child.try_wait().unwrap().is_none(),
        "the first SIGTERM waits for the upload:\n{}",
        bot.stderr()
    );

    sigterm(&bot.child);
    let exit = bot.exit_within(Duration::from_secs(5)).await;
    assert!(
        exit.is_some_and(|status| status.success()),
        "the second SIGTERM ends the bot at once with 0, got {exit:?}:\n{}",
        bot.stderr()
    );
    assert!(
        bot.stderr().contains("second stop signal"),
        "the log says why it did not wait:\n{}",
        bot.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_discord_rejects_with_401_stops_run_naming_discord_token_but_not_the_token() {
    const TOKEN: &str = "MTEwMDAw.rejected-token.do-not-print-me";
    let discord = TestDiscord::start().await;
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        discord.fail_rest(
            method,
            "/",
            401,
            json!({ "message": "401: Unauthorized", "code": 0 }),
            usize::MAX,
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut bot = Running::start(
        portrait_bot(dir.path())
            .env("DISCORD_TOKEN", TOKEN)
            .env("DISCORD_API_BASE", discord.api_base())
            .env("HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
            .arg("run"),
    );

    let exit = bot.exit_within(Duration::from_secs(30)).await;
    let stderr = bot.stderr();
    assert!(
        exit.is_some_and(|status| !status.success()),
        "the bot stops with a failure instead of retrying, got {exit:?}:\n{stderr}"
    );
    assert!(
        stderr.contains("Discord rejected DISCORD_TOKEN"),
        "says which setting is wrong:\n{stderr}"
    );
    assert!(!stderr.contains(TOKEN), "never prints the token:\n{stderr}");
}

// ---------------------------------------------------------------------------------------------
// Logs: no credentials at any level, no colour codes in a pipe.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_r2_credential_appears_in_the_output_even_with_rust_log_trace() {
    let s3 = TestS3::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = portrait_bot(dir.path());
    command
        .env("RUST_LOG", "trace")
        .env("R2_ENDPOINT", s3.endpoint())
        .env("R2_ACCESS_KEY_ID", s3::ACCESS_KEY)
        .env("R2_SECRET_ACCESS_KEY", s3::SECRET_KEY)
        .env("R2_BUCKET_NAME", s3::BUCKET)
        .env("R2_PUBLIC_URL", s3::PUBLIC_URL)
        .arg("check");
    // Off the async runtime: s3s-fs runs on it and must keep answering.
    let output = tokio::task::spawn_blocking(move || command.output().expect("check runs"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("storage: ok") && stderr.contains(" TRACE "),
        "signed requests were made with trace logging on:\n{stdout}\n{stderr}"
    );
    for (name, secret) in [
        ("R2_ACCESS_KEY_ID", s3::ACCESS_KEY),
        ("R2_SECRET_ACCESS_KEY", s3::SECRET_KEY),
    ] {
        for (stream, text) in [("stdout", &stdout), ("stderr", &stderr)] {
            // Where each leak comes from: the start of the line names level, span and target.
            let leaks: Vec<String> = text
                .lines()
                .filter(|line| line.contains(secret))
                .map(|line| line.chars().take(300).collect())
                .collect();
            assert!(
                leaks.is_empty(),
                "{name} printed {} times on {stream}:\n{}",
                leaks.len(),
                leaks.join("\n")
            );
        }
    }
}

#[tokio::test]
async fn logs_written_to_a_pipe_are_plain_text_without_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || {
            portrait_bot(&dir)
                .env("RUST_LOG", "debug")
                .arg("check")
                .output()
                .expect("check runs")
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("DEBUG"), "debug logging is on:\n{stderr}");
    assert!(
        !stderr.contains("\x1b["),
        "no ANSI escape codes in piped logs:\n{stderr:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Local objects over HTTP.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_objects_are_served_with_etags_ranges_and_404_for_folders_and_hostile_paths() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    let port = free_port();
    let store = portrait_bot::storage::Store::local(
        objects.clone(),
        format!("http://127.0.0.1:{port}/objects"),
    )
    .unwrap();
    let png = images::png(40, 30);
    let key = "dev/portraits/2026/11/0123456789abcdef_aria.png";
    store
        .put(key, png.clone().into(), "image/png", &[])
        .await
        .unwrap();
    // No extension to guess from: the type must come from what the object was stored with.
    let bare = "dev/portraits/2026/11/no-extension";
    store
        .put(bare, png.clone().into(), "image/png", &[])
        .await
        .unwrap();
    std::fs::write(dir.path().join("secret.txt"), "outside the store").unwrap();

    let _server = Running::start(
        portrait_bot(dir.path())
            .env("LOCAL_STORAGE_DIR", &objects)
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            .arg("serve"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "serve never listened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let get = |path: String| client.get(format!("{base}{path}"));

    let whole = get(format!("/objects/{key}")).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    let headers = whole.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(
        headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let etag = headers
        .get("etag")
        .expect("an ETag")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(whole.bytes().await.unwrap().as_ref(), png.as_slice());

    let typed = get(format!("/objects/{bare}")).send().await.unwrap();
    assert_eq!(typed.status(), 200);
    assert_eq!(typed.headers()["content-type"], "image/png");

    let unchanged = get(format!("/objects/{key}"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), 304);
    assert_eq!(unchanged.headers()["etag"], etag.as_str());
    assert_eq!(
        unchanged.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(unchanged.bytes().await.unwrap().is_empty());

    let other = get(format!("/objects/{key}"))
        .header("if-none-match", "\"not-this-one\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200, "a different ETag gets the object");

    let part = get(format!("/objects/{key}"))
        .header("range", "bytes=8-23")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 8-23/{}", png.len()).as_str()
    );
    assert_eq!(part.headers()["content-type"], "image/png");
    assert_eq!(part.headers()["etag"], etag.as_str());
    assert_eq!(part.bytes().await.unwrap().as_ref(), &png[8..24]);

    for missing in [
        "/objects/dev",
        "/objects/dev/",
        "/objects/dev/portraits",
        "/objects/dev/portraits/2026/11/nope.png",
        "/objects/..%2Fsecret.txt",
        "/objects/dev/..%2F..%2Fsecret.txt",
        "/objects/dev/%2e%2e/%2e%2e/secret.txt",
        "/objects/.portrait-meta/dev/portraits/2026/11/0123456789abcdef_aria.png.json",
        "/objects/%2Fetc%2Fpasswd",
    ] {
        let response = get(missing.to_owned()).send().await.unwrap();
        assert_eq!(response.status(), 404, "{missing}");
    }
}
