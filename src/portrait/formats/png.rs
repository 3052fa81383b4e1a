//! PNG: an 8-byte signature, then chunks of `length (u32 BE) · type · data · CRC-32`.

use std::ops::Range;

pub const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// One chunk, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub kind: [u8; 4],
    /// The whole chunk: length, type, data and CRC.
    pub range: Range<usize>,
    /// The data alone.
    pub data: Range<usize>,
}

/// The chunk starting at `pos`, or why it cannot be read there.
pub fn chunk_at(data: &[u8], pos: usize) -> Result<Chunk, &'static str> {
    let header = data
        .get(pos..pos.saturating_add(8))
        .ok_or("missing IEND chunk")?;
    let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let kind = [header[4], header[5], header[6], header[7]];
    let end = pos
        .checked_add(12)
        .and_then(|end| end.checked_add(length))
        .filter(|&end| end <= data.len())
        .ok_or("chunk truncated")?;
    Ok(Chunk {
        kind,
        range: pos..end,
        data: pos + 8..end - 4,
    })
}

/// A chunk with a correct CRC.
pub fn write_chunk(kind: [u8; 4], payload: &[u8]) -> Vec<u8> {
    // Callers write small chunks (a minimal EXIF block, a test fixture).
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
pub fn crc32(bytes: &[u8]) -> u32 {
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
