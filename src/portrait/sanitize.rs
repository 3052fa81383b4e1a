//! Removes private metadata from an accepted image without re-encoding it.
//!
//! Each format is walked as a container (JPEG markers, PNG chunks, GIF blocks, RIFF chunks)
//! against an allow-list of what rendering needs, wherever it sits in the file: those units are
//! copied byte for byte (the compressed pixel data above all), every other unit is dropped
//! whole, and so is anything after the end of the image. An allow-list rather than a list of
//! known metadata, because writers invent new places for private data (private PNG chunks,
//! segments after a JPEG's scans) faster than a deny-list can follow. Re-encoding would also
//! strip metadata, but it costs quality, memory and the player's original file.
//!
//! The EXIF Orientation is the one piece of metadata that changes how an image looks, so it
//! survives as a minimal EXIF block holding only that tag: phone photos stay upright.
//!
//! The walkers are our own rather than img-parts': img-parts keeps everything after a JPEG's
//! first scan as one opaque blob (including images appended after EOI, which carry their own
//! EXIF) and does not repair MPF offsets when segments are removed.

mod exif;
mod gif;
mod jpeg;
#[cfg(test)]
mod mutation_tests;
mod png;
mod rewriter;
#[cfg(test)]
mod tests;
mod webp;

use bytes::Bytes;

use crate::portrait::inspect::ImageFormat;

use gif::strip_gif;
use jpeg::strip_jpeg;
use png::strip_png;
use webp::strip_webp;

/// The file is not the container its format promises. Inspection runs first, so this means a
/// bug or bytes that changed in between, not a player mistake.
#[derive(Debug, thiserror::Error)]
pub enum SanitizeError {
    #[error("malformed {format} file: {reason}")]
    Malformed {
        format: ImageFormat,
        reason: &'static str,
    },
}

/// The stripped image and what was taken out of it, for logs.
#[derive(Debug, Clone)]
pub struct Sanitized {
    pub bytes: Bytes,
    /// Kinds of metadata removed, each listed once, in file order: "EXIF", "XMP", "IPTC",
    /// "comment", "text chunk", "plain text", "timestamp", "thumbnail", "content credentials",
    /// "application data", "other metadata", "stray data", "appended images", "trailing data".
    pub removed: Vec<&'static str>,
}

const EXIF: &str = "EXIF";
const XMP: &str = "XMP";
const IPTC: &str = "IPTC";
const COMMENT: &str = "comment";
const TEXT_CHUNK: &str = "text chunk";
const PLAIN_TEXT: &str = "plain text";
const TIMESTAMP: &str = "timestamp";
const THUMBNAIL: &str = "thumbnail";
const CONTENT_CREDENTIALS: &str = "content credentials";
const APPLICATION_DATA: &str = "application data";
const OTHER_METADATA: &str = "other metadata";
const STRAY_DATA: &str = "stray data";
const APPENDED_IMAGES: &str = "appended images";
const TRAILING_DATA: &str = "trailing data";

/// Strips metadata from `bytes`, an image already accepted as `format`. When nothing needs
/// removing, the input is returned as is (same buffer, no copy) with an empty `removed`.
pub fn strip_metadata(bytes: Bytes, format: ImageFormat) -> Result<Sanitized, SanitizeError> {
    match format {
        ImageFormat::Jpeg => strip_jpeg(bytes),
        ImageFormat::Png => strip_png(bytes),
        ImageFormat::Gif => strip_gif(bytes),
        ImageFormat::Webp => strip_webp(bytes),
    }
}
