//! The whole application over real parts: s3s-fs, a fresh database, the simulated CDN.

use std::str::FromStr;
use std::time::Duration;

use portrait_bot::app::App;
use portrait_bot::character::{DiscordId, NewCharacter};
use portrait_bot::config::{AppEnv, DatabaseUrl, Settings, StorageSettings};
use portrait_bot::db::Character;
use portrait_bot::fetch::{FetchConfig, Origin};
use portrait_bot::portrait::inspect::InspectLimits;

use testkit::cdn::TestCdn;
use testkit::s3::TestS3;

use super::database::TestDb;
use super::r2::R2Access;

pub const GUILD: u64 = 1_200_000_000_000_000_001;
pub const PLAYER: u64 = 800_000_000_000_000_002;
pub const DEFAULT_PORTRAIT_URL: &str = "https://bot.example.test/default-portrait.png";
pub const MAX_UPLOAD_BYTES: u64 = 2 * 1024 * 1024;

/// A character with just a name, checked by the domain rules like every real one.
pub fn new_character(guild: u64, owner: u64, name: &str) -> NewCharacter {
    let id = |id| DiscordId::new(id).expect("a Discord id");
    NewCharacter::parse(id(guild), id(owner), name, None, None).expect("a valid character")
}

pub struct TestApp {
    pub app: App,
    pub s3: TestS3,
    pub cdn: TestCdn,
    pub db: TestDb,
}

impl TestApp {
    pub async fn start(db: TestDb) -> TestApp {
        let s3 = TestS3::start().await;
        let cdn = TestCdn::start().await;
        let settings = settings(&db, StorageSettings::R2(s3.settings()), &cdn);
        let app = App::build(settings).await.expect("the application starts");
        TestApp { app, s3, cdn, db }
    }

    pub async fn create_character(&self, name: &str) -> Character {
        self.app
            .db
            .create_character(&new_character(GUILD, PLAYER, name), None)
            .await
            .expect("character created")
    }

    pub async fn reload(&self, character: &Character) -> Character {
        self.app
            .db
            .character_by_id(character.id)
            .await
            .expect("query")
            .expect("character exists")
    }

    /// Every key in the bucket.
    pub async fn bucket_keys(&self) -> Vec<String> {
        self.s3.keys().await
    }

    /// The value of one metric line, e.g. `r2_uploads_total` or
    /// `r2_upload_errors_total{error_type="transient"}`; 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        metric_value(&self.app.metrics.render(), series)
    }
}

/// The value of one series in a Prometheus text rendering; 0 when absent.
pub fn metric_value(rendered: &str, series: &str) -> f64 {
    rendered
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

pub fn settings(db: &TestDb, storage: StorageSettings, cdn: &TestCdn) -> Settings {
    Settings {
        database_url: DatabaseUrl::from_str(&db.url).expect("infallible"),
        app_env: AppEnv::Dev,
        storage,
        default_portrait_url: DEFAULT_PORTRAIT_URL.to_owned(),
        inspect_limits: InspectLimits {
            max_bytes: MAX_UPLOAD_BYTES,
            ..InspectLimits::default()
        },
        fetch: FetchConfig {
            allowed_origins: vec![Origin::parse(&cdn.origin()).expect("CDN origin")],
            connect_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(10),
        },
        http_addr: "127.0.0.1:0".parse().expect("address"),
        ingest_concurrency: 4,
        decode_concurrency: 1,
    }
}
