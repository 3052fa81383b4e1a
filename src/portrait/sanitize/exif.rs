//! The EXIF Orientation: found in a TIFF-structured EXIF block, and rewritten as a block that
//! holds nothing else.

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
pub(super) const EXIF_HEADER: &[u8] = b"Exif\0\0";

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
pub(super) enum ExifAction {
    Keep,
    Drop,
    Replace(Vec<u8>),
}

pub(super) fn exif_action(tiff: &[u8]) -> ExifAction {
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
