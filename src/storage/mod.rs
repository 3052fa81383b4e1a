//! Object storage: Cloudflare R2 (any S3-compatible endpoint) or a local folder.
//!
//! [`Store`] is the one type the rest of the program sees; no aws-sdk type leaves this module.
//! Both backends keep the same promises: every object carries a Content-Type, the immutable
//! [`CACHE_CONTROL`] and ASCII-safe metadata; missing objects are [`StorageError::NotFound`];
//! errors are a small enum whose message tells an operator what to fix.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};

use crate::secret::Secret;

pub mod local;
pub mod r2;

/// Cache-Control of every stored object. Keys contain a content hash, so an object under a key
/// never changes and browsers and CDNs may keep it for a year.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// R2's limit for user metadata: keys plus values, in bytes.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;

/// S3's (and R2's) limit for an object key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// Where portraits are stored, decided once at startup from the configuration.
#[derive(Debug, Clone)]
pub enum StorageSettings {
    R2(R2Settings),
    Local {
        root: PathBuf,
        public_base_url: String,
    },
}

/// Connection details for an R2 bucket (or any S3-compatible endpoint).
///
/// `Debug` is derived on purpose: [`Secret`] redacts itself, so printing the settings is safe.
#[derive(Debug, Clone)]
pub struct R2Settings {
    /// `https://{account}.r2.cloudflarestorage.com`, or any S3-compatible endpoint.
    pub endpoint: String,
    /// The R2 API token's access key id (not secret, but not printed by `describe` either).
    pub access_key_id: String,
    /// The R2 API token's secret access key.
    pub secret_access_key: Secret,
    /// Bucket name.
    pub bucket: String,
    /// Public base URL objects are served from (custom domain or `r2.dev`), without a trailing `/`.
    pub public_url: String,
}

/// What a `HEAD` tells about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// The Content-Type it was stored with.
    pub content_type: Option<String>,
    /// The Cache-Control it was stored with.
    pub cache_control: Option<String>,
    /// User metadata as stored, i.e. with values percent-encoded by [`ascii_safe`]; keys are
    /// lower-case. Decode a value with [`decode_ascii_safe`].
    pub metadata: BTreeMap<String, String>,
    /// When it was last written, if the backend says.
    pub last_modified: Option<DateTime<Utc>>,
}

/// A fetched object: its bytes and what a `HEAD` would say about it.
#[derive(Clone)]
pub struct StoredObject {
    /// The exact stored bytes.
    pub bytes: Bytes,
    /// Headers and metadata.
    pub info: ObjectInfo,
}

impl fmt::Debug for StoredObject {
    // By hand: a derived Debug would print every byte of a 10 MiB image into a log or panic.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredObject")
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .field("info", &self.info)
            .finish()
    }
}

/// One entry of [`Store::list_prefix`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// The full key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was last written, if the backend says.
    pub last_modified: Option<DateTime<Utc>>,
}

/// One page of [`Store::list_prefix_page`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    /// Objects in key order.
    pub objects: Vec<ListedObject>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<String>,
}

/// Why a storage operation failed. The `Display` text is written for the operator who has to fix
/// it; it names the setting to check and never contains credentials.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object does not exist.
    #[error("object `{key}` does not exist")]
    NotFound {
        /// The key that was asked for.
        key: String,
    },
    /// The credentials were refused, or the process may not touch the local folder.
    #[error("{message}")]
    AccessDenied {
        /// What happened and what to check.
        message: String,
    },
    /// The bucket (or the local root folder) does not exist.
    #[error("{message}")]
    BucketMissing {
        /// Bucket name, or the local root folder.
        bucket: String,
        /// What happened and what to check.
        message: String,
    },
    /// The store could not be reached, timed out, throttled or failed on its side: worth retrying.
    #[error("{message}")]
    Transient {
        /// What happened and what to check.
        message: String,
    },
    /// Anything else: a refused key or metadata, an unexpected answer, a local I/O error.
    #[error("{message}")]
    Other {
        /// What happened and what to check.
        message: String,
    },
}

impl StorageError {
    /// A short stable label for metrics: `not_found`, `access_denied`, `bucket_missing`,
    /// `transient` or `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            StorageError::NotFound { .. } => "not_found",
            StorageError::AccessDenied { .. } => "access_denied",
            StorageError::BucketMissing { .. } => "bucket_missing",
            StorageError::Transient { .. } => "transient",
            StorageError::Other { .. } => "other",
        }
    }

    /// Whether trying again later may succeed (network, timeout, throttling, 5xx).
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Transient { .. })
    }

    pub(crate) fn other(message: impl Into<String>) -> Self {
        StorageError::Other {
            message: message.into(),
        }
    }
}

/// Where portraits live: an R2 bucket or a local folder. Cheap to clone (the R2 client is shared).
#[derive(Debug, Clone)]
pub enum Store {
    /// Cloudflare R2 or any S3-compatible endpoint.
    R2(r2::R2Store),
    /// A folder on this machine, for running without R2.
    Local(local::LocalStore),
}

impl Store {
    /// The store the configuration chose: R2 when it is configured, else the local folder.
    /// Checks the settings' shape only, like [`Store::r2`].
    pub fn from_settings(settings: &StorageSettings) -> Result<Store, StorageError> {
        match settings {
            StorageSettings::R2(r2) => Store::r2(r2.clone()),
            StorageSettings::Local {
                root,
                public_base_url,
            } => Store::local(root.clone(), public_base_url.clone()),
        }
    }

    /// An R2 store. Checks the settings' shape only; use [`Store::ping`] to check reachability.
    pub fn r2(settings: R2Settings) -> Result<Store, StorageError> {
        r2::R2Store::new(settings).map(Store::R2)
    }

    /// A local-folder store rooted at `root` (created if missing), whose objects are served
    /// under `public_base_url`.
    pub fn local(root: PathBuf, public_base_url: String) -> Result<Store, StorageError> {
        local::LocalStore::new(root, public_base_url).map(Store::Local)
    }

    /// Stores `body` under `key` with `content_type`, [`CACHE_CONTROL`] and `metadata`. Every
    /// metadata value is passed through [`ascii_safe`]; keys must be letters, digits, `-` or `_`
    /// and are stored lower-case; more than [`MAX_METADATA_BYTES`] in all is refused.
    pub async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        metadata: &[(&str, &str)],
    ) -> Result<(), StorageError> {
        check_key(key)?;
        let metadata = safe_metadata(metadata)?;
        match self {
            Store::R2(s) => s.put(key, body, content_type, metadata).await,
            Store::Local(s) => s.put(key, body, content_type, metadata).await,
        }
    }

    /// Whether this store accepts `key` at all, without touching storage: non-empty, at most
    /// [`MAX_KEY_BYTES`], and for the local folder no `..`, backslash, absolute path or segment
    /// starting with `.`. Lets an HTTP handler answer 404 to a hostile path instead of an error.
    pub fn check_key(&self, key: &str) -> Result<(), StorageError> {
        check_key(key)?;
        match self {
            Store::R2(_) => Ok(()),
            Store::Local(_) => local::check_key(key),
        }
    }

    /// Headers and metadata of `key`, or `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        check_key(key)?;
        match self {
            Store::R2(s) => s.head(key).await,
            Store::Local(s) => s.head(key).await,
        }
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        Ok(self.head(key).await?.is_some())
    }

    /// The object's bytes and headers; [`StorageError::NotFound`] when it does not exist.
    pub async fn get(&self, key: &str) -> Result<StoredObject, StorageError> {
        check_key(key)?;
        match self {
            Store::R2(s) => s.get(key).await,
            Store::Local(s) => s.get(key).await,
        }
    }

    /// Deletes `key`; deleting an object that does not exist succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        check_key(key)?;
        match self {
            Store::R2(s) => s.delete(key).await,
            Store::Local(s) => s.delete(key).await,
        }
    }

    /// Deletes every object whose key starts with `prefix` (R2: `DeleteObjects`, at most 1000
    /// keys a request) and returns how many were deleted. An empty prefix is refused: it would
    /// empty the whole bucket, which is never what a caller with a computed prefix meant.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        if prefix.is_empty() {
            return Err(StorageError::other(
                "refusing to delete with an empty prefix: that would delete every object",
            ));
        }
        match self {
            Store::R2(s) => s.delete_prefix(prefix).await,
            Store::Local(s) => s.delete_prefix(prefix).await,
        }
    }

    /// Every object whose key starts with `prefix`, in key order (R2: follows continuation
    /// tokens across pages).
    pub async fn list_prefix(&self, prefix: &str) -> Result<Vec<ListedObject>, StorageError> {
        match self {
            Store::R2(s) => s.list_prefix(prefix).await,
            Store::Local(s) => s.list_prefix(prefix).await,
        }
    }

    /// One page of the objects whose key starts with `prefix`, in key order: up to `max_keys`
    /// (R2: at most 1000) after `token`, the `next` of the previous page (`None` for the
    /// first). For listing a bucket of any size in flat memory.
    pub async fn list_prefix_page(
        &self,
        prefix: &str,
        token: Option<String>,
        max_keys: usize,
    ) -> Result<ListPage, StorageError> {
        match self {
            Store::R2(s) => s.list_prefix_page(prefix, token, max_keys).await,
            Store::Local(s) => s.list_prefix_page(prefix, token, max_keys).await,
        }
    }

    /// Copies `from_key` to `to_key` with its Content-Type, Cache-Control and metadata.
    /// [`StorageError::NotFound`] when `from_key` does not exist.
    pub async fn copy(&self, from_key: &str, to_key: &str) -> Result<(), StorageError> {
        check_key(from_key)?;
        check_key(to_key)?;
        if from_key == to_key {
            // S3 refuses a copy onto itself without replacing metadata; for us it is a no-op,
            // but the source must still exist.
            return match self.head(from_key).await? {
                Some(_) => Ok(()),
                None => Err(StorageError::NotFound {
                    key: from_key.to_owned(),
                }),
            };
        }
        match self {
            Store::R2(s) => s.copy(from_key, to_key).await,
            Store::Local(s) => s.copy(from_key, to_key).await,
        }
    }

    /// The URL a browser (or Discord) loads `key` from: public base + `/` + key, each path
    /// segment percent-encoded where needed.
    pub fn public_url(&self, key: &str) -> String {
        let base = match self {
            Store::R2(s) => s.public_base(),
            Store::Local(s) => s.public_base(),
        };
        join_public_url(base, key)
    }

    /// The key a public URL of this store points at (the inverse of [`Store::public_url`]), or
    /// `None` for a URL elsewhere.
    pub fn key_of_public_url(&self, url: &str) -> Option<String> {
        let base = self.public_url("");
        let encoded = url.strip_prefix(&base).filter(|key| !key.is_empty())?;
        percent_encoding::percent_decode_str(encoded)
            .decode_utf8()
            .ok()
            .map(|key| key.into_owned())
    }

    /// A cheap check that the store is reachable, the credentials work and the bucket (or
    /// folder) exists. For `/healthz`.
    pub async fn ping(&self) -> Result<(), StorageError> {
        match self {
            Store::R2(s) => s.ping().await,
            Store::Local(s) => s.ping().await,
        }
    }

    /// Writes a small probe object under `prefix`, reads it back, compares, and deletes it. For
    /// `portrait-bot check`: proves writes, reads and deletes all work, not just reachability.
    pub async fn round_trip_check(&self, prefix: &str) -> Result<(), StorageError> {
        // Ping first: a missing bucket then gets its own clear error instead of failing (or,
        // on some S3 servers, silently creating it) at the write.
        self.ping().await?;

        let id = uuid::Uuid::new_v4().simple().to_string();
        let prefix = prefix.trim_end_matches('/');
        let key = if prefix.is_empty() {
            format!("portrait-bot-check-{id}.txt")
        } else {
            format!("{prefix}/portrait-bot-check-{id}.txt")
        };
        let body = Bytes::from(format!(
            "portrait-bot round-trip check {id} at {}\n",
            Utc::now().to_rfc3339()
        ));
        let content_type = "text/plain; charset=utf-8";
        self.put(
            &key,
            body.clone(),
            content_type,
            &[("purpose", "round-trip-check")],
        )
        .await?;

        let compared = self.get(&key).await.and_then(|read| {
            if read.bytes != body {
                Err(StorageError::other(format!(
                    "round-trip check: {} returned different bytes for `{key}` than were written \
                     ({} bytes written, {} read)",
                    self.describe(),
                    body.len(),
                    read.bytes.len()
                )))
            } else if read.info.content_type.as_deref() != Some(content_type)
                || read.info.cache_control.as_deref() != Some(CACHE_CONTROL)
            {
                Err(StorageError::other(format!(
                    "round-trip check: {} did not keep the headers of `{key}` (Content-Type {:?}, \
                     Cache-Control {:?})",
                    self.describe(),
                    read.info.content_type,
                    read.info.cache_control
                )))
            } else {
                Ok(())
            }
        });
        // Delete even when the comparison failed, so a failed check leaves nothing behind.
        let deleted = self.delete(&key).await;
        compared?;
        deleted?;
        if self.exists(&key).await? {
            return Err(StorageError::other(format!(
                "round-trip check: `{key}` still exists in {} after it was deleted",
                self.describe()
            )));
        }
        Ok(())
    }

    /// One line for logs: "R2 bucket `x` at https://…" or "local folder /…". Never credentials.
    pub fn describe(&self) -> String {
        match self {
            Store::R2(s) => s.describe(),
            Store::Local(s) => s.describe(),
        }
    }
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Characters [`ascii_safe`] percent-encodes: controls (which HTTP headers cannot carry) and `%`
/// (so the encoding can be undone). Non-ASCII is always encoded by `utf8_percent_encode`.
const METADATA_UNSAFE: &AsciiSet = &CONTROLS.add(b'%');

/// Makes `value` safe for S3/R2 user metadata (an HTTP header; R2 accepts ASCII only):
/// printable ASCII stays as it is, everything else is percent-encoded as UTF-8 (`ë` → `%C3%AB`),
/// and so are `%` itself and spaces at either end or next to another space (HTTP trims the ends
/// and request signing collapses runs of spaces, so those would not round-trip).
/// [`decode_ascii_safe`] undoes it.
pub fn ascii_safe(value: &str) -> String {
    let encoded = utf8_percent_encode(value, METADATA_UNSAFE).to_string();
    if !encoded.contains(' ') {
        return encoded;
    }
    let chars: Vec<char> = encoded.chars().collect();
    let mut out = String::with_capacity(encoded.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        let risky = c == ' '
            && (i == 0
                || i + 1 == chars.len()
                || chars[i - 1] == ' '
                || chars.get(i + 1) == Some(&' '));
        if risky {
            out.push_str("%20");
        } else {
            out.push(c);
        }
    }
    out
}

/// Undoes [`ascii_safe`]: decodes `%XX` sequences (invalid UTF-8 is replaced, never an error).
pub fn decode_ascii_safe(value: &str) -> String {
    percent_encoding::percent_decode_str(value)
        .decode_utf8_lossy()
        .into_owned()
}

/// Checks metadata keys, encodes values and enforces R2's size limit.
fn safe_metadata(metadata: &[(&str, &str)]) -> Result<BTreeMap<String, String>, StorageError> {
    let mut out = BTreeMap::new();
    let mut total = 0usize;
    for (name, value) in metadata {
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            return Err(StorageError::other(format!(
                "metadata name {name:?} is not allowed: use ASCII letters, digits, `-` or `_`"
            )));
        }
        let value = ascii_safe(value);
        total += name.len() + value.len();
        out.insert(name.to_ascii_lowercase(), value);
    }
    if total > MAX_METADATA_BYTES {
        return Err(StorageError::other(format!(
            "object metadata is {total} bytes after encoding; R2 allows at most {MAX_METADATA_BYTES}"
        )));
    }
    Ok(out)
}

/// The checks every backend shares. The local backend adds path-safety rules of its own.
fn check_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() {
        return Err(StorageError::other("an object key may not be empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(StorageError::other(format!(
            "object key is {} bytes; the limit is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

/// Characters left as they are in a URL path segment: RFC 3986 unreserved. Everything else in a
/// key segment (spaces, `#`, `?`, non-ASCII…) is percent-encoded.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes each `/`-separated segment of `key`, keeping the slashes.
pub(crate) fn encode_key_path(key: &str) -> String {
    key.split('/')
        .map(|segment| utf8_percent_encode(segment, PATH_SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

fn join_public_url(base: &str, key: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        encode_key_path(key.trim_start_matches('/'))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_safe_leaves_printable_ascii_alone() {
        assert_eq!(ascii_safe("1234"), "1234");
        assert_eq!(ascii_safe("Sir Robin the Brave!"), "Sir Robin the Brave!");
        assert_eq!(ascii_safe("a/b:c=d;e,f"), "a/b:c=d;e,f");
    }

    #[test]
    fn ascii_safe_percent_encodes_non_ascii_as_utf8() {
        assert_eq!(ascii_safe("Zoë the Bold"), "Zo%C3%AB the Bold");
        assert_eq!(ascii_safe("龍"), "%E9%BE%8D");
        assert!(ascii_safe("🐉 dragon").is_ascii());
    }

    #[test]
    fn ascii_safe_encodes_controls_and_percent_so_it_can_be_undone() {
        assert_eq!(ascii_safe("100%"), "100%25");
        assert_eq!(ascii_safe("a\r\nb\tc"), "a%0D%0Ab%09c");
        assert_eq!(ascii_safe("\u{7f}"), "%7F");
        for original in ["100% Zoë", "line\nbreak", "%41", "  two  spaces  ", "plain"] {
            assert_eq!(decode_ascii_safe(&ascii_safe(original)), original);
        }
    }

    #[test]
    fn ascii_safe_encodes_spaces_that_http_would_trim_or_collapse() {
        assert_eq!(ascii_safe(" lead"), "%20lead");
        assert_eq!(ascii_safe("trail "), "trail%20");
        assert_eq!(ascii_safe("a  b"), "a%20%20b");
        assert_eq!(ascii_safe("a b c"), "a b c");
        assert_eq!(ascii_safe(" "), "%20");
    }

    #[test]
    fn metadata_names_are_checked_and_lower_cased_and_values_encoded() {
        let m = safe_metadata(&[("Uploader-ID", "1234"), ("character-name", "Zoë")]).unwrap();
        assert_eq!(m.get("uploader-id").map(String::as_str), Some("1234"));
        assert_eq!(
            m.get("character-name").map(String::as_str),
            Some("Zo%C3%AB")
        );
        assert!(safe_metadata(&[("bad name", "x")]).is_err());
        assert!(safe_metadata(&[("", "x")]).is_err());
    }

    #[test]
    fn metadata_over_eight_kib_is_refused_with_a_clear_error() {
        let big = "x".repeat(MAX_METADATA_BYTES);
        let err = safe_metadata(&[("note", &big)]).unwrap_err();
        assert_eq!(err.kind(), "other");
        assert!(err.to_string().contains("8192"), "{err}");
        // Encoding counts: 3000 'ë' are 6000 bytes of UTF-8 but 18000 once encoded.
        let accents = "ë".repeat(3000);
        assert!(safe_metadata(&[("note", &accents)]).is_err());
        assert!(safe_metadata(&[("note", &"y".repeat(8000))]).is_ok());
    }

    #[test]
    fn debug_of_r2_settings_does_not_show_the_secret() {
        let settings = R2Settings {
            endpoint: "https://acct.r2.cloudflarestorage.com".into(),
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI-super-secret"),
            bucket: "portraits".into(),
            public_url: "https://img.example.com".into(),
        };
        let debug = format!("{settings:?}");
        assert!(!debug.contains("wJalrXUtnFEMI"), "{debug}");
        assert!(debug.contains("portraits"));
        let alt = format!("{settings:#?}");
        assert!(!alt.contains("wJalrXUtnFEMI"), "{alt}");
    }

    #[test]
    fn public_urls_join_base_and_key_and_encode_only_what_needs_it() {
        assert_eq!(
            join_public_url(
                "https://img.example.com/",
                "dev/portraits/2026/11/0123456789abcdef_zoe-the-bold.png"
            ),
            "https://img.example.com/dev/portraits/2026/11/0123456789abcdef_zoe-the-bold.png"
        );
        assert_eq!(
            join_public_url("http://localhost:9091/objects", "a b/Zoë#1?.png"),
            "http://localhost:9091/objects/a%20b/Zo%C3%AB%231%3F.png"
        );
    }

    #[test]
    fn a_stored_object_debugs_as_its_length_not_its_bytes() {
        let object = StoredObject {
            bytes: Bytes::from(vec![7u8; 4096]),
            info: ObjectInfo {
                size: 4096,
                content_type: Some("image/png".into()),
                cache_control: None,
                metadata: BTreeMap::new(),
                last_modified: None,
            },
        };
        let debug = format!("{object:?}");
        assert!(debug.contains("<4096 bytes>"), "{debug}");
        assert!(debug.len() < 300, "{debug}");
    }

    #[test]
    fn error_kinds_are_stable_metric_labels() {
        let errors = [
            StorageError::NotFound { key: "k".into() },
            StorageError::AccessDenied {
                message: "m".into(),
            },
            StorageError::BucketMissing {
                bucket: "b".into(),
                message: "m".into(),
            },
            StorageError::Transient {
                message: "m".into(),
            },
            StorageError::other("m"),
        ];
        let kinds: Vec<_> = errors.iter().map(StorageError::kind).collect();
        assert_eq!(
            kinds,
            [
                "not_found",
                "access_denied",
                "bucket_missing",
                "transient",
                "other"
            ]
        );
        assert!(errors[3].is_transient());
        assert!(!errors[0].is_transient());
    }
}
