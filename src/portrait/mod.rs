//! The portrait pipeline shared by every entry point: inspect → sanitize → key → store → record.

pub mod formats;
pub mod inspect;
pub mod key;
pub mod registration;
pub mod sanitize;
mod service;

pub use service::{
    IngestError, IngestRequest, InlineImage, PendingUpload, PortraitOutcome, PortraitService,
    PortraitServiceSettings, PortraitSource, StoredPortrait, Upload,
};

/// The placeholder shown when a character has no portrait of its own.
pub const DEFAULT_PORTRAIT_PNG: &[u8] = include_bytes!("../../assets/default-portrait.png");
