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

use std::fmt;
use std::io::Cursor;
use std::num::NonZeroU64;
use std::panic::{catch_unwind, AssertUnwindSafe};

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

use crate::units::human_bytes;

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
/// truncated file is refused. CPU-heavy and blocking: run it in `spawn_blocking` behind the
/// decode semaphore.
pub fn verify_decodes(
    bytes: &[u8],
    info: &ImageInfo,
    limits: &InspectLimits,
) -> Result<(), Rejection> {
    verify_frames(bytes, info, limits).map(|_| ())
}

/// [`verify_decodes`], returning how many frames were decoded.
pub fn verify_frames(
    bytes: &[u8],
    info: &ImageInfo,
    limits: &InspectLimits,
) -> Result<u32, Rejection> {
    // `info` may come from another call; the limits are cheap to re-check and the decoders
    // below must never see an image whose size and cost were not checked.
    check_costs(info, limits)?;
    let format = info.format;
    // The decoders are fuzzed but not infallible; a panic on hostile input must become a
    // refusal, not a lost worker thread.
    let outcome = catch_unwind(AssertUnwindSafe(|| match format {
        ImageFormat::Png => verify_png(bytes, limits),
        ImageFormat::Jpeg => verify_jpeg(bytes, limits),
        ImageFormat::Gif => verify_gif(bytes, limits),
        ImageFormat::Webp => verify_webp(bytes, limits),
    }));
    match outcome {
        Ok(result) => result,
        Err(_) => Err(Rejection::corrupt(format, "decoder panicked")),
    }
}

/// [`inspect_header`] then [`verify_decodes`]; the returned info counts the frames decoded.
pub fn inspect(bytes: &[u8], limits: &InspectLimits) -> Result<ImageInfo, Rejection> {
    let mut info = inspect_header(bytes, limits)?;
    info.frames_checked = verify_frames(bytes, &info, limits)?;
    Ok(info)
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

// ---------------------------------------------------------------------------------------------
// Type detection

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

fn sniff(bytes: &[u8]) -> Result<ImageFormat, Rejection> {
    // infer knows no SVG (it calls an XML prolog "text/xml" and bare `<svg` nothing at all), and
    // SVG is the type players most often try, so markup is recognised first.
    match sniff_markup(bytes) {
        Some(Markup::Svg) => {
            return Err(Rejection::UnsupportedFormat {
                format: "SVG",
                description: "an SVG drawing",
            })
        }
        Some(Markup::Html) => {
            return Err(Rejection::NotAnImage {
                looks_like: Some("an HTML page"),
            })
        }
        Some(Markup::Xml) => {
            return Err(Rejection::NotAnImage {
                looks_like: Some("an XML document"),
            })
        }
        None => {}
    }

    // A PNG whose signature was mangled (by a text-mode transfer, typically) still has its
    // IHDR chunk in place; calling it "not an image" would send the player looking for the
    // wrong problem.
    if bytes.get(12..16) == Some(b"IHDR") && !bytes.starts_with(&PNG_SIGNATURE) {
        return Err(Rejection::corrupt(
            ImageFormat::Png,
            "damaged PNG signature",
        ));
    }

    let Some(kind) = infer::get(bytes) else {
        return Err(Rejection::NotAnImage {
            looks_like: looks_like_text(bytes).then_some("text"),
        });
    };
    match kind.mime_type() {
        "image/png" => Ok(ImageFormat::Png),
        "image/jpeg" => Ok(ImageFormat::Jpeg),
        "image/gif" => Ok(ImageFormat::Gif),
        "image/webp" => Ok(ImageFormat::Webp),
        mime => {
            if kind.matcher_type() == infer::MatcherType::Image {
                let (format, description) = describe_image_type(mime, kind.extension());
                Err(Rejection::UnsupportedFormat {
                    format,
                    description,
                })
            } else {
                Err(Rejection::NotAnImage {
                    looks_like: describe_other_type(kind.matcher_type(), mime),
                })
            }
        }
    }
}

fn describe_image_type(mime: &str, extension: &'static str) -> (&'static str, &'static str) {
    match mime {
        "image/bmp" => ("BMP", "a BMP image"),
        "image/tiff" => ("TIFF", "a TIFF image"),
        "image/heif" => ("HEIC", "a HEIC/HEIF photo"),
        "image/avif" => ("AVIF", "an AVIF image"),
        "image/jxl" => ("JPEG XL", "a JPEG XL image"),
        "image/jp2" => ("JPEG 2000", "a JPEG 2000 image"),
        "image/vnd.microsoft.icon" => ("ICO", "an icon file (ICO)"),
        "image/vnd.adobe.photoshop" => ("PSD", "a Photoshop document (PSD)"),
        "image/x-canon-cr2" => ("CR2", "a camera RAW file"),
        "image/vnd.ms-photo" => ("JPEG XR", "a JPEG XR image"),
        _ => (extension, "an image type the bot cannot store"),
    }
}

fn describe_other_type(matcher: infer::MatcherType, mime: &str) -> Option<&'static str> {
    use infer::MatcherType;
    match (matcher, mime) {
        (_, "application/pdf") => Some("a PDF document"),
        (_, "text/html") => Some("an HTML page"),
        (_, "text/xml") => Some("an XML document"),
        (MatcherType::Text, _) => Some("text"),
        (MatcherType::Video, _) => Some("a video"),
        (MatcherType::Audio, _) => Some("an audio file"),
        (MatcherType::Archive, _) => Some("an archive"),
        (MatcherType::Doc | MatcherType::Book, _) => Some("a document"),
        (MatcherType::App, _) => Some("a program"),
        (MatcherType::Font, _) => Some("a font"),
        _ => None,
    }
}

fn looks_like_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    // A cut in the middle of a multi-byte character is still text.
    let valid = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(error) if error.error_len().is_none() => {
            std::str::from_utf8(&head[..error.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    !valid.is_empty()
        && valid
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Markup {
    Svg,
    Html,
    Xml,
}

/// Classifies markup by its root element, skipping what may precede it (BOM, whitespace, XML
/// declaration, comments, processing instructions, DOCTYPE), so an HTML page that merely
/// contains an inline `<svg>` is still called HTML.
fn sniff_markup(bytes: &[u8]) -> Option<Markup> {
    let head = &bytes[..bytes.len().min(8192)];
    let mut rest = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let mut saw_prolog = false;
    loop {
        rest = trim_ascii_start(rest);
        if !rest.starts_with(b"<") {
            // Leading text is not markup; a prolog cut short by the 8 KiB window still is.
            return (saw_prolog && rest.is_empty()).then_some(Markup::Xml);
        }
        let skip_to = if rest.starts_with(b"<?") {
            find(rest, b"?>").map(|end| end + 2)
        } else if rest.starts_with(b"<!--") {
            find(rest, b"-->").map(|end| end + 3)
        } else if starts_with_ignore_case(rest, b"<!DOCTYPE") {
            if starts_with_ignore_case(trim_ascii_start(&rest[9..]), b"html") {
                return Some(Markup::Html);
            }
            doctype_end(rest)
        } else {
            let name: Vec<u8> = rest[1..]
                .iter()
                .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'-' | b'_'))
                .map(u8::to_ascii_lowercase)
                .collect();
            let local = name.rsplit(|&b| b == b':').next().unwrap_or_default();
            return match local {
                b"svg" => Some(Markup::Svg),
                b"html" | b"head" | b"body" => Some(Markup::Html),
                _ if name.is_empty() => None,
                _ if saw_prolog => Some(Markup::Xml),
                _ => None,
            };
        };
        saw_prolog = true;
        match skip_to {
            Some(end) => rest = &rest[end..],
            None => return Some(Markup::Xml),
        }
    }
}

/// End of a `<!DOCTYPE …>` declaration, which may carry an internal subset in brackets.
fn doctype_end(decl: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &b) in decl.iter().enumerate() {
        match b {
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b'>' if depth == 0 => return Some(i + 1),
            _ => {}
        }
    }
    None
}

fn trim_ascii_start(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if !first.is_ascii_whitespace() {
            break;
        }
        bytes = rest;
    }
    bytes
}

fn starts_with_ignore_case(bytes: &[u8], prefix: &[u8]) -> bool {
    bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

// ---------------------------------------------------------------------------------------------
// Header dimensions

/// What the header says: the size, and the buffers decoding it will need.
struct Header {
    width: u32,
    height: u32,
    /// Bytes that grow with the image; [`DECODER_STATE_MEMORY`] comes on top.
    working_memory: u64,
}

/// Headroom for what every decoder keeps whatever the image's size: Huffman or LZW tables,
/// colour caches, the decompressor's window.
const DECODER_STATE_MEMORY: u64 = 1024 * 1024;

fn read_header(bytes: &[u8], format: ImageFormat) -> Result<Header, Rejection> {
    match format {
        ImageFormat::Png => {
            let mut decoder = png::Decoder::new(Cursor::new(bytes));
            let header = decoder
                .read_header_info()
                .map_err(|e| Rejection::corrupt(format, e))?;
            // Rows of up to 8 bytes a pixel (16-bit RGBA), the current and the previous one.
            let row = u64::from(header.width) * 8;
            Ok(Header {
                width: header.width,
                height: header.height,
                working_memory: 2 * row,
            })
        }
        ImageFormat::Jpeg => {
            // The frame header may declare up to 65535×65535; read it unrestricted so the
            // player hears the real size rather than a decoder error.
            let options = DecoderOptions::default()
                .set_max_width(usize::from(u16::MAX))
                .set_max_height(usize::from(u16::MAX));
            let mut decoder =
                zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
            decoder
                .decode_headers()
                .map_err(|e| Rejection::corrupt(format, e))?;
            let (width, height) = decoder
                .dimensions()
                .ok_or_else(|| Rejection::corrupt(format, "no frame header"))?;
            let (width, height) = (to_u32(width), to_u32(height));
            let output = jpeg_check_colorspace(
                decoder
                    .input_colorspace()
                    .ok_or_else(|| Rejection::corrupt(format, "no colour space"))?,
            );
            let layout = jpeg_layout(bytes)
                .ok_or_else(|| Rejection::corrupt(format, "no frame or scan header"))?;
            Ok(Header {
                width,
                height,
                working_memory: layout.decode_memory(width, height, output.num_components()),
            })
        }
        ImageFormat::Gif => {
            // Logical screen descriptor; frames are checked one by one when decoding.
            let header = bytes
                .get(..10)
                .ok_or_else(|| Rejection::corrupt(format, "header truncated"))?;
            if &header[..6] != b"GIF87a" && &header[..6] != b"GIF89a" {
                return Err(Rejection::corrupt(format, "unknown GIF version"));
            }
            let width = u32::from(u16::from_le_bytes([header[6], header[7]]));
            let height = u32::from(u16::from_le_bytes([header[8], header[9]]));
            if width == 0 || height == 0 {
                return Err(Rejection::corrupt(format, "zero-sized logical screen"));
            }
            // One row of palette indices; frames wider than the screen are held to the same
            // dimension limits, so a row never exceeds the largest side allowed.
            Ok(Header {
                width,
                height,
                working_memory: u64::from(u16::MAX),
            })
        }
        ImageFormat::Webp => {
            let decoder = image_webp::WebPDecoder::new(Cursor::new(bytes))
                .map_err(|e| Rejection::corrupt(format, e))?;
            let (width, height) = decoder.dimensions();
            let output = decoder
                .output_buffer_size()
                .ok_or_else(|| Rejection::corrupt(format, "image size overflows"))?
                as u64;
            let pixels = u64::from(width) * u64::from(height);
            // image-webp decodes whole frames. Besides our RGB(A) output, a still image needs
            // its YUV planes and alpha plane (lossy, 2.5 bytes a pixel) or an RGBA scratch
            // frame (lossless without alpha, 4); an animation also keeps an RGBA canvas and
            // decodes each frame into a buffer of its own before compositing it.
            let scratch_per_pixel = if decoder.is_animated() { 11 } else { 4 };
            Ok(Header {
                width,
                height,
                working_memory: output.saturating_add(pixels.saturating_mul(scratch_per_pixel)),
            })
        }
    }
}

/// The colour space [`verify_jpeg`] decodes into: one byte a pixel is enough to prove the scan
/// decodes (every component's entropy data is still parsed), but the decoder converts to Luma
/// only from YCbCr or grey; other colour spaces keep their own layout.
fn jpeg_check_colorspace(input: ColorSpace) -> ColorSpace {
    match input {
        ColorSpace::YCbCr | ColorSpace::Luma => ColorSpace::Luma,
        ColorSpace::RGB | ColorSpace::CMYK | ColorSpace::YCCK => input,
        _ => ColorSpace::RGBA,
    }
}

/// What a JPEG's frame and first scan headers say about the cost of decoding it.
#[derive(Debug, PartialEq, Eq)]
struct JpegLayout {
    /// Progressive, or sequential with components in separate scans: the decoder keeps every
    /// coefficient of the image until the last scan.
    buffers_coefficients: bool,
    /// Each component's (horizontal, vertical) sampling factors.
    sampling: Vec<(u8, u8)>,
}

impl JpegLayout {
    /// Peak bytes zune-jpeg allocates to decode into `output_components` bytes a pixel.
    fn decode_memory(&self, width: u32, height: u32, output_components: usize) -> u64 {
        let max_h = u64::from(self.sampling.iter().map(|s| s.0).max().unwrap_or(1).max(1));
        let max_v = u64::from(self.sampling.iter().map(|s| s.1).max().unwrap_or(1).max(1));
        let mcus_x = u64::from(width).div_ceil(8 * max_h);
        let mcus_y = u64::from(height).div_ceil(8 * max_v);
        let blocks_per_mcu: u64 = self
            .sampling
            .iter()
            .map(|(h, v)| u64::from(*h) * u64::from(*v))
            .sum();
        // Coefficients are i16: 128 bytes per 8×8 block.
        let mcu_row = mcus_x * blocks_per_mcu * 128;
        let output = u64::from(width) * u64::from(height) * output_components as u64;
        // One MCU row of samples per component, plus the upsampler's scratch; doubled as slack.
        let mut bytes = output + 4 * mcu_row;
        if self.buffers_coefficients {
            // Vertically subsampled files decoded to grey count MCU rows twice (max_v / max_h).
            let row_factor = (max_v / max_h).max(1);
            bytes += mcus_y * row_factor * mcu_row;
        }
        bytes
    }
}

/// Reads the frame header and the first scan header; `None` when either is missing.
fn jpeg_layout(bytes: &[u8]) -> Option<JpegLayout> {
    let mut frame: Option<(bool, Vec<(u8, u8)>)> = None;
    for segment in jpeg_header_segments(bytes) {
        match segment.marker {
            // SOF0–SOF15, which DHT (C4), JPG (C8) and DAC (CC) share the range with.
            0xC0..=0xCF if !matches!(segment.marker, 0xC4 | 0xC8 | 0xCC) => {
                // Precision, height, width, then per component: id, sampling, table.
                let count = usize::from(*segment.payload.get(5)?);
                let sampling = (0..count)
                    .map(|i| {
                        let factors = *segment.payload.get(6 + 3 * i + 1)?;
                        Some((factors >> 4, factors & 0x0F))
                    })
                    .collect::<Option<Vec<_>>>()?;
                let progressive = matches!(segment.marker, 0xC2 | 0xC6 | 0xCA | 0xCE);
                frame = Some((progressive, sampling));
            }
            0xDA => {
                let (progressive, sampling) = frame?;
                let scan_components = usize::from(*segment.payload.first()?);
                return Some(JpegLayout {
                    buffers_coefficients: progressive || scan_components < sampling.len(),
                    sampling,
                });
            }
            _ => {}
        }
    }
    None
}

/// A marker segment of a JPEG header.
struct JpegSegment<'a> {
    marker: u8,
    payload: &'a [u8],
    /// Offset just past the segment.
    end: usize,
}

/// The marker segments from SOI up to and including the first SOS (whose entropy-coded data
/// follows it without a length); stops early at EOI or where the file is cut.
fn jpeg_header_segments(bytes: &[u8]) -> impl Iterator<Item = JpegSegment<'_>> {
    let mut pos = 2;
    let mut done = false;
    std::iter::from_fn(move || {
        while !done && pos + 4 <= bytes.len() {
            if bytes[pos] != 0xFF {
                pos += 1;
                continue;
            }
            let marker = bytes[pos + 1];
            match marker {
                0xFF => pos += 1,
                // Standalone markers carry no length.
                0x01 | 0xD0..=0xD8 => pos += 2,
                0xD9 => done = true,
                _ => {
                    let length = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
                    let end = pos + 2 + length;
                    let payload = bytes.get(pos + 4..end.max(pos + 4))?;
                    done = marker == 0xDA;
                    pos = end;
                    return Some(JpegSegment {
                        marker,
                        payload,
                        end,
                    });
                }
            }
        }
        None
    })
}

fn to_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Counts pixels decoded across the frames of an animation against its budget.
struct AnimationBudget {
    frames: u32,
    pixels: u64,
    max_total_pixels: u64,
}

impl AnimationBudget {
    fn new(limits: &InspectLimits) -> Self {
        Self {
            frames: 0,
            pixels: 0,
            max_total_pixels: limits
                .max_pixels
                .saturating_mul(ANIMATION_PIXEL_BUDGET_FACTOR),
        }
    }

    fn add_frame(&mut self, pixels: u64) -> Result<(), Rejection> {
        self.frames = self.frames.saturating_add(1);
        self.pixels = self.pixels.saturating_add(pixels);
        if self.pixels > self.max_total_pixels {
            return Err(Rejection::AnimationTooLarge {
                frames: self.frames,
                max_total_pixels: self.max_total_pixels,
            });
        }
        Ok(())
    }
}

fn verify_png(bytes: &[u8], limits: &InspectLimits) -> Result<u32, Rejection> {
    const FORMAT: ImageFormat = ImageFormat::Png;
    let corrupt = |e: png::DecodingError| Rejection::corrupt(FORMAT, e);

    // The decoder's own allocations are row buffers (one row, width already checked) and the
    // ancillary chunks it keeps, which grow with data actually read and so cannot outgrow the
    // file. Its accounting also charges a row per APNG frame without allocating it, hence the
    // fixed headroom on top of the file-size share.
    let budget = limits
        .max_bytes
        .saturating_mul(2)
        .saturating_add(64 * 1024 * 1024);
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits {
            bytes: usize::try_from(budget).unwrap_or(usize::MAX),
        },
    );
    // Text chunks are stripped before storage anyway; skipping them spares inflating zTXt/iTXt.
    // Their CRCs are still checked.
    decoder.set_ignore_text_chunk(true);
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(corrupt)?;

    let (width, height) = (reader.info().width, reader.info().height);
    check_dimensions(width, height, limits)?;
    let frames = match reader.info().animation_control {
        None => 1,
        // Without an fcTL before IDAT, the IDAT image is a fallback shown by non-APNG viewers
        // and comes in addition to the animation frames.
        Some(animation) => {
            let fallback = u32::from(reader.info().frame_control.is_none());
            animation.num_frames.saturating_add(fallback)
        }
    };

    let mut budget = AnimationBudget::new(limits);
    for index in 0..frames {
        if index > 0 {
            reader.next_frame_info().map_err(corrupt)?;
        }
        let (frame_width, frame_height) = match (index, reader.info().frame_control) {
            (0, None) => (width, height),
            (_, Some(control)) => (control.width, control.height),
            (_, None) => return Err(Rejection::corrupt(FORMAT, "animation frame without fcTL")),
        };
        budget.add_frame(u64::from(frame_width) * u64::from(frame_height))?;
        while reader.next_row().map_err(corrupt)?.is_some() {}
    }
    // Requires IEND and checks the CRC of every chunk after the image data, so a file cut
    // short after its last IDAT is refused too.
    reader.finish().map_err(corrupt)?;
    Ok(frames)
}

fn verify_jpeg(bytes: &[u8], limits: &InspectLimits) -> Result<u32, Rejection> {
    const FORMAT: ImageFormat = ImageFormat::Jpeg;
    let corrupt = |e: zune_jpeg::errors::DecodeErrors| Rejection::corrupt(FORMAT, e);

    let max_side = usize::try_from(limits.max_dimension).unwrap_or(usize::MAX);
    // Strict mode turns "premature end of data" and entropy errors into errors; by default the
    // decoder pads the missing part with grey and reports success, as browsers do.
    let options = DecoderOptions::default()
        .set_max_width(max_side)
        .set_max_height(max_side)
        .set_strict_mode(true)
        .jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(corrupt)?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| Rejection::corrupt(FORMAT, "no frame header"))?;
    check_dimensions(to_u32(width), to_u32(height), limits)?;

    let output = jpeg_check_colorspace(
        decoder
            .input_colorspace()
            .ok_or_else(|| Rejection::corrupt(FORMAT, "no colour space"))?,
    );
    decoder.set_options(options.jpeg_set_out_colorspace(output));
    let size = decoder
        .output_buffer_size()
        .ok_or_else(|| Rejection::corrupt(FORMAT, "image size overflows"))?;
    let mut pixels = Vec::new();
    pixels
        .try_reserve_exact(size)
        .map_err(|_| Rejection::corrupt(FORMAT, "not enough memory to decode"))?;
    pixels.resize(size, 0);
    decoder.decode_into(&mut pixels).map_err(corrupt)?;

    // Even in strict mode a file cut at an MCU-row boundary can decode "successfully", so the
    // end of the image must actually be there.
    if !jpeg_has_end_of_image(bytes) {
        return Err(Rejection::corrupt(FORMAT, "end of image marker missing"));
    }
    Ok(1)
}

/// Whether an EOI marker follows the first scan. Entropy-coded data never contains `FF D9`
/// (0xFF is always stuffed or a restart marker there), and scanning only after the first SOS
/// skips the EOI of an embedded EXIF thumbnail.
fn jpeg_has_end_of_image(bytes: &[u8]) -> bool {
    jpeg_header_segments(bytes)
        .find(|segment| segment.marker == 0xDA)
        .and_then(|scan| bytes.get(scan.end..))
        .is_some_and(|scan| find(scan, &[0xFF, 0xD9]).is_some())
}

fn verify_gif(bytes: &[u8], limits: &InspectLimits) -> Result<u32, Rejection> {
    const FORMAT: ImageFormat = ImageFormat::Gif;
    let corrupt = |e: gif::DecodingError| Rejection::corrupt(FORMAT, e);

    let mut options = gif::DecodeOptions::new();
    // Palette indices, one byte per pixel, decoded a row at a time into a buffer we own: a
    // frame never exists in full. The memory limit guards any buffer the crate sizes itself.
    options.set_color_output(gif::ColorOutput::Indexed);
    let frame_limit = NonZeroU64::new(limits.max_pixels).unwrap_or(NonZeroU64::MIN);
    options.set_memory_limit(gif::MemoryLimit::Bytes(frame_limit));
    let mut decoder = options.read_info(bytes).map_err(corrupt)?;

    let mut budget = AnimationBudget::new(limits);
    let mut row = Vec::new();
    while let Some(frame) = decoder.next_frame_info().map_err(corrupt)? {
        let (width, height) = (u32::from(frame.width), u32::from(frame.height));
        // Frames may legally be larger than the logical screen, so each is held to the limits.
        check_dimensions(width, height, limits)?;
        budget.add_frame(u64::from(width) * u64::from(height))?;
        if width == 0 || height == 0 {
            continue;
        }
        row.resize(usize::from(frame.width), 0);
        for _ in 0..height {
            if !decoder.fill_buffer(&mut row).map_err(corrupt)? {
                return Err(Rejection::corrupt(FORMAT, "frame data ends early"));
            }
        }
    }
    if budget.frames == 0 {
        return Err(Rejection::corrupt(FORMAT, "no frames"));
    }
    Ok(budget.frames)
}

fn verify_webp(bytes: &[u8], limits: &InspectLimits) -> Result<u32, Rejection> {
    const FORMAT: ImageFormat = ImageFormat::Webp;
    let corrupt = |e: image_webp::DecodingError| Rejection::corrupt(FORMAT, e);

    let mut decoder = image_webp::WebPDecoder::new(Cursor::new(bytes)).map_err(corrupt)?;
    // Only bounds the metadata chunks the decoder reads; they cannot exceed the file.
    decoder.set_memory_limit(usize::try_from(limits.max_bytes).unwrap_or(usize::MAX));
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    // The lossy decoder allocates for the size in the VP8 bitstream before comparing it with
    // the canvas, so a small canvas could smuggle in a huge frame; check every bitstream first.
    check_webp_bitstreams(bytes, width, height)?;

    let size = decoder
        .output_buffer_size()
        .ok_or_else(|| Rejection::corrupt(FORMAT, "image size overflows"))?;
    // The decoder only writes whole RGB(A) frames; for WebP that buffer is unavoidable.
    let mut pixels = Vec::new();
    pixels
        .try_reserve_exact(size)
        .map_err(|_| Rejection::corrupt(FORMAT, "not enough memory to decode"))?;
    pixels.resize(size, 0);

    if !decoder.is_animated() {
        decoder.read_image(&mut pixels).map_err(corrupt)?;
        return Ok(1);
    }
    let frames = decoder.num_frames();
    let mut budget = AnimationBudget::new(limits);
    for _ in 0..frames {
        // Each frame is composited onto, and copied out of, a full canvas.
        budget.add_frame(u64::from(width) * u64::from(height))?;
        decoder.read_frame(&mut pixels).map_err(corrupt)?;
    }
    Ok(frames)
}

/// Checks that every VP8/VP8L bitstream (top level or inside an animation frame) declares a
/// size within the canvas.
fn check_webp_bitstreams(bytes: &[u8], width: u32, height: u32) -> Result<(), Rejection> {
    let corrupt = |detail: &str| Rejection::corrupt(ImageFormat::Webp, detail);
    let riff_end = bytes
        .get(4..8)
        .map(|size| u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize)
        .and_then(|size| size.checked_add(8))
        .ok_or_else(|| corrupt("RIFF header truncated"))?
        .min(bytes.len());
    let mut found = false;
    let mut pending = vec![(12usize, riff_end)];
    while let Some((mut pos, end)) = pending.pop() {
        while pos + 8 <= end {
            let fourcc = &bytes[pos..pos + 4];
            let size = u32::from_le_bytes([
                bytes[pos + 4],
                bytes[pos + 5],
                bytes[pos + 6],
                bytes[pos + 7],
            ]) as usize;
            let data_start = pos + 8;
            let data_end = data_start.saturating_add(size).min(end);
            let data = &bytes[data_start..data_end];
            let declared = match fourcc {
                b"VP8 " => Some(
                    vp8_dimensions(data).ok_or_else(|| corrupt("VP8 frame header truncated"))?,
                ),
                b"VP8L" => {
                    Some(vp8l_dimensions(data).ok_or_else(|| corrupt("VP8L header truncated"))?)
                }
                b"ANMF" => {
                    // 16 bytes of frame placement, then the frame's own chunks.
                    pending.push((data_start.saturating_add(16), data_end));
                    None
                }
                _ => None,
            };
            if let Some((w, h)) = declared {
                found = true;
                if w > width || h > height {
                    return Err(corrupt("frame larger than the canvas"));
                }
            }
            pos = data_start.saturating_add(size).saturating_add(size & 1);
        }
    }
    if !found {
        return Err(corrupt("no image data"));
    }
    Ok(())
}

fn vp8_dimensions(data: &[u8]) -> Option<(u32, u32)> {
    let header = data.get(6..10)?;
    let width = u16::from_le_bytes([header[0], header[1]]) & 0x3FFF;
    let height = u16::from_le_bytes([header[2], header[3]]) & 0x3FFF;
    Some((u32::from(width), u32::from(height)))
}

fn vp8l_dimensions(data: &[u8]) -> Option<(u32, u32)> {
    let header = data.get(1..5)?;
    let bits = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use std::path::Path;

    use image::codecs::gif::{GifEncoder, Repeat};
    use image::codecs::jpeg::JpegEncoder;
    use image::codecs::png::PngEncoder;
    use image::codecs::webp::WebPEncoder;
    use image::{Delay, ExtendedColorType, Frame, ImageEncoder, RgbaImage};

    // ---- fixtures, shared with the sanitize tests ----------------------------------------

    /// Deterministic noise, so compressed data is spread over the whole file and a cut
    /// anywhere lands in the middle of pixel data.
    pub(crate) fn noise(len: usize, seed: u32) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9E37_79B9) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            })
            .collect()
    }

    /// A smooth gradient with a little noise: photo-like, so JPEG keeps real detail.
    pub(crate) fn rgb_pixels(width: u32, height: u32) -> Vec<u8> {
        let grain = noise((width * height * 3) as usize, 7);
        (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .enumerate()
            .flat_map(|(i, (x, y))| {
                let g = &grain[i * 3..i * 3 + 3];
                [
                    ((x * 255 / width) as u8).wrapping_add(g[0] % 16),
                    ((y * 255 / height) as u8).wrapping_add(g[1] % 16),
                    (((x + y) * 128 / (width + height)) as u8).wrapping_add(g[2] % 16),
                ]
            })
            .collect()
    }

    pub(crate) fn png_file(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        PngEncoder::new(&mut out)
            .write_image(
                &noise((width * height * 3) as usize, 3),
                width,
                height,
                ExtendedColorType::Rgb8,
            )
            .expect("encode PNG");
        out
    }

    pub(crate) fn jpeg_file(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 90)
            .encode(
                &rgb_pixels(width, height),
                width,
                height,
                ExtendedColorType::Rgb8,
            )
            .expect("encode JPEG");
        out
    }

    /// A looping GIF whose frames are different noise.
    pub(crate) fn animated_gif(frames: u32) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut encoder = GifEncoder::new(&mut out);
            encoder.set_repeat(Repeat::Infinite).expect("set repeat");
            let frames = (0..frames).map(|i| {
                let mut buffer =
                    RgbaImage::from_raw(24, 16, noise(24 * 16 * 4, i + 1)).expect("frame buffer");
                // Opaque, so every frame is the full noise pattern.
                buffer.pixels_mut().for_each(|pixel| pixel[3] = 255);
                Frame::from_parts(buffer, 0, 0, Delay::from_numer_denom_ms(100, 1))
            });
            encoder.encode_frames(frames).expect("encode GIF");
        }
        out
    }

    pub(crate) fn lossless_webp(width: u32, height: u32, seed: u32) -> Vec<u8> {
        let mut out = Vec::new();
        WebPEncoder::new_lossless(&mut out)
            .write_image(
                &noise((width * height * 4) as usize, seed),
                width,
                height,
                ExtendedColorType::Rgba8,
            )
            .expect("encode WebP");
        out
    }

    /// The VP8L bitstream of a simple lossless WebP.
    pub(crate) fn vp8l_payload(webp: &[u8]) -> Vec<u8> {
        assert_eq!(
            &webp[12..16],
            b"VP8L",
            "the encoder makes simple lossless files"
        );
        let size = u32::from_le_bytes(webp[16..20].try_into().unwrap()) as usize;
        webp[20..20 + size].to_vec()
    }

    pub(crate) fn riff_chunk(fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut chunk = fourcc.to_vec();
        chunk.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        chunk.extend_from_slice(payload);
        if payload.len() % 2 == 1 {
            chunk.push(0);
        }
        chunk
    }

    pub(crate) fn riff_webp(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut file = b"RIFF".to_vec();
        file.extend_from_slice(&(body.len() as u32 + 4).to_le_bytes());
        file.extend_from_slice(b"WEBP");
        file.extend_from_slice(&body);
        file
    }

    pub(crate) fn u24(value: u32) -> [u8; 3] {
        let b = value.to_le_bytes();
        [b[0], b[1], b[2]]
    }

    pub(crate) fn vp8x(flags: u8, width: u32, height: u32) -> Vec<u8> {
        let mut payload = vec![flags, 0, 0, 0];
        payload.extend_from_slice(&u24(width - 1));
        payload.extend_from_slice(&u24(height - 1));
        riff_chunk(b"VP8X", &payload)
    }

    /// An animated WebP with one full-canvas lossless frame per bitstream.
    fn animated_webp(width: u32, height: u32, bitstreams: &[Vec<u8>]) -> Vec<u8> {
        let mut chunks = vec![vp8x(0x02 | 0x10, width, height)];
        chunks.push(riff_chunk(b"ANIM", &[0, 0, 0, 0, 0, 0]));
        for bitstream in bitstreams {
            let mut frame = Vec::new();
            frame.extend_from_slice(&u24(0));
            frame.extend_from_slice(&u24(0));
            frame.extend_from_slice(&u24(width - 1));
            frame.extend_from_slice(&u24(height - 1));
            frame.extend_from_slice(&u24(100));
            frame.push(0);
            frame.extend_from_slice(&riff_chunk(b"VP8L", bitstream));
            chunks.push(riff_chunk(b"ANMF", &frame));
        }
        riff_webp(&chunks)
    }

    fn png_chunk(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut chunk = (payload.len() as u32).to_be_bytes().to_vec();
        chunk.extend_from_slice(kind);
        chunk.extend_from_slice(payload);
        let crc = crate::portrait::sanitize::crc32(&chunk[4..]);
        chunk.extend_from_slice(&crc.to_be_bytes());
        chunk
    }

    /// A valid PNG signature and IHDR claiming `width`×`height`, and nothing else.
    fn png_header_only(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = width.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        let mut file = PNG_SIGNATURE.to_vec();
        file.extend_from_slice(&png_chunk(b"IHDR", &ihdr));
        file
    }

    fn limits() -> InspectLimits {
        InspectLimits::default()
    }

    fn cut(bytes: &[u8], fraction: f64) -> &[u8] {
        &bytes[..(bytes.len() as f64 * fraction) as usize]
    }

    #[track_caller]
    fn assert_corrupt(result: Result<ImageInfo, Rejection>, format: ImageFormat) {
        match result {
            Err(Rejection::Corrupt { format: got, .. }) => assert_eq!(got, format),
            other => panic!("expected a corrupt {format} rejection, got {other:?}"),
        }
    }

    // ---- the corpus -------------------------------------------------------------------------

    #[test]
    fn every_pngsuite_file_gets_the_expected_verdict() {
        let dir = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/corpus/pngsuite"
        ));
        if !testkit::corpus::present(dir, "every_pngsuite_file_gets_the_expected_verdict") {
            return;
        }
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read the PngSuite folder")
            .map(|entry| entry.expect("read a PngSuite entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "png"))
            .collect();
        entries.sort();

        let (mut accepted, mut rejected, mut wrong) = (0, 0, Vec::new());
        for path in &entries {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(path).expect("read a PngSuite file");
            let verdict = inspect(&bytes, &limits());
            let expect_corrupt = name.starts_with('x');
            match (&verdict, expect_corrupt) {
                (Ok(_), false) => accepted += 1,
                (
                    Err(Rejection::Corrupt {
                        format: ImageFormat::Png,
                        ..
                    }),
                    true,
                ) => rejected += 1,
                _ => wrong.push(format!("{name}: {verdict:?}")),
            }
        }
        assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
        assert_eq!(entries.len(), 175, "PngSuite files seen");
        assert_eq!(accepted, 161, "valid PngSuite files accepted");
        assert_eq!(rejected, 14, "x* PngSuite files refused as corrupt");
    }

    // ---- what the file is -------------------------------------------------------------------

    #[test]
    fn an_svg_is_refused_and_named_as_svg() {
        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>"#;
        let rejection = inspect(svg, &limits()).unwrap_err();
        assert_eq!(rejection.reason(), "unsupported_format");
        assert_eq!(
            rejection.to_string(),
            "This file is an SVG drawing; portraits must be PNG, JPEG, GIF or WebP images."
        );
    }

    #[test]
    fn an_svg_with_an_xml_prolog_comment_and_doctype_is_still_named_as_svg() {
        let svg = b"\xEF\xBB\xBF\n  <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
            <!-- Generator: Adobe Illustrator -->\n\
            <!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\" [\n\
              <!ENTITY ns_svg \"http://www.w3.org/2000/svg\">\n]>\n\
            <svg version=\"1.1\" xmlns=\"&ns_svg;\"><circle r=\"4\"/></svg>\n";
        let rejection = inspect(svg, &limits()).unwrap_err();
        assert!(
            matches!(
                rejection,
                Rejection::UnsupportedFormat { format: "SVG", .. }
            ),
            "{rejection:?}"
        );
        assert!(rejection.to_string().contains("SVG drawing"));
    }

    #[test]
    fn an_html_page_uploaded_as_a_jpg_is_not_an_image() {
        let html = b"<!DOCTYPE html>\n<html><head><title>Expired</title></head>\
            <body>This content is no longer available.<svg></svg></body></html>";
        let rejection = inspect(html, &limits()).unwrap_err();
        assert_eq!(
            rejection,
            Rejection::NotAnImage {
                looks_like: Some("an HTML page")
            }
        );
        assert_eq!(
            rejection.to_string(),
            "This file is not an image (it looks like an HTML page). \
             Portraits must be PNG, JPEG, GIF or WebP images."
        );
    }

    #[test]
    fn plain_text_uploaded_as_a_jpg_is_not_an_image() {
        let rejection = inspect(b"my character is a half-elf bard\n", &limits()).unwrap_err();
        assert_eq!(rejection.reason(), "not_an_image");
        assert!(
            rejection.to_string().contains("it looks like text"),
            "{rejection}"
        );
    }

    #[test]
    fn a_pdf_is_not_an_image() {
        let rejection = inspect(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj", &limits()).unwrap_err();
        assert_eq!(
            rejection,
            Rejection::NotAnImage {
                looks_like: Some("a PDF document")
            }
        );
    }

    #[test]
    fn a_bmp_is_refused_as_an_unsupported_format_named_bmp() {
        let mut bmp = b"BM".to_vec();
        bmp.extend_from_slice(&[0x46, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0, 0x28, 0, 0, 0]);
        bmp.resize(70, 0);
        let rejection = inspect(&bmp, &limits()).unwrap_err();
        assert!(
            matches!(
                rejection,
                Rejection::UnsupportedFormat { format: "BMP", .. }
            ),
            "{rejection:?}"
        );
        assert_eq!(
            rejection.to_string(),
            "This file is a BMP image; portraits must be PNG, JPEG, GIF or WebP images."
        );
    }

    #[test]
    fn an_empty_file_is_refused_as_empty() {
        let rejection = inspect(b"", &limits()).unwrap_err();
        assert_eq!(rejection, Rejection::Empty);
        assert_eq!(rejection.reason(), "empty");
        assert!(rejection.to_string().contains("empty"));
    }

    #[test]
    fn a_one_byte_file_is_not_an_image() {
        for byte in [0x89u8, 0xFF, b'G', b'<', 0] {
            let rejection = inspect(&[byte], &limits()).unwrap_err();
            assert_eq!(
                rejection.reason(),
                "not_an_image",
                "byte {byte:#x}: {rejection:?}"
            );
        }
    }

    #[test]
    fn a_file_over_the_byte_limit_is_refused_with_sizes_in_mebibytes() {
        let mut big = png_file(8, 8);
        big.resize(11 * 1024 * 1024, 0);
        let rejection = inspect_header(&big, &limits()).unwrap_err();
        assert_eq!(
            rejection,
            Rejection::TooLarge {
                size: 11 * 1024 * 1024,
                max: 10 * 1024 * 1024
            }
        );
        assert_eq!(
            rejection.to_string(),
            "The file is 11.0 MiB; the largest upload allowed is 10.0 MiB. \
             Please make it smaller and try again."
        );
    }

    #[test]
    fn a_file_just_over_the_limit_does_not_claim_to_be_the_same_size_as_it() {
        let rejection = Rejection::TooLarge {
            size: 10 * 1024 * 1024 + 1,
            max: 10 * 1024 * 1024,
        };
        assert!(
            rejection
                .to_string()
                .starts_with("The file is 10.0 MiB (10485761 bytes); "),
            "{rejection}"
        );
    }

    // ---- dimensions, before decoding ---------------------------------------------------------

    #[test]
    fn a_png_header_claiming_30000_by_30000_is_refused_by_the_header_check() {
        let bytes = png_header_only(30_000, 30_000);
        // The header check alone refuses it, so no decoder ever sees it.
        let rejection = inspect_header(&bytes, &limits()).unwrap_err();
        assert_eq!(
            rejection,
            Rejection::DimensionsTooLarge {
                width: 30_000,
                height: 30_000,
                max: 10_000
            }
        );
        assert_eq!(
            rejection.to_string(),
            "The image is 30000×30000 pixels; the largest side allowed is 10000 pixels. \
             Please resize it and try again."
        );
        assert_eq!(inspect(&bytes, &limits()).unwrap_err(), rejection);
    }

    #[test]
    fn a_header_within_each_side_but_over_the_pixel_budget_is_refused() {
        let bytes = png_header_only(8_000, 6_000);
        let rejection = inspect_header(&bytes, &limits()).unwrap_err();
        assert_eq!(rejection.reason(), "too_many_pixels");
        assert_eq!(
            rejection.to_string(),
            "The image is 8000×6000 pixels (48.0 megapixels); the most allowed is 40.0 megapixels. \
             Please resize it and try again."
        );
    }

    #[test]
    fn a_jpeg_header_over_the_limits_is_refused_by_the_header_check() {
        let mut jpeg = jpeg_file(16, 16);
        // Rewrite the frame header (SOF0) to claim 20000×12 pixels.
        let sof = jpeg
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("baseline frame header");
        jpeg[sof + 5..sof + 7].copy_from_slice(&12u16.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&20_000u16.to_be_bytes());
        assert_eq!(
            inspect_header(&jpeg, &limits()).unwrap_err(),
            Rejection::DimensionsTooLarge {
                width: 20_000,
                height: 12,
                max: 10_000
            }
        );
    }

    #[test]
    fn a_webp_bitstream_larger_than_its_canvas_is_refused_before_decoding() {
        let bitstream = vp8l_payload(&lossless_webp(64, 64, 1));
        let webp = riff_webp(&[vp8x(0x10, 16, 16), riff_chunk(b"VP8L", &bitstream)]);
        let info = inspect_header(&webp, &limits()).expect("the canvas itself is fine");
        assert_eq!((info.width, info.height), (16, 16));
        let rejection = verify_decodes(&webp, &info, &limits()).unwrap_err();
        assert!(
            matches!(&rejection, Rejection::Corrupt { detail, .. } if detail.contains("larger than the canvas")),
            "{rejection:?}"
        );
    }

    // ---- valid files ------------------------------------------------------------------------

    #[test]
    fn valid_png_jpeg_gif_and_webp_files_are_accepted_with_their_dimensions() {
        let cases = [
            (png_file(40, 30), ImageFormat::Png),
            (jpeg_file(40, 30), ImageFormat::Jpeg),
            (lossless_webp(40, 30, 5), ImageFormat::Webp),
        ];
        for (bytes, format) in cases {
            let info = inspect(&bytes, &limits()).unwrap_or_else(|e| panic!("{format}: {e:?}"));
            assert_eq!(
                (info.format, info.width, info.height, info.frames_checked),
                (format, 40, 30, 1)
            );
        }
        let gif = inspect(&animated_gif(1), &limits()).expect("a one-frame GIF");
        assert_eq!(
            (gif.format, gif.width, gif.height),
            (ImageFormat::Gif, 24, 16)
        );
    }

    #[test]
    fn an_animated_gif_decodes_every_frame_and_is_accepted() {
        let info = inspect(&animated_gif(3), &limits()).expect("animated GIF accepted");
        assert_eq!(info.format, ImageFormat::Gif);
        assert_eq!(info.frames_checked, 3);
    }

    #[test]
    fn a_gif_whose_last_frame_has_broken_data_is_refused() {
        let mut gif = animated_gif(2);
        assert_eq!(gif.pop(), Some(0x3B), "GIF ends with its trailer");
        // A third 4×4 frame whose LZW codes point past the code table.
        gif.extend_from_slice(&[0x2C, 0, 0, 0, 0, 4, 0, 4, 0, 0x80]);
        gif.extend_from_slice(&[0; 6]); // local colour table of 2 entries
        gif.extend_from_slice(&[0x02, 0x04, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x3B]);
        assert_corrupt(inspect(&gif, &limits()), ImageFormat::Gif);
    }

    #[test]
    fn an_animated_webp_decodes_every_frame_and_is_accepted() {
        let frames: Vec<_> = (1..=3)
            .map(|seed| vp8l_payload(&lossless_webp(20, 12, seed)))
            .collect();
        let webp = animated_webp(20, 12, &frames);
        let info = inspect(&webp, &limits()).expect("animated WebP accepted");
        assert_eq!(
            (info.format, info.width, info.height),
            (ImageFormat::Webp, 20, 12)
        );
        assert_eq!(info.frames_checked, 3);
    }

    #[test]
    fn an_animated_webp_whose_last_frame_is_broken_is_refused() {
        let mut frames: Vec<_> = (1..=3)
            .map(|seed| vp8l_payload(&lossless_webp(20, 12, seed)))
            .collect();
        frames[2].truncate(12);
        let webp = animated_webp(20, 12, &frames);
        assert_corrupt(inspect(&webp, &limits()), ImageFormat::Webp);
    }

    // ---- truncated and damaged files --------------------------------------------------------

    #[test]
    fn a_truncated_jpeg_is_refused_as_corrupt() {
        let jpeg = jpeg_file(160, 120);
        assert!(inspect(&jpeg, &limits()).is_ok(), "the whole file is fine");
        for fraction in [0.3, 0.6, 0.9, 0.99] {
            let rejection = inspect(cut(&jpeg, fraction), &limits());
            assert_corrupt(rejection, ImageFormat::Jpeg);
        }
        // Complete scan data, only the end-of-image marker missing.
        assert_corrupt(
            inspect(&jpeg[..jpeg.len() - 2], &limits()),
            ImageFormat::Jpeg,
        );
    }

    #[test]
    fn a_jpeg_with_garbage_in_its_scan_data_is_refused_as_corrupt() {
        let mut jpeg = jpeg_file(160, 120);
        let len = jpeg.len();
        // The end-of-image marker is still there; only the decoder can notice.
        jpeg[len / 3..len / 2].fill(0xFF);
        assert_corrupt(inspect(&jpeg, &limits()), ImageFormat::Jpeg);
    }

    #[test]
    fn a_png_cut_after_its_image_data_but_before_iend_is_refused() {
        let png = png_file(16, 16);
        let iend = png.len() - 12;
        let time = png_chunk(b"tIME", &[0x07, 0xE8, 6, 1, 12, 0, 0]);
        let whole = [&png[..iend], &time, &png[iend..]].concat();
        assert!(inspect(&whole, &limits()).is_ok(), "the whole file is fine");
        let cut_before_iend = &whole[..whole.len() - 12];
        assert_corrupt(inspect(cut_before_iend, &limits()), ImageFormat::Png);
    }

    #[test]
    fn a_truncated_png_is_refused_as_corrupt() {
        let png = png_file(64, 48);
        assert!(inspect(&png, &limits()).is_ok(), "the whole file is fine");
        for fraction in [0.3, 0.6, 0.95] {
            assert_corrupt(inspect(cut(&png, fraction), &limits()), ImageFormat::Png);
        }
        // All image data present, IEND missing.
        assert_corrupt(inspect(&png[..png.len() - 12], &limits()), ImageFormat::Png);
    }

    #[test]
    fn a_truncated_gif_is_refused_as_corrupt() {
        let gif = animated_gif(3);
        for fraction in [0.3, 0.6, 0.95] {
            assert_corrupt(inspect(cut(&gif, fraction), &limits()), ImageFormat::Gif);
        }
    }

    #[test]
    fn a_truncated_webp_is_refused_as_corrupt() {
        let webp = lossless_webp(64, 48, 9);
        for fraction in [0.3, 0.6, 0.95] {
            assert_corrupt(inspect(cut(&webp, fraction), &limits()), ImageFormat::Webp);
        }
    }

    #[test]
    fn a_corrupt_file_gets_a_player_friendly_message_and_keeps_the_detail_for_logs() {
        let png = png_file(32, 32);
        let rejection = inspect(cut(&png, 0.5), &limits()).unwrap_err();
        assert_eq!(
            rejection.to_string(),
            "This PNG file seems damaged or incomplete. \
             Please export it again, or upload the original file."
        );
        let Rejection::Corrupt { detail, .. } = &rejection else {
            panic!("{rejection:?}")
        };
        assert!(!detail.is_empty());
        assert!(!rejection.to_string().contains(detail.as_str()));
    }

    #[test]
    fn every_rejection_has_its_metric_label() {
        let cases = [
            (Rejection::Empty, "empty"),
            (Rejection::TooLarge { size: 2, max: 1 }, "too_large"),
            (Rejection::NotAnImage { looks_like: None }, "not_an_image"),
            (
                Rejection::UnsupportedFormat {
                    format: "SVG",
                    description: "an SVG drawing",
                },
                "unsupported_format",
            ),
            (
                Rejection::DimensionsTooLarge {
                    width: 2,
                    height: 2,
                    max: 1,
                },
                "dimensions_too_large",
            ),
            (
                Rejection::TooManyPixels {
                    width: 2,
                    height: 2,
                    max_pixels: 1,
                },
                "too_many_pixels",
            ),
            (
                Rejection::AnimationTooLarge {
                    frames: 2,
                    max_total_pixels: 1,
                },
                "animation_too_large",
            ),
            (
                Rejection::Corrupt {
                    format: ImageFormat::Gif,
                    detail: String::new(),
                },
                "corrupt",
            ),
        ];
        for (rejection, reason) in cases {
            assert_eq!(rejection.reason(), reason);
        }
    }

    #[test]
    fn an_animation_over_its_total_pixel_budget_is_refused() {
        // Frames of 24×16 = 384 pixels against a budget of 16 × 400 = 6400 pixels: the 17th
        // frame goes over.
        let small = InspectLimits {
            max_pixels: 400,
            ..limits()
        };
        assert_eq!(
            inspect(&animated_gif(16), &small).unwrap().frames_checked,
            16
        );
        let rejection = inspect(&animated_gif(20), &small).unwrap_err();
        assert!(
            matches!(
                rejection,
                Rejection::AnimationTooLarge {
                    frames: 17,
                    max_total_pixels: 6400
                }
            ),
            "{rejection:?}"
        );
    }

    #[test]
    fn formats_name_their_content_type_and_extension() {
        let table = [
            (ImageFormat::Png, "image/png", "png", "PNG"),
            (ImageFormat::Jpeg, "image/jpeg", "jpg", "JPEG"),
            (ImageFormat::Gif, "image/gif", "gif", "GIF"),
            (ImageFormat::Webp, "image/webp", "webp", "WebP"),
        ];
        for (format, mime, extension, name) in table {
            assert_eq!(
                (format.mime_type(), format.extension(), format.name()),
                (mime, extension, name)
            );
        }
    }

    // ---- decode memory -------------------------------------------------------------------

    fn encoded_jpeg(
        width: u16,
        height: u16,
        progressive: bool,
        sampling: jpeg_encoder::SamplingFactor,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
        encoder.set_progressive(progressive);
        encoder.set_sampling_factor(sampling);
        encoder
            .encode(
                &rgb_pixels(u32::from(width), u32::from(height)),
                width,
                height,
                jpeg_encoder::ColorType::Rgb,
            )
            .expect("encode JPEG");
        out
    }

    fn grey_progressive_jpeg(width: u16, height: u16) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
        encoder.set_progressive(true);
        let pixels = noise(usize::from(width) * usize::from(height), 11);
        encoder
            .encode(&pixels, width, height, jpeg_encoder::ColorType::Luma)
            .expect("encode JPEG");
        out
    }

    fn opaque_lossless_webp(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        WebPEncoder::new_lossless(&mut out)
            .write_image(
                &noise((width * height * 3) as usize, 13),
                width,
                height,
                ExtendedColorType::Rgb8,
            )
            .expect("encode WebP");
        out
    }

    #[test]
    fn the_decode_memory_estimate_bounds_what_every_decoder_really_allocates() {
        use jpeg_encoder::SamplingFactor;
        const MIB: u64 = 1024 * 1024;
        let lossless_frames: Vec<Vec<u8>> = (0..3)
            .map(|seed| vp8l_payload(&lossless_webp(256, 192, seed)))
            .collect();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("baseline JPEG 4:4:4", jpeg_file(512, 384)),
            (
                "baseline JPEG 4:2:0",
                encoded_jpeg(512, 384, false, SamplingFactor::R_4_2_0),
            ),
            (
                "progressive JPEG 4:2:0",
                encoded_jpeg(512, 384, true, SamplingFactor::R_4_2_0),
            ),
            (
                "progressive JPEG 4:4:4",
                encoded_jpeg(512, 384, true, SamplingFactor::R_4_4_4),
            ),
            (
                "progressive JPEG 4:2:2",
                encoded_jpeg(512, 384, true, SamplingFactor::R_4_2_2),
            ),
            (
                "progressive JPEG 4:4:0",
                encoded_jpeg(512, 384, true, SamplingFactor::R_4_4_0),
            ),
            ("progressive grey JPEG", grey_progressive_jpeg(512, 384)),
            ("PNG", png_file(512, 384)),
            ("animated GIF", animated_gif(3)),
            ("lossless WebP with alpha", lossless_webp(512, 384, 1)),
            (
                "lossless WebP without alpha",
                opaque_lossless_webp(512, 384),
            ),
            (
                "animated lossless WebP",
                animated_webp(256, 192, &lossless_frames),
            ),
            (
                "lossy WebP",
                include_bytes!("../../tests/fixtures/lossy.webp").to_vec(),
            ),
            (
                "lossy WebP with alpha",
                include_bytes!("../../tests/fixtures/lossy-alpha.webp").to_vec(),
            ),
            (
                "animated lossy WebP with alpha",
                include_bytes!("../../tests/fixtures/lossy-animated.webp").to_vec(),
            ),
        ];
        for (name, bytes) in cases {
            let info = inspect_header(&bytes, &limits()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let (result, held) =
                allocation_meter::thread_peak_during(|| verify_decodes(&bytes, &info, &limits()));
            result.unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(
                held <= info.decode_memory,
                "{name}: decoding held {held} bytes, more than the {} estimated",
                info.decode_memory
            );
            // Far above the real cost, the estimate would refuse images that fit.
            assert!(
                info.decode_memory <= 2 * held + 2 * MIB,
                "{name}: estimated {} bytes, but decoding held only {held}",
                info.decode_memory
            );
        }
    }

    #[test]
    fn a_progressive_jpeg_too_costly_to_decode_is_refused_with_a_size_that_would_fit() {
        use jpeg_encoder::SamplingFactor;
        let baseline = encoded_jpeg(600, 400, false, SamplingFactor::R_4_2_0);
        let progressive = encoded_jpeg(600, 400, true, SamplingFactor::R_4_2_0);
        // Room for the baseline file's one byte a pixel, not for the progressive one's
        // coefficients on top.
        let tight = InspectLimits {
            max_decode_memory: DECODER_STATE_MEMORY + 600 * 400 * 2,
            ..limits()
        };
        inspect(&baseline, &tight).expect("the same picture, baseline, fits");

        let rejection = inspect_header(&progressive, &tight).unwrap_err();
        assert_eq!(rejection.reason(), "decode_too_costly");
        let message = rejection.to_string();
        assert!(
            message.starts_with("This JPEG image is 600×400 pixels and would need about ")
                && message.contains("the most allowed is 1.5 MiB")
                && message.contains("megapixels or less"),
            "{message}"
        );
        // Header facts gathered under looser limits do not get it past the decode step.
        let info = inspect_header(&progressive, &limits()).expect("fits the defaults");
        assert_eq!(
            verify_decodes(&progressive, &info, &tight)
                .unwrap_err()
                .reason(),
            "decode_too_costly"
        );
    }

    #[test]
    fn at_the_defaults_a_40_megapixel_photo_fits_unless_it_is_progressive() {
        let (width, height) = (7_300, 5_479);
        let layout = |progressive, sampling: Vec<(u8, u8)>| JpegLayout {
            buffers_coefficients: progressive,
            sampling,
        };
        let default_budget = InspectLimits::default().max_decode_memory;
        let baseline = layout(false, vec![(2, 2), (1, 1), (1, 1)]);
        assert!(baseline.decode_memory(width, height, 1) <= default_budget);
        let progressive = layout(true, vec![(2, 2), (1, 1), (1, 1)]);
        assert!(progressive.decode_memory(width, height, 1) > default_budget);
        // 24 megapixels of progressive 4:2:0, a large camera export, still fit.
        assert!(progressive.decode_memory(6_000, 4_000, 1) <= default_budget);
    }

    #[test]
    fn the_jpeg_layout_comes_from_the_frame_and_first_scan_headers() {
        use jpeg_encoder::SamplingFactor;
        assert_eq!(
            jpeg_layout(&encoded_jpeg(64, 48, false, SamplingFactor::R_4_2_0)),
            Some(JpegLayout {
                buffers_coefficients: false,
                sampling: vec![(2, 2), (1, 1), (1, 1)],
            })
        );
        assert_eq!(
            jpeg_layout(&encoded_jpeg(64, 48, true, SamplingFactor::R_4_2_2)),
            Some(JpegLayout {
                buffers_coefficients: true,
                sampling: vec![(2, 1), (1, 1), (1, 1)],
            })
        );
        let jpeg = jpeg_file(64, 48);
        let scan = jpeg_header_segments(&jpeg)
            .find(|segment| segment.marker == 0xDA)
            .expect("a scan");
        assert_eq!(jpeg_layout(&jpeg[..scan.end - 6]), None, "scan header cut");
    }
}

#[cfg(test)]
use testkit::allocation_meter;
#[cfg(test)]
#[global_allocator]
static ALLOCATION_METER: allocation_meter::Meter = allocation_meter::Meter;
