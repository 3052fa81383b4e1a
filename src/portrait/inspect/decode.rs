//! Proving every frame decodes, each codec crate driven directly and bounded by the limits,
//! averaging the first frame's pixels into a [`Thumbnail`] on the way.

use std::io::Cursor;
use std::num::NonZeroU64;

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

use super::header::{jpeg_check_colorspace, to_u32};
use super::thumbnail::{gif_interlaced_row, luma, Adam7Rows, Averager, Thumbnail};
use super::{
    check_dimensions, ImageFormat, InspectLimits, Rejection, ANIMATION_PIXEL_BUDGET_FACTOR,
};
use crate::portrait::formats::find;
use crate::portrait::formats::jpeg::header_segments;
use crate::portrait::formats::webp::{chunks, riff_end, vp8_dimensions, vp8l_dimensions};

/// What a successful decode check saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Decoded {
    pub(super) frames: u32,
    pub(super) thumbnail: Thumbnail,
}

/// The thumbnail of a frame every row of which was decoded; a cell left empty means the
/// decoder delivered fewer rows than the header promised, which is corruption.
fn finish(format: ImageFormat, frames: u32, averager: Averager) -> Result<Decoded, Rejection> {
    let thumbnail = averager
        .finish()
        .ok_or_else(|| Rejection::corrupt(format, "rows missing from the first frame"))?;
    Ok(Decoded { frames, thumbnail })
}

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

pub(super) fn verify_png(bytes: &[u8], limits: &InspectLimits) -> Result<Decoded, Rejection> {
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
    // Every chunk's CRC and the image data's Adler-32 are verified, as common decoders do: by
    // default the crate skips ancillary chunks with a bad CRC (which includes every APNG frame,
    // fdAT) and does not check the Adler-32 at all. Text chunks are stripped before storage
    // anyway, and the colour profile was bounded before this, so neither is inflated here.
    let mut options = png::DecodeOptions::default();
    options.set_ignore_adler32(false);
    options.set_ignore_crc(false);
    options.set_skip_ancillary_crc_failures(false);
    options.set_ignore_text_chunk(true);
    options.set_ignore_iccp_chunk(true);
    let mut decoder = png::Decoder::new_with_options(Cursor::new(bytes), options);
    decoder.set_limits(png::Limits {
        bytes: usize::try_from(budget).unwrap_or(usize::MAX),
    });
    // 8-bit grey or colour rows (palettes and low bit depths expanded, 16 bits cut to 8), for
    // the thumbnail; a row is at most 4 × the width checked below.
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(corrupt)?;

    let (width, height) = (reader.info().width, reader.info().height);
    check_dimensions(width, height, limits)?;
    let channels = reader.output_color_type().0.samples();
    let mut averager = Averager::new(width, height);
    let mut places = reader
        .info()
        .interlaced
        .then(|| Adam7Rows::new(width, height));
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
        if index > 0 {
            while reader.next_row().map_err(corrupt)?.is_some() {}
            continue;
        }
        // The first frame is the image itself (APNG's default image): its rows feed the
        // thumbnail.
        let mut y = 0;
        while let Some(row) = reader.next_interlaced_row().map_err(corrupt)? {
            match (row.interlace(), places.as_mut()) {
                (png::InterlaceInfo::Null(_), None) => {
                    averager.add_pixels(y, row.data(), channels);
                    y += 1;
                }
                (png::InterlaceInfo::Adam7(info), Some(places)) => {
                    let place = places
                        .next()
                        .filter(|p| *info == png::Adam7Info::new(p.pass, p.line, width))
                        .ok_or_else(|| Rejection::corrupt(FORMAT, "unexpected interlaced row"))?;
                    let lumas = super::thumbnail::lumas(row.data(), channels);
                    averager.add_row(place.y, place.x0, place.step, lumas);
                }
                _ => return Err(Rejection::corrupt(FORMAT, "unexpected interlacing")),
            }
        }
    }
    // Requires IEND and checks the CRC of every chunk after the image data, so a file cut
    // short after its last IDAT is refused too.
    reader.finish().map_err(corrupt)?;
    finish(FORMAT, frames, averager)
}

pub(super) fn verify_jpeg(bytes: &[u8], limits: &InspectLimits) -> Result<Decoded, Rejection> {
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
    let (width, height) = (to_u32(width), to_u32(height));
    let mut averager = Averager::new(width, height);
    let channels = output.num_components();
    for (y, row) in pixels.chunks_exact(width as usize * channels).enumerate() {
        let y = to_u32(y);
        match output {
            ColorSpace::CMYK => averager.add_row(y, 0, 1, row.chunks_exact(4).map(cmyk_luma)),
            ColorSpace::YCCK => averager.add_row(y, 0, 1, row.chunks_exact(4).map(ycck_luma)),
            _ => averager.add_pixels(y, row, channels),
        }
    }
    finish(FORMAT, 1, averager)
}

/// `a × b / 255`, rounded: how ink and black combine.
fn blend(a: u8, b: u8) -> u8 {
    ((u32::from(a) * u32::from(b) + 127) / 255) as u8
}

/// The luma of a CMYK pixel as stored in JPEGs (inverted, Adobe's way, as zune-jpeg reads it).
fn cmyk_luma(p: &[u8]) -> u8 {
    luma(blend(p[0], p[3]), blend(p[1], p[3]), blend(p[2], p[3]))
}

/// A YCCK pixel's luma, from its Y and K channels: the colour channels hardly move it.
fn ycck_luma(p: &[u8]) -> u8 {
    blend(255 - p[0], p[3])
}

/// Whether an EOI marker follows the first scan. Entropy-coded data never contains `FF D9`
/// (0xFF is always stuffed or a restart marker there), and scanning only after the first SOS
/// skips the EOI of an embedded EXIF thumbnail.
fn jpeg_has_end_of_image(bytes: &[u8]) -> bool {
    header_segments(bytes)
        .find(|segment| segment.marker == 0xDA)
        .and_then(|scan| bytes.get(scan.end..))
        .is_some_and(|scan| find(scan, &[0xFF, 0xD9]).is_some())
}

pub(super) fn verify_gif(bytes: &[u8], limits: &InspectLimits) -> Result<Decoded, Rejection> {
    const FORMAT: ImageFormat = ImageFormat::Gif;
    let corrupt = |e: gif::DecodingError| Rejection::corrupt(FORMAT, e);

    let mut options = gif::DecodeOptions::new();
    // Palette indices, one byte per pixel, decoded a row at a time into a buffer we own: a
    // frame never exists in full. The memory limit guards any buffer the crate sizes itself.
    options.set_color_output(gif::ColorOutput::Indexed);
    let frame_limit = NonZeroU64::new(limits.max_pixels).unwrap_or(NonZeroU64::MIN);
    options.set_memory_limit(gif::MemoryLimit::Bytes(frame_limit));
    let mut decoder = options.read_info(bytes).map_err(corrupt)?;

    let global_palette = decoder.global_palette().map(<[u8]>::to_vec);
    let mut budget = AnimationBudget::new(limits);
    let mut row = Vec::new();
    // The first frame with pixels, in its own rectangle (a first frame almost always covers
    // the whole screen), is the thumbnail's.
    let mut thumbnail: Option<Averager> = None;
    while let Some(frame) = decoder.next_frame_info().map_err(corrupt)? {
        let (width, height) = (u32::from(frame.width), u32::from(frame.height));
        // Frames may legally be larger than the logical screen, so each is held to the limits.
        check_dimensions(width, height, limits)?;
        budget.add_frame(u64::from(width) * u64::from(height))?;
        if width == 0 || height == 0 {
            continue;
        }
        let mut first = thumbnail.is_none().then(|| {
            let palette = frame.palette.clone().or_else(|| global_palette.clone());
            (
                Averager::new(width, height),
                palette.unwrap_or_default(),
                frame.interlaced,
            )
        });
        row.resize(usize::from(frame.width), 0);
        for index in 0..height {
            if !decoder.fill_buffer(&mut row).map_err(corrupt)? {
                return Err(Rejection::corrupt(FORMAT, "frame data ends early"));
            }
            if let Some((averager, palette, interlaced)) = first.as_mut() {
                let y = if *interlaced {
                    gif_interlaced_row(index, height)
                } else {
                    index
                };
                let lumas = row.iter().map(|i| palette_luma(palette, *i));
                averager.add_row(y, 0, 1, lumas);
            }
        }
        if let Some((averager, _, _)) = first {
            thumbnail = Some(averager);
        }
    }
    match thumbnail {
        Some(averager) => finish(FORMAT, budget.frames, averager),
        None => Err(Rejection::corrupt(FORMAT, "no frames")),
    }
}

/// The luma of palette entry `index`; black for an index past the palette's end, as decoders
/// show it.
fn palette_luma(palette: &[u8], index: u8) -> u8 {
    let at = usize::from(index) * 3;
    match palette.get(at..at + 3) {
        Some([r, g, b]) => luma(*r, *g, *b),
        _ => 0,
    }
}

pub(super) fn verify_webp(bytes: &[u8], limits: &InspectLimits) -> Result<Decoded, Rejection> {
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

    let thumbnail = |pixels: &[u8]| {
        let mut averager = Averager::new(width, height);
        let row_bytes = size / height.max(1) as usize;
        let channels = row_bytes / width.max(1) as usize;
        for (y, row) in pixels.chunks_exact(row_bytes.max(1)).enumerate() {
            averager.add_pixels(to_u32(y), row, channels);
        }
        averager
    };
    if !decoder.is_animated() {
        decoder.read_image(&mut pixels).map_err(corrupt)?;
        return finish(FORMAT, 1, thumbnail(&pixels));
    }
    let frames = decoder.num_frames();
    let mut budget = AnimationBudget::new(limits);
    let mut first = None;
    for _ in 0..frames {
        // Each frame is composited onto, and copied out of, a full canvas.
        budget.add_frame(u64::from(width) * u64::from(height))?;
        decoder.read_frame(&mut pixels).map_err(corrupt)?;
        if first.is_none() {
            first = Some(thumbnail(&pixels));
        }
    }
    match first {
        Some(averager) => finish(FORMAT, frames, averager),
        None => Err(Rejection::corrupt(FORMAT, "no frames")),
    }
}

/// Checks that every VP8/VP8L bitstream (top level or inside an animation frame) declares a
/// size within the canvas.
fn check_webp_bitstreams(bytes: &[u8], width: u32, height: u32) -> Result<(), Rejection> {
    let corrupt = |detail: &str| Rejection::corrupt(ImageFormat::Webp, detail);
    let riff_end = riff_end(bytes).ok_or_else(|| corrupt("RIFF header truncated"))?;
    let mut found = false;
    let mut pending = vec![(12usize, riff_end)];
    while let Some((start, end)) = pending.pop() {
        for (fourcc, data) in chunks(bytes, start, end) {
            let declared = match &fourcc {
                b"VP8 " => Some(
                    vp8_dimensions(&bytes[data])
                        .ok_or_else(|| corrupt("VP8 frame header truncated"))?,
                ),
                b"VP8L" => Some(
                    vp8l_dimensions(&bytes[data])
                        .ok_or_else(|| corrupt("VP8L header truncated"))?,
                ),
                b"ANMF" => {
                    // 16 bytes of frame placement, then the frame's own chunks.
                    pending.push((data.start.saturating_add(16), data.end));
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
        }
    }
    if !found {
        return Err(corrupt("no image data"));
    }
    Ok(())
}
