//! Bounded HTTP downloads from an allowlist of origins.
//!
//! Every image the bot stores comes through [`Fetcher::fetch`]. Discord CDN links are
//! player-controlled input, so the download is treated as hostile:
//!
//! - only links whose origin (scheme, host, port) is configured are fetched, and the check
//!   happens before any connection is made, so the bot cannot be pointed at internal
//!   services such as `http://169.254.169.254/`; redirects must stay on allowed origins too;
//! - the body is streamed under a hard byte cap: a declared `Content-Length` above the cap is
//!   refused without reading the body, and an undeclared one is cut off the moment the cap
//!   would be exceeded, so refusing a 1 GiB download never buffers more than the cap;
//! - a connect timeout and a total timeout (covering the body too) bound a trickling server;
//! - any non-2xx status is an error carrying the first line of the body, because Discord's
//!   expired links answer with an error page ("This content is no longer available.") that
//!   must not be stored as a portrait.
//!
//! Signed CDN links carry their signature in the query string (`ex`, `is`, `hm`), so neither
//! errors nor logs ever show it: see [`redacted`].

use std::error::Error as StdError;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use url::Url;

use crate::units::{human_bytes, human_duration};

/// Most redirects followed for one download; Discord's CDN needs none, a proxy in front of
/// it one or two.
pub const MAX_REDIRECTS: usize = 5;

/// The `User-Agent` sent with every download.
pub const USER_AGENT: &str = concat!("portrait-bot/", env!("CARGO_PKG_VERSION"));

/// The text Discord's CDN answers with once a signed link has expired or the file is gone.
pub const CONTENT_GONE_TEXT: &str = "This content is no longer available.";

/// How much of an error response's body is read to find its first line: enough for any
/// error page's first line or a JSON rate-limit body, small enough to be harmless.
const ERROR_BODY_LIMIT: usize = 4 * 1024;

/// Longest first line kept from an error body, in characters, so a one-line HTML page does
/// not end up in a chat message.
const FIRST_LINE_MAX_CHARS: usize = 200;

/// Longest path shown in an error, in characters.
const PATH_MAX_CHARS: usize = 200;

/// Upper bound on the buffer reserved before the body arrives. Reserving is only address
/// space until bytes are written, but a caller passing a huge cap must not get a huge
/// allocation up front; past this the buffer grows as bytes actually arrive.
const PREALLOC_CEILING: usize = 64 * 1024 * 1024;

/// A web origin: scheme (`http` or `https`), host and port.
///
/// Hosts are compared after the WHATWG URL normalisation of the `url` crate (lower case,
/// punycode, IPv4 forms like `0xA9FEA9FE` turned into dotted quads), so spelling tricks do
/// not get around the allowlist. The port is always known: explicit or the scheme default.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]`, with an optional trailing `/` and surrounding
    /// whitespace; anything more (a path, query, fragment or user name) is refused so a
    /// configuration mistake is reported instead of silently widened or narrowed.
    pub fn parse(s: &str) -> Result<Origin, FetchError> {
        let trimmed = s.trim();
        let invalid = |reason: String| FetchError::InvalidUrl {
            url: redact_unparsed(trimmed),
            reason,
        };
        let url = Url::parse(trimmed).map_err(|e| invalid(e.to_string()))?;
        if !is_web_scheme(url.scheme()) {
            return Err(invalid(
                "an origin must start with http:// or https://".into(),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "an origin cannot contain a user name or password".into(),
            ));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                "an origin is only scheme://host[:port], without a path, query or fragment".into(),
            ));
        }
        Origin::of(&url).ok_or_else(|| invalid("an origin needs a host".into()))
    }

    /// The origin of `url`, or `None` when it is not an `http`/`https` URL with a host.
    pub fn of(url: &Url) -> Option<Origin> {
        if !is_web_scheme(url.scheme()) {
            return None;
        }
        Some(Origin {
            scheme: url.scheme().to_owned(),
            // IPv6 hosts keep their brackets here, which is what Display needs.
            host: url.host_str()?.to_owned(),
            port: url.port_or_known_default()?,
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The normalised host name or IP address (IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn has_default_port(&self) -> bool {
        matches!(
            (self.scheme.as_str(), self.port),
            ("https", 443) | ("http", 80)
        )
    }
}

impl fmt::Display for Origin {
    /// `https://cdn.discordapp.com`, or `http://127.0.0.1:3000` when the port is not the
    /// scheme's default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        if !self.has_default_port() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

impl FromStr for Origin {
    type Err = FetchError;

    fn from_str(s: &str) -> Result<Origin, FetchError> {
        Origin::parse(s)
    }
}

fn is_web_scheme(scheme: &str) -> bool {
    scheme == "http" || scheme == "https"
}

/// `url` as `scheme://host[:port]/path`, without user name, password, query or fragment,
/// safe to log and to show: a signed Discord CDN link's signature lives in the query.
pub fn redacted(url: &Url) -> String {
    match url.host_str() {
        Some(host) => {
            let mut out = format!("{}://{host}", url.scheme());
            if let Some(port) = url.port() {
                out.push_str(&format!(":{port}"));
            }
            out.push_str(&truncate_chars(url.path(), PATH_MAX_CHARS));
            out
        }
        // `data:`, `mailto:` and friends keep their payload in the path; show only the scheme.
        None => format!("{}:…", url.scheme()),
    }
}

/// Best-effort redaction of a string that is not even a valid URL: drop the query and the
/// fragment, and any `user:password@` in front of the host.
fn redact_unparsed(raw: &str) -> String {
    let end = raw.find(['?', '#']).unwrap_or(raw.len());
    let mut s = &raw[..end];
    let mut prefix = "";
    if let Some(idx) = s.find("://") {
        prefix = &s[..idx + 3];
        let rest = &s[idx + 3..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        s = match rest[..authority_end].rfind('@') {
            Some(at) => &rest[at + 1..],
            None => rest,
        };
    }
    let cleaned: String = format!("{prefix}{s}")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    truncate_chars(&cleaned, PATH_MAX_CHARS)
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((idx, _)) => format!("{}…", &s[..idx]),
        None => s.to_owned(),
    }
}

/// Where downloads may come from and how long they may take.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Origins downloads (and every redirect on the way) may come from.
    pub allowed_origins: Vec<Origin>,
    /// Longest wait for the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest time for the whole download: connecting, redirects, headers and body.
    pub total_timeout: Duration,
}

/// A downloaded body.
pub struct Fetched {
    /// The body, exactly as served, never more than the cap.
    pub bytes: Bytes,
    /// The `Content-Type` header, if any. Informational only: the pipeline sniffs the type.
    pub content_type: Option<String>,
    /// The URL the body came from after redirects. It may carry a signature: log it only
    /// through [`redacted`].
    pub final_url: Url,
}

impl fmt::Debug for Fetched {
    // Hand-written so debug logs neither dump the body nor leak the signed URL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetched")
            .field("len", &self.bytes.len())
            .field("content_type", &self.content_type)
            .field("final_url", &redacted(&self.final_url))
            .finish()
    }
}

/// Why a download failed. `Display` is written for the player or operator who sees it and
/// never contains a URL's query string.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The link is not a valid URL, or not an `http`/`https` one.
    #[error("{url} is not a usable link: {reason}")]
    InvalidUrl {
        /// The link, redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The link's origin is not in the allowlist; nothing was sent.
    #[error("downloads from {origin} are not allowed; only the configured CDN origins are")]
    OriginNotAllowed {
        /// The refused origin.
        origin: Origin,
    },
    /// The server redirected to a link whose origin is not in the allowlist; it was not
    /// followed.
    #[error("the download was redirected to {target}, which is not an allowed origin")]
    RedirectNotAllowed {
        /// The redirect target, redacted.
        target: String,
    },
    /// More than [`MAX_REDIRECTS`] redirects.
    #[error("the download was redirected more than {} times", MAX_REDIRECTS)]
    TooManyRedirects,
    /// The body is larger than the cap: either declared so by `Content-Length` (and then not
    /// read at all) or found so while streaming (and then read only up to the cap).
    #[error("the file is larger than {}{}", human_bytes(*max_bytes), declared_size(declared))]
    TooLarge {
        /// The cap that was exceeded.
        max_bytes: u64,
        /// The size the server declared in `Content-Length`, if it did.
        declared: Option<u64>,
    },
    /// The server answered with a non-2xx status.
    #[error("{}", describe_status(*status, first_line, retry_after))]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The first non-empty line of the body (or a JSON body's `message`), trimmed and
        /// shortened; empty when there was none.
        first_line: String,
        /// How long to wait before retrying, for 429 and 503 answers that say so.
        retry_after: Option<Duration>,
    },
    /// The connection or the whole download took too long.
    #[error("{}", describe_timeout(url, *after, *connecting))]
    Timeout {
        /// The link, redacted.
        url: String,
        /// The timeout that ran out.
        after: Duration,
        /// `true` when the connect timeout ran out, `false` for the total timeout.
        connecting: bool,
    },
    /// No response could be obtained: DNS, TCP, TLS, or the server closed the connection
    /// before answering.
    #[error("could not reach {url}: {reason}")]
    Connect {
        /// The link, redacted.
        url: String,
        /// The underlying cause, without the URL.
        reason: String,
    },
    /// The response started but its body broke off.
    #[error("the download of {url} broke off: {reason}")]
    Body {
        /// The link, redacted.
        url: String,
        /// The underlying cause, without the URL.
        reason: String,
    },
    /// The HTTP client could not be built from the configuration.
    #[error("the download client could not be set up: {reason}")]
    Setup {
        /// What went wrong.
        reason: String,
    },
}

impl FetchError {
    /// A short, stable label for metrics: `invalid_url`, `origin_not_allowed`,
    /// `redirect_not_allowed`, `too_many_redirects`, `too_large`, `gone` (see
    /// [`is_gone`](Self::is_gone)), `rate_limited` (429), `server_error` (5xx),
    /// `http_status` (any other non-2xx), `timeout`, `connect`, `body`, `setup`.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::InvalidUrl { .. } => "invalid_url",
            FetchError::OriginNotAllowed { .. } => "origin_not_allowed",
            FetchError::RedirectNotAllowed { .. } => "redirect_not_allowed",
            FetchError::TooManyRedirects => "too_many_redirects",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::Status { status, .. } => {
                if self.is_gone() {
                    "gone"
                } else if *status == 429 {
                    "rate_limited"
                } else if *status >= 500 {
                    "server_error"
                } else {
                    "http_status"
                }
            }
            FetchError::Timeout { .. } => "timeout",
            FetchError::Connect { .. } => "connect",
            FetchError::Body { .. } => "body",
            FetchError::Setup { .. } => "setup",
        }
    }

    /// The link expired or the file was deleted: HTTP 403, 404 or 410, or any error page
    /// saying "This content is no longer available.". Retrying the same link is pointless;
    /// refreshing it (Discord's `attachments/refresh-urls`) may help.
    pub fn is_gone(&self) -> bool {
        match self {
            FetchError::Status {
                status, first_line, ..
            } => status_means_gone(*status, first_line),
            _ => false,
        }
    }

    /// A fault on the network or the server's side that may pass: timeouts, connection
    /// failures, a body that broke off, 5xx and 429.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Timeout { .. } | FetchError::Connect { .. } | FetchError::Body { .. } => {
                true
            }
            FetchError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// How long the server asked us to wait (a 429's or 503's `Retry-After` header or JSON
    /// `retry_after`, the longer of the two when both are given).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

fn status_means_gone(status: u16, first_line: &str) -> bool {
    // Matched without the final period so a reworded or truncated page still counts.
    matches!(status, 403 | 404 | 410)
        || first_line.contains(CONTENT_GONE_TEXT.trim_end_matches('.'))
}

fn describe_status(status: u16, first_line: &str, retry_after: &Option<Duration>) -> String {
    let detail = if first_line.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {first_line}")
    };
    let mut out = if status_means_gone(status, first_line) {
        format!("the link has expired or the file was deleted ({detail})")
    } else if status == 429 {
        format!("the file server is rate limiting downloads ({detail})")
    } else if status >= 500 {
        format!("the file server had a problem ({detail})")
    } else {
        format!("the file server refused the download ({detail})")
    };
    if let Some(wait) = retry_after {
        out.push_str(&format!("; try again in {}", human_duration(*wait)));
    }
    out
}

fn describe_timeout(url: &str, after: Duration, connecting: bool) -> String {
    if connecting {
        format!(
            "could not connect to {url} within {}",
            human_duration(after)
        )
    } else {
        format!(
            "the download of {url} did not finish within {}",
            human_duration(after)
        )
    }
}

fn declared_size(declared: &Option<u64>) -> String {
    match declared {
        Some(n) => format!(" (the server says it is {})", human_bytes(*n)),
        None => String::new(),
    }
}

/// Why our redirect policy stopped a redirect; travels inside reqwest's error and is
/// recovered from its source chain.
#[derive(Debug)]
enum RedirectRefused {
    NotAllowed { target: String },
    TooMany,
}

impl fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedirectRefused::NotAllowed { target } => {
                write!(f, "redirect to {target} is not allowed")
            }
            RedirectRefused::TooMany => write!(f, "too many redirects"),
        }
    }
}

impl StdError for RedirectRefused {}

/// Downloads from allowed origins under a byte cap and timeouts.
///
/// Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    allowed: Arc<[Origin]>,
    connect_timeout: Duration,
    total_timeout: Duration,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("allowed", &self.allowed)
            .field("connect_timeout", &self.connect_timeout)
            .field("total_timeout", &self.total_timeout)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// Builds the HTTP client: rustls, no cookies, no proxy, no `Referer`, and a redirect
    /// policy that only follows redirects to allowed origins.
    pub fn new(config: FetchConfig) -> Result<Fetcher, FetchError> {
        if config.connect_timeout.is_zero() || config.total_timeout.is_zero() {
            return Err(FetchError::Setup {
                reason: "the connect and total timeouts must be longer than zero".into(),
            });
        }
        let allowed: Arc<[Origin]> = config.allowed_origins.into();
        let policy_allowed = Arc::clone(&allowed);
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            // `previous()` lists every URL requested so far, starting with the original, so
            // its length is the number of redirects including this one.
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(RedirectRefused::TooMany);
            }
            if origin_allowed(&policy_allowed, attempt.url()) {
                attempt.follow()
            } else {
                let target = redacted(attempt.url());
                attempt.error(RedirectRefused::NotAllowed { target })
            }
        });
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(policy)
            // reqwest's Referer keeps the query string, which would hand the CDN signature
            // to whatever a redirect points at.
            .referer(false)
            // An HTTP(S)_PROXY in the environment would route downloads through a host the
            // allowlist knows nothing about.
            .no_proxy()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| FetchError::Setup {
                reason: root_cause(&e.without_url()),
            })?;
        Ok(Fetcher {
            client,
            allowed,
            connect_timeout: config.connect_timeout,
            total_timeout: config.total_timeout,
        })
    }

    /// Whether `url` may be downloaded: an `http`/`https` URL whose origin is allowed.
    pub fn is_allowed(&self, url: &Url) -> bool {
        origin_allowed(&self.allowed, url)
    }

    /// Downloads `url`, at most `max_bytes` of it.
    ///
    /// Links on origins that are not allowed (and links that are not `http`/`https` at all)
    /// are refused before the first `.await`, so no connection is ever attempted.
    pub async fn fetch(&self, url: &str, max_bytes: u64) -> Result<Fetched, FetchError> {
        let url = self.check(url)?;
        let shown = redacted(&url);
        // One deadline for everything, body included: a server trickling one byte a second
        // stays under any per-read timeout but not under this one.
        let result = match tokio::time::timeout(
            self.total_timeout,
            self.fetch_allowed(url, &shown, max_bytes),
        )
        .await
        {
            Ok(result) => result,
            Err(_elapsed) => Err(FetchError::Timeout {
                url: shown.clone(),
                after: self.total_timeout,
                connecting: false,
            }),
        };
        match &result {
            Ok(fetched) => {
                tracing::debug!(url = %shown, bytes = fetched.bytes.len(), "downloaded")
            }
            Err(err) => {
                tracing::debug!(url = %shown, kind = err.kind(), error = %err, "download failed")
            }
        }
        result
    }

    fn check(&self, raw: &str) -> Result<Url, FetchError> {
        let url = Url::parse(raw.trim()).map_err(|e| FetchError::InvalidUrl {
            url: redact_unparsed(raw.trim()),
            reason: e.to_string(),
        })?;
        let Some(origin) = Origin::of(&url) else {
            return Err(FetchError::InvalidUrl {
                url: redacted(&url),
                reason: "only http and https links can be downloaded".into(),
            });
        };
        if !self.allowed.contains(&origin) {
            return Err(FetchError::OriginNotAllowed { origin });
        }
        Ok(url)
    }

    async fn fetch_allowed(
        &self,
        url: Url,
        shown: &str,
        max_bytes: u64,
    ) -> Result<Fetched, FetchError> {
        let query = url.query().unwrap_or_default().to_owned();
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| self.request_error(e, shown, &query))?;

        if response.status().is_redirection() {
            // A redirect that came back unfollowed: reqwest does not even ask the policy
            // about targets it cannot fetch (such as `file:`), so refuse it here.
            if let Some(location) = response.headers().get(LOCATION) {
                let target = location
                    .to_str()
                    .ok()
                    .and_then(|l| response.url().join(l).ok())
                    .map_or_else(|| "an unusable location".to_owned(), |t| redacted(&t));
                return Err(FetchError::RedirectNotAllowed { target });
            }
        }
        if !response.status().is_success() {
            return Err(status_error(response).await);
        }

        let declared = response.content_length();
        if declared.is_some_and(|len| len > max_bytes) {
            // Dropping the response without reading the body closes the connection.
            return Err(FetchError::TooLarge {
                max_bytes,
                declared,
            });
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let final_url = response.url().clone();

        // Reserving min(declared, cap) up front means no reallocation while the body arrives
        // (a reallocation briefly holds the old and the new buffer, which could double the
        // memory of a download that is about to be refused). Without a Content-Length the
        // cap itself is reserved: address space only, pages become resident as bytes land.
        let reserve = declared.unwrap_or(max_bytes).min(max_bytes);
        let mut buf: Vec<u8> = Vec::with_capacity(
            usize::try_from(reserve).map_or(PREALLOC_CEILING, |r| r.min(PREALLOC_CEILING)),
        );
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| body_error(e, shown, &query))?
        {
            let total = buf.len() as u64 + chunk.len() as u64;
            if total > max_bytes {
                // Stop at once: the rest of the body is never read and the connection is
                // closed when `response` is dropped.
                return Err(FetchError::TooLarge {
                    max_bytes,
                    declared,
                });
            }
            reserve_within_cap(&mut buf, chunk.len(), max_bytes);
            buf.extend_from_slice(&chunk);
        }
        if declared.is_none() {
            // Give back the unused part of the cap-sized reservation; shrinking reallocates
            // in place with the system allocator.
            buf.shrink_to_fit();
        }
        Ok(Fetched {
            bytes: Bytes::from(buf),
            content_type,
            final_url,
        })
    }

    fn request_error(&self, err: reqwest::Error, shown: &str, query: &str) -> FetchError {
        if let Some(refused) = find_redirect_refusal(&err) {
            return match refused {
                RedirectRefused::NotAllowed { target } => FetchError::RedirectNotAllowed {
                    target: target.clone(),
                },
                RedirectRefused::TooMany => FetchError::TooManyRedirects,
            };
        }
        let err = err.without_url();
        if err.is_timeout() {
            let connecting = err.is_connect();
            return FetchError::Timeout {
                url: shown.to_owned(),
                after: if connecting {
                    self.connect_timeout
                } else {
                    self.total_timeout
                },
                connecting,
            };
        }
        if err.is_body() || err.is_decode() {
            return body_error(err, shown, query);
        }
        FetchError::Connect {
            url: shown.to_owned(),
            reason: scrub(root_cause(&err), query),
        }
    }
}

fn origin_allowed(allowed: &[Origin], url: &Url) -> bool {
    Origin::of(url).is_some_and(|origin| allowed.contains(&origin))
}

/// Grows `buf` for `additional` more bytes without its capacity ever passing `cap`, so the
/// cap bounds memory, not just the length.
fn reserve_within_cap(buf: &mut Vec<u8>, additional: usize, cap: u64) {
    let needed = buf.len() + additional;
    if needed <= buf.capacity() {
        return;
    }
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let target = buf.capacity().saturating_mul(2).max(needed).min(cap);
    buf.reserve_exact(target - buf.len());
}

fn body_error(err: reqwest::Error, shown: &str, query: &str) -> FetchError {
    FetchError::Body {
        url: shown.to_owned(),
        reason: scrub(root_cause(&err.without_url()), query),
    }
}

fn find_redirect_refusal(err: &reqwest::Error) -> Option<&RedirectRefused> {
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<RedirectRefused>() {
            return Some(refused);
        }
        source = e.source();
    }
    None
}

/// The innermost error's message ("Connection refused (os error 111)"), which says more to
/// an operator than reqwest's "error sending request".
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Removes the query string should an underlying library have echoed it.
fn scrub(message: String, query: &str) -> String {
    if query.is_empty() {
        message
    } else {
        message.replace(query, "…")
    }
}

/// Builds the error for a non-2xx response, reading at most [`ERROR_BODY_LIMIT`] of its body.
async fn status_error(mut response: reqwest::Response) -> FetchError {
    let status = response.status().as_u16();
    let header_wait = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_seconds);

    // Best effort: a body that breaks off still leaves the status, which is what matters.
    let mut prefix = Vec::new();
    while prefix.len() < ERROR_BODY_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = ERROR_BODY_LIMIT - prefix.len();
                prefix.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    drop(response);

    let text = String::from_utf8_lossy(&prefix);
    let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    let retry_after = if status == 429 || status == 503 {
        let body_wait = json
            .as_ref()
            .and_then(|j| j.get("retry_after"))
            .and_then(serde_json::Value::as_f64)
            .and_then(seconds_to_duration);
        // Honour whichever asks for the longer wait: Discord rounds the header up and puts
        // the precise value in the body, other servers send only one of them.
        header_wait.max(body_wait)
    } else {
        None
    };
    let first_line = json
        .as_ref()
        .and_then(|j| j.get("message"))
        .and_then(serde_json::Value::as_str)
        .map(first_line_of)
        .unwrap_or_else(|| first_line_of(&text));
    FetchError::Status {
        status,
        first_line,
        retry_after,
    }
}

/// The first non-blank line, trimmed, without control characters, at most
/// [`FIRST_LINE_MAX_CHARS`] long.
fn first_line_of(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let clean: String = line.chars().filter(|c| !c.is_control()).collect();
    truncate_chars(&clean, FIRST_LINE_MAX_CHARS)
}

/// Parses delay-seconds as sent in `Retry-After` (integer) or Discord's JSON (fractional).
/// HTTP-date values are not understood and yield `None`.
fn parse_seconds(s: &str) -> Option<Duration> {
    s.trim().parse::<f64>().ok().and_then(seconds_to_duration)
}

fn seconds_to_duration(secs: f64) -> Option<Duration> {
    if secs.is_finite() && secs >= 0.0 {
        Duration::try_from_secs_f64(secs).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

    use axum::body::Body;
    use axum::extract::{Path, State};
    use axum::http::{header, HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Redirect, Response};
    use axum::routing::get;
    use axum::Router;
    use futures::FutureExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const GIB: u64 = 1024 * 1024 * 1024;
    const MIB: u64 = 1024 * 1024;
    /// A signature-like query string that must never show up in an error.
    const SECRET_QUERY: &str = "ex=65f1a2b3&is=65e0c1d2&hm=deadbeefSECRETSIGNATURE";

    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

    async fn serve(app: Router) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    fn origin(addr: SocketAddr) -> Origin {
        Origin::parse(&format!("http://{addr}")).unwrap()
    }

    fn fetcher_with(allowed: Vec<Origin>, total_timeout: Duration) -> Fetcher {
        Fetcher::new(FetchConfig {
            allowed_origins: allowed,
            connect_timeout: Duration::from_secs(5),
            total_timeout,
        })
        .unwrap()
    }

    fn fetcher(allowed: Vec<Origin>) -> Fetcher {
        fetcher_with(allowed, Duration::from_secs(30))
    }

    /// What a lazily generated body has produced, and whether the server dropped it.
    #[derive(Default)]
    struct Produced {
        bytes: AtomicU64,
        dropped: AtomicBool,
    }

    struct DropFlag(Arc<Produced>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.dropped.store(true, Ordering::SeqCst);
        }
    }

    /// A body of `total` zero bytes, generated 64 KiB at a time only as the server asks.
    fn lazy_zeros(total: u64, produced: Arc<Produced>) -> Body {
        let stream =
            futures::stream::unfold((0u64, DropFlag(produced)), move |(sent, flag)| async move {
                if sent >= total {
                    return None;
                }
                let n = (ZEROS.len() as u64).min(total - sent);
                flag.0.bytes.fetch_add(n, Ordering::SeqCst);
                let chunk = Bytes::from_static(&ZEROS[..n as usize]);
                Some((Ok::<_, io::Error>(chunk), (sent + n, flag)))
            });
        Body::from_stream(stream)
    }

    /// Waits until the server has dropped the body (the client went away), or panics.
    async fn wait_until_dropped(produced: &Produced) {
        for _ in 0..200 {
            if produced.dropped.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server kept the body alive: the client did not close the connection");
    }

    /// A raw TCP server that counts accepted connections and answers each with `reply`.
    async fn counting_server(reply: &'static [u8]) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepts);
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    let _ = socket.write_all(reply).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        (addr, accepts)
    }

    fn assert_no_secret(err: &FetchError) {
        let shown = err.to_string();
        let debug = format!("{err:?}");
        for needle in ["SECRETSIGNATURE", "hm=", "ex=65f1a2b3"] {
            assert!(!shown.contains(needle), "Display leaks {needle}: {shown}");
            assert!(!debug.contains(needle), "Debug leaks {needle}: {debug}");
        }
    }

    #[test]
    fn origins_parse_with_default_or_explicit_ports_and_display_canonically() {
        let cdn = Origin::parse("https://cdn.discordapp.com").unwrap();
        assert_eq!(
            (cdn.scheme(), cdn.host(), cdn.port()),
            ("https", "cdn.discordapp.com", 443)
        );
        assert_eq!(cdn.to_string(), "https://cdn.discordapp.com");
        assert_eq!(
            Origin::parse(" HTTPS://CDN.DiscordApp.com:443/ ").unwrap(),
            cdn
        );
        let local = Origin::parse("http://127.0.0.1:3000").unwrap();
        assert_eq!(local.port(), 3000);
        assert_eq!(local.to_string(), "http://127.0.0.1:3000");
        assert_eq!(
            Origin::parse("http://[::1]:8080").unwrap().to_string(),
            "http://[::1]:8080"
        );
        assert_ne!(Origin::parse("http://cdn.discordapp.com").unwrap(), cdn);
        assert_eq!("https://cdn.discordapp.com".parse::<Origin>().unwrap(), cdn);
    }

    #[test]
    fn strings_that_are_not_bare_http_origins_are_refused_as_origins() {
        for bad in [
            "cdn.discordapp.com",
            "ftp://cdn.discordapp.com",
            "https://cdn.discordapp.com/attachments",
            "https://cdn.discordapp.com/?x=1",
            "https://user:pw@cdn.discordapp.com",
            "file:///etc/passwd",
            "",
        ] {
            let err = Origin::parse(bad).unwrap_err();
            assert!(
                matches!(err, FetchError::InvalidUrl { .. }),
                "{bad:?} gave {err:?}"
            );
            assert!(!err.to_string().contains("pw@"), "{err}");
        }
    }

    #[test]
    fn origin_of_a_url_uses_the_scheme_default_port_and_ignores_path_and_query() {
        let url = Url::parse("https://cdn.discordapp.com/attachments/1/2/a.png?hm=x").unwrap();
        assert_eq!(
            Origin::of(&url).unwrap(),
            Origin::parse("https://cdn.discordapp.com").unwrap()
        );
        assert_eq!(Origin::of(&Url::parse("file:///etc/passwd").unwrap()), None);
        assert_eq!(Origin::of(&Url::parse("data:text/plain,hi").unwrap()), None);
    }

    #[test]
    fn redacted_links_keep_scheme_host_port_and_path_only() {
        let url = Url::parse(&format!(
            "https://user:pw@cdn.discordapp.com/attachments/1/2/a.png?{SECRET_QUERY}#frag"
        ))
        .unwrap();
        assert_eq!(
            redacted(&url),
            "https://cdn.discordapp.com/attachments/1/2/a.png"
        );
        let local = Url::parse("http://127.0.0.1:3000/a.png?hm=x").unwrap();
        assert_eq!(redacted(&local), "http://127.0.0.1:3000/a.png");
        assert_eq!(
            redacted(&Url::parse("data:text/plain,secret").unwrap()),
            "data:…"
        );
        assert_eq!(
            redact_unparsed("https://u:p@cdn.discordapp.com:99999/a.png?hm=x#y"),
            "https://cdn.discordapp.com:99999/a.png"
        );
    }

    #[test]
    fn sizes_and_waits_read_naturally_in_messages() {
        let err = FetchError::TooLarge {
            max_bytes: 10 * MIB,
            declared: None,
        };
        assert_eq!(err.to_string(), "the file is larger than 10.0 MiB");
        assert_eq!(err.kind(), "too_large");
        assert!(!err.is_transient() && !err.is_gone());
    }

    #[test]
    fn zero_timeouts_are_a_setup_error() {
        let err = Fetcher::new(FetchConfig {
            allowed_origins: vec![],
            connect_timeout: Duration::ZERO,
            total_timeout: Duration::from_secs(1),
        })
        .unwrap_err();
        assert_eq!(err.kind(), "setup");
    }

    #[tokio::test]
    async fn a_body_within_the_cap_is_returned_with_its_content_type_and_user_agent() {
        let app = Router::new().route(
            "/a.png",
            get(|headers: HeaderMap| async move {
                let agent = headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned();
                ([(header::CONTENT_TYPE, "image/png")], agent)
            }),
        );
        let addr = serve(app).await;
        let fetched = fetcher(vec![origin(addr)])
            .fetch(&format!("http://{addr}/a.png?{SECRET_QUERY}"), 1024)
            .await
            .unwrap();
        assert_eq!(fetched.bytes, USER_AGENT.as_bytes());
        assert!(USER_AGENT.starts_with("portrait-bot/"));
        assert_eq!(fetched.content_type.as_deref(), Some("image/png"));
        assert_eq!(fetched.final_url.path(), "/a.png");
        assert!(!format!("{fetched:?}").contains("SECRETSIGNATURE"));
    }

    #[tokio::test]
    async fn a_one_gib_body_with_content_length_is_refused_without_reading_it() {
        let produced = Arc::new(Produced::default());
        let state = Arc::clone(&produced);
        let app = Router::new().route(
            "/huge.png",
            get(move || {
                let produced = Arc::clone(&state);
                async move {
                    (
                        [(header::CONTENT_LENGTH, GIB.to_string())],
                        lazy_zeros(GIB, produced),
                    )
                }
            }),
        );
        let addr = serve(app).await;
        let err = fetcher(vec![origin(addr)])
            .fetch(&format!("http://{addr}/huge.png"), 100 * MIB)
            .await
            .unwrap_err();
        match &err {
            FetchError::TooLarge {
                max_bytes,
                declared,
            } => {
                assert_eq!(*max_bytes, 100 * MIB);
                assert_eq!(*declared, Some(GIB));
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "the file is larger than 100.0 MiB (the server says it is 1.0 GiB)"
        );
        wait_until_dropped(&produced).await;
        let sent = produced.bytes.load(Ordering::SeqCst);
        // Socket buffers on both sides hold a few MiB at most. Streaming up to the 100 MiB cap
        // instead of trusting Content-Length would have made the server produce more than that.
        assert!(
            sent < 64 * MIB,
            "the server produced {sent} bytes before the client hung up"
        );
    }

    #[tokio::test]
    async fn a_one_gib_chunked_body_without_content_length_is_cut_off_at_the_cap() {
        let produced = Arc::new(Produced::default());
        let state = Arc::clone(&produced);
        let app = Router::new().route(
            "/huge.png",
            get(move || {
                let produced = Arc::clone(&state);
                async move { lazy_zeros(GIB, produced) }
            }),
        );
        let addr = serve(app).await;
        let err = fetcher(vec![origin(addr)])
            .fetch(&format!("http://{addr}/huge.png"), MIB)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::TooLarge {
                    max_bytes: MIB,
                    declared: None
                }
            ),
            "expected TooLarge without a declared size, got {err:?}"
        );
        assert_eq!(err.to_string(), "the file is larger than 1.0 MiB");
        wait_until_dropped(&produced).await;
        let sent = produced.bytes.load(Ordering::SeqCst);
        assert!(
            sent < 64 * MIB,
            "the server produced {sent} bytes for a 1 MiB cap"
        );
    }

    #[tokio::test]
    async fn a_body_exactly_at_the_cap_is_accepted_and_one_byte_more_is_refused() {
        const SIZE: u64 = 200_000;
        let app = Router::new()
            .route(
                "/sized",
                get(|| async { vec![7u8; SIZE as usize].into_response() }),
            )
            .route(
                "/chunked",
                get(|| async { lazy_zeros(SIZE, Arc::new(Produced::default())) }),
            );
        let addr = serve(app).await;
        let fetcher = fetcher(vec![origin(addr)]);

        let sized = fetcher
            .fetch(&format!("http://{addr}/sized"), SIZE)
            .await
            .unwrap();
        assert_eq!(sized.bytes.len() as u64, SIZE);
        assert!(sized.bytes.iter().all(|&b| b == 7));
        let chunked = fetcher
            .fetch(&format!("http://{addr}/chunked"), SIZE)
            .await
            .unwrap();
        assert_eq!(chunked.bytes.len() as u64, SIZE);

        let err = fetcher
            .fetch(&format!("http://{addr}/sized"), SIZE - 1)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::TooLarge {
                    declared: Some(SIZE),
                    ..
                }
            ),
            "{err:?}"
        );
        let err = fetcher
            .fetch(&format!("http://{addr}/chunked"), SIZE - 1)
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::TooLarge { declared: None, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_server_that_trickles_its_body_times_out_within_the_total_timeout() {
        let app = Router::new().route(
            "/slow.png",
            get(|| async {
                let trickle = futures::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Some((Ok::<_, io::Error>(Bytes::from_static(b"x")), ()))
                });
                Body::from_stream(trickle)
            }),
        );
        let addr = serve(app).await;
        let total = Duration::from_millis(800);
        let fetcher = fetcher_with(vec![origin(addr)], total);
        let link = format!("http://{addr}/slow.png?{SECRET_QUERY}");
        let fetch = fetcher.fetch(&link, 10 * MIB);
        // The outer guard only stops a broken implementation from hanging the test run.
        let err = tokio::time::timeout(Duration::from_secs(20), fetch)
            .await
            .expect("the fetch ignored its total timeout")
            .unwrap_err();
        match &err {
            FetchError::Timeout {
                after, connecting, ..
            } => {
                assert_eq!(*after, total);
                assert!(!connecting);
            }
            other => panic!("expected Timeout, got {other:?}"),
        }
        assert!(err.is_transient());
        assert_eq!(err.kind(), "timeout");
        assert_eq!(
            err.to_string(),
            format!("the download of http://{addr}/slow.png did not finish within 800 ms")
        );
        assert_no_secret(&err);
    }

    #[tokio::test]
    async fn a_server_that_never_accepts_the_connection_hits_the_connect_timeout() {
        // A listener whose accept queue is full drops further SYNs, so connecting stalls.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fillers = Vec::new();
        loop {
            match tokio::time::timeout(
                Duration::from_millis(200),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            {
                Ok(stream) => fillers.push(stream.unwrap()),
                Err(_full) => break,
            }
            assert!(fillers.len() < 64, "the accept queue never filled up");
        }
        let fetcher = Fetcher::new(FetchConfig {
            allowed_origins: vec![origin(addr)],
            connect_timeout: Duration::from_millis(300),
            total_timeout: Duration::from_secs(30),
        })
        .unwrap();
        let link = format!("http://{addr}/a.png?{SECRET_QUERY}");
        let err = tokio::time::timeout(Duration::from_secs(20), fetcher.fetch(&link, MIB))
            .await
            .expect("the fetch ignored its connect timeout")
            .unwrap_err();
        match &err {
            FetchError::Timeout {
                after, connecting, ..
            } => {
                assert_eq!(*after, Duration::from_millis(300));
                assert!(connecting);
            }
            other => panic!("expected a connect Timeout, got {other:?}"),
        }
        assert!(err.is_transient());
        assert_eq!(
            err.to_string(),
            format!("could not connect to http://{addr}/a.png within 300 ms")
        );
        drop(listener);
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let app = Router::new().route(
            "/silent",
            get(|| async {
                std::future::pending::<()>().await;
                "never"
            }),
        );
        let addr = serve(app).await;
        let fetcher = fetcher_with(vec![origin(addr)], Duration::from_millis(300));
        let link = format!("http://{addr}/silent");
        let fetch = fetcher.fetch(&link, MIB);
        let err = tokio::time::timeout(Duration::from_secs(20), fetch)
            .await
            .expect("the fetch ignored its total timeout")
            .unwrap_err();
        assert!(matches!(err, FetchError::Timeout { .. }), "{err:?}");
    }

    fn redirecting_app(target: String) -> Router {
        Router::new().route(
            "/go",
            get(move || {
                let target = target.clone();
                async move { Redirect::temporary(&target) }
            }),
        )
    }

    #[tokio::test]
    async fn a_redirect_to_an_origin_that_is_not_allowed_is_refused_without_connecting() {
        let (other, accepts) =
            counting_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        let addr = serve(redirecting_app(format!(
            "http://{other}/file.png?{SECRET_QUERY}"
        )))
        .await;
        let err = fetcher(vec![origin(addr)])
            .fetch(&format!("http://{addr}/go"), MIB)
            .await
            .unwrap_err();
        match &err {
            FetchError::RedirectNotAllowed { target } => {
                assert_eq!(target, &format!("http://{other}/file.png"));
            }
            other => panic!("expected RedirectNotAllowed, got {other:?}"),
        }
        assert_eq!(err.kind(), "redirect_not_allowed");
        assert!(!err.is_transient());
        assert_no_secret(&err);
        assert_eq!(accepts.load(Ordering::SeqCst), 0);

        let metadata = serve(redirecting_app(
            "http://169.254.169.254/latest/meta-data".into(),
        ))
        .await;
        let err = fetcher(vec![origin(metadata)])
            .fetch(&format!("http://{metadata}/go"), MIB)
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::RedirectNotAllowed { .. }),
            "{err:?}"
        );

        let file = serve(redirecting_app("file:///etc/passwd".into())).await;
        let err = fetcher(vec![origin(file)])
            .fetch(&format!("http://{file}/go"), MIB)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, FetchError::RedirectNotAllowed { target } if target == "file:…"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_redirect_to_an_allowed_origin_is_followed_without_sending_a_referer() {
        let target = serve(Router::new().route(
            "/file.png",
            get(|headers: HeaderMap| async move {
                let referer = headers
                    .get(header::REFERER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("no referer")
                    .to_owned();
                ([(header::CONTENT_TYPE, "image/png")], referer)
            }),
        ))
        .await;
        let start = serve(redirecting_app(format!("http://{target}/file.png?hm=new"))).await;
        let fetched = fetcher(vec![origin(start), origin(target)])
            .fetch(&format!("http://{start}/go?{SECRET_QUERY}"), MIB)
            .await
            .unwrap();
        assert_eq!(&fetched.bytes[..], b"no referer");
        assert_eq!(
            fetched.final_url.as_str(),
            format!("http://{target}/file.png?hm=new")
        );
        assert_eq!(fetched.content_type.as_deref(), Some("image/png"));
    }

    #[tokio::test]
    async fn five_redirects_are_followed_and_a_sixth_is_refused() {
        let app = Router::new().route(
            "/hop/{n}",
            get(|Path(n): Path<u32>| async move {
                if n == 0 {
                    "arrived".into_response()
                } else {
                    Redirect::temporary(&format!("/hop/{}", n - 1)).into_response()
                }
            }),
        );
        let addr = serve(app).await;
        let fetcher = fetcher(vec![origin(addr)]);
        let fetched = fetcher
            .fetch(&format!("http://{addr}/hop/5"), MIB)
            .await
            .unwrap();
        assert_eq!(&fetched.bytes[..], b"arrived");
        let err = fetcher
            .fetch(&format!("http://{addr}/hop/6"), MIB)
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::TooManyRedirects), "{err:?}");
        assert_eq!(
            err.to_string(),
            "the download was redirected more than 5 times"
        );
    }

    #[tokio::test]
    async fn links_on_origins_that_are_not_allowed_are_refused_before_any_connection() {
        let (addr, accepts) =
            counting_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        let cdn_only = fetcher(vec![Origin::parse("https://cdn.discordapp.com").unwrap()]);
        for link in [
            format!("http://{addr}/a.png"),
            format!("http://localhost:{}/a.png", addr.port()),
            "http://169.254.169.254/latest/meta-data".to_owned(),
            // The same address in hexadecimal: URL parsing normalises it, so it is refused too.
            "http://0xA9FEA9FE/latest/meta-data".to_owned(),
            "http://cdn.discordapp.com/a.png".to_owned(),
            "https://cdn.discordapp.com.evil.example/a.png".to_owned(),
        ] {
            // Refused on the first poll: no DNS lookup, no connect, nothing to wait for.
            let err = cdn_only
                .fetch(&link, MIB)
                .now_or_never()
                .unwrap_or_else(|| panic!("{link} was not refused at once"))
                .unwrap_err();
            assert!(
                matches!(err, FetchError::OriginNotAllowed { .. }),
                "{link}: {err:?}"
            );
            assert_eq!(err.kind(), "origin_not_allowed");
            assert!(!err.is_transient());
        }
        let err = cdn_only
            .fetch("http://169.254.169.254/latest/meta-data", MIB)
            .now_or_never()
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "downloads from http://169.254.169.254 are not allowed; only the configured CDN origins are"
        );
        // Give any stray connection attempt time to show up before counting.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(accepts.load(Ordering::SeqCst), 0);

        // The same server is reachable once allowed, so the zero above is meaningful.
        let fetched = fetcher(vec![origin(addr)])
            .fetch(&format!("http://{addr}/a.png"), MIB)
            .await
            .unwrap();
        assert_eq!(&fetched.bytes[..], b"ok");
        assert_eq!(accepts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn links_that_are_not_http_urls_are_refused_as_invalid() {
        let fetcher = fetcher(vec![Origin::parse("https://cdn.discordapp.com").unwrap()]);
        for link in [
            "file:///etc/passwd",
            "ftp://cdn.discordapp.com/a.png",
            "data:image/png;base64,AAAA",
            "not a link",
            "https://cdn.discordapp.com:99999/a.png?hm=SECRETSIGNATURE",
        ] {
            let err = fetcher
                .fetch(link, MIB)
                .now_or_never()
                .unwrap()
                .unwrap_err();
            assert!(
                matches!(err, FetchError::InvalidUrl { .. }),
                "{link}: {err:?}"
            );
            assert_no_secret(&err);
        }
    }

    async fn status_app(
        status: StatusCode,
        headers: Vec<(&'static str, &'static str)>,
        body: &'static str,
    ) -> SocketAddr {
        serve(Router::new().route(
            "/f.png",
            get(move || {
                let headers = headers.clone();
                async move {
                    let mut response = Response::new(Body::from(body));
                    *response.status_mut() = status;
                    for (name, value) in headers {
                        response.headers_mut().insert(name, value.parse().unwrap());
                    }
                    response
                }
            }),
        ))
        .await
    }

    async fn fetch_error(addr: SocketAddr) -> FetchError {
        fetcher(vec![origin(addr)])
            .fetch(&format!("http://{addr}/f.png?{SECRET_QUERY}"), MIB)
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn an_expired_link_404_keeps_the_first_line_and_is_gone() {
        let addr = status_app(
            StatusCode::NOT_FOUND,
            vec![],
            "\n  This content is no longer available.  \nsecond line\n",
        )
        .await;
        let err = fetch_error(addr).await;
        match &err {
            FetchError::Status {
                status,
                first_line,
                retry_after,
            } => {
                assert_eq!(*status, 404);
                assert_eq!(first_line, CONTENT_GONE_TEXT);
                assert_eq!(*retry_after, None);
            }
            other => panic!("expected Status, got {other:?}"),
        }
        assert!(err.is_gone());
        assert!(!err.is_transient());
        assert_eq!(err.kind(), "gone");
        assert_eq!(
            err.to_string(),
            "the link has expired or the file was deleted (HTTP 404: This content is no longer available.)"
        );
        assert_no_secret(&err);
    }

    #[tokio::test]
    async fn forbidden_gone_and_the_expiry_text_under_any_status_mean_gone() {
        for (status, body) in [
            (StatusCode::FORBIDDEN, "Forbidden"),
            (StatusCode::GONE, ""),
            (StatusCode::BAD_REQUEST, CONTENT_GONE_TEXT),
        ] {
            let err = fetch_error(status_app(status, vec![], body).await).await;
            assert!(err.is_gone(), "{status}: {err:?}");
            assert!(!err.is_transient(), "{status}");
        }
        let err = fetch_error(status_app(StatusCode::BAD_REQUEST, vec![], "bad").await).await;
        assert!(!err.is_gone());
        assert_eq!(err.kind(), "http_status");
        assert_eq!(
            err.to_string(),
            "the file server refused the download (HTTP 400: bad)"
        );
    }

    #[tokio::test]
    async fn a_429_with_retry_after_is_transient_and_says_how_long_to_wait() {
        let addr = status_app(
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after", "3")],
            "slow down",
        )
        .await;
        let err = fetch_error(addr).await;
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert!(err.is_transient());
        assert!(!err.is_gone());
        assert_eq!(err.kind(), "rate_limited");
        assert_eq!(
            err.to_string(),
            "the file server is rate limiting downloads (HTTP 429: slow down); try again in 3 s"
        );
        assert_no_secret(&err);
    }

    #[tokio::test]
    async fn a_429_with_a_json_retry_after_uses_the_fractional_seconds_and_message() {
        let addr = status_app(
            StatusCode::TOO_MANY_REQUESTS,
            vec![("content-type", "application/json")],
            r#"{"message": "You are being rate limited.", "retry_after": 0.75, "global": false}"#,
        )
        .await;
        let err = fetch_error(addr).await;
        assert_eq!(err.retry_after(), Some(Duration::from_millis(750)));
        match &err {
            FetchError::Status { first_line, .. } => {
                assert_eq!(first_line, "You are being rate limited.")
            }
            other => panic!("expected Status, got {other:?}"),
        }

        // Discord sends both; the longer wait wins.
        let addr = status_app(
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after", "2")],
            r#"{"message": "You are being rate limited.", "retry_after": 1.5}"#,
        )
        .await;
        assert_eq!(
            fetch_error(addr).await.retry_after(),
            Some(Duration::from_secs(2))
        );
    }

    #[tokio::test]
    async fn a_500_is_transient_and_not_gone() {
        let addr = status_app(
            StatusCode::INTERNAL_SERVER_ERROR,
            vec![("retry-after", "5")],
            "upstream exploded\nstack trace",
        )
        .await;
        let err = fetch_error(addr).await;
        assert!(err.is_transient());
        assert!(!err.is_gone());
        // Retry-After is only taken from 429 and 503 answers.
        assert_eq!(err.retry_after(), None);
        assert_eq!(err.kind(), "server_error");
        assert_eq!(
            err.to_string(),
            "the file server had a problem (HTTP 500: upstream exploded)"
        );
    }

    #[tokio::test]
    async fn an_endless_error_page_is_read_only_a_few_kib() {
        let produced = Arc::new(Produced::default());
        let app = Router::new()
            .route(
                "/f.png",
                get(|State(produced): State<Arc<Produced>>| async move {
                    (StatusCode::NOT_FOUND, lazy_zeros(GIB, produced))
                }),
            )
            .with_state(Arc::clone(&produced));
        let addr = serve(app).await;
        let err = fetch_error(addr).await;
        assert!(
            matches!(err, FetchError::Status { status: 404, .. }),
            "{err:?}"
        );
        wait_until_dropped(&produced).await;
        assert!(produced.bytes.load(Ordering::SeqCst) < 64 * MIB);
    }

    #[tokio::test]
    async fn a_closed_port_is_a_transient_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = fetch_error(addr).await;
        assert!(matches!(err, FetchError::Connect { .. }), "{err:?}");
        assert!(err.is_transient());
        assert_eq!(err.kind(), "connect");
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("could not reach http://{addr}/f.png: ")),
            "{shown}"
        );
        assert_no_secret(&err);
    }

    #[tokio::test]
    async fn a_body_that_breaks_off_before_its_content_length_is_a_transient_body_error() {
        let (addr, _) = counting_server(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nonly ten b",
        )
        .await;
        let err = fetch_error(addr).await;
        assert!(matches!(err, FetchError::Body { .. }), "{err:?}");
        assert!(err.is_transient());
        assert_eq!(err.kind(), "body");
        assert_no_secret(&err);
    }

    #[tokio::test]
    async fn too_large_downloads_never_mention_the_query_string() {
        let app = Router::new().route("/f.png", get(|| async { vec![1u8; 4096] }));
        let addr = serve(app).await;
        let err = fetcher(vec![origin(addr)])
            .fetch(&format!("http://{addr}/f.png?{SECRET_QUERY}"), 100)
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::TooLarge { .. }), "{err:?}");
        assert_no_secret(&err);
        let err = fetcher(vec![])
            .fetch(&format!("http://{addr}/f.png?{SECRET_QUERY}"), 100)
            .await
            .unwrap_err();
        assert_no_secret(&err);
    }

    #[tokio::test]
    async fn cookies_set_by_the_server_are_not_sent_back() {
        let app = Router::new()
            .route(
                "/set",
                get(|| async {
                    (
                        [(header::SET_COOKIE, "session=abc; Path=/")],
                        Redirect::temporary("/check"),
                    )
                }),
            )
            .route(
                "/check",
                get(|headers: HeaderMap| async move {
                    headers
                        .get(header::COOKIE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("no cookie")
                        .to_owned()
                }),
            );
        let addr = serve(app).await;
        let fetched = fetcher(vec![origin(addr)])
            .fetch(&format!("http://{addr}/set"), MIB)
            .await
            .unwrap();
        assert_eq!(&fetched.bytes[..], b"no cookie");
    }
}
