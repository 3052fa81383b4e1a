//! Environment separation: moving objects that lack a `dev/` or `prod/` prefix (left by an
//! older bot version, e.g. `portraits/2024/05/…`) under the current environment's prefix.
//!
//! Each object is moved in an order that never loses it: copy to `{env}/{old key}`, check the
//! copy's size, point every database row at the new key in one transaction, and only then
//! delete the source. A run stopped anywhere is finished by the next one: a destination that
//! already holds a copy of the same size is not copied again, renaming rows that were already
//! renamed changes nothing, and the source is deleted once nothing references it.
//!
//! Also home to what [`super::orphans`] shares with it: [`MigrationError`], [`KeyFailure`],
//! and the rule deciding whether a URL shows a given object.

use std::collections::HashMap;
use std::fmt;

use futures::{stream, StreamExt};

use crate::db::{Db, DbError, ObjectReferences};
use crate::storage::{encode_key_path, StorageError, Store, MAX_KEY_BYTES};
use crate::units::human_bytes;

/// The environment prefixes. An object under any of them belongs to that environment and is
/// never moved by [`migrate_prefix`], whichever environment runs it.
pub const ENVIRONMENTS: [&str; 2] = ["dev", "prod"];

/// Objects moved at once. Each move is a few requests plus one short transaction; a handful in
/// flight hides request latency without making SQLite writers queue for long.
const MOVE_CONCURRENCY: usize = 4;

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

/// One object moved (or, in a dry run, to be moved) under the environment prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixMove {
    /// The key without a prefix.
    pub from: String,
    /// `{env}/{from}`.
    pub to: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether the object had to be copied: `false` when the destination already held a copy
    /// of the same size (an earlier run stopped after copying).
    pub copied: bool,
    /// Portrait rows pointed at the new key (renamed, or merged into a row that already had it).
    pub portraits_updated: u64,
    /// Characters whose portrait URL now shows the new key.
    pub characters_updated: u64,
}

/// What [`migrate_prefix`] did, or would do in a dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixReport {
    /// The environment objects were moved under (`dev` or `prod`).
    pub env_prefix: String,
    /// Whether this was a dry run (nothing changed).
    pub dry_run: bool,
    /// Objects in the bucket.
    pub scanned: u64,
    /// Of those, objects already under `dev/` or `prod/`, left alone.
    pub already_prefixed: u64,
    /// Objects moved, by source key: copied, verified, rows updated and the source deleted.
    /// In a dry run, the objects that would be.
    pub moves: Vec<PrefixMove>,
    /// Objects without a prefix that were not (or, in a dry run, would not be) completely
    /// moved, by key. The source is always still there.
    pub failures: Vec<KeyFailure>,
    /// Objects without a prefix left where they are on purpose, and why: a setting links to
    /// them (the default portrait), so moving them would break that link.
    pub kept: Vec<KeyFailure>,
}

impl PrefixReport {
    /// The source keys of [`PrefixReport::moves`], in key order.
    pub fn moved_keys(&self) -> Vec<&str> {
        self.moves.iter().map(|m| m.from.as_str()).collect()
    }

    /// Whether every object without a prefix was (or would be) moved.
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for PrefixReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env = &self.env_prefix;
        let unprefixed = self.scanned.saturating_sub(self.already_prefixed);
        writeln!(
            f,
            "migrate-prefix{} for environment `{env}`: {} in the bucket, {} without a `dev/` or \
             `prod/` prefix.",
            if self.dry_run { " (dry run)" } else { "" },
            count(self.scanned, "object"),
            unprefixed,
        )?;
        if unprefixed == 0 {
            return writeln!(
                f,
                "Nothing to move: every object is already under `dev/` or `prod/`."
            );
        }
        if !self.moves.is_empty() {
            let bytes: u64 = self.moves.iter().map(|m| m.size).sum();
            let portraits: u64 = self.moves.iter().map(|m| m.portraits_updated).sum();
            let characters: u64 = self.moves.iter().map(|m| m.characters_updated).sum();
            writeln!(
                f,
                "{} {} ({}) under `{env}/`, updating {} and {}:",
                if self.dry_run { "Would move" } else { "Moved" },
                count(self.moves.len() as u64, "object"),
                human_bytes(bytes),
                count(portraits, "portrait row"),
                count(characters, "character"),
            )?;
            for m in &self.moves {
                write!(f, "  {} → {}", m.from, m.to)?;
                if !m.copied {
                    write!(f, " (already copied by an earlier run)")?;
                }
                writeln!(f)?;
            }
        }
        for kept in &self.kept {
            writeln!(f, "Left in place: {} ({})", kept.key, kept.reason)?;
        }
        if !self.failures.is_empty() {
            writeln!(
                f,
                "{} {} (each source is still in place; fix the reason and run again):",
                if self.dry_run {
                    "Would not move"
                } else {
                    "Not moved"
                },
                count(self.failures.len() as u64, "object"),
            )?;
            for failure in &self.failures {
                writeln!(f, "  {}: {}", failure.key, failure.reason)?;
            }
        }
        if self.dry_run {
            writeln!(
                f,
                "Dry run: nothing was changed. Run without --dry-run to move them."
            )?;
        }
        Ok(())
    }
}

/// Moves every object whose key does not start with `dev/` or `prod/` to
/// `{env_prefix}/{key}` and points the database at it (see the module documentation for the
/// order of steps). Objects under `dev/` or `prod/`, including the other environment's, are
/// never touched.
///
/// With `dry_run` nothing is written anywhere: the report lists exactly the objects a real run
/// would move, and those it would have to leave (destination taken by different bytes, a
/// character showing the object through a URL the run cannot rewrite).
///
/// `keep_in_place` names objects a setting links to (the default portrait): they are reported
/// as kept, never moved.
pub async fn migrate_prefix(
    db: &Db,
    store: &Store,
    env_prefix: &str,
    dry_run: bool,
    keep_in_place: &[KeyFailure],
) -> Result<PrefixReport, MigrationError> {
    let env = env_segment(env_prefix)?;
    let listing = list(store, "").await?;
    let mut report = PrefixReport {
        env_prefix: env.to_owned(),
        dry_run,
        scanned: listing.len() as u64,
        already_prefixed: 0,
        moves: Vec::new(),
        failures: Vec::new(),
        kept: Vec::new(),
    };
    let mut sizes = HashMap::new();
    let mut unprefixed = Vec::new();
    for object in listing {
        if has_env_prefix(&object.key) {
            report.already_prefixed += 1;
        } else if let Some(kept) = keep_in_place.iter().find(|kept| kept.key == object.key) {
            report.kept.push(kept.clone());
        } else {
            unprefixed.push((object.key.clone(), object.size));
        }
        if dry_run {
            // Only a dry run predicts from the listing; a real run asks the store live.
            sizes.insert(object.key, object.size);
        }
    }
    if unprefixed.is_empty() {
        return Ok(report);
    }

    let outcomes: Vec<Result<PrefixMove, KeyFailure>> = if dry_run {
        // Read once: predicting each move needs only hash lookups, even for 100k objects.
        let references = db.object_references().await?;
        let urls = UrlIndex::new(references.character_urls.keys());
        unprefixed
            .into_iter()
            .map(|(from, size)| plan_move(store, env, &sizes, &references, &urls, from, size))
            .collect()
    } else {
        stream::iter(unprefixed)
            .map(|(from, size)| move_object(db, store, env, from, size))
            .buffer_unordered(MOVE_CONCURRENCY)
            .collect()
            .await
    };
    for outcome in outcomes {
        match outcome {
            Ok(moved) => report.moves.push(moved),
            Err(failure) => report.failures.push(failure),
        }
    }
    // Moves finish in any order; a report in key order is easier to read and to compare.
    report.moves.sort_by(|a, b| a.from.cmp(&b.from));
    report.failures.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(report)
}

/// What a real run would do with one object, from the listing and the database snapshot.
fn plan_move(
    store: &Store,
    env: &str,
    sizes: &HashMap<String, u64>,
    references: &ObjectReferences,
    urls: &UrlIndex,
    from: String,
    size: u64,
) -> Result<PrefixMove, KeyFailure> {
    let to = destination(env, &from).map_err(|reason| failure(&from, reason))?;
    let copied = match sizes.get(&to) {
        None => true,
        Some(&existing) if existing == size => false,
        Some(&existing) => return Err(failure(&from, conflict(&to, existing, size))),
    };
    let old_url = store.public_url(&from);
    let row_url = references.portraits.get(&from);
    let rewritten = |url: &str| url == old_url || row_url.is_some_and(|r| r == url);
    // The same two URLs `Db::rename_object` rewrites, looked up rather than scanned for.
    let shown = |url: &str| references.character_urls.get(url).copied().unwrap_or(0);
    let characters_updated = shown(&old_url)
        + row_url
            .filter(|row_url| **row_url != old_url)
            .map_or(0, |row_url| shown(row_url));
    let kept: Vec<&str> = urls
        .referring(&from, store)
        .filter(|url| !rewritten(url))
        .collect();
    if !kept.is_empty() {
        return Err(failure(&from, shown_elsewhere(&kept, true)));
    }
    Ok(PrefixMove {
        to,
        size,
        copied,
        portraits_updated: u64::from(row_url.is_some()),
        characters_updated,
        from,
    })
}

/// Moves one object: copy (unless already there), verify, rename rows, delete the source.
async fn move_object(
    db: &Db,
    store: &Store,
    env: &str,
    from: String,
    size: u64,
) -> Result<PrefixMove, KeyFailure> {
    let to = destination(env, &from).map_err(|reason| failure(&from, reason))?;
    let fail = |reason: String| {
        tracing::warn!(key = %from, %reason, "could not move an object under the environment prefix");
        failure(&from, reason)
    };

    let copied = match store.head(&to).await {
        Ok(Some(existing)) if existing.size == size => false,
        Ok(Some(existing)) => return Err(fail(conflict(&to, existing.size, size))),
        Ok(None) => {
            store
                .copy(&from, &to)
                .await
                .map_err(|err| fail(format!("could not copy it to `{to}`: {err}")))?;
            true
        }
        Err(err) => {
            return Err(fail(format!(
                "could not check whether `{to}` exists: {err}"
            )))
        }
    };
    // Verify before any row points at the copy: a row must never reference a missing object.
    match store.head(&to).await {
        Ok(Some(copy)) if copy.size == size => {}
        Ok(Some(copy)) => {
            return Err(fail(format!(
                "the copy at `{to}` has {} but the source has {}; the source is kept",
                count(copy.size, "byte"),
                count(size, "byte")
            )))
        }
        Ok(None) => {
            return Err(fail(format!(
                "the copy at `{to}` cannot be found after copying; the source is kept"
            )))
        }
        Err(err) => {
            return Err(fail(format!(
                "could not verify the copy at `{to}`: {err}; the source is kept"
            )))
        }
    }

    let old_url = store.public_url(&from);
    let new_url = store.public_url(&to);
    let renamed = db
        .rename_object(&from, &to, &old_url, &new_url)
        .await
        .map_err(|err| {
            fail(format!(
                "copied to `{to}`, but the database could not be updated ({err}); the source is kept"
            ))
        })?;

    // Look again right before deleting: the rows just renamed are gone, so anything still
    // pointing at the source is a reference this run could not rewrite.
    let references = db
        .key_references(&from, &encode_key_path(&from))
        .await
        .map_err(|err| {
            fail(format!(
                "copied to `{to}` and rows updated, but could not re-check references ({err}); \
                 the source is kept"
            ))
        })?;
    if references.has_portrait_row() {
        return Err(fail(format!(
            "copied to `{to}`, but a portrait row still has the old key; the source is kept"
        )));
    }
    let kept: Vec<&str> = references
        .characters
        .iter()
        .map(|(_, url)| url.as_str())
        .filter(|url| url_refers_to(url, &from, store))
        .collect();
    if !kept.is_empty() {
        return Err(fail(format!(
            "copied to `{to}` and rows updated, but {}",
            shown_elsewhere(&kept, false)
        )));
    }

    store.delete(&from).await.map_err(|err| {
        fail(format!(
            "copied to `{to}` and rows updated, but the source could not be deleted ({err}); \
             run again to finish"
        ))
    })?;
    tracing::info!(%from, %to, copied, "moved an object under the environment prefix");
    Ok(PrefixMove {
        from,
        to,
        size,
        copied,
        portraits_updated: renamed.portraits_renamed + renamed.portraits_merged,
        characters_updated: renamed.characters_updated,
    })
}

/// `{env}/{key}`, or why that key cannot exist.
fn destination(env: &str, key: &str) -> Result<String, String> {
    let to = format!("{env}/{key}");
    if to.len() > MAX_KEY_BYTES {
        return Err(format!(
            "with the `{env}/` prefix its key would be {} bytes; the limit is {MAX_KEY_BYTES}",
            to.len()
        ));
    }
    Ok(to)
}

fn conflict(to: &str, existing: u64, size: u64) -> String {
    format!(
        "`{to}` already exists with different content ({} there, {} here); neither is touched",
        count(existing, "byte"),
        count(size, "byte")
    )
}

/// The reason for keeping a source some character still shows through a URL this run does not
/// rewrite (another domain, a query string): deleting it would break that portrait.
fn shown_elsewhere(urls: &[&str], dry_run: bool) -> String {
    let first = urls[0];
    let others = match urls.len() {
        1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    if dry_run {
        format!(
            "a character shows it as {first}{others}, a URL this run does not rewrite; it would be \
             copied but the source kept"
        )
    } else {
        format!(
            "a character still shows it as {first}{others}; the source is kept until that \
             character's portrait is changed"
        )
    }
}

fn failure(key: &str, reason: String) -> KeyFailure {
    KeyFailure {
        key: key.to_owned(),
        reason,
    }
}

/// Whether `key` belongs to an environment (`dev/…` or `prod/…`).
fn has_env_prefix(key: &str) -> bool {
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

/// Lists `prefix`, turning a storage error into [`MigrationError::Listing`].
pub(crate) async fn list(
    store: &Store,
    prefix: &str,
) -> Result<Vec<crate::storage::ListedObject>, MigrationError> {
    store
        .list_prefix(prefix)
        .await
        .map_err(|source| MigrationError::Listing {
            store: store.describe(),
            source,
        })
}

/// `1 object`, `3 objects`.
pub(crate) fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
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

/// Character URLs by their last path segment, so "which URLs could show this key" is a hash
/// lookup followed by [`url_refers_to`] on a handful of candidates. One entry per URL keeps it
/// small even for 100k characters.
pub(crate) struct UrlIndex<'a> {
    by_file_name: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> UrlIndex<'a> {
    pub(crate) fn new(urls: impl IntoIterator<Item = &'a String>) -> UrlIndex<'a> {
        let mut by_file_name: HashMap<&str, Vec<&str>> = HashMap::new();
        for url in urls {
            let path = url.split(['?', '#']).next().unwrap_or(url);
            if let Some((_, name)) = path.rsplit_once('/') {
                by_file_name.entry(name).or_default().push(url);
            }
        }
        UrlIndex { by_file_name }
    }

    /// The indexed URLs that show `key`.
    pub(crate) fn referring<'s>(
        &'s self,
        key: &'s str,
        store: &'s Store,
    ) -> impl Iterator<Item = &'a str> + 's {
        let encoded = encode_key_path(key);
        let name = encoded.rsplit('/').next().unwrap_or_default().to_owned();
        self.by_file_name
            .get(name.as_str())
            .into_iter()
            .flatten()
            .copied()
            .filter(move |url| url_refers_to(url, key, store))
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
    fn a_destination_over_the_key_limit_is_refused_with_its_length() {
        let key = "k".repeat(MAX_KEY_BYTES - 2);
        let err = destination("dev", &key).unwrap_err();
        assert!(err.contains("1026 bytes"), "{err}");
        assert_eq!(destination("dev", "a/b.png").unwrap(), "dev/a/b.png");
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
    fn the_url_index_finds_only_urls_that_show_the_key() {
        let (_dir, store) = store();
        let key = "portraits/2024/05/0123456789abcdef_zoe.png";
        let urls = [
            store.public_url(key),
            store.public_url(&format!("dev/{key}")),
            format!("https://old.example.org/{key}"),
            "https://cdn.discordapp.com/attachments/1/2/0123456789abcdef_zoe.png".to_owned(),
            "https://img.example.com/other.png".to_owned(),
        ];
        let index = UrlIndex::new(urls.iter());
        let found: Vec<&str> = index.referring(key, &store).collect();
        assert_eq!(found, [urls[0].as_str(), urls[2].as_str()]);
        assert_eq!(index.referring("nothing.png", &store).count(), 0);
    }

    #[test]
    fn a_report_says_what_would_move_and_that_nothing_changed() {
        let report = PrefixReport {
            env_prefix: "dev".into(),
            dry_run: true,
            scanned: 4,
            already_prefixed: 2,
            moves: vec![PrefixMove {
                from: "portraits/a.png".into(),
                to: "dev/portraits/a.png".into(),
                size: 2048,
                copied: false,
                portraits_updated: 1,
                characters_updated: 2,
            }],
            failures: vec![KeyFailure {
                key: "b.png".into(),
                reason: "because".into(),
            }],
            kept: vec![],
        };
        let text = report.to_string();
        assert!(
            text.contains("(dry run) for environment `dev`: 4 objects in the bucket, 2 without"),
            "{text}"
        );
        assert!(text.contains("Would move 1 object (2.0 KiB) under `dev/`, updating 1 portrait row and 2 characters:"), "{text}");
        assert!(
            text.contains(
                "  portraits/a.png → dev/portraits/a.png (already copied by an earlier run)"
            ),
            "{text}"
        );
        assert!(text.contains("Would not move 1 object"), "{text}");
        assert!(text.contains("  b.png: because"), "{text}");
        assert!(text.contains("nothing was changed"), "{text}");

        let done = PrefixReport {
            dry_run: false,
            failures: vec![],
            ..report
        };
        let text = done.to_string();
        assert!(text.contains("Moved 1 object"), "{text}");
        assert!(!text.contains("nothing was changed"), "{text}");

        let empty = PrefixReport {
            scanned: 2,
            moves: vec![],
            ..done
        };
        assert!(empty.to_string().contains("Nothing to move"), "{empty}");
    }
}
