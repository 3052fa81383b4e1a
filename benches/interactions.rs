//! Interaction benchmark: the real `portrait-bot run` binary as a child process against the
//! simulated Discord, a simulated CDN and s3s-fs, all in this process on 127.0.0.1.
//!
//! Figures: how fast the bot answers an upload interaction with its defer callback while 16
//! uploads of 8 MiB are in flight (Discord allows 3 s; the budget is 100 ms at p99), and the
//! bot's idle RSS once it is connected and has registered its commands.
//!
//! Sequence: start the bot, wait for READY and the command registration, read its RSS after
//! a second of idling; `/register` 16 + 200 characters; start 16 `/portrait set` with 8 MiB
//! PNGs and replace each as soon as it is answered, so 16 stay in flight; meanwhile send 200
//! `/portrait set` with small PNGs ("probes"), one every 10 ms, and take each one's latency
//! from the moment its INTERACTION_CREATE is sent to the arrival of its callback (type 5);
//! wait for every reply; SIGTERM; expect exit 0. The same 200 probes are also sent once with
//! no big uploads, for the ratio.
//!
//! The latency includes the simulated Discord's side of the sockets. Its gateway sends small
//! frames one way only, so without TCP_NODELAY there, Nagle's algorithm waits for the bot's
//! delayed ACKs and adds up to 40 ms to some probes, loaded or not (seen as p99s near 30 ms
//! with nothing else running).
//!
//! The bot runs in its own process so the RSS read from `/proc/<pid>/status` is the bot's
//! alone, not inflated by the simulated services and the fixtures held here.
//!
//! Reproduce: `cargo bench --bench interactions`

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use bytes::Bytes;
use serde_json::Value;

use testkit::cdn::TestCdn;
use testkit::discord::{
    self, slash_command, Attachment, RestCall, TestDiscord, BOT_TOKEN, GUILD_ID,
};
use testkit::images;
use testkit::s3::{self, TestS3};
use testkit::variables;

const MIB: u64 = 1024 * 1024;
/// Uploads of ~8 MiB started before the measured interactions and still running under them.
const BIG_UPLOADS: usize = 16;
/// Side of the square RGB noise PNGs: 1672² × 3 bytes of incompressible pixels ≈ 8.0 MiB.
const BIG_SIDE: u32 = 1672;
/// Measured `/portrait set` interactions, sent at a steady pace.
const PROBES: usize = 200;
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// How long the bot gets for each phase before the run counts as broken.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);
const PHASE_LIMIT: Duration = Duration::from_secs(90);
const EXIT_LIMIT: Duration = Duration::from_secs(40);

fn main() -> ExitCode {
    // Two runtimes. The CDN (8 MiB bodies, 16 at a time) and s3s-fs (8 MiB writes) run on
    // `services`; the simulated Discord, whose REST handler stamps the defer's arrival time,
    // runs alone on `discord`. On one runtime a worker busy copying a large body would start
    // the callback's handler late and add its delay to the bot's figure. A thread pool of its
    // own is enough for that (the OS shares the cores fairly); the CDN need not be a separate
    // process here, because only the bot's process is measured for memory.
    let services = runtime("services");
    let discord = runtime("discord");
    let result = discord.block_on(run(services.handle()));
    drop(discord);
    drop(services);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("\nbenchmark failed: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn run(services: &tokio::runtime::Handle) -> anyhow::Result<()> {
    println!("portrait-bot interaction benchmark (reproduce: cargo bench --bench interactions)\n");
    let (big, small) = tokio::task::spawn_blocking(fixtures).await?;

    // Started on `services`: their accept loops are spawned onto the runtime they start on.
    let s3 = services.spawn(TestS3::start()).await?;
    let cdn = services.spawn(TestCdn::start()).await?;
    let discord = TestDiscord::start().await;
    discord.add_guild(GUILD_ID);

    let workdir = tempfile::tempdir()?;
    let mut bot = Bot::spawn(workdir.path(), &discord, &s3, &cdn)?;
    let figures = match measure(&mut bot, &discord, &cdn, big, small).await {
        Ok(figures) => figures,
        Err(err) => {
            eprintln!("{}", bot.log_tail());
            return Err(err);
        }
    };
    figures.print();

    let status = bot.terminate().await?;
    if !status.success() {
        eprintln!("{}", bot.log_tail());
        bail!("the bot exited with {status} after SIGTERM instead of 0");
    }
    println!("\nbot stopped by SIGTERM: {status}");
    // Slow is a figure; an upload that was not stored is a broken bot.
    if figures.big_stored < figures.big_uploads || figures.probes_stored < figures.latencies.len() {
        eprintln!("{}", bot.log_tail());
        bail!("some uploads were not stored (see the table)");
    }
    println!("\nreproduce: cargo bench --bench interactions");
    Ok(())
}

/// The big uploads' PNGs, and small PNGs for the probes: two per probe character, one for the
/// run without load and one for the run under load. Distinct seeds, so every upload is a new
/// object, never "already stored".
fn fixtures() -> (Vec<Bytes>, Vec<Bytes>) {
    let big: Vec<Bytes> = (0..BIG_UPLOADS)
        .map(|i| Bytes::from(images::noise_png(BIG_SIDE, BIG_SIDE, 10_000 + i as u64)))
        .collect();
    let small = (0..2 * PROBES)
        .map(|i| Bytes::from(images::noise_png(48, 48, i as u64)))
        .collect();
    (big, small)
}

/// Everything the table shows.
struct Figures {
    idle_rss_kib: u64,
    peak_rss_kib: u64,
    /// Interaction sent → defer callback received, per probe under load.
    latencies: Vec<Duration>,
    /// The same for the probes sent with no other work going on.
    unloaded_latencies: Vec<Duration>,
    big_uploads: usize,
    big_stored: usize,
    big_mean_bytes: u64,
    /// Big uploads in flight when each probe was sent: the fewest, the mean, and how many
    /// probes saw all of them.
    in_flight_min: usize,
    in_flight_mean: f64,
    probes_under_all: usize,
    probes_stored: usize,
    probe_window: Duration,
}

impl Figures {
    fn print(&self) {
        let verdict = |ok: bool| if ok { "within budget" } else { "OVER BUDGET" };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let p50 = percentile(&self.latencies, 0.50);
        let p99 = percentile(&self.latencies, 0.99);
        let max = self.latencies.iter().max().copied().unwrap_or_default();
        let idle_mib = self.idle_rss_kib as f64 / 1024.0;
        let big_mib = self.big_mean_bytes as f64 / MIB as f64;
        let probes = self.latencies.len();

        println!("| figure | value | budget | verdict |");
        println!("| --- | --- | --- | --- |");
        println!(
            "| interaction → defer callback, p50 ({probes} `/portrait set`, one every {} ms, while {BIG_UPLOADS} uploads of {big_mib:.1} MiB are in flight) | {:.1} ms | — | — |",
            PROBE_INTERVAL.as_millis(),
            ms(p50)
        );
        println!(
            "| interaction → defer callback, p99 (max {:.1} ms) | {:.1} ms | ≤ 100 ms | {} |",
            ms(max),
            ms(p99),
            verdict(p99 <= Duration::from_millis(100))
        );
        println!(
            "| the same probes with no big uploads, p50 / p99 | {:.1} ms / {:.1} ms | — | — |",
            ms(percentile(&self.unloaded_latencies, 0.50)),
            ms(percentile(&self.unloaded_latencies, 0.99))
        );
        println!(
            "| p99 under load / p99 without | {:.1} | — | — |",
            p99.as_secs_f64()
                / percentile(&self.unloaded_latencies, 0.99)
                    .as_secs_f64()
                    .max(1e-6)
        );
        println!(
            "| idle RSS of the bot process after READY and command registration | {idle_mib:.1} MiB | ≤ 40 MiB | {} |",
            verdict(idle_mib <= 40.0)
        );
        println!(
            "| big uploads in flight when a probe was sent | min {}, mean {:.1}; all {BIG_UPLOADS} for {}/{probes} probes | {BIG_UPLOADS} wanted | {} |",
            self.in_flight_min,
            self.in_flight_mean,
            self.probes_under_all,
            if self.in_flight_min > 0 { "ok" } else { "LOAD GAP" }
        );
        println!(
            "| big uploads stored (reply with the new portrait) | {}/{} over {:.2} s of probes | all | {} |",
            self.big_stored,
            self.big_uploads,
            self.probe_window.as_secs_f64(),
            if self.big_stored == self.big_uploads { "ok" } else { "FAILED" }
        );
        println!(
            "| probe uploads stored | {}/{probes} | all | {} |",
            self.probes_stored,
            if self.probes_stored == probes {
                "ok"
            } else {
                "FAILED"
            }
        );
        println!(
            "| peak RSS of the bot process over the whole run (VmHWM) | {:.1} MiB | — (see `--bench ingest`) | — |",
            self.peak_rss_kib as f64 / 1024.0
        );
    }
}

/// Nearest-rank percentile.
fn percentile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn measure(
    bot: &mut Bot,
    discord: &TestDiscord,
    cdn: &TestCdn,
    big: Vec<Bytes>,
    mut small: Vec<Bytes>,
) -> anyhow::Result<Figures> {
    // Startup: READY, then the command registration that poise's setup does after it.
    bot.wait_until("READY", STARTUP_LIMIT, || discord.ready_sessions() >= 1)
        .await?;
    bot.wait_until("the command registration", STARTUP_LIMIT, || {
        discord
            .rest_calls()
            .iter()
            .any(|c| c.method == "PUT" && c.path.ends_with("/commands"))
    })
    .await?;
    // A moment with nothing to do, so lazily started threads and buffers settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    bot.ensure_alive()?;
    let idle_rss_kib = bot.status_kib("VmRSS:")?;

    // One character per upload. REGISTRATION_MESSAGE_STEP=false lets `/register` without an
    // image finish at once; in batches, so the registrations do not pile up on SQLite.
    let big_names: Vec<String> = (0..BIG_UPLOADS).map(|i| format!("Big {i}")).collect();
    let probe_names: Vec<String> = (0..PROBES).map(|i| format!("Probe {i}")).collect();
    for batch in big_names
        .iter()
        .chain(&probe_names)
        .collect::<Vec<_>>()
        .chunks(16)
    {
        let mut sent = Vec::new();
        for name in batch {
            let interaction = slash_command("register").option_str("name", name).build();
            discord.send_interaction(interaction.clone()).await;
            sent.push(interaction);
        }
        let replies = bot
            .wait_for_followups(discord, &sent, "the registrations")
            .await?;
        for (name, reply) in batch.iter().zip(&replies) {
            let text = content(reply);
            ensure!(
                text.contains("is registered"),
                "`/register name:{name}` answered {text:?}"
            );
        }
    }

    // The reference: the same probes with nothing else to do, for the ratio.
    discord.clear_rest_calls();
    let loaded_images = small.split_off(PROBES);
    let unloaded = send_probes(discord, cdn, &probe_names, small, "unloaded", None).await;
    bot.wait_for_followups(discord, &interactions(&unloaded), "the unloaded probes")
        .await?;
    let unloaded_latencies = defer_latencies(&first_posts(&discord.rest_calls()), &unloaded)?;

    // Only the calls from here on are looked at; fewer to copy while polling.
    discord.clear_rest_calls();

    // The load: 16 big uploads in flight before the first probe and kept there until the last
    // probe is sent. One wave would be over before the probes are (an 8 MiB upload takes a
    // fraction of a second on loopback), so each finished upload is replaced at once.
    let stop = AtomicBool::new(false);
    let load = BigLoad::start(discord, cdn, &big_names, big).await;
    let probing = send_probes(
        discord,
        cdn,
        &probe_names,
        loaded_images,
        "loaded",
        Some(&stop),
    );
    let (big_sent, probes) = tokio::join!(load.sustain(&stop, bot.id()), probing);
    bot.ensure_alive()?;
    let big_sent = big_sent?;

    // Everything answered, so the stop below is clean and the counts are final.
    bot.wait_for_followups(discord, &interactions(&probes), "the probes under load")
        .await?;
    let peak_rss_kib = bot.status_kib("VmHWM:")?;

    let mut figures = analyse(
        &discord.rest_calls(),
        &big_sent,
        &probes,
        idle_rss_kib,
        peak_rss_kib,
    )?;
    figures.unloaded_latencies = unloaded_latencies;
    Ok(figures)
}

/// One `/portrait set` with a small PNG per probe character, at a steady pace (a late tick
/// does not cause a burst); sets `done` after the last one. Returns each interaction with the
/// moment just before it was sent.
async fn send_probes(
    discord: &TestDiscord,
    cdn: &TestCdn,
    names: &[String],
    images: Vec<Bytes>,
    label: &str,
    done: Option<&AtomicBool>,
) -> Vec<(Value, Instant)> {
    let mut probes = Vec::new();
    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for (i, (name, bytes)) in names.iter().zip(images).enumerate() {
        let image = hosted(cdn, &format!("probe-{label}-{i}.png"), bytes).dimensions(48, 48);
        let interaction = portrait_set(name, &image);
        ticks.tick().await;
        let at = discord.send_interaction(interaction.clone()).await;
        probes.push((interaction, at));
    }
    if let Some(done) = done {
        done.store(true, Ordering::Relaxed);
    }
    probes
}

fn interactions(sent: &[(Value, Instant)]) -> Vec<Value> {
    sent.iter().map(|(i, _)| i.clone()).collect()
}

/// One big upload: the interaction and when it was sent.
struct BigUpload {
    interaction: Value,
    sent: Instant,
    bytes: u64,
}

/// Keeps one 8 MiB `/portrait set` in flight per big character ("lane").
struct BigLoad<'a> {
    discord: &'a TestDiscord,
    cdn: &'a TestCdn,
    names: &'a [String],
    images: Vec<Bytes>,
    sent: Vec<BigUpload>,
    /// Per lane: the follow-up path of its upload in flight, if any.
    waiting: Vec<Option<String>>,
    rounds: Vec<usize>,
}

impl<'a> BigLoad<'a> {
    /// Sends the first upload of every lane.
    async fn start(
        discord: &'a TestDiscord,
        cdn: &'a TestCdn,
        names: &'a [String],
        images: Vec<Bytes>,
    ) -> BigLoad<'a> {
        let mut load = BigLoad {
            discord,
            cdn,
            names,
            images,
            sent: Vec::new(),
            waiting: vec![None; names.len()],
            rounds: vec![0; names.len()],
        };
        for lane in 0..names.len() {
            load.send(lane).await;
        }
        load
    }

    async fn send(&mut self, lane: usize) {
        // Lane k's round r uploads image (k + r) mod 16 to character k, so every upload is a
        // new object (the key holds the image hash and the character): a full download,
        // decode, hash and PUT, never "already stored". That holds for 16 rounds per lane; a
        // run takes about 5.
        let round = self.rounds[lane];
        self.rounds[lane] += 1;
        let bytes = self.images[(lane + round) % self.images.len()].clone();
        let size = bytes.len() as u64;
        let filename = format!("big-{lane}-{round}.png");
        let image = hosted(self.cdn, &filename, bytes).dimensions(BIG_SIDE, BIG_SIDE);
        let interaction = portrait_set(&self.names[lane], &image);
        self.waiting[lane] = Some(discord::followup_path(&interaction));
        let sent = self.discord.send_interaction(interaction.clone()).await;
        self.sent.push(BigUpload {
            interaction,
            sent,
            bytes: size,
        });
    }

    /// Replaces each upload as soon as its reply arrives, until `stop`; then waits for the
    /// last ones and returns every upload sent.
    async fn sustain(mut self, stop: &AtomicBool, bot: u32) -> anyhow::Result<Vec<BigUpload>> {
        let deadline = Instant::now() + PHASE_LIMIT;
        loop {
            ensure!(running(bot), "the bot died under load");
            // Polling copies the REST log; every 5 ms keeps a lane's gap short and the copying
            // (under the simulated Discord's lock) small.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let stopping = stop.load(Ordering::Relaxed);
            let calls = self.discord.rest_calls();
            let answered: HashSet<&str> = calls
                .iter()
                .filter(|c| c.method == "POST")
                .map(|c| c.path.as_str())
                .collect();
            for lane in 0..self.waiting.len() {
                let done = self.waiting[lane]
                    .as_deref()
                    .is_some_and(|path| answered.contains(path));
                if done {
                    self.waiting[lane] = None;
                    if !stopping {
                        self.send(lane).await;
                    }
                }
            }
            if stopping && self.waiting.iter().all(Option::is_none) {
                return Ok(self.sent);
            }
            ensure!(
                Instant::now() < deadline,
                "big uploads unanswered after {PHASE_LIMIT:?}"
            );
        }
    }
}

fn analyse(
    calls: &[RestCall],
    big_sent: &[BigUpload],
    probes: &[(Value, Instant)],
    idle_rss_kib: u64,
    peak_rss_kib: u64,
) -> anyhow::Result<Figures> {
    let posts = first_posts(calls);
    let find = |path: String, what: &str| find_post(&posts, path, what);

    // When each big upload was in flight: from its interaction to its reply.
    let mut big_spans = Vec::new();
    let mut big_stored = 0;
    for upload in big_sent {
        let reply = find(
            discord::followup_path(&upload.interaction),
            "big upload reply",
        )?;
        big_stored += usize::from(stored(reply.body()));
        big_spans.push((upload.sent, reply.at));
    }

    let latencies = defer_latencies(&posts, probes)?;
    let mut in_flight = Vec::new();
    let mut probes_stored = 0;
    for (interaction, sent) in probes {
        let reply = find(discord::followup_path(interaction), "probe reply")?;
        probes_stored += usize::from(stored(reply.body()));
        in_flight.push(
            big_spans
                .iter()
                .filter(|(start, end)| start <= sent && sent < end)
                .count(),
        );
    }

    let first_probe = probes.first().map(|(_, at)| *at).context("no probes")?;
    let last_probe = probes.last().map(|(_, at)| *at).context("no probes")?;
    let big_bytes: u64 = big_sent.iter().map(|u| u.bytes).sum();
    Ok(Figures {
        idle_rss_kib,
        peak_rss_kib,
        latencies,
        unloaded_latencies: Vec::new(),
        big_uploads: big_sent.len(),
        big_stored,
        big_mean_bytes: big_bytes / big_sent.len().max(1) as u64,
        in_flight_min: in_flight.iter().min().copied().unwrap_or(0),
        in_flight_mean: in_flight.iter().sum::<usize>() as f64 / in_flight.len().max(1) as f64,
        probes_under_all: in_flight.iter().filter(|n| **n >= BIG_UPLOADS).count(),
        probes_stored,
        probe_window: last_probe - first_probe,
    })
}

/// The first POST to each path (a callback, or an interaction's first follow-up).
fn first_posts(calls: &[RestCall]) -> HashMap<&str, &RestCall> {
    // Collected from the last call back, so the first POST to each path is the one kept.
    calls
        .iter()
        .rev()
        .filter(|c| c.method == "POST")
        .map(|c| (c.path.as_str(), c))
        .collect()
}

fn find_post<'a>(
    posts: &HashMap<&str, &'a RestCall>,
    path: String,
    what: &str,
) -> anyhow::Result<&'a RestCall> {
    posts
        .get(path.as_str())
        .copied()
        .with_context(|| format!("no {what} at {path}"))
}

/// Interaction sent → its callback received, for each probe; the callback must be a defer.
fn defer_latencies(
    posts: &HashMap<&str, &RestCall>,
    probes: &[(Value, Instant)],
) -> anyhow::Result<Vec<Duration>> {
    probes
        .iter()
        .map(|(interaction, sent)| {
            let callback = find_post(posts, discord::callback_path(interaction), "defer")?;
            ensure!(
                callback.body()["type"] == 5,
                "the first answer to a probe is not a defer: {}",
                callback.body()
            );
            Ok(callback.at.saturating_duration_since(*sent))
        })
        .collect()
}

/// Whether a reply shows a stored portrait: the card, and not a fallback warning.
fn stored(reply: &Value) -> bool {
    let has_embed = reply["embeds"].as_array().is_some_and(|e| !e.is_empty());
    has_embed && content(reply).starts_with("Portrait saved")
}

fn content(reply: &Value) -> &str {
    reply["content"].as_str().unwrap_or_default()
}

fn portrait_set(character: &str, image: &Attachment) -> Value {
    slash_command("portrait")
        .subcommand("set")
        .option_str("character", character)
        .option_attachment("image", image)
        .build()
}

/// Serves `bytes` on the CDN under an attachment-like path and describes it as Discord would.
fn hosted(cdn: &TestCdn, filename: &str, bytes: Bytes) -> Attachment {
    let size = bytes.len() as u64;
    let path = format!("/attachments/{GUILD_ID}/{}/{filename}", discord::next_id());
    let url = cdn.host(&path, bytes, "image/png");
    Attachment::new(filename, &url, size).content_type("image/png")
}

/// `portrait-bot run`, configured through its environment only, with its log in a file.
struct Bot {
    child: Child,
    log: PathBuf,
}

impl Bot {
    fn spawn(dir: &Path, discord: &TestDiscord, s3: &TestS3, cdn: &TestCdn) -> anyhow::Result<Bot> {
        let log = dir.join("bot.log");
        let log_file = std::fs::File::create(&log)?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_portrait-bot"));
        for variable in variables::CONFIG_VARIABLES
            .iter()
            .chain(variables::BOT_VARIABLES)
        {
            command.env_remove(variable);
        }
        let database = format!("sqlite://{}", dir.join("bench.db").display());
        command
            .current_dir(dir)
            .env("DISCORD_TOKEN", BOT_TOKEN)
            .env("DISCORD_API_BASE", discord.api_base())
            .env("DEV_GUILD_ID", GUILD_ID.to_string())
            .env("DATABASE_URL", database)
            .env("R2_ENDPOINT", s3.endpoint())
            .env("R2_ACCESS_KEY_ID", s3::ACCESS_KEY)
            .env("R2_SECRET_ACCESS_KEY", s3::SECRET_KEY)
            .env("R2_BUCKET_NAME", s3::BUCKET)
            .env("R2_PUBLIC_URL", s3::PUBLIC_URL)
            .env("CDN_ALLOWED_ORIGINS", cdn.origin())
            .env("HTTP_ADDR", format!("127.0.0.1:{}", free_port()?))
            // Every probe comes from one player, far beyond the normal per-player limits.
            .env("UPLOADS_PER_10_MINUTES", "100000")
            .env("MAX_CHARACTERS_PER_PLAYER", "100000")
            .env("REGISTRATION_MESSAGE_STEP", "false")
            .env("RUST_LOG", "warn")
            .arg("run")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        let child = command.spawn().context("start portrait-bot run")?;
        Ok(Bot { child, log })
    }

    fn ensure_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!("the bot exited early with {status}"),
        }
    }

    /// Polls `done` (and that the bot still runs) until it holds or `limit` passes.
    async fn wait_until(
        &mut self,
        what: &str,
        limit: Duration,
        mut done: impl FnMut() -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if done() {
                return Ok(());
            }
            self.ensure_alive()
                .with_context(|| format!("while waiting for {what}"))?;
            ensure!(Instant::now() < deadline, "no {what} within {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The first follow-up of each interaction, in order, once every one has arrived.
    async fn wait_for_followups(
        &mut self,
        discord: &TestDiscord,
        interactions: &[Value],
        what: &str,
    ) -> anyhow::Result<Vec<Value>> {
        let paths: Vec<String> = interactions.iter().map(discord::followup_path).collect();
        let mut replies = Vec::new();
        self.wait_until(what, PHASE_LIMIT, || {
            let calls = discord.rest_calls();
            let mut first: HashMap<&str, &Value> = HashMap::new();
            for call in calls.iter().filter(|c| c.method == "POST") {
                if let Some(json) = &call.json {
                    first.entry(call.path.as_str()).or_insert(json);
                }
            }
            replies = paths
                .iter()
                .filter_map(|p| first.get(p.as_str()).map(|v| (*v).clone()))
                .collect();
            replies.len() == paths.len()
        })
        .await?;
        Ok(replies)
    }

    fn id(&self) -> u32 {
        self.child.id()
    }

    /// A `kB` field of `/proc/<pid>/status`, e.g. `VmRSS:`.
    fn status_kib(&self, field: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {field} in /proc/{}/status", self.child.id()))
    }

    /// SIGTERM, as Fly.io sends it, then the exit status.
    async fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        ensure!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + EXIT_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            ensure!(
                Instant::now() < deadline,
                "the bot did not exit within {EXIT_LIMIT:?} of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("--- last lines of the bot's log ---\n{tail}")
    }
}

impl Drop for Bot {
    /// A failed run never leaves the bot running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether the process exists and is not a zombie (exited, not yet waited for).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The state follows the command name, which is in parentheses.
            let (_, after) = stat.rsplit_once(')')?;
            after.split_whitespace().next().map(|state| state != "Z")
        })
        .unwrap_or(false)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
