//! The one Discord REST call made outside the bot: refreshing expired CDN links. Plain HTTP,
//! no Discord types, so the migration service can use it below `bot/`.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

/// Discord's API host; `DISCORD_API_BASE` replaces it.
pub const DISCORD_API: &str = "https://discord.com";
/// The most URLs Discord refreshes in one request.
pub const REFRESH_BATCH: usize = 50;
/// How many times a rate-limited (429) request is retried after waiting.
const RATE_LIMIT_RETRIES: u32 = 3;
/// The longest `retry_after` honoured; beyond it the refresh is reported as failed.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DiscordApiError {
    #[error("Discord rejected DISCORD_TOKEN (HTTP {0}) when refreshing attachment links")]
    Unauthorized(u16),
    #[error("Discord kept rate limiting the link refresh (retry after {0:?})")]
    RateLimited(Duration),
    #[error("Discord answered HTTP {status} to the link refresh: {body}")]
    Status { status: u16, body: String },
    #[error("could not reach Discord to refresh links: {0}")]
    Request(#[from] reqwest::Error),
}

/// A bot-token client for `POST /attachments/refresh-urls`.
#[derive(Clone)]
pub struct DiscordApi {
    client: reqwest::Client,
    base: String,
    token: Secret,
}

impl std::fmt::Debug for DiscordApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordApi")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct RefreshResponse {
    refreshed_urls: Vec<RefreshedUrl>,
}

#[derive(Deserialize)]
struct RefreshedUrl {
    original: String,
    refreshed: String,
}

#[derive(Deserialize)]
struct RateLimited {
    retry_after: f64,
}

impl DiscordApi {
    pub fn new(token: Secret, base: Option<&str>) -> Result<Self, DiscordApiError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!(
                "DiscordBot (https://github.com/portrait-bot, ",
                env!("CARGO_PKG_VERSION"),
                ")"
            ))
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            client,
            base: base.unwrap_or(DISCORD_API).trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// Fresh signed URLs for up to [`REFRESH_BATCH`] expired ones, as `original → refreshed`.
    /// The endpoint works with a bot token but is undocumented: callers treat a failure as
    /// "no refresh", not as fatal.
    pub async fn refresh_urls(
        &self,
        urls: &[String],
    ) -> Result<HashMap<String, String>, DiscordApiError> {
        debug_assert!(urls.len() <= REFRESH_BATCH);
        let endpoint = format!("{}/api/v10/attachments/refresh-urls", self.base);
        let mut attempt = 0;
        loop {
            let response = self
                .client
                .post(&endpoint)
                .header(
                    reqwest::header::AUTHORIZATION,
                    format!("Bot {}", self.token.expose()),
                )
                .json(&serde_json::json!({ "attachment_urls": urls }))
                .send()
                .await?;
            let status = response.status().as_u16();
            match status {
                200..=299 => {
                    let body: RefreshResponse = response.json().await?;
                    return Ok(body
                        .refreshed_urls
                        .into_iter()
                        .map(|u| (u.original, u.refreshed))
                        .collect());
                }
                401 | 403 => return Err(DiscordApiError::Unauthorized(status)),
                429 => {
                    let wait = response
                        .json::<RateLimited>()
                        .await
                        .map(|r| Duration::from_secs_f64(r.retry_after.max(0.0)))
                        .unwrap_or(Duration::from_secs(1));
                    if attempt >= RATE_LIMIT_RETRIES || wait > MAX_RETRY_AFTER {
                        return Err(DiscordApiError::RateLimited(wait));
                    }
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                }
                _ => {
                    let body = response.text().await.unwrap_or_default();
                    return Err(DiscordApiError::Status {
                        status,
                        body: body.chars().take(200).collect(),
                    });
                }
            }
        }
    }
}
