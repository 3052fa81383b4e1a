//! Moving portraits that still live on Discord's CDN into our bucket.
//!
//! Each character is migrated through the shared pipeline; its row changes only after its
//! object is stored, in the same transaction that records what the run did (for rollback).
//! Keys are content-addressed, so a run killed at any point and started again converges on the
//! same state with no duplicate objects: the object of a half-finished item is found and reused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;

use crate::db::{Character, Db, DbError, MigrationRun};
use crate::discord_api::{DiscordApi, REFRESH_BATCH};
use crate::fetch::{redacted, Origin};
use crate::metrics::Metrics;
use crate::portrait::{IngestError, IngestRequest, PortraitService, PortraitSource, Upload};

/// How many items a dry run lists.
const DRY_RUN_SAMPLE: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum CdnMigrationError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("there is no migration run {0}")]
    UnknownRun(i64),
    #[error("run {0} was a dry run; it changed nothing, so there is nothing to roll back")]
    DryRunRollback(i64),
    #[error(
        "a migration is already running ({holder}; its lease runs until {until} unless renewed). \
         Wait for it to finish; /admin migration-status shows its progress."
    )]
    AlreadyRunning { holder: String, until: String },
}

/// The lease every migrating process must hold: one migration at a time, across machines.
const LEASE_NAME: &str = "cdn-migration";
/// A holder that stops renewing (a crashed machine) loses the lease after this long.
const LEASE_TTL: Duration = Duration::from_secs(120);
const LEASE_RENEW_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub dry_run: bool,
    pub limit: Option<usize>,
    pub concurrency: usize,
    /// Who started it, for the run record (a Discord user, or `cli`).
    pub started_by: String,
}

/// Counts so far, for progress bars and messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub total: u64,
    pub done: u64,
    pub migrated: u64,
    pub failed: u64,
}

/// A character that could not be migrated; its URL was left as it was.
#[derive(Debug, Clone)]
pub struct Failure {
    pub character_id: i64,
    pub character_name: String,
    /// The link without its signature (query string).
    pub url: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct MigrationSummary {
    pub run_id: i64,
    pub dry_run: bool,
    pub selected: u64,
    pub migrated: u64,
    pub failures: Vec<Failure>,
    /// Dry run: links whose `ex` time has passed (they will need a refresh).
    pub expired: u64,
    /// Dry run: the first characters that would be migrated, as `name: url`.
    pub sample: Vec<String>,
}

impl std::fmt::Display for MigrationSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.dry_run {
            writeln!(
                f,
                "Dry run {}: {} portraits would be migrated ({} links have expired and would be refreshed first). Nothing was changed.",
                self.run_id, self.selected, self.expired
            )?;
            for line in &self.sample {
                writeln!(f, "  {line}")?;
            }
            if self.selected as usize > self.sample.len() {
                writeln!(
                    f,
                    "  … and {} more",
                    self.selected as usize - self.sample.len()
                )?;
            }
            return Ok(());
        }
        writeln!(
            f,
            "Run {}: {} of {} portraits migrated, {} failed.",
            self.run_id,
            self.migrated,
            self.selected,
            self.failures.len()
        )?;
        for failure in &self.failures {
            writeln!(
                f,
                "  {} (character {}): {} — {}",
                failure.character_name, failure.character_id, failure.url, failure.reason
            )?;
        }
        if !self.failures.is_empty() {
            writeln!(
                f,
                "Failed characters keep their old link; run the migration again to retry them."
            )?;
        }
        Ok(())
    }
}

/// Runs CDN migrations and rollbacks.
#[derive(Debug, Clone)]
pub struct CdnMigrator {
    db: Db,
    portraits: PortraitService,
    discord: Option<DiscordApi>,
    cdn_origins: Vec<Origin>,
}

impl CdnMigrator {
    /// `discord` refreshes expired links; without it, expired links fail with a reason that
    /// says so. `cdn_origins` are the origins whose links count as Discord CDN links.
    pub fn new(
        db: Db,
        portraits: PortraitService,
        discord: Option<DiscordApi>,
        cdn_origins: Vec<Origin>,
    ) -> Self {
        Self {
            db,
            portraits,
            discord,
            cdn_origins,
        }
    }

    /// The characters a run would migrate now, in id order.
    pub async fn select(&self, limit: Option<usize>) -> Result<Vec<Character>, DbError> {
        let mut selected: Vec<Character> = self
            .db
            .characters_with_external_portraits()
            .await?
            .into_iter()
            .filter(|c| {
                c.portrait_url
                    .as_deref()
                    .is_some_and(|u| self.is_cdn_link(u))
            })
            .collect();
        if let Some(limit) = limit {
            selected.truncate(limit);
        }
        Ok(selected)
    }

    fn is_cdn_link(&self, url: &str) -> bool {
        url::Url::parse(url)
            .ok()
            .and_then(|u| Origin::of(&u))
            .is_some_and(|origin| self.cdn_origins.contains(&origin))
    }

    /// Migrates every selected character (or reports what would happen, for a dry run).
    /// A real run holds the migration lease: a second one, here or on another machine, is
    /// refused with the name of the holder.
    pub async fn run(
        &self,
        options: &MigrateOptions,
        on_progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<MigrationSummary, CdnMigrationError> {
        if options.dry_run {
            return self.run_holding_lease(options, on_progress).await;
        }
        let holder = lease_holder(&options.started_by);
        self.acquire_lease(&holder).await?;
        let (stop_renewing, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let renewer = {
            let db = self.db.clone();
            let holder = holder.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        () = tokio::time::sleep(LEASE_RENEW_EVERY) => {
                            match db.renew_lease(LEASE_NAME, &holder, LEASE_TTL).await {
                                Ok(true) => {}
                                Ok(false) => tracing::error!("lost the migration lease while running"),
                                Err(err) => tracing::warn!(error = %err, "could not renew the migration lease"),
                            }
                        }
                    }
                }
            })
        };
        let result = self.run_holding_lease(options, on_progress).await;
        let _ = stop_renewing.send(());
        let _ = renewer.await;
        if let Err(err) = self.db.release_lease(LEASE_NAME, &holder).await {
            tracing::warn!(error = %err, "could not release the migration lease; it expires by itself");
        }
        result
    }

    async fn acquire_lease(&self, holder: &str) -> Result<(), CdnMigrationError> {
        match self
            .db
            .try_acquire_lease(LEASE_NAME, holder, LEASE_TTL)
            .await?
        {
            Ok(()) => Ok(()),
            // A run on this machine that was killed cannot renew or release; take its lease
            // instead of waiting for it to expire.
            Err(current)
                if holder_died_here(&current.holder)
                    && self
                        .db
                        .take_over_lease(LEASE_NAME, &current.holder, holder, LEASE_TTL)
                        .await? =>
            {
                tracing::info!(previous = %current.holder, "took over the lease of a migration that died");
                Ok(())
            }
            Err(current) => Err(CdnMigrationError::AlreadyRunning {
                holder: current.holder,
                until: current.expires_at,
            }),
        }
    }

    async fn run_holding_lease(
        &self,
        options: &MigrateOptions,
        on_progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<MigrationSummary, CdnMigrationError> {
        let run = self
            .db
            .start_migration_run(options.dry_run, &options.started_by)
            .await?;
        let selected = self.select(options.limit).await?;
        let total = selected.len() as u64;
        on_progress(Progress {
            total,
            ..Progress::default()
        });

        if options.dry_run {
            let expired = selected
                .iter()
                .filter(|c| c.portrait_url.as_deref().is_some_and(link_has_expired))
                .count() as u64;
            let sample = selected
                .iter()
                .take(DRY_RUN_SAMPLE)
                .map(|c| format!("{}: {}", c.name, shown_link(c)))
                .collect();
            self.db.finish_migration_run(run.id, total, 0, 0).await?;
            return Ok(MigrationSummary {
                run_id: run.id,
                dry_run: true,
                selected: total,
                migrated: 0,
                failures: Vec::new(),
                expired,
                sample,
            });
        }

        // Links whose signature has visibly expired are refreshed up front, in batches.
        let expired: Vec<String> = selected
            .iter()
            .filter_map(|c| c.portrait_url.clone())
            .filter(|u| link_has_expired(u))
            .collect();
        let mut fresh_links = self.refresh(&expired).await;

        let counters = Counters::new(total, self.portraits.metrics().clone());
        let retry_after_refresh = Mutex::new(Vec::new());
        let failures = Mutex::new(Vec::new());
        futures::stream::iter(&selected)
            .for_each_concurrent(options.concurrency.max(1), |character| {
                let counters = &counters;
                let fresh_links = &fresh_links;
                let retry_after_refresh = &retry_after_refresh;
                let failures = &failures;
                let run = &run;
                async move {
                    let legacy = character.portrait_url.clone().unwrap_or_default();
                    let link = fresh_links.get(&legacy).cloned().unwrap_or(legacy.clone());
                    match self.migrate_one(run, character, &legacy, &link).await {
                        Ok(()) => counters.migrated(on_progress),
                        Err(err)
                            if is_gone(&err)
                                && self.discord.is_some()
                                && !fresh_links.contains_key(&legacy) =>
                        {
                            // Try again after refreshing the link with Discord, in a batch.
                            retry_after_refresh.lock().unwrap().push(character);
                        }
                        Err(err) => {
                            self.record_failure(run, character, &legacy, &err, failures)
                                .await;
                            counters.failed(on_progress);
                        }
                    }
                }
            })
            .await;

        let second_chance = retry_after_refresh.into_inner().unwrap();
        let links: Vec<String> = second_chance
            .iter()
            .filter_map(|c| c.portrait_url.clone())
            .collect();
        fresh_links.extend(self.refresh(&links).await);
        futures::stream::iter(second_chance)
            .for_each_concurrent(options.concurrency.max(1), |character| {
                let counters = &counters;
                let fresh_links = &fresh_links;
                let failures = &failures;
                let run = &run;
                async move {
                    let legacy = character.portrait_url.clone().unwrap_or_default();
                    let result = match fresh_links.get(&legacy) {
                        Some(link) => self.migrate_one(run, character, &legacy, link).await,
                        None => self.migrate_one(run, character, &legacy, &legacy).await,
                    };
                    match result {
                        Ok(()) => counters.migrated(on_progress),
                        Err(err) => {
                            self.record_failure(run, character, &legacy, &err, failures)
                                .await;
                            counters.failed(on_progress);
                        }
                    }
                }
            })
            .await;

        let progress = counters.snapshot();
        self.db
            .finish_migration_run(run.id, total, progress.migrated, progress.failed)
            .await?;
        let mut failures = failures.into_inner().unwrap();
        failures.sort_by_key(|f| f.character_id);
        Ok(MigrationSummary {
            run_id: run.id,
            dry_run: false,
            selected: total,
            migrated: progress.migrated,
            failures,
            expired: expired.len() as u64,
            sample: Vec::new(),
        })
    }

    async fn migrate_one(
        &self,
        run: &MigrationRun,
        character: &Character,
        legacy: &str,
        link: &str,
    ) -> Result<(), IngestError> {
        let request = IngestRequest {
            character,
            uploader_id: character.owner_id,
            source: PortraitSource::Migration,
            legacy_url: Some(legacy),
            migration_run: Some(run.id),
        };
        let upload = Upload::Url {
            url: link.to_owned(),
            declared_size: None,
        };
        self.portraits.ingest(upload, &request).await.map(|_| ())
    }

    async fn record_failure(
        &self,
        run: &MigrationRun,
        character: &Character,
        legacy: &str,
        err: &IngestError,
        failures: &Mutex<Vec<Failure>>,
    ) {
        let reason = failure_reason(err, self.discord.is_some());
        tracing::info!(character_id = character.id, %reason, "portrait not migrated");
        if let Err(db_err) = self
            .db
            .record_migration_failure(run.id, character.id, legacy, &reason)
            .await
        {
            tracing::error!(error = %db_err, "could not record a migration failure");
        }
        failures.lock().unwrap().push(Failure {
            character_id: character.id,
            character_name: character.name.clone(),
            url: shown_link(character),
            reason,
        });
    }

    /// Fresh links for expired ones, in batches of at most 50. Best effort: the endpoint is
    /// undocumented, so a failure leaves the links as they were.
    async fn refresh(&self, links: &[String]) -> HashMap<String, String> {
        let mut fresh = HashMap::new();
        let Some(discord) = &self.discord else {
            return fresh;
        };
        for batch in links.chunks(REFRESH_BATCH) {
            match discord.refresh_urls(batch).await {
                Ok(refreshed) => fresh.extend(refreshed),
                Err(err) => tracing::warn!(error = %err, "could not refresh expired links"),
            }
        }
        fresh
    }

    /// Restores the legacy URLs the run replaced; returns how many characters were restored.
    pub async fn rollback(&self, run_id: i64) -> Result<u64, CdnMigrationError> {
        let run = self
            .db
            .migration_run(run_id)
            .await?
            .ok_or(CdnMigrationError::UnknownRun(run_id))?;
        if run.dry_run {
            return Err(CdnMigrationError::DryRunRollback(run_id));
        }
        Ok(self.db.rollback_migration_run(run_id).await?)
    }
}

struct Counters {
    metrics: Metrics,
    total: u64,
    done: AtomicU64,
    migrated: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    fn new(total: u64, metrics: Metrics) -> Self {
        Self {
            metrics,
            total,
            done: AtomicU64::new(0),
            migrated: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    fn migrated(&self, on_progress: &(dyn Fn(Progress) + Send + Sync)) {
        self.metrics
            .migration_items_total
            .with_label_values(&["migrated"])
            .inc();
        self.migrated.fetch_add(1, Ordering::SeqCst);
        self.done.fetch_add(1, Ordering::SeqCst);
        on_progress(self.snapshot());
    }

    fn failed(&self, on_progress: &(dyn Fn(Progress) + Send + Sync)) {
        self.metrics
            .migration_items_total
            .with_label_values(&["failed"])
            .inc();
        self.failed.fetch_add(1, Ordering::SeqCst);
        self.done.fetch_add(1, Ordering::SeqCst);
        on_progress(self.snapshot());
    }

    fn snapshot(&self) -> Progress {
        Progress {
            total: self.total,
            done: self.done.load(Ordering::SeqCst),
            migrated: self.migrated.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
        }
    }
}

/// `"{who} on {machine} (pid {pid})"`: readable in refusals, and parseable by
/// [`holder_died_here`].
fn lease_holder(started_by: &str) -> String {
    format!(
        "started by {started_by} on {} (pid {})",
        machine_name(),
        std::process::id()
    )
}

/// Fly.io's machine id, else the host name.
fn machine_name() -> String {
    std::env::var("FLY_MACHINE_ID")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// Whether a lease holder ran on this machine and its process is gone.
fn holder_died_here(holder: &str) -> bool {
    let Some((rest, pid)) = holder.rsplit_once(" (pid ") else {
        return false;
    };
    let Some(machine) = rest.rsplit_once(" on ").map(|(_, m)| m) else {
        return false;
    };
    let Ok(pid) = pid.trim_end_matches(')').parse::<u32>() else {
        return false;
    };
    machine == machine_name()
        && pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn is_gone(err: &IngestError) -> bool {
    matches!(err, IngestError::Download(fetch) if fetch.is_gone())
}

fn failure_reason(err: &IngestError, can_refresh: bool) -> String {
    match err {
        IngestError::Download(fetch) if fetch.is_gone() && can_refresh => {
            format!("gone even after refreshing the link: {fetch}")
        }
        IngestError::Download(fetch) if fetch.is_gone() => {
            format!("{fetch} (set DISCORD_TOKEN so expired links can be refreshed)")
        }
        IngestError::Rejected(rejection) => format!("{} ({})", rejection.reason(), rejection),
        other => other.to_string(),
    }
}

/// Discord's signed links carry `ex`, the expiry as hex Unix seconds.
fn link_has_expired(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    let expiry = parsed
        .query_pairs()
        .find(|(k, _)| k == "ex")
        .and_then(|(_, v)| i64::from_str_radix(&v, 16).ok());
    expiry.is_some_and(|ex| ex < chrono::Utc::now().timestamp())
}

fn shown_link(character: &Character) -> String {
    character
        .portrait_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| redacted(&u))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_holder_is_dead_only_on_this_machine_with_its_process_gone() {
        let alive = lease_holder("cli");
        assert!(!holder_died_here(&alive), "our own process is alive");
        let dead = format!("started by cli on {} (pid 4194303)", machine_name());
        assert!(holder_died_here(&dead));
        assert!(!holder_died_here(
            "started by cli on another-machine (pid 4194303)"
        ));
        assert!(!holder_died_here("garbage"));
    }

    #[test]
    fn a_link_has_expired_when_its_hex_ex_time_has_passed() {
        let past = format!(
            "https://cdn.discordapp.com/a/1/2/x.png?ex={:x}&is=0&hm=0",
            1_000
        );
        let future = format!(
            "https://cdn.discordapp.com/a/1/2/x.png?ex={:x}&is=0&hm=0",
            chrono::Utc::now().timestamp() + 3600
        );
        assert!(link_has_expired(&past));
        assert!(!link_has_expired(&future));
        assert!(!link_has_expired(
            "https://cdn.discordapp.com/a/1/2/old-unsigned.png"
        ));
    }
}
