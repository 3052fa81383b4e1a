//! Builds the output as ranges of the input plus inserted bytes.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::Sanitized;

enum Piece {
    Keep(Range<usize>),
    Insert(Bytes),
}

/// Collects the output as ranges of the input plus inserted bytes, so an unchanged file costs
/// nothing and a changed one is copied exactly once.
pub(super) struct Rewriter {
    source: Bytes,
    pieces: Vec<Piece>,
    changed: bool,
    removed: Vec<&'static str>,
}

impl Rewriter {
    pub(super) fn new(source: Bytes) -> Self {
        Self {
            source,
            pieces: Vec::new(),
            changed: false,
            removed: Vec::new(),
        }
    }

    pub(super) fn keep(&mut self, range: Range<usize>) {
        if range.is_empty() {
            return;
        }
        if let Some(Piece::Keep(last)) = self.pieces.last_mut() {
            if last.end == range.start {
                last.end = range.end;
                return;
            }
        }
        self.pieces.push(Piece::Keep(range));
    }

    pub(super) fn remove(&mut self, range: Range<usize>, what: &'static str) {
        if range.is_empty() {
            return;
        }
        self.changed = true;
        if !self.removed.contains(&what) {
            self.removed.push(what);
        }
    }

    pub(super) fn insert(&mut self, bytes: Vec<u8>) {
        self.changed = true;
        self.pieces.push(Piece::Insert(Bytes::from(bytes)));
    }

    pub(super) fn finish(self) -> Sanitized {
        if !self.changed {
            return Sanitized {
                bytes: self.source,
                removed: Vec::new(),
            };
        }
        let bytes = match self.pieces.as_slice() {
            // Only a tail was cut: share the input buffer.
            [Piece::Keep(range)] => self.source.slice(range.clone()),
            pieces => {
                let len = pieces
                    .iter()
                    .map(|piece| match piece {
                        Piece::Keep(range) => range.len(),
                        Piece::Insert(bytes) => bytes.len(),
                    })
                    .sum();
                let mut out = BytesMut::with_capacity(len);
                for piece in pieces {
                    match piece {
                        Piece::Keep(range) => out.extend_from_slice(&self.source[range.clone()]),
                        Piece::Insert(bytes) => out.extend_from_slice(bytes),
                    }
                }
                out.freeze()
            }
        };
        Sanitized {
            bytes,
            removed: self.removed,
        }
    }
}
