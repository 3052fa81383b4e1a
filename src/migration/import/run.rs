//! Running an import: the passes over the file, duplicates, and the batches.
//!
//! 1. **Check** ([`Source::sniff`]): the file is UTF-8, and JSON or CSV by its first character; a
//!    JSON file is also checked as a whole ([`check_syntax`]).
//! 2. **Read** every record and validate it, keeping a 64-bit hash of each valid record's key
//!    (8 bytes a record). A file that cannot be read fails here, before anything is saved.
//! 3. **Duplicates**: only if two hashes are equal is the file read again, to note the last
//!    line of each repeated key (only those keys are kept).
//! 4. **Save**: read once more and save batch by batch, rejecting the earlier records of a
//!    repeated key as duplicates of its last line.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::columns::ImportRow;
use super::csv_file::CsvRecords;
use super::json_file::{check_syntax, JsonRecords};
use super::plan::{apply, validate, Key, ValidRecord};
use super::report::{ImportFormat, ImportReport, Rejected};
use super::{ImportError, ImportOptions};
use crate::db::Db;

const BOM: &[u8] = "\u{feff}".as_bytes();
/// Bytes read from the file at a time.
const READ_BUFFER: usize = 64 * 1024;

/// What an import reads.
#[derive(Debug, Clone, Copy)]
pub(super) enum Source<'a> {
    File(&'a Path),
    Text(&'a str),
    Rows(&'a [ImportRow]),
}

impl Source<'_> {
    fn path(&self) -> PathBuf {
        match self {
            Source::File(path) => path.to_path_buf(),
            Source::Text(_) | Source::Rows(_) => PathBuf::new(),
        }
    }

    /// The text from its start, a byte-order mark skipped (Excel writes one in "CSV UTF-8").
    pub(super) fn open(&self) -> Result<Box<dyn BufRead + Send + '_>, ImportError> {
        let read_error = |source| ImportError::Read {
            path: self.path(),
            source,
        };
        let mut input: Box<dyn BufRead + Send> = match self {
            Source::File(path) => Box::new(BufReader::with_capacity(
                READ_BUFFER,
                File::open(path).map_err(read_error)?,
            )),
            Source::Text(text) => Box::new(text.as_bytes()),
            Source::Rows(_) => Box::new(&b""[..]),
        };
        if input.fill_buf().map_err(read_error)?.starts_with(BOM) {
            input.consume(BOM.len());
        }
        Ok(input)
    }

    /// Its records, from the start.
    pub(super) fn records(
        &self,
        format: Option<ImportFormat>,
    ) -> Result<Box<dyn Records + '_>, ImportError> {
        Ok(match (self, format) {
            (Source::Rows(rows), _) => Box::new(RowRecords { rows: rows.iter() }),
            (_, Some(ImportFormat::Json)) => {
                Box::new(JsonRecords::open(self.open()?, self.path())?)
            }
            (_, _) => Box::new(CsvRecords::open(self.open()?, self.path())?),
        })
    }
}

/// One record read from a file: a row to validate, or already refused.
pub(super) enum Item {
    Row(ImportRow),
    Rejected(Rejected),
}

/// A file's records, read one at a time.
pub(super) trait Records: Send {
    fn next_item(&mut self) -> Result<Option<Item>, ImportError>;
    /// Columns (or JSON keys) not recognised, so far.
    fn ignored_columns(&self) -> &[String];
}

struct RowRecords<'a> {
    rows: std::slice::Iter<'a, ImportRow>,
}

impl Records for RowRecords<'_> {
    fn next_item(&mut self) -> Result<Option<Item>, ImportError> {
        Ok(self.rows.next().cloned().map(Item::Row))
    }

    fn ignored_columns(&self) -> &[String] {
        &[]
    }
}

impl Source<'_> {
    /// Checks the encoding and tells the format by the first character that is not white
    /// space.
    pub(super) fn sniff(&self) -> Result<ImportFormat, ImportError> {
        let first = match self {
            Source::Text(text) => {
                let text = text.strip_prefix('\u{feff}').unwrap_or(text);
                text.trim_start().chars().next()
            }
            Source::File(path) => first_char_of_utf8_file(path)?,
            Source::Rows(_) => unreachable!("records need no format"),
        };
        match first {
            None => Err(ImportError::Empty),
            Some('[') => Ok(ImportFormat::Json),
            Some('{') => Err(ImportError::NotAnArray),
            Some(_) => Ok(ImportFormat::Csv),
        }
    }
}

/// Reads a whole file checking that it is UTF-8; returns its first character that is not
/// white space (after a byte-order mark).
fn first_char_of_utf8_file(path: &Path) -> Result<Option<char>, ImportError> {
    let read_error = |source| ImportError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(read_error)?;
    let mut buf = vec![0u8; READ_BUFFER];
    let mut carried = 0;
    let mut line = 1;
    let mut first = None;
    let mut at_start = true;
    loop {
        let n = file.read(&mut buf[carried..]).map_err(read_error)?;
        if n == 0 {
            if carried > 0 {
                return Err(ImportError::NotUtf8 { line });
            }
            return Ok(first);
        }
        let filled = carried + n;
        let (valid, rest) = match std::str::from_utf8(&buf[..filled]) {
            Ok(text) => (text, 0),
            Err(err) => {
                let valid = &buf[..err.valid_up_to()];
                if err.error_len().is_some() {
                    line += valid.iter().filter(|&&b| b == b'\n').count();
                    return Err(ImportError::NotUtf8 { line });
                }
                // A character cut by the end of the buffer: finish it with the next read.
                let text = std::str::from_utf8(valid).unwrap_or_default();
                (text, filled - err.valid_up_to())
            }
        };
        line += valid.bytes().filter(|&b| b == b'\n').count();
        if first.is_none() {
            let text = if at_start {
                valid.strip_prefix('\u{feff}').unwrap_or(valid)
            } else {
                valid
            };
            first = text.chars().find(|c| !c.is_whitespace());
        }
        at_start = false;
        buf.copy_within(filled - rest..filled, 0);
        carried = rest;
    }
}

fn hash_key(key: &Key) -> u64 {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

/// Imports `source`; see the [module documentation](self) for the passes.
pub(super) async fn run(
    db: &Db,
    source: Source<'_>,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let format = match source {
        Source::Rows(_) => None,
        _ => Some(source.sniff()?),
    };
    if format == Some(ImportFormat::Json) {
        check_syntax(source.open()?, &source.path())?;
    }

    // Read: count, validate, hash the keys.
    let mut records = 0;
    let mut hashes = Vec::new();
    let ignored_columns = {
        let mut reader = source.records(format)?;
        while let Some(item) = reader.next_item()? {
            records += 1;
            if let Item::Row(row) = item {
                if let Ok(valid) = validate(&row) {
                    hashes.push(hash_key(&valid.key()));
                }
            }
        }
        reader.ignored_columns().to_vec()
    };
    let valid = hashes.len();
    hashes.sort_unstable();
    let repeated: HashSet<u64> = hashes
        .windows(2)
        .filter(|pair| pair[0] == pair[1])
        .map(|pair| pair[0])
        .collect();
    drop(hashes);

    // Duplicates: the last record of each repeated key, by its position among the records.
    let mut last: HashMap<Key, (usize, usize)> = HashMap::new();
    let mut duplicates = 0;
    if !repeated.is_empty() {
        let mut reader = source.records(format)?;
        let mut position = 0;
        while let Some(item) = reader.next_item()? {
            position += 1;
            let Item::Row(row) = item else { continue };
            let Ok(valid) = validate(&row) else { continue };
            let key = valid.key();
            if repeated.contains(&hash_key(&key))
                && last.insert(key, (position, valid.line)).is_some()
            {
                duplicates += 1;
            }
        }
    }

    // Save.
    let mut report = ImportReport {
        format,
        dry_run: options.dry_run,
        records,
        ignored_columns,
        ..ImportReport::default()
    };
    let mut batches = Batches {
        db,
        options,
        batch: Vec::with_capacity(options.batch_size.max(1)),
        saved: 0,
        total: valid - duplicates,
    };
    let mut reader = source.records(format)?;
    let mut position = 0;
    while let Some(item) = reader.next_item()? {
        position += 1;
        let row = match item {
            Item::Rejected(rejected) => {
                report.reject(rejected);
                continue;
            }
            Item::Row(row) => row,
        };
        let record = match validate(&row) {
            Ok(record) => record,
            Err(reason) => {
                report.reject(Rejected {
                    line: row.line,
                    record: row.record,
                    reason,
                });
                continue;
            }
        };
        if !last.is_empty() {
            if let Some(&(last_position, last_line)) = last.get(&record.key()) {
                if last_position != position {
                    report.reject(record.rejected(format!(
                        "duplicate of line {last_line}: the same character (guild, owner and \
                         name, ignoring case) appears again later in the file, and the later \
                         record is the one imported"
                    )));
                    continue;
                }
            }
        }
        batches.batch.push(record);
        if batches.batch.len() >= options.batch_size.max(1) {
            batches.save(&mut report).await?;
        }
    }
    batches.save(&mut report).await?;
    Ok(report)
}

/// The batch being filled, and what was saved.
struct Batches<'a> {
    db: &'a Db,
    options: &'a ImportOptions,
    batch: Vec<ValidRecord>,
    saved: usize,
    /// Valid records, duplicates excepted: what the import means to save.
    total: usize,
}

impl Batches<'_> {
    /// Saves the batch in one transaction (rolled back in a dry run) and counts it.
    async fn save(&mut self, report: &mut ImportReport) -> Result<(), ImportError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let (saved, total) = (self.saved, self.total);
        let database_error = |source| ImportError::Database {
            saved,
            total,
            source,
        };
        let mut tx = self.db.begin_import().await.map_err(database_error)?;
        let outcomes = apply(&mut tx, &self.batch, &self.options.cdn_origins)
            .await
            .map_err(database_error)?;
        let finished = if self.options.dry_run {
            tx.rollback().await
        } else {
            tx.commit().await
        };
        finished.map_err(database_error)?;
        for (record, outcome) in self.batch.iter().zip(outcomes) {
            report.count(record, outcome);
        }
        self.saved += self.batch.len();
        self.batch.clear();
        tracing::info!(
            done = self.saved,
            total = self.total,
            dry_run = self.options.dry_run,
            "import progress"
        );
        Ok(())
    }
}
