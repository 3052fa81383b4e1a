//! GIF: extension blocks are classified by label and application identifier.

use bytes::Bytes;

use super::rewriter::Rewriter;
use super::*;
use crate::portrait::formats::gif::{color_table_len, skip_sub_blocks};

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
