//! Removes private metadata from an accepted image without re-encoding it.
//!
//! Each format is walked as a container (JPEG markers, PNG chunks, GIF blocks, RIFF chunks) and
//! metadata units are dropped whole; everything else, the compressed pixel data above all, is
//! copied byte for byte. Re-encoding would also strip metadata, but it costs quality, memory
//! and the player's original file.
//!
//! The EXIF Orientation is the one piece of metadata that changes how an image looks, so it
//! survives as a minimal EXIF block holding only that tag: phone photos stay upright.
//!
//! The walkers are our own rather than img-parts': img-parts keeps everything after a JPEG's
//! first scan as one opaque blob (including images appended after EOI, which carry their own
//! EXIF) and does not repair MPF offsets when segments are removed.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use crate::portrait::inspect::ImageFormat;

/// The file is not the container its format promises. Inspection runs first, so this means a
/// bug or bytes that changed in between, not a player mistake.
#[derive(Debug, thiserror::Error)]
pub enum SanitizeError {
    #[error("malformed {format} file: {reason}")]
    Malformed {
        format: ImageFormat,
        reason: &'static str,
    },
}

/// The stripped image and what was taken out of it, for logs.
#[derive(Debug, Clone)]
pub struct Sanitized {
    pub bytes: Bytes,
    /// Kinds of metadata removed, each listed once, in file order: "EXIF", "XMP", "IPTC",
    /// "comment", "text chunk", "timestamp", "content credentials", "application data",
    /// "other metadata", "appended images", "trailing data".
    pub removed: Vec<&'static str>,
}

const EXIF: &str = "EXIF";
const XMP: &str = "XMP";
const IPTC: &str = "IPTC";
const COMMENT: &str = "comment";
const TEXT_CHUNK: &str = "text chunk";
const TIMESTAMP: &str = "timestamp";
const CONTENT_CREDENTIALS: &str = "content credentials";
const APPLICATION_DATA: &str = "application data";
const OTHER_METADATA: &str = "other metadata";
const APPENDED_IMAGES: &str = "appended images";
const TRAILING_DATA: &str = "trailing data";

/// Strips metadata from `bytes`, an image already accepted as `format`. When nothing needs
/// removing, the input is returned as is (same buffer, no copy) with an empty `removed`.
pub fn strip_metadata(bytes: Bytes, format: ImageFormat) -> Result<Sanitized, SanitizeError> {
    match format {
        ImageFormat::Jpeg => strip_jpeg(bytes),
        ImageFormat::Png => strip_png(bytes),
        ImageFormat::Gif => strip_gif(bytes),
        ImageFormat::Webp => strip_webp(bytes),
    }
}

// ---------------------------------------------------------------------------------------------
// Rewriting

enum Piece {
    Keep(Range<usize>),
    Insert(Bytes),
}

/// Collects the output as ranges of the input plus inserted bytes, so an unchanged file costs
/// nothing and a changed one is copied exactly once.
struct Rewriter {
    source: Bytes,
    pieces: Vec<Piece>,
    changed: bool,
    removed: Vec<&'static str>,
}

impl Rewriter {
    fn new(source: Bytes) -> Self {
        Self {
            source,
            pieces: Vec::new(),
            changed: false,
            removed: Vec::new(),
        }
    }

    fn keep(&mut self, range: Range<usize>) {
        if range.is_empty() {
            return;
        }
        if let Some(Piece::Keep(last)) = self.pieces.last_mut() {
            if last.end == range.start {
                last.end = range.end;
                return;
            }
        }
        self.pieces.push(Piece::Keep(range));
    }

    fn remove(&mut self, range: Range<usize>, what: &'static str) {
        if range.is_empty() {
            return;
        }
        self.changed = true;
        if !self.removed.contains(&what) {
            self.removed.push(what);
        }
    }

    fn insert(&mut self, bytes: Vec<u8>) {
        self.changed = true;
        self.pieces.push(Piece::Insert(Bytes::from(bytes)));
    }

    fn finish(self) -> Sanitized {
        if !self.changed {
            return Sanitized {
                bytes: self.source,
                removed: Vec::new(),
            };
        }
        let bytes = match self.pieces.as_slice() {
            // Only a tail was cut: share the input buffer.
            [Piece::Keep(range)] => self.source.slice(range.clone()),
            pieces => {
                let len = pieces
                    .iter()
                    .map(|piece| match piece {
                        Piece::Keep(range) => range.len(),
                        Piece::Insert(bytes) => bytes.len(),
                    })
                    .sum();
                let mut out = BytesMut::with_capacity(len);
                for piece in pieces {
                    match piece {
                        Piece::Keep(range) => out.extend_from_slice(&self.source[range.clone()]),
                        Piece::Insert(bytes) => out.extend_from_slice(bytes),
                    }
                }
                out.freeze()
            }
        };
        Sanitized {
            bytes,
            removed: self.removed,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// EXIF Orientation

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    fn u16(self, bytes: &[u8], at: usize) -> Option<u16> {
        let raw = [*bytes.get(at)?, *bytes.get(at.checked_add(1)?)?];
        Some(match self {
            Self::Little => u16::from_le_bytes(raw),
            Self::Big => u16::from_be_bytes(raw),
        })
    }

    fn u32(self, bytes: &[u8], at: usize) -> Option<u32> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(match self {
            Self::Little => u32::from_le_bytes(raw),
            Self::Big => u32::from_be_bytes(raw),
        })
    }

    fn put_u16(self, out: &mut Vec<u8>, value: u16) {
        out.extend_from_slice(&match self {
            Self::Little => value.to_le_bytes(),
            Self::Big => value.to_be_bytes(),
        });
    }

    fn put_u32(self, out: &mut Vec<u8>, value: u32) {
        out.extend_from_slice(&match self {
            Self::Little => value.to_le_bytes(),
            Self::Big => value.to_be_bytes(),
        });
    }
}

const ORIENTATION_TAG: u16 = 0x0112;
const TIFF_SHORT: u16 = 3;
const EXIF_HEADER: &[u8] = b"Exif\0\0";

/// The Orientation (1–8) in IFD0 of a TIFF-structured EXIF block, with its byte order.
fn exif_orientation(tiff: &[u8]) -> Option<(ByteOrder, u16)> {
    let order = match tiff.get(..4)? {
        b"II*\0" => ByteOrder::Little,
        b"MM\0*" => ByteOrder::Big,
        _ => return None,
    };
    let ifd = usize::try_from(order.u32(tiff, 4)?).ok()?;
    let count = order.u16(tiff, ifd)?;
    (0..usize::from(count)).find_map(|i| {
        let entry = ifd.checked_add(2 + 12 * i)?;
        if order.u16(tiff, entry)? != ORIENTATION_TAG
            || order.u16(tiff, entry + 2)? != TIFF_SHORT
            || order.u32(tiff, entry + 4)? == 0
        {
            return None;
        }
        let value = order.u16(tiff, entry + 8)?;
        (1..=8).contains(&value).then_some((order, value))
    })
}

/// A TIFF block whose IFD0 holds only the Orientation.
fn minimal_exif(order: ByteOrder, orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::with_capacity(26);
    tiff.extend_from_slice(match order {
        ByteOrder::Little => b"II*\0",
        ByteOrder::Big => b"MM\0*",
    });
    order.put_u32(&mut tiff, 8);
    order.put_u16(&mut tiff, 1);
    order.put_u16(&mut tiff, ORIENTATION_TAG);
    order.put_u16(&mut tiff, TIFF_SHORT);
    order.put_u32(&mut tiff, 1);
    order.put_u16(&mut tiff, orientation);
    order.put_u16(&mut tiff, 0);
    order.put_u32(&mut tiff, 0);
    tiff
}

/// What becomes of an EXIF block: dropped, or replaced by the minimal block when it had an
/// Orientation. A block that already is minimal is kept as it is, so sanitizing twice changes
/// nothing the second time.
enum ExifAction {
    Keep,
    Drop,
    Replace(Vec<u8>),
}

fn exif_action(tiff: &[u8]) -> ExifAction {
    match exif_orientation(tiff) {
        None => ExifAction::Drop,
        Some((order, orientation)) => {
            let minimal = minimal_exif(order, orientation);
            if minimal == tiff {
                ExifAction::Keep
            } else {
                ExifAction::Replace(minimal)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JPEG

fn strip_jpeg(bytes: Bytes) -> Result<Sanitized, SanitizeError> {
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
        let Some(marker_at) = next_marker_in_header(&data, pos) else {
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
                        out.insert(jpeg_segment(0xE1, &[EXIF_HEADER, &tiff]));
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
    let image_end =
        jpeg_end_of_image(&data, scan_start).ok_or(malformed("missing end of image"))?;
    out.keep(scan_start..image_end);
    let label = if has_mpf {
        APPENDED_IMAGES
    } else {
        TRAILING_DATA
    };
    out.remove(image_end..data.len(), label);
    Ok(out.finish())
}

/// Position of the next marker's 0xFF at or after `pos`, skipping fill bytes and any stray
/// bytes between segments.
fn next_marker_in_header(data: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let start = pos + data.get(pos..)?.iter().position(|&b| b == 0xFF)?;
        let mut marker = start + 1;
        while data.get(marker) == Some(&0xFF) {
            marker += 1;
        }
        match data.get(marker) {
            None => return None,
            Some(0x00) => pos = marker + 1,
            Some(_) => return Some(marker - 1),
        }
    }
}

fn segment_end(data: &[u8], marker_at: usize) -> Option<usize> {
    let length = usize::from(u16::from_be_bytes([
        *data.get(marker_at + 2)?,
        *data.get(marker_at + 3)?,
    ]));
    let end = marker_at + 2 + length;
    (length >= 2 && end <= data.len()).then_some(end)
}

/// The end of the primary image (just after its EOI), given the start of its first scan.
fn jpeg_end_of_image(data: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        // In entropy-coded data 0xFF is followed by a stuffed 0x00 or a restart marker; any
        // other byte is a real marker.
        let ff = pos + data.get(pos..)?.iter().position(|&b| b == 0xFF)?;
        let mut marker_at = ff + 1;
        while data.get(marker_at) == Some(&0xFF) {
            marker_at += 1;
        }
        match *data.get(marker_at)? {
            0x00 | 0xD0..=0xD7 | 0x01 => pos = marker_at + 1,
            0xD9 => return Some(marker_at + 1),
            _ => pos = segment_end(data, marker_at - 1)?,
        }
    }
}

fn jpeg_segment(marker: u8, parts: &[&[u8]]) -> Vec<u8> {
    let payload: usize = parts.iter().map(|part| part.len()).sum();
    // Only ever called with a 26-byte EXIF block, far below the 65533-byte segment limit.
    let length = u16::try_from(payload + 2).unwrap_or(u16::MAX);
    let mut segment = Vec::with_capacity(payload + 4);
    segment.extend_from_slice(&[0xFF, marker]);
    segment.extend_from_slice(&length.to_be_bytes());
    for part in parts {
        segment.extend_from_slice(part);
    }
    segment
}

// ---------------------------------------------------------------------------------------------
// PNG

const PNG_SIGNATURE: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

fn strip_png(bytes: Bytes) -> Result<Sanitized, SanitizeError> {
    let malformed = |reason| SanitizeError::Malformed {
        format: ImageFormat::Png,
        reason,
    };
    let data = bytes.clone();
    if !data.starts_with(PNG_SIGNATURE) {
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
                    out.insert(png_chunk(*b"eXIf", &tiff));
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

fn png_chunk(kind: [u8; 4], payload: &[u8]) -> Vec<u8> {
    // Only ever called with a 26-byte EXIF block.
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut chunk = Vec::with_capacity(payload.len() + 12);
    chunk.extend_from_slice(&length.to_be_bytes());
    chunk.extend_from_slice(&kind);
    chunk.extend_from_slice(payload);
    let crc = crc32(&chunk[4..]);
    chunk.extend_from_slice(&crc.to_be_bytes());
    chunk
}

/// CRC-32 (ISO 3309) as PNG chunks use it, over type and data.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut n = 0;
        while n < 256 {
            let mut c = n as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[n] = c;
            n += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |crc, &b| {
        TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8)
    })
}

// ---------------------------------------------------------------------------------------------
// GIF

fn strip_gif(bytes: Bytes) -> Result<Sanitized, SanitizeError> {
    let malformed = |reason| SanitizeError::Malformed {
        format: ImageFormat::Gif,
        reason,
    };
    let data = bytes.clone();
    let header = data.get(..13).ok_or(malformed("header truncated"))?;
    if &header[..6] != b"GIF87a" && &header[..6] != b"GIF89a" {
        return Err(malformed("bad signature"));
    }
    let mut pos = 13 + color_table_len(header[10]);
    let mut out = Rewriter::new(bytes);
    out.keep(0..pos.min(data.len()));

    let image_end = loop {
        let block_start = pos;
        match data.get(pos) {
            Some(0x21) => {
                let label = *data.get(pos + 1).ok_or(malformed("extension truncated"))?;
                let block_end =
                    skip_sub_blocks(&data, pos + 2).ok_or(malformed("extension truncated"))?;
                let block = block_start..block_end;
                match label {
                    0xFE => out.remove(block, COMMENT),
                    0xFF => {
                        // The application identifier (8 bytes) and code (3) form the first
                        // sub-block.
                        let id = data.get(pos + 3..pos + 14).unwrap_or_default();
                        match id {
                            // Looping, and the colour profile: these change how it plays or
                            // looks.
                            b"NETSCAPE2.0" | b"ANIMEXTS1.0" | b"ICCRGBG1012" => out.keep(block),
                            b"XMP DataXMP" => out.remove(block, XMP),
                            b"MGKIPTC0000" | b"MGK8BIM0000" => out.remove(block, IPTC),
                            _ => out.remove(block, APPLICATION_DATA),
                        }
                    }
                    // Graphic control (delays, transparency) and plain text render.
                    _ => out.keep(block),
                }
                pos = block_end;
            }
            Some(0x2C) => {
                let flags = *data.get(pos + 9).ok_or(malformed("image truncated"))?;
                // Descriptor, local colour table, LZW code size, then the data sub-blocks.
                let data_start = pos + 10 + color_table_len(flags) + 1;
                let block_end =
                    skip_sub_blocks(&data, data_start).ok_or(malformed("image truncated"))?;
                out.keep(block_start..block_end);
                pos = block_end;
            }
            Some(0x3B) => {
                out.keep(pos..pos + 1);
                break pos + 1;
            }
            Some(_) => return Err(malformed("unknown block")),
            None => return Err(malformed("missing trailer")),
        }
    };
    out.remove(image_end..data.len(), TRAILING_DATA);
    Ok(out.finish())
}

fn color_table_len(flags: u8) -> usize {
    if flags & 0x80 != 0 {
        3 << ((flags & 0x07) + 1)
    } else {
        0
    }
}

/// The position after the terminator of the sub-block chain starting at `pos`. XMP
/// application extensions are raw text followed by a "magic trailer" designed to make exactly
/// this walk land on their terminator.
fn skip_sub_blocks(data: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let length = usize::from(*data.get(pos)?);
        pos += 1;
        if length == 0 {
            return Some(pos);
        }
        pos += length;
    }
}

// ---------------------------------------------------------------------------------------------
// WebP

/// VP8X flag bits: they announce EXIF and XMP chunks, and decoders refuse a file whose flags
/// promise a chunk that is not there.
const VP8X_EXIF: u8 = 0x08;
const VP8X_XMP: u8 = 0x04;

fn strip_webp(bytes: Bytes) -> Result<Sanitized, SanitizeError> {
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
                        out.insert(riff_chunk(*b"EXIF", &[prefix, &minimal]));
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

fn riff_chunk(fourcc: [u8; 4], parts: &[&[u8]]) -> Vec<u8> {
    let size: usize = parts.iter().map(|part| part.len()).sum();
    // Only ever called with a small EXIF block.
    let declared = u32::try_from(size).unwrap_or(u32::MAX);
    let mut chunk = Vec::with_capacity(size + 9);
    chunk.extend_from_slice(&fourcc);
    chunk.extend_from_slice(&declared.to_le_bytes());
    for part in parts {
        chunk.extend_from_slice(part);
    }
    if size % 2 == 1 {
        chunk.push(0);
    }
    chunk
}

#[cfg(test)]
mod tests {
    use super::*;

    use image::metadata::Orientation;
    use image::{ImageDecoder, ImageFormat as Codec};

    use crate::portrait::inspect::tests::{
        animated_gif, jpeg_file, lossless_webp, png_file, riff_chunk, riff_webp, vp8l_payload, vp8x,
    };
    use crate::portrait::inspect::{inspect, InspectLimits};

    const MAKE: &str = "PlantedCameraMake";
    const MODEL_SERIAL: &str = "PlantedSerial-00042";
    const GPS_DATUM: &str = "PLANTED-GPS-DATUM";
    const XMP_TOOL: &str = "PlantedXmpTool";
    const COMMENT_TEXT: &str = "PlantedComment: taken in my kitchen";
    const IPTC_BYLINE: &str = "PlantedIptcByline";

    /// A TIFF-structured EXIF block: IFD0 with Make, BodySerialNumber-ish text (as Model),
    /// optionally Orientation, and optionally a GPS IFD holding a latitude and a map datum.
    fn exif_block(big_endian: bool, orientation: Option<u16>, with_gps: bool) -> Vec<u8> {
        let u16b = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u32b = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let ascii = |s: &str| {
            let mut v = s.as_bytes().to_vec();
            v.push(0);
            v
        };
        // (tag, type, count, value bytes); GPS pointer value is filled in below.
        let mut ifd0: Vec<(u16, u16, u32, Vec<u8>)> = vec![
            (0x010F, 2, (MAKE.len() + 1) as u32, ascii(MAKE)),
            (
                0x0110,
                2,
                (MODEL_SERIAL.len() + 1) as u32,
                ascii(MODEL_SERIAL),
            ),
        ];
        if let Some(orientation) = orientation {
            let mut value = u16b(orientation).to_vec();
            value.extend_from_slice(&[0, 0]);
            ifd0.push((0x0112, 3, 1, value));
        }
        let latitude: Vec<u8> = [51u32, 1, 30, 1, 1234, 100]
            .iter()
            .flat_map(|&v| u32b(v))
            .collect();
        let gps: Vec<(u16, u16, u32, Vec<u8>)> = vec![
            (0x0001, 2, 2, b"N\0\0\0".to_vec()),
            (0x0002, 5, 3, latitude),
            (0x0012, 2, (GPS_DATUM.len() + 1) as u32, ascii(GPS_DATUM)),
        ];
        if with_gps {
            ifd0.push((0x8825, 4, 1, vec![0; 4]));
        }

        fn ifd_len(entries: &[(u16, u16, u32, Vec<u8>)]) -> usize {
            2 + 12 * entries.len() + 4
        }
        fn data_len(entries: &[(u16, u16, u32, Vec<u8>)]) -> usize {
            entries
                .iter()
                .filter(|e| e.3.len() > 4)
                .map(|e| e.3.len())
                .sum()
        }
        let ifd0_at = 8;
        let data0_at = ifd0_at + ifd_len(&ifd0);
        let gps_at = data0_at + data_len(&ifd0);
        if with_gps {
            let pointer = ifd0.last_mut().unwrap();
            pointer.3 = u32b(gps_at as u32).to_vec();
        }

        let write_ifd =
            |out: &mut Vec<u8>, entries: &[(u16, u16, u32, Vec<u8>)], data_at: usize| {
                let mut data = Vec::new();
                out.extend_from_slice(&u16b(entries.len() as u16));
                for (tag, kind, count, value) in entries {
                    out.extend_from_slice(&u16b(*tag));
                    out.extend_from_slice(&u16b(*kind));
                    out.extend_from_slice(&u32b(*count));
                    if value.len() > 4 {
                        out.extend_from_slice(&u32b((data_at + data.len()) as u32));
                        data.extend_from_slice(value);
                    } else {
                        let mut inline = value.clone();
                        inline.resize(4, 0);
                        out.extend_from_slice(&inline);
                    }
                }
                out.extend_from_slice(&u32b(0));
                out.extend_from_slice(&data);
            };
        let mut tiff = if big_endian {
            b"MM\0*".to_vec()
        } else {
            b"II*\0".to_vec()
        };
        tiff.extend_from_slice(&u32b(ifd0_at as u32));
        write_ifd(&mut tiff, &ifd0, data0_at);
        if with_gps {
            assert_eq!(tiff.len(), gps_at);
            write_ifd(&mut tiff, &gps, gps_at + ifd_len(&gps));
        }
        tiff
    }

    fn xmp_packet() -> String {
        format!(
            "<?xpacket begin='\u{feff}' id='W5M0MpCehiHzreSzNTczkc9d'?>\
             <x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF \
             xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>\
             <rdf:Description xmlns:xmp='http://ns.adobe.com/xap/1.0/' \
             xmp:CreatorTool='{XMP_TOOL}'/></rdf:RDF></x:xmpmeta><?xpacket end='w'?>"
        )
    }

    fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
        let mut segment = vec![0xFF, marker];
        segment.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        segment.extend_from_slice(payload);
        segment
    }

    /// Inserts `segments` right after the encoder's JFIF APP0 segment.
    fn with_segments(jpeg: &[u8], segments: &[Vec<u8>]) -> Vec<u8> {
        assert_eq!(&jpeg[2..4], &[0xFF, 0xE0], "the encoder writes JFIF first");
        let app0_end = 4 + usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]));
        [&jpeg[..app0_end], &segments.concat(), &jpeg[app0_end..]].concat()
    }

    /// Where the first scan starts, found by walking the segments.
    fn start_of_scan(jpeg: &[u8]) -> usize {
        let mut pos = 2;
        loop {
            assert_eq!(jpeg[pos], 0xFF, "segment at {pos}");
            if jpeg[pos + 1] == 0xDA {
                return pos;
            }
            pos += 2 + usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        }
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    }

    fn orientation(bytes: &[u8], codec: Codec) -> Orientation {
        let cursor = std::io::Cursor::new(bytes);
        match codec {
            Codec::Jpeg => image::codecs::jpeg::JpegDecoder::new(cursor)
                .expect("JPEG decoder")
                .orientation(),
            Codec::Png => image::codecs::png::PngDecoder::new(cursor)
                .expect("PNG decoder")
                .orientation(),
            Codec::WebP => image::codecs::webp::WebPDecoder::new(cursor)
                .expect("WebP decoder")
                .orientation(),
            _ => unreachable!(),
        }
        .expect("orientation")
    }

    fn pixels(bytes: &[u8], codec: Codec) -> Vec<u8> {
        image::load_from_memory_with_format(bytes, codec)
            .expect("decodes")
            .into_rgba8()
            .into_raw()
    }

    fn private_jpeg(big_endian: bool) -> Vec<u8> {
        let mut iptc = b"Photoshop 3.0\08BIM\x04\x04\0\0\0\0\0\x18\x1C\x02\x50\0\x11".to_vec();
        iptc.extend_from_slice(IPTC_BYLINE.as_bytes());
        with_segments(
            &jpeg_file(64, 48),
            &[
                segment(
                    0xE1,
                    &[EXIF_HEADER, &exif_block(big_endian, Some(6), true)].concat(),
                ),
                segment(
                    0xE1,
                    &[
                        b"http://ns.adobe.com/xap/1.0/\0".as_slice(),
                        xmp_packet().as_bytes(),
                    ]
                    .concat(),
                ),
                segment(0xED, &iptc),
                segment(0xFE, COMMENT_TEXT.as_bytes()),
            ],
        )
    }

    // ---- JPEG -------------------------------------------------------------------------------

    #[test]
    fn a_jpeg_loses_gps_make_xmp_iptc_and_comment_but_keeps_orientation_pixels_and_scan() {
        let original = private_jpeg(false);
        // The fixture really carries what the test looks for.
        for planted in [
            MAKE,
            MODEL_SERIAL,
            GPS_DATUM,
            XMP_TOOL,
            COMMENT_TEXT,
            IPTC_BYLINE,
        ] {
            assert!(contains(&original, planted), "fixture lacks {planted}");
        }
        assert_eq!(orientation(&original, Codec::Jpeg), Orientation::Rotate90);
        inspect(&original, &InspectLimits::default()).expect("fixture is a valid JPEG");

        let sanitized = strip_metadata(Bytes::from(original.clone()), ImageFormat::Jpeg)
            .expect("strip metadata");
        let out = &sanitized.bytes[..];
        for planted in [
            MAKE,
            MODEL_SERIAL,
            GPS_DATUM,
            XMP_TOOL,
            COMMENT_TEXT,
            IPTC_BYLINE,
        ] {
            assert!(!contains(out, planted), "{planted} survived");
        }
        assert!(
            !contains(out, "http://ns.adobe.com/"),
            "an XMP segment survived"
        );
        assert_eq!(sanitized.removed, vec![EXIF, XMP, IPTC, COMMENT]);

        // Orientation 6 reads back, from an EXIF block holding nothing else.
        assert_eq!(orientation(out, Codec::Jpeg), Orientation::Rotate90);
        let mut decoder =
            image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(out)).expect("decoder");
        let exif = decoder
            .exif_metadata()
            .unwrap()
            .expect("EXIF kept for the orientation");
        assert_eq!(exif.len(), 26, "IFD0 with a single entry: {exif:02x?}");

        assert_eq!(pixels(out, Codec::Jpeg), pixels(&original, Codec::Jpeg));
        assert_eq!(
            &out[start_of_scan(out)..],
            &original[start_of_scan(&original)..],
            "scan data through EOI is byte-identical"
        );
        inspect(out, &InspectLimits::default()).expect("still a valid JPEG");
    }

    #[test]
    fn a_big_endian_exif_orientation_is_written_back_big_endian() {
        let sanitized =
            strip_metadata(Bytes::from(private_jpeg(true)), ImageFormat::Jpeg).expect("strip");
        let out = &sanitized.bytes[..];
        assert!(!contains(out, MAKE) && !contains(out, GPS_DATUM));
        assert!(
            out.windows(10).any(|w| w == b"Exif\0\0MM\0*"),
            "Motorola byte order kept"
        );
        assert_eq!(orientation(out, Codec::Jpeg), Orientation::Rotate90);
    }

    #[test]
    fn exif_without_an_orientation_is_removed_entirely() {
        let original = with_segments(
            &jpeg_file(32, 32),
            &[segment(
                0xE1,
                &[EXIF_HEADER, &exif_block(false, None, true)].concat(),
            )],
        );
        let sanitized = strip_metadata(Bytes::from(original), ImageFormat::Jpeg).expect("strip");
        assert_eq!(sanitized.removed, vec![EXIF]);
        assert!(!contains(&sanitized.bytes, "Exif"));
        assert_eq!(
            orientation(&sanitized.bytes, Codec::Jpeg),
            Orientation::NoTransforms
        );
    }

    #[test]
    fn a_jpeg_without_metadata_is_returned_as_the_same_buffer() {
        let clean = Bytes::from(jpeg_file(32, 32));
        let sanitized = strip_metadata(clean.clone(), ImageFormat::Jpeg).expect("strip");
        assert!(sanitized.removed.is_empty());
        assert_eq!(sanitized.bytes.as_ptr(), clean.as_ptr(), "no copy was made");
        assert_eq!(sanitized.bytes.len(), clean.len());
    }

    #[test]
    fn sanitizing_twice_changes_nothing_the_second_time() {
        let once = strip_metadata(Bytes::from(private_jpeg(false)), ImageFormat::Jpeg)
            .expect("first pass")
            .bytes;
        let twice = strip_metadata(once.clone(), ImageFormat::Jpeg).expect("second pass");
        assert!(twice.removed.is_empty(), "{:?}", twice.removed);
        assert_eq!(twice.bytes.as_ptr(), once.as_ptr());
    }

    #[test]
    fn images_appended_after_the_end_of_a_jpeg_are_removed_with_their_exif() {
        let primary = jpeg_file(32, 32);
        let secondary = with_segments(
            &jpeg_file(8, 8),
            &[segment(
                0xE1,
                &[EXIF_HEADER, &exif_block(false, Some(1), true)].concat(),
            )],
        );
        // An MPF index in the primary image pointing at the appended one.
        let mut mpf = b"MPF\0II*\0\x08\0\0\0".to_vec();
        mpf.extend_from_slice(&[0; 16]);
        let original = [with_segments(&primary, &[segment(0xE2, &mpf)]), secondary].concat();

        let sanitized =
            strip_metadata(Bytes::from(original.clone()), ImageFormat::Jpeg).expect("strip");
        assert_eq!(sanitized.removed, vec!["appended images"]);
        assert!(!contains(&sanitized.bytes, MAKE) && !contains(&sanitized.bytes, GPS_DATUM));
        assert_eq!(
            &sanitized.bytes[..],
            &primary[..],
            "exactly the primary image is left"
        );

        let with_trailer = [&primary[..], b"SecretTrailer"].concat();
        let sanitized =
            strip_metadata(Bytes::from(with_trailer), ImageFormat::Jpeg).expect("strip");
        assert_eq!(sanitized.removed, vec!["trailing data"]);
        assert_eq!(&sanitized.bytes[..], &primary[..]);
    }

    // ---- PNG --------------------------------------------------------------------------------

    fn png_chunk_bytes(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut chunk = (payload.len() as u32).to_be_bytes().to_vec();
        chunk.extend_from_slice(kind);
        chunk.extend_from_slice(payload);
        let crc = crc32(&chunk[4..]);
        chunk.extend_from_slice(&crc.to_be_bytes());
        chunk
    }

    #[test]
    fn a_png_loses_text_xmp_time_and_exif_chunks_but_keeps_orientation_and_pixels() {
        let plain = png_file(20, 10);
        let ihdr_end = 8 + 25;
        let mut itxt = b"XML:com.adobe.xmp\0\0\0\0\0".to_vec();
        itxt.extend_from_slice(xmp_packet().as_bytes());
        let mut text = b"Author\0".to_vec();
        text.extend_from_slice(COMMENT_TEXT.as_bytes());
        let metadata = [
            png_chunk_bytes(b"eXIf", &exif_block(false, Some(8), true)),
            png_chunk_bytes(b"tEXt", &text),
            png_chunk_bytes(b"iTXt", &itxt),
            png_chunk_bytes(b"tIME", &[0x07, 0xE8, 6, 1, 12, 0, 0]),
        ]
        .concat();
        let original = [&plain[..ihdr_end], &metadata, &plain[ihdr_end..]].concat();
        assert_eq!(orientation(&original, Codec::Png), Orientation::Rotate270);
        inspect(&original, &InspectLimits::default()).expect("fixture is a valid PNG");

        let sanitized =
            strip_metadata(Bytes::from(original.clone()), ImageFormat::Png).expect("strip");
        let out = &sanitized.bytes[..];
        for planted in [
            MAKE,
            GPS_DATUM,
            XMP_TOOL,
            COMMENT_TEXT,
            "tEXt",
            "iTXt",
            "tIME",
        ] {
            assert!(!contains(out, planted), "{planted} survived");
        }
        assert_eq!(sanitized.removed, vec![EXIF, TEXT_CHUNK, XMP, TIMESTAMP]);
        assert_eq!(orientation(out, Codec::Png), Orientation::Rotate270);
        assert_eq!(pixels(out, Codec::Png), pixels(&original, Codec::Png));
        // The png crate checks every CRC, including the rewritten eXIf chunk's.
        inspect(out, &InspectLimits::default()).expect("still a valid PNG");
        assert_eq!(
            &out[out.len() - plain.len() + ihdr_end..],
            &plain[ihdr_end..],
            "image data chunks are byte-identical"
        );
    }

    #[test]
    fn a_png_without_metadata_is_returned_as_the_same_buffer() {
        let clean = Bytes::from(png_file(8, 8));
        let sanitized = strip_metadata(clean.clone(), ImageFormat::Png).expect("strip");
        assert!(sanitized.removed.is_empty());
        assert_eq!(sanitized.bytes.as_ptr(), clean.as_ptr());
    }

    // ---- GIF --------------------------------------------------------------------------------

    #[test]
    fn a_gif_loses_its_comment_and_xmp_but_keeps_looping_and_frames() {
        let plain = animated_gif(3);
        let screen_end = 13 + color_table_len(plain[10]);
        let mut comment = vec![0x21, 0xFE, COMMENT_TEXT.len() as u8];
        comment.extend_from_slice(COMMENT_TEXT.as_bytes());
        comment.push(0);
        let mut xmp = vec![0x21, 0xFF, 11];
        xmp.extend_from_slice(b"XMP DataXMP");
        xmp.extend_from_slice(xmp_packet().as_bytes());
        // Adobe's "magic trailer" that lets sub-block walkers skip the raw packet.
        xmp.push(0x01);
        xmp.extend((0..=255u8).rev());
        xmp.push(0);
        let original = [&plain[..screen_end], &comment, &xmp, &plain[screen_end..]].concat();
        assert_eq!(
            inspect(&original, &InspectLimits::default())
                .expect("fixture is a valid GIF")
                .frames_checked,
            3
        );

        let sanitized =
            strip_metadata(Bytes::from(original.clone()), ImageFormat::Gif).expect("strip");
        let out = &sanitized.bytes[..];
        assert!(!contains(out, COMMENT_TEXT) && !contains(out, XMP_TOOL));
        assert_eq!(sanitized.removed, vec![COMMENT, XMP]);
        assert!(contains(out, "NETSCAPE2.0"), "looping kept");
        assert_eq!(out, &plain[..], "exactly the encoder's file is left");
    }

    // ---- WebP -------------------------------------------------------------------------------

    #[test]
    fn a_webp_loses_exif_and_xmp_and_its_flags_stay_consistent() {
        let bitstream = vp8l_payload(&lossless_webp(16, 8, 4));
        let original = riff_webp(&[
            vp8x(0x10 | VP8X_EXIF | VP8X_XMP, 16, 8),
            riff_chunk(b"VP8L", &bitstream),
            riff_chunk(b"EXIF", &exif_block(false, Some(3), true)),
            riff_chunk(b"XMP ", xmp_packet().as_bytes()),
        ]);
        assert_eq!(orientation(&original, Codec::WebP), Orientation::Rotate180);
        inspect(&original, &InspectLimits::default()).expect("fixture is a valid WebP");

        let sanitized =
            strip_metadata(Bytes::from(original.clone()), ImageFormat::Webp).expect("strip");
        let out = &sanitized.bytes[..];
        assert!(!contains(out, MAKE) && !contains(out, GPS_DATUM) && !contains(out, XMP_TOOL));
        assert_eq!(sanitized.removed, vec![EXIF, XMP]);
        assert_eq!(
            out[20] & (VP8X_EXIF | VP8X_XMP),
            VP8X_EXIF,
            "flags match the chunks"
        );
        assert_eq!(
            u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize,
            out.len() - 8,
            "RIFF size"
        );
        assert_eq!(orientation(out, Codec::WebP), Orientation::Rotate180);
        assert_eq!(pixels(out, Codec::WebP), pixels(&original, Codec::WebP));
        inspect(out, &InspectLimits::default()).expect("still a valid WebP");

        // Without an orientation the EXIF chunk goes too, and so does its flag.
        let no_orientation = riff_webp(&[
            vp8x(0x10 | VP8X_EXIF, 16, 8),
            riff_chunk(b"VP8L", &bitstream),
            riff_chunk(b"EXIF", &exif_block(true, None, true)),
        ]);
        let sanitized =
            strip_metadata(Bytes::from(no_orientation), ImageFormat::Webp).expect("strip");
        assert_eq!(sanitized.bytes[20] & (VP8X_EXIF | VP8X_XMP), 0);
        assert!(!contains(&sanitized.bytes, "EXIF"));
        inspect(&sanitized.bytes, &InspectLimits::default()).expect("still a valid WebP");
    }

    #[test]
    fn a_simple_webp_is_returned_as_the_same_buffer() {
        let clean = Bytes::from(lossless_webp(8, 8, 2));
        let sanitized = strip_metadata(clean.clone(), ImageFormat::Webp).expect("strip");
        assert!(sanitized.removed.is_empty());
        assert_eq!(sanitized.bytes.as_ptr(), clean.as_ptr());
    }

    // ---- malformed input --------------------------------------------------------------------

    #[test]
    fn a_malformed_container_is_an_error_not_a_panic() {
        let jpeg = jpeg_file(16, 16);
        let png = png_file(16, 16);
        let gif = animated_gif(2);
        let webp = lossless_webp(16, 16, 1);
        let cases = [
            (jpeg[..jpeg.len() / 2].to_vec(), ImageFormat::Jpeg),
            (jpeg[..40].to_vec(), ImageFormat::Jpeg),
            (png[..png.len() - 12].to_vec(), ImageFormat::Png),
            (png[..png.len() / 2].to_vec(), ImageFormat::Png),
            (gif[..gif.len() - 1].to_vec(), ImageFormat::Gif),
            (webp[..webp.len() / 2].to_vec(), ImageFormat::Webp),
            (b"not an image at all".to_vec(), ImageFormat::Png),
        ];
        for (bytes, format) in cases {
            let error = strip_metadata(Bytes::from(bytes), format).unwrap_err();
            assert!(error.to_string().starts_with("malformed "), "{error}");
        }
    }
}
