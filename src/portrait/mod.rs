//! The portrait pipeline shared by every entry point: inspect → sanitize → key → store → record.

pub mod inspect;
pub mod key;
pub mod sanitize;
mod service;

pub use service::{
    IngestError, IngestRequest, PortraitOutcome, PortraitService, PortraitServiceSettings,
    PortraitSource, StoredPortrait, Upload,
};
