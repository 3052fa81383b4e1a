//! Embedded colour profiles (ICC) are bounded at [`MAX_COLOUR_PROFILE_BYTES`]. A PNG's profile
//! is compressed, so a few kilobytes can inflate to a gigabyte: it is inflated into a buffer of
//! at most the bound, and inflation stops there. JPEG, GIF and WebP profiles are stored as they
//! are, so their size is read from the container.
//!
//! An oversized profile is refused rather than dropped: the profile decides the colours, and
//! storing the image without it would show the player different colours than they uploaded,
//! silently. Real profiles are a few KiB to a few hundred.

use super::{ImageFormat, Rejection, MAX_COLOUR_PROFILE_BYTES};
use crate::portrait::formats::gif::{block_at, first_block, Block};
use crate::portrait::formats::jpeg::{header_segments, APP2, ICC_PROFILE};
use crate::portrait::formats::png::{chunk_at, SIGNATURE as PNG_SIGNATURE};
use crate::portrait::formats::webp::{chunks, riff_end};

/// Refuses an image whose colour profile is larger than the bound, or (PNG) whose compressed
/// profile is damaged.
pub(super) fn check_colour_profile(bytes: &[u8], format: ImageFormat) -> Result<(), Rejection> {
    let too_large = Rejection::ColourProfileTooLarge {
        format,
        max: MAX_COLOUR_PROFILE_BYTES,
    };
    let size = match format {
        ImageFormat::Png => return check_png_profile(bytes, too_large),
        ImageFormat::Jpeg => header_segments(bytes)
            .filter(|segment| segment.marker == APP2 && segment.payload.starts_with(ICC_PROFILE))
            // The identifier, then a sequence number and a count, then a piece of the profile.
            .map(|segment| segment.payload.len().saturating_sub(ICC_PROFILE.len() + 2))
            .sum(),
        ImageFormat::Gif => gif_profile_size(bytes),
        ImageFormat::Webp => webp_profile_size(bytes),
    };
    if size > MAX_COLOUR_PROFILE_BYTES {
        return Err(too_large);
    }
    Ok(())
}

fn check_png_profile(bytes: &[u8], too_large: Rejection) -> Result<(), Rejection> {
    let mut pos = PNG_SIGNATURE.len();
    // The profile must come before the image data; a cut file is the decoder's to refuse.
    while let Ok(chunk) = chunk_at(bytes, pos) {
        match &chunk.kind {
            b"IDAT" | b"IEND" => break,
            b"iCCP" => {
                let data = &bytes[chunk.data];
                // A name of 1–79 bytes, its terminator, the compression method (0: zlib).
                let compressed = data
                    .iter()
                    .position(|&b| b == 0)
                    .and_then(|nul| data.get(nul + 2..))
                    .ok_or_else(|| Rejection::corrupt(ImageFormat::Png, "iCCP chunk truncated"))?;
                return match fdeflate::decompress_to_vec_bounded(
                    compressed,
                    MAX_COLOUR_PROFILE_BYTES,
                ) {
                    Ok(_) => Ok(()),
                    Err(fdeflate::BoundedDecompressionError::OutputTooLarge { .. }) => {
                        Err(too_large)
                    }
                    Err(fdeflate::BoundedDecompressionError::DecompressionError { inner }) => {
                        Err(Rejection::corrupt(
                            ImageFormat::Png,
                            format!("damaged colour profile: {inner:?}"),
                        ))
                    }
                };
            }
            _ => {}
        }
        pos = chunk.range.end;
    }
    Ok(())
}

/// Total size of the ICCRGBG1012 application extensions.
fn gif_profile_size(bytes: &[u8]) -> usize {
    let mut size = 0usize;
    let mut pos = first_block(bytes).unwrap_or(usize::MAX);
    while let Ok((block, end)) = block_at(bytes, pos) {
        match block {
            Block::Trailer => break,
            Block::Extension { label: 0xFF }
                if bytes.get(pos + 2..pos + 14) == Some(b"\x0BICCRGBG1012") =>
            {
                size = size.saturating_add(end - pos);
            }
            _ => {}
        }
        pos = end;
    }
    size
}

/// Total size of the top-level ICCP chunks.
fn webp_profile_size(bytes: &[u8]) -> usize {
    chunks(bytes, 12, riff_end(bytes).unwrap_or(0))
        .filter(|(fourcc, _)| fourcc == b"ICCP")
        .map(|(_, data)| data.len())
        .sum()
}
