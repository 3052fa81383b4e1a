//! The character domain: what a valid character name, class, bio and Discord id are.
//!
//! Every entry point — slash commands, forms, the CLI, the import — parses its input through
//! these types, so a rule such as "names are at most 64 characters" is written here once and
//! a value that reached the database has passed it. This module depends on nothing else in
//! the crate, so every layer may use it.
//!
//! The messages ([`CharacterError`]'s `Display`) are written for players: the bot shows them
//! as they are. Reports that list many rows at once (the import) phrase the same error in
//! their own terse style from its fields.

mod id;
mod text;

pub(crate) use id::quoted;
pub use id::{DiscordId, DiscordIdError};
pub use text::{
    name_key, CharacterBio, CharacterClass, CharacterError, CharacterName, TextField,
    MAX_BIO_CHARS, MAX_CLASS_CHARS, MAX_NAME_CHARS,
};

/// Everything needed to create a character, each part already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCharacter {
    pub guild_id: DiscordId,
    pub owner_id: DiscordId,
    pub name: CharacterName,
    pub class: Option<CharacterClass>,
    pub bio: Option<CharacterBio>,
}

impl NewCharacter {
    /// Checks a player's raw input: the name is required, an empty class or bio is none.
    pub fn parse(
        guild_id: DiscordId,
        owner_id: DiscordId,
        name: &str,
        class: Option<&str>,
        bio: Option<&str>,
    ) -> Result<NewCharacter, CharacterError> {
        Ok(NewCharacter {
            guild_id,
            owner_id,
            name: CharacterName::parse(name)?,
            class: class.map(CharacterClass::parse).transpose()?.flatten(),
            bio: bio.map(CharacterBio::parse).transpose()?.flatten(),
        })
    }
}
