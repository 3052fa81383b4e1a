//! The `portrait-bot` binary as a new user runs it: defaults, a temp folder as the working
//! directory, and nothing configured but what each test sets.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::bot::ANSWER;
use crate::support::r2::R2Access;
use testkit::cdn::TestCdn;
use testkit::discord::{
    is_callback, is_followup, slash_command, Attachment, TestDiscord, BOT_TOKEN, GUILD_ID,
    PLAYER_USER,
};
use testkit::images;
use testkit::s3::{self, TestS3};

use testkit::variables::{BOT_VARIABLES, CONFIG_VARIABLES};

pub fn portrait_bot(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portrait-bot"));
    command.current_dir(dir).env("RUST_LOG", "warn");
    for variable in CONFIG_VARIABLES.iter().chain(BOT_VARIABLES) {
        command.env_remove(variable);
    }
    command
}

fn run(command: &mut Command) -> (Output, String, String) {
    let output = command.output().expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn field<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .unwrap_or_else(|| panic!("no `{name}` line in:\n{stdout}"))
        .trim()
}

#[tokio::test]
async fn upload_on_the_defaults_stores_the_file_and_serve_serves_it_with_its_content_type() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("aria.png");
    let png = images::png(120, 90);
    std::fs::write(&file, &png).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());

    let (output, stdout, stderr) = run(portrait_bot(dir.path()).env("HTTP_ADDR", &addr).args([
        "upload",
        "aria.png",
        "--guild",
        "42",
        "--owner",
        "7",
        "--character",
        "Aria Windrunner",
    ]));
    assert!(
        output.status.success(),
        "upload failed:\n{stdout}\n{stderr}"
    );
    let key = field(&stdout, "key:");
    assert!(
        key.starts_with("dev/portraits/") && key.ends_with("_aria-windrunner.png"),
        "{key}"
    );
    assert_eq!(field(&stdout, "bytes:"), png.len().to_string());
    assert_eq!(field(&stdout, "type:"), "image/png");
    assert_eq!(field(&stdout, "dimensions:"), "120x90");
    let url = field(&stdout, "url:").to_owned();
    assert_eq!(url, format!("http://{addr}/objects/{key}"));
    assert!(
        dir.path().join("data/portraits.db").is_file(),
        "SQLite file created"
    );
    assert!(
        dir.path().join("data/objects").join(key).is_file(),
        "object in the local folder"
    );

    let mut server = portrait_bot(dir.path())
        .env("HTTP_ADDR", &addr)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let client = reqwest::Client::new();
    let mut healthy = false;
    for _ in 0..100 {
        if let Ok(response) = client.get(format!("http://{addr}/healthz")).send().await {
            healthy = response.status().is_success();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "/healthz answers 200");

    let response = client.get(&url).send().await.expect("GET the portrait");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        png.as_slice(),
        "a PNG without metadata is stored as uploaded"
    );

    let placeholder = client
        .get(format!("http://{addr}/default-portrait.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(placeholder.headers()["content-type"], "image/png");
    let missing = client
        .get(format!("http://{addr}/objects/dev/portraits/nope.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    for hostile in [
        "/objects/..%2F..%2Fdata%2Fportraits.db",
        "/objects/.portrait-meta/x.json",
    ] {
        let response = client
            .get(format!("http://{addr}{hostile}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{hostile}");
    }
    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("# HELP r2_uploads_total"), "{metrics}");

    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = server.wait().expect("serve exits");
    assert!(exit.success(), "serve exits 0 on SIGTERM: {exit:?}");
}

#[tokio::test]
async fn an_upload_that_is_not_an_image_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sneaky.png"), images::SVG).unwrap();
    let (output, stdout, stderr) = run(portrait_bot(dir.path()).args([
        "upload",
        "sneaky.png",
        "--guild",
        "1",
        "--owner",
        "2",
        "--character",
        "Sneak",
    ]));
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stderr.contains("refused:") && stderr.contains("SVG"),
        "{stderr}"
    );
    let objects = dir.path().join("data/objects");
    let stored = walk(&objects);
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
}

#[test]
fn an_upload_too_costly_to_check_is_refused_naming_a_size_that_fits_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("web.jpg"),
        images::progressive_jpeg(800, 600),
    )
    .unwrap();
    std::fs::write(dir.path().join("camera.jpg"), images::jpeg(800, 600)).unwrap();
    let upload = |file: &str, character: &str| {
        run(portrait_bot(dir.path())
            .env("MAX_DECODE_MEMORY_MIB", "2")
            .args(["upload", file, "--guild", "1", "--owner", "2"])
            .args(["--character", character]))
    };

    // A progressive JPEG keeps every coefficient while it decodes: about 3 MiB here.
    let (output, stdout, stderr) = upload("web.jpg", "Vela");
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stderr.contains("refused: This JPEG image is 800×600 pixels and would need about")
            && stderr.contains("the most allowed is 2.0 MiB")
            && stderr.contains("megapixels or less"),
        "{stderr}"
    );
    assert!(walk(&dir.path().join("data/objects")).is_empty());

    // The same picture as a baseline JPEG needs about a byte a pixel, and is stored.
    let (output, stdout, stderr) = upload("camera.jpg", "Vela");
    assert!(output.status.success(), "{stdout}{stderr}");
    assert_eq!(
        walk(&dir.path().join("data/objects")).len(),
        2,
        "object and metadata"
    );
}

/// Every file below `dir` (none when it does not exist).
pub(crate) fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

#[tokio::test]
async fn check_says_what_to_fix_for_bad_credentials_a_missing_bucket_and_an_unreachable_endpoint() {
    let s3 = TestS3::start().await;
    let dir = tempfile::tempdir().unwrap();
    let check = |endpoint: &str, secret: &str, bucket: &str| {
        let mut command = portrait_bot(dir.path());
        command
            .env("R2_ENDPOINT", endpoint)
            .env("R2_ACCESS_KEY_ID", s3::ACCESS_KEY)
            .env("R2_SECRET_ACCESS_KEY", secret)
            .env("R2_BUCKET_NAME", bucket)
            .env("R2_PUBLIC_URL", s3::PUBLIC_URL)
            .arg("check");
        // Off the async runtime: s3s-fs runs on it and must keep answering.
        async move {
            tokio::task::spawn_blocking(move || run(&mut command))
                .await
                .expect("check ran")
        }
    };

    let (ok, stdout, stderr) = check(s3.endpoint(), s3::SECRET_KEY, s3::BUCKET).await;
    assert!(ok.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("all checks passed"), "{stdout}");

    let (denied, wrong_secret, _) = check(s3.endpoint(), "not-the-secret", s3::BUCKET).await;
    let (missing, no_bucket, _) = check(s3.endpoint(), s3::SECRET_KEY, s3::MISSING_BUCKET).await;
    let unreachable = s3::unreachable_endpoint().await;
    let (down, no_server, _) = check(&unreachable, s3::SECRET_KEY, s3::BUCKET).await;
    for (output, stdout) in [
        (&denied, &wrong_secret),
        (&missing, &no_bucket),
        (&down, &no_server),
    ] {
        assert!(!output.status.success(), "{stdout}");
        assert!(stdout.contains("storage: FAILED"), "{stdout}");
        assert!(
            !stdout.contains("not-the-secret"),
            "the secret never appears: {stdout}"
        );
    }
    assert!(
        wrong_secret.contains("R2_SECRET_ACCESS_KEY"),
        "{wrong_secret}"
    );
    assert!(
        no_bucket.contains(s3::MISSING_BUCKET) && no_bucket.contains("R2_BUCKET_NAME"),
        "{no_bucket}"
    );
    assert!(no_server.contains("R2_ENDPOINT"), "{no_server}");
    let failures = [&wrong_secret, &no_bucket, &no_server].map(|s| {
        s.lines()
            .find(|l| l.starts_with("storage:"))
            .unwrap()
            .to_owned()
    });
    assert!(
        failures[0] != failures[1] && failures[1] != failures[2] && failures[0] != failures[2],
        "{failures:?}"
    );
}

#[test]
fn partial_r2_settings_stop_startup_naming_the_missing_variables() {
    let dir = tempfile::tempdir().unwrap();
    let (output, stdout, stderr) = run(portrait_bot(dir.path())
        .env("R2_BUCKET_NAME", "portraits")
        .env("R2_SECRET_ACCESS_KEY", "shh-very-secret")
        .arg("check"));
    assert!(!output.status.success(), "{stdout}");
    for variable in ["R2_ACCOUNT_ID", "R2_ACCESS_KEY_ID", "R2_PUBLIC_URL"] {
        assert!(stderr.contains(variable), "{stderr} should name {variable}");
    }
    assert!(!stderr.contains("shh-very-secret") && !stdout.contains("shh-very-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_on_sigterm_finishes_the_upload_in_flight_records_it_and_exits_zero() {
    let discord = TestDiscord::start().await;
    discord.add_guild(GUILD_ID);
    let s3 = TestS3::start().await;
    let cdn = TestCdn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = portrait_bot(dir.path())
        .env("DISCORD_TOKEN", BOT_TOKEN)
        .env("DISCORD_API_BASE", discord.api_base())
        .env("DEV_GUILD_ID", GUILD_ID.to_string())
        .env("R2_ENDPOINT", s3.endpoint())
        .env("R2_ACCESS_KEY_ID", s3::ACCESS_KEY)
        .env("R2_SECRET_ACCESS_KEY", s3::SECRET_KEY)
        .env("R2_BUCKET_NAME", s3::BUCKET)
        .env("R2_PUBLIC_URL", s3::PUBLIC_URL)
        .env("CDN_ALLOWED_ORIGINS", cdn.origin())
        .env("HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("portrait-bot run starts");
    discord.wait_ready(1).await;
    discord
        .wait_for_rest("command registration", |c| c.method == "PUT", ANSWER)
        .await;

    let png = images::png(26, 26);
    let url = cdn.host_slowly(
        "/attachments/7/7/slow.png",
        png.clone(),
        "image/png",
        Duration::from_secs(2),
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
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !discord
            .rest_calls()
            .iter()
            .any(|c| is_followup(&interaction)(c)),
        "the upload is still in flight when SIGTERM arrives"
    );

    let status = Command::new("kill")
        .args(["-TERM", &bot.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || bot.wait_with_output())
        .await
        .unwrap()
        .expect("the bot exits");
    let stderr = String::from_utf8_lossy(&exit.stderr);
    assert!(
        exit.status.success(),
        "exit 0 after a graceful stop: {:?}\n{stderr}",
        exit.status
    );
    assert!(
        !stderr.contains(BOT_TOKEN),
        "the token never appears in logs"
    );

    let reply = discord
        .wait_for_rest("the reply", is_followup(&interaction), ANSWER)
        .await;
    let shown = reply.body()["embeds"][0]["image"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let keys: Vec<String> = s3
        .store()
        .list_prefix("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys.len(), 1, "the upload completed");
    assert_eq!(shown, s3.store().public_url(&keys[0]));
    let db_url = format!(
        "sqlite://{}",
        dir.path().join("data/portraits.db").display()
    );
    let db = portrait_bot::db::Db::connect(&db_url, &db_url)
        .await
        .unwrap();
    let mira = db
        .find_character(GUILD_ID, PLAYER_USER.id, "Mira")
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(mira.portrait_url.as_deref(), Some(shown.as_str()));
}

#[test]
fn help_documents_every_environment_variable_without_showing_secret_values() {
    let dir = tempfile::tempdir().unwrap();
    for (args, variables) in [
        (&["--help"][..], CONFIG_VARIABLES),
        (&["run", "--help"], BOT_VARIABLES),
    ] {
        let (output, stdout, _) = run(portrait_bot(dir.path())
            .env("R2_SECRET_ACCESS_KEY", "shh-very-secret")
            .env("DISCORD_TOKEN", "shh-bot-token")
            .args(args));
        assert!(output.status.success());
        // clap wraps long lines, sometimes inside `[env: NAME]`.
        let stdout = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
        for variable in variables {
            assert!(
                stdout.contains(&format!("[env: {variable}")),
                "{args:?} lacks {variable}:\n{stdout}"
            );
        }
        assert!(
            !stdout.contains("shh-very-secret") && !stdout.contains("shh-bot-token"),
            "{stdout}"
        );
    }
}

#[test]
fn run_without_a_token_says_where_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let (output, _, stderr) = run(portrait_bot(dir.path()).arg("run"));
    assert!(!output.status.success());
    assert!(
        stderr.contains("DISCORD_TOKEN is required") && stderr.contains("Developer Portal"),
        "{stderr}"
    );
}

#[test]
fn import_reports_what_it_did_and_a_second_run_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("export.csv"),
        "guild_id,owner_id,name,class,bio,portrait_url\r\n\
         42,7,Aria,Ranger,\"Quiet, watchful\",https://cdn.discordapp.com/attachments/1/2/aria.png\r\n\
         42,7,,Bard,,https://cdn.discordapp.com/attachments/1/3/x.png\r\n\
         42,8,Brom,,,\r\n",
    )
    .unwrap();
    let (output, first, stderr) = run(portrait_bot(dir.path()).args(["import", "export.csv"]));
    assert!(output.status.success(), "{first}\n{stderr}");
    let (output, second, _) = run(portrait_bot(dir.path()).args(["import", "export.csv"]));
    assert!(output.status.success());
    let normalized = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(normalized(&first).contains("created: 2"), "{first}");
    assert!(
        normalized(&first).contains("line 3: name is empty"),
        "{first}"
    );
    assert!(normalized(&second).contains("created: 0"), "{second}");
    assert!(normalized(&second).contains("unchanged: 2"), "{second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_orphans_never_deletes_the_default_portrait_hosted_in_storage() {
    let dir = tempfile::tempdir().unwrap();
    let default_key = "dev/defaults/portrait.png";
    let stray_key = "dev/portraits/2026/01/0123456789abcdef_stray.png";
    let store = local_store_holding(dir.path(), &[default_key, stray_key]).await;
    let (output, stdout, stderr) = run_with_default_portrait_at(
        dir.path(),
        default_key,
        &["cleanup-orphans", "--execute", "--older-than", "0s"],
    )
    .await;
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        store.exists(default_key).await.unwrap(),
        "the default portrait is kept: {stdout}"
    );
    assert!(
        !store.exists(stray_key).await.unwrap(),
        "a real orphan is deleted: {stdout}"
    );
    assert!(
        stdout.contains("default portrait"),
        "the report says why it was kept: {stdout}"
    );
}

#[tokio::test]
async fn migrate_prefix_leaves_the_default_portrait_hosted_at_the_bucket_root_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let default_key = "defaults/portrait.png";
    let legacy_key = "portraits/2024/05/0123456789abcdef_old.png";
    let store = local_store_holding(dir.path(), &[default_key, legacy_key]).await;
    let (output, stdout, stderr) =
        run_with_default_portrait_at(dir.path(), default_key, &["migrate-prefix"]).await;
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        store.exists(default_key).await.unwrap(),
        "DEFAULT_PORTRAIT_URL still shows the default portrait: {stdout}"
    );
    assert!(!store.exists(&format!("dev/{default_key}")).await.unwrap());
    assert!(
        !store.exists(legacy_key).await.unwrap()
            && store.exists(&format!("dev/{legacy_key}")).await.unwrap(),
        "other objects without a prefix still move: {stdout}"
    );
    assert!(
        stdout.contains(
            "Left in place: defaults/portrait.png (it is the default portrait (DEFAULT_PORTRAIT_URL))"
        ),
        "{stdout}"
    );
}

/// The laptop-default local store under `dir`, holding a small PNG at each key.
async fn local_store_holding(dir: &Path, keys: &[&str]) -> portrait_bot::storage::Store {
    let store = portrait_bot::storage::Store::local(
        dir.join("data/objects"),
        "http://localhost:9091/objects".into(),
    )
    .unwrap();
    for key in keys {
        store
            .put(key, images::png(9, 9).into(), "image/png", &[])
            .await
            .unwrap();
    }
    store
}

/// Runs the binary with DEFAULT_PORTRAIT_URL showing `default_key` from that local store.
async fn run_with_default_portrait_at(
    dir: &Path,
    default_key: &str,
    args: &[&str],
) -> (Output, String, String) {
    let mut command = portrait_bot(dir);
    command
        .env(
            "DEFAULT_PORTRAIT_URL",
            format!("http://localhost:9091/objects/{default_key}"),
        )
        .args(args);
    tokio::task::spawn_blocking(move || run(&mut command))
        .await
        .unwrap()
}
