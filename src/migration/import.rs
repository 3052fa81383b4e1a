//! Importing characters from another bot's export: `portrait-bot import FILE`.
//!
//! This is how a community brings its old bot's data: a JSON array of objects or a CSV file
//! with a header row, one character per record, with `guild_id`, `owner_id`, `name`, optional
//! `class` and `bio`, and `portrait_url`. Portraits are imported as external links (the
//! character's `portrait_url`, no stored object); the CDN migration stores them in the bucket
//! afterwards.
//!
//! # Rules
//!
//! - **Format** comes from the content, not the file name: JSON when the first character
//!   (after a byte-order mark and white space) is `[`, CSV otherwise. Column names are matched
//!   ignoring case, spaces, `_` and `-`, with a few aliases (see [`COLUMNS`]); other columns are
//!   ignored and listed in the report. In CSV the header must name `guild_id`, `owner_id`,
//!   `name` and `portrait_url` (a misspelt portrait column must not import every character
//!   without its portrait); `class` and `bio` are optional.
//! - **Whole file or nothing for the format**: a file that cannot be read as JSON or CSV at all
//!   ([`ImportError`]) changes nothing. **Record by record for the content**: a bad record is
//!   rejected with its line and every reason, and the others are imported.
//! - **Key**: (guild, owner, name ignoring case and surrounding spaces), the rule players'
//!   own characters follow, so an import finds and updates characters registered in Discord
//!   and re-importing a file never duplicates anything.
//! - **Duplicates inside one file**: the last valid record for a key wins (an export lists
//!   later edits later); the earlier ones are rejected as "duplicate of line N". An invalid
//!   record does not count as a duplicate: it is rejected for its own reason.
//! - **Updates**: class and bio are replaced by the file's values; an empty value clears
//!   them, a column (or JSON key) that is absent leaves them alone. The name keeps the
//!   spelling it has. An empty portrait link never removes a portrait.
//! - **Portraits we already store are not clobbered.** When the character shows a portrait
//!   stored in our bucket:
//!   - if it was migrated from the file's link (the same link: for CDN origins the same
//!     attachment path, whatever the signature in the query string), it is kept: the row is
//!     unchanged;
//!   - if it was migrated from a *different* link, the community changed the portrait in the
//!     old bot since: the character shows the new link, and the next migration stores it
//!     ([`ImportReport::relinked`]);
//!   - if a player uploaded it to this bot themselves (it came from no link), it is kept: a
//!     player's own upload is newer than anything the old bot knew
//!     ([`ImportReport::kept_uploads`]). Replacing it would also leave its object referenced by
//!     nothing, for orphan cleanup to delete.
//! - **Transactions**: records are saved in batches of [`ImportOptions::batch_size`], one
//!   transaction each, so a failure loses at most the batch in progress, never half a
//!   character, and importing the same file again is always safe.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use url::Url;

use crate::db::{Character, Db, DbError, ImportTarget, ImportTransaction, ImportedCharacter};
use crate::fetch::Origin;

/// Longest character name, in characters (Discord's limit on `/register`).
pub const MAX_NAME_CHARS: usize = 64;
/// Longest class, in characters.
pub const MAX_CLASS_CHARS: usize = 64;
/// Longest bio, in characters.
pub const MAX_BIO_CHARS: usize = 1000;
/// Longest portrait link, in characters: Discord refuses longer embed image URLs.
pub const MAX_URL_CHARS: usize = 2048;
/// Largest file [`import_file`] reads. Ten thousand characters with long bios are a few MiB;
/// anything near this is a wrong file (a database dump, an image), better refused at once.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Records per transaction: large enough that 10,000 records take 20 commits, small enough
/// that the running bot waits for SQLite's write lock only briefly.
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// The Discord CDN origins, whose links are compared by attachment path (see [`ImportOptions`]).
pub const DISCORD_CDN_ORIGINS: [&str; 2] =
    ["https://cdn.discordapp.com", "https://media.discordapp.net"];

/// Rejections [`ImportReport`]'s `Display` lists before "… and N more".
const SHOWN_REJECTIONS: usize = 20;
/// How often a record is read and decided again when a concurrent change beat its write.
const ATTEMPTS: usize = 3;
/// How much of a bad value a rejection quotes.
const QUOTED_CHARS: usize = 40;

/// How an import runs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Origins whose links identify an attachment by path alone: a signed Discord CDN link
    /// (`?ex=…&is=…&hm=…`) and its refreshed or unsigned forms, on either CDN host, are the
    /// same portrait. Pass the configured `CDN_ALLOWED_ORIGINS`; the default is Discord's.
    pub cdn_origins: Vec<Origin>,
    /// Records per transaction (at least 1).
    pub batch_size: usize,
    /// Decide everything, report it, and save nothing (each batch is rolled back).
    pub dry_run: bool,
}

impl Default for ImportOptions {
    fn default() -> ImportOptions {
        ImportOptions {
            cdn_origins: DISCORD_CDN_ORIGINS
                .iter()
                .filter_map(|origin| Origin::parse(origin).ok())
                .collect(),
            batch_size: DEFAULT_BATCH_SIZE,
            dry_run: false,
        }
    }
}

/// The format of an import file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    Json,
    Csv,
}

impl fmt::Display for ImportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImportFormat::Json => "JSON",
            ImportFormat::Csv => "CSV",
        })
    }
}

/// One record as read from a file, before validation.
///
/// `None` means the file has no such column (or the JSON object no such key); `Some("")` an
/// empty value. The difference matters for `class` and `bio`: absent leaves an existing
/// character's value alone, empty clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportRow {
    /// The line the record starts on, 1-based.
    pub line: usize,
    /// The record's position: in CSV its row as a spreadsheet shows it (the header is row 1),
    /// in JSON its position in the array (the first object is 1).
    pub record: usize,
    pub guild_id: Option<String>,
    pub owner_id: Option<String>,
    pub name: Option<String>,
    pub class: Option<String>,
    pub bio: Option<String>,
    pub portrait_url: Option<String>,
}

/// A record that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The line the record starts on, 1-based.
    pub line: usize,
    /// See [`ImportRow::record`].
    pub record: usize,
    /// Every problem found, for the person fixing the file.
    pub reason: String,
}

/// What an import did (or, in a dry run, would do).
///
/// `records == created + updated + unchanged + rejected.len()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// The file's format; `None` for [`import_records`].
    pub format: Option<ImportFormat>,
    /// Nothing was saved.
    pub dry_run: bool,
    /// Records read (blank CSV lines and the header are not records).
    pub records: usize,
    /// New characters: the "imported" count.
    pub created: usize,
    /// Existing characters whose class, bio or portrait link changed.
    pub updated: usize,
    /// Existing characters the record matched exactly (or whose stored portrait was kept).
    pub unchanged: usize,
    /// Records not imported, in file order.
    pub rejected: Vec<Rejected>,
    /// Characters whose portrait a player uploaded to this bot, kept instead of the file's
    /// link (counted in `updated` or `unchanged` too).
    pub kept_uploads: usize,
    /// Characters whose stored portrait had been migrated from a different link and that
    /// now show the file's link, for the next migration to store (counted in `updated` too).
    pub relinked: usize,
    /// Columns (or JSON keys) that are not recognised, ignored.
    pub ignored_columns: Vec<String>,
}

impl ImportReport {
    fn location(&self, rejected: &Rejected) -> String {
        match self.format {
            Some(ImportFormat::Json) => {
                format!("line {} (object #{})", rejected.line, rejected.record)
            }
            Some(ImportFormat::Csv) if rejected.record != rejected.line => {
                format!(
                    "line {} (spreadsheet row {})",
                    rejected.line, rejected.record
                )
            }
            _ => format!("line {}", rejected.line),
        }
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dry_run {
            writeln!(f, "Dry run: nothing was saved. The import would give:")?;
        }
        let format = self.format.map(|f| format!(" ({f})")).unwrap_or_default();
        writeln!(f, "records read: {:>6}{format}", self.records)?;
        writeln!(f, "created:      {:>6}", self.created)?;
        writeln!(f, "updated:      {:>6}", self.updated)?;
        writeln!(f, "unchanged:    {:>6}", self.unchanged)?;
        writeln!(f, "rejected:     {:>6}", self.rejected.len())?;
        if self.kept_uploads > 0 {
            writeln!(
                f,
                "\n{} kept the portrait a player uploaded to this bot; the file's link was not used.",
                characters(self.kept_uploads)
            )?;
        }
        if self.relinked > 0 {
            writeln!(
                f,
                "\n{} had a portrait migrated from a different link: they now show the file's \
                 link, which the next migration stores.",
                characters(self.relinked)
            )?;
        }
        if !self.ignored_columns.is_empty() {
            writeln!(
                f,
                "\nIgnored columns (not recognised): {}.\nRecognised: {}.",
                self.ignored_columns.join(", "),
                recognised_columns()
            )?;
        }
        if !self.rejected.is_empty() {
            writeln!(f, "\nRejected:")?;
            for rejected in self.rejected.iter().take(SHOWN_REJECTIONS) {
                writeln!(f, "  {}: {}", self.location(rejected), rejected.reason)?;
            }
            if self.rejected.len() > SHOWN_REJECTIONS {
                writeln!(f, "  … and {} more", self.rejected.len() - SHOWN_REJECTIONS)?;
            }
        }
        Ok(())
    }
}

fn characters(n: usize) -> String {
    if n == 1 {
        "1 character".to_owned()
    } else {
        format!("{n} characters")
    }
}

/// Why a file could not be imported at all. When one of these is returned nothing was
/// changed, except for [`ImportError::Database`], which says what was saved.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is {size} bytes; an import file may be at most {MAX_FILE_BYTES} bytes",
        path.display()
    )]
    TooLarge { path: PathBuf, size: u64 },
    #[error(
        "the file is not UTF-8 text (the first bad byte is on line {line}); save it as UTF-8 \
         (in Excel: \"CSV UTF-8\")"
    )]
    NotUtf8 { line: usize },
    #[error("the file is empty")]
    Empty,
    #[error("the file is not valid JSON: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "a JSON import must be an array of characters, `[{{\"guild_id\": …}}, …]`, but this file \
         starts with `{{`"
    )]
    NotAnArray,
    #[error("the CSV cannot be read at line {line}: {message}")]
    Csv { line: usize, message: String },
    #[error(
        "the CSV header has no column for {}; it has: {}. Recognised: {}.{}",
        missing.join(", "),
        found_columns(found),
        recognised_columns(),
        hint.as_deref().map(|hint| format!(" {hint}")).unwrap_or_default()
    )]
    MissingColumns {
        missing: Vec<&'static str>,
        found: Vec<String>,
        hint: Option<String>,
    },
    #[error("the CSV header has two columns for {field}, `{first}` and `{second}`; keep one")]
    DuplicateColumn {
        field: &'static str,
        first: String,
        second: String,
    },
    #[error(
        "the database failed after {saved} of {total} valid records were saved; the batch in \
         progress was rolled back, so no character is half-updated, and importing the file \
         again is safe: {source}"
    )]
    Database {
        saved: usize,
        total: usize,
        source: DbError,
    },
}

fn found_columns(found: &[String]) -> String {
    if found.is_empty() {
        "no columns".to_owned()
    } else {
        found
            .iter()
            .map(|column| format!("`{column}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The fields of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Field {
    GuildId,
    OwnerId,
    Name,
    Class,
    Bio,
    PortraitUrl,
}

/// Every field with the column names accepted for it, the canonical name first. Names are
/// compared in lower case and by their letters and digits only, so `Guild ID`, `guildId` and
/// `guild-id` all match `guild_id`.
pub const COLUMNS: [(&str, &[&str]); 6] = [
    ("guild_id", &["guild", "server_id", "server"]),
    (
        "owner_id",
        &["owner", "user_id", "user", "player_id", "player"],
    ),
    ("name", &["character", "character_name", "char_name"]),
    ("class", &["character_class"]),
    ("bio", &["biography", "description"]),
    (
        "portrait_url",
        &["portrait", "image_url", "image", "avatar_url", "avatar"],
    ),
];

impl Field {
    const ALL: [Field; 6] = [
        Field::GuildId,
        Field::OwnerId,
        Field::Name,
        Field::Class,
        Field::Bio,
        Field::PortraitUrl,
    ];

    fn name(self) -> &'static str {
        COLUMNS[self as usize].0
    }

    fn from_column(column: &str) -> Option<Field> {
        let squashed = squash(column);
        Field::ALL.into_iter().find(|field| {
            let (canonical, aliases) = COLUMNS[*field as usize];
            squash(canonical) == squashed || aliases.iter().any(|a| squash(a) == squashed)
        })
    }

    /// Required in a CSV header; in JSON a missing id or name rejects the record.
    fn required(self) -> bool {
        !matches!(self, Field::Class | Field::Bio)
    }

    fn slot(self, row: &mut ImportRow) -> &mut Option<String> {
        match self {
            Field::GuildId => &mut row.guild_id,
            Field::OwnerId => &mut row.owner_id,
            Field::Name => &mut row.name,
            Field::Class => &mut row.class,
            Field::Bio => &mut row.bio,
            Field::PortraitUrl => &mut row.portrait_url,
        }
    }
}

/// Lower case, letters and digits only.
fn squash(column: &str) -> String {
    column
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn recognised_columns() -> String {
    COLUMNS
        .iter()
        .map(|(canonical, aliases)| {
            if aliases.is_empty() {
                (*canonical).to_owned()
            } else {
                format!("{canonical} (or {})", aliases.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A file read into records, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFile {
    pub format: ImportFormat,
    /// Records to validate and import.
    pub rows: Vec<ImportRow>,
    /// Records already refused while reading (wrong number of CSV fields, a JSON value that
    /// is not an object, …).
    pub rejected: Vec<Rejected>,
    /// Columns (or JSON keys) not recognised.
    pub ignored_columns: Vec<String>,
}

/// Reads an export file and imports it; see the [module documentation](self) for the rules.
pub async fn import_file(
    db: &Db,
    path: &Path,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let read_error = |source| ImportError::Read {
        path: path.to_owned(),
        source,
    };
    let size = tokio::fs::metadata(path).await.map_err(read_error)?.len();
    if size > MAX_FILE_BYTES {
        return Err(ImportError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    let bytes = tokio::fs::read(path).await.map_err(read_error)?;
    let text = std::str::from_utf8(&bytes).map_err(|err| ImportError::NotUtf8 {
        line: line_of(&bytes[..err.valid_up_to()]),
    })?;
    import_text(db, text, options).await
}

/// Imports an export already in memory (JSON or CSV, told apart by content).
pub async fn import_text(
    db: &Db,
    text: &str,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let parsed = parse(text)?;
    let mut report = ImportReport {
        format: Some(parsed.format),
        ignored_columns: parsed.ignored_columns,
        ..ImportReport::default()
    };
    run(db, parsed.rows, parsed.rejected, options, &mut report).await?;
    Ok(report)
}

/// Validates and imports records read by the caller.
pub async fn import_records(
    db: &Db,
    rows: Vec<ImportRow>,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let mut report = ImportReport::default();
    run(db, rows, Vec::new(), options, &mut report).await?;
    Ok(report)
}

/// Reads a file's text into records: JSON when it starts with `[`, CSV otherwise.
pub fn parse(text: &str) -> Result<ParsedFile, ImportError> {
    // Excel writes a byte-order mark at the start of "CSV UTF-8".
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match text.trim_start().chars().next() {
        None => Err(ImportError::Empty),
        Some('[') => parse_json(text),
        Some('{') => Err(ImportError::NotAnArray),
        Some(_) => parse_csv(text),
    }
}

fn line_of(before: &[u8]) -> usize {
    before.iter().filter(|&&b| b == b'\n').count() + 1
}

fn parse_json(text: &str) -> Result<ParsedFile, ImportError> {
    let values: Vec<Value> = serde_json::from_str(text).map_err(|err| ImportError::Json {
        line: err.line(),
        column: err.column(),
        message: err.to_string(),
    })?;
    let lines = json_element_lines(text);
    let mut parsed = ParsedFile {
        format: ImportFormat::Json,
        rows: Vec::new(),
        rejected: Vec::new(),
        ignored_columns: Vec::new(),
    };
    for (index, value) in values.into_iter().enumerate() {
        let line = lines.get(index).copied().unwrap_or(1);
        let record = index + 1;
        let reject = |reason: String| Rejected {
            line,
            record,
            reason,
        };
        let Value::Object(object) = value else {
            parsed.rejected.push(reject(format!(
                "expected an object such as {{\"guild_id\": …, \"name\": …}}, found {}",
                json_kind(&value)
            )));
            continue;
        };
        let mut row = ImportRow {
            line,
            record,
            ..ImportRow::default()
        };
        let mut keys: HashMap<Field, String> = HashMap::new();
        let mut problems = Vec::new();
        for (key, value) in object {
            let Some(field) = Field::from_column(&key) else {
                if !parsed.ignored_columns.contains(&key) {
                    parsed.ignored_columns.push(key);
                }
                continue;
            };
            if let Some(first) = keys.get(&field) {
                // Sorted: serde_json's key order depends on a crate feature.
                let (a, b) = if *first <= key {
                    (first.as_str(), key.as_str())
                } else {
                    (key.as_str(), first.as_str())
                };
                problems.push(format!(
                    "both `{a}` and `{b}` give the {}; keep one",
                    field.name()
                ));
                continue;
            }
            match json_text(field, &value) {
                Ok(text) => *field.slot(&mut row) = Some(text),
                Err(problem) => problems.push(problem),
            }
            keys.insert(field, key);
        }
        if problems.is_empty() {
            parsed.rows.push(row);
        } else {
            parsed.rejected.push(reject(problems.join("; ")));
        }
    }
    Ok(parsed)
}

/// A JSON value as the text the validation reads. Ids may be numbers or strings; text may be a
/// number (a character named 42); `null` is an empty value.
fn json_text(field: Field, value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Null => Ok(String::new()),
        // serde_json reads integers exactly as u64 (no float rounding), so a snowflake written
        // as a bare number keeps every digit; anything else is shown as written and refused
        // by the validation.
        Value::Number(number) => Ok(number
            .as_u64()
            .map(|n| n.to_string())
            .unwrap_or_else(|| number.to_string())),
        other => Err(format!(
            "{} must be {}, not {}",
            field.name(),
            if matches!(field, Field::GuildId | Field::OwnerId) {
                "a number or a string"
            } else {
                "text"
            },
            json_kind(other)
        )),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The line each element of the top-level array starts on, so a rejection can point into
/// the file: serde_json reports positions only for errors. Only called on text serde_json
/// has accepted, so the scan needs to follow strings and nesting, nothing more.
fn json_element_lines(text: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    let mut line = 1;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut expecting_element = false;
    for byte in text.bytes() {
        if byte == b'\n' {
            line += 1;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                expecting_element = false;
                continue;
            }
            _ => {}
        }
        if expecting_element && depth == 1 {
            lines.push(line);
            expecting_element = false;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth == 1 {
                    expecting_element = true;
                }
            }
            b',' if depth == 1 => expecting_element = true,
            _ => {}
        }
    }
    lines
}

fn parse_csv(text: &str) -> Result<ParsedFile, ImportError> {
    let records = read_csv(text).map_err(|err| ImportError::Csv {
        line: err.line,
        message: err.message,
    })?;
    let mut records = records.into_iter().enumerate();
    let header = loop {
        match records.next() {
            None => return Err(ImportError::Empty),
            // Blank lines before the header are harmless.
            Some((_, record)) if record.is_blank() => continue,
            Some((_, record)) => break record,
        }
    };
    if let Some(problem) = header.problem {
        return Err(ImportError::Csv {
            line: header.line,
            message: format!("in the header: {problem}"),
        });
    }

    let mut columns = Vec::with_capacity(header.fields.len());
    let mut seen: HashMap<Field, String> = HashMap::new();
    let mut ignored_columns = Vec::new();
    for column in &header.fields {
        let column = column.trim();
        let field = Field::from_column(column);
        match field {
            Some(field) => {
                if let Some(first) = seen.get(&field) {
                    return Err(ImportError::DuplicateColumn {
                        field: field.name(),
                        first: first.clone(),
                        second: column.to_owned(),
                    });
                }
                seen.insert(field, column.to_owned());
            }
            None if !column.is_empty() => ignored_columns.push(column.to_owned()),
            None => {}
        }
        columns.push(field);
    }
    let missing: Vec<&'static str> = Field::ALL
        .into_iter()
        .filter(|field| field.required() && !seen.contains_key(field))
        .map(Field::name)
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::MissingColumns {
            missing,
            hint: header_hint(&header.fields),
            found: header.fields,
        });
    }

    let mut parsed = ParsedFile {
        format: ImportFormat::Csv,
        rows: Vec::new(),
        rejected: Vec::new(),
        ignored_columns,
    };
    for (index, record) in records {
        // A spreadsheet's row number: blank rows count there, though they are skipped here.
        let row_number = index + 1;
        if record.is_blank() {
            continue;
        }
        let reject = |reason: String| Rejected {
            line: record.line,
            record: row_number,
            reason,
        };
        if let Some(problem) = &record.problem {
            parsed.rejected.push(reject(problem.clone()));
            continue;
        }
        if record.fields.len() != columns.len() {
            // Reading on would shift every later value into the wrong column.
            parsed.rejected.push(reject(format!(
                "has {} values but the header has {} columns (a value containing a comma must \
                 be in double quotes)",
                record.fields.len(),
                columns.len()
            )));
            continue;
        }
        let mut row = ImportRow {
            line: record.line,
            record: row_number,
            ..ImportRow::default()
        };
        for (field, value) in columns.iter().zip(record.fields) {
            if let Some(field) = field {
                *field.slot(&mut row) = Some(value);
            }
        }
        parsed.rows.push(row);
    }
    Ok(parsed)
}

/// A guess at why a header has none of the expected columns.
fn header_hint(fields: &[String]) -> Option<String> {
    if let [only] = fields {
        for (separator, name) in [(';', "semicolons"), ('\t', "tabs"), ('|', "bars")] {
            if only.contains(separator) {
                return Some(format!(
                    "The header looks separated by {name}: export the file with commas."
                ));
            }
        }
    }
    if fields
        .iter()
        .any(|field| !field.trim().is_empty() && field.trim().chars().all(|c| c.is_ascii_digit()))
    {
        return Some(
            "The first line looks like data: the file needs a header line naming the columns."
                .to_owned(),
        );
    }
    None
}

/// One CSV record as read, before any meaning is given to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CsvRecord {
    /// The line the record starts on, 1-based.
    pub line: usize,
    pub fields: Vec<String>,
    /// Something malformed that did not stop the reading, such as text after a closing
    /// quote: the record is rejected, and the records after it are read normally.
    pub problem: Option<String>,
}

impl CsvRecord {
    /// An empty line, or a row of empty cells (spreadsheets export those as `,,,,`).
    fn is_blank(&self) -> bool {
        self.problem.is_none() && self.fields.iter().all(|field| field.trim().is_empty())
    }
}

/// A CSV file that cannot be read past a point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CsvError {
    pub line: usize,
    pub message: String,
}

enum Terminator {
    Comma,
    Newline,
    End,
}

/// Reads RFC 4180 CSV: comma-separated, fields optionally in double quotes, `""` for a quote
/// inside quotes, commas and line breaks allowed inside quotes, records ending in CRLF or LF
/// (a lone CR too). Leniencies, because exports are written by many tools: a quote inside an
/// unquoted field is kept as a character, and text after a closing quote marks only that
/// record as malformed. A quote that is never closed is an error, since it swallows the rest
/// of the file. Blank lines are returned as records of one empty field.
pub(crate) fn read_csv(text: &str) -> Result<Vec<CsvRecord>, CsvError> {
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut records = Vec::new();
    while chars.peek().is_some() {
        let mut record = CsvRecord {
            line,
            fields: Vec::new(),
            problem: None,
        };
        loop {
            let mut field = String::new();
            let quoted = chars.peek() == Some(&'"');
            if quoted {
                chars.next();
                let opened_on = line;
                loop {
                    match chars.next() {
                        None => {
                            return Err(CsvError {
                                line: opened_on,
                                message: "a quoted value is never closed (every `\"` that opens \
                                          a value needs a closing `\"`; a quote inside a value \
                                          is written `\"\"`)"
                                    .to_owned(),
                            })
                        }
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' || (c == '\r' && chars.peek() != Some(&'\n')) {
                                line += 1;
                            }
                            field.push(c);
                        }
                    }
                }
            }
            let mut rest = String::new();
            let terminator = read_unquoted(&mut chars, &mut rest);
            if !quoted {
                field = rest;
            } else if !rest.trim().is_empty() {
                // `"abc"def`: kept as written, but the record is suspect. Spaces after the
                // closing quote (`"abc" ,`) are only dropped.
                field.push_str(&rest);
                record.problem.get_or_insert_with(|| {
                    "text after a closing quote (a quote inside a quoted value is written `\"\"`)"
                        .to_owned()
                });
            }
            record.fields.push(field);
            match terminator {
                Terminator::Comma => continue,
                Terminator::Newline => {
                    line += 1;
                    break;
                }
                Terminator::End => break,
            }
        }
        records.push(record);
    }
    Ok(records)
}

/// Reads up to the next comma or line break (consumed, CRLF as one) or the end.
fn read_unquoted(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    field: &mut String,
) -> Terminator {
    loop {
        match chars.next() {
            None => return Terminator::End,
            Some(',') => return Terminator::Comma,
            Some('\n') => return Terminator::Newline,
            Some('\r') => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                return Terminator::Newline;
            }
            Some(c) => field.push(c),
        }
    }
}

/// A change to an optional text column of an existing character.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TextChange {
    /// The file has no such column: leave the character's value alone.
    Keep,
    /// The file's value is empty.
    Clear,
    Set(String),
}

impl TextChange {
    fn apply(&self, current: &Option<String>) -> Option<String> {
        match self {
            TextChange::Keep => current.clone(),
            TextChange::Clear => None,
            TextChange::Set(text) => Some(text.clone()),
        }
    }

    fn for_new_character(&self) -> Option<&str> {
        match self {
            TextChange::Set(text) => Some(text),
            TextChange::Keep | TextChange::Clear => None,
        }
    }
}

/// A record that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ValidRecord {
    line: usize,
    record: usize,
    guild_id: u64,
    owner_id: u64,
    /// Trimmed.
    name: String,
    class: TextChange,
    bio: TextChange,
    /// Normalised by the URL parser; `None` when the file gives none.
    portrait_url: Option<String>,
}

impl ValidRecord {
    fn key(&self) -> (u64, u64, String) {
        (
            self.guild_id,
            self.owner_id,
            crate::character::name_key(&self.name),
        )
    }

    fn rejected(&self, reason: String) -> Rejected {
        Rejected {
            line: self.line,
            record: self.record,
            reason,
        }
    }
}

/// Checks a record, collecting every problem so one pass over the file shows them all.
fn validate(row: &ImportRow) -> Result<ValidRecord, String> {
    let mut problems = Vec::new();
    let guild_id = discord_id(Field::GuildId, row.guild_id.as_deref(), &mut problems);
    let owner_id = discord_id(Field::OwnerId, row.owner_id.as_deref(), &mut problems);

    let name = row.name.as_deref().unwrap_or_default().trim();
    if row.name.is_none() {
        problems.push("name is missing".to_owned());
    } else if name.is_empty() {
        problems.push("name is empty".to_owned());
    } else {
        check_text(Field::Name, name, MAX_NAME_CHARS, false, &mut problems);
    }

    let class = text_change(Field::Class, row.class.as_deref(), MAX_CLASS_CHARS, false);
    let bio = text_change(Field::Bio, row.bio.as_deref(), MAX_BIO_CHARS, true);
    let class = class.unwrap_or_else(|problem| {
        problems.push(problem);
        TextChange::Keep
    });
    let bio = bio.unwrap_or_else(|problem| {
        problems.push(problem);
        TextChange::Keep
    });

    let portrait_url = match row.portrait_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(link) => portrait_link(link).map_err(|p| problems.push(p)).ok(),
    };

    match (guild_id, owner_id) {
        (Some(guild_id), Some(owner_id)) if problems.is_empty() => Ok(ValidRecord {
            line: row.line,
            record: row.record,
            guild_id,
            owner_id,
            name: name.to_owned(),
            class,
            bio,
            portrait_url,
        }),
        _ => Err(problems.join("; ")),
    }
}

/// A Discord snowflake: digits only, positive, and below 2^63 (both databases store a signed
/// 64-bit integer; every real snowflake fits).
fn discord_id(field: Field, value: Option<&str>, problems: &mut Vec<String>) -> Option<u64> {
    let name = field.name();
    let Some(value) = value else {
        problems.push(format!("{name} is missing"));
        return None;
    };
    let value = value.trim();
    if value.is_empty() {
        problems.push(format!("{name} is empty"));
        return None;
    }
    if value.chars().all(|c| c.is_ascii_digit()) {
        return match value.parse::<u64>() {
            Ok(0) => {
                problems.push(format!("{name} is 0, which is not a Discord id"));
                None
            }
            Ok(id) if i64::try_from(id).is_ok() => Some(id),
            _ => {
                problems.push(format!(
                    "{name} `{}` is too large to be a Discord id",
                    quoted(value)
                ));
                None
            }
        };
    }
    let looks_scientific = value.contains(['e', 'E'])
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | 'e' | 'E' | '+' | '-'));
    problems.push(if looks_scientific {
        // Spreadsheets show long numbers as 1.10E+18 and export them so: the last digits are
        // gone and no import can bring them back.
        format!(
            "{name} `{}` is in scientific notation, which loses the id's last digits; format \
             the column as text and export again",
            quoted(value)
        )
    } else {
        format!(
            "{name} `{}` is not a Discord id (a positive whole number)",
            quoted(value)
        )
    });
    None
}

fn text_change(
    field: Field,
    value: Option<&str>,
    max_chars: usize,
    multiline: bool,
) -> Result<TextChange, String> {
    let Some(value) = value else {
        return Ok(TextChange::Keep);
    };
    // One line-break convention in the database, whatever the exporting system used.
    let value = if multiline {
        value.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        value.to_owned()
    };
    let value = value.trim();
    if value.is_empty() {
        return Ok(TextChange::Clear);
    }
    let mut problems = Vec::new();
    check_text(field, value, max_chars, multiline, &mut problems);
    match problems.pop() {
        None => Ok(TextChange::Set(value.to_owned())),
        Some(problem) => Err(problem),
    }
}

/// Length in characters (as Discord counts them) and no control characters: they break
/// embeds, and PostgreSQL refuses a NUL outright, which would fail a whole batch.
fn check_text(
    field: Field,
    value: &str,
    max_chars: usize,
    multiline: bool,
    problems: &mut Vec<String>,
) {
    let name = field.name();
    let chars = value.chars().count();
    if chars > max_chars {
        problems.push(format!(
            "{name} is {chars} characters; the limit is {max_chars}"
        ));
    } else if value
        .chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\t')))
    {
        problems.push(if multiline {
            format!("{name} contains a control character")
        } else {
            format!("{name} contains a control character (such as a line break or a tab)")
        });
    }
}

/// An `http`/`https` link with a host, in the URL parser's normal form.
fn portrait_link(link: &str) -> Result<String, String> {
    let chars = link.chars().count();
    if chars > MAX_URL_CHARS {
        return Err(format!(
            "portrait_url is {chars} characters; the limit is {MAX_URL_CHARS}"
        ));
    }
    // The link itself is not quoted back: Discord CDN links carry a signature.
    let url = Url::parse(link).map_err(|err| format!("portrait_url is not a link ({err})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "portrait_url must be an http:// or https:// link, not {}:",
            quoted(url.scheme())
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("portrait_url has no host".to_owned());
    }
    Ok(url.into())
}

/// A value shown in a rejection: short, one line.
fn quoted(value: &str) -> String {
    let mut shown: String = value
        .chars()
        .take(QUOTED_CHARS)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if value.chars().count() > QUOTED_CHARS {
        shown.push('…');
    }
    shown
}

/// Whether two portrait links are the same portrait: the same URL, or, on a CDN origin, the
/// same attachment path. Discord signs CDN links (`?ex=…&is=…&hm=…`) and the signature
/// changes every time a link is refreshed, and `media.discordapp.net` serves the same
/// attachments as `cdn.discordapp.com`; neither makes it another image.
fn same_link(a: &str, b: &str, cdn_origins: &[Origin]) -> bool {
    if a == b {
        return true;
    }
    let (Ok(a), Ok(b)) = (Url::parse(a), Url::parse(b)) else {
        return false;
    };
    let on_cdn = |url: &Url| Origin::of(url).is_some_and(|origin| cdn_origins.contains(&origin));
    if on_cdn(&a) && on_cdn(&b) {
        a.path() == b.path()
    } else {
        a == b
    }
}

/// What an import does to an existing character's portrait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortraitDecision {
    /// The file gives no link: the portrait stays as it is.
    NotGiven,
    /// The character already shows this link, or a stored portrait migrated from it.
    Same,
    /// The character shows the file's link instead of another external link or the default.
    Linked,
    /// A player's own upload is kept; the file's link is not used.
    KeptUpload,
    /// A stored portrait migrated from another link gives way to the file's link.
    Relinked,
}

/// The character as the import wants it, and what happened to its portrait.
fn plan(
    target: &ImportTarget,
    record: &ValidRecord,
    cdn_origins: &[Origin],
) -> (Character, PortraitDecision) {
    let seen = &target.character;
    let mut wanted = seen.clone();
    wanted.class = record.class.apply(&seen.class);
    wanted.bio = record.bio.apply(&seen.bio);
    let decision = match &record.portrait_url {
        None => PortraitDecision::NotGiven,
        Some(link) => {
            let shows_it = seen
                .portrait_url
                .as_deref()
                .is_some_and(|current| same_link(current, link, cdn_origins));
            if shows_it {
                // Also covers re-importing an export of this bot's own database.
                PortraitDecision::Same
            } else if seen.portrait_id.is_none() {
                PortraitDecision::Linked
            } else if target.migrated_from.is_empty() {
                PortraitDecision::KeptUpload
            } else if target
                .migrated_from
                .iter()
                .any(|legacy| same_link(legacy, link, cdn_origins))
            {
                PortraitDecision::Same
            } else {
                PortraitDecision::Relinked
            }
        }
    };
    if let (PortraitDecision::Linked | PortraitDecision::Relinked, Some(link)) =
        (decision, &record.portrait_url)
    {
        // The stored object stays in the bucket: other characters may show it, and orphan
        // cleanup removes it only once nothing references it.
        wanted.portrait_id = None;
        wanted.portrait_url = Some(link.clone());
    }
    (wanted, decision)
}

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Updated(PortraitDecision),
    Unchanged(PortraitDecision),
    /// Changed by someone else between every read and write.
    Contended,
}

async fn apply(
    tx: &mut ImportTransaction,
    record: &ValidRecord,
    cdn_origins: &[Origin],
) -> Result<Outcome, DbError> {
    for _ in 0..ATTEMPTS {
        match tx
            .find(record.guild_id, record.owner_id, &record.name)
            .await?
        {
            None => {
                let new = ImportedCharacter {
                    guild_id: record.guild_id,
                    owner_id: record.owner_id,
                    name: &record.name,
                    class: record.class.for_new_character(),
                    bio: record.bio.for_new_character(),
                    portrait_url: record.portrait_url.as_deref(),
                };
                if tx.create(&new).await?.is_some() {
                    return Ok(Outcome::Created);
                }
                // Created concurrently: read it and update it instead.
            }
            Some(target) => {
                let (wanted, decision) = plan(&target, record, cdn_origins);
                if wanted == target.character {
                    return Ok(Outcome::Unchanged(decision));
                }
                if tx.compare_and_update(&target.character, &wanted).await? {
                    return Ok(Outcome::Updated(decision));
                }
            }
        }
    }
    Ok(Outcome::Contended)
}

/// Validates, removes in-file duplicates, and saves batch by batch into `report`.
async fn run(
    db: &Db,
    rows: Vec<ImportRow>,
    mut rejected: Vec<Rejected>,
    options: &ImportOptions,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    report.dry_run = options.dry_run;
    report.records = rows.len() + rejected.len();

    let mut valid = Vec::with_capacity(rows.len());
    for row in &rows {
        match validate(row) {
            Ok(record) => valid.push(record),
            Err(reason) => rejected.push(Rejected {
                line: row.line,
                record: row.record,
                reason,
            }),
        }
    }

    // The last valid record of each character wins.
    let mut last: HashMap<(u64, u64, String), usize> = HashMap::new();
    for (index, record) in valid.iter().enumerate() {
        last.insert(record.key(), index);
    }
    let mut unique = Vec::with_capacity(last.len());
    for (index, record) in valid.iter().enumerate() {
        let winner = last[&record.key()];
        if winner == index {
            unique.push(record);
        } else {
            rejected.push(record.rejected(format!(
                "duplicate of line {}: the same character (guild, owner and name, ignoring \
                 case) appears again later in the file, and the later record is the one imported",
                valid[winner].line
            )));
        }
    }

    let total = unique.len();
    let mut saved = 0;
    let database_error = |saved, source| ImportError::Database {
        saved,
        total,
        source,
    };
    for batch in unique.chunks(options.batch_size.max(1)) {
        let mut tx = db
            .begin_import()
            .await
            .map_err(|err| database_error(saved, err))?;
        let mut tally = ImportReport::default();
        for record in batch {
            let outcome = apply(&mut tx, record, &options.cdn_origins)
                .await
                .map_err(|err| database_error(saved, err))?;
            tally.count(record, outcome);
        }
        let finished = if options.dry_run {
            tx.rollback().await
        } else {
            tx.commit().await
        };
        finished.map_err(|err| database_error(saved, err))?;
        saved += batch.len();
        report.created += tally.created;
        report.updated += tally.updated;
        report.unchanged += tally.unchanged;
        report.kept_uploads += tally.kept_uploads;
        report.relinked += tally.relinked;
        rejected.append(&mut tally.rejected);
        tracing::info!(
            done = saved,
            total,
            dry_run = options.dry_run,
            "import progress"
        );
    }

    rejected.sort_by_key(|rejected| (rejected.line, rejected.record));
    report.rejected = rejected;
    Ok(())
}

impl ImportReport {
    fn count(&mut self, record: &ValidRecord, outcome: Outcome) {
        let decision = match outcome {
            Outcome::Created => {
                self.created += 1;
                return;
            }
            Outcome::Updated(decision) => {
                self.updated += 1;
                decision
            }
            Outcome::Unchanged(decision) => {
                self.unchanged += 1;
                decision
            }
            Outcome::Contended => {
                self.rejected.push(record.rejected(
                    "the character kept changing while it was imported (is the bot editing it?); \
                     import the file again"
                        .to_owned(),
                ));
                return;
            }
        };
        match decision {
            PortraitDecision::KeptUpload => self.kept_uploads += 1,
            PortraitDecision::Relinked => self.relinked += 1,
            PortraitDecision::NotGiven | PortraitDecision::Same | PortraitDecision::Linked => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(records: &[CsvRecord]) -> Vec<Vec<&str>> {
        records
            .iter()
            .map(|r| r.fields.iter().map(String::as_str).collect())
            .collect()
    }

    #[test]
    fn csv_reads_plain_fields_and_the_last_line_without_a_line_break() {
        let records = read_csv("a,b,c\n1,,3").unwrap();
        assert_eq!(fields(&records), [vec!["a", "b", "c"], vec!["1", "", "3"]]);
        assert_eq!(records[1].line, 2);
        assert!(records.iter().all(|r| r.problem.is_none()));
    }

    #[test]
    fn csv_quoted_fields_keep_commas_doubled_quotes_and_line_breaks() {
        let text = "name,bio\n\"Kael, \"\"the Quick\"\"\",\"line one\nline two\"\nnext,x\n";
        let records = read_csv(text).unwrap();
        assert_eq!(
            fields(&records),
            [
                vec!["name", "bio"],
                vec!["Kael, \"the Quick\"", "line one\nline two"],
                vec!["next", "x"],
            ]
        );
        // A record starts on its first line; the one after a two-line value starts on 4.
        assert_eq!(
            records.iter().map(|r| r.line).collect::<Vec<_>>(),
            [1, 2, 4]
        );
    }

    #[test]
    fn csv_crlf_ends_records_and_is_kept_inside_quotes() {
        let text = "a,b\r\n\"x\r\ny\",2\r\nlast,3\r\n";
        let records = read_csv(text).unwrap();
        assert_eq!(
            fields(&records),
            [vec!["a", "b"], vec!["x\r\ny", "2"], vec!["last", "3"]]
        );
        assert_eq!(
            records.iter().map(|r| r.line).collect::<Vec<_>>(),
            [1, 2, 4]
        );
    }

    #[test]
    fn csv_a_lone_carriage_return_ends_a_record() {
        let records = read_csv("a\rb\r").unwrap();
        assert_eq!(fields(&records), [vec!["a"], vec!["b"]]);
        assert_eq!(records[1].line, 2);
    }

    #[test]
    fn csv_empty_quoted_fields_and_trailing_commas_are_empty_values() {
        let records = read_csv("\"\",x,\n").unwrap();
        assert_eq!(fields(&records), [vec!["", "x", ""]]);
    }

    #[test]
    fn csv_blank_lines_are_blank_records_that_keep_line_numbers_right() {
        let records = read_csv("a\n\n,,\nb\n").unwrap();
        assert_eq!(
            fields(&records),
            [vec!["a"], vec![""], vec!["", "", ""], vec!["b"]]
        );
        assert!(!records[0].is_blank());
        assert!(records[1].is_blank() && records[2].is_blank());
        assert_eq!(records[3].line, 4);
    }

    #[test]
    fn csv_a_quote_inside_an_unquoted_value_is_an_ordinary_character() {
        let records = read_csv("5\" tall,b\n").unwrap();
        assert_eq!(fields(&records), [vec!["5\" tall", "b"]]);
        assert_eq!(records[0].problem, None);
    }

    #[test]
    fn csv_text_after_a_closing_quote_marks_only_that_record() {
        let records = read_csv("\"abc\"def,x\n\"ok\" ,y\nnext,z\n").unwrap();
        assert_eq!(fields(&records)[0], ["abcdef", "x"]);
        assert!(records[0]
            .problem
            .as_deref()
            .unwrap()
            .contains("after a closing quote"));
        // Spaces after a closing quote are dropped, not a problem.
        assert_eq!(fields(&records)[1], ["ok", "y"]);
        assert_eq!(records[1].problem, None);
        assert_eq!(fields(&records)[2], ["next", "z"]);
    }

    #[test]
    fn csv_a_quote_never_closed_is_an_error_naming_the_line_it_opened_on() {
        let err = read_csv("a,b\n1,2\n3,\"never\nclosed,4\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("never closed"), "{}", err.message);
    }

    #[test]
    fn csv_an_empty_text_has_no_records() {
        assert_eq!(read_csv("").unwrap(), []);
    }

    #[test]
    fn json_elements_are_located_on_the_line_they_start() {
        let text = "[\n  {\"a\": \"[{,\\\"}\"},\n  {\n    \"b\": [1, 2]\n  }, 3,\n\n  null\n]";
        assert_eq!(json_element_lines(text), [2, 3, 5, 7]);
        assert_eq!(json_element_lines("[]"), Vec::<usize>::new());
        assert_eq!(json_element_lines(" [ ] "), Vec::<usize>::new());
        assert_eq!(json_element_lines("[{},{}]"), [1, 1]);
    }

    #[test]
    fn the_format_comes_from_the_content_not_the_name() {
        let json =
            parse("\u{feff}  \n[{\"guild\": 1, \"Owner\": \"2\", \"character\": \"A\"}]").unwrap();
        assert_eq!(json.format, ImportFormat::Json);
        assert_eq!(json.rows[0].guild_id.as_deref(), Some("1"));
        assert_eq!(json.rows[0].owner_id.as_deref(), Some("2"));
        assert_eq!(json.rows[0].name.as_deref(), Some("A"));
        assert_eq!(json.rows[0].line, 2);

        let csv = parse("Guild ID,ownerId,NAME,Image-URL\n1,2,A,\n").unwrap();
        assert_eq!(csv.format, ImportFormat::Csv);
        assert_eq!(csv.rows[0].portrait_url.as_deref(), Some(""));
        assert_eq!(
            csv.rows[0].class, None,
            "no class column: absent, not empty"
        );

        assert!(matches!(parse(" \n "), Err(ImportError::Empty)));
        assert!(matches!(
            parse("{\"characters\": []}"),
            Err(ImportError::NotAnArray)
        ));
    }

    #[test]
    fn a_csv_header_missing_a_required_column_names_it_and_guesses_why() {
        let err = parse("guild_id;owner_id;name;portrait_url\n1;2;A;\n").unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("no column for guild_id, owner_id, name, portrait_url"),
            "{message}"
        );
        assert!(message.contains("separated by semicolons"), "{message}");

        let err = parse("guild,owner,name,avatar_link\n").unwrap_err();
        assert!(
            matches!(&err, ImportError::MissingColumns { missing, .. } if missing == &["portrait_url"])
        );
        assert!(err.to_string().contains("`avatar_link`"), "{err}");

        let err = parse("123,456,Aria,\n").unwrap_err();
        assert!(err.to_string().contains("looks like data"), "{err}");

        let err = parse("name,character,guild,owner,portrait\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the CSV header has two columns for name, `name` and `character`; keep one"
        );
    }

    #[test]
    fn unknown_columns_are_ignored_and_listed() {
        let parsed = parse("guild,owner,level,name,portrait,\n1,2,5,A,,\n").unwrap();
        assert_eq!(parsed.ignored_columns, ["level"]);
        assert_eq!(parsed.rows.len(), 1);
    }

    fn row(guild: &str, owner: &str, name: &str, url: &str) -> ImportRow {
        ImportRow {
            line: 2,
            record: 2,
            guild_id: Some(guild.into()),
            owner_id: Some(owner.into()),
            name: Some(name.into()),
            class: None,
            bio: None,
            portrait_url: Some(url.into()),
        }
    }

    #[test]
    fn ids_must_be_positive_whole_numbers_that_fit_the_database() {
        assert!(validate(&row(" 1100000000000000001 ", "2", "A", "")).is_ok());
        let reason = |guild: &str| validate(&row(guild, "2", "A", "")).unwrap_err();
        assert_eq!(reason("0"), "guild_id is 0, which is not a Discord id");
        assert_eq!(reason(""), "guild_id is empty");
        assert_eq!(
            reason("-5"),
            "guild_id `-5` is not a Discord id (a positive whole number)"
        );
        assert_eq!(
            reason("+5"),
            "guild_id `+5` is not a Discord id (a positive whole number)"
        );
        assert_eq!(
            reason("9223372036854775808"),
            "guild_id `9223372036854775808` is too large to be a Discord id"
        );
        assert!(
            reason("1.10E+18").contains("scientific notation"),
            "{}",
            reason("1.10E+18")
        );
    }

    #[test]
    fn every_problem_of_a_record_is_reported_at_once() {
        let mut bad = row("x", "", "  ", "ftp://example.com/a.png");
        bad.bio = Some("b".repeat(1001));
        assert_eq!(
            validate(&bad).unwrap_err(),
            "guild_id `x` is not a Discord id (a positive whole number); owner_id is empty; \
             name is empty; bio is 1001 characters; the limit is 1000; portrait_url must be an \
             http:// or https:// link, not ftp:"
        );
    }

    #[test]
    fn names_classes_and_bios_are_checked_for_length_and_control_characters() {
        let ok = validate(&row("1", "2", &"é".repeat(64), "")).unwrap();
        assert_eq!(
            ok.name.chars().count(),
            64,
            "the limit counts characters, not bytes"
        );
        assert_eq!(
            validate(&row("1", "2", &"a".repeat(65), "")).unwrap_err(),
            "name is 65 characters; the limit is 64"
        );
        assert!(validate(&row("1", "2", "A\tB", ""))
            .unwrap_err()
            .contains("control character"));

        let mut record = row("1", "2", "A", "");
        record.bio = Some(" line one\r\nline two\ttabbed ".into());
        record.class = Some("  ".into());
        let valid = validate(&record).unwrap();
        assert_eq!(
            valid.bio,
            TextChange::Set("line one\nline two\ttabbed".into())
        );
        assert_eq!(valid.class, TextChange::Clear);

        record.bio = Some("nul\0".into());
        assert_eq!(
            validate(&record).unwrap_err(),
            "bio contains a control character"
        );
        record.bio = None;
        record.class = Some("a\nb".into());
        assert!(validate(&record)
            .unwrap_err()
            .starts_with("class contains a control character"));
    }

    #[test]
    fn portrait_links_must_be_http_or_https_with_a_host() {
        let link = |url: &str| validate(&row("1", "2", "A", url)).map(|r| r.portrait_url);
        assert_eq!(link("  "), Ok(None));
        assert_eq!(
            link(" HTTPS://CDN.discordapp.com/attachments/1/2/a.png?ex=1 "),
            Ok(Some(
                "https://cdn.discordapp.com/attachments/1/2/a.png?ex=1".into()
            ))
        );
        assert!(link("javascript:alert(1)")
            .unwrap_err()
            .contains("not javascript:"));
        assert!(link("not a link")
            .unwrap_err()
            .starts_with("portrait_url is not a link"));
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(link(&long).unwrap_err().contains("the limit is 2048"));
    }

    #[test]
    fn cdn_links_are_the_same_portrait_whatever_their_signature_or_cdn_host() {
        let cdn = ImportOptions::default().cdn_origins;
        let signed = "https://cdn.discordapp.com/attachments/1/2/a.png?ex=65&is=64&hm=ab";
        let refreshed = "https://media.discordapp.net/attachments/1/2/a.png?ex=99&is=98&hm=cd";
        assert!(same_link(signed, refreshed, &cdn));
        assert!(same_link(
            signed,
            "https://cdn.discordapp.com/attachments/1/2/a.png",
            &cdn
        ));
        assert!(!same_link(
            signed,
            "https://cdn.discordapp.com/attachments/1/3/a.png",
            &cdn
        ));
        // Elsewhere the query may be what names the image.
        assert!(!same_link(
            "https://img.example/?id=1",
            "https://img.example/?id=2",
            &cdn
        ));
        assert!(same_link(
            "https://IMG.example/a",
            "https://img.example/a",
            &cdn
        ));
    }

    fn target(portrait_id: Option<i64>, url: Option<&str>, migrated_from: &[&str]) -> ImportTarget {
        ImportTarget {
            character: Character {
                id: 7,
                guild_id: 1,
                owner_id: 2,
                name: "Aria".into(),
                class: Some("Ranger".into()),
                bio: Some("Old bio".into()),
                portrait_id,
                portrait_url: url.map(Into::into),
                created_at: "2024-01-01T00:00:00.000Z".into(),
                updated_at: "2024-01-01T00:00:00.000Z".into(),
            },
            migrated_from: migrated_from.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn the_portrait_rule_keeps_what_we_store_unless_the_community_changed_the_link() {
        let cdn = ImportOptions::default().cdn_origins;
        let old = "https://cdn.discordapp.com/attachments/1/2/old.png";
        let new = "https://cdn.discordapp.com/attachments/1/2/new.png";
        let ours = "https://bucket.example/prod/portraits/2024/01/ab_aria.png";
        let record = |url: Option<&str>| ValidRecord {
            line: 2,
            record: 2,
            guild_id: 1,
            owner_id: 2,
            name: "aria".into(),
            class: TextChange::Keep,
            bio: TextChange::Keep,
            portrait_url: url.map(Into::into),
        };
        let decide = |t: &ImportTarget, url| {
            let (wanted, decision) = plan(t, &record(url), &cdn);
            (decision, wanted.portrait_id, wanted.portrait_url)
        };

        let migrated = target(Some(3), Some(ours), &[old]);
        assert_eq!(
            decide(&migrated, Some(old)),
            (PortraitDecision::Same, Some(3), Some(ours.into()))
        );
        let resigned = format!("{old}?ex=1&is=2&hm=3");
        assert_eq!(decide(&migrated, Some(&resigned)).0, PortraitDecision::Same);
        assert_eq!(
            decide(&migrated, Some(new)),
            (PortraitDecision::Relinked, None, Some(new.into()))
        );
        assert_eq!(
            decide(&migrated, None),
            (PortraitDecision::NotGiven, Some(3), Some(ours.into()))
        );
        assert_eq!(decide(&migrated, Some(ours)).0, PortraitDecision::Same);

        let uploaded = target(Some(4), Some(ours), &[]);
        assert_eq!(
            decide(&uploaded, Some(new)),
            (PortraitDecision::KeptUpload, Some(4), Some(ours.into()))
        );

        let external = target(None, Some(old), &[]);
        assert_eq!(decide(&external, Some(old)).0, PortraitDecision::Same);
        assert_eq!(
            decide(&external, Some(new)),
            (PortraitDecision::Linked, None, Some(new.into()))
        );
        let default = target(None, None, &[]);
        assert_eq!(
            decide(&default, Some(new)),
            (PortraitDecision::Linked, None, Some(new.into()))
        );
    }

    #[test]
    fn absent_columns_keep_class_and_bio_and_empty_ones_clear_them() {
        let t = target(None, None, &[]);
        let mut record = validate(&row("1", "2", "Aria", "")).unwrap();
        let (wanted, _) = plan(&t, &record, &[]);
        assert_eq!(wanted, t.character, "nothing to change");
        record.class = TextChange::Clear;
        record.bio = TextChange::Set("New".into());
        let (wanted, _) = plan(&t, &record, &[]);
        assert_eq!((wanted.class, wanted.bio.as_deref()), (None, Some("New")));
    }

    #[test]
    fn the_report_lists_the_first_rejections_with_their_lines() {
        let report = ImportReport {
            format: Some(ImportFormat::Csv),
            records: 30,
            created: 5,
            rejected: (0..25)
                .map(|i| Rejected {
                    line: i + 6,
                    record: if i == 0 { 5 } else { i + 6 },
                    reason: format!("problem {i}"),
                })
                .collect(),
            ignored_columns: vec!["level".into()],
            ..ImportReport::default()
        };
        let text = report.to_string();
        assert!(text.contains("records read:     30 (CSV)"), "{text}");
        assert!(text.contains("created:           5"), "{text}");
        assert!(text.contains("rejected:         25"), "{text}");
        assert!(
            text.contains("  line 6 (spreadsheet row 5): problem 0\n"),
            "{text}"
        );
        assert!(text.contains("  line 7: problem 1\n"), "{text}");
        assert!(text.contains("  line 25: problem 19\n"), "{text}");
        assert!(!text.contains("problem 20"), "{text}");
        assert!(text.contains("… and 5 more"), "{text}");
        assert!(
            text.contains("Ignored columns (not recognised): level."),
            "{text}"
        );
    }
}
