//! The application: everything built once from [`Settings`] and shared by every entry point.

use std::sync::Arc;

use crate::config::Settings;
use crate::db::{Db, DbError};
use crate::discord_api::DiscordApi;
use crate::fetch::{FetchError, Fetcher};
use crate::metrics::Metrics;
use crate::migration::cdn::CdnMigrator;
use crate::moderation::ModerationService;
use crate::portrait::{PortraitService, PortraitServiceSettings};
use crate::storage::{StorageError, Store};

/// Shared state, cheap to clone (handles inside are reference-counted).
#[derive(Debug, Clone)]
pub struct App {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub store: Arc<Store>,
    pub fetcher: Fetcher,
    pub metrics: Metrics,
    pub portraits: PortraitService,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("could not set up storage: {0}")]
    Storage(#[from] StorageError),
    #[error("could not set up downloads: {0}")]
    Fetch(#[from] FetchError),
}

impl App {
    /// Opens the database (applying migrations), sets up the store and the downloader.
    pub async fn build(settings: Settings) -> Result<App, AppError> {
        let db = Db::connect(
            settings.database_url.expose(),
            &settings.database_url.redacted(),
        )
        .await?;
        let store = Arc::new(Store::from_settings(&settings.storage)?);
        let fetcher = Fetcher::new(settings.fetch.clone())?;
        let metrics = Metrics::new();
        let portraits = PortraitService::new(
            db.clone(),
            store.clone(),
            fetcher.clone(),
            metrics.clone(),
            PortraitServiceSettings {
                key_prefix: settings.app_env.as_str().to_owned(),
                default_portrait_url: settings.default_portrait_url.clone(),
                limits: settings.inspect_limits,
                ingest_concurrency: settings.ingest_concurrency,
                decode_concurrency: settings.decode_concurrency,
            },
        );
        tracing::info!(
            database = %settings.database_url,
            storage = %store.describe(),
            env = settings.app_env.as_str(),
            "application ready"
        );
        Ok(App {
            settings: Arc::new(settings),
            db,
            store,
            fetcher,
            metrics,
            portraits,
        })
    }

    /// The CDN migrator over this application's database, pipeline and allowed origins, for
    /// `portrait-bot migrate` and `/admin migrate-portraits` alike. Without `discord`,
    /// expired Discord links cannot be refreshed.
    pub fn cdn_migrator(&self, discord: Option<DiscordApi>) -> CdnMigrator {
        CdnMigrator::new(
            self.db.clone(),
            self.portraits.clone(),
            discord,
            self.settings.fetch.allowed_origins.clone(),
        )
    }

    /// The moderation services over this application's database, store and pipeline, for the
    /// bot's `/admin` and `/privacy` commands and the CLI's `purge` alike.
    pub fn moderation(&self) -> ModerationService {
        ModerationService::new(self.db.clone(), self.store.clone(), self.portraits.clone())
    }

    /// Releases connections; call before exiting.
    pub async fn shutdown(&self) {
        self.db.close().await;
    }
}
