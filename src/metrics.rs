//! Every metric the service exports, defined once with its help text.
//!
//! One [`Metrics`] per application, registered in its own [`prometheus::Registry`] (no global
//! default registry), so tests can each build an application and read exact values.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};

pub const UPLOADS_TOTAL: &str = "r2_uploads_total";
pub const UPLOAD_ERRORS_TOTAL: &str = "r2_upload_errors_total";
pub const UPLOAD_SIZE_BYTES: &str = "r2_upload_size_bytes";
pub const UPLOAD_LATENCY_SECONDS: &str = "r2_upload_latency_seconds";
pub const VALIDATION_REJECTIONS_TOTAL: &str = "portrait_validation_rejections_total";
pub const FALLBACKS_TOTAL: &str = "portrait_fallbacks_total";
pub const INGEST_STAGE_SECONDS: &str = "portrait_ingest_stage_seconds";
pub const MIGRATION_ITEMS_TOTAL: &str = "portrait_migration_items_total";
pub const MODERATION_ACTIONS_TOTAL: &str = "portrait_moderation_actions_total";

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Objects written to the store (R2, or the local folder when R2 is not configured).
    pub uploads_total: IntCounter,
    /// Failed writes to the store, by `error_type` (the storage error kind).
    pub upload_errors_total: IntCounterVec,
    pub upload_size_bytes: Histogram,
    pub upload_latency_seconds: Histogram,
    /// Files refused as not acceptable portraits, by `reason`.
    pub validation_rejections_total: IntCounterVec,
    /// Players given the default portrait because of a fault on our side, by `error_type`.
    pub fallbacks_total: IntCounterVec,
    /// Time spent in each pipeline stage (`fetch`, `inspect`, `check` (decode and sanitize), `store`,
    /// `record`).
    pub ingest_stage_seconds: HistogramVec,
    /// Characters processed by CDN migrations, by `outcome` (`migrated`, `failed`).
    pub migration_items_total: IntCounterVec,
    /// Moderation, by `action`: `removed`, `deleted`, `approved`, `rejected` (by moderators)
    /// and `blocked_upload` (an upload refused by the block-list).
    pub moderation_actions_total: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let uploads_total =
            IntCounter::new(UPLOADS_TOTAL, "Portrait objects written to object storage.")
                .expect("valid metric");
        let upload_errors_total = IntCounterVec::new(
            Opts::new(
                UPLOAD_ERRORS_TOTAL,
                "Failed portrait writes to object storage, by error type.",
            ),
            &["error_type"],
        )
        .expect("valid metric");
        let upload_size_bytes = Histogram::with_opts(
            HistogramOpts::new(
                UPLOAD_SIZE_BYTES,
                "Size of stored portrait objects in bytes.",
            )
            .buckets(prometheus::exponential_buckets(16.0 * 1024.0, 4.0, 8).expect("buckets")),
        )
        .expect("valid metric");
        let upload_latency_seconds = Histogram::with_opts(
            HistogramOpts::new(
                UPLOAD_LATENCY_SECONDS,
                "Time to write one portrait object to object storage.",
            )
            .buckets(vec![
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        )
        .expect("valid metric");
        let validation_rejections_total = IntCounterVec::new(
            Opts::new(
                VALIDATION_REJECTIONS_TOTAL,
                "Uploads refused as unacceptable portraits, by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let fallbacks_total = IntCounterVec::new(
            Opts::new(
                FALLBACKS_TOTAL,
                "Players given the default portrait because storage or the network failed.",
            ),
            &["error_type"],
        )
        .expect("valid metric");
        let ingest_stage_seconds = HistogramVec::new(
            HistogramOpts::new(
                INGEST_STAGE_SECONDS,
                "Time spent in each portrait pipeline stage.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0,
            ]),
            &["stage"],
        )
        .expect("valid metric");

        let migration_items_total = IntCounterVec::new(
            Opts::new(
                MIGRATION_ITEMS_TOTAL,
                "Characters processed by Discord CDN migrations, by outcome.",
            ),
            &["outcome"],
        )
        .expect("valid metric");

        let moderation_actions_total = IntCounterVec::new(
            Opts::new(
                MODERATION_ACTIONS_TOTAL,
                "Portraits removed, characters deleted, uploads approved or rejected, and uploads blocked by moderation.",
            ),
            &["action"],
        )
        .expect("valid metric");
        // Present at 0 from the start, so /metrics shows the series (and its help) and a rate
        // over it works before the first moderation action.
        for action in [
            "removed",
            "deleted",
            "approved",
            "rejected",
            "blocked_upload",
        ] {
            moderation_actions_total.with_label_values(&[action]);
        }

        for collector in [
            Box::new(uploads_total.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(upload_errors_total.clone()),
            Box::new(upload_size_bytes.clone()),
            Box::new(upload_latency_seconds.clone()),
            Box::new(validation_rejections_total.clone()),
            Box::new(fallbacks_total.clone()),
            Box::new(ingest_stage_seconds.clone()),
            Box::new(migration_items_total.clone()),
            Box::new(moderation_actions_total.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }

        Self {
            registry,
            uploads_total,
            upload_errors_total,
            upload_size_bytes,
            upload_latency_seconds,
            validation_rejections_total,
            fallbacks_total,
            ingest_stage_seconds,
            migration_items_total,
            moderation_actions_total,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported_with_its_help_text() {
        let metrics = Metrics::new();
        metrics.uploads_total.inc();
        metrics
            .upload_errors_total
            .with_label_values(&["transient"])
            .inc();
        metrics.upload_size_bytes.observe(1024.0);
        metrics.upload_latency_seconds.observe(0.02);
        metrics
            .validation_rejections_total
            .with_label_values(&["corrupt"])
            .inc();
        metrics
            .fallbacks_total
            .with_label_values(&["transient"])
            .inc();
        metrics
            .ingest_stage_seconds
            .with_label_values(&["decode"])
            .observe(0.01);
        metrics
            .migration_items_total
            .with_label_values(&["migrated"])
            .inc();
        let text = metrics.render();
        for name in [
            UPLOADS_TOTAL,
            UPLOAD_ERRORS_TOTAL,
            UPLOAD_SIZE_BYTES,
            UPLOAD_LATENCY_SECONDS,
            VALIDATION_REJECTIONS_TOTAL,
            FALLBACKS_TOTAL,
            INGEST_STAGE_SECONDS,
            MIGRATION_ITEMS_TOTAL,
        ] {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} missing:\n{text}"
            );
        }
        assert!(text.contains("r2_upload_errors_total{error_type=\"transient\"} 1"));
    }
}
