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

use crate::db::PortraitRecord;
use crate::db::{Character, Db, DbError, MigrationRun};
use crate::discord_api::{DiscordApi, REFRESH_BATCH};
use crate::fetch::{redacted, Origin};
use crate::metrics::Metrics;
use crate::moderation::history::{self, Action, Actor};
use crate::portrait::{IngestError, IngestRequest, PortraitService, PortraitSource, Upload};

/// How many items a dry run lists.
const DRY_RUN_SAMPLE: usize = 10;
/// Candidates read from the database at a time: memory stays flat however many there are.
pub const PAGE_SIZE: usize = 500;
/// Failures kept for the summary; past this they are only counted (each one is recorded in
/// the run's items, which `/admin migration-status` and the database show).
const LISTED_FAILURES: usize = 1000;

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
    /// Characters not migrated.
    pub failed: u64,
    /// The failures, in character order (the first thousand; every one is in the run's items).
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
            self.run_id, self.migrated, self.selected, self.failed
        )?;
        for failure in &self.failures {
            writeln!(
                f,
                "  {} (character {}): {} — {}",
                failure.character_name, failure.character_id, failure.url, failure.reason
            )?;
        }
        if self.failed > self.failures.len() as u64 {
            writeln!(
                f,
                "  … and {} more (every failure is recorded with run {})",
                self.failed - self.failures.len() as u64,
                self.run_id
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
    page_size: usize,
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
            page_size: PAGE_SIZE,
        }
    }

    /// Read candidates in pages of `page_size` (the default is [`PAGE_SIZE`]); tests use small
    /// pages to cross page boundaries.
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// The characters a run would migrate now, in id order (at most `limit`). Reads the
    /// database page by page; for tests and small tools, a run never holds them all.
    pub async fn select(&self, limit: Option<usize>) -> Result<Vec<Character>, DbError> {
        let mut selected = Vec::new();
        let mut pages = self.pages(limit);
        while let Some(page) = pages.next(&self.db).await? {
            selected.extend(page);
        }
        Ok(selected)
    }

    /// How many characters a run with `limit` would select: a COUNT, bounded by the limit so
    /// `--limit K` stays O(K).
    async fn count(&self, limit: Option<usize>) -> Result<u64, DbError> {
        self.db
            .count_external_portraits(&self.url_prefixes(), limit)
            .await
    }

    fn pages(&self, limit: Option<usize>) -> Pages {
        Pages {
            prefixes: self.url_prefixes(),
            after_id: 0,
            remaining: limit.unwrap_or(usize::MAX),
            page_size: self.page_size,
        }
    }

    /// `{origin}/` for every CDN origin: what a Discord CDN link starts with.
    fn url_prefixes(&self) -> Vec<String> {
        self.cdn_origins.iter().map(|o| format!("{o}/")).collect()
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
        // Holding the lease, no other run can be working: one still `running` was killed.
        match self.db.interrupt_abandoned_runs().await {
            Ok(runs) => {
                for run in runs {
                    tracing::info!(
                        run = run.id,
                        migrated = run.migrated,
                        failed = run.failed,
                        "marked a migration run that was killed as interrupted"
                    );
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not mark killed migration runs"),
        }
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
        let total = self.count(options.limit).await?;
        self.db.set_migration_run_selected(run.id, total).await?;
        on_progress(Progress {
            total,
            ..Progress::default()
        });
        // The COUNT bounds the run: characters added meanwhile wait for the next one.
        let mut pages = self.pages(Some(total.try_into().unwrap_or(usize::MAX)));

        if options.dry_run {
            let (mut selected, mut expired, mut sample) = (0u64, 0u64, Vec::new());
            while let Some(page) = pages.next(&self.db).await? {
                selected += page.len() as u64;
                for character in &page {
                    if character
                        .portrait_url
                        .as_deref()
                        .is_some_and(link_has_expired)
                    {
                        expired += 1;
                    }
                    if sample.len() < DRY_RUN_SAMPLE {
                        sample.push(format!("{}: {}", character.name, shown_link(character)));
                    }
                }
            }
            self.db.finish_migration_run(run.id, selected, 0, 0).await?;
            return Ok(MigrationSummary {
                run_id: run.id,
                dry_run: true,
                selected,
                migrated: 0,
                failed: 0,
                failures: Vec::new(),
                expired,
                sample,
            });
        }

        let counters = Counters::new(total, self.portraits.metrics().clone());
        let failures = Mutex::new(Vec::new());
        let mut expired = 0;
        while let Some(page) = pages.next(&self.db).await? {
            expired += self
                .migrate_page(&run, &page, options, &counters, &failures, on_progress)
                .await;
        }

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
            failed: progress.failed,
            failures,
            expired,
            sample: Vec::new(),
        })
    }

    /// Migrates one page of candidates; returns how many of their links had visibly expired.
    ///
    /// Characters sharing a link are one group: the first is downloaded and stored, the others
    /// are given the same portrait, so a link shared by six characters is fetched once and
    /// stored once.
    async fn migrate_page(
        &self,
        run: &MigrationRun,
        page: &[Character],
        options: &MigrateOptions,
        counters: &Counters,
        failures: &Mutex<Vec<Failure>>,
        on_progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> u64 {
        let groups = group_by_link(page);

        // Links whose signature has visibly expired are refreshed up front, in batches.
        let expired: Vec<String> = groups
            .iter()
            .map(|g| g.link.clone())
            .filter(|u| link_has_expired(u))
            .collect();
        let mut refresh = self.refresh(&expired).await;

        let retry_after_refresh = Mutex::new(Vec::new());
        futures::stream::iter(&groups)
            .for_each_concurrent(options.concurrency.max(1), |group| {
                let refresh = &refresh;
                let retry_after_refresh = &retry_after_refresh;
                async move {
                    let link = refresh.fresh.get(&group.link).unwrap_or(&group.link);
                    match self
                        .migrate_group(run, group, link, counters, failures, on_progress)
                        .await
                    {
                        Ok(()) => {}
                        Err(err)
                            if is_gone(&err)
                                && self.discord.is_some()
                                && !refresh.fresh.contains_key(&group.link) =>
                        {
                            // Try again after refreshing the link with Discord, in a batch.
                            retry_after_refresh.lock().unwrap().push(group);
                        }
                        Err(err) => {
                            let reason = match refresh.failed.get(&group.link) {
                                Some(why) if is_gone(&err) => not_refreshed(why),
                                _ => failure_reason(&err, self.discord.is_some()),
                            };
                            self.fail_group(run, group, &reason, counters, failures, on_progress)
                                .await;
                        }
                    }
                }
            })
            .await;

        let second_chance = retry_after_refresh.into_inner().unwrap();
        let links: Vec<String> = second_chance.iter().map(|g| g.link.clone()).collect();
        let again = self.refresh(&links).await;
        refresh.fresh.extend(again.fresh);
        refresh.failed.extend(again.failed);
        futures::stream::iter(second_chance)
            .for_each_concurrent(options.concurrency.max(1), |group| {
                let refresh = &refresh;
                async move {
                    if let Some(why) = refresh.failed.get(&group.link) {
                        // The refresh itself failed: the link may well be fine once refreshed.
                        let reason = not_refreshed(why);
                        self.fail_group(run, group, &reason, counters, failures, on_progress)
                            .await;
                        return;
                    }
                    let link = refresh.fresh.get(&group.link).unwrap_or(&group.link);
                    if let Err(err) = self
                        .migrate_group(run, group, link, counters, failures, on_progress)
                        .await
                    {
                        let reason = failure_reason(&err, self.discord.is_some());
                        self.fail_group(run, group, &reason, counters, failures, on_progress)
                            .await;
                    }
                }
            })
            .await;
        groups
            .iter()
            .filter(|g| link_has_expired(&g.link))
            .map(|g| g.characters.len() as u64)
            .sum()
    }

    /// Migrates the group's first character from `link`, then shares its portrait with the
    /// others. An error means the first one failed and nothing changed for the group.
    async fn migrate_group(
        &self,
        run: &MigrationRun,
        group: &LinkGroup<'_>,
        link: &str,
        counters: &Counters,
        failures: &Mutex<Vec<Failure>>,
        on_progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<(), IngestError> {
        let (first, others) = group
            .characters
            .split_first()
            .expect("groups are not empty");
        let record = self.migrate_one(run, first, &group.link, link).await?;
        counters.migrated(on_progress);
        for character in others {
            let request = migration_request(run, character, &group.link);
            let shared = match self.portraits.share_portrait(&record, &request).await {
                Ok(_) => Ok(()),
                // The object vanished: store it again from the link.
                Err(IngestError::Storage(_)) => self
                    .migrate_one(run, character, &group.link, link)
                    .await
                    .map(|_| ()),
                Err(err) => Err(err),
            };
            match shared {
                Ok(()) => counters.migrated(on_progress),
                Err(err) => {
                    let reason = failure_reason(&err, self.discord.is_some());
                    self.record_failure(run, character, &group.link, &reason, failures)
                        .await;
                    counters.failed(on_progress);
                }
            }
        }
        Ok(())
    }

    async fn fail_group(
        &self,
        run: &MigrationRun,
        group: &LinkGroup<'_>,
        reason: &str,
        counters: &Counters,
        failures: &Mutex<Vec<Failure>>,
        on_progress: &(dyn Fn(Progress) + Send + Sync),
    ) {
        for character in &group.characters {
            self.record_failure(run, character, &group.link, reason, failures)
                .await;
            counters.failed(on_progress);
        }
    }

    async fn migrate_one(
        &self,
        run: &MigrationRun,
        character: &Character,
        legacy: &str,
        link: &str,
    ) -> Result<PortraitRecord, IngestError> {
        let request = migration_request(run, character, legacy);
        let upload = Upload::Url {
            url: link.to_owned(),
            declared_size: None,
        };
        self.portraits
            .ingest(upload, &request)
            .await
            .map(|stored| stored.record)
    }

    async fn record_failure(
        &self,
        run: &MigrationRun,
        character: &Character,
        legacy: &str,
        reason: &str,
        failures: &Mutex<Vec<Failure>>,
    ) {
        tracing::info!(character_id = character.id, %reason, "portrait not migrated");
        if let Err(db_err) = self
            .db
            .record_migration_failure(run.id, character.id, legacy, reason)
            .await
        {
            tracing::error!(error = %db_err, "could not record a migration failure");
        }
        let mut failures = failures.lock().unwrap();
        if failures.len() < LISTED_FAILURES {
            failures.push(Failure {
                character_id: character.id,
                character_name: character.name.clone(),
                url: shown_link(character),
                reason: reason.to_owned(),
            });
        }
    }

    /// Fresh links for expired ones, in batches of at most 50. Best effort: the endpoint is
    /// undocumented, so a failed call leaves its links as they were, and says why.
    async fn refresh(&self, links: &[String]) -> Refreshed {
        let mut refreshed = Refreshed::default();
        let Some(discord) = &self.discord else {
            return refreshed;
        };
        for batch in links.chunks(REFRESH_BATCH) {
            match discord.refresh_urls(batch).await {
                Ok(fresh) => refreshed.fresh.extend(fresh),
                Err(err) => {
                    tracing::warn!(error = %err, links = batch.len(), "could not refresh expired links");
                    let why = err.to_string();
                    refreshed
                        .failed
                        .extend(batch.iter().map(|link| (link.clone(), why.clone())));
                }
            }
        }
        refreshed
    }

    /// Restores the legacy URLs the run replaced, recording each restored character's
    /// change in its history as `by`'s; returns how many characters were restored.
    pub async fn rollback(&self, run_id: i64, by: Actor) -> Result<u64, CdnMigrationError> {
        let run = self
            .db
            .migration_run(run_id)
            .await?
            .ok_or(CdnMigrationError::UnknownRun(run_id))?;
        if run.dry_run {
            return Err(CdnMigrationError::DryRunRollback(run_id));
        }
        let by = history::by(by, Action::RolledBack);
        Ok(self.db.rollback_migration_run(run_id, &by).await?)
    }
}

/// What [`CdnMigrator::refresh`] got: fresh links, and the links whose refresh call failed
/// (Discord error or timeout) with the reason.
#[derive(Default)]
struct Refreshed {
    fresh: HashMap<String, String>,
    failed: HashMap<String, String>,
}

/// Characters of one page that show the same link.
struct LinkGroup<'a> {
    link: String,
    characters: Vec<&'a Character>,
}

/// The page's characters grouped by link, groups in the order of their first character.
fn group_by_link(page: &[Character]) -> Vec<LinkGroup<'_>> {
    let mut groups: Vec<LinkGroup<'_>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for character in page {
        let link = character.portrait_url.as_deref().unwrap_or_default();
        match index.get(link) {
            Some(&i) => groups[i].characters.push(character),
            None => {
                index.insert(link, groups.len());
                groups.push(LinkGroup {
                    link: link.to_owned(),
                    characters: vec![character],
                });
            }
        }
    }
    groups
}

fn migration_request<'a>(
    run: &MigrationRun,
    character: &'a Character,
    legacy: &'a str,
) -> IngestRequest<'a> {
    IngestRequest {
        character,
        uploader_id: character.owner_id,
        source: PortraitSource::Migration,
        legacy_url: Some(legacy),
        migration_run: Some(run.id),
    }
}

/// Candidate pages, by id (keyset paging), until `remaining` characters have been read.
struct Pages {
    prefixes: Vec<String>,
    after_id: i64,
    remaining: usize,
    page_size: usize,
}

impl Pages {
    async fn next(&mut self, db: &Db) -> Result<Option<Vec<Character>>, DbError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let page = db
            .external_portraits_page(
                &self.prefixes,
                self.after_id,
                self.page_size.min(self.remaining),
            )
            .await?;
        let Some(last) = page.last() else {
            self.remaining = 0;
            return Ok(None);
        };
        self.after_id = last.id;
        self.remaining -= page.len();
        Ok(Some(page))
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

/// The reason for a link whose refresh call failed: not known to be gone, retried next run.
fn not_refreshed(why: &str) -> String {
    format!(
        "not refreshed: the link has expired and Discord's link refresh failed ({why}); \
         it will be retried when the migration runs again"
    )
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
