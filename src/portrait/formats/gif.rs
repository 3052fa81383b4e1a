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
