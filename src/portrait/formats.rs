//! The container layouts of the accepted formats, shared by [`inspect`](super::inspect) and
//! [`sanitize`](super::sanitize): signatures, how chunks, segments and blocks are framed and
//! walked, and their checksums. Nothing here decodes pixels or decides what is kept.

pub mod gif;
pub mod jpeg;
pub mod png;
pub mod webp;

/// Position of the first occurrence of `needle` in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
