//! Registering a character together with its first portrait — one path for the bot's
//! `/register` and the CLI's `upload`.
//!
//! The character is created first (the per-player cap and the unique name are the database's
//! to enforce), then the portrait is attached. When the portrait is refused for a reason the
//! player must fix (not an image, too large, an expired link…), a character made for it is
//! removed again: a refusal changes nothing, so the player fixes the file and simply tries
//! again. A fault on our side (storage, network) keeps the character; the caller reports it.

use crate::character::NewCharacter;
use crate::db::{Character, Db, DbError};
use crate::portrait::IngestError;

/// What to do when the player already has a character of that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfExists {
    /// Refuse with [`DbError::CharacterExists`] (a player registering twice by mistake).
    Refuse,
    /// Give the existing character the portrait (an operator's upload).
    Reuse,
}

/// An error that may be the player's to fix; such a refusal undoes the registration.
pub trait Refusal {
    fn is_players_to_fix(&self) -> bool;
}

impl Refusal for IngestError {
    fn is_players_to_fix(&self) -> bool {
        IngestError::is_players_to_fix(self)
    }
}

/// Why a registration did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError<E> {
    /// The character could not be created: it exists, the player has too many, or the
    /// database failed. Nothing was changed.
    #[error(transparent)]
    Character(DbError),
    /// The portrait was not attached. When it is the player's to fix, a character created
    /// for it was removed again.
    #[error(transparent)]
    Portrait(E),
}

/// A completed registration.
#[derive(Debug)]
pub struct Registered<T> {
    /// The character as it was before its portrait was attached.
    pub character: Character,
    /// False when an existing character was reused ([`IfExists::Reuse`]).
    pub created: bool,
    /// What attaching the portrait returned.
    pub portrait: T,
}

/// Creates the character (or finds it, with [`IfExists::Reuse`]), runs `attach` on it, and
/// removes a character it created when `attach` fails with a refusal the player must fix.
pub async fn register<T, E>(
    db: &Db,
    new: &NewCharacter,
    max_per_player: Option<u64>,
    if_exists: IfExists,
    attach: impl AsyncFnOnce(&Character) -> Result<T, E>,
) -> Result<Registered<T>, RegistrationError<E>>
where
    E: Refusal,
{
    let (character, created) = create_or_find(db, new, max_per_player, if_exists)
        .await
        .map_err(RegistrationError::Character)?;
    match attach(&character).await {
        Ok(portrait) => Ok(Registered {
            character,
            created,
            portrait,
        }),
        Err(err) => {
            if created && err.is_players_to_fix() {
                db.delete_character(character.id)
                    .await
                    .map_err(RegistrationError::Character)?;
            }
            Err(RegistrationError::Portrait(err))
        }
    }
}

async fn create_or_find(
    db: &Db,
    new: &NewCharacter,
    max_per_player: Option<u64>,
    if_exists: IfExists,
) -> Result<(Character, bool), DbError> {
    let find = async || {
        db.find_character(new.guild_id.get(), new.owner_id.get(), new.name.as_str())
            .await
    };
    if if_exists == IfExists::Reuse {
        if let Some(existing) = find().await? {
            return Ok((existing, false));
        }
    }
    match db.create_character(new, max_per_player).await {
        Ok(character) => Ok((character, true)),
        // Created by someone else between the look-up and the insert.
        Err(DbError::CharacterExists { .. }) if if_exists == IfExists::Reuse => {
            match find().await? {
                Some(existing) => Ok((existing, false)),
                None => Err(DbError::CharacterNotFound),
            }
        }
        Err(err) => Err(err),
    }
}
