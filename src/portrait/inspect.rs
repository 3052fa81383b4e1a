//! Decides whether uploaded bytes are an acceptable portrait.
//!
//! Two steps, so callers can keep the expensive one behind a semaphore:
//! [`inspect_header`] is cheap (size, magic bytes, dimensions from the header) and
//! [`verify_decodes`] proves every frame decodes. Nothing here trusts a filename or a declared
//! content type: those are not even inputs.
//!
//! Memory is the constraint that shapes the decoding code (the bot runs on a 256 MiB VM with
//! several uploads in flight): each codec crate is driven directly so pixels never have to
//! exist as a full RGBA frame when the format allows it — PNG row by row, JPEG as one byte per
//! pixel, GIF row by row in palette indices. Every decoder is bounded by limits derived from
//! [`InspectLimits`], and dimensions are checked before any decoder allocates for them.
//!
//! Integrity is checked as strictly as common decoders check it: every PNG chunk's CRC (APNG
//! frames included) and the zlib checksum, JPEG in strict mode, and an embedded colour profile
//! no larger than [`MAX_COLOUR_PROFILE_BYTES`] (see `profile`).
//!
//! The same decode averages the first frame into a [`Thumbnail`], a grid of at most 32×32
//! greys from which the block-list's perceptual hash is computed: comparing an upload with the
//! block-list needs no decode of its own.

mod decode;
mod header;
mod profile;
mod sniff;
#[cfg(test)]
pub(crate) mod tests;
mod thumbnail;

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::units::human_bytes;

use decode::{verify_gif, verify_jpeg, verify_png, verify_webp};
use header::{read_header, DECODER_STATE_MEMORY};
use profile::check_colour_profile;
use sniff::sniff;
pub use thumbnail::{Thumbnail, THUMBNAIL_SIDE};

/// The image formats accepted as portraits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl ImageFormat {
    /// The `Content-Type` to store the image with.
    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }

    /// The file extension for object keys, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Gif => "gif",
            Self::Webp => "webp",
        }
    }

    /// The name players know the format by, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::Gif => "GIF",
            Self::Webp => "WebP",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an upload may weigh; everything above is refused before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InspectLimits {
    /// Largest file, in bytes.
    pub max_bytes: u64,
    /// Largest width or height, in pixels.
    pub max_dimension: u32,
    /// Largest width × height.
    pub max_pixels: u64,
    /// Most working memory one decode check may need, in bytes, as estimated from the header.
    /// Progressive JPEGs and WebPs need several bytes per pixel, so this refuses a huge one that
    /// the pixel limit alone would let through to exhaust a small VM.
    pub max_decode_memory: u64,
}

impl Default for InspectLimits {
    /// The documented defaults: `MAX_UPLOAD_BYTES`, `MAX_IMAGE_DIMENSION`, `MAX_IMAGE_PIXELS`,
    /// `MAX_DECODE_MEMORY_MIB`.
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            max_dimension: 10_000,
            max_pixels: 40_000_000,
            max_decode_memory: 96 * 1024 * 1024,
        }
    }
}

/// What inspection learnt about an accepted image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// Peak working memory of the decode check, in bytes, estimated from the header (an upper
    /// bound for the decoders this module drives).
    pub decode_memory: u64,
    /// Frames proven to decode: 0 after [`inspect_header`] alone, at least 1 after [`inspect`].
    pub frames_checked: u32,
}

/// Animations decode every frame, so their cost is the sum over frames. A portrait animation
/// may add up to this many times `max_pixels` (e.g. 640 megapixels with the defaults: 160
/// frames of 2000×2000), which bounds the CPU a small, highly compressible file can demand.
pub const ANIMATION_PIXEL_BUDGET_FACTOR: u64 = 16;

/// The largest embedded colour profile (ICC) accepted, in bytes, inflated. Real profiles are a
/// few KiB to a few hundred; anything larger is refused rather than inflated or stored.
pub const MAX_COLOUR_PROFILE_BYTES: usize = 1024 * 1024;

/// Why an upload was refused. `Display` is written for the player; [`Rejection::reason`] is the
/// metric label, and `Corrupt::detail` carries the decoder's words for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("The file is empty. Please upload the image again.")]
    Empty,

    #[error(
        "The file is {}; the largest upload allowed is {}. Please make it smaller and try again.",
        human_size(*.size, *.max),
        human_size(*.max, *.size)
    )]
    TooLarge { size: u64, max: u64 },

    #[error("{}", not_an_image_message(*.looks_like))]
    NotAnImage {
        /// What the bytes look like instead, e.g. "an HTML page", when that is known.
        looks_like: Option<&'static str>,
    },

    #[error("This file is {description}; portraits must be PNG, JPEG, GIF or WebP images.")]
    UnsupportedFormat {
        /// Short name for logs, e.g. "SVG".
        format: &'static str,
        /// Phrase for the player, e.g. "an SVG drawing".
        description: &'static str,
    },

    #[error(
        "The image is {width}×{height} pixels; the largest side allowed is {max} pixels. \
         Please resize it and try again."
    )]
    DimensionsTooLarge { width: u32, height: u32, max: u32 },

    #[error(
        "The image is {width}×{height} pixels ({} megapixels); the most allowed is {} megapixels. \
         Please resize it and try again.",
        megapixels(u64::from(*.width) * u64::from(*.height)),
        megapixels(*.max_pixels)
    )]
    TooManyPixels {
        width: u32,
        height: u32,
        max_pixels: u64,
    },

    #[error(
        "The animation is too long for its size: its frames add up to more than {} megapixels. \
         Please shorten it or make it smaller and try again.",
        megapixels(*.max_total_pixels)
    )]
    AnimationTooLarge {
        /// Frames seen when the budget ran out.
        frames: u32,
        max_total_pixels: u64,
    },

    #[error(
        "This {format} image is {width}×{height} pixels and would need about {} of memory to \
         check; the most allowed is {}. Please save it smaller (about {} megapixels or less) and \
         try again.",
        human_bytes(*.needed),
        human_bytes(*.max),
        affordable_megapixels(*.width, *.height, *.needed, *.max)
    )]
    DecodeTooCostly {
        format: ImageFormat,
        width: u32,
        height: u32,
        needed: u64,
        max: u64,
    },

    #[error(
        "This {format} image carries a colour profile larger than {}. Please save it again \
         with a standard colour profile such as sRGB, and try again.",
        human_bytes(*.max as u64)
    )]
    ColourProfileTooLarge { format: ImageFormat, max: usize },

    #[error(
        "This {format} file seems damaged or incomplete. \
         Please export it again, or upload the original file."
    )]
    Corrupt {
        format: ImageFormat,
        /// What the decoder said, for logs; not shown to players.
        detail: String,
    },
}

impl Rejection {
    /// A short snake_case label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLarge { .. } => "too_large",
            Self::NotAnImage { .. } => "not_an_image",
            Self::UnsupportedFormat { .. } => "unsupported_format",
            Self::DimensionsTooLarge { .. } => "dimensions_too_large",
            Self::TooManyPixels { .. } => "too_many_pixels",
            Self::AnimationTooLarge { .. } => "animation_too_large",
            Self::DecodeTooCostly { .. } => "decode_too_costly",
            Self::ColourProfileTooLarge { .. } => "colour_profile_too_large",
            Self::Corrupt { .. } => "corrupt",
        }
    }

    fn corrupt(format: ImageFormat, detail: impl fmt::Display) -> Self {
        Self::Corrupt {
            format,
            detail: detail.to_string(),
        }
    }
}

/// `size` in binary units with one decimal. When it would print the same as `other` (10 MiB
/// and 1 byte more both round to "10.0 MiB"), the exact byte count is added so the message
/// never claims a file is refused for being as large as the limit.
fn human_size(size: u64, other: u64) -> String {
    let short = human_bytes(size);
    if size != other && short == human_bytes(other) && size >= 1024 {
        format!("{short} ({size} bytes)")
    } else {
        short
    }
}

fn megapixels(pixels: u64) -> String {
    format!("{:.1}", pixels as f64 / 1_000_000.0)
}

/// The size at which an image costing `needed` bytes to decode at `width`×`height` would fit
/// in `max`: decoding memory grows with the pixel count.
fn affordable_megapixels(width: u32, height: u32, needed: u64, max: u64) -> String {
    let pixels = f64::from(width) * f64::from(height) * max as f64 / needed.max(1) as f64;
    format!("{:.1}", pixels / 1_000_000.0)
}

fn not_an_image_message(looks_like: Option<&'static str>) -> String {
    match looks_like {
        Some(what) => format!(
            "This file is not an image (it looks like {what}). \
             Portraits must be PNG, JPEG, GIF or WebP images."
        ),
        None => {
            "This file is not an image. Portraits must be PNG, JPEG, GIF or WebP images.".to_owned()
        }
    }
}

/// Size, type and header dimensions. Cheap: no pixel is decoded, so it can run on the async
/// runtime before the upload queues for [`verify_decodes`].
pub fn inspect_header(bytes: &[u8], limits: &InspectLimits) -> Result<ImageInfo, Rejection> {
    let size = bytes.len() as u64;
    if size == 0 {
        return Err(Rejection::Empty);
    }
    if size > limits.max_bytes {
        return Err(Rejection::TooLarge {
            size,
            max: limits.max_bytes,
        });
    }

    let format = sniff(bytes)?;
    let header = read_header(bytes, format)?;
    let info = ImageInfo {
        format,
        width: header.width,
        height: header.height,
        decode_memory: header.working_memory.saturating_add(DECODER_STATE_MEMORY),
        frames_checked: 0,
    };
    check_costs(&info, limits)?;
    Ok(info)
}

/// Proves every frame of an image accepted by [`inspect_header`] decodes, so a corrupt or
/// truncated file is refused, and returns the first frame's [`Thumbnail`]. CPU-heavy and
/// blocking: run it in `spawn_blocking` behind the decode semaphore.
pub fn verify_decodes(
    bytes: &[u8],
    info: &ImageInfo,
    limits: &InspectLimits,
) -> Result<Thumbnail, Rejection> {
    verify_frames(bytes, info, limits).map(|decoded| decoded.thumbnail)
}

/// [`verify_decodes`], with how many frames were decoded.
fn verify_frames(
    bytes: &[u8],
    info: &ImageInfo,
    limits: &InspectLimits,
) -> Result<decode::Decoded, Rejection> {
    // `info` may come from another call; the limits are cheap to re-check and the decoders
    // below must never see an image whose size and cost were not checked.
    check_costs(info, limits)?;
    let format = info.format;
    // The decoders are fuzzed but not infallible; a panic on hostile input must become a
    // refusal, not a lost worker thread.
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        check_colour_profile(bytes, format)?;
        match format {
            ImageFormat::Png => verify_png(bytes, limits),
            ImageFormat::Jpeg => verify_jpeg(bytes, limits),
            ImageFormat::Gif => verify_gif(bytes, limits),
            ImageFormat::Webp => verify_webp(bytes, limits),
        }
    }));
    match outcome {
        Ok(result) => result,
        Err(_) => Err(Rejection::corrupt(format, "decoder panicked")),
    }
}

/// [`inspect_header`] then [`verify_decodes`]; the returned info counts the frames decoded.
pub fn inspect(bytes: &[u8], limits: &InspectLimits) -> Result<ImageInfo, Rejection> {
    inspect_with_thumbnail(bytes, limits).map(|(info, _)| info)
}

/// [`inspect`], with the first frame's [`Thumbnail`].
pub fn inspect_with_thumbnail(
    bytes: &[u8],
    limits: &InspectLimits,
) -> Result<(ImageInfo, Thumbnail), Rejection> {
    let mut info = inspect_header(bytes, limits)?;
    let decoded = verify_frames(bytes, &info, limits)?;
    info.frames_checked = decoded.frames;
    Ok((info, decoded.thumbnail))
}

fn check_costs(info: &ImageInfo, limits: &InspectLimits) -> Result<(), Rejection> {
    check_dimensions(info.width, info.height, limits)?;
    if info.decode_memory > limits.max_decode_memory {
        return Err(Rejection::DecodeTooCostly {
            format: info.format,
            width: info.width,
            height: info.height,
            needed: info.decode_memory,
            max: limits.max_decode_memory,
        });
    }
    Ok(())
}

fn check_dimensions(width: u32, height: u32, limits: &InspectLimits) -> Result<(), Rejection> {
    if width > limits.max_dimension || height > limits.max_dimension {
        return Err(Rejection::DimensionsTooLarge {
            width,
            height,
            max: limits.max_dimension,
        });
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(Rejection::TooManyPixels {
            width,
            height,
            max_pixels: limits.max_pixels,
        });
    }
    Ok(())
}
