//! What the object maintenance commands ([`super::prefix`] and [`super::orphans`]) share: their
//! error type, the per-object failure, the environment prefixes, listing the bucket page by
//! page, and deciding which database rows reference the objects of one page.

use std::collections::HashMap;

use crate::db::{url_file_name, Db, DbError, PortraitReference};
use crate::storage::{encode_key_path, ListedObject, StorageError, Store};

/// The environment prefixes. An object under any of them belongs to that environment.
pub const ENVIRONMENTS: [&str; 2] = ["dev", "prod"];

/// Objects listed (and checked against the database) at a time: memory holds one page, however
/// large the bucket. S3 and R2 return at most 1000 keys a request.
pub const LIST_PAGE_SIZE: usize = 1000;

/// Why a prefix migration or orphan cleanup could not run at all. Problems with single objects
/// do not stop a run: they are reported as [`KeyFailure`]s.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The environment prefix is not one of [`ENVIRONMENTS`].
    #[error("`{0}` is not an environment prefix: use `dev` or `prod` (APP_ENV)")]
    InvalidEnvPrefix(String),
    /// The bucket (or local folder) could not be listed.
    #[error("could not list the objects in {store}: {source}")]
    Listing {
        /// [`Store::describe`] of the store.
        store: String,
        /// What the store said.
        #[source]
        source: StorageError,
    },
    /// The database could not be read.
    #[error("could not read the database: {0}")]
    Database(#[from] DbError),
}

/// An object a run did not handle, and why, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFailure {
    /// The object's key.
    pub key: String,
    /// What went wrong or why it was left alone.
    pub reason: String,
}

/// Items of one kind a report lists by name (the first in key order); the others are only
/// counted, so a report on a million objects stays a few lines and a few KiB.
pub const LISTED: usize = 20;

/// A count of items, and the first [`LISTED`] of them: what a report keeps of a list that grows
/// with the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    total: u64,
    first: Vec<T>,
}

impl<T> Default for Listed<T> {
    fn default() -> Listed<T> {
        Listed {
            total: 0,
            first: Vec::new(),
        }
    }
}

impl<T> Listed<T> {
    /// Counts `item`, keeping it if fewer than [`LISTED`] are kept.
    pub fn push(&mut self, item: T) {
        self.total += 1;
        if self.first.len() < LISTED {
            self.first.push(item);
        }
    }

    /// How many were counted, listed or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The first ones counted (at most [`LISTED`]).
    pub fn listed(&self) -> &[T] {
        &self.first
    }

    /// How many were counted but not kept.
    pub fn unlisted(&self) -> u64 {
        self.total - self.first.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The `… and N more` line under a listing, when some were not listed.
    pub(crate) fn write_unlisted(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.unlisted() {
            0 => Ok(()),
            more => writeln!(f, "  … and {more} more (not listed)"),
        }
    }
}

/// Whether `key` belongs to an environment (`dev/…` or `prod/…`).
pub(crate) fn has_env_prefix(key: &str) -> bool {
    ENVIRONMENTS.iter().any(|env| {
        key.strip_prefix(env)
            .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// `dev` or `prod` from `dev`, `dev/`, `prod` or `prod/`.
pub(crate) fn env_segment(env_prefix: &str) -> Result<&'static str, MigrationError> {
    let trimmed = env_prefix.trim().trim_end_matches('/');
    ENVIRONMENTS
        .into_iter()
        .find(|env| *env == trimmed)
        .ok_or_else(|| MigrationError::InvalidEnvPrefix(env_prefix.to_owned()))
}

/// `1 object`, `3 objects`.
pub(crate) fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The objects under a prefix, one page at a time, in key order.
pub(crate) struct Listing<'a> {
    store: &'a Store,
    prefix: String,
    page_size: usize,
    token: Option<String>,
    done: bool,
}

impl<'a> Listing<'a> {
    pub(crate) fn new(store: &'a Store, prefix: &str, page_size: usize) -> Listing<'a> {
        Listing {
            store,
            prefix: prefix.to_owned(),
            page_size: page_size.max(1),
            token: None,
            done: false,
        }
    }

    /// The next page, or `None` after the last.
    pub(crate) async fn next_page(&mut self) -> Result<Option<Vec<ListedObject>>, MigrationError> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .store
            .list_prefix_page(&self.prefix, self.token.take(), self.page_size)
            .await
            .map_err(|source| MigrationError::Listing {
                store: self.store.describe(),
                source,
            })?;
        self.token = page.next;
        self.done = self.token.is_none();
        if page.objects.is_empty() && self.done {
            return Ok(None);
        }
        Ok(Some(page.objects))
    }
}

/// What references one object of a page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct References {
    /// The portrait row with the object's key.
    pub(crate) portrait: Option<PortraitReference>,
    /// `(id, portrait_url)` of characters whose URL shows the object (see [`url_refers_to`]);
    /// with [`Needed::WhetherShown`], empty when the portrait row is in use.
    pub(crate) characters: Vec<(i64, String)>,
}

impl References {
    /// Whether a character shows the object, through its portrait row or its URL.
    pub(crate) fn shown(&self) -> bool {
        self.portrait.as_ref().is_some_and(|p| p.in_use) || !self.characters.is_empty()
    }
}

/// How much [`page_references`] must find out about each object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needed {
    /// Every character whose URL shows it (a move rewrites each one).
    EveryReference,
    /// Only whether something shows it: the portrait row's URL is not read (so the row is
    /// found through indexes only), nor the characters' URLs for an object whose portrait row
    /// is in use, which in a settled bucket is nearly every object.
    WhetherShown,
}

/// What references each of `keys`, read through indexes in two queries for the whole page.
pub(crate) async fn page_references(
    db: &Db,
    store: &Store,
    keys: &[&str],
    needed: Needed,
) -> Result<HashMap<String, References>, DbError> {
    let every = needed == Needed::EveryReference;
    let mut portraits = db.portraits_by_key(keys, every).await?;
    let mut references: HashMap<String, References> = keys
        .iter()
        .map(|key| {
            let refs = References {
                portrait: portraits.remove(*key),
                characters: Vec::new(),
            };
            (key.to_string(), refs)
        })
        .collect();
    let mut by_file_name: HashMap<String, Vec<&str>> = HashMap::new();
    for key in keys {
        let in_use = references[*key].portrait.as_ref().is_some_and(|p| p.in_use);
        if every || !in_use {
            by_file_name
                .entry(key_file_name(key))
                .or_default()
                .push(*key);
        }
    }
    let names: Vec<&str> = by_file_name.keys().map(String::as_str).collect();
    for (id, url) in db.characters_by_file_name(&names).await? {
        for key in by_file_name.get(url_file_name(&url)).into_iter().flatten() {
            if url_refers_to(&url, key, store) {
                if let Some(refs) = references.get_mut(*key) {
                    refs.characters.push((id, url.clone()));
                }
            }
        }
    }
    Ok(references)
}

/// The last path segment of `key` as it appears in a URL (percent-encoded): what the
/// database's `characters.portrait_file` holds for a URL showing it.
pub(crate) fn key_file_name(key: &str) -> String {
    let encoded = encode_key_path(key);
    encoded.rsplit('/').next().unwrap_or_default().to_owned()
}

/// Whether `url` shows the object `key`.
///
/// A URL under the store's current public base shows exactly the key after the base. Any other
/// URL (an older public domain, the local server while R2 is configured) is judged by its path:
/// it shows `key` when its path ends with `/{key}`, unless the segment before is `dev` or
/// `prod`, which makes it a URL of the prefixed copy instead. Query strings and fragments are
/// ignored. Erring towards "shows it" only ever keeps an object that could have gone.
pub(crate) fn url_refers_to(url: &str, key: &str, store: &Store) -> bool {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let encoded = encode_key_path(key);
    if let Some(rest) = url.strip_prefix(&store.public_url("")) {
        return rest == encoded;
    }
    match url.strip_suffix(encoded.as_str()) {
        Some(head) => {
            head.ends_with('/')
                && !ENVIRONMENTS
                    .iter()
                    .any(|env| head.ends_with(&format!("/{env}/")))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::local(dir.path().join("o"), "https://img.example.com".into()).unwrap();
        (dir, store)
    }

    #[test]
    fn only_dev_and_prod_are_environment_prefixes() {
        assert_eq!(env_segment("dev").unwrap(), "dev");
        assert_eq!(env_segment("prod/").unwrap(), "prod");
        for bad in ["", "/", "staging", "dev/portraits", "DEV"] {
            let err = env_segment(bad).unwrap_err();
            assert!(err.to_string().contains("use `dev` or `prod`"), "{err}");
        }
    }

    #[test]
    fn keys_under_dev_or_prod_have_a_prefix_and_look_alikes_do_not() {
        assert!(has_env_prefix("dev/portraits/2026/11/a.png"));
        assert!(has_env_prefix("prod/x"));
        for key in [
            "portraits/2024/05/a.png",
            "development/a.png",
            "dev",
            "prodx/a",
            "a/dev/b",
        ] {
            assert!(!has_env_prefix(key), "{key}");
        }
    }

    #[test]
    fn urls_under_the_store_base_show_exactly_the_key_after_it() {
        let (_dir, store) = store();
        let key = "portraits/2024/05/0123456789abcdef_zoe.png";
        assert!(url_refers_to(&store.public_url(key), key, &store));
        assert!(url_refers_to(
            &format!("{}?v=2", store.public_url(key)),
            key,
            &store
        ));
        assert!(!url_refers_to(
            &store.public_url(&format!("dev/{key}")),
            key,
            &store
        ));
        assert!(!url_refers_to(
            &store.public_url(key),
            &format!("dev/{key}"),
            &store
        ));
        let spaced = "old bot/Zoë.png";
        assert!(url_refers_to(&store.public_url(spaced), spaced, &store));
    }

    #[test]
    fn urls_on_another_domain_show_a_key_their_path_ends_with_unless_it_is_the_prefixed_copy() {
        let (_dir, store) = store();
        let key = "portraits/2024/05/0123456789abcdef_zoe.png";
        assert!(url_refers_to(
            &format!("https://old.example.org/{key}"),
            key,
            &store
        ));
        assert!(url_refers_to(
            &format!("http://localhost:9091/objects/{key}"),
            key,
            &store
        ));
        assert!(!url_refers_to(
            &format!("https://old.example.org/dev/{key}"),
            key,
            &store
        ));
        assert!(!url_refers_to(
            &format!("https://old.example.org/prod/{key}"),
            key,
            &store
        ));
        assert!(!url_refers_to(
            &format!("https://old.example.org/x{key}"),
            key,
            &store
        ));
        let prefixed = format!("dev/{key}");
        assert!(url_refers_to(
            &format!("https://old.example.org/{prefixed}"),
            &prefixed,
            &store
        ));
    }

    #[test]
    fn a_url_and_the_key_it_shows_have_the_same_file_name() {
        let (_dir, store) = store();
        for key in [
            "portraits/2024/05/0123456789abcdef_zoe.png",
            "old bot/Zoë portrait.png",
            "flat.png",
        ] {
            let url = store.public_url(key);
            assert_eq!(url_file_name(&url), key_file_name(key), "{key}");
            assert_eq!(
                url_file_name(&format!("{url}?ex=1/2#frag")),
                key_file_name(key)
            );
        }
        assert_eq!(url_file_name("noslash"), "noslash");
    }
}
