//! Environment separation: moving objects that lack a `dev/` or `prod/` prefix (left by an
//! older bot version, e.g. `portraits/2024/05/…`) under the current environment's prefix.
//!
//! Each object is moved in an order that never loses it: copy to `{env}/{old key}`, check the
//! copy's size, point every database row at the new key in one transaction, and only then
//! delete the source. A run stopped anywhere is finished by the next one: a destination that
//! already holds a copy of the same size is not copied again, renaming rows that were already
//! renamed changes nothing, and the source is deleted once nothing references it.
//!
//! The bucket is listed page by page, and each page's references are read through indexes, so
//! memory holds one page of objects (plus the report), however large the bucket.

use std::collections::HashMap;
use std::fmt;

use futures::{stream, StreamExt};

use super::bucket::{
    count, env_segment, has_env_prefix, key_file_name, page_references, url_refers_to, Listed,
    Listing, Needed, References, LIST_PAGE_SIZE,
};
pub use super::bucket::{KeyFailure, MigrationError, ENVIRONMENTS};
use crate::db::Db;
use crate::storage::{Store, MAX_KEY_BYTES};
use crate::units::human_bytes;

/// Objects moved at once. Each move is a few requests plus one short transaction; a handful in
/// flight hides request latency without making SQLite writers queue for long.
const MOVE_CONCURRENCY: usize = 4;

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

/// What [`migrate_prefix`] did, or would do in a dry run: counts, and the first
/// [`super::bucket::LISTED`] objects of each kind by key (the report does not grow with the
/// bucket).
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
    pub moves: Listed<PrefixMove>,
    /// The moved objects' total size.
    pub moved_bytes: u64,
    /// Portrait rows pointed at new keys, over every move.
    pub portraits_updated: u64,
    /// Characters whose portrait URL now shows a new key, over every move.
    pub characters_updated: u64,
    /// Objects without a prefix that were not (or, in a dry run, would not be) completely
    /// moved, by key. The source is always still there.
    pub failures: Listed<KeyFailure>,
    /// Objects without a prefix left where they are on purpose, and why: a setting links to
    /// them (the default portrait), so moving them would break that link.
    pub kept: Vec<KeyFailure>,
}

impl PrefixReport {
    /// The source keys of the moves listed in [`PrefixReport::moves`], in key order.
    pub fn moved_keys(&self) -> Vec<&str> {
        self.moves
            .listed()
            .iter()
            .map(|m| m.from.as_str())
            .collect()
    }

    /// Whether every object without a prefix was (or would be) moved.
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }

    fn record(&mut self, moved: PrefixMove) {
        self.moved_bytes += moved.size;
        self.portraits_updated += moved.portraits_updated;
        self.characters_updated += moved.characters_updated;
        self.moves.push(moved);
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
            writeln!(
                f,
                "{} {} ({}) under `{env}/`, updating {} and {}:",
                if self.dry_run { "Would move" } else { "Moved" },
                count(self.moves.total(), "object"),
                human_bytes(self.moved_bytes),
                count(self.portraits_updated, "portrait row"),
                count(self.characters_updated, "character"),
            )?;
            for m in self.moves.listed() {
                write!(f, "  {} → {}", m.from, m.to)?;
                if !m.copied {
                    write!(f, " (already copied by an earlier run)")?;
                }
                writeln!(f)?;
            }
            self.moves.write_unlisted(f)?;
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
                count(self.failures.total(), "object"),
            )?;
            for failure in self.failures.listed() {
                writeln!(f, "  {}: {}", failure.key, failure.reason)?;
            }
            self.failures.write_unlisted(f)?;
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
    migrate_prefix_paged(
        db,
        store,
        env_prefix,
        dry_run,
        keep_in_place,
        LIST_PAGE_SIZE,
    )
    .await
}

/// [`migrate_prefix`], listing `page_size` objects at a time (tests use small pages).
pub async fn migrate_prefix_paged(
    db: &Db,
    store: &Store,
    env_prefix: &str,
    dry_run: bool,
    keep_in_place: &[KeyFailure],
    page_size: usize,
) -> Result<PrefixReport, MigrationError> {
    let env = env_segment(env_prefix)?;
    let mut report = PrefixReport {
        env_prefix: env.to_owned(),
        dry_run,
        scanned: 0,
        already_prefixed: 0,
        moves: Listed::default(),
        moved_bytes: 0,
        portraits_updated: 0,
        characters_updated: 0,
        failures: Listed::default(),
        kept: Vec::new(),
    };
    // Moved objects land under `{env}/`, which sorts before every unprefixed key, so the
    // listing never meets them again.
    let mut listing = Listing::new(store, "", page_size);
    while let Some(page) = listing.next_page().await? {
        report.scanned += page.len() as u64;
        let mut unprefixed = Vec::new();
        for object in page {
            if has_env_prefix(&object.key) {
                report.already_prefixed += 1;
            } else if let Some(kept) = keep_in_place.iter().find(|kept| kept.key == object.key) {
                report.kept.push(kept.clone());
            } else {
                unprefixed.push((object.key, object.size));
            }
        }
        if unprefixed.is_empty() {
            continue;
        }
        let mut outcomes: Vec<Result<PrefixMove, KeyFailure>> = if dry_run {
            let keys: Vec<&str> = unprefixed.iter().map(|(key, _)| key.as_str()).collect();
            let references = page_references(db, store, &keys, Needed::EveryReference).await?;
            let references = &references;
            stream::iter(unprefixed)
                .map(|(from, size)| plan_move(store, env, references, from, size))
                .buffer_unordered(MOVE_CONCURRENCY)
                .collect()
                .await
        } else {
            stream::iter(unprefixed)
                .map(|(from, size)| move_object(db, store, env, from, size))
                .buffer_unordered(MOVE_CONCURRENCY)
                .collect()
                .await
        };
        // Moves finish in any order; pages come in key order, so sorting each page lists the
        // report in key order, which is easier to read and to compare.
        outcomes.sort_by(|a, b| outcome_key(a).cmp(outcome_key(b)));
        for outcome in outcomes {
            match outcome {
                Ok(moved) => report.record(moved),
                Err(failure) => report.failures.push(failure),
            }
        }
    }
    Ok(report)
}

/// The source key an outcome is about.
fn outcome_key(outcome: &Result<PrefixMove, KeyFailure>) -> &str {
    match outcome {
        Ok(moved) => &moved.from,
        Err(failure) => &failure.key,
    }
}

/// What a real run would do with one object: the destination is looked at, the references
/// come from the page's lookup.
async fn plan_move(
    store: &Store,
    env: &str,
    references: &HashMap<String, References>,
    from: String,
    size: u64,
) -> Result<PrefixMove, KeyFailure> {
    let to = destination(env, &from).map_err(|reason| failure(&from, reason))?;
    let copied = match store.head(&to).await {
        Ok(None) => true,
        Ok(Some(existing)) if existing.size == size => false,
        Ok(Some(existing)) => return Err(failure(&from, conflict(&to, existing.size, size))),
        Err(err) => {
            return Err(failure(
                &from,
                format!("could not check whether `{to}` exists: {err}"),
            ))
        }
    };
    let empty = References::default();
    let refs = references.get(&from).unwrap_or(&empty);
    let old_url = store.public_url(&from);
    let row_url = refs.portrait.as_ref().and_then(|p| p.public_url.as_deref());
    // The same two URLs `Db::rename_object` rewrites.
    let rewritten = |url: &str| url == old_url || row_url == Some(url);
    let characters_updated = refs
        .characters
        .iter()
        .filter(|(_, url)| rewritten(url))
        .count() as u64;
    let kept: Vec<&str> = refs
        .characters
        .iter()
        .map(|(_, url)| url.as_str())
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
        .key_references(&from, &key_file_name(&from))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_over_the_key_limit_is_refused_with_its_length() {
        let key = "k".repeat(MAX_KEY_BYTES - 2);
        let err = destination("dev", &key).unwrap_err();
        assert!(err.contains("1026 bytes"), "{err}");
        assert_eq!(destination("dev", "a/b.png").unwrap(), "dev/a/b.png");
    }

    fn planned(from: &str) -> PrefixMove {
        PrefixMove {
            from: from.into(),
            to: format!("dev/{from}"),
            size: 2048,
            copied: false,
            portraits_updated: 1,
            characters_updated: 2,
        }
    }

    fn empty_report(dry_run: bool) -> PrefixReport {
        PrefixReport {
            env_prefix: "dev".into(),
            dry_run,
            scanned: 4,
            already_prefixed: 2,
            moves: Listed::default(),
            moved_bytes: 0,
            portraits_updated: 0,
            characters_updated: 0,
            failures: Listed::default(),
            kept: vec![],
        }
    }

    #[test]
    fn a_report_says_what_would_move_and_that_nothing_changed() {
        let mut report = empty_report(true);
        report.record(planned("portraits/a.png"));
        report.failures.push(KeyFailure {
            key: "b.png".into(),
            reason: "because".into(),
        });
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
            failures: Listed::default(),
            ..report
        };
        let text = done.to_string();
        assert!(text.contains("Moved 1 object"), "{text}");
        assert!(!text.contains("nothing was changed"), "{text}");

        let empty = PrefixReport {
            scanned: 2,
            ..empty_report(false)
        };
        assert!(empty.to_string().contains("Nothing to move"), "{empty}");
    }

    #[test]
    fn a_report_on_many_moves_lists_the_first_and_counts_them_all() {
        let mut report = empty_report(false);
        report.scanned = 102;
        for i in 0..100 {
            report.record(planned(&format!("portraits/{i:03}.png")));
        }
        assert_eq!(report.moves.total(), 100);
        let text = report.to_string();
        assert!(text.contains("Moved 100 objects (200.0 KiB) under `dev/`, updating 100 portrait rows and 200 characters:"), "{text}");
        assert!(
            text.contains("  portraits/019.png → dev/portraits/019.png"),
            "{text}"
        );
        assert!(!text.contains("portraits/020.png"), "{text}");
        assert!(text.contains("  … and 80 more (not listed)"), "{text}");
        assert!(text.lines().count() < 30, "{text}");
    }
}
