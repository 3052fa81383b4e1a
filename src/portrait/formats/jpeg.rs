//! JPEG: `FF D8` (SOI), then marker segments (`FF · marker · length (u16 BE, counting itself) ·
//! data`) and standalone markers; each scan header (SOS, `FF DA`) is followed by entropy-coded
//! data in which `FF` is always followed by a stuffed `00` or a restart marker; `FF D9` (EOI)
//! ends the image.

/// A marker segment of a JPEG header.
pub struct Segment<'a> {
    pub marker: u8,
    pub payload: &'a [u8],
    /// Offset just past the segment.
    pub end: usize,
}

/// The marker segments from SOI up to and including the first SOS (whose entropy-coded data
/// follows it without a length); stops early at EOI or where the file is cut.
pub fn header_segments(bytes: &[u8]) -> impl Iterator<Item = Segment<'_>> {
    let mut pos = 2;
    let mut done = false;
    std::iter::from_fn(move || {
        while !done && pos + 4 <= bytes.len() {
            if bytes[pos] != 0xFF {
                pos += 1;
                continue;
            }
            let marker = bytes[pos + 1];
            match marker {
                0xFF => pos += 1,
                // Standalone markers carry no length.
                0x01 | 0xD0..=0xD8 => pos += 2,
                0xD9 => done = true,
                _ => {
                    let length = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
                    let end = pos + 2 + length;
                    let payload = bytes.get(pos + 4..end.max(pos + 4))?;
                    done = marker == 0xDA;
                    pos = end;
                    return Some(Segment {
                        marker,
                        payload,
                        end,
                    });
                }
            }
        }
        None
    })
}

/// Position of the next marker's 0xFF at or after `pos`, skipping fill bytes and any stray
/// bytes between segments.
pub fn next_marker(data: &[u8], mut pos: usize) -> Option<usize> {
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

/// The end of the segment whose marker's 0xFF is at `marker_at`, when it fits in `data`.
pub fn segment_end(data: &[u8], marker_at: usize) -> Option<usize> {
    let length = usize::from(u16::from_be_bytes([
        *data.get(marker_at + 2)?,
        *data.get(marker_at + 3)?,
    ]));
    let end = marker_at + 2 + length;
    (length >= 2 && end <= data.len()).then_some(end)
}

/// The end of the primary image (just after its EOI), given the start of its first scan.
pub fn end_of_image(data: &[u8], mut pos: usize) -> Option<usize> {
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

/// A marker segment holding the concatenation of `parts`.
pub fn write_segment(marker: u8, parts: &[&[u8]]) -> Vec<u8> {
    let payload: usize = parts.iter().map(|part| part.len()).sum();
    // Callers write small segments, far below the 65533-byte limit.
    let length = u16::try_from(payload + 2).unwrap_or(u16::MAX);
    let mut segment = Vec::with_capacity(payload + 4);
    segment.extend_from_slice(&[0xFF, marker]);
    segment.extend_from_slice(&length.to_be_bytes());
    for part in parts {
        segment.extend_from_slice(part);
    }
    segment
}
