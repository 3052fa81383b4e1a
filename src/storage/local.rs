//! The local-folder backend, for running without R2 (a laptop, a single small server).
//!
//! Layout under the root folder:
//! - `<key>`: the object's bytes, exactly as uploaded (so the HTTP server can serve the tree);
//! - `.portrait-meta/<key>.json`: a sidecar with Content-Type, Cache-Control and metadata;
//! - `.tmp-<uuid>`: a write in progress, renamed into place when complete.
//!
//! Names starting with `.` are this store's own, so keys may not have segments that start with
//! `.`, and listings skip them. Every write goes to a temp file in the target's folder, is
//! flushed to disk, then renamed over the target: a crash leaves the old object or the new one,
//! never half of one.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ListedObject, ObjectInfo, StorageError, StoredObject, CACHE_CONTROL};

/// The hidden folder (under the root) holding the metadata sidecars.
const META_DIR: &str = ".portrait-meta";
/// Temp files are `.tmp-<uuid>` beside their target.
const TMP_PREFIX: &str = ".tmp-";

/// How long a folder must have been unchanged for a paged listing to reuse what it read of it:
/// above the coarsest modification-time tick of a common file system (FAT's 2 s).
const QUIET: std::time::Duration = std::time::Duration::from_secs(3);

/// Objects as files under a root folder.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: Arc<Path>,
    public_base_url: String,
    /// The folders a paged listing stopped in, for its next page (see [`Continuation`]).
    continuation: Arc<Mutex<Option<Continuation>>>,
}

/// Where the last page of a listing stopped: the sorted listings of the folders holding its
/// last key. A folder of 8,000 objects listed 1,000 at a time would otherwise be read and
/// sorted 8 times. Used only by the page that continues from `token` (so a fresh listing
/// always reads the disk, and a listing sees, like S3's, what was there when it reached each
/// folder), and a folder only while its modification time is unchanged and was already
/// [`QUIET`] old when it was read: file systems keep that time in coarse ticks, so a change in
/// the tick of the reading could leave it as it was.
#[derive(Debug)]
struct Continuation {
    prefix: String,
    token: String,
    folders: Vec<FolderListing>,
}

/// One folder's entries, sorted as the keys they lead to: a folder `a` by `a/`, so `a-b` comes
/// before `a/c`.
#[derive(Debug, Clone)]
struct FolderListing {
    /// The keys under this folder start with `rel`.
    rel: String,
    modified: SystemTime,
    /// Whether `modified` was [`QUIET`] old when the folder was read, so that any later change
    /// shows as a later time.
    settled: bool,
    entries: Arc<[(String, Entry)]>,
}

/// A folder entry: a sub-folder (its key ends with `/`) or an object. An object's size and
/// age are read only when a page lists it, so a page costs its own objects' `stat`s whatever
/// the size of its folder, even when the folder changed and must be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Folder,
    Object,
}

/// What S3 would keep in headers, kept beside the object as JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Sidecar {
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    cache_control: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

impl LocalStore {
    /// Opens (creating if missing) the root folder.
    pub fn new(root: PathBuf, public_base_url: String) -> Result<Self, StorageError> {
        fs::create_dir_all(&root).map_err(|e| io_error("create the folder", &root, &root, e))?;
        // Absolute, so logs and `describe` say exactly which folder is used.
        let root = root
            .canonicalize()
            .map_err(|e| io_error("open the folder", &root, &root, e))?;
        Ok(Self {
            root: root.into(),
            public_base_url: public_base_url.trim_end_matches('/').to_owned(),
            continuation: Arc::default(),
        })
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(super) fn public_base(&self) -> &str {
        &self.public_base_url
    }

    /// "local folder /…".
    pub fn describe(&self) -> String {
        format!("local folder {}", self.root.display())
    }

    /// Where the bytes of `key` live (the key must already be checked).
    fn object_path(root: &Path, key: &str) -> PathBuf {
        root.join(key)
    }

    fn sidecar_path(root: &Path, key: &str) -> PathBuf {
        root.join(META_DIR).join(format!("{key}.json"))
    }

    pub(super) async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        metadata: BTreeMap<String, String>,
    ) -> Result<(), StorageError> {
        check_key(key)?;
        let root = self.root.clone();
        let key = key.to_owned();
        let sidecar = Sidecar {
            content_type: Some(content_type.to_owned()),
            cache_control: Some(CACHE_CONTROL.to_owned()),
            metadata,
        };
        blocking(move || {
            let json = serde_json::to_vec_pretty(&sidecar)
                .map_err(|e| StorageError::other(format!("encoding metadata of `{key}`: {e}")))?;
            // Sidecar first: an object that exists always has its headers.
            let meta_path = Self::sidecar_path(&root, &key);
            write_atomic(&meta_path, &json).map_err(|e| io_error("write", &root, &meta_path, e))?;
            let path = Self::object_path(&root, &key);
            write_atomic(&path, &body).map_err(|e| {
                // Leave no orphan sidecar behind unless it belongs to an object already there.
                if !path.is_file() {
                    let _ = remove_if_present(&meta_path);
                }
                io_error("write", &root, &path, e)
            })
        })
        .await
    }

    pub(super) async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        check_key(key)?;
        let root = self.root.clone();
        let key = key.to_owned();
        blocking(move || read_info(&root, &key)).await
    }

    pub(super) async fn get(&self, key: &str) -> Result<StoredObject, StorageError> {
        check_key(key)?;
        let root = self.root.clone();
        let key = key.to_owned();
        blocking(move || {
            let path = Self::object_path(&root, &key);
            let bytes = match fs::read(&path) {
                Ok(bytes) => Bytes::from(bytes),
                Err(e) if is_absent(&e) => return Err(StorageError::NotFound { key }),
                Err(e) => return Err(io_error("read", &root, &path, e)),
            };
            // Read the headers after the bytes; the size comes from what was actually read.
            let mut info = read_info(&root, &key)?
                .ok_or_else(|| StorageError::NotFound { key: key.clone() })?;
            info.size = bytes.len() as u64;
            Ok(StoredObject { bytes, info })
        })
        .await
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), StorageError> {
        check_key(key)?;
        let root = self.root.clone();
        let key = key.to_owned();
        blocking(move || delete_one(&root, &key)).await
    }

    pub(super) async fn delete_prefix(&self, prefix: &str) -> Result<u64, StorageError> {
        let listed = self.list_prefix(prefix).await?;
        let root = self.root.clone();
        blocking(move || {
            let mut deleted = 0;
            for object in listed {
                delete_one(&root, &object.key)?;
                deleted += 1;
            }
            Ok(deleted)
        })
        .await
    }

    pub(super) async fn list_prefix(
        &self,
        prefix: &str,
    ) -> Result<Vec<ListedObject>, StorageError> {
        check_prefix(prefix)?;
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        blocking(move || list(&root, &prefix)).await
    }

    /// Up to `max_keys` objects under `prefix` with keys after `token` (the last key of the
    /// previous page), in key order. Only the folders on the way are read, so memory holds
    /// one page and the folder listings of one path, whatever the store's size.
    pub(super) async fn list_prefix_page(
        &self,
        prefix: &str,
        token: Option<String>,
        max_keys: usize,
    ) -> Result<super::ListPage, StorageError> {
        check_prefix(prefix)?;
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        let max_keys = max_keys.max(1);
        let continuation = self.continuation.clone();
        blocking(move || {
            let start_rel = start_folder(&prefix).to_owned();
            let cached = {
                let mut slot = continuation.lock().unwrap_or_else(|e| e.into_inner());
                match (slot.take(), token.as_deref()) {
                    (Some(c), Some(token)) if c.prefix == prefix && c.token == token => c.folders,
                    _ => Vec::new(),
                }
            };
            let mut page = Vec::new();
            let mut read = Vec::new();
            let walk = Walk {
                root: &root,
                prefix: &prefix,
                after: token.as_deref(),
                max: max_keys,
                cached: &cached,
            };
            walk.dir(
                &root.join(&start_rel),
                &start_rel,
                &mut page,
                Some(&mut read),
            )?;
            let next = (page.len() >= max_keys)
                .then(|| page.last().map(|o: &ListedObject| o.key.clone()))
                .flatten();
            if let Some(next) = &next {
                // The next page starts in the folders holding this page's last key.
                read.retain(|folder: &FolderListing| next.starts_with(&folder.rel));
                *continuation.lock().unwrap_or_else(|e| e.into_inner()) = Some(Continuation {
                    prefix,
                    token: next.clone(),
                    folders: read,
                });
            }
            Ok(super::ListPage {
                objects: page,
                next,
            })
        })
        .await
    }

    pub(super) async fn copy(&self, from_key: &str, to_key: &str) -> Result<(), StorageError> {
        check_key(from_key)?;
        check_key(to_key)?;
        let root = self.root.clone();
        let (from_key, to_key) = (from_key.to_owned(), to_key.to_owned());
        blocking(move || {
            let from = Self::object_path(&root, &from_key);
            let bytes = match fs::read(&from) {
                Ok(bytes) => bytes,
                Err(e) if is_absent(&e) => return Err(StorageError::NotFound { key: from_key }),
                Err(e) => return Err(io_error("read", &root, &from, e)),
            };
            let from_meta = Self::sidecar_path(&root, &from_key);
            let to_meta = Self::sidecar_path(&root, &to_key);
            match fs::read(&from_meta) {
                Ok(json) => write_atomic(&to_meta, &json)
                    .map_err(|e| io_error("write", &root, &to_meta, e))?,
                // An object written without a sidecar copies as one without a sidecar.
                Err(e) if is_absent(&e) => remove_if_present(&to_meta)
                    .map_err(|e| io_error("delete", &root, &to_meta, e))?,
                Err(e) => return Err(io_error("read", &root, &from_meta, e)),
            }
            let to = Self::object_path(&root, &to_key);
            write_atomic(&to, &bytes).map_err(|e| io_error("write", &root, &to, e))
        })
        .await
    }

    /// The headers the HTTP server sends with `key`'s bytes, or `None` when no object is
    /// stored under it: a missing file, a folder (what other keys' prefixes look like) and a
    /// key the store refuses are all simply not there.
    pub async fn serving_headers(&self, key: &str) -> Result<Option<ServedHeaders>, StorageError> {
        if check_key(key).is_err() {
            return Ok(None);
        }
        let root = self.root.clone();
        let key = key.to_owned();
        blocking(move || {
            let path = Self::object_path(&root, &key);
            let meta = match fs::metadata(&path) {
                Ok(m) if m.is_file() => m,
                Ok(_) => return Ok(None),
                Err(e) if is_absent(&e) => return Ok(None),
                Err(e) => return Err(io_error("look up", &root, &path, e)),
            };
            let sidecar = read_sidecar(&root, &key)?;
            Ok(Some(ServedHeaders {
                content_type: sidecar.content_type,
                cache_control: sidecar
                    .cache_control
                    .unwrap_or_else(|| CACHE_CONTROL.to_owned()),
                etag: etag(&meta),
            }))
        })
        .await
    }

    pub(super) async fn ping(&self) -> Result<(), StorageError> {
        let root = self.root.clone();
        blocking(move || match fs::metadata(&root) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(StorageError::other(format!(
                "{} is not a folder: check LOCAL_STORAGE_DIR",
                root.display()
            ))),
            Err(e) if is_absent(&e) => Err(StorageError::BucketMissing {
                bucket: root.display().to_string(),
                message: format!(
                    "local folder {} does not exist (any more): check LOCAL_STORAGE_DIR",
                    root.display()
                ),
            }),
            Err(e) => Err(io_error("open the folder", &root, &root, e)),
        })
        .await
    }
}

/// What the HTTP server sends with an object besides its bytes (as S3 would).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedHeaders {
    /// The Content-Type it was stored with, when its metadata file says.
    pub content_type: Option<String>,
    /// The Cache-Control it was stored with ([`CACHE_CONTROL`] when unknown).
    pub cache_control: String,
    /// A strong entity tag: size and modification time, as nginx makes them. Every write
    /// renames a new file into place, so any change gives a new tag without hashing the bytes
    /// on each request.
    pub etag: String,
}

fn etag(meta: &fs::Metadata) -> String {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("\"{:x}-{modified:x}\"", meta.len())
}

/// Runs filesystem work off the async runtime's threads.
async fn blocking<T, F>(f: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::other(format!("local store task failed: {e}")))?
}

/// Refuses keys that could escape the root or collide with the store's own files.
pub(super) fn check_key(key: &str) -> Result<(), StorageError> {
    let refuse = |why: &str| {
        Err(StorageError::other(format!(
            "object key {key:?} is not allowed in the local store: {why}"
        )))
    };
    if key.contains('\\') {
        return refuse("it contains a backslash");
    }
    if key.contains("..") {
        return refuse("it contains `..`");
    }
    if key.starts_with('/') || Path::new(key).is_absolute() {
        return refuse("it is an absolute path");
    }
    if key.contains('\0') {
        return refuse("it contains a NUL character");
    }
    if key.split('/').any(str::is_empty) {
        return refuse("it has an empty path segment (`//` or a trailing `/`)");
    }
    if key.split('/').any(|segment| segment.starts_with('.')) {
        return refuse("a path segment starts with `.` (reserved for the store's own files)");
    }
    // Belt and braces for other platforms (`C:` prefixes and the like).
    if !Path::new(key)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return refuse("it is not a plain relative path");
    }
    Ok(())
}

/// Prefixes may end in a partial segment or `/`, and may be empty; nothing that climbs out.
fn check_prefix(prefix: &str) -> Result<(), StorageError> {
    let refuse = |why: &str| {
        Err(StorageError::other(format!(
            "prefix {prefix:?} is not allowed in the local store: {why}"
        )))
    };
    if prefix.contains('\\') {
        return refuse("it contains a backslash");
    }
    if prefix.contains("..") {
        return refuse("it contains `..`");
    }
    if prefix.starts_with('/') || Path::new(prefix).is_absolute() {
        return refuse("it is an absolute path");
    }
    if prefix.contains('\0') {
        return refuse("it contains a NUL character");
    }
    Ok(())
}

/// Writes `bytes` to a temp file beside `path`, flushes it to disk and renames it over `path`.
/// On failure the temp file is removed, so nothing half-written is left.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent folder"))?;
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{TMP_PREFIX}{}", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = fs::File::create_new(&tmp)?;
        file.write_all(bytes)?;
        // Flush before the rename: otherwise a power cut could leave a renamed but empty file.
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    // Make the rename itself durable; best effort, as not every filesystem allows it.
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn read_info(root: &Path, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
    let path = LocalStore::object_path(root, key);
    let meta = match fs::metadata(&path) {
        // A folder is what other keys' prefixes look like; it is not an object.
        Ok(m) if m.is_file() => m,
        Ok(_) => return Ok(None),
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(io_error("look up", root, &path, e)),
    };
    let sidecar = read_sidecar(root, key)?;
    Ok(Some(ObjectInfo {
        size: meta.len(),
        content_type: sidecar.content_type,
        cache_control: sidecar.cache_control,
        metadata: sidecar.metadata,
        last_modified: meta.modified().ok().map(to_chrono),
    }))
}

fn read_sidecar(root: &Path, key: &str) -> Result<Sidecar, StorageError> {
    let path = LocalStore::sidecar_path(root, key);
    match fs::read(&path) {
        Ok(json) => Ok(serde_json::from_slice(&json).unwrap_or_else(|e| {
            // A damaged sidecar must not make the object itself unreadable.
            tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable metadata file");
            Sidecar::default()
        })),
        Err(e) if is_absent(&e) => Ok(Sidecar::default()),
        Err(e) => Err(io_error("read", root, &path, e)),
    }
}

fn delete_one(root: &Path, key: &str) -> Result<(), StorageError> {
    let path = LocalStore::object_path(root, key);
    match fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => remove_if_present(&path).map_err(|e| io_error("delete", root, &path, e))?,
        Err(e) if is_absent(&e) => {}
        Err(e) => return Err(io_error("delete", root, &path, e)),
    }
    let meta = LocalStore::sidecar_path(root, key);
    remove_if_present(&meta).map_err(|e| io_error("delete", root, &meta, e))
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if !is_absent(&e) => Err(e),
        _ => Ok(()),
    }
}

/// One page of a listing in key order (see [`LocalStore::list_prefix_page`]).
struct Walk<'a> {
    root: &'a Path,
    prefix: &'a str,
    after: Option<&'a str>,
    max: usize,
    /// Folder listings the previous page left (see [`Continuation`]).
    cached: &'a [FolderListing],
}

impl Walk<'_> {
    /// Adds the objects of `dir` (whose keys start with `rel`) to `out`, in key order, until
    /// `out` is full. Folders whose keys all sort before `after` are not read. Every folder
    /// listing used is added to `read`, if given.
    fn dir(
        &self,
        dir: &Path,
        rel: &str,
        out: &mut Vec<ListedObject>,
        mut read: Option<&mut Vec<FolderListing>>,
    ) -> Result<(), StorageError> {
        let Some(listing) = self.listing(dir, rel)? else {
            return Ok(());
        };
        if let Some(read) = read.as_deref_mut() {
            read.push(listing.clone());
        }
        let entries = &listing.entries[..];
        // Skip what sorts before `after` without comparing it entry by entry, except the one
        // folder (sorted last among them) that `after` may be in.
        let start = match self.after {
            Some(after) => {
                let first_after = entries.partition_point(|(key, _)| key.as_str() <= after);
                match first_after.checked_sub(1).map(|i| &entries[i]) {
                    Some((key, Entry::Folder)) if after.starts_with(key.as_str()) => {
                        first_after - 1
                    }
                    _ => first_after,
                }
            }
            None => 0,
        };
        for (key, entry) in &entries[start..] {
            if out.len() >= self.max {
                return Ok(());
            }
            match entry {
                Entry::Folder => {
                    if key.starts_with(self.prefix) || self.prefix.starts_with(key.as_str()) {
                        self.dir(&self.root.join(key), key, out, read.as_deref_mut())?;
                    }
                }
                Entry::Object => {
                    if key.starts_with(self.prefix) {
                        let path = self.root.join(key);
                        let meta = match fs::symlink_metadata(&path) {
                            Ok(meta) if meta.is_file() => meta,
                            Ok(_) => continue, // replaced by something that is not an object
                            Err(e) if is_absent(&e) => continue, // deleted since the folder was read
                            Err(e) => return Err(io_error("list", self.root, &path, e)),
                        };
                        out.push(ListedObject {
                            key: key.clone(),
                            size: meta.len(),
                            last_modified: meta.modified().ok().map(to_chrono),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The entries of `dir` from `after` on, from the previous page if it left them and the
    /// folder has not changed since, else read now. `None` if the folder does not exist.
    fn listing(&self, dir: &Path, rel: &str) -> Result<Option<FolderListing>, StorageError> {
        let modified = match fs::metadata(dir).and_then(|meta| meta.modified()) {
            Ok(modified) => modified,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(io_error("list", self.root, dir, e)),
        };
        if let Some(cached) = self
            .cached
            .iter()
            .find(|folder| folder.settled && folder.rel == rel && folder.modified == modified)
        {
            return Ok(Some(cached.clone()));
        }
        let settled = SystemTime::now()
            .duration_since(modified)
            .is_ok_and(|age| age > QUIET);
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(io_error("list", self.root, dir, e)),
        };
        let mut listed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("list", self.root, dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue; // not a name any key could have produced
            };
            // Sidecars, temp files and anything else hidden are the store's own.
            if name.starts_with('.') {
                continue;
            }
            // From the folder itself (`d_type`) on common file systems: no `stat` per entry.
            let file_type = match entry.file_type() {
                Ok(file_type) => file_type,
                Err(e) if is_absent(&e) => continue, // deleted since the folder was read
                Err(e) => return Err(io_error("list", self.root, &entry.path(), e)),
            };
            let (key, kind) = if file_type.is_dir() {
                (format!("{rel}{name}/"), Entry::Folder)
            } else if file_type.is_file() {
                (format!("{rel}{name}"), Entry::Object)
            } else {
                continue;
            };
            // What sorts before `after` is never listed again, by this page or the pages that
            // continue it: a folder a job is deleting from, read again for each page, is then
            // sorted only for what is left to list.
            let listed_already = self.after.is_some_and(|after| {
                key.as_str() <= after && !(kind == Entry::Folder && after.starts_with(&key))
            });
            if !listed_already {
                listed.push((key, kind));
            }
        }
        listed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(Some(FolderListing {
            rel: rel.to_owned(),
            modified,
            settled,
            entries: listed.into(),
        }))
    }
}

/// Every object whose key starts with `prefix`, sorted by key (byte order, as S3 lists).
fn list(root: &Path, prefix: &str) -> Result<Vec<ListedObject>, StorageError> {
    let start_rel = start_folder(prefix);
    let walk = Walk {
        root,
        prefix,
        after: None,
        max: usize::MAX,
        cached: &[],
    };
    let mut out = Vec::new();
    walk.dir(&root.join(start_rel), start_rel, &mut out, None)?;
    Ok(out)
}

/// The deepest folder `prefix` names completely, where a listing starts: `a/b/c` starts in
/// `a/b/`.
fn start_folder(prefix: &str) -> &str {
    prefix.rfind('/').map_or("", |i| &prefix[..=i])
}

fn to_chrono(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

/// "Not there", including a path through a file (`a/b` when `a` is a file).
fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn io_error(action: &str, root: &Path, path: &Path, e: io::Error) -> StorageError {
    let message = format!(
        "local store: could not {action} {}: {e}; check LOCAL_STORAGE_DIR ({}) and its permissions \
         and free space",
        path.display(),
        root.display()
    );
    match e.kind() {
        io::ErrorKind::PermissionDenied => StorageError::AccessDenied { message },
        _ => StorageError::Other { message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_keys_are_accepted() {
        for key in [
            "dev/portraits/2026/11/0123456789abcdef_zoe-the-bold.png",
            "a",
            "a/b c/Zoë.png",
        ] {
            assert!(check_key(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn keys_that_could_escape_the_root_are_refused() {
        for key in [
            "../etc/passwd",
            "a/../../b",
            "a/..",
            "/etc/passwd",
            "a\\b",
            "..\\windows",
            "a//b",
            "a/",
            ".portrait-meta/x.json",
            "a/.tmp-123",
            "a/./b",
            "nul\0byte",
        ] {
            let err = check_key(key).unwrap_err();
            assert_eq!(err.kind(), "other", "{key}");
        }
    }

    #[test]
    fn prefixes_may_be_partial_but_may_not_climb_out() {
        for prefix in ["", "dev/", "dev/portraits/2026/1", "a"] {
            assert!(check_prefix(prefix).is_ok(), "{prefix}");
        }
        for prefix in ["../", "/", "a\\", "a/../"] {
            assert!(check_prefix(prefix).is_err(), "{prefix}");
        }
    }
}
