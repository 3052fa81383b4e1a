//! WebP: only the chunks rendering needs are kept (VP8X, the VP8/VP8L bitstreams, ALPH, ANIM,
//! ANMF frames holding only those, ICCP, and EXIF reduced to the Orientation); the RIFF size and
//! the VP8X flags are then made to describe what is left.

use bytes::{Bytes, BytesMut};

use super::exif::{exif_action, ExifAction, EXIF_HEADER};
use super::rewriter::Rewriter;
use super::*;
use crate::portrait::formats::webp::{
    chunk_header, riff_end, write_chunk, VP8X_EXIF, VP8X_FLAGS_AT, VP8X_XMP,
};

pub(super) fn strip_webp(bytes: Bytes) -> Result<Sanitized, SanitizeError> {
    let malformed = |reason| SanitizeError::Malformed {
        format: ImageFormat::Webp,
        reason,
    };
    let data = bytes.clone();
    if data.len() < 12 || &data[..4] != b"RIFF" || &data[8..12] != b"WEBP" {
        return Err(malformed("bad RIFF header"));
    }
    let riff_end = riff_end(&data)
        .filter(|&end| end <= data.len())
        .ok_or(malformed("RIFF data truncated"))?;

    let mut out = Rewriter::new(bytes);
    out.keep(0..12);
    let mut has_exif = false;
    let mut seen_exif = false;
    let mut pos = 12;
    while pos < riff_end {
        let (fourcc, chunk_end, padded_end) =
            chunk_bounds(&data, pos, riff_end).map_err(malformed)?;
        let chunk = pos..padded_end;
        let payload = &data[pos + 8..chunk_end];
        match &fourcc {
            b"VP8X" | b"VP8 " | b"VP8L" | b"ALPH" | b"ANIM" | b"ICCP" => out.keep(chunk),
            b"ANMF" => {
                let frame = pos + 8..chunk_end;
                match frame_without_metadata(&data, frame).map_err(malformed)? {
                    None => out.keep(chunk),
                    Some(rebuilt) => {
                        out.remove(chunk, OTHER_METADATA);
                        out.insert(rebuilt);
                    }
                }
            }
            // Decoders read the first EXIF chunk only.
            b"EXIF" if !seen_exif => {
                seen_exif = true;
                // The spec wants bare TIFF data, but some writers keep JPEG's "Exif\0\0".
                let prefixed = payload.starts_with(EXIF_HEADER);
                let tiff = if prefixed {
                    &payload[EXIF_HEADER.len()..]
                } else {
                    payload
                };
                match exif_action(tiff) {
                    ExifAction::Keep => {
                        has_exif = true;
                        out.keep(chunk);
                    }
                    ExifAction::Drop => out.remove(chunk, EXIF),
                    ExifAction::Replace(minimal) => {
                        has_exif = true;
                        out.remove(chunk, EXIF);
                        let prefix = if prefixed { EXIF_HEADER } else { &[] };
                        out.insert(write_chunk(*b"EXIF", &[prefix, &minimal]));
                    }
                }
            }
            b"EXIF" => out.remove(chunk, EXIF),
            b"XMP " => out.remove(chunk, XMP),
            _ => out.remove(chunk, OTHER_METADATA),
        }
        pos = padded_end;
    }
    out.remove(riff_end..data.len(), TRAILING_DATA);
    let sanitized = out.finish();
    if sanitized.removed.is_empty() {
        return Ok(sanitized);
    }

    // The RIFF size and the VP8X flags must describe the chunks that are left.
    let bytes = &sanitized.bytes;
    let riff_size = u32::try_from(bytes.len() - 8).map_err(|_| malformed("file too large"))?;
    let flags_at = VP8X_FLAGS_AT;
    let old_flags = (bytes.get(12..16) == Some(b"VP8X"))
        .then(|| bytes.get(flags_at).copied())
        .flatten();
    let new_flags = old_flags.map(|flags| {
        let flags = flags & !(VP8X_EXIF | VP8X_XMP);
        if has_exif {
            flags | VP8X_EXIF
        } else {
            flags
        }
    });
    if bytes[4..8] == riff_size.to_le_bytes() && old_flags == new_flags {
        return Ok(sanitized);
    }
    let mut patched = BytesMut::from(bytes.as_ref());
    patched[4..8].copy_from_slice(&riff_size.to_le_bytes());
    if let Some(flags) = new_flags {
        patched[flags_at] = flags;
    }
    Ok(Sanitized {
        bytes: patched.freeze(),
        removed: sanitized.removed,
    })
}

/// The fourcc, end of data and end of padding of the chunk at `pos`, within `end`. Chunks are
/// padded to an even size; a final pad byte may be missing.
fn chunk_bounds(
    data: &[u8],
    pos: usize,
    end: usize,
) -> Result<([u8; 4], usize, usize), &'static str> {
    let (fourcc, size) = chunk_header(data, pos)
        .filter(|_| pos + 8 <= end)
        .ok_or("chunk header truncated")?;
    let chunk_end = pos
        .checked_add(8)
        .and_then(|start| start.checked_add(size))
        .filter(|&chunk_end| chunk_end <= end)
        .ok_or("chunk truncated")?;
    Ok((fourcc, chunk_end, (chunk_end + (size & 1)).min(end)))
}

/// The data of an ANMF chunk holds 16 bytes of placement, then the frame's own chunks, of which
/// only the alpha plane and the bitstream render. `None` when it holds nothing else; otherwise
/// the ANMF chunk rebuilt without the rest.
fn frame_without_metadata(
    data: &[u8],
    frame: std::ops::Range<usize>,
) -> Result<Option<Vec<u8>>, &'static str> {
    let placement_end = frame.start + 16;
    if placement_end > frame.end {
        return Err("animation frame truncated");
    }
    let mut kept: Vec<&[u8]> = vec![&data[frame.start..placement_end]];
    let mut dropped = false;
    let mut pos = placement_end;
    while pos < frame.end {
        let (fourcc, _, padded_end) = chunk_bounds(data, pos, frame.end)?;
        match &fourcc {
            b"ALPH" | b"VP8 " | b"VP8L" => kept.push(&data[pos..padded_end]),
            _ => dropped = true,
        }
        pos = padded_end;
    }
    Ok(dropped.then(|| write_chunk(*b"ANMF", &kept)))
}
