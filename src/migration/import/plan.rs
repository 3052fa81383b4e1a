//! Deciding what one record does: validation (through the character domain), the portrait
//! rule, and the guarded write.

use url::Url;

use super::columns::{Field, ImportRow};
use super::report::{ImportReport, Rejected};
use super::MAX_URL_CHARS;
use crate::character::{
    quoted, CharacterBio, CharacterClass, CharacterError, CharacterName, DiscordId, DiscordIdError,
    TextField,
};
use crate::db::{
    Character, DbError, HistoryBy, ImportKey, ImportTarget, ImportTransaction, ImportedCharacter,
};
use crate::fetch::Origin;
use crate::moderation::history::{self, Action, Actor};

/// How often a record is read and decided again when a concurrent change beat its write.
const ATTEMPTS: usize = 3;

/// A change to an optional text column of an existing character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TextChange<T> {
    /// The file has no such column: leave the character's value alone.
    Keep,
    /// The file's value is empty.
    Clear,
    Set(T),
}

impl<T: AsRef<str>> TextChange<T> {
    fn apply(&self, current: &Option<String>) -> Option<String> {
        match self {
            TextChange::Keep => current.clone(),
            TextChange::Clear => None,
            TextChange::Set(text) => Some(text.as_ref().to_owned()),
        }
    }

    fn for_new_character(&self) -> Option<&T> {
        match self {
            TextChange::Set(text) => Some(text),
            TextChange::Keep | TextChange::Clear => None,
        }
    }
}

/// The key a character is unique under: guild, owner and name ignoring case and spaces.
pub(super) type Key = (u64, u64, String);

/// A record that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ValidRecord {
    pub line: usize,
    pub record: usize,
    pub guild_id: DiscordId,
    pub owner_id: DiscordId,
    pub name: CharacterName,
    pub class: TextChange<CharacterClass>,
    pub bio: TextChange<CharacterBio>,
    /// Normalised by the URL parser; `None` when the file gives none.
    pub portrait_url: Option<String>,
}

impl ValidRecord {
    pub(super) fn key(&self) -> Key {
        (self.guild_id.get(), self.owner_id.get(), self.name.key())
    }

    pub(super) fn rejected(&self, reason: String) -> Rejected {
        Rejected {
            line: self.line,
            record: self.record,
            reason,
        }
    }
}

/// Checks a record, collecting every problem so one pass over the file shows them all.
pub(super) fn validate(row: &ImportRow) -> Result<ValidRecord, String> {
    let mut problems = Vec::new();
    let guild_id = discord_id(Field::GuildId, row.guild_id.as_deref(), &mut problems);
    let owner_id = discord_id(Field::OwnerId, row.owner_id.as_deref(), &mut problems);
    let name = match row.name.as_deref() {
        None => {
            problems.push("name is missing".to_owned());
            None
        }
        Some(raw) => CharacterName::parse(raw)
            .map_err(|err| problems.push(text_problem(&err)))
            .ok(),
    };
    let class = text_change(row.class.as_deref(), CharacterClass::parse);
    let bio = text_change(row.bio.as_deref(), CharacterBio::parse);
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

    match (guild_id, owner_id, name) {
        (Some(guild_id), Some(owner_id), Some(name)) if problems.is_empty() => Ok(ValidRecord {
            line: row.line,
            record: row.record,
            guild_id,
            owner_id,
            name,
            class,
            bio,
            portrait_url,
        }),
        _ => Err(problems.join("; ")),
    }
}

/// A Discord id through the domain; the report names the column in front of the reason.
fn discord_id(field: Field, value: Option<&str>, problems: &mut Vec<String>) -> Option<DiscordId> {
    let column = field.name();
    let Some(value) = value else {
        problems.push(format!("{column} is missing"));
        return None;
    };
    DiscordId::parse(value)
        .map_err(|err: DiscordIdError| problems.push(format!("{column} {err}")))
        .ok()
}

fn text_change<T>(
    value: Option<&str>,
    parse: fn(&str) -> Result<Option<T>, CharacterError>,
) -> Result<TextChange<T>, String> {
    match value.map(parse) {
        None => Ok(TextChange::Keep),
        Some(Ok(None)) => Ok(TextChange::Clear),
        Some(Ok(Some(text))) => Ok(TextChange::Set(text)),
        Some(Err(err)) => Err(text_problem(&err)),
    }
}

/// The domain's refusal in the report's terse wording, from the error's fields.
fn text_problem(err: &CharacterError) -> String {
    let column = err.field().column();
    match err {
        CharacterError::NameEmpty => format!("{column} is empty"),
        CharacterError::TooLong { chars, max, .. } => {
            format!("{column} is {chars} characters; the limit is {max}")
        }
        CharacterError::ControlCharacter {
            field: TextField::Bio,
        } => format!("{column} contains a control character"),
        CharacterError::ControlCharacter { .. } => {
            format!("{column} contains a control character (such as a line break or a tab)")
        }
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

/// Whether two portrait links are the same portrait: the same URL, or, on a CDN origin, the
/// same attachment path. Discord signs CDN links (`?ex=…&is=…&hm=…`) and the signature
/// changes every time a link is refreshed, and `media.discordapp.net` serves the same
/// attachments as `cdn.discordapp.com`; neither makes it another image.
pub(super) fn same_link(a: &str, b: &str, cdn_origins: &[Origin]) -> bool {
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
pub(super) enum PortraitDecision {
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
pub(super) fn plan(
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
pub(super) enum Outcome {
    Created,
    Updated(PortraitDecision),
    Unchanged(PortraitDecision),
    /// Changed by someone else between every read and write.
    Contended,
}

/// Saves a batch of records inside its transaction; `outcomes[i]` is what became of
/// `records[i]`. The records' keys are distinct (the run keeps only the last of a repeated key).
///
/// Every round reads the records still open with one statement, creates the missing ones with
/// another, and writes each changed one with a guarded update. A record whose write lost to a
/// concurrent change (a player's upload, a registration of the same name) is read and decided
/// again in the next round, up to [`ATTEMPTS`] times.
pub(super) async fn apply(
    tx: &mut ImportTransaction,
    records: &[ValidRecord],
    cdn_origins: &[Origin],
) -> Result<Vec<Outcome>, DbError> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; records.len()];
    // In key order: the unique index's pages are then met one after another rather than at
    // random, which saves SQLite page reads once the table outgrows its cache (10% of a
    // million-row import).
    let mut open: Vec<usize> = (0..records.len()).collect();
    open.sort_by_cached_key(|&i| records[i].key());
    for _ in 0..ATTEMPTS {
        if open.is_empty() {
            break;
        }
        let keys: Vec<ImportKey> = open
            .iter()
            .map(|&i| ImportKey {
                guild_id: records[i].guild_id,
                owner_id: records[i].owner_id,
                name: &records[i].name,
            })
            .collect();
        let found = tx.find_many(&keys).await?;
        let mut missing = Vec::new();
        let mut changed_portraits = Vec::new();
        for (&i, target) in open.iter().zip(found) {
            let record = &records[i];
            let Some(target) = target else {
                missing.push(i);
                continue;
            };
            let (wanted, decision) = plan(&target, record, cdn_origins);
            if wanted == target.character {
                outcomes[i] = Some(Outcome::Unchanged(decision));
            } else if tx.compare_and_update(&target.character, &wanted).await? {
                if wanted.portrait_url != target.character.portrait_url {
                    changed_portraits.push(wanted.id);
                }
                outcomes[i] = Some(Outcome::Updated(decision));
            }
        }
        let new: Vec<ImportedCharacter> = missing
            .iter()
            .map(|&i| {
                let record = &records[i];
                ImportedCharacter {
                    guild_id: record.guild_id,
                    owner_id: record.owner_id,
                    name: &record.name,
                    class: record.class.for_new_character(),
                    bio: record.bio.for_new_character(),
                    portrait_url: record.portrait_url.as_deref(),
                }
            })
            .collect();
        // A character not created was created concurrently: the next round updates it.
        for (&i, created) in missing.iter().zip(tx.create_many(&new).await?) {
            if let Some(created) = created {
                if created.portrait_url.is_some() {
                    changed_portraits.push(created.id);
                }
                outcomes[i] = Some(Outcome::Created);
            }
        }
        tx.record_history(&changed_portraits, &imported()).await?;
        open.retain(|&i| outcomes[i].is_none());
    }
    Ok(outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or(Outcome::Contended))
        .collect())
}

/// An imported link is the portrait "uploaded" by the import.
fn imported() -> HistoryBy<'static> {
    history::by(Actor::Import, Action::Uploaded)
}

impl ImportReport {
    pub(super) fn count(&mut self, record: &ValidRecord, outcome: Outcome) {
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
                self.reject(record.rejected(
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
mod tests;
