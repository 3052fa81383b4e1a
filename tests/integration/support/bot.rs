//! The real bot (`cli::run_bot`, the code path of `portrait-bot run`) against the simulated
//! Discord, the simulated CDN, s3s-fs and a fresh database.

use std::time::Duration;

use portrait_bot::config::{BotSettings, Settings, ShardPlan, StorageSettings};
use portrait_bot::db::Character;
use portrait_bot::secret::Secret;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use testkit::cdn::TestCdn;
use testkit::discord::{self, Attachment, TestDiscord, BOT_TOKEN, GUILD_ID};
use testkit::s3::TestS3;

use super::app::{metric_value, settings, DEFAULT_PORTRAIT_URL};
use super::database::TestDb;
use super::r2::R2Access;

/// How long tests wait for the bot to answer.
pub const ANSWER: Duration = Duration::from_secs(20);

/// Bot settings tests may adjust before starting.
#[derive(Debug, Clone)]
pub struct BotOptions {
    pub admin_user_ids: Vec<u64>,
    pub registration_message_step: bool,
    pub registration_timeout: Duration,
    pub gallery_timeout: Duration,
    pub max_characters_per_player: u64,
    pub uploads_per_10_minutes: u32,
    /// Store in a local folder served from localhost (the laptop defaults) instead of s3s-fs.
    pub local_storage: bool,
}

impl Default for BotOptions {
    fn default() -> Self {
        Self {
            admin_user_ids: Vec::new(),
            registration_message_step: true,
            registration_timeout: Duration::from_secs(30),
            gallery_timeout: Duration::from_secs(300),
            max_characters_per_player: 10,
            uploads_per_10_minutes: 50,
            local_storage: false,
        }
    }
}

pub struct TestBot {
    pub discord: TestDiscord,
    /// Where the bot's HTTP server (`/metrics`, `/healthz`) listens.
    pub http_addr: std::net::SocketAddr,
    pub s3: TestS3,
    pub cdn: TestCdn,
    pub db: TestDb,
    /// Held so the local store's folder lives as long as the bot.
    _local_dir: tempfile::TempDir,
    /// What the bot was started with, to start it again ([`TestBot::restart`]).
    app_settings: Settings,
    bot_settings: BotSettings,
    /// Held so the bot runs until the test ends (dropping it would stop the bot).
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestBot {
    pub async fn start(db: TestDb) -> TestBot {
        Self::start_with(db, BotOptions::default()).await
    }

    /// Starts everything, waits for READY and the command registration, then forgets the
    /// startup REST calls so tests see only their own.
    pub async fn start_with(db: TestDb, options: BotOptions) -> TestBot {
        let discord = TestDiscord::start().await;
        discord.add_guild(GUILD_ID);
        let s3 = TestS3::start().await;
        let cdn = TestCdn::start().await;
        let local_dir = tempfile::tempdir().expect("temp dir");
        let storage = if options.local_storage {
            StorageSettings::Local {
                root: local_dir.path().to_owned(),
                public_base_url: "http://localhost:9091/objects".to_owned(),
            }
        } else {
            StorageSettings::R2(s3.settings())
        };
        let mut app_settings = settings(&db, storage, &cdn);
        app_settings.http_addr = free_local_addr();
        let http_addr = app_settings.http_addr;
        let bot_settings = bot_settings(&discord, &options);
        let mut bot = TestBot {
            discord,
            http_addr,
            s3,
            cdn,
            db,
            _local_dir: local_dir,
            app_settings,
            bot_settings,
            stop: None,
            task: None,
        };
        bot.launch().await;
        bot
    }

    /// Runs the bot (`cli::run_bot`), waits for READY and the command registration, then
    /// forgets the startup REST calls.
    async fn launch(&mut self) {
        let (stop, stopped) = oneshot::channel::<()>();
        self.task = Some(tokio::spawn(portrait_bot::cli::run_bot(
            self.app_settings.clone(),
            self.bot_settings.clone(),
            async {
                let _ = stopped.await;
            },
        )));
        self.stop = Some(stop);
        self.discord.wait_ready(1).await;
        self.discord
            .wait_for_rest(
                "command registration",
                |call| call.method == "PUT" && call.path.ends_with("/commands"),
                ANSWER,
            )
            .await;
        self.discord.clear_rest_calls();
    }

    /// Stops the bot as a stop signal does and starts a new process of it on the same
    /// database, bucket, CDN and simulated Discord (whose messages, with their buttons, stay):
    /// what a deploy does. Nothing of the first process's memory survives.
    pub async fn restart(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(ANSWER, task)
                .await
                .expect("the bot stops within the grace period")
                .expect("the bot task")
                .expect("the bot stops cleanly");
        }
        let deadline = tokio::time::Instant::now() + ANSWER;
        while self.discord.ready_sessions() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the stopped bot's gateway session did not close"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.discord.clear_rest_calls();
        self.launch().await;
    }

    /// Sends an interaction and returns the bot's first reply: the immediate response's
    /// message (callback type 4), or, after a defer, the first follow-up.
    pub async fn command(&self, interaction: &Value) -> Value {
        self.discord.send_interaction(interaction.clone()).await;
        let callback = self
            .discord
            .wait_for_rest("the response", discord::is_callback(interaction), ANSWER)
            .await;
        if callback.body()["type"] == 4 {
            return callback.body()["data"].clone();
        }
        self.followup(interaction, 0).await
    }

    /// The `n`-th (from 0) follow-up the bot posted for this interaction.
    pub async fn followup(&self, interaction: &Value, n: usize) -> Value {
        let path = discord::followup_path(interaction);
        let deadline = tokio::time::Instant::now() + ANSWER;
        loop {
            let followups: Vec<Value> = self
                .discord
                .rest_calls()
                .into_iter()
                .filter(|call| call.is("POST", &path))
                .map(|call| call.body().clone())
                .collect();
            if let Some(body) = followups.get(n) {
                return body.clone();
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "no follow-up #{n} for the interaction; REST calls: {:#?}",
                    self.discord
                        .rest_calls()
                        .iter()
                        .map(|c| format!("{} {} {:?}", c.method, c.path, c.json))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Serves `bytes` on the CDN and describes it as a Discord attachment.
    pub fn attachment(&self, filename: &str, bytes: &[u8], content_type: &str) -> Attachment {
        let url = self.cdn.host(
            &format!(
                "/attachments/{}/{}/{filename}",
                GUILD_ID,
                discord::next_id()
            ),
            bytes.to_vec(),
            content_type,
        );
        Attachment::new(filename, &url, bytes.len() as u64).content_type(content_type)
    }

    pub async fn character(&self, owner: u64, name: &str) -> Option<Character> {
        self.db
            .db
            .find_character(GUILD_ID, owner, name)
            .await
            .expect("query")
    }

    /// The value of one series on the bot's `/metrics` page, e.g.
    /// `portrait_moderation_actions_total{action="removed"}`; 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics_page().await, series)
    }

    pub async fn bucket_keys(&self) -> Vec<String> {
        self.s3.keys().await
    }

    /// The bot's `/metrics` page as Prometheus scrapes it.
    pub async fn metrics_page(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.http_addr))
            .await
            .expect("/metrics answers")
            .text()
            .await
            .expect("a text page")
    }
}

/// A loopback address with a port nobody listens on right now, for the bot's HTTP server
/// (the bot only logs the port it binds, so tests choose it).
fn free_local_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

impl Drop for TestBot {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub fn bot_settings(discord: &TestDiscord, options: &BotOptions) -> BotSettings {
    BotSettings {
        token: Secret::new(BOT_TOKEN),
        api_base: Some(discord.api_base()),
        dev_guild_id: Some(GUILD_ID),
        admin_user_ids: options.admin_user_ids.clone(),
        registration_message_step: options.registration_message_step,
        registration_timeout: options.registration_timeout,
        gallery_timeout: options.gallery_timeout,
        max_characters_per_player: options.max_characters_per_player,
        uploads_per_10_minutes: options.uploads_per_10_minutes,
        shutdown_grace: Duration::from_secs(10),
        shards: ShardPlan::Single,
    }
}

/// The image URL of the first embed of a message body.
pub fn embed_image(body: &Value) -> Option<&str> {
    body["embeds"][0]["image"]["url"].as_str()
}

pub fn content(body: &Value) -> &str {
    body["content"].as_str().unwrap_or_default()
}

/// Whether the message is visible only to the caller.
pub fn is_ephemeral(body: &Value) -> bool {
    body["flags"].as_u64().is_some_and(|flags| flags & 64 != 0)
}

pub const DEFAULT_URL: &str = DEFAULT_PORTRAIT_URL;
