//! GIF: images are kept; of the extensions only graphic control (delays, transparency),
//! looping and the colour profile are, and nothing after the trailer.

use bytes::Bytes;

use super::rewriter::Rewriter;
use super::*;
use crate::portrait::formats::gif::{block_at, first_block, Block};

pub(super) fn strip_gif(bytes: Bytes) -> Result<Sanitized, SanitizeError> {
    let malformed = |reason| SanitizeError::Malformed {
        format: ImageFormat::Gif,
        reason,
    };
    let data = bytes.clone();
    let header = data.get(..13).ok_or(malformed("header truncated"))?;
    if &header[..6] != b"GIF87a" && &header[..6] != b"GIF89a" {
        return Err(malformed("bad signature"));
    }
    let mut pos = first_block(&data).ok_or(malformed("header truncated"))?;
    let mut out = Rewriter::new(bytes);
    out.keep(0..pos.min(data.len()));

    let image_end = loop {
        let (kind, block_end) = block_at(&data, pos).map_err(malformed)?;
        let block = pos..block_end;
        match kind {
            Block::Extension { label } => {
                let block_bytes = &data[block.clone()];
                match label {
                    GRAPHIC_CONTROL => match first_sub_block(&block_bytes[2..], 4) {
                        SubBlocks::Exact => out.keep(block),
                        SubBlocks::More(first) => {
                            out.remove(block, OTHER_METADATA);
                            out.insert([&block_bytes[..2], &first[..]].concat());
                        }
                        SubBlocks::Other => out.remove(block, OTHER_METADATA),
                    },
                    APPLICATION => {
                        // The application identifier (8 bytes) and code (3) form the first
                        // sub-block.
                        let id = match block_bytes.get(2) {
                            Some(11) => block_bytes.get(3..14).unwrap_or_default(),
                            _ => &[],
                        };
                        match id {
                            // Looping, and the colour profile: these change how it plays or
                            // looks. The looping one holds a loop count and nothing else.
                            b"NETSCAPE2.0" | b"ANIMEXTS1.0" => {
                                match first_sub_block(&block_bytes[14..], 3) {
                                    SubBlocks::Exact => out.keep(block),
                                    SubBlocks::More(loops) => {
                                        out.remove(block, APPLICATION_DATA);
                                        out.insert([&block_bytes[..14], &loops[..]].concat());
                                    }
                                    SubBlocks::Other => out.remove(block, APPLICATION_DATA),
                                }
                            }
                            b"ICCRGBG1012" => out.keep(block),
                            b"XMP DataXMP" => out.remove(block, XMP),
                            b"MGKIPTC0000" | b"MGK8BIM0000" => out.remove(block, IPTC),
                            _ => out.remove(block, APPLICATION_DATA),
                        }
                    }
                    COMMENT_LABEL => out.remove(block, COMMENT),
                    // Text drawn over the image by no viewer in use today.
                    PLAIN_TEXT_LABEL => out.remove(block, PLAIN_TEXT),
                    _ => out.remove(block, OTHER_METADATA),
                }
            }
            Block::Image => out.keep(block),
            Block::Trailer => {
                out.keep(block);
                break block_end;
            }
        }
        pos = block_end;
    };
    out.remove(image_end..data.len(), TRAILING_DATA);
    Ok(out.finish())
}

const PLAIN_TEXT_LABEL: u8 = 0x01;
const GRAPHIC_CONTROL: u8 = 0xF9;
const COMMENT_LABEL: u8 = 0xFE;
const APPLICATION: u8 = 0xFF;

enum SubBlocks {
    /// One sub-block of the expected size, then the terminator.
    Exact,
    /// The expected first sub-block, followed by more: that sub-block and a terminator.
    More(Vec<u8>),
    /// A first sub-block of another size.
    Other,
}

/// How a sub-block chain (starting at its first length byte) compares with a single sub-block
/// of `len` bytes.
fn first_sub_block(chain: &[u8], len: usize) -> SubBlocks {
    match chain.get(..len + 1) {
        Some(first) if usize::from(first[0]) == len => {
            if chain.len() == len + 2 {
                SubBlocks::Exact
            } else {
                SubBlocks::More([first, &[0]].concat())
            }
        }
        _ => SubBlocks::Other,
    }
}
