//! PNG: chunks up to IEND are kept only when rendering needs them; the rest, and anything after
//! IEND, goes.

use bytes::Bytes;

use super::exif::{exif_action, ExifAction};
use super::rewriter::Rewriter;
use super::*;
use crate::portrait::formats::png::{chunk_at, write_chunk, SIGNATURE as PNG_SIGNATURE};

/// The chunks rendering needs: header, palette and transparency, colour space (gamma,
/// chromaticities, sRGB, ICC profile, significant bits), image data, the APNG animation and
/// frames, and the end. `eXIf` is handled apart: it is reduced to the Orientation.
const RENDERING_CHUNKS: [&[u8; 4]; 13] = [
    b"IHDR", b"PLTE", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"IDAT", b"acTL",
    b"fcTL", b"fdAT", b"IEND",
];

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
    let mut seen_exif = false;
    let image_end = loop {
        let chunk = chunk_at(&data, pos).map_err(malformed)?;
        let payload = &data[chunk.data.clone()];
        let range = chunk.range.clone();
        match &chunk.kind {
            b"IEND" => {
                out.keep(range);
                break chunk.range.end;
            }
            kind if RENDERING_CHUNKS.contains(&kind) => out.keep(range),
            // Decoders read the first eXIf only.
            b"eXIf" if !seen_exif => {
                seen_exif = true;
                match exif_action(payload) {
                    ExifAction::Keep => out.keep(range),
                    ExifAction::Drop => out.remove(range, EXIF),
                    ExifAction::Replace(tiff) => {
                        out.remove(range, EXIF);
                        out.insert(write_chunk(*b"eXIf", &tiff));
                    }
                }
            }
            // `exIf` and `zxIf` are drafts some writers still use.
            b"eXIf" | b"exIf" | b"zxIf" => out.remove(range, EXIF),
            b"iTXt" if payload.starts_with(b"XML:com.adobe.xmp\0") => out.remove(range, XMP),
            b"tEXt" | b"zTXt" | b"iTXt" => out.remove(range, TEXT_CHUNK),
            b"tIME" => out.remove(range, TIMESTAMP),
            b"caBX" => out.remove(range, CONTENT_CREDENTIALS),
            _ => out.remove(range, OTHER_METADATA),
        }
        pos = chunk.range.end;
    };
    out.remove(image_end..data.len(), TRAILING_DATA);
    Ok(out.finish())
}
