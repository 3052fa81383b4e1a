//! The column mapping: which column (or JSON key) gives which field of a record.

use std::collections::HashMap;

use super::ImportError;

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

/// The fields of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Field {
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

    pub(super) fn name(self) -> &'static str {
        COLUMNS[self as usize].0
    }

    pub(super) fn from_column(column: &str) -> Option<Field> {
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

    pub(super) fn slot(self, row: &mut ImportRow) -> &mut Option<String> {
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

pub(super) fn recognised_columns() -> String {
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

pub(super) fn found_columns(found: &[String]) -> String {
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

/// A CSV header read into the field of each column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Header {
    /// The field each column gives, `None` for an ignored one.
    pub columns: Vec<Option<Field>>,
    /// Columns not recognised (empty column names are not listed).
    pub ignored: Vec<String>,
}

/// Maps a CSV header: every required field needs a column, no field two.
pub(super) fn map_header(fields: Vec<String>) -> Result<Header, ImportError> {
    let mut columns = Vec::with_capacity(fields.len());
    let mut seen: HashMap<Field, String> = HashMap::new();
    let mut ignored = Vec::new();
    for column in &fields {
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
            None if !column.is_empty() => ignored.push(column.to_owned()),
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
            hint: header_hint(&fields),
            found: fields,
        });
    }
    Ok(Header { columns, ignored })
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
