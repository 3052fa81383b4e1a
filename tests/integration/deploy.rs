//! The deployment files checked against the binary's own configuration: `fly.toml` (ports,
//! paths, environment variable names, the volume), the `Dockerfile` (the binary it builds and
//! runs) and the Grafana dashboard (only metrics the application exports).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use clap::Parser;
use portrait_bot::app::App;
use portrait_bot::cli::Cli;
use portrait_bot::metrics::Metrics;

use testkit::variables::{BOT_VARIABLES, CONFIG_VARIABLES};

const BINARY: &str = env!("CARGO_BIN_EXE_portrait-bot");

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("cannot read {name}: {err}"))
}

fn fly_toml() -> toml::Table {
    repo_file("fly.toml")
        .parse()
        .unwrap_or_else(|err| panic!("fly.toml is not valid TOML: {err}"))
}

fn table<'a>(value: &'a toml::Table, key: &str) -> &'a toml::Table {
    value
        .get(key)
        .and_then(toml::Value::as_table)
        .unwrap_or_else(|| panic!("fly.toml has no [{key}] table"))
}

fn string<'a>(value: &'a toml::Table, key: &str) -> &'a str {
    value
        .get(key)
        .and_then(toml::Value::as_str)
        .unwrap_or_else(|| panic!("`{key}` is missing or not a string in {value:?}"))
}

fn integer(value: &toml::Table, key: &str) -> i64 {
    value
        .get(key)
        .and_then(toml::Value::as_integer)
        .unwrap_or_else(|| panic!("`{key}` is missing or not an integer in {value:?}"))
}

/// `[env]` as written in fly.toml.
fn fly_env(fly: &toml::Table) -> BTreeMap<String, String> {
    table(fly, "env")
        .iter()
        .map(|(key, value)| {
            let value = value
                .as_str()
                .unwrap_or_else(|| panic!("[env].{key} must be a string (Fly requires it)"));
            (key.clone(), value.to_owned())
        })
        .collect()
}

/// `HTTP_ADDR` from `[env]`, parsed the way the binary parses it.
fn fly_http_addr(fly: &toml::Table) -> SocketAddr {
    let env = fly_env(fly);
    let addr = env.get("HTTP_ADDR").expect("[env] sets HTTP_ADDR");
    addr.parse()
        .unwrap_or_else(|err| panic!("HTTP_ADDR `{addr}` is not an address: {err}"))
}

/// The `[checks]` entry Fly runs on the Machine (exactly one is expected).
fn health_check(fly: &toml::Table) -> &toml::Table {
    let checks = table(fly, "checks");
    assert_eq!(checks.len(), 1, "one health check: {checks:?}");
    checks
        .values()
        .next()
        .and_then(toml::Value::as_table)
        .expect("[checks.NAME] is a table")
}

/// What the binary prints for `args`, with the developer's own settings cleared.
fn help(args: &[&str]) -> String {
    let mut command = Command::new(BINARY);
    command.args(args).env("RUST_LOG", "warn");
    for variable in CONFIG_VARIABLES.iter().chain(BOT_VARIABLES) {
        command.env_remove(variable);
    }
    let output = command.output().expect("the binary runs");
    assert!(
        output.status.success(),
        "`portrait-bot {}` failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("help is UTF-8")
}

/// clap wraps long lines, sometimes inside `[env: NAME]`: one space between words.
fn normalised(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every `[env: NAME` documented by `--help` and `run --help`: the variables the binary reads.
fn variables_the_binary_reads() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for args in [&["--help"][..], &["run", "--help"]] {
        let text = normalised(&help(args));
        for (at, _) in text.match_indices("[env: ") {
            let name: String = text[at + "[env: ".len()..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            assert!(!name.is_empty(), "an empty [env: ] in {args:?}");
            names.insert(name);
        }
    }
    names
}

/// The subcommands listed under `Commands:` in `--help`.
fn subcommands() -> BTreeSet<String> {
    help(&["--help"])
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        // Wrapped descriptions are indented further than the command names.
        .filter(|line| line.starts_with("  ") && !line.starts_with("    "))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The `[default: …]` that `run --help` shows for one option.
fn documented_default(subcommand: &str, flag: &str) -> String {
    let text = normalised(&help(&[subcommand, "--help"]));
    let start = text
        .find(&format!("{flag} <"))
        .unwrap_or_else(|| panic!("`{subcommand} --help` documents {flag}"));
    let rest = &text[start + flag.len()..];
    // This option's text ends where the next option begins.
    let own = &rest[..rest.find(" --").unwrap_or(rest.len())];
    let default = own
        .split("[default: ")
        .nth(1)
        .and_then(|tail| tail.split(']').next())
        .unwrap_or_else(|| panic!("{flag} shows no [default: …]: {own}"));
    default.to_owned()
}

/// A variable whose value must come from `fly secrets set`, never from fly.toml.
fn is_secret(name: &str) -> bool {
    name == "DISCORD_TOKEN"
        || name.starts_with("R2_")
        || ["TOKEN", "SECRET", "PASSWORD", "KEY"]
            .iter()
            .any(|word| name.contains(word))
}

/// The file path of a `sqlite:` URL (`sqlite:///data/x.db` → `/data/x.db`).
fn sqlite_path(url: &str) -> &str {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or_else(|| panic!("`{url}` is not a sqlite: URL"));
    rest.split('?').next().unwrap_or(rest)
}

/// Whether `path` is inside the folder `folder` (not merely sharing a prefix with it).
fn is_inside(path: &str, folder: &str) -> bool {
    path.strip_prefix(folder.trim_end_matches('/'))
        .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
}

/// The Dockerfile as instructions: continuation lines joined, comments dropped, each
/// `(INSTRUCTION, arguments)` in order.
fn dockerfile() -> Vec<(String, String)> {
    let text = repo_file("Dockerfile");
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (instruction, arguments) = current.split_once(' ').unwrap_or((&current, ""));
        instructions.push((
            instruction.to_ascii_uppercase(),
            arguments.trim().to_owned(),
        ));
        current.clear();
    }
    assert!(
        current.is_empty(),
        "the Dockerfile ends inside a continued line"
    );
    instructions
}

/// The instructions of the stage named `name` (`FROM … AS name`), or of the last stage.
fn stage(instructions: &[(String, String)], name: Option<&str>) -> Vec<(String, String)> {
    let starts: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (instruction, _))| instruction == "FROM")
        .map(|(at, _)| at)
        .collect();
    let start = match name {
        Some(name) => *starts
            .iter()
            .find(|&&at| {
                instructions[at]
                    .1
                    .to_ascii_lowercase()
                    .ends_with(&format!(" as {name}"))
            })
            .unwrap_or_else(|| panic!("the Dockerfile has no stage `{name}`")),
        None => *starts.last().expect("the Dockerfile has a FROM"),
    };
    let end = starts
        .iter()
        .copied()
        .find(|&at| at > start)
        .unwrap_or(instructions.len());
    instructions[start..end].to_vec()
}

/// The one `INSTRUCTION` of a stage, in exec (JSON array) form.
fn exec_form(stage: &[(String, String)], instruction: &str) -> Vec<String> {
    let found: Vec<&String> = stage
        .iter()
        .filter(|(name, _)| name == instruction)
        .map(|(_, arguments)| arguments)
        .collect();
    assert_eq!(found.len(), 1, "one {instruction} in the runtime stage");
    serde_json::from_str(found[0])
        .unwrap_or_else(|err| panic!("{instruction} {} is not exec (JSON) form: {err}", found[0]))
}

#[test]
fn fly_runs_one_worker_machine_with_no_public_service_on_256_mb() {
    let fly = fly_toml();
    for public in ["http_service", "services"] {
        assert!(
            !fly.contains_key(public),
            "a worker has no [{public}]: nothing outside should reach it"
        );
    }
    let processes = table(&fly, "processes");
    assert_eq!(
        processes.keys().collect::<Vec<_>>(),
        ["app"],
        "one process group"
    );

    let vms = fly
        .get("vm")
        .and_then(toml::Value::as_array)
        .expect("fly.toml has [[vm]]");
    assert_eq!(vms.len(), 1, "one [[vm]] for every process");
    let vm = vms[0].as_table().expect("[[vm]] is a table");
    assert_eq!(string(vm, "memory").to_ascii_lowercase(), "256mb");
    assert_eq!(string(vm, "cpu_kind"), "shared");
    assert_eq!(integer(vm, "cpus"), 1);
}

#[test]
fn the_deploy_strategy_never_runs_two_bots_on_one_volume_at_once() {
    let fly = fly_toml();
    let strategy = string(table(&fly, "deploy"), "strategy");
    // canary and bluegreen boot a second Machine beside the first; rolling and immediate
    // replace the Machine in place.
    assert!(
        ["rolling", "immediate"].contains(&strategy),
        "strategy `{strategy}` would start a second bot"
    );
}

#[test]
fn fly_scrapes_and_checks_the_port_and_paths_the_http_server_serves() {
    let fly = fly_toml();
    let addr = fly_http_addr(&fly);
    assert!(
        addr.ip().is_unspecified(),
        "HTTP_ADDR must listen on 0.0.0.0 for Fly's scraper and checks, got {addr}"
    );

    let metrics = table(&fly, "metrics");
    assert_eq!(
        integer(metrics, "port"),
        i64::from(addr.port()),
        "[metrics].port is HTTP_ADDR's port"
    );
    assert_eq!(string(metrics, "path"), "/metrics");

    let check = health_check(&fly);
    assert_eq!(string(check, "type"), "http");
    assert_eq!(
        integer(check, "port"),
        i64::from(addr.port()),
        "the health check's port is HTTP_ADDR's port"
    );
    assert_eq!(string(check, "path"), "/healthz");
}

#[tokio::test]
async fn fly_settings_start_the_real_http_server_and_fly_paths_answer_200() {
    let fly = fly_toml();
    let destination = string(table(&fly, "mounts"), "destination").to_owned();
    let volume = tempfile::tempdir().expect("temp dir");
    let volume_path = volume.path().to_str().expect("UTF-8 temp path").to_owned();

    // fly.toml's [env] as flags (each variable's flag is its lowercase kebab-case name), with the
    // volume moved to a temp folder and the server on a free local port.
    let mut argv = vec!["portrait-bot".to_owned()];
    for (key, value) in fly_env(&fly) {
        let value = match key.as_str() {
            "HTTP_ADDR" => "127.0.0.1:0".to_owned(),
            _ => value.replace(&format!("{destination}/"), &format!("{volume_path}/")),
        };
        argv.push(format!(
            "--{}={value}",
            key.to_ascii_lowercase().replace('_', "-")
        ));
    }
    argv.push("serve".to_owned());
    let cli = Cli::try_parse_from(&argv)
        .unwrap_or_else(|err| panic!("fly.toml's [env] does not parse as {argv:?}: {err}"));
    let settings = cli
        .config
        .validate()
        .unwrap_or_else(|err| panic!("fly.toml's [env] is not a valid configuration: {err}"));
    assert!(
        settings.database_url.expose().contains(&volume_path),
        "the database is on the volume: {}",
        settings.database_url
    );

    let app = App::build(settings).await.expect("the application starts");
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(portrait_bot::http::serve(
        app.clone(),
        "127.0.0.1:0".parse().expect("address"),
        move |bound| {
            let _ = bound_tx.send(bound);
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    let bound = bound_rx.await.expect("the server binds");

    let client = reqwest::Client::new();
    let check_path = string(health_check(&fly), "path").to_owned();
    let metrics_path = string(table(&fly, "metrics"), "path").to_owned();
    for path in [&check_path, &metrics_path] {
        let response = client
            .get(format!("http://{bound}{path}"))
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {path}: {err}"));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "GET {path} answers 200, got {status}: {body}");
        if *path == metrics_path {
            assert!(
                body.contains("# HELP r2_uploads_total "),
                "{path} is the Prometheus text:\n{body}"
            );
        }
    }

    let _ = stop_tx.send(());
    server.await.expect("server task").expect("server ran");
    app.shutdown().await;
}

#[test]
fn every_fly_env_key_is_a_variable_the_binary_reads_and_none_is_a_secret() {
    let fly = fly_toml();
    let env = fly_env(&fly);
    let known = variables_the_binary_reads();
    assert!(
        known.contains("DATABASE_URL") && known.contains("SHUTDOWN_GRACE_SECS"),
        "both --help texts were read: {known:?}"
    );
    for key in env.keys() {
        assert!(
            known.contains(key),
            "[env].{key} is not read by portrait-bot (it reads {known:?})"
        );
        assert!(
            !is_secret(key),
            "[env].{key} is a secret: set it with `fly secrets set`, not in fly.toml"
        );
    }
    for (key, value) in [("APP_ENV", "prod"), ("LOG_FORMAT", "json")] {
        assert_eq!(env.get(key).map(String::as_str), Some(value), "[env].{key}");
    }
}

#[test]
fn the_database_on_fly_is_a_sqlite_file_on_the_mounted_volume() {
    let fly = fly_toml();
    let mounts = table(&fly, "mounts");
    let destination = string(mounts, "destination");
    assert!(!string(mounts, "source").is_empty(), "[mounts].source");
    assert!(
        destination.starts_with('/') && destination != "/",
        "[mounts].destination is an absolute folder, not /: {destination}"
    );

    let env = fly_env(&fly);
    let url = env.get("DATABASE_URL").expect("[env] sets DATABASE_URL");
    let path = sqlite_path(url);
    assert!(
        is_inside(path, destination),
        "the SQLite file {path} is on the volume at {destination} (an absolute path: sqlite:///…)"
    );
    if let Some(folder) = env.get("LOCAL_STORAGE_DIR") {
        assert!(
            is_inside(folder, destination),
            "LOCAL_STORAGE_DIR {folder} is on the volume at {destination}"
        );
    }

    // The image's own defaults put state on the same volume.
    let runtime = stage(&dockerfile(), None);
    for (instruction, arguments) in &runtime {
        if instruction != "ENV" {
            continue;
        }
        for pair in arguments.split_whitespace() {
            let (key, value) = pair.split_once('=').expect("ENV KEY=value");
            if key == "DATABASE_URL" {
                assert!(
                    is_inside(sqlite_path(value), destination),
                    "Dockerfile {pair}"
                );
            }
            if key == "LOCAL_STORAGE_DIR" {
                assert!(is_inside(value, destination), "Dockerfile {pair}");
            }
        }
    }
}

#[test]
fn fly_waits_longer_than_the_bots_shutdown_grace_before_killing_it() {
    let fly = fly_toml();
    assert_eq!(
        string(&fly, "kill_signal"),
        "SIGTERM",
        "the bot drains on SIGTERM (Fly's default is SIGINT)"
    );
    let kill_timeout = match fly.get("kill_timeout") {
        Some(toml::Value::Integer(seconds)) => *seconds,
        Some(toml::Value::String(text)) => text
            .strip_suffix('s')
            .and_then(|seconds| seconds.parse().ok())
            .unwrap_or_else(|| panic!("kill_timeout `{text}` is not whole seconds")),
        other => panic!("kill_timeout is missing or not seconds: {other:?}"),
    };
    let grace: i64 = documented_default("run", "--shutdown-grace-secs")
        .parse()
        .expect("SHUTDOWN_GRACE_SECS default is a number");
    assert!(
        kill_timeout > grace,
        "kill_timeout {kill_timeout}s must exceed SHUTDOWN_GRACE_SECS's default {grace}s"
    );
    assert!(kill_timeout <= 300, "Fly's maximum kill_timeout is 300 s");
}

#[test]
fn the_fly_process_command_is_a_subcommand_the_binary_accepts() {
    let fly = fly_toml();
    let command = string(table(&fly, "processes"), "app");
    let words: Vec<&str> = command.split_whitespace().collect();
    let subcommand = words.first().expect("[processes].app is not empty");
    let known = subcommands();
    assert!(
        known.contains(*subcommand),
        "`{subcommand}` is a subcommand ({known:?})"
    );
    // The whole command line parses: `portrait-bot <command> --help` succeeds.
    let mut args = words.clone();
    args.push("--help");
    help(&args);
}

#[test]
fn the_dockerfile_builds_the_binary_and_runs_it_as_fly_expects() {
    let instructions = dockerfile();
    let binary_name = Path::new(BINARY)
        .file_name()
        .and_then(|name| name.to_str())
        .expect("binary name");

    let builder = stage(&instructions, Some("builder"));
    let runs: Vec<&str> = builder
        .iter()
        .filter(|(instruction, _)| instruction == "RUN")
        .map(|(_, arguments)| arguments.as_str())
        .collect();
    assert!(
        runs.iter()
            .any(|run| run.contains("cargo build --release --locked --bin portrait-bot")),
        "the builder runs `cargo build --release --locked --bin portrait-bot`: {runs:?}"
    );
    assert!(
        runs.iter().any(|run| run.contains("cargo chef cook")),
        "dependencies are built in their own cached layer: {runs:?}"
    );
    // sqlx::migrate! and include_bytes! read these at compile time.
    let copied: Vec<&str> = builder
        .iter()
        .filter(|(instruction, _)| instruction == "COPY")
        .flat_map(|(_, arguments)| {
            let words: Vec<&str> = arguments
                .split_whitespace()
                .filter(|word| !word.starts_with("--"))
                .collect();
            words[..words.len().saturating_sub(1)].to_vec()
        })
        .collect();
    for needed in ["Cargo.toml", "Cargo.lock", "src", "migrations", "assets"] {
        assert!(
            copied
                .iter()
                .any(|source| source.trim_end_matches('/') == needed || *source == "."),
            "the builder copies {needed}: {copied:?}"
        );
    }

    let runtime = stage(&instructions, None);
    let entrypoint = exec_form(&runtime, "ENTRYPOINT");
    assert_eq!(entrypoint.len(), 1, "ENTRYPOINT is the binary alone");
    assert!(
        entrypoint[0].ends_with(&format!("/{binary_name}")),
        "ENTRYPOINT {entrypoint:?} runs {binary_name}"
    );
    assert!(
        runtime
            .iter()
            .any(|(instruction, arguments)| instruction == "COPY"
                && arguments.contains("--from=builder")
                && arguments.ends_with(&entrypoint[0])),
        "the runtime stage copies the built binary to {}",
        entrypoint[0]
    );
    let fly = fly_toml();
    let fly_command: Vec<String> = string(table(&fly, "processes"), "app")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        exec_form(&runtime, "CMD"),
        fly_command,
        "the image's default command is what Fly runs"
    );

    let user = runtime
        .iter()
        .rev()
        .find(|(instruction, _)| instruction == "USER")
        .map(|(_, user)| user.clone())
        .expect("the runtime stage sets USER");
    let name = user.split(':').next().unwrap_or_default();
    assert!(
        !["root", "0", ""].contains(&name),
        "the bot runs as a non-root user, not `{user}`"
    );

    let port = fly_http_addr(&fly).port().to_string();
    assert!(
        runtime
            .iter()
            .any(|(instruction, arguments)| instruction == "EXPOSE"
                && arguments.split_whitespace().any(|p| p == port)),
        "EXPOSE {port} (HTTP_ADDR)"
    );
    let destination = string(table(&fly, "mounts"), "destination");
    assert!(
        runtime
            .iter()
            .any(|(instruction, arguments)| instruction == "RUN"
                && arguments.contains(&format!("mkdir -p {destination}"))
                && arguments.contains("chown")),
        "the runtime stage creates {destination} (the volume) owned by the bot's user"
    );
    assert!(
        runtime
            .iter()
            .any(|(instruction, arguments)| instruction == "RUN"
                && arguments.contains("ca-certificates")),
        "CA certificates for HTTPS"
    );
}

#[test]
fn the_dockerignore_keeps_everything_the_build_needs() {
    let ignored: Vec<String> = repo_file(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('!'))
        .map(|line| line.trim_matches('/').to_owned())
        .collect();
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "migrations",
        "assets",
        "benches",
        "tests",
        "Dockerfile",
    ] {
        assert!(
            !ignored
                .iter()
                .any(|pattern| pattern == needed || pattern == "*" || pattern == "**"),
            ".dockerignore excludes {needed}, which the build needs"
        );
    }
    for private in [".env", "target", "data", ".git"] {
        assert!(
            ignored.iter().any(|pattern| pattern == private),
            ".dockerignore keeps {private} out of the build context"
        );
    }
}

/// Every series name the application can export: counters and gauges by name, histograms as
/// `_bucket`, `_sum` and `_count`.
fn exported_series() -> BTreeSet<String> {
    let metrics = Metrics::new();
    // Labelled families appear only once they have a child.
    metrics.uploads_total.inc();
    metrics
        .upload_errors_total
        .with_label_values(&["transient"])
        .inc();
    metrics.upload_size_bytes.observe(1.0);
    metrics.upload_latency_seconds.observe(0.1);
    metrics
        .validation_rejections_total
        .with_label_values(&["corrupt"])
        .inc();
    metrics
        .fallbacks_total
        .with_label_values(&["transient"])
        .inc();
    metrics
        .ingest_stage_seconds
        .with_label_values(&["store"])
        .observe(0.1);
    metrics
        .migration_items_total
        .with_label_values(&["migrated"])
        .inc();

    let mut series = BTreeSet::new();
    for line in metrics.render().lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
        match kind {
            "histogram" | "summary" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    series.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                series.insert(name.to_owned());
            }
        }
    }
    series
}

/// Metric names used by a PromQL expression: identifiers that are not functions, keywords,
/// label names (inside `{…}` or `by (…)`), durations (inside `[…]`) or `$variables`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "and",
        "or",
        "unless",
        "inf",
        "nan",
    ];
    // Blank out label matchers, ranges and quoted strings.
    let mut plain = String::with_capacity(expr.len());
    let mut closing: Option<char> = None;
    for c in expr.chars() {
        match (closing, c) {
            (None, '{') => closing = Some('}'),
            (None, '[') => closing = Some(']'),
            (None, '"') => closing = Some('"'),
            (Some(end), c) if c == end => closing = None,
            (None, c) => {
                plain.push(c);
                continue;
            }
            _ => {}
        }
        plain.push(' ');
    }
    // Blank out grouping label lists: `by (…)`, `without (…)`, `on (…)`, `ignoring (…)`.
    let mut names = BTreeSet::new();
    let mut grouping = false;
    let mut chars = plain.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c == '$' || c.is_ascii_digit() {
            // A `$variable`, or a number or duration such as `0.95` or `1h`.
            while chars
                .peek()
                .is_some_and(|(_, c)| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            {
                chars.next();
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') {
            if c == ')' {
                grouping = false;
            }
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(at, next)) = chars.peek() {
            if next.is_ascii_alphanumeric() || next == '_' || next == ':' {
                end = at + next.len_utf8();
                chars.next();
            } else {
                break;
            }
        }
        let word = &plain[start..end];
        if ["by", "without", "on", "ignoring"].contains(&word) {
            grouping = true;
            continue;
        }
        if grouping || KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
            continue;
        }
        // A function or aggregation: `rate(…)`, `sum (…)`, `sum by (…) (…)`.
        let after = plain[end..].trim_start();
        let next_word: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if after.starts_with('(') || next_word == "by" || next_word == "without" {
            continue;
        }
        names.insert(word.to_owned());
    }
    names
}

#[test]
fn the_grafana_dashboard_is_json_whose_queries_use_only_metrics_the_app_exports() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&repo_file("deploy/grafana-dashboard.json"))
            .unwrap_or_else(|err| panic!("deploy/grafana-dashboard.json is not JSON: {err}"));
    assert!(
        dashboard["title"].as_str().is_some_and(|t| !t.is_empty()),
        "the dashboard has a title"
    );
    assert!(
        dashboard["schemaVersion"].as_u64().is_some(),
        "schemaVersion"
    );
    let panels = dashboard["panels"].as_array().expect("panels");
    let exported = exported_series();

    let mut used = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        let id = panel["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} is used twice");
        assert!(panel["gridPos"].is_object(), "{title} has a gridPos");
        let targets = panel["targets"].as_array().expect("every panel queries");
        assert!(!targets.is_empty(), "{title} has a query");
        for target in targets {
            let expr = target["expr"].as_str().expect("a PromQL expr");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{title}: `{expr}` names a metric");
            for name in names {
                assert!(
                    exported.contains(&name),
                    "{title}: `{name}` in `{expr}` is not exported by the app ({exported:?})"
                );
                used.insert(name);
            }
        }
    }

    // The dashboard covers what the issue asks for: uploads, errors by type, latency, stored
    // bytes, refused images, fallbacks, pipeline stages and migration progress.
    for wanted in [
        "r2_uploads_total",
        "r2_upload_errors_total",
        "r2_upload_latency_seconds_bucket",
        "r2_upload_size_bytes_sum",
        "portrait_validation_rejections_total",
        "portrait_fallbacks_total",
        "portrait_ingest_stage_seconds_bucket",
        "portrait_migration_items_total",
    ] {
        assert!(used.contains(wanted), "no panel charts {wanted}");
    }
}

#[test]
fn metric_names_are_told_apart_from_functions_labels_and_ranges() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.95, sum by (le, stage) (rate(portrait_ingest_stage_seconds_bucket{app=~"$app", stage!="x"}[5m])))"#
        ),
        BTreeSet::from(["portrait_ingest_stage_seconds_bucket".to_owned()])
    );
    assert_eq!(
        metric_names("sum(increase(a_total[$__range])) / ignoring (outcome) b_total offset 1h"),
        BTreeSet::from(["a_total".to_owned(), "b_total".to_owned()])
    );
}
