//! JPEG: the segments before the first scan are classified one by one.

use bytes::Bytes;

use super::exif::{exif_action, ExifAction, EXIF_HEADER};
use super::rewriter::Rewriter;
use super::*;
use crate::portrait::formats::jpeg::{end_of_image, next_marker, segment_end, write_segment};

pub(super) fn strip_jpeg(bytes: Bytes) -> Result<Sanitized, SanitizeError> {
    let malformed = |reason| SanitizeError::Malformed {
        format: ImageFormat::Jpeg,
        reason,
    };
    let data = bytes.clone();
    if !data.starts_with(&[0xFF, 0xD8]) {
        return Err(malformed("missing start of image"));
    }
    let mut out = Rewriter::new(bytes);
    out.keep(0..2);
    let mut has_mpf = false;

    // Metadata lives in the segments before the first scan; those are classified one by one.
    let mut pos = 2;
    let scan_start = loop {
        let Some(marker_at) = next_marker(&data, pos) else {
            return Err(malformed("no image data"));
        };
        let marker = data[marker_at + 1];
        match marker {
            0x01 | 0xD0..=0xD7 => {
                out.keep(pos..marker_at + 2);
                pos = marker_at + 2;
                continue;
            }
            0xD8 | 0xD9 => return Err(malformed("no image data")),
            _ => {}
        }
        let segment_end = segment_end(&data, marker_at).ok_or(malformed("segment truncated"))?;
        if marker == 0xDA {
            break pos;
        }
        let payload = &data[marker_at + 4..segment_end];
        let segment = pos..segment_end;
        match marker {
            0xE1 if payload.starts_with(EXIF_HEADER) => {
                match exif_action(&payload[EXIF_HEADER.len()..]) {
                    ExifAction::Keep => out.keep(segment),
                    ExifAction::Drop => out.remove(segment, EXIF),
                    ExifAction::Replace(tiff) => {
                        out.remove(segment, EXIF);
                        out.insert(write_segment(0xE1, &[EXIF_HEADER, &tiff]));
                    }
                }
            }
            0xE1 if payload.starts_with(b"http://ns.adobe.com/") => out.remove(segment, XMP),
            0xED => out.remove(segment, IPTC),
            0xFE => out.remove(segment, COMMENT),
            0xE2 if payload.starts_with(b"ICC_PROFILE\0") => out.keep(segment),
            0xE2 if payload.starts_with(b"MPF\0") => {
                // The images it indexes are cut below, along with their own EXIF.
                has_mpf = true;
                out.remove(segment, APPENDED_IMAGES);
            }
            0xEB => out.remove(segment, CONTENT_CREDENTIALS),
            // JFIF (APP0) and Adobe (APP14, which says how to convert colours) affect
            // rendering; every other APPn is metadata some program left behind.
            0xE0 | 0xEE => out.keep(segment),
            0xE1..=0xEF => out.remove(segment, OTHER_METADATA),
            _ => out.keep(segment),
        }
        pos = segment_end;
    };

    // From the first scan to EOI everything is image data and stays as it is, including any
    // table or comment segments between progressive scans.
    let image_end = end_of_image(&data, scan_start).ok_or(malformed("missing end of image"))?;
    out.keep(scan_start..image_end);
    let label = if has_mpf {
        APPENDED_IMAGES
    } else {
        TRAILING_DATA
    };
    out.remove(image_end..data.len(), label);
    Ok(out.finish())
}
