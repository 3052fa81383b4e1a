//! Privacy: a player's export and delete-my-data in one server, and the operator's purge of a
//! server (or of one player in it). Every path deletes a stored object only when no remaining
//! character shows it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::ModerationService;
use crate::db::{Character, DbError};

/// The document `/privacy export` hands a player.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Export {
    pub guild_id: String,
    pub player_id: String,
    pub exported_at: String,
    pub characters: Vec<ExportedCharacter>,
}

impl Export {
    /// The document as the indented JSON a player downloads.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self)
            .expect("an export is strings and lists, which always serialise to JSON")
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExportedCharacter {
    pub name: String,
    pub class: Option<String>,
    pub bio: Option<String>,
    /// The portrait's link; `None` for the default portrait.
    pub portrait_url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// What a purge deletes, listed before anything is deleted (a dry run shows exactly this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgePlan {
    pub guild_id: u64,
    /// `None`: every player of the server.
    pub owner_id: Option<u64>,
    pub characters: Vec<Character>,
    /// Keys of the stored objects only these characters show, deleted with them. Objects a
    /// character outside the purge also shows are kept.
    pub objects: Vec<String>,
    /// The history rows of the server (or player) removed with them.
    pub history_rows: u64,
}

/// What a purge (or delete-my-data) deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub characters: Vec<Character>,
    pub objects: Vec<String>,
    pub history_rows: u64,
}

impl ModerationService {
    /// A player's characters and portrait links in a server, as JSON text.
    pub async fn export(&self, guild_id: u64, player_id: u64) -> Result<Export, DbError> {
        let characters = self.db.guild_characters(guild_id, Some(player_id)).await?;
        Ok(Export {
            guild_id: guild_id.to_string(),
            player_id: player_id.to_string(),
            exported_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            characters: characters
                .into_iter()
                .map(|c| ExportedCharacter {
                    name: c.name,
                    class: c.class,
                    bio: c.bio,
                    portrait_url: c.portrait_url,
                    created_at: c.created_at,
                    updated_at: c.updated_at,
                })
                .collect(),
        })
    }

    /// Deletes every character of a player in a server, their portraits (objects deleted when
    /// no other character shows them) and their history. Other players are untouched.
    pub async fn delete_my_data(
        &self,
        guild_id: u64,
        player_id: u64,
    ) -> Result<PurgeReport, DbError> {
        let plan = self.plan_purge(guild_id, Some(player_id)).await?;
        self.purge(&plan).await
    }

    /// What [`purge`](Self::purge) would delete in a server, or of one player in it.
    pub async fn plan_purge(
        &self,
        guild_id: u64,
        owner_id: Option<u64>,
    ) -> Result<PurgePlan, DbError> {
        let characters = self.db.guild_characters(guild_id, owner_id).await?;
        let mut shown_by_purged: BTreeMap<i64, u64> = BTreeMap::new();
        for portrait_id in characters.iter().filter_map(|c| c.portrait_id) {
            *shown_by_purged.entry(portrait_id).or_default() += 1;
        }
        let mut objects = BTreeSet::new();
        for (portrait_id, purged) in shown_by_purged {
            if self.db.portrait_references(portrait_id).await? > purged {
                continue;
            }
            if let Some(record) = self.db.portrait_by_id(portrait_id).await? {
                objects.insert(record.storage_key);
            }
        }
        Ok(PurgePlan {
            guild_id,
            owner_id,
            characters,
            objects: objects.into_iter().collect(),
            history_rows: self.db.count_history(guild_id, owner_id).await?,
        })
    }

    /// Deletes exactly the plan's characters and their history, then each of their portraits
    /// no character shows any more. An object someone started to show since the plan was made
    /// is kept (the reference check happens at deletion); a whole-server purge also forgets
    /// the server's settings and block-list.
    pub async fn purge(&self, plan: &PurgePlan) -> Result<PurgeReport, DbError> {
        let mut report = PurgeReport::default();
        let mut portraits = BTreeSet::new();
        for character in &plan.characters {
            if let Some(deleted) = self.portraits.delete_character(character.id).await? {
                portraits.extend(deleted.portrait_id);
                report.characters.push(deleted);
            }
        }
        for portrait_id in portraits {
            let key = self
                .db
                .portrait_by_id(portrait_id)
                .await?
                .map(|record| record.storage_key);
            self.portraits.release_portrait(portrait_id).await;
            if self.db.portrait_by_id(portrait_id).await?.is_none() {
                report.objects.extend(key);
            }
        }
        report.objects.sort();
        report.history_rows = self.db.delete_history(plan.guild_id, plan.owner_id).await?;
        if plan.owner_id.is_none() {
            self.db.delete_guild_moderation(plan.guild_id).await?;
        }
        Ok(report)
    }
}
