//! GIF: header, logical screen descriptor and optional global colour table, then blocks —
//! extensions (`0x21`), images (`0x2C`) — each carrying a chain of length-prefixed sub-blocks,
//! and the trailer (`0x3B`).

/// Size of a colour table whose presence and size are given by a descriptor's flags byte.
pub fn color_table_len(flags: u8) -> usize {
    if flags & 0x80 != 0 {
        3 << ((flags & 0x07) + 1)
    } else {
        0
    }
}

/// The position after the terminator of the sub-block chain starting at `pos`. XMP
/// application extensions are raw text followed by a "magic trailer" designed to make exactly
/// this walk land on their terminator.
pub fn skip_sub_blocks(data: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let length = usize::from(*data.get(pos)?);
        pos += 1;
        if length == 0 {
            return Some(pos);
        }
        pos += length;
    }
}

/// Where the blocks start: after the header, the logical screen descriptor and the global
/// colour table.
pub fn first_block(data: &[u8]) -> Option<usize> {
    Some(13 + color_table_len(*data.get(10)?))
}

/// What a block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    Extension { label: u8 },
    Image,
    Trailer,
}

/// The block starting at `pos` and where it ends, or why it cannot be read there.
pub fn block_at(data: &[u8], pos: usize) -> Result<(Block, usize), &'static str> {
    match data.get(pos) {
        Some(0x21) => {
            let label = *data.get(pos + 1).ok_or("extension truncated")?;
            let end = skip_sub_blocks(data, pos + 2).ok_or("extension truncated")?;
            Ok((Block::Extension { label }, end))
        }
        Some(0x2C) => {
            let flags = *data.get(pos + 9).ok_or("image truncated")?;
            // Descriptor, local colour table, LZW code size, then the data sub-blocks.
            let data_start = pos + 10 + color_table_len(flags) + 1;
            let end = skip_sub_blocks(data, data_start).ok_or("image truncated")?;
            Ok((Block::Image, end))
        }
        Some(0x3B) => Ok((Block::Trailer, pos + 1)),
        Some(_) => Err("unknown block"),
        None => Err("missing trailer"),
    }
}
