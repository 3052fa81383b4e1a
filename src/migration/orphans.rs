//! Orphan cleanup: objects under the environment prefix that no database row references.
//!
//! Objects become orphans when a row is removed but deleting its object failed, when an upload
//! stored its object but never got to write its row, or when no character uses a portrait row
//! any more (its row is then an orphan too, and goes with the object). A dry run only lists
//! them; an executed run deletes them, checking each one again right before deleting it.
//!
//! The bucket is listed page by page and each page is checked against the database through
//! indexes (the portrait row by key, its use by `characters.portrait_id`, and character URLs by
//! file name only for objects whose row is not in use), so memory holds one page plus the
//! orphans found.
//!
//! Two guards keep a live portrait from ever being deleted. The age guard: an upload writes
//! its object first and its row just after, so an object younger than `older_than` may be
//! one whose row is on its way, and is left alone. The re-check: right before each delete the
//! object's age and references are read again, so a row written since the listing saves it.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{stream, StreamExt};

use super::bucket::{
    count, env_segment, page_references, KeyFailure, Listed, Listing, MigrationError, Needed,
    LIST_PAGE_SIZE,
};
use crate::db::Db;
use crate::storage::{ListedObject, Store};
use crate::units::human_bytes;

/// Objects checked and deleted at once.
const DELETE_CONCURRENCY: usize = 4;
/// Orphans re-checked against the database in one pair of queries before being deleted.
const DELETE_BATCH: usize = 500;

/// An object no character shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub object: ListedObject,
    /// The id of its portrait row, which no character uses: deleted with the object.
    pub unused_row: Option<i64>,
}

/// What [`cleanup_orphans`] found, and what it deleted when executed: counts, and the first
/// [`super::bucket::LISTED`] objects of each kind by key (the report does not grow with the
/// bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanReport {
    /// The environment whose objects were considered (`dev` or `prod`).
    pub env_prefix: String,
    /// Only objects last modified at least this long ago are orphans.
    pub older_than: Duration,
    /// Whether deleting was asked for (`--execute`); `false` is a dry run.
    pub executed: bool,
    /// Objects under `{env}/`.
    pub scanned: u64,
    /// Of those, objects a character shows (through its portrait row or its URL).
    pub referenced: u64,
    /// Of those, unreferenced objects left alone because they are younger than `older_than`
    /// (or their age is unknown): possibly uploads whose row is about to be written.
    pub too_young: u64,
    /// The orphans found: under `{env}/`, unreferenced, old enough, not kept in place; in key
    /// order. A dry run would delete exactly these.
    pub orphans: Listed<Orphan>,
    /// Their total size.
    pub orphan_bytes: u64,
    /// Orphans deleted, in key order (none in a dry run).
    pub deleted: Listed<ListedObject>,
    /// Their total size.
    pub deleted_bytes: u64,
    /// Unreferenced objects left alone, and why: objects a setting links to, and orphans the
    /// re-check right before deleting saved (referenced or modified since the listing, or
    /// already gone).
    pub kept: Listed<KeyFailure>,
    /// Orphans that could not be checked again or deleted, and why; they are still there.
    pub failures: Listed<KeyFailure>,
}

impl OrphanReport {
    fn new(env_prefix: &str, older_than: Duration, executed: bool) -> OrphanReport {
        OrphanReport {
            env_prefix: env_prefix.to_owned(),
            older_than,
            executed,
            scanned: 0,
            referenced: 0,
            too_young: 0,
            orphans: Listed::default(),
            orphan_bytes: 0,
            deleted: Listed::default(),
            deleted_bytes: 0,
            kept: Listed::default(),
            failures: Listed::default(),
        }
    }

    /// The keys of the orphans listed in [`OrphanReport::orphans`].
    pub fn orphan_keys(&self) -> Vec<&str> {
        self.orphans
            .listed()
            .iter()
            .map(|o| o.object.key.as_str())
            .collect()
    }

    /// The keys of the objects listed in [`OrphanReport::deleted`].
    pub fn deleted_keys(&self) -> Vec<&str> {
        self.deleted
            .listed()
            .iter()
            .map(|o| o.key.as_str())
            .collect()
    }

    /// Counts the outcome of deleting `orphan`.
    fn record(&mut self, orphan: &Orphan, outcome: Outcome) {
        let key = orphan.object.key.clone();
        match outcome {
            Outcome::Deleted => {
                self.deleted_bytes += orphan.object.size;
                self.deleted.push(orphan.object.clone());
            }
            Outcome::Kept(reason) => self.kept.push(KeyFailure { key, reason }),
            Outcome::Failed(reason) => self.failures.push(KeyFailure { key, reason }),
        }
    }
}

impl fmt::Display for OrphanReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env = &self.env_prefix;
        let age = format_age(self.older_than);
        writeln!(
            f,
            "cleanup-orphans{} for environment `{env}`: {} under `{env}/`, {} referenced, {} \
             unreferenced but newer than {age} (kept).",
            if self.executed { "" } else { " (dry run)" },
            count(self.scanned, "object"),
            self.referenced,
            self.too_young,
        )?;
        if self.orphans.is_empty() {
            writeln!(
                f,
                "No orphans: every object older than {age} is referenced by the database."
            )?;
        } else if self.executed {
            if !self.deleted.is_empty() {
                writeln!(
                    f,
                    "Deleted {} ({}) that no row references:",
                    count(self.deleted.total(), "orphan"),
                    human_bytes(self.deleted_bytes)
                )?;
                write_objects(f, self.deleted.listed().iter())?;
                self.deleted.write_unlisted(f)?;
            }
        } else {
            writeln!(
                f,
                "Would delete {} ({}) that no row references:",
                count(self.orphans.total(), "orphan"),
                human_bytes(self.orphan_bytes)
            )?;
            write_objects(f, self.orphans.listed().iter().map(|o| &o.object))?;
            self.orphans.write_unlisted(f)?;
        }
        if !self.kept.is_empty() {
            writeln!(f, "Kept {}:", count(self.kept.total(), "object"))?;
            for kept in self.kept.listed() {
                writeln!(f, "  {}: {}", kept.key, kept.reason)?;
            }
            self.kept.write_unlisted(f)?;
        }
        if !self.failures.is_empty() {
            writeln!(
                f,
                "Could not delete {} (still there; run again):",
                count(self.failures.total(), "orphan")
            )?;
            for failure in self.failures.listed() {
                writeln!(f, "  {}: {}", failure.key, failure.reason)?;
            }
            self.failures.write_unlisted(f)?;
        }
        if !self.executed && !self.orphans.is_empty() {
            writeln!(
                f,
                "Dry run: nothing was deleted. Run with --execute to delete them."
            )?;
        }
        Ok(())
    }
}

fn write_objects<'a>(
    f: &mut fmt::Formatter<'_>,
    objects: impl Iterator<Item = &'a ListedObject>,
) -> fmt::Result {
    for object in objects {
        write!(f, "  {} ({}", object.key, human_bytes(object.size))?;
        if let Some(modified) = object.last_modified {
            write!(
                f,
                ", last modified {}",
                modified.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )?;
        }
        writeln!(f, ")")?;
    }
    Ok(())
}

/// Finds the orphans under `{env_prefix}/` older than `older_than` and, only when `execute` is
/// true, deletes them. Objects under the other environment's prefix, or without a prefix, are
/// never considered, and `keep_in_place` (objects a setting links to, such as a default
/// portrait in the bucket) are left alone with their reason.
///
/// An executed run deletes each page's orphans before listing the next page, so memory holds
/// one page and the report's counts, however large the bucket.
pub async fn cleanup_orphans(
    db: &Db,
    store: &Store,
    env_prefix: &str,
    older_than: Duration,
    execute: bool,
    keep_in_place: &[KeyFailure],
) -> Result<OrphanReport, MigrationError> {
    cleanup_orphans_paged(
        db,
        store,
        env_prefix,
        older_than,
        execute,
        keep_in_place,
        LIST_PAGE_SIZE,
    )
    .await
}

/// Lists every object under `{env_prefix}/` and returns those that no character shows (through
/// a portrait row or its URL) and that were last modified at least `older_than` ago. Changes
/// nothing.
pub async fn find_orphans(
    db: &Db,
    store: &Store,
    env_prefix: &str,
    older_than: Duration,
) -> Result<OrphanReport, MigrationError> {
    find_orphans_paged(db, store, env_prefix, older_than, LIST_PAGE_SIZE).await
}

/// [`find_orphans`], listing `page_size` objects at a time (tests use small pages).
pub async fn find_orphans_paged(
    db: &Db,
    store: &Store,
    env_prefix: &str,
    older_than: Duration,
    page_size: usize,
) -> Result<OrphanReport, MigrationError> {
    cleanup_orphans_paged(db, store, env_prefix, older_than, false, &[], page_size).await
}

/// [`cleanup_orphans`], listing `page_size` objects at a time (tests use small pages).
pub async fn cleanup_orphans_paged(
    db: &Db,
    store: &Store,
    env_prefix: &str,
    older_than: Duration,
    execute: bool,
    keep_in_place: &[KeyFailure],
    page_size: usize,
) -> Result<OrphanReport, MigrationError> {
    let env = env_segment(env_prefix)?;
    let prefix = format!("{env}/");
    let now = Utc::now();
    let mut report = OrphanReport::new(env, older_than, execute);
    let mut listing = Listing::new(store, &prefix, page_size);
    while let Some(page) = listing.next_page().await? {
        // List before reading the database: a row written for a listed object is then seen. In
        // the other order, an object stored and recorded between the two reads would look
        // unreferenced.
        let keys: Vec<&str> = page.iter().map(|o| o.key.as_str()).collect();
        let mut references = page_references(db, store, &keys, Needed::WhetherShown).await?;
        report.scanned += page.len() as u64;
        let mut orphans = Vec::new();
        for object in page {
            let refs = references.remove(&object.key).unwrap_or_default();
            if refs.shown() {
                report.referenced += 1;
            } else if !old_enough(object.last_modified, older_than, now) {
                report.too_young += 1;
            } else if let Some(kept) = keep_in_place.iter().find(|k| k.key == object.key) {
                report.kept.push(kept.clone());
            } else {
                report.orphan_bytes += object.size;
                let orphan = Orphan {
                    unused_row: refs.portrait.map(|row| row.id),
                    object,
                };
                report.orphans.push(orphan.clone());
                orphans.push(orphan);
            }
        }
        if execute {
            delete_all(db, store, &prefix, &orphans, &mut report).await;
        }
    }
    Ok(report)
}

/// Deletes the orphans a dry run's report lists ([`OrphanReport::orphans`], the first
/// [`super::bucket::LISTED`]), each only after checking again, right before deleting it, that
/// it is still old enough and that no character shows it (through a portrait row or its URL);
/// an unused portrait row is deleted with its object. Objects that fail the check are counted
/// in [`OrphanReport::kept`]; errors in [`OrphanReport::failures`].
///
/// For reviewing a short list before deleting it; orphans beyond the listed ones are left for
/// [`cleanup_orphans`] with `execute`, which deletes every orphan page by page.
pub async fn delete_orphans(db: &Db, store: &Store, mut report: OrphanReport) -> OrphanReport {
    report.executed = true;
    let prefix = format!("{}/", report.env_prefix);
    let orphans = report.orphans.listed().to_vec();
    delete_all(db, store, &prefix, &orphans, &mut report).await;
    report
}

/// Deletes `orphans` in batches, counting each outcome in `report`.
async fn delete_all(
    db: &Db,
    store: &Store,
    prefix: &str,
    orphans: &[Orphan],
    report: &mut OrphanReport,
) {
    for batch in orphans.chunks(DELETE_BATCH) {
        let outcomes = delete_batch(db, store, prefix, batch, report.older_than).await;
        for (orphan, outcome) in batch.iter().zip(outcomes) {
            report.record(orphan, outcome);
        }
    }
}

enum Outcome {
    Deleted,
    Kept(String),
    Failed(String),
}

/// Checks a batch of orphans again (each object's age, then what references them, in two
/// queries for the batch) and deletes those still orphaned: first an unused portrait row (only
/// if still unused, in one statement), then the object. One outcome per object, in order.
async fn delete_batch(
    db: &Db,
    store: &Store,
    prefix: &str,
    batch: &[Orphan],
    older_than: Duration,
) -> Vec<Outcome> {
    // 1. Still there, and still old enough?
    let checked: Vec<Option<Outcome>> = stream::iter(batch)
        .map(|orphan| async move { check_object(store, prefix, &orphan.object, older_than).await })
        .buffered(DELETE_CONCURRENCY)
        .collect()
        .await;
    // 2. Still unreferenced?
    let keys: Vec<&str> = batch
        .iter()
        .zip(&checked)
        .filter(|(_, outcome)| outcome.is_none())
        .map(|(orphan, _)| orphan.object.key.as_str())
        .collect();
    let references = match page_references(db, store, &keys, Needed::WhetherShown).await {
        Ok(references) => references,
        Err(err) => {
            let reason = format!("could not check its references: {err}");
            return checked
                .into_iter()
                .map(|outcome| outcome.unwrap_or_else(|| Outcome::Failed(reason.clone())))
                .collect();
        }
    };
    // 3. Delete.
    let references = &references;
    stream::iter(batch.iter().zip(checked))
        .map(|(orphan, outcome)| async move {
            match outcome {
                Some(outcome) => outcome,
                None => delete_one(db, store, orphan, references).await,
            }
        })
        .buffered(DELETE_CONCURRENCY)
        .collect()
        .await
}

/// `Some(outcome)` when the object must not be deleted: outside the prefix, gone, or written
/// again since the listing.
async fn check_object(
    store: &Store,
    prefix: &str,
    object: &ListedObject,
    older_than: Duration,
) -> Option<Outcome> {
    let key = object.key.as_str();
    // The report's fields are public: refuse anything a caller put there that this
    // environment's cleanup would never have listed.
    if !key.starts_with(prefix) {
        return Some(Outcome::Failed(format!(
            "not under `{prefix}`; never deleted by this cleanup"
        )));
    }
    match store.head(key).await {
        Ok(None) => Some(Outcome::Kept("it no longer exists".into())),
        Ok(Some(info)) if !old_enough(info.last_modified, older_than, Utc::now()) => {
            Some(Outcome::Kept(format!(
                "it was written again within the last {}",
                format_age(older_than)
            )))
        }
        Ok(Some(_)) => None,
        Err(err) => Some(Outcome::Failed(format!("could not check it again: {err}"))),
    }
}

async fn delete_one(
    db: &Db,
    store: &Store,
    orphan: &Orphan,
    references: &HashMap<String, super::bucket::References>,
) -> Outcome {
    let object = &orphan.object;
    let key = object.key.as_str();
    let refs = references.get(key).cloned().unwrap_or_default();
    if let Some((id, url)) = refs.characters.first() {
        return Outcome::Kept(format!("character #{id} shows it now ({url})"));
    }
    if let Some(row) = &refs.portrait {
        if row.in_use {
            return Outcome::Kept(format!("a character shows portrait #{} now", row.id));
        }
        if orphan.unused_row != Some(row.id) {
            // Not the unused row the listing found: written since, by an upload in progress.
            return Outcome::Kept("a portrait row references it now".into());
        }
        match db.delete_portrait_if_unreferenced(row.id).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Outcome::Kept(format!("a character shows portrait #{} now", row.id))
            }
            Err(err) => return Outcome::Failed(format!("could not delete its row: {err}")),
        }
    }
    match store.delete(key).await {
        Ok(()) => {
            tracing::info!(key, size = object.size, "deleted an orphan object");
            Outcome::Deleted
        }
        Err(err) => {
            tracing::warn!(key, error = %err, "could not delete an orphan object");
            Outcome::Failed(format!("could not delete it: {err}"))
        }
    }
}

/// Whether an object last modified at `last_modified` is at least `older_than` old at `now`.
/// An unknown age is never old enough: only a known-old object may be deleted. A time slightly
/// in the future (clocks differ) counts as age zero.
fn old_enough(
    last_modified: Option<DateTime<Utc>>,
    older_than: Duration,
    now: DateTime<Utc>,
) -> bool {
    match last_modified {
        None => false,
        Some(modified) => {
            let age = now
                .signed_duration_since(modified)
                .to_std()
                .unwrap_or(Duration::ZERO);
            age >= older_than
        }
    }
}

/// Parses an age such as `24h`, `30m`, `7d` or `90s` (a whole number and one unit: `s`, `m`,
/// `h` or `d`). The error says what is accepted.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    let invalid = || {
        format!("`{s}` is not an age: use a whole number and a unit, s, m, h or d (e.g. 24h, 30m, 7d, 90s)")
    };
    // The unit is the last character, found by char so `24é` is refused, not a panic.
    let (unit_at, _) = text.char_indices().last().ok_or_else(invalid)?;
    let (number, unit) = text.split_at(unit_at);
    let seconds_per_unit: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(invalid()),
    };
    // `u64::from_str` accepts a leading `+`; an age is digits only.
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let seconds = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(seconds_per_unit))
        .ok_or_else(|| format!("`{s}` is too long an age"))?;
    Ok(Duration::from_secs(seconds))
}

/// An age as [`parse_age`] reads it, in the largest unit that divides it: `1d`, `36h`, `90s`.
pub fn format_age(age: Duration) -> String {
    let seconds = age.as_secs();
    match seconds {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_read_in_seconds_minutes_hours_and_days() {
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(30 * 60)));
        assert_eq!(parse_age("24h"), Ok(Duration::from_secs(24 * 3600)));
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_age(" 12h "), Ok(Duration::from_secs(12 * 3600)));
    }

    #[test]
    fn anything_else_is_refused_with_the_accepted_forms() {
        for bad in [
            "", "h", "24", "24x", "1.5h", "-1h", "+1h", "24 h", "1h30m", "24H", "d7",
        ] {
            let err = parse_age(bad).expect_err(bad);
            assert!(err.contains("e.g. 24h, 30m, 7d, 90s"), "{bad}: {err}");
        }
        let err = parse_age("99999999999999999999d").unwrap_err();
        assert!(err.contains("too long"), "{err}");
        assert!(parse_age("300000000000000d")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn ages_print_in_the_largest_whole_unit_and_parse_back() {
        for (secs, text) in [
            (0, "0s"),
            (90, "90s"),
            (1800, "30m"),
            (129_600, "36h"),
            (604_800, "7d"),
        ] {
            assert_eq!(format_age(Duration::from_secs(secs)), text);
            assert_eq!(parse_age(text), Ok(Duration::from_secs(secs)));
        }
    }

    #[test]
    fn only_objects_of_known_sufficient_age_are_old_enough() {
        let now = Utc::now();
        let hour = Duration::from_secs(3600);
        let two_hours_ago = now - chrono::Duration::hours(2);
        assert!(old_enough(Some(two_hours_ago), hour, now));
        assert!(!old_enough(Some(two_hours_ago), 3 * hour, now));
        assert!(
            !old_enough(None, Duration::ZERO, now),
            "unknown age is never old enough"
        );
        assert!(old_enough(
            Some(now + chrono::Duration::seconds(2)),
            Duration::ZERO,
            now
        ));
        assert!(!old_enough(Some(now), Duration::from_secs(u64::MAX), now));
    }

    fn object(i: usize) -> ListedObject {
        ListedObject {
            key: format!("dev/portraits/2024/05/{i:02}.png"),
            size: 1536,
            last_modified: DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    #[test]
    fn a_dry_run_report_lists_the_orphans_and_says_nothing_was_deleted() {
        let mut report = OrphanReport::new("dev", Duration::from_secs(86_400), false);
        (report.scanned, report.referenced, report.too_young) = (5, 3, 1);
        report.orphans.push(Orphan {
            object: object(1),
            unused_row: None,
        });
        report.orphan_bytes = 1536;
        let text = report.to_string();
        assert!(text.contains("(dry run) for environment `dev`: 5 objects under `dev/`, 3 referenced, 1 unreferenced but newer than 1d (kept)."), "{text}");
        assert!(
            text.contains("Would delete 1 orphan (1.5 KiB) that no row references:"),
            "{text}"
        );
        assert!(
            text.contains(
                "  dev/portraits/2024/05/01.png (1.5 KiB, last modified 2024-05-01T10:00:00Z)"
            ),
            "{text}"
        );
        assert!(text.contains("nothing was deleted"), "{text}");
        assert!(!text.contains("more (not listed)"), "{text}");

        let mut executed = OrphanReport {
            executed: true,
            ..report.clone()
        };
        executed.record(&report.orphans.listed()[0], Outcome::Deleted);
        let text = executed.to_string();
        assert!(text.contains("Deleted 1 orphan (1.5 KiB)"), "{text}");
        assert!(!text.contains("nothing was deleted"), "{text}");

        let none = OrphanReport::new("dev", Duration::ZERO, false);
        assert!(none.to_string().contains("No orphans"), "{none}");
    }

    #[test]
    fn a_report_on_many_orphans_lists_the_first_and_counts_the_rest() {
        let mut report = OrphanReport::new("dev", Duration::ZERO, true);
        for i in 0..50 {
            let orphan = Orphan {
                object: object(i),
                unused_row: None,
            };
            report.orphans.push(orphan.clone());
            report.orphan_bytes += orphan.object.size;
            let outcome = match i % 5 {
                0 => Outcome::Kept("it no longer exists".into()),
                _ => Outcome::Deleted,
            };
            report.record(&orphan, outcome);
        }
        assert_eq!(report.orphans.total(), 50);
        assert_eq!(report.orphans.listed().len(), super::super::bucket::LISTED);
        assert_eq!((report.deleted.total(), report.kept.total()), (40, 10));
        let text = report.to_string();
        assert!(
            text.contains("Deleted 40 orphans (60.0 KiB) that no row references:"),
            "{text}"
        );
        assert!(text.contains("  dev/portraits/2024/05/01.png"), "{text}");
        assert!(
            !text.contains("/26.png"),
            "only the first 20 deleted are listed: {text}"
        );
        assert!(text.contains("  … and 20 more (not listed)"), "{text}");
        assert!(text.contains("Kept 10 objects:"), "{text}");
        assert!(text.lines().count() < 50, "{text}");
    }
}
