//! WebP: a RIFF file (`RIFF · size (u32 LE) · WEBP`) of chunks `fourcc · size (u32 LE) · data`,
//! each padded to an even length. Animation frames (`ANMF`) nest chunks of their own.

/// VP8X flag bits: they announce optional chunks, and decoders refuse a file whose flags
/// promise a chunk that is not there.
pub const VP8X_ICC: u8 = 0x20;
pub const VP8X_EXIF: u8 = 0x08;
pub const VP8X_XMP: u8 = 0x04;

/// Offset of the VP8X flags byte in a file whose first chunk is VP8X.
pub const VP8X_FLAGS_AT: usize = 20;

/// The end of the RIFF data the header declares (which may lie past the end of `bytes`).
pub fn riff_end(bytes: &[u8]) -> Option<usize> {
    let size = bytes.get(4..8)?;
    (u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize).checked_add(8)
}

/// The fourcc and declared data size of the chunk whose header starts at `pos`.
pub fn chunk_header(bytes: &[u8], pos: usize) -> Option<([u8; 4], usize)> {
    let header = bytes.get(pos..pos.checked_add(8)?)?;
    let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    Some(([header[0], header[1], header[2], header[3]], size))
}

/// A chunk holding the concatenation of `parts`, padded.
pub fn write_chunk(fourcc: [u8; 4], parts: &[&[u8]]) -> Vec<u8> {
    let size: usize = parts.iter().map(|part| part.len()).sum();
    // Callers write chunks far below 4 GiB (the file is capped far lower).
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

/// The frame size a lossy (VP8) bitstream declares.
pub fn vp8_dimensions(data: &[u8]) -> Option<(u32, u32)> {
    let header = data.get(6..10)?;
    let width = u16::from_le_bytes([header[0], header[1]]) & 0x3FFF;
    let height = u16::from_le_bytes([header[2], header[3]]) & 0x3FFF;
    Some((u32::from(width), u32::from(height)))
}

/// The frame size a lossless (VP8L) bitstream declares.
pub fn vp8l_dimensions(data: &[u8]) -> Option<(u32, u32)> {
    let header = data.get(1..5)?;
    let bits = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
}

/// The chunks between `pos` and `end`, read leniently as decoders do: each chunk's fourcc and
/// its data, cut at `end`; stops where no whole chunk header is left.
pub fn chunks(
    bytes: &[u8],
    mut pos: usize,
    end: usize,
) -> impl Iterator<Item = ([u8; 4], std::ops::Range<usize>)> + '_ {
    let end = end.min(bytes.len());
    std::iter::from_fn(move || {
        if pos.checked_add(8)? > end {
            return None;
        }
        let (fourcc, size) = chunk_header(bytes, pos)?;
        let data_start = pos + 8;
        let data_end = data_start.saturating_add(size).min(end);
        pos = data_start.saturating_add(size).saturating_add(size & 1);
        Some((fourcc, data_start..data_end))
    })
}
