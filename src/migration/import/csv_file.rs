//! CSV exports, read record by record with the `csv` crate.
//!
//! The crate splits records and fields and undoes the quoting (RFC 4180: `""` for a quote
//! inside quotes, commas and line breaks allowed inside quotes, records ending in CRLF, LF or
//! a lone CR). Around it this file keeps what the crate does not tell: the line each record
//! starts on (counting a lone CR as a line end too, and the blank lines the crate skips), the
//! row a spreadsheet shows it on, and two leniencies the crate takes silently: a quote that
//! is never closed (an error naming the line it opened on: it swallows the rest of the file)
//! and text after a closing quote (`"abc"def`: only that record is rejected; spaces after the
//! closing quote are dropped). For that it sees the raw bytes of each record through [`Tap`],
//! which keeps only the record in progress and the crate's read-ahead.

use std::io::{self, BufRead, Read};
use std::path::PathBuf;

use csv::{ByteRecord, ReaderBuilder};

use super::columns::{map_header, Header, ImportRow};
use super::report::Rejected;
use super::run::{Item, Records};
use super::{ImportError, MAX_RECORD_BYTES};

const NEVER_CLOSED: &str = "a quoted value is never closed (every `\"` that opens a value \
                            needs a closing `\"`; a quote inside a value is written `\"\"`)";
const TEXT_AFTER_QUOTE: &str =
    "text after a closing quote (a quote inside a quoted value is written `\"\"`)";

/// Passes bytes to the csv reader and keeps a copy of those not yet given to a record.
struct Tap<R> {
    inner: R,
    /// The bytes from `kept_from` on: the record in progress and the reader's read-ahead.
    kept: Vec<u8>,
    kept_from: u64,
    /// The record in progress grew past [`MAX_RECORD_BYTES`].
    overflowed: bool,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.kept.len() > MAX_RECORD_BYTES + 64 * 1024 {
            self.overflowed = true;
            return Err(io::Error::other("record too large"));
        }
        let n = self.inner.read(buf)?;
        self.kept.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// One record as read, before any meaning is given to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CsvRecord {
    /// The line the record starts on, 1-based.
    pub line: usize,
    /// Its row in a spreadsheet: blank lines count, a value's line breaks do not.
    pub row: usize,
    pub fields: Vec<String>,
    /// Something malformed that did not stop the reading, such as text after a closing
    /// quote: the record is rejected, and the records after it are read normally.
    pub problem: Option<String>,
}

impl CsvRecord {
    /// A row of empty cells (spreadsheets export those as `,,,,`); empty lines never
    /// become records.
    fn is_blank(&self) -> bool {
        self.problem.is_none() && self.fields.iter().all(|field| field.trim().is_empty())
    }
}

/// Counts line ends: `\n`, and `\r` when not followed by `\n` (whose answer may be in the
/// next slice: `pending_cr`).
fn count_breaks(bytes: &[u8], pending_cr: &mut bool) -> usize {
    let mut breaks = 0;
    for &byte in bytes {
        if std::mem::take(pending_cr) && byte != b'\n' {
            breaks += 1;
        }
        match byte {
            b'\n' => breaks += 1,
            b'\r' => *pending_cr = true,
            _ => {}
        }
    }
    breaks
}

/// Reads records from CSV text (any byte-order mark already skipped).
pub(super) struct CsvReader<R> {
    reader: csv::Reader<Tap<R>>,
    record: ByteRecord,
    path: PathBuf,
    /// The line at the end of the last record read.
    line: usize,
    pending_cr: bool,
    /// Line breaks inside quoted values so far: a spreadsheet row is the line minus these.
    embedded: usize,
}

impl<R: Read> CsvReader<R> {
    pub(super) fn new(input: R, path: PathBuf) -> CsvReader<R> {
        let tap = Tap {
            inner: input,
            kept: Vec::new(),
            kept_from: 0,
            overflowed: false,
        };
        CsvReader {
            reader: ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(tap),
            record: ByteRecord::new(),
            path,
            line: 1,
            pending_cr: false,
            embedded: 0,
        }
    }

    /// The next record, `None` at the end. A quote never closed is an error.
    pub(super) fn next_record(&mut self) -> Result<Option<CsvRecord>, ImportError> {
        let start = self.reader.position().byte();
        let read = self.reader.read_byte_record(&mut self.record);
        let tap = self.reader.get_mut();
        let from = (start - tap.kept_from) as usize;
        match read {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(_) if tap.overflowed => {
                let raw = std::mem::take(&mut tap.kept);
                let (line, _) = self.analyse(&raw[from..], true)?;
                return Err(ImportError::RecordTooLarge { line });
            }
            Err(err) => {
                return Err(ImportError::Read {
                    path: self.path.clone(),
                    source: io::Error::other(err),
                })
            }
        }
        let end = self.reader.position().byte();
        let tap = self.reader.get_mut();
        let mut kept = std::mem::take(&mut tap.kept);
        let until = (end - tap.kept_from) as usize;
        let raw = &kept[from..until];
        let result = self.analyse(raw, false).and_then(|(line, info)| {
            let row = info.row;
            let mut fields = Vec::with_capacity(self.record.len());
            for (index, field) in self.record.iter().enumerate() {
                let strip = info.strips.get(index).copied().unwrap_or(0);
                let field = &field[..field.len().saturating_sub(strip)];
                let text = std::str::from_utf8(field).map_err(|_| ImportError::NotUtf8 { line })?;
                fields.push(text.to_owned());
            }
            Ok(CsvRecord {
                line,
                row,
                fields,
                problem: info.problem,
            })
        });
        kept.drain(..until);
        let tap = self.reader.get_mut();
        tap.kept = kept;
        tap.kept_from = end;
        result.map(Some)
    }

    /// Reads a record's raw bytes: the blank lines before it, its content, its line end.
    /// Returns the line it starts on and what the csv reader does not say. `partial` when
    /// the bytes are a record cut short (too large): the line counters are left alone.
    fn analyse(&mut self, raw: &[u8], partial: bool) -> Result<(usize, RawInfo), ImportError> {
        let lead = raw
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let mut pending = self.pending_cr;
        let mut line = self.line + count_breaks(&raw[..lead], &mut pending);
        if std::mem::take(&mut pending) {
            line += 1;
        }
        let rest = &raw[lead..];
        let content_len = match rest.last() {
            Some(b'\r' | b'\n') if !partial => rest.len() - 1,
            _ => rest.len(),
        };
        let content = &rest[..content_len];
        let info = scan_quotes(content, line, self.embedded)?;
        if !partial {
            let mut inside = false;
            let embedded = count_breaks(content, &mut inside) + usize::from(inside);
            self.embedded += embedded;
            self.line = line + embedded + count_breaks(&rest[content_len..], &mut pending);
            self.pending_cr = pending;
        }
        Ok((line, info))
    }
}

/// What the raw bytes of a record say beyond the csv reader's fields.
#[derive(Debug, Default)]
struct RawInfo {
    row: usize,
    /// For each field, how many bytes to drop from its end: spaces after a closing quote.
    strips: Vec<usize>,
    problem: Option<String>,
}

/// Follows the quoting of one record's content as the csv reader does (a quote opens a
/// value only as its first character), noting what it accepts silently.
fn scan_quotes(content: &[u8], line: usize, embedded: usize) -> Result<RawInfo, ImportError> {
    let mut info = RawInfo {
        row: line - embedded,
        ..RawInfo::default()
    };
    let mut i = 0;
    loop {
        let mut strip = 0;
        if content.get(i) == Some(&b'"') {
            let open = i;
            i += 1;
            loop {
                match content.get(i) {
                    None => {
                        let mut pending = false;
                        let before = count_breaks(&content[..open], &mut pending);
                        return Err(ImportError::Csv {
                            line: line + before,
                            message: NEVER_CLOSED.to_owned(),
                        });
                    }
                    Some(b'"') if content.get(i + 1) == Some(&b'"') => i += 2,
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            let after = i;
            while i < content.len() && content[i] != b',' {
                i += 1;
            }
            let rest = &content[after..i];
            if !rest.is_empty() {
                if std::str::from_utf8(rest).is_ok_and(|rest| rest.trim().is_empty()) {
                    strip = rest.len();
                } else {
                    info.problem
                        .get_or_insert_with(|| TEXT_AFTER_QUOTE.to_owned());
                }
            }
        } else {
            while i < content.len() && content[i] != b',' {
                i += 1;
            }
        }
        info.strips.push(strip);
        if i < content.len() {
            i += 1;
        } else {
            break;
        }
    }
    Ok(info)
}

/// A CSV export's records, the header read and mapped.
pub(super) struct CsvRecords<R> {
    reader: CsvReader<R>,
    header: Header,
}

impl<R: BufRead + Send> CsvRecords<R> {
    pub(super) fn open(input: R, path: PathBuf) -> Result<CsvRecords<R>, ImportError> {
        let mut reader = CsvReader::new(input, path);
        let header = loop {
            match reader.next_record()? {
                None => return Err(ImportError::Empty),
                // Blank lines before the header are harmless.
                Some(record) if record.is_blank() => continue,
                Some(record) => break record,
            }
        };
        if let Some(problem) = header.problem {
            return Err(ImportError::Csv {
                line: header.line,
                message: format!("in the header: {problem}"),
            });
        }
        let header = map_header(header.fields)?;
        Ok(CsvRecords { reader, header })
    }
}

impl<R: BufRead + Send> Records for CsvRecords<R> {
    fn next_item(&mut self) -> Result<Option<Item>, ImportError> {
        loop {
            let Some(record) = self.reader.next_record()? else {
                return Ok(None);
            };
            if record.is_blank() {
                continue;
            }
            let reject = |reason: String| {
                Ok(Some(Item::Rejected(Rejected {
                    line: record.line,
                    record: record.row,
                    reason,
                })))
            };
            if let Some(problem) = &record.problem {
                return reject(problem.clone());
            }
            let columns = &self.header.columns;
            if record.fields.len() != columns.len() {
                // Reading on would shift every later value into the wrong column.
                return reject(format!(
                    "has {} values but the header has {} columns (a value containing a comma \
                     must be in double quotes)",
                    record.fields.len(),
                    columns.len()
                ));
            }
            let mut row = ImportRow {
                line: record.line,
                record: record.row,
                ..ImportRow::default()
            };
            for (field, value) in columns.iter().zip(record.fields) {
                if let Some(field) = field {
                    *field.slot(&mut row) = Some(value);
                }
            }
            return Ok(Some(Item::Row(row)));
        }
    }

    fn ignored_columns(&self) -> &[String] {
        &self.header.ignored
    }
}

#[cfg(test)]
mod tests;
