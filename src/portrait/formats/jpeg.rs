//! JPEG: `FF D8` (SOI), then marker segments (`FF · marker · length (u16 BE, counting itself) ·
//! data`) and standalone markers; each scan header (SOS, `FF DA`) is followed by entropy-coded
//! data in which `FF` is always followed by a stuffed `00` or a restart marker; `FF D9` (EOI)
//! ends the image.

use std::ops::Range;

/// Start of scan: a scan header, followed by entropy-coded data.
pub const SOS: u8 = 0xDA;
/// End of image.
pub const EOI: u8 = 0xD9;
/// Application segments: JFIF, EXIF (and XMP), ICC profile (and MPF), Adobe.
pub const APP0: u8 = 0xE0;
pub const APP1: u8 = 0xE1;
pub const APP2: u8 = 0xE2;
pub const APP14: u8 = 0xEE;

/// The identifier opening an APP2 segment that holds a piece of an ICC profile; a sequence
/// number and a count follow it.
pub const ICC_PROFILE: &[u8] = b"ICC_PROFILE\0";

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
    let mut walker = Walker::new(bytes);
    let mut done = false;
    std::iter::from_fn(move || {
        while !done {
            match walker.next_part() {
                Ok(Some(Part::Segment {
                    marker,
                    range,
                    payload,
                })) => {
                    done = marker == SOS;
                    return Some(Segment {
                        marker,
                        payload: &bytes[payload],
                        end: range.end,
                    });
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => done = true,
            }
        }
        None
    })
}
/// Position of the next marker's 0xFF at or after `pos`, skipping fill bytes and any stray
/// bytes between segments.
fn next_marker(data: &[u8], mut pos: usize) -> Option<usize> {
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
fn segment_end(data: &[u8], marker_at: usize) -> Option<usize> {
    let length = usize::from(u16::from_be_bytes([
        *data.get(marker_at + 2)?,
        *data.get(marker_at + 3)?,
    ]));
    let end = marker_at + 2 + length;
    (length >= 2 && end <= data.len()).then_some(end)
}

/// One piece of a JPEG file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Bytes between markers that belong to no segment: fill bytes or stray data.
    Gap(Range<usize>),
    /// A marker without a length (RSTn, TEM, a stray SOI, or EOI, which ends the walk).
    Marker { marker: u8, range: Range<usize> },
    /// A marker segment: the whole of it in `range`, its data in `payload`.
    Segment {
        marker: u8,
        range: Range<usize>,
        payload: Range<usize>,
    },
    /// The entropy-coded data after a scan header, restart markers included.
    EntropyData(Range<usize>),
}

/// Walks a whole JPEG from just after its SOI to its EOI: every segment wherever it sits
/// (before, between or after scans) and every scan's entropy-coded data.
pub struct Walker<'a> {
    data: &'a [u8],
    pos: usize,
    in_scan: bool,
    done: bool,
}

impl<'a> Walker<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 2,
            in_scan: false,
            done: false,
        }
    }

    /// The next part, `None` after EOI, or why the file cannot be walked further.
    pub fn next_part(&mut self) -> Result<Option<Part>, &'static str> {
        if self.done {
            return Ok(None);
        }
        let data = self.data;
        if self.in_scan {
            self.in_scan = false;
            let start = self.pos;
            let marker_at = end_of_entropy_data(data, start).ok_or("missing end of image")?;
            self.pos = marker_at;
            if marker_at > start {
                return Ok(Some(Part::EntropyData(start..marker_at)));
            }
        }
        let start = self.pos;
        let marker_at = next_marker(data, start).ok_or("missing end of image")?;
        if marker_at > start {
            self.pos = marker_at;
            return Ok(Some(Part::Gap(start..marker_at)));
        }
        let marker = data[marker_at + 1];
        let standalone = marker_at..marker_at + 2;
        match marker {
            0xD9 => {
                self.done = true;
                self.pos = standalone.end;
                Ok(Some(Part::Marker {
                    marker,
                    range: standalone,
                }))
            }
            // A stray SOI is ignored by decoders, like the other markers without a length.
            0x01 | 0xD0..=0xD8 => {
                self.pos = standalone.end;
                Ok(Some(Part::Marker {
                    marker,
                    range: standalone,
                }))
            }
            _ => {
                let end = segment_end(data, marker_at).ok_or("segment truncated")?;
                self.pos = end;
                self.in_scan = marker == SOS;
                Ok(Some(Part::Segment {
                    marker,
                    range: marker_at..end,
                    payload: marker_at + 4..end,
                }))
            }
        }
    }
}

/// Where the entropy-coded data starting at `pos` ends: the 0xFF of the next marker that is
/// neither a stuffed 0x00 nor a restart marker (nor TEM or a stray SOI, which decoders skip).
fn end_of_entropy_data(data: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let ff = pos + data.get(pos..)?.iter().position(|&b| b == 0xFF)?;
        let mut next = ff + 1;
        while data.get(next) == Some(&0xFF) {
            next += 1;
        }
        match *data.get(next)? {
            // Stuffed zero, restart markers, and the two stray markers decoders skip there.
            0x00 | 0xD0..=0xD8 | 0x01 => pos = next + 1,
            _ => return Some(next - 1),
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
