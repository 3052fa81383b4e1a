//! The history of every change of a character's portrait: who, what, when and why.

use crate::character::name_key;
use crate::db::{Character, Db, DbError, HistoryBy, HistoryRow, NewHistory};
use crate::portrait::{IngestRequest, PortraitSource};

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The character's player (or whoever uploaded for them).
    Player(u64),
    /// A server admin (Manage Server or `ADMIN_USER_IDS`).
    Admin(u64),
    /// The CDN migration.
    Migration,
    /// An import from another bot.
    Import,
    /// The operator, from the command line.
    Operator,
}

impl Actor {
    pub fn kind(self) -> &'static str {
        match self {
            Actor::Player(_) => "player",
            Actor::Admin(_) => "admin",
            Actor::Migration => "migration",
            Actor::Import => "import",
            Actor::Operator => "operator",
        }
    }

    pub fn id(self) -> Option<u64> {
        match self {
            Actor::Player(id) | Actor::Admin(id) => Some(id),
            _ => None,
        }
    }
}

/// What happened to the portrait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Uploaded,
    Approved,
    Rejected,
    Removed,
    Reset,
    Migrated,
    RolledBack,
    /// The whole character was deleted.
    Deleted,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Uploaded => "uploaded",
            Action::Approved => "approved",
            Action::Rejected => "rejected",
            Action::Removed => "removed",
            Action::Reset => "reset",
            Action::Migrated => "migrated",
            Action::RolledBack => "rolled_back",
            Action::Deleted => "deleted",
        }
    }
}

/// How many changes `/admin history` shows by default.
pub const DEFAULT_HISTORY_LIMIT: u32 = 10;

/// Who and what, for a change the database records inside its own transaction (a migration
/// rollback, an import).
pub fn by(actor: Actor, action: Action) -> HistoryBy<'static> {
    HistoryBy {
        actor_kind: actor.kind(),
        actor_id: actor.id(),
        action: action.as_str(),
    }
}

/// Records a change of `character`'s portrait; `portrait_url` is what it shows afterwards
/// (or the image concerned, for a removal or a reset).
pub async fn record(
    db: &Db,
    character: &Character,
    actor: Actor,
    action: Action,
    portrait_url: Option<&str>,
    reason: Option<&str>,
) -> Result<(), DbError> {
    db.record_history(&NewHistory {
        guild_id: character.guild_id,
        owner_id: character.owner_id,
        character_id: character.id,
        character_name: &character.name,
        actor_kind: actor.kind(),
        actor_id: actor.id(),
        action: action.as_str(),
        portrait_url,
        reason,
    })
    .await
}

/// Records a portrait the ingest pipeline has just attached: `migrated` for the CDN migration,
/// `uploaded` by the player (or the operator's CLI) otherwise. A failure is logged, not
/// raised: the portrait is already shown.
pub async fn record_ingest(db: &Db, character: &Character, request: &IngestRequest<'_>) {
    let (actor, action) = match request.source {
        PortraitSource::Migration => (Actor::Migration, Action::Migrated),
        PortraitSource::Cli => (Actor::Operator, Action::Uploaded),
        PortraitSource::SlashCommand
        | PortraitSource::RegistrationMessage
        | PortraitSource::Form => (Actor::Player(request.uploader_id), Action::Uploaded),
    };
    record_logged(
        db,
        character,
        actor,
        action,
        character.portrait_url.as_deref(),
    )
    .await;
}

/// [`record`] for a change that already happened and must not be reported as failed: a
/// failure is logged, not raised.
pub async fn record_logged(
    db: &Db,
    character: &Character,
    actor: Actor,
    action: Action,
    portrait_url: Option<&str>,
) {
    if let Err(err) = record(db, character, actor, action, portrait_url, None).await {
        tracing::warn!(character_id = character.id, error = %err, "could not record a portrait change");
    }
}

/// The last `limit` changes of a character's portrait, newest first.
pub async fn last(db: &Db, character_id: i64, limit: u32) -> Result<Vec<HistoryRow>, DbError> {
    db.character_history(character_id, limit).await
}

/// The changes of one character, found by its player and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedHistory {
    /// The character's name as stored.
    pub name: String,
    /// The character no longer exists; its history is all that is left.
    pub deleted: bool,
    /// Newest first; empty when nothing was recorded for it yet.
    pub rows: Vec<HistoryRow>,
}

/// The last `limit` changes of `owner_id`'s character `name` in a server. A character that
/// exists is found like everywhere else; one deleted since (by a moderator or its player) is
/// found by the name its history last recorded. `None` when neither exists.
pub async fn of_named_character(
    db: &Db,
    guild_id: u64,
    owner_id: u64,
    name: &str,
    limit: u32,
) -> Result<Option<NamedHistory>, DbError> {
    if let Some(character) = db.find_character(guild_id, owner_id, name).await? {
        return Ok(Some(NamedHistory {
            rows: last(db, character.id, limit).await?,
            name: character.name,
            deleted: false,
        }));
    }
    let key = name_key(name);
    let recorded = db.history_characters(guild_id, owner_id).await?;
    let Some((character_id, name)) = recorded.into_iter().find(|(_, n)| name_key(n) == key) else {
        return Ok(None);
    };
    Ok(Some(NamedHistory {
        rows: last(db, character_id, limit).await?,
        name,
        deleted: true,
    }))
}

/// One line of `/admin history`: "2026-11-30 14:02 UTC · removed by admin <@1> · reason".
pub fn describe(row: &HistoryRow) -> String {
    let when = row
        .created_at
        .get(..16)
        .map(|t| format!("{} UTC", t.replace('T', " ")))
        .unwrap_or_else(|| row.created_at.clone());
    let who = match row.actor_id {
        Some(id) => format!("{} <@{id}>", row.actor_kind),
        None => row.actor_kind.clone(),
    };
    let mut line = format!("{when} · {} by {who}", row.action.replace('_', " "));
    if let Some(reason) = row.reason.as_deref().filter(|r| !r.is_empty()) {
        line.push_str(" · ");
        line.push_str(reason);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_line_says_when_who_what_and_why() {
        let row = HistoryRow {
            id: 1,
            guild_id: 1,
            owner_id: 2,
            character_id: 3,
            character_name: "Aria".into(),
            actor_kind: "admin".into(),
            actor_id: Some(42),
            action: "rolled_back".into(),
            portrait_url: None,
            reason: Some("offensive".into()),
            created_at: "2026-11-30T14:02:03.000Z".into(),
        };
        assert_eq!(
            describe(&row),
            "2026-11-30 14:02 UTC · rolled back by admin <@42> · offensive"
        );
    }
}
