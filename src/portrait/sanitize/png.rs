//! PNG: chunks are classified one by one up to IEND.

use bytes::Bytes;

use super::exif::{exif_action, ExifAction};
use super::rewriter::Rewriter;
use super::*;
use crate::portrait::formats::png::{write_chunk, SIGNATURE as PNG_SIGNATURE};

pub(super) fn strip_png(bytes: Bytes) -> Result<Sanitized, SanitizeError> {
    let malformed = |reason| SanitizeError::Malformed {
        format: ImageFormat::Png,
        reason,
    };
    let data = bytes.clone();
    if !data.starts_with(&PNG_SIGNATURE) {
        return Err(malformed("bad signature"));
    }
    let mut out = Rewriter::new(bytes);
    out.keep(0..PNG_SIGNATURE.len());
    let mut pos = PNG_SIGNATURE.len();
    let image_end = loop {
        let header = data
            .get(pos..pos + 8)
            .ok_or(malformed("missing IEND chunk"))?;
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind: [u8; 4] = [header[4], header[5], header[6], header[7]];
        let chunk_end = pos
            .checked_add(12)
            .and_then(|end| end.checked_add(length))
            .filter(|&end| end <= data.len())
            .ok_or(malformed("chunk truncated"))?;
        let chunk = pos..chunk_end;
        let payload = &data[pos + 8..chunk_end - 4];
        match &kind {
            b"iTXt" if payload.starts_with(b"XML:com.adobe.xmp\0") => out.remove(chunk, XMP),
            b"tEXt" | b"zTXt" | b"iTXt" => out.remove(chunk, TEXT_CHUNK),
            b"tIME" => out.remove(chunk, TIMESTAMP),
            b"caBX" => out.remove(chunk, CONTENT_CREDENTIALS),
            b"eXIf" => match exif_action(payload) {
                ExifAction::Keep => out.keep(chunk),
                ExifAction::Drop => out.remove(chunk, EXIF),
                ExifAction::Replace(tiff) => {
                    out.remove(chunk, EXIF);
                    out.insert(write_chunk(*b"eXIf", &tiff));
                }
            },
            b"IEND" => {
                out.keep(chunk);
                break chunk_end;
            }
            _ => out.keep(chunk),
        }
        pos = chunk_end;
    };
    out.remove(image_end..data.len(), TRAILING_DATA);
    Ok(out.finish())
}
