//! JPEG: every segment, wherever it sits (before the first scan, between the scans of a
//! progressive file, after the last one), is kept only when decoding needs it; entropy-coded
//! data is copied as it is; everything after EOI goes.

use bytes::Bytes;

use super::exif::{exif_action, ExifAction, EXIF_HEADER};
use super::rewriter::Rewriter;
use super::*;
use crate::portrait::formats::jpeg::{
    write_segment, Part, Walker, APP0, APP1, APP14, APP2, EOI, ICC_PROFILE, SOS,
};

/// The JFIF header without a thumbnail: identifier, version, units, densities, 0×0 thumbnail.
const JFIF_HEADER_LEN: usize = 14;

/// What becomes of one segment.
enum Verdict {
    Keep,
    Remove(&'static str),
    Replace(&'static str, Vec<u8>),
}

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
    let mut walker = Walker::new(&data);
    let mut state = State::default();
    let image_end = loop {
        let part = walker
            .next_part()
            .map_err(malformed)?
            .ok_or(malformed("missing end of image"))?;
        match part {
            Part::Gap(range) => out.remove(range, STRAY_DATA),
            Part::EntropyData(range) => out.keep(range),
            Part::Marker { marker: EOI, range } => {
                if !state.seen_scan {
                    return Err(malformed("no image data"));
                }
                out.keep(range.clone());
                break range.end;
            }
            Part::Marker { range, .. } => out.keep(range),
            Part::Segment {
                marker,
                range,
                payload,
            } => {
                match state.verdict(marker, &data[payload]) {
                    Verdict::Keep => out.keep(range),
                    Verdict::Remove(what) => out.remove(range, what),
                    Verdict::Replace(what, segment) => {
                        out.remove(range, what);
                        out.insert(segment);
                    }
                }
                state.seen_scan |= marker == SOS;
            }
        }
    };
    let label = if state.has_mpf {
        APPENDED_IMAGES
    } else {
        TRAILING_DATA
    };
    out.remove(image_end..data.len(), label);
    Ok(out.finish())
}

#[derive(Default)]
struct State {
    seen_scan: bool,
    seen_exif: bool,
    has_mpf: bool,
}

impl State {
    /// The allow-list: the frame, scan and table segments decoding needs, wherever they are;
    /// before the first scan also JFIF (without its thumbnail), the ICC profile, Adobe's colour
    /// transform and an EXIF block reduced to its Orientation. Nothing else.
    fn verdict(&mut self, marker: u8, payload: &[u8]) -> Verdict {
        match marker {
            // SOF0–SOF15, DHT (C4) and DAC (CC); C8 is reserved ("JPG").
            0xC0..=0xCF if marker != 0xC8 => return Verdict::Keep,
            // SOS, DQT, DNL, DRI, DHP, EXP.
            0xDA..=0xDF => return Verdict::Keep,
            _ => {}
        }
        if !self.seen_scan {
            match marker {
                APP0 if payload.starts_with(b"JFIF\0") => {
                    return match payload.get(..JFIF_HEADER_LEN) {
                        Some(header)
                            if payload.len() > JFIF_HEADER_LEN || header[12..] != [0, 0] =>
                        {
                            let mut header = header.to_vec();
                            header[12..].fill(0);
                            Verdict::Replace(THUMBNAIL, write_segment(APP0, &[&header]))
                        }
                        _ => Verdict::Keep,
                    };
                }
                APP1 if payload.starts_with(EXIF_HEADER) && !self.seen_exif => {
                    self.seen_exif = true;
                    return match exif_action(&payload[EXIF_HEADER.len()..]) {
                        ExifAction::Keep => Verdict::Keep,
                        ExifAction::Drop => Verdict::Remove(EXIF),
                        ExifAction::Replace(tiff) => {
                            Verdict::Replace(EXIF, write_segment(APP1, &[EXIF_HEADER, &tiff]))
                        }
                    };
                }
                APP2 if payload.starts_with(ICC_PROFILE) => return Verdict::Keep,
                APP14 if payload.starts_with(b"Adobe") => return Verdict::Keep,
                _ => {}
            }
        }
        Verdict::Remove(self.label(marker, payload))
    }

    /// What a removed segment held, for logs.
    fn label(&mut self, marker: u8, payload: &[u8]) -> &'static str {
        match marker {
            APP1 if payload.starts_with(EXIF_HEADER) => EXIF,
            APP1 if payload.starts_with(b"http://ns.adobe.com/") => XMP,
            APP2 if payload.starts_with(b"MPF\0") => {
                // The images it indexes are cut after EOI, along with their own EXIF.
                self.has_mpf = true;
                APPENDED_IMAGES
            }
            0xED => IPTC,
            0xFE => COMMENT,
            0xEB => CONTENT_CREDENTIALS,
            _ => OTHER_METADATA,
        }
    }
}
