//! WebP: top-level RIFF chunks are classified by fourcc; the RIFF size and the VP8X flags are
//! then made to describe what is left.

use bytes::{Bytes, BytesMut};

use super::exif::{exif_action, ExifAction, EXIF_HEADER};
use super::rewriter::Rewriter;
use super::*;
use crate::portrait::formats::webp::{write_chunk, VP8X_EXIF, VP8X_XMP};

pub(super) fn strip_webp(bytes: Bytes) -> Result<Sanitized, SanitizeError> {
    let malformed = |reason| SanitizeError::Malformed {
        format: ImageFormat::Webp,
        reason,
    };
    let data = bytes.clone();
    if data.len() < 12 || &data[..4] != b"RIFF" || &data[8..12] != b"WEBP" {
        return Err(malformed("bad RIFF header"));
    }
    let riff_end = (u32::from_le_bytes([data[4], data[5], data[6], data[7]]) as usize)
        .checked_add(8)
        .filter(|&end| end <= data.len())
        .ok_or(malformed("RIFF data truncated"))?;

    let mut out = Rewriter::new(bytes);
    out.keep(0..12);
    let mut has_exif = false;
    let mut pos = 12;
    while pos < riff_end {
        let header = data
            .get(pos..pos + 8)
            .filter(|_| pos + 8 <= riff_end)
            .ok_or(malformed("chunk header truncated"))?;
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        // Chunks are padded to an even size; a final pad byte may be missing.
        let chunk_end = pos
            .checked_add(8)
            .and_then(|end| end.checked_add(size))
            .filter(|&end| end <= riff_end)
            .ok_or(malformed("chunk truncated"))?;
        let padded_end = (chunk_end + (size & 1)).min(riff_end);
        let chunk = pos..padded_end;
        let payload = &data[pos + 8..chunk_end];
        match &header[..4] {
            b"EXIF" => {
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
            b"XMP " => out.remove(chunk, XMP),
            _ => out.keep(chunk),
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
    let flags_at = 20;
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
