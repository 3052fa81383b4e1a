//! The one ingest path every entry point uses: fetch → inspect → decode check → sanitize →
//! key → store → record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, OwnedMutexGuard, Semaphore};

use super::inspect::{self, ImageFormat, ImageInfo, InspectLimits, Rejection, Thumbnail};
use super::key::portrait_key;
use super::sanitize::{self, SanitizeError};
use crate::db::{
    Character, Db, DbError, NewFallback, NewPortrait, PendingPortrait, PortraitRecord,
};
use crate::fetch::{FetchError, Fetcher};
use crate::metrics::Metrics;
use crate::moderation::history::{self, Action, Actor};
use crate::storage::{StorageError, Store};
use crate::units::human_bytes;

/// How many times a transient download failure is retried before giving up.
const FETCH_RETRIES: u32 = 2;
/// Longest wait honoured from a 429's retry-after before giving up on this attempt.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Where an upload came from; recorded with the portrait and shown in the object metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortraitSource {
    SlashCommand,
    RegistrationMessage,
    /// A File Upload in one of the bot's forms (modals).
    Form,
    Migration,
    Cli,
}

impl PortraitSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PortraitSource::SlashCommand => "slash_command",
            PortraitSource::RegistrationMessage => "registration_message",
            PortraitSource::Form => "form",
            PortraitSource::Migration => "migration",
            PortraitSource::Cli => "cli",
        }
    }
}

/// The image to ingest.
#[derive(Debug, Clone)]
pub enum Upload {
    /// Downloaded through the bounded fetcher. `declared_size` (e.g. Discord's attachment
    /// size) lets an oversized file be refused before any download.
    Url {
        url: String,
        declared_size: Option<u64>,
    },
    /// Bytes already in hand (the CLI).
    Bytes(Bytes),
}

/// Who uploaded what, and for which character.
#[derive(Debug, Clone, Copy)]
pub struct IngestRequest<'a> {
    pub character: &'a Character,
    pub uploader_id: u64,
    pub source: PortraitSource,
    /// The URL this portrait replaces (migration keeps the Discord CDN link).
    pub legacy_url: Option<&'a str>,
    /// The migration run doing this, recorded with the change for rollback.
    pub migration_run: Option<i64>,
}

/// A portrait stored and shown on its character.
#[derive(Debug, Clone)]
pub struct StoredPortrait {
    pub record: PortraitRecord,
    pub character: Character,
    pub format: ImageFormat,
    /// Metadata removed for privacy (e.g. "EXIF", "XMP").
    pub removed_metadata: Vec<&'static str>,
    /// The object was already in the bucket (same bytes, same name): nothing was written.
    pub already_stored: bool,
}

/// A portrait stored and waiting for a moderator's approval; its character still shows what it
/// showed before.
#[derive(Debug, Clone)]
pub struct PendingUpload {
    pub record: PortraitRecord,
    pub pending: PendingPortrait,
    /// The upload that waited for the same character before, replaced by this one (its
    /// portrait is already released).
    pub replaced: Option<PendingPortrait>,
    pub format: ImageFormat,
    pub removed_metadata: Vec<&'static str>,
}

/// An upload that passed every check, about to be stored.
struct Checked {
    bytes: Bytes,
    info: ImageInfo,
    removed_metadata: Vec<&'static str>,
}

/// A checked upload's object, in the store.
struct StoredObject {
    key: String,
    public_url: String,
    sha256: String,
    /// The object was already in the bucket (same bytes, same name): nothing was written.
    already_stored: bool,
    /// Held until the object's row is written: see [`ContentLocks`].
    _same_content: OwnedMutexGuard<()>,
}

/// How many locks [`ContentLocks`] spreads contents over.
const CONTENT_LOCK_STRIPES: usize = 64;

/// Makes the storing and recording of identical bytes take turns within this process, so the
/// same image arriving twice at once (two players, or two links with the same bytes in one
/// migration) is stored once: the second waits until the first one's row is written, then
/// finds it and shares its object. Striped by the content hash rather than one lock per hash,
/// so memory stays fixed; two different images rarely share a stripe, and then only wait for
/// each other's store and record, never their download or decode.
#[derive(Debug)]
struct ContentLocks(Vec<Arc<Mutex<()>>>);

impl ContentLocks {
    fn new() -> Self {
        Self(
            (0..CONTENT_LOCK_STRIPES)
                .map(|_| Arc::new(Mutex::new(())))
                .collect(),
        )
    }

    async fn lock(&self, sha256: &[u8]) -> OwnedMutexGuard<()> {
        let stripe = usize::from(sha256.first().copied().unwrap_or(0)) % self.0.len();
        Arc::clone(&self.0[stripe]).lock_owned().await
    }
}

impl StoredObject {
    fn new_portrait<'a>(
        &'a self,
        checked: &'a Checked,
        request: &'a IngestRequest<'_>,
    ) -> NewPortrait<'a> {
        NewPortrait {
            storage_key: &self.key,
            public_url: &self.public_url,
            sha256: &self.sha256,
            size_bytes: checked.bytes.len() as u64,
            content_type: checked.info.format.mime_type(),
            width: checked.info.width,
            height: checked.info.height,
            uploader_id: request.uploader_id,
            source: request.source.as_str(),
            legacy_url: request.legacy_url,
        }
    }

    /// The bytes to write again should the reused object vanish; `None` when we wrote it.
    fn reused<'a>(&self, checked: &'a Checked) -> Option<(&'a Bytes, &'a ImageInfo)> {
        self.already_stored
            .then_some((&checked.bytes, &checked.info))
    }
}

/// Why an upload did not become the character's portrait.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The file is not an acceptable portrait: the player's to fix.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The download failed. Gone links, oversized files and disallowed hosts are the
    /// player's to fix; timeouts and server errors are ours.
    #[error("could not download the image: {0}")]
    Download(#[source] FetchError),
    #[error("could not clean the image's metadata: {0}")]
    Sanitize(#[source] SanitizeError),
    #[error("could not store the portrait: {0}")]
    Storage(#[source] StorageError),
    #[error("could not record the portrait: {0}")]
    Database(#[source] DbError),
    #[error("the image check stopped unexpectedly: {0}")]
    Worker(String),
    /// Moderation: the picture is on the server's block-list.
    #[error(transparent)]
    Blocked(#[from] crate::moderation::blocklist::Blocked),
}

impl IngestError {
    /// True when the player can fix it (another file, a fresh upload); false for our faults.
    pub fn is_players_to_fix(&self) -> bool {
        match self {
            IngestError::Rejected(_) | IngestError::Sanitize(_) | IngestError::Blocked(_) => true,
            IngestError::Download(err) => !err.is_transient(),
            IngestError::Database(DbError::CharacterNotFound) => true,
            IngestError::Storage(_) | IngestError::Database(_) | IngestError::Worker(_) => false,
        }
    }

    /// A short label for metrics and the fallback record.
    pub fn kind(&self) -> &'static str {
        match self {
            IngestError::Rejected(rejection) => rejection.reason(),
            IngestError::Download(err) => err.kind(),
            IngestError::Sanitize(_) => "corrupt",
            IngestError::Storage(err) => err.kind(),
            IngestError::Database(_) => "database",
            IngestError::Worker(_) => "worker",
            IngestError::Blocked(_) => "blocked",
        }
    }

    /// What to tell the player, in a sentence or two.
    pub fn player_message(&self) -> String {
        match self {
            IngestError::Rejected(rejection) => rejection.to_string(),
            IngestError::Blocked(blocked) => blocked.to_string(),
            IngestError::Download(err) if err.is_gone() => {
                "The upload link has expired or the file was deleted. Please upload the image again."
                    .to_owned()
            }
            IngestError::Download(FetchError::TooLarge { max_bytes, .. }) => format!(
                "The file is larger than the {} limit. Please upload a smaller image.",
                human_bytes(*max_bytes)
            ),
            IngestError::Download(FetchError::OriginNotAllowed { .. })
            | IngestError::Download(FetchError::RedirectNotAllowed { .. }) => {
                "That link is not a Discord upload. Please attach the image to your message."
                    .to_owned()
            }
            IngestError::Download(err) if !err.is_transient() => format!(
                "The image could not be downloaded ({err}). Please upload it again."
            ),
            IngestError::Sanitize(_) => "The image seems to be damaged or incomplete. \
                 Please export it again and re-upload it."
                .to_owned(),
            IngestError::Database(DbError::CharacterNotFound) => {
                "That character was deleted while the portrait was uploading.".to_owned()
            }
            _ => "Portrait storage is having trouble right now. Please try again in a few minutes."
                .to_owned(),
        }
    }
}

/// A portrait to attach to a message instead of linking it, because Discord could not fetch
/// its URL (a loopback host, as on the laptop defaults).
#[derive(Debug, Clone)]
pub struct InlineImage {
    pub filename: String,
    pub bytes: Bytes,
}

/// The result of [`PortraitService::ingest_or_default`] (a [`StoredPortrait`]), or of
/// [`PortraitService::ingest_pending_or_default`] (a [`PendingUpload`]).
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "clippy sizes the generic `T` as 0 bytes; both stored kinds are about as large as the fallback"
)]
pub enum PortraitOutcome<T = StoredPortrait> {
    Stored(T),
    /// Our fault: nothing changed on the character. `shown_url` is what it shows now (its
    /// existing portrait, or the default), and `reason` says why the upload did not land.
    Fallback {
        character: Character,
        shown_url: String,
        kept_existing: bool,
        reason: String,
        error_kind: &'static str,
    },
}

/// Settings the service needs, resolved from configuration by the caller.
#[derive(Debug, Clone)]
pub struct PortraitServiceSettings {
    pub key_prefix: String,
    pub default_portrait_url: String,
    pub limits: InspectLimits,
    pub ingest_concurrency: usize,
    pub decode_concurrency: usize,
}

/// Ingests uploads and manages which portrait each character shows.
#[derive(Debug, Clone)]
pub struct PortraitService {
    db: Db,
    store: Arc<Store>,
    fetcher: Fetcher,
    metrics: Metrics,
    settings: PortraitServiceSettings,
    /// Bounds memory: each ingest holds up to two copies of an upload (original and
    /// sanitized). Callers wait here, after they have answered Discord.
    ingest_slots: Arc<Semaphore>,
    /// Bounds CPU and decoder memory: decoding is the expensive part.
    decode_slots: Arc<Semaphore>,
    content_locks: Arc<ContentLocks>,
}

impl PortraitService {
    pub fn new(
        db: Db,
        store: Arc<Store>,
        fetcher: Fetcher,
        metrics: Metrics,
        settings: PortraitServiceSettings,
    ) -> Self {
        Self {
            ingest_slots: Arc::new(Semaphore::new(settings.ingest_concurrency.max(1))),
            decode_slots: Arc::new(Semaphore::new(settings.decode_concurrency.max(1))),
            content_locks: Arc::new(ContentLocks::new()),
            db,
            store,
            fetcher,
            metrics,
            settings,
        }
    }

    pub fn default_portrait_url(&self) -> &str {
        &self.settings.default_portrait_url
    }

    /// The application's metrics, for services built on this one.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn limits(&self) -> &InspectLimits {
        &self.settings.limits
    }

    /// What a character's embed shows.
    pub fn shown_url(&self, character: &Character) -> String {
        character
            .portrait_url
            .clone()
            .unwrap_or_else(|| self.settings.default_portrait_url.clone())
    }

    /// The image itself, when the character's portrait URL is on a loopback host that
    /// Discord's servers cannot reach; `None` when the URL works as a link (or the bytes
    /// cannot be read, in which case the link is the best we can do).
    pub async fn inline_image(&self, character: &Character) -> Option<InlineImage> {
        if !is_loopback_url(&self.shown_url(character)) {
            return None;
        }
        let Some(portrait_id) = character.portrait_id else {
            return character.portrait_url.is_none().then(|| InlineImage {
                filename: "default-portrait.png".to_owned(),
                bytes: Bytes::from_static(super::DEFAULT_PORTRAIT_PNG),
            });
        };
        let record = match self.db.portrait_by_id(portrait_id).await {
            Ok(Some(record)) => record,
            Ok(None) => return None,
            Err(err) => {
                tracing::warn!(portrait_id, error = %err, "could not look up a portrait to attach");
                return None;
            }
        };
        self.read_inline(&record).await
    }

    /// [`inline_image`](Self::inline_image) for a stored portrait no character shows yet (an
    /// upload waiting for approval).
    pub async fn inline_portrait(&self, record: &PortraitRecord) -> Option<InlineImage> {
        if !is_loopback_url(&record.public_url) {
            return None;
        }
        self.read_inline(record).await
    }

    async fn read_inline(&self, record: &PortraitRecord) -> Option<InlineImage> {
        match self.store.get(&record.storage_key).await {
            Ok(object) => Some(InlineImage {
                filename: format!(
                    "portrait.{}",
                    record.storage_key.rsplit('.').next().unwrap_or("png")
                ),
                bytes: object.bytes,
            }),
            Err(err) => {
                tracing::warn!(key = %record.storage_key, error = %err, "could not read a portrait to attach");
                None
            }
        }
    }

    /// Runs the whole pipeline and makes the result the character's portrait. Any error
    /// leaves the character exactly as it was.
    pub async fn ingest(
        &self,
        upload: Upload,
        request: &IngestRequest<'_>,
    ) -> Result<StoredPortrait, IngestError> {
        self.in_slot(async {
            let checked = self.check(upload, request).await?;
            self.store_and_record(checked, request).await
        })
        .await
    }

    /// Runs the whole pipeline and stores the result as the character's upload waiting for a
    /// moderator's approval, replacing the one that waited before (whose portrait is released).
    /// The character keeps showing what it shows.
    pub async fn ingest_pending(
        &self,
        upload: Upload,
        request: &IngestRequest<'_>,
    ) -> Result<PendingUpload, IngestError> {
        self.in_slot(async {
            let checked = self.check(upload, request).await?;
            self.store_pending(checked, request).await
        })
        .await
    }

    /// Runs one ingest in an ingest slot, counting the files refused.
    async fn in_slot<T>(
        &self,
        ingest: impl std::future::Future<Output = Result<T, IngestError>>,
    ) -> Result<T, IngestError> {
        let _slot = self
            .ingest_slots
            .acquire()
            .await
            .map_err(|_| IngestError::Worker("the ingest queue was closed".into()))?;
        let result = ingest.await;
        if let Err(IngestError::Rejected(rejection)) = &result {
            self.metrics
                .validation_rejections_total
                .with_label_values(&[rejection.reason()])
                .inc();
        }
        result
    }

    /// Everything before storing: download, header check, decode check, metadata removal,
    /// and the server's block-list.
    async fn check(
        &self,
        upload: Upload,
        request: &IngestRequest<'_>,
    ) -> Result<Checked, IngestError> {
        let limits = self.settings.limits;
        let bytes = match upload {
            Upload::Bytes(bytes) => bytes,
            Upload::Url { url, declared_size } => {
                if let Some(size) = declared_size.filter(|size| *size > limits.max_bytes) {
                    return Err(Rejection::TooLarge {
                        size,
                        max: limits.max_bytes,
                    }
                    .into());
                }
                let started = Instant::now();
                let fetched = self.fetch_with_retry(&url).await;
                self.observe_stage("fetch", started);
                fetched?
            }
        };

        let started = Instant::now();
        let info = inspect::inspect_header(&bytes, &limits)?;
        self.observe_stage("inspect", started);

        let started = Instant::now();
        let (sanitized, thumbnail) = {
            let _decode_slot = self
                .decode_slots
                .acquire()
                .await
                .map_err(|_| IngestError::Worker("the decode queue was closed".into()))?;
            let original = bytes.clone();
            tokio::task::spawn_blocking(move || -> Result<_, IngestError> {
                let thumbnail = inspect::verify_decodes(&original, &info, &limits)?;
                let sanitized = sanitize::strip_metadata(original, info.format)
                    .map_err(IngestError::Sanitize)?;
                // What we store must still be the same image the checks passed.
                let after = inspect::inspect_header(&sanitized.bytes, &limits)?;
                if (after.format, after.width, after.height)
                    != (info.format, info.width, info.height)
                {
                    return Err(IngestError::Worker(
                        "metadata removal changed the image header".into(),
                    ));
                }
                Ok((sanitized, thumbnail))
            })
            .await
            .map_err(|err| IngestError::Worker(err.to_string()))??
        };
        drop(bytes);
        self.observe_stage("check", started);
        // Moderation: a picture this server's moderators removed is refused before storing.
        let guild_id = request.character.guild_id;
        crate::moderation::blocklist::check(&self.db, &self.metrics, guild_id, &thumbnail).await?;
        Ok(Checked {
            bytes: sanitized.bytes,
            info,
            removed_metadata: sanitized.removed,
        })
    }

    /// Writes the checked image to the store (once per content: the same bytes stored before
    /// are reused) and describes it for its database row, which the caller writes before it
    /// drops the result.
    async fn store_object(
        &self,
        checked: &Checked,
        request: &IngestRequest<'_>,
    ) -> Result<StoredObject, IngestError> {
        let Checked { bytes, info, .. } = checked;
        let digest = Sha256::digest(bytes);
        let same_content = self.content_locks.lock(&digest).await;
        let sha256 = hex::encode(digest);
        // The same bytes are stored once: when another character already has them (six
        // characters imported with one shared link), its object and row are shared, under the
        // key of whoever stored them first.
        let existing = self
            .db
            .portrait_by_sha256(&sha256, &format!("{}/", self.key_prefix()))
            .await
            .map_err(IngestError::Database)?;
        let key = match &existing {
            Some(existing) => existing.storage_key.clone(),
            None => portrait_key(
                &self.settings.key_prefix,
                chrono::Utc::now(),
                &sha256,
                &request.character.name,
                info.format,
            ),
        };

        let started = Instant::now();
        // Same bytes and name give the same key: skip the write (R2 allows one write per
        // second per key, and re-runs should cost nothing).
        let already_stored = match self.store.head(&key).await {
            Ok(Some(existing)) => existing.size == bytes.len() as u64,
            Ok(None) => false,
            Err(err) => return Err(self.storage_failed(err)),
        };
        if !already_stored {
            self.put_object(&key, bytes, info, request).await?;
        }
        self.observe_stage("store", started);
        Ok(StoredObject {
            public_url: self.store.public_url(&key),
            key,
            sha256,
            already_stored,
            _same_content: same_content,
        })
    }

    async fn store_and_record(
        &self,
        checked: Checked,
        request: &IngestRequest<'_>,
    ) -> Result<StoredPortrait, IngestError> {
        let object = self.store_object(&checked, request).await?;
        let started = Instant::now();
        let new = object.new_portrait(&checked, request);
        let (record, character) = self
            .attach_and_release(&new, request, object.reused(&checked))
            .await?;
        self.observe_stage("record", started);
        // Moderation: every portrait change goes into the character's history.
        history::record_ingest(&self.db, &character, request).await;

        Ok(StoredPortrait {
            record,
            character,
            format: checked.info.format,
            removed_metadata: checked.removed_metadata,
            already_stored: object.already_stored,
        })
    }

    async fn store_pending(
        &self,
        checked: Checked,
        request: &IngestRequest<'_>,
    ) -> Result<PendingUpload, IngestError> {
        let object = self.store_object(&checked, request).await?;
        let started = Instant::now();
        let new = object.new_portrait(&checked, request);
        let submitted = self
            .db
            .submit_pending_portrait(request.character.id, &new)
            .await
            .map_err(IngestError::Database)?;
        if let Some((bytes, info)) = object.reused(&checked) {
            self.ensure_reused_object(new.storage_key, bytes, info, request)
                .await?;
        }
        if let Some(replaced) = &submitted.replaced {
            self.release_portrait(replaced.portrait_id).await;
        }
        self.observe_stage("record", started);
        Ok(PendingUpload {
            record: submitted.portrait,
            pending: submitted.pending,
            replaced: submitted.replaced,
            format: checked.info.format,
            removed_metadata: checked.removed_metadata,
        })
    }

    /// Makes an already stored portrait (another character's) this character's too, without
    /// downloading or writing anything: how a migration shares one link's object among every
    /// character that had the link.
    pub async fn share_portrait(
        &self,
        record: &PortraitRecord,
        request: &IngestRequest<'_>,
    ) -> Result<PortraitRecord, IngestError> {
        let new = NewPortrait {
            storage_key: &record.storage_key,
            public_url: &record.public_url,
            sha256: &record.sha256,
            size_bytes: record.size_bytes,
            content_type: &record.content_type,
            width: record.width,
            height: record.height,
            uploader_id: record.uploader_id,
            source: &record.source,
            legacy_url: request.legacy_url,
        };
        let (record, character) = self.attach_and_release(&new, request, None).await?;
        history::record_ingest(&self.db, &character, request).await;
        if !self
            .store
            .exists(&record.storage_key)
            .await
            .map_err(|err| self.storage_failed(err))?
        {
            // Released by someone else between the two steps: nothing to share any more. The
            // character keeps the row; the caller ingests again, which writes the object.
            return Err(IngestError::Storage(StorageError::NotFound {
                key: record.storage_key,
            }));
        }
        Ok(record)
    }

    /// Records `new` as the character's portrait, then releases the portrait it replaced (the
    /// one the row held at that moment, read in the same transaction). With `reused` (the
    /// object was found in the bucket rather than written), makes sure it is still there.
    async fn attach_and_release(
        &self,
        new: &NewPortrait<'_>,
        request: &IngestRequest<'_>,
        reused: Option<(&Bytes, &ImageInfo)>,
    ) -> Result<(PortraitRecord, Character), IngestError> {
        let attached = self
            .db
            .replace_portrait(request.character.id, new, request.migration_run)
            .await
            .map_err(IngestError::Database)?;
        if let Some((bytes, info)) = reused {
            self.ensure_reused_object(new.storage_key, bytes, info, request)
                .await?;
        }
        if let Some(previous) = attached.previous_portrait_id {
            self.release_portrait(previous).await;
        }
        Ok((attached.portrait, attached.character))
    }

    /// Orphan cleanup may have deleted an object we found in the bucket between our check and
    /// the row that now references it; if so, writes it again.
    async fn ensure_reused_object(
        &self,
        key: &str,
        bytes: &Bytes,
        info: &ImageInfo,
        request: &IngestRequest<'_>,
    ) -> Result<(), IngestError> {
        match self.store.exists(key).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(%key, "a reused object vanished before its row was written; storing it again");
                self.put_object(key, bytes, info, request).await?;
            }
            Err(err) => {
                tracing::warn!(%key, error = %err, "could not re-check a reused object")
            }
        }
        Ok(())
    }

    fn key_prefix(&self) -> &str {
        self.settings.key_prefix.trim_end_matches('/')
    }

    /// Writes the object with its headers and metadata, and counts it.
    async fn put_object(
        &self,
        key: &str,
        bytes: &Bytes,
        info: &ImageInfo,
        request: &IngestRequest<'_>,
    ) -> Result<(), IngestError> {
        let uploader = request.uploader_id.to_string();
        let metadata = [
            ("uploader-id", uploader.as_str()),
            ("character-name", request.character.name.as_str()),
            ("source", request.source.as_str()),
        ];
        let started = Instant::now();
        self.store
            .put(key, bytes.clone(), info.format.mime_type(), &metadata)
            .await
            .map_err(|err| self.storage_failed(err))?;
        self.metrics
            .upload_latency_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.uploads_total.inc();
        self.metrics.upload_size_bytes.observe(bytes.len() as f64);
        Ok(())
    }

    /// [`ingest`](Self::ingest) with the fallback policy: the player's mistakes come back as
    /// errors to show them; our faults (storage, network, database) are counted, recorded,
    /// and answered with what the character shows now — its existing portrait if it had one,
    /// else the default — and the reason.
    pub async fn ingest_or_default(
        &self,
        upload: Upload,
        request: &IngestRequest<'_>,
    ) -> Result<PortraitOutcome, IngestError> {
        let result = self.ingest(upload, request).await;
        self.or_default(result, request).await
    }

    /// [`ingest_pending`](Self::ingest_pending) with the same fallback policy.
    pub async fn ingest_pending_or_default(
        &self,
        upload: Upload,
        request: &IngestRequest<'_>,
    ) -> Result<PortraitOutcome<PendingUpload>, IngestError> {
        let result = self.ingest_pending(upload, request).await;
        self.or_default(result, request).await
    }

    async fn or_default<T>(
        &self,
        result: Result<T, IngestError>,
        request: &IngestRequest<'_>,
    ) -> Result<PortraitOutcome<T>, IngestError> {
        match result {
            Ok(stored) => Ok(PortraitOutcome::Stored(stored)),
            Err(err) if err.is_players_to_fix() => Err(err),
            Err(err) => {
                let error_kind = err.kind();
                let reason = err.to_string();
                tracing::warn!(
                    character_id = request.character.id,
                    error_kind,
                    error = %reason,
                    "portrait upload failed on our side; keeping the current portrait"
                );
                self.metrics
                    .fallbacks_total
                    .with_label_values(&[error_kind])
                    .inc();
                let record = self
                    .db
                    .record_fallback(&NewFallback {
                        guild_id: request.character.guild_id,
                        owner_id: request.character.owner_id,
                        character_id: Some(request.character.id),
                        error_kind,
                        reason: &reason,
                    })
                    .await;
                if let Err(db_err) = record {
                    tracing::error!(error = %db_err, "could not record a portrait fallback");
                }
                Ok(PortraitOutcome::Fallback {
                    character: request.character.clone(),
                    shown_url: self.shown_url(request.character),
                    kept_existing: request.character.portrait_url.is_some(),
                    reason: err.player_message(),
                    error_kind,
                })
            }
        }
    }

    /// Puts a character back on the default portrait, deleting its old object when no other
    /// character shows it; the history records `by`'s reset with the image it stopped showing.
    pub async fn reset_portrait(
        &self,
        character_id: i64,
        by: Actor,
    ) -> Result<Option<Character>, DbError> {
        let Some(before) = self.db.clear_character_portrait(character_id).await? else {
            return Ok(None);
        };
        if let Some(previous) = before.portrait_id {
            self.release_portrait(previous).await;
        }
        if let Some(url) = before.portrait_url.as_deref() {
            history::record_logged(&self.db, &before, by, Action::Reset, Some(url)).await;
        }
        self.db.character_by_id(character_id).await
    }

    /// The [`Thumbnail`] of an image we already store, made by the same bounded decode check
    /// as an upload's, behind the same decode semaphore: what the block-list hashes when a
    /// moderator removes a portrait.
    pub async fn thumbnail_of(&self, bytes: Bytes) -> Result<Thumbnail, IngestError> {
        let limits = self.settings.limits;
        let _decode_slot = self
            .decode_slots
            .acquire()
            .await
            .map_err(|_| IngestError::Worker("the decode queue was closed".into()))?;
        tokio::task::spawn_blocking(move || inspect::inspect_with_thumbnail(&bytes, &limits))
            .await
            .map_err(|err| IngestError::Worker(err.to_string()))?
            .map(|(_, thumbnail)| thumbnail)
            .map_err(IngestError::Rejected)
    }

    /// Deletes a character, releasing the upload it had waiting for approval (its object goes
    /// when nothing else uses it). Every way of deleting a character goes through here; the
    /// portrait the character showed is returned in the character for the caller to release.
    pub async fn delete_character(&self, id: i64) -> Result<Option<Character>, DbError> {
        let Some((character, pending)) = self.db.delete_character_and_pending(id).await? else {
            return Ok(None);
        };
        if let Some(portrait_id) = pending {
            self.release_portrait(portrait_id).await;
        }
        Ok(Some(character))
    }

    /// Deletes a portrait's row and object once no character shows it. Failures are logged,
    /// not raised: the caller's change already happened, and an object left behind is found
    /// by orphan cleanup.
    pub async fn release_portrait(&self, portrait_id: i64) {
        match self.db.delete_portrait_if_unreferenced(portrait_id).await {
            Ok(Some(record)) => {
                if let Err(err) = self.store.delete(&record.storage_key).await {
                    tracing::warn!(key = %record.storage_key, error = %err,
                        "could not delete an unreferenced portrait object; orphan cleanup will find it");
                }
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(portrait_id, error = %err, "could not release a portrait"),
        }
    }

    async fn fetch_with_retry(&self, url: &str) -> Result<Bytes, IngestError> {
        let mut attempt = 0;
        loop {
            match self
                .fetcher
                .fetch(url, self.settings.limits.max_bytes)
                .await
            {
                Ok(fetched) => return Ok(fetched.bytes),
                Err(FetchError::TooLarge { declared, .. }) => {
                    return Err(Rejection::TooLarge {
                        size: declared.unwrap_or(self.settings.limits.max_bytes + 1),
                        max: self.settings.limits.max_bytes,
                    }
                    .into())
                }
                Err(err) if err.is_transient() && attempt < FETCH_RETRIES => {
                    attempt += 1;
                    let backoff = Duration::from_millis(250 * 2u64.pow(attempt));
                    let wait = err.retry_after().unwrap_or(backoff).min(MAX_RETRY_AFTER);
                    tracing::debug!(attempt, ?wait, error = %err, "retrying a download");
                    tokio::time::sleep(wait).await;
                }
                Err(err) => return Err(IngestError::Download(err)),
            }
        }
    }

    fn storage_failed(&self, err: StorageError) -> IngestError {
        self.metrics
            .upload_errors_total
            .with_label_values(&[err.kind()])
            .inc();
        IngestError::Storage(err)
    }

    fn observe_stage(&self, stage: &str, started: Instant) {
        self.metrics
            .ingest_stage_seconds
            .with_label_values(&[stage])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// `localhost`, `127.0.0.0/8` or `[::1]`: addresses only this machine can open.
fn is_loopback_url(url: &str) -> bool {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.is_unspecified(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_urls_on_this_machine_count_as_loopback() {
        assert!(is_loopback_url("http://localhost:9091/objects/a.png"));
        assert!(is_loopback_url(
            "http://127.0.0.1:9091/default-portrait.png"
        ));
        assert!(is_loopback_url("http://[::1]:9091/x"));
        assert!(!is_loopback_url("https://portraits.example.com/dev/a.png"));
        assert!(!is_loopback_url(
            "https://cdn.discordapp.com/attachments/1/2/a.png"
        ));
        assert!(!is_loopback_url("not a url"));
    }
}
