//! The real bot (`cli::run_bot`, the code path of `portrait-bot run`) against the simulated
//! Discord, the simulated CDN, s3s-fs and a fresh database.

use std::time::Duration;

use portrait_bot::config::{BotSettings, ShardPlan, StorageSettings};
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
    pub s3: TestS3,
    pub cdn: TestCdn,
    pub db: TestDb,
    /// Where the bot's HTTP server (`/metrics`, `/healthz`) listens.
    pub http_addr: std::net::SocketAddr,
    /// Held so the local store's folder lives as long as the bot.
    _local_dir: tempfile::TempDir,
    /// Held so the bot runs until the test ends (dropping it would stop the bot).
    _stop: oneshot::Sender<()>,
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
        app_settings.http_addr =
            std::net::SocketAddr::from(([127, 0, 0, 1], crate::cli::free_port()));
        let http_addr = app_settings.http_addr;
        let bot_settings = bot_settings(&discord, &options);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(portrait_bot::cli::run_bot(
            app_settings,
            bot_settings,
            async {
                let _ = stopped.await;
            },
        ));
        discord.wait_ready(1).await;
        discord
            .wait_for_rest(
                "command registration",
                |call| call.method == "PUT" && call.path.ends_with("/commands"),
                ANSWER,
            )
            .await;
        discord.clear_rest_calls();
        TestBot {
            discord,
            s3,
            cdn,
            db,
            http_addr,
            _local_dir: local_dir,
            _stop: stop,
            task: Some(task),
        }
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

    /// The value of one series on the bot's `/metrics` page, as Prometheus scrapes it; 0 when
    /// absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let page = reqwest::get(format!("http://{}/metrics", self.http_addr))
            .await
            .expect("the metrics page answers")
            .text()
            .await
            .expect("the metrics page");
        metric_value(&page, series)
    }

    pub async fn bucket_keys(&self) -> Vec<String> {
        self.s3.keys().await
    }
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
