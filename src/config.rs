//! Configuration: one clap struct; every flag also reads its environment variable.
//!
//! [`Config::validate`] turns the raw flags into [`Settings`] or a [`ConfigError`] that names
//! every variable at fault, so a misconfigured deployment fails at startup, not at first upload.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::fetch::{FetchConfig, Origin};
use crate::portrait::inspect::InspectLimits;
use crate::secret::Secret;
use crate::storage::R2Settings;
pub use crate::storage::StorageSettings;

/// Everything the process can be told, from flags or the environment.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Database: `sqlite://path/to/file.db` (created if missing) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/portraits.db",
        hide_env_values = true,
        global = true
    )]
    pub database_url: DatabaseUrl,

    /// Environment name, used as the first segment of every object key (`dev/…` or `prod/…`).
    #[arg(long, env = "APP_ENV", value_enum, default_value_t = AppEnv::Dev, global = true)]
    pub app_env: AppEnv,

    #[command(flatten)]
    pub r2: R2Config,

    /// Folder for portraits when R2 is not configured.
    #[arg(
        long,
        env = "LOCAL_STORAGE_DIR",
        default_value = "data/objects",
        global = true
    )]
    pub local_storage_dir: PathBuf,

    /// Public base URL of the local folder's objects [default: served by the built-in HTTP
    /// server at http://localhost:PORT/objects].
    #[arg(long, env = "LOCAL_PUBLIC_URL", global = true)]
    pub local_public_url: Option<String>,

    /// Portrait shown when a character has none or storage failed [default: the bundled
    /// placeholder served by the built-in HTTP server].
    #[arg(long, env = "DEFAULT_PORTRAIT_URL", global = true)]
    pub default_portrait_url: Option<String>,

    /// Largest accepted upload, in bytes.
    #[arg(long, env = "MAX_UPLOAD_BYTES", default_value_t = InspectLimits::default().max_bytes, global = true)]
    pub max_upload_bytes: u64,

    /// Largest accepted width or height, in pixels; larger images are refused before decoding.
    #[arg(
        long,
        env = "MAX_IMAGE_DIMENSION",
        default_value_t = InspectLimits::default().max_dimension,
        global = true
    )]
    pub max_image_dimension: u32,

    /// Largest accepted width × height; larger images are refused before decoding.
    #[arg(
        long,
        env = "MAX_IMAGE_PIXELS",
        default_value_t = InspectLimits::default().max_pixels,
        global = true
    )]
    pub max_image_pixels: u64,

    /// Most memory one image's decode check may need, in MiB, estimated from its header;
    /// costlier images (huge progressive JPEGs or WebPs) are refused before decoding.
    #[arg(
        long,
        env = "MAX_DECODE_MEMORY_MIB",
        default_value_t = InspectLimits::default().max_decode_memory / (1024 * 1024),
        global = true
    )]
    pub max_decode_memory_mib: u64,

    /// Comma-separated origins that images may be downloaded from.
    #[arg(
        long,
        env = "CDN_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = "https://cdn.discordapp.com,https://media.discordapp.net",
        global = true
    )]
    pub cdn_allowed_origins: Vec<String>,

    /// Address of the HTTP server for /healthz, /metrics and local objects.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:9091", global = true)]
    pub http_addr: SocketAddr,

    /// Log format: `pretty` for people, `json` for log collectors (Fly.io).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,

    /// How many uploads are downloaded, checked and stored at once; the rest wait their turn.
    /// Bounds memory: each holds up to two copies of a MAX_UPLOAD_BYTES file.
    #[arg(long, env = "INGEST_CONCURRENCY", default_value_t = 4, global = true)]
    pub ingest_concurrency: usize,

    /// How many images are decoded at once to prove they are intact (CPU and memory heavy).
    #[arg(long, env = "DECODE_CONCURRENCY", default_value_t = 1, global = true)]
    pub decode_concurrency: usize,

    /// Seconds allowed to connect when downloading an image.
    #[arg(
        long,
        env = "FETCH_CONNECT_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    pub fetch_connect_timeout_secs: u64,

    /// Seconds allowed for a whole image download.
    #[arg(long, env = "FETCH_TIMEOUT_SECS", default_value_t = 60, global = true)]
    pub fetch_timeout_secs: u64,
}

/// Cloudflare R2 (or any S3-compatible service). All of it, or none of it.
#[derive(Debug, Clone, Args)]
pub struct R2Config {
    /// Cloudflare account id; the endpoint is https://ACCOUNT.r2.cloudflarestorage.com.
    #[arg(long, env = "R2_ACCOUNT_ID", global = true)]
    pub r2_account_id: Option<String>,

    /// R2 API token access key id.
    #[arg(long, env = "R2_ACCESS_KEY_ID", hide_env_values = true, global = true)]
    pub r2_access_key_id: Option<String>,

    /// R2 API token secret access key.
    #[arg(
        long,
        env = "R2_SECRET_ACCESS_KEY",
        hide_env_values = true,
        global = true
    )]
    pub r2_secret_access_key: Option<Secret>,

    /// Bucket that holds the portraits.
    #[arg(long, env = "R2_BUCKET_NAME", global = true)]
    pub r2_bucket_name: Option<String>,

    /// Public base URL of the bucket (r2.dev subdomain or custom domain).
    #[arg(long, env = "R2_PUBLIC_URL", global = true)]
    pub r2_public_url: Option<String>,

    /// S3 endpoint, replacing the one derived from R2_ACCOUNT_ID.
    #[arg(long, env = "R2_ENDPOINT", global = true)]
    pub r2_endpoint: Option<String>,
}

/// How to reach Discord's API: the bot and the migration (which refreshes expired links).
#[derive(Debug, Clone, Args)]
pub struct DiscordApiConfig {
    /// Bot token from the Discord Developer Portal (Bot → Reset Token).
    #[arg(long, env = "DISCORD_TOKEN", hide_env_values = true)]
    pub discord_token: Option<Secret>,

    /// Send Discord REST calls (and the gateway lookup) to this base URL instead of
    /// discord.com: an HTTP rate-limit proxy, or the simulated Discord in tests.
    #[arg(long, env = "DISCORD_API_BASE")]
    pub discord_api_base: Option<String>,
}

/// Settings only the Discord bot needs (`run` and `register-commands`).
#[derive(Debug, Clone, Args)]
pub struct BotConfig {
    #[command(flatten)]
    pub discord: DiscordApiConfig,

    /// Register commands to this one server (instant) instead of globally (up to an hour).
    #[arg(long, env = "DEV_GUILD_ID")]
    pub dev_guild_id: Option<u64>,

    /// Comma-separated Discord user ids allowed to use /admin commands, besides members with
    /// Manage Server.
    #[arg(long, env = "ADMIN_USER_IDS", value_delimiter = ',')]
    pub admin_user_ids: Vec<u64>,

    /// Let `/register name:…` without an image ask the player to post one in the channel. Off
    /// by default: the registration form takes the image instead. Needs the privileged Message
    /// Content intent enabled in the Developer Portal.
    #[arg(long, env = "REGISTRATION_MESSAGE_STEP", default_value_t = false, action = clap::ArgAction::Set)]
    pub registration_message_step: bool,

    /// Seconds a player has to post their image after /register.
    #[arg(long, env = "REGISTRATION_TIMEOUT_SECS", default_value_t = 120)]
    pub registration_timeout_secs: u64,

    /// Seconds a `/character gallery` keeps its buttons after the last press (at most 840:
    /// the bot edits the message through an interaction token, which lasts 15 minutes).
    #[arg(long, env = "GALLERY_TIMEOUT_SECS", default_value_t = 300)]
    pub gallery_timeout_secs: u64,

    /// Most characters one player may have in one server.
    #[arg(long, env = "MAX_CHARACTERS_PER_PLAYER", default_value_t = 10)]
    pub max_characters_per_player: u64,

    /// Most portrait uploads one player may make in one server per 10 minutes.
    #[arg(long, env = "UPLOADS_PER_10_MINUTES", default_value_t = 5)]
    pub uploads_per_10_minutes: u32,

    /// Seconds in-flight uploads get to finish after SIGTERM before the bot exits anyway.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,

    /// Gateway shards across all machines: a number, or `auto` for Discord's recommendation
    /// (all run in this process). Unset: one shard.
    #[arg(long, env = "SHARD_COUNT")]
    pub shard_count: Option<String>,

    /// The shards this process runs, e.g. `0-1` or `2` (needs a numeric SHARD_COUNT; default:
    /// all of them). Each machine runs its own range; share PostgreSQL between them.
    #[arg(long, env = "SHARD_IDS")]
    pub shard_ids: Option<String>,
}

/// Which gateway shards this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardPlan {
    /// One shard: fine up to 2,500 servers.
    Single,
    /// As many as Discord recommends, all here.
    Auto,
    /// Shards `first..=last` of `total`.
    Range { first: u32, last: u32, total: u32 },
}

impl ShardPlan {
    fn parse(count: Option<&str>, ids: Option<&str>) -> Result<ShardPlan, String> {
        let count = count.map(str::trim).filter(|c| !c.is_empty());
        let ids = ids.map(str::trim).filter(|i| !i.is_empty());
        let total = match count {
            None if ids.is_some() => {
                return Err("SHARD_IDS needs SHARD_COUNT (the total across all machines)".into())
            }
            None => return Ok(ShardPlan::Single),
            Some(c) if c.eq_ignore_ascii_case("auto") => {
                return match ids {
                    Some(_) => Err("SHARD_IDS needs a numeric SHARD_COUNT, not `auto`".into()),
                    None => Ok(ShardPlan::Auto),
                }
            }
            Some(c) => match c.parse::<u32>() {
                Ok(total) if total > 0 => total,
                _ => {
                    return Err(format!(
                        "SHARD_COUNT must be a positive number or `auto` (got `{c}`)"
                    ))
                }
            },
        };
        let (first, last) = match ids {
            None => (0, total - 1),
            Some(ids) => {
                let parse = |s: &str| {
                    s.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("SHARD_IDS must look like `0-1` or `2` (got `{ids}`)"))
                };
                match ids.split_once('-') {
                    Some((a, b)) => (parse(a)?, parse(b)?),
                    None => (parse(ids)?, parse(ids)?),
                }
            }
        };
        if first > last || last >= total {
            return Err(format!(
                "SHARD_IDS `{first}-{last}` must be within 0-{} (SHARD_COUNT is {total})",
                total - 1
            ));
        }
        Ok(ShardPlan::Range { first, last, total })
    }

    /// Whether this process runs shard 0 (the one that registers commands).
    pub fn includes_first_shard(self) -> bool {
        match self {
            ShardPlan::Single | ShardPlan::Auto => true,
            ShardPlan::Range { first, .. } => first == 0,
        }
    }
}

/// The validated bot settings.
#[derive(Debug, Clone)]
pub struct BotSettings {
    pub token: Secret,
    pub api_base: Option<String>,
    pub dev_guild_id: Option<u64>,
    pub admin_user_ids: Vec<u64>,
    pub registration_message_step: bool,
    pub registration_timeout: Duration,
    pub gallery_timeout: Duration,
    pub max_characters_per_player: u64,
    pub uploads_per_10_minutes: u32,
    pub shutdown_grace: Duration,
    pub shards: ShardPlan,
}

impl BotConfig {
    pub fn validate(&self) -> Result<BotSettings, ConfigError> {
        let mut problems = Vec::new();
        let token = match &self.discord.discord_token {
            Some(token) if !token.is_empty() => Some(token.clone()),
            _ => {
                problems.push(
                    "DISCORD_TOKEN is required: copy it from the Discord Developer Portal (your application → Bot → Reset Token)"
                        .to_owned(),
                );
                None
            }
        };
        if let Some(base) = &self.discord.discord_api_base {
            check_http_url("DISCORD_API_BASE", base, &mut problems);
        }
        if self.registration_timeout_secs == 0 {
            problems.push("REGISTRATION_TIMEOUT_SECS must be at least 1".into());
        }
        if !(1..=840).contains(&self.gallery_timeout_secs) {
            problems.push(
                "GALLERY_TIMEOUT_SECS must be between 1 and 840 (Discord's interaction tokens \
                 last 15 minutes)"
                    .into(),
            );
        }
        if self.uploads_per_10_minutes == 0 {
            problems.push("UPLOADS_PER_10_MINUTES must be at least 1".into());
        }
        let shards = ShardPlan::parse(self.shard_count.as_deref(), self.shard_ids.as_deref())
            .map_err(|problem| problems.push(problem))
            .ok();
        match (token, shards) {
            (Some(token), Some(shards)) if problems.is_empty() => Ok(BotSettings {
                token,
                api_base: self
                    .discord
                    .discord_api_base
                    .as_ref()
                    .map(|base| base.trim_end_matches('/').to_owned()),
                dev_guild_id: self.dev_guild_id,
                admin_user_ids: self.admin_user_ids.clone(),
                registration_message_step: self.registration_message_step,
                registration_timeout: Duration::from_secs(self.registration_timeout_secs),
                gallery_timeout: Duration::from_secs(self.gallery_timeout_secs),
                max_characters_per_player: self.max_characters_per_player,
                uploads_per_10_minutes: self.uploads_per_10_minutes,
                shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
                shards,
            }),
            _ => Err(ConfigError { problems }),
        }
    }
}

/// `dev` or `prod`: keeps a test deployment's objects apart from the real ones in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AppEnv {
    Dev,
    Prod,
}

impl AppEnv {
    /// The object key prefix segment.
    pub fn as_str(self) -> &'static str {
        match self {
            AppEnv::Dev => "dev",
            AppEnv::Prod => "prod",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A database URL whose password never reaches `Debug` or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced, for logs and messages.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut parsed) if parsed.password().is_some() => {
                let _ = parsed.set_password(Some("redacted"));
                parsed.to_string()
            }
            _ => self.0.clone(),
        }
    }
}

impl FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Configuration problems, each naming the variable to fix.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", problems.join("\n  - "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// The validated configuration the application is built from.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub app_env: AppEnv,
    pub storage: StorageSettings,
    pub default_portrait_url: String,
    pub inspect_limits: InspectLimits,
    pub fetch: FetchConfig,
    pub http_addr: SocketAddr,
    pub ingest_concurrency: usize,
    pub decode_concurrency: usize,
}

/// Where the bundled placeholder is served by [`crate::http`].
pub const DEFAULT_PORTRAIT_PATH: &str = "/default-portrait.png";
/// Where the local store's objects are served by [`crate::http`].
pub const LOCAL_OBJECTS_PATH: &str = "/objects";

impl Config {
    /// Checks every setting and resolves defaults, reporting all problems at once.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let mut problems = Vec::new();

        let db = self.database_url.expose();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            problems.push(format!(
                "DATABASE_URL must start with sqlite:// or postgres:// (got `{}`)",
                self.database_url.redacted()
            ));
        }

        let storage = match self.r2.settings() {
            Ok(Some(r2)) => Some(StorageSettings::R2(r2)),
            Ok(None) => Some(StorageSettings::Local {
                root: self.local_storage_dir.clone(),
                public_base_url: self
                    .local_public_url
                    .clone()
                    .unwrap_or_else(|| format!("{}{LOCAL_OBJECTS_PATH}", self.http_base_url())),
            }),
            Err(problem) => {
                problems.push(problem);
                None
            }
        };
        if let Some(url) = &self.local_public_url {
            check_http_url("LOCAL_PUBLIC_URL", url, &mut problems);
        }
        if let Some(url) = &self.default_portrait_url {
            check_http_url("DEFAULT_PORTRAIT_URL", url, &mut problems);
        }

        if self.max_upload_bytes == 0 {
            problems.push("MAX_UPLOAD_BYTES must be greater than 0".into());
        }
        if self.max_image_dimension == 0 {
            problems.push("MAX_IMAGE_DIMENSION must be greater than 0".into());
        }
        if self.max_image_pixels == 0 {
            problems.push("MAX_IMAGE_PIXELS must be greater than 0".into());
        }
        if self.max_decode_memory_mib == 0 {
            problems.push("MAX_DECODE_MEMORY_MIB must be greater than 0".into());
        }
        if self.ingest_concurrency == 0 {
            problems.push("INGEST_CONCURRENCY must be at least 1".into());
        }
        if self.decode_concurrency == 0 {
            problems.push("DECODE_CONCURRENCY must be at least 1".into());
        }
        if self.fetch_connect_timeout_secs == 0 || self.fetch_timeout_secs == 0 {
            problems.push(
                "FETCH_CONNECT_TIMEOUT_SECS and FETCH_TIMEOUT_SECS must be at least 1".into(),
            );
        }

        let mut allowed_origins = Vec::new();
        for origin in self.cdn_allowed_origins.iter().map(|o| o.trim()) {
            if origin.is_empty() {
                continue;
            }
            match Origin::parse(origin) {
                Ok(parsed) => allowed_origins.push(parsed),
                Err(err) => problems.push(format!(
                    "CDN_ALLOWED_ORIGINS: `{origin}` is not an origin ({err})"
                )),
            }
        }

        match (storage, problems.is_empty()) {
            (Some(storage), true) => Ok(Settings {
                database_url: self.database_url.clone(),
                app_env: self.app_env,
                storage,
                default_portrait_url: self
                    .default_portrait_url
                    .clone()
                    .unwrap_or_else(|| format!("{}{DEFAULT_PORTRAIT_PATH}", self.http_base_url())),
                inspect_limits: InspectLimits {
                    max_bytes: self.max_upload_bytes,
                    max_dimension: self.max_image_dimension,
                    max_pixels: self.max_image_pixels,
                    max_decode_memory: self.max_decode_memory_mib.saturating_mul(1024 * 1024),
                },
                fetch: FetchConfig {
                    allowed_origins,
                    connect_timeout: Duration::from_secs(self.fetch_connect_timeout_secs),
                    total_timeout: Duration::from_secs(self.fetch_timeout_secs),
                },
                http_addr: self.http_addr,
                ingest_concurrency: self.ingest_concurrency,
                decode_concurrency: self.decode_concurrency,
            }),
            _ => Err(ConfigError { problems }),
        }
    }

    /// The built-in HTTP server as seen from this machine: an unspecified bind address
    /// (0.0.0.0) is reached as `localhost`.
    fn http_base_url(&self) -> String {
        let ip = self.http_addr.ip();
        let port = self.http_addr.port();
        if ip.is_unspecified() {
            format!("http://localhost:{port}")
        } else {
            match ip {
                IpAddr::V4(v4) => format!("http://{v4}:{port}"),
                IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
            }
        }
    }
}

impl R2Config {
    /// `Ok(None)` when nothing R2 is set (use the local folder); the settings when all is set;
    /// an error naming the missing variables when only part is set — a typo in one secret
    /// must not silently send production uploads to a local folder.
    fn settings(&self) -> Result<Option<R2Settings>, String> {
        let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        let secret_present = self
            .r2_secret_access_key
            .as_ref()
            .is_some_and(|s| !s.is_empty());
        let any_set = present(&self.r2_account_id)
            || present(&self.r2_access_key_id)
            || secret_present
            || present(&self.r2_bucket_name)
            || present(&self.r2_public_url)
            || present(&self.r2_endpoint);
        if !any_set {
            return Ok(None);
        }

        let mut missing = Vec::new();
        if !present(&self.r2_account_id) && !present(&self.r2_endpoint) {
            missing.push("R2_ACCOUNT_ID (or R2_ENDPOINT)");
        }
        if !present(&self.r2_access_key_id) {
            missing.push("R2_ACCESS_KEY_ID");
        }
        if !secret_present {
            missing.push("R2_SECRET_ACCESS_KEY");
        }
        if !present(&self.r2_bucket_name) {
            missing.push("R2_BUCKET_NAME");
        }
        if !present(&self.r2_public_url) {
            missing.push("R2_PUBLIC_URL");
        }
        if !missing.is_empty() {
            return Err(format!(
                "R2 is partly configured; also set {} (or unset all R2_* variables to use LOCAL_STORAGE_DIR)",
                missing.join(", ")
            ));
        }

        let endpoint = match (&self.r2_endpoint, &self.r2_account_id) {
            (Some(endpoint), _) if !endpoint.trim().is_empty() => endpoint.trim().to_owned(),
            (_, Some(account)) => format!("https://{}.r2.cloudflarestorage.com", account.trim()),
            _ => unreachable!("checked above: R2_ACCOUNT_ID or R2_ENDPOINT is present"),
        };
        let mut problems = Vec::new();
        check_http_url("R2_ENDPOINT", &endpoint, &mut problems);
        let public_url = self.r2_public_url.clone().unwrap_or_default();
        check_http_url("R2_PUBLIC_URL", &public_url, &mut problems);
        let bucket = self.r2_bucket_name.clone().unwrap_or_default();
        if bucket.len() < 3 || bucket.len() > 63 {
            problems.push(format!(
                "R2_BUCKET_NAME must be 3 to 63 characters (got `{bucket}`)"
            ));
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }

        Ok(Some(R2Settings {
            endpoint,
            access_key_id: self.r2_access_key_id.clone().unwrap_or_default(),
            secret_access_key: self.r2_secret_access_key.clone().unwrap_or(Secret::new("")),
            bucket,
            public_url: public_url.trim_end_matches('/').to_owned(),
        }))
    }
}

fn check_http_url(variable: &str, value: &str, problems: &mut Vec<String>) {
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
        _ => problems.push(format!("{variable} must be an http(s) URL (got `{value}`)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        config: Config,
    }

    fn parse(args: &[&str]) -> Config {
        let mut argv = vec!["portrait-bot"];
        argv.extend_from_slice(args);
        TestCli::try_parse_from(argv)
            .expect("arguments parse")
            .config
    }

    #[test]
    fn the_defaults_give_sqlite_and_a_local_folder_served_by_the_http_server() {
        let settings = parse(&[]).validate().expect("defaults are valid");
        assert_eq!(settings.database_url.expose(), "sqlite://data/portraits.db");
        match settings.storage {
            StorageSettings::Local {
                root,
                public_base_url,
            } => {
                assert_eq!(root, PathBuf::from("data/objects"));
                assert_eq!(public_base_url, "http://localhost:9091/objects");
            }
            other => panic!("expected the local store, got {other:?}"),
        }
        assert_eq!(
            settings.default_portrait_url,
            "http://localhost:9091/default-portrait.png"
        );
        assert_eq!(settings.inspect_limits.max_bytes, 10 * 1024 * 1024);
        assert_eq!(settings.fetch.allowed_origins.len(), 2);
    }

    #[test]
    fn partial_r2_settings_are_an_error_naming_each_missing_variable() {
        let config = parse(&["--r2-account-id", "abc123", "--r2-bucket-name", "portraits"]);
        let err = config.validate().expect_err("partial R2 must be refused");
        let message = err.to_string();
        for variable in ["R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "R2_PUBLIC_URL"] {
            assert!(
                message.contains(variable),
                "{message} should name {variable}"
            );
        }
        assert!(!message.contains("R2_BUCKET_NAME,"), "{message}");
    }

    #[test]
    fn complete_r2_settings_derive_the_endpoint_from_the_account_and_hide_the_secret() {
        let config = parse(&[
            "--r2-account-id",
            "abc123",
            "--r2-access-key-id",
            "key-id",
            "--r2-secret-access-key",
            "super-secret-value",
            "--r2-bucket-name",
            "portraits",
            "--r2-public-url",
            "https://img.example.com/",
        ]);
        let settings = config.validate().expect("complete R2 is valid");
        let StorageSettings::R2(r2) = &settings.storage else {
            panic!("expected R2, got {:?}", settings.storage);
        };
        assert_eq!(r2.endpoint, "https://abc123.r2.cloudflarestorage.com");
        assert_eq!(r2.public_url, "https://img.example.com");
        for debug in [format!("{config:?}"), format!("{settings:?}")] {
            assert!(!debug.contains("super-secret-value"), "{debug}");
        }
    }

    #[test]
    fn shard_settings_parse_into_a_plan_or_a_clear_error() {
        let plan = |count, ids| ShardPlan::parse(count, ids);
        assert_eq!(plan(None, None), Ok(ShardPlan::Single));
        assert_eq!(plan(Some("auto"), None), Ok(ShardPlan::Auto));
        assert_eq!(
            plan(Some("4"), None),
            Ok(ShardPlan::Range {
                first: 0,
                last: 3,
                total: 4
            })
        );
        assert_eq!(
            plan(Some("4"), Some("2-3")),
            Ok(ShardPlan::Range {
                first: 2,
                last: 3,
                total: 4
            })
        );
        assert_eq!(
            plan(Some("4"), Some("1")),
            Ok(ShardPlan::Range {
                first: 1,
                last: 1,
                total: 4
            })
        );
        for (count, ids, fragment) in [
            (None, Some("0-1"), "needs SHARD_COUNT"),
            (Some("auto"), Some("0"), "numeric SHARD_COUNT"),
            (Some("0"), None, "positive number"),
            (Some("4"), Some("3-5"), "within 0-3"),
            (Some("4"), Some("x"), "look like"),
        ] {
            let err = plan(count, ids).expect_err("invalid");
            assert!(err.contains(fragment), "{err}");
        }
    }

    #[test]
    fn a_postgres_password_never_appears_in_debug_output() {
        let config = parse(&[
            "--database-url",
            "postgres://bot:pa55word@db.internal/portraits",
        ]);
        let debug = format!("{config:?}");
        assert!(!debug.contains("pa55word"), "{debug}");
        assert!(debug.contains("db.internal"), "{debug}");
    }

    #[test]
    fn invalid_values_are_all_reported_by_variable_name() {
        let config = parse(&[
            "--database-url",
            "mysql://nope",
            "--cdn-allowed-origins",
            "not a url",
            "--ingest-concurrency",
            "0",
            "--default-portrait-url",
            "ftp://x",
        ]);
        let message = config.validate().expect_err("invalid").to_string();
        for variable in [
            "DATABASE_URL",
            "CDN_ALLOWED_ORIGINS",
            "INGEST_CONCURRENCY",
            "DEFAULT_PORTRAIT_URL",
        ] {
            assert!(
                message.contains(variable),
                "{message} should name {variable}"
            );
        }
    }

    #[test]
    fn a_fresh_install_skips_the_message_step_so_it_needs_no_privileged_intent() {
        #[derive(Debug, Parser)]
        struct BotCli {
            #[command(flatten)]
            bot: BotConfig,
        }
        let settings = BotCli::try_parse_from(["portrait-bot", "--discord-token", "token"])
            .expect("arguments parse")
            .bot
            .validate()
            .expect("valid");
        assert!(!settings.registration_message_step);
        assert_eq!(settings.gallery_timeout, Duration::from_secs(300));
        let enabled = BotCli::try_parse_from([
            "portrait-bot",
            "--discord-token",
            "token",
            "--registration-message-step",
            "true",
        ])
        .expect("arguments parse")
        .bot
        .validate()
        .expect("valid");
        assert!(enabled.registration_message_step);
    }
}
