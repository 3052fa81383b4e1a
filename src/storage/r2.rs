//! The R2 backend: aws-sdk-s3 against Cloudflare R2 or any S3-compatible endpoint.
//!
//! Configured by hand (no aws-config crate): static credentials, region `auto`, path-style
//! addressing, checksums only when an operation requires them (newer SDK defaults send CRC32
//! headers R2 has rejected), standard retries with backoff and short timeouts so an unreachable
//! endpoint fails in seconds.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, MetadataDirective, ObjectIdentifier};
use aws_sdk_s3::Client;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use super::{
    encode_key_path, ListedObject, ObjectInfo, R2Settings, StorageError, StoredObject,
    CACHE_CONTROL,
};

/// Attempts per request, the first included. Standard retry mode retries 5xx, 429/throttling,
/// timeouts and connection errors.
const MAX_ATTEMPTS: u32 = 4;
/// Base of the jittered exponential backoff: retries wait up to 0.2 s, 0.4 s, 0.8 s, so a
/// refused connection is reported in about a second (the SDK's default base of 1 s made it 3–7 s).
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A blackholed endpoint costs at most this per attempt before the connection is given up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One attempt, including sending a 10 MiB upload on a slow link.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// The whole operation, retries and backoff included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
/// S3's largest `DeleteObjects` batch.
const DELETE_BATCH: usize = 1000;
/// Error codes with which S3-compatible servers refuse `DeleteObjects` itself (rather than the
/// deletion): its checksum header, or the operation.
const BATCH_DELETE_UNSUPPORTED: &[&str] = &[
    "NotImplemented",
    "InvalidRequest",
    "MissingContentMD5",
    "InvalidDigest",
    "BadDigest",
];

/// An R2 bucket behind an S3 client.
#[derive(Clone)]
pub struct R2Store {
    client: Client,
    bucket: String,
    /// The endpoint for messages, with any user-info stripped.
    endpoint: String,
    public_url: String,
}

impl fmt::Debug for R2Store {
    // By hand: the client's own Debug is large and says nothing an operator needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("R2Store")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// What an operation was working on, for error messages.
#[derive(Clone, Copy)]
enum Target<'a> {
    Bucket,
    Object(&'a str),
}

impl R2Store {
    /// Builds the client. No request is made; [`Store::ping`](super::Store::ping) checks the
    /// settings against the server.
    pub fn new(settings: R2Settings) -> Result<Self, StorageError> {
        let R2Settings {
            endpoint,
            access_key_id,
            secret_access_key,
            bucket,
            public_url,
        } = settings;
        let endpoint = endpoint.trim().trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&endpoint).map_err(|e| {
            StorageError::other(format!(
                "R2_ENDPOINT `{}` is not a URL ({e}): expected https://ACCOUNT_ID.r2.cloudflarestorage.com",
                redact_url(&endpoint)
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(StorageError::other(format!(
                "R2_ENDPOINT `{}` must be an http(s) URL: expected https://ACCOUNT_ID.r2.cloudflarestorage.com",
                redact_url(&endpoint)
            )));
        }
        if bucket.trim().is_empty() {
            return Err(StorageError::other("R2_BUCKET_NAME is empty"));
        }
        if access_key_id.trim().is_empty() || secret_access_key.is_empty() {
            return Err(StorageError::other(
                "R2_ACCESS_KEY_ID or R2_SECRET_ACCESS_KEY is empty",
            ));
        }

        let credentials = Credentials::new(
            access_key_id.trim(),
            secret_access_key.expose().trim(),
            None,
            None,
            "portrait-bot-static",
        );
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("auto"))
            .endpoint_url(&endpoint)
            .credentials_provider(credentials)
            // R2 works either way; S3-compatible test servers and MinIO often need path style.
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(INITIAL_BACKOFF)
                    .with_max_backoff(MAX_BACKOFF),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            )
            .build();

        Ok(Self {
            client: Client::from_conf(config),
            bucket,
            endpoint: redact_url(&endpoint),
            public_url: public_url.trim_end_matches('/').to_owned(),
        })
    }

    pub(super) fn public_base(&self) -> &str {
        &self.public_url
    }

    /// "R2 bucket `x` at https://…".
    pub fn describe(&self) -> String {
        format!("R2 bucket `{}` at {}", self.bucket, self.endpoint)
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub(super) async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        metadata: BTreeMap<String, String>,
    ) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .content_type(content_type)
            .cache_control(CACHE_CONTROL)
            .set_metadata(Some(metadata.into_iter().collect::<HashMap<_, _>>()))
            .send()
            .await
            .map_err(|e| self.map_err("upload", Target::Object(key), e))?;
        Ok(())
    }

    pub(super) async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        let out = match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return match self.map_err("look up", Target::Object(key), e) {
                    StorageError::NotFound { .. } => Ok(None),
                    other => Err(other),
                }
            }
        };
        Ok(Some(ObjectInfo {
            size: size(out.content_length()),
            content_type: out.content_type().map(str::to_owned),
            cache_control: out.cache_control().map(str::to_owned),
            metadata: metadata(out.metadata()),
            last_modified: out.last_modified().and_then(to_chrono),
        }))
    }

    pub(super) async fn get(&self, key: &str) -> Result<StoredObject, StorageError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.map_err("download", Target::Object(key), e))?;
        let info = ObjectInfo {
            size: size(out.content_length()),
            content_type: out.content_type().map(str::to_owned),
            cache_control: out.cache_control().map(str::to_owned),
            metadata: metadata(out.metadata()),
            last_modified: out.last_modified().and_then(to_chrono),
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| StorageError::Transient {
                message: format!(
                    "the download of `{key}` from {} broke off ({}): check R2_ENDPOINT and the network",
                    self.describe(),
                    error_chain(&e)
                ),
            })?
            .into_bytes();
        Ok(StoredObject { bytes, info })
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match self.map_err("delete", Target::Object(key), e) {
                // S3 answers 204 for a missing key, but some compatible servers say 404.
                StorageError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    pub(super) async fn delete_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        let mut deleted = 0u64;
        // Delete page by page as the listing goes (as `aws s3 rm --recursive` does), so memory
        // stays bounded by one page and a page is exactly one DeleteObjects batch.
        let mut token: Option<String> = None;
        loop {
            let page = self.list_page(prefix, token.take(), None).await?;
            let keys: Vec<String> = page.objects.into_iter().map(|o| o.key).collect();
            for batch in keys.chunks(DELETE_BATCH) {
                deleted += self.delete_batch(batch).await?;
            }
            match page.next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        Ok(deleted)
    }

    /// One `DeleteObjects` request (quiet mode: only failures are reported back).
    async fn delete_batch(&self, keys: &[String]) -> Result<u64, StorageError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let objects = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StorageError::other(format!("building a delete request: {e}")))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| StorageError::other(format!("building a delete request: {e}")))?;
        let out = match self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                // Newer SDKs always send a CRC32 header with DeleteObjects (the operation
                // requires a checksum, so `WhenRequired` does not drop it), and some
                // S3-compatible servers refuse that or want Content-MD5. Deleting one by one
                // still works there.
                let code = e.as_service_error().and_then(|s| s.code()).unwrap_or("");
                if BATCH_DELETE_UNSUPPORTED.contains(&code) {
                    tracing::warn!(
                        store = %self.describe(),
                        code,
                        "DeleteObjects refused; deleting {} objects one by one",
                        keys.len()
                    );
                    return self.delete_each(keys).await;
                }
                return Err(self.map_err("delete a batch of objects in", Target::Bucket, e));
            }
        };
        let failures = out.errors();
        if let Some(first) = failures.first() {
            let code = first.code().unwrap_or("unknown");
            let message = format!(
                "{} of {} objects could not be deleted from {}; the first, `{}`, failed with {code}: {}",
                failures.len(),
                keys.len(),
                self.describe(),
                first.key().unwrap_or("?"),
                first.message().unwrap_or("no message"),
            );
            return Err(match code {
                "AccessDenied" => StorageError::AccessDenied {
                    message: format!("{message}; check that the R2 token may delete objects"),
                },
                "InternalError" | "SlowDown" | "ServiceUnavailable" => {
                    StorageError::Transient { message }
                }
                _ => StorageError::Other { message },
            });
        }
        Ok(keys.len() as u64)
    }

    /// The fallback for servers without a usable `DeleteObjects`: a few deletes at a time.
    async fn delete_each(&self, keys: &[String]) -> Result<u64, StorageError> {
        futures::stream::iter(keys)
            .map(|key| self.delete(key))
            .buffer_unordered(8)
            .try_fold(0u64, |n, ()| async move { Ok(n + 1) })
            .await
    }

    pub(super) async fn list_prefix(
        &self,
        prefix: &str,
    ) -> Result<Vec<ListedObject>, StorageError> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.list_page(prefix, token.take(), None).await?;
            all.extend(page.objects);
            match page.next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        Ok(all)
    }

    /// One `ListObjectsV2` page (the server decides its size; at most 1000 on S3 and R2).
    async fn list_page(
        &self,
        prefix: &str,
        token: Option<String>,
        max_keys: Option<usize>,
    ) -> Result<Page, StorageError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_continuation_token(token.clone())
            .set_max_keys(max_keys.map(|n| i32::try_from(n.clamp(1, 1000)).unwrap_or(1000)))
            .send()
            .await
            .map_err(|e| self.map_err("list", Target::Bucket, e))?;
        let objects = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ListedObject {
                    key: o.key()?.to_owned(),
                    size: size(o.size()),
                    last_modified: o.last_modified().and_then(to_chrono),
                })
            })
            .collect();
        // Stop unless the server says there is more *and* gives a new token: a server that
        // repeats a token would otherwise loop forever.
        let next = match out.next_continuation_token() {
            Some(next) if out.is_truncated() == Some(true) && Some(next) != token.as_deref() => {
                Some(next.to_owned())
            }
            _ => None,
        };
        Ok(Page { objects, next })
    }

    /// One page of a listing: up to `max_keys` (at most 1000) objects after `token`.
    pub(super) async fn list_prefix_page(
        &self,
        prefix: &str,
        token: Option<String>,
        max_keys: usize,
    ) -> Result<super::ListPage, StorageError> {
        let page = self.list_page(prefix, token, Some(max_keys)).await?;
        Ok(super::ListPage {
            objects: page.objects,
            next: page.next,
        })
    }

    pub(super) async fn copy(&self, from_key: &str, to_key: &str) -> Result<(), StorageError> {
        // The copy source is `bucket/key`, URL-encoded (keys may hold spaces or non-ASCII).
        let source = format!("{}/{}", self.bucket, encode_key_path(from_key));
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(to_key)
            .copy_source(source)
            // COPY keeps Content-Type, Cache-Control and user metadata as they are.
            .metadata_directive(MetadataDirective::Copy)
            .send()
            .await
            .map_err(|e| self.map_err("copy", Target::Object(from_key), e))?;
        Ok(())
    }

    pub(super) async fn ping(&self) -> Result<(), StorageError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| self.map_err("check", Target::Bucket, e))?;
        Ok(())
    }

    /// Turns an SDK error into the small enum, with a message naming what to check.
    fn map_err<E>(
        &self,
        action: &str,
        target: Target<'_>,
        err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let what = match target {
            Target::Bucket => format!("bucket `{}`", self.bucket),
            Target::Object(key) => format!("`{key}` in bucket `{}`", self.bucket),
        };
        let unreachable = |why: String| StorageError::Transient {
            message: format!(
                "could not reach R2 at {} to {action} {what} ({why}): check R2_ENDPOINT / \
                 R2_ACCOUNT_ID and the network",
                self.endpoint
            ),
        };
        match &err {
            SdkError::TimeoutError(_) => {
                return unreachable(format!(
                    "timed out; limits: connect {}s, attempt {}s, operation {}s",
                    CONNECT_TIMEOUT.as_secs(),
                    ATTEMPT_TIMEOUT.as_secs(),
                    OPERATION_TIMEOUT.as_secs()
                ))
            }
            SdkError::DispatchFailure(failure) if failure.is_user() => {
                return StorageError::other(format!(
                    "could not send the request to {action} {what} to {} ({}): check R2_ENDPOINT",
                    self.endpoint,
                    error_chain(&err)
                ))
            }
            SdkError::DispatchFailure(_) => return unreachable(error_chain(&err)),
            SdkError::ResponseError(_) => {
                return unreachable(format!(
                    "the response could not be read: {}",
                    error_chain(&err)
                ))
            }
            SdkError::ConstructionFailure(_) => {
                return StorageError::other(format!(
                    "could not build the request to {action} {what}: {}",
                    error_chain(&err)
                ))
            }
            _ => {}
        }

        let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
        let service = err.as_service_error();
        let code = service.and_then(|e| e.code()).unwrap_or("").to_owned();
        let detail = service.and_then(|e| e.message()).unwrap_or("").to_owned();
        // "S3 error SignatureDoesNotMatch, HTTP 403: The request signature…"; HEAD answers
        // have no body, so there only the status is known.
        let mut summary = if code.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("S3 error {code}, HTTP {status}")
        };
        if !detail.is_empty() {
            summary.push_str(": ");
            summary.push_str(&detail);
        }

        match (code.as_str(), status) {
            ("NoSuchBucket", _) => self.bucket_missing(&summary),
            // HEAD answers carry no body, so a missing bucket is a bare 404 there.
            (_, 404) if matches!(target, Target::Bucket) => self.bucket_missing(&summary),
            ("NoSuchKey" | "NotFound", _) | (_, 404) => StorageError::NotFound {
                key: match target {
                    Target::Object(key) => key.to_owned(),
                    Target::Bucket => self.bucket.clone(),
                },
            },
            (
                "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AccessDenied"
                | "InvalidToken"
                | "ExpiredToken"
                | "Unauthorized",
                _,
            )
            | (_, 401 | 403) => StorageError::AccessDenied {
                message: format!(
                    "R2 rejected the credentials when trying to {action} {what} at {} ({summary}): \
                     check R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY and that the token may access \
                     bucket `{}`",
                    self.endpoint, self.bucket
                ),
            },
            ("SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable", _)
            | (_, 429 | 500..=599) => StorageError::Transient {
                message: format!(
                    "R2 at {} failed to {action} {what} even after {MAX_ATTEMPTS} attempts \
                     ({summary}): a temporary fault or throttling on its side; check R2_ENDPOINT / \
                     R2_ACCOUNT_ID and the network, then try again",
                    self.endpoint
                ),
            },
            _ => StorageError::Other {
                message: format!(
                    "R2 at {} refused to {action} {what} ({summary})",
                    self.endpoint
                ),
            },
        }
    }

    fn bucket_missing(&self, summary: &str) -> StorageError {
        StorageError::BucketMissing {
            bucket: self.bucket.clone(),
            message: format!(
                "bucket `{}` does not exist at {} ({summary}): check R2_BUCKET_NAME or create it",
                self.bucket, self.endpoint
            ),
        }
    }
}

struct Page {
    objects: Vec<ListedObject>,
    next: Option<String>,
}

fn size(length: Option<i64>) -> u64 {
    length.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

fn metadata(map: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    map.map(|m| {
        m.iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect()
    })
    .unwrap_or_default()
}

fn to_chrono(t: &aws_sdk_s3::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// `err` and its sources as one line ("dispatch failure: io error: … Connection refused"),
/// without the SDK's Debug dump (which `DisplayErrorContext` would append).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        // Wrappers often repeat their source's text; say it once.
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// The URL without user-info, so a `https://key:secret@host` endpoint never reaches a log.
fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if !url.username().is_empty() || url.password().is_some() {
                let _ = url.set_username("");
                let _ = url.set_password(None);
            }
            url.as_str().trim_end_matches('/').to_owned()
        }
        // Not a URL: show only what precedes any `@` so no embedded secret leaks.
        Err(_) => raw.rsplit('@').next().unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn settings(endpoint: &str) -> R2Settings {
        R2Settings {
            endpoint: endpoint.into(),
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("very-secret-value"),
            bucket: "portraits".into(),
            public_url: "https://img.example.com/".into(),
        }
    }

    #[test]
    fn describe_names_bucket_and_endpoint_but_no_credentials() {
        let store = R2Store::new(settings("https://acct.r2.cloudflarestorage.com/")).unwrap();
        assert_eq!(
            store.describe(),
            "R2 bucket `portraits` at https://acct.r2.cloudflarestorage.com"
        );
        let debug = format!("{store:?}");
        assert!(!debug.contains("very-secret-value"), "{debug}");
        assert!(!debug.contains("AKIDEXAMPLE"), "{debug}");
    }

    #[test]
    fn an_endpoint_with_user_info_is_shown_without_it() {
        let store = R2Store::new(settings("https://user:pw@acct.example.com")).unwrap();
        assert!(!store.describe().contains("pw"), "{}", store.describe());
    }

    #[test]
    fn a_malformed_endpoint_is_refused_naming_r2_endpoint() {
        let err = R2Store::new(settings("acct.r2.cloudflarestorage.com")).unwrap_err();
        assert!(err.to_string().contains("R2_ENDPOINT"), "{err}");
        let err = R2Store::new(settings("ftp://acct.example.com")).unwrap_err();
        assert!(err.to_string().contains("R2_ENDPOINT"), "{err}");
    }
}
