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
//! - **Validation** is the character domain's ([`crate::character`]): the same rules as
//!   `/register`, phrased tersely for a report that lists many records.
//!
//! # Streaming
//!
//! The file is never held in memory, so a million-character export imports in a few MiB
//! ([`run`] has the passes): the file is read once to check its encoding and tell its
//! format, once to read every record (so a file that cannot be read changes nothing) and note
//! a 64-bit hash of each valid record's key, and once more to save it batch by batch. Only
//! when two keys share a hash is the file read again, to learn the last line of each
//! repeated key. The report keeps counts and the first [`report::SHOWN_REJECTIONS`]
//! rejections.

mod columns;
mod csv_file;
mod json_file;
mod plan;
mod report;
mod run;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::db::{Db, DbError};
use crate::fetch::Origin;

pub use columns::{ImportRow, COLUMNS};
pub use report::{ImportFormat, ImportReport, Rejected, SHOWN_REJECTIONS};

use columns::{found_columns, recognised_columns};
use run::Source;

/// Longest portrait link, in characters: Discord refuses longer embed image URLs.
pub const MAX_URL_CHARS: usize = 2048;
/// Largest file [`import_file`] reads. The import streams, so memory does not grow with the
/// file; the limit only refuses what cannot be a character export. A million characters with
/// bios are about 150 MB; 2 GiB is over ten million.
pub const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Largest single record (a CSV record, a JSON object). A valid character is a few KiB even
/// with extra columns; a record beyond this is a quote never closed or not an export.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Records per transaction. Every commit rewrites each index page the batch touched, and once
/// the unique index outgrows SQLite's cache a batch touches nearly one of its pages per record,
/// so larger batches cost less: a million-row import on SQLite wrote 6.5 million pages in
/// batches of 5,000 (51 s), 3.5 million in batches of 20,000 (40 s), and no fewer in batches of
/// 50,000, whose dirty pages took the import to 88 MiB. 20,000 keeps the import under 50 MiB
/// and a batch's write lock, which the running bot waits for, under a second.
pub const DEFAULT_BATCH_SIZE: usize = 20_000;
/// The Discord CDN origins, whose links are compared by attachment path (see [`ImportOptions`]).
pub const DISCORD_CDN_ORIGINS: [&str; 2] =
    ["https://cdn.discordapp.com", "https://media.discordapp.net"];

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
        "the record starting at line {line} is over {MAX_RECORD_BYTES} bytes; no character is \
         that long (is a quote never closed?)"
    )]
    RecordTooLarge { line: usize },
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

/// Reads an export file and imports it; see the [module documentation](self) for the rules.
pub async fn import_file(
    db: &Db,
    path: &Path,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let size = tokio::fs::metadata(path)
        .await
        .map_err(|source| ImportError::Read {
            path: path.to_owned(),
            source,
        })?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(ImportError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    run::run(db, Source::File(path), options).await
}

/// Imports an export already in memory (JSON or CSV, told apart by content).
pub async fn import_text(
    db: &Db,
    text: &str,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    run::run(db, Source::Text(text), options).await
}

/// Validates and imports records read by the caller.
pub async fn import_records(
    db: &Db,
    rows: Vec<ImportRow>,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    run::run(db, Source::Rows(&rows), options).await
}
