//! Names, classes and bios: trimmed, bounded in length, free of control characters.
//!
//! Lengths count characters as Discord does (Unicode scalar values), matching the
//! `max_length` of the slash-command options. Control characters break embeds, and
//! PostgreSQL refuses a NUL outright; a bio may still hold line breaks and tabs.

use std::fmt;

/// Longest character name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest class, in characters.
pub const MAX_CLASS_CHARS: usize = 64;
/// Longest bio, in characters.
pub const MAX_BIO_CHARS: usize = 1000;

/// Which text of a character a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    Name,
    Class,
    Bio,
}

impl TextField {
    /// The field's column name, as import files and reports spell it.
    pub fn column(self) -> &'static str {
        match self {
            TextField::Name => "name",
            TextField::Class => "class",
            TextField::Bio => "bio",
        }
    }

    /// The most characters the field may hold.
    pub fn max_chars(self) -> usize {
        match self {
            TextField::Name => MAX_NAME_CHARS,
            TextField::Class => MAX_CLASS_CHARS,
            TextField::Bio => MAX_BIO_CHARS,
        }
    }

    /// Bios keep their line breaks and tabs; names and classes are one line.
    fn multiline(self) -> bool {
        self == TextField::Bio
    }

    /// How a player would say it, plural: "Character names", "Classes", "Bios".
    fn plural(self) -> &'static str {
        match self {
            TextField::Name => "Character names",
            TextField::Class => "Classes",
            TextField::Bio => "Bios",
        }
    }
}

/// Why a character's text was refused. `Display` is the message a player sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CharacterError {
    #[error("A character needs a name.")]
    NameEmpty,
    #[error("{} can be at most {max} characters.", field.plural())]
    TooLong {
        field: TextField,
        /// How many characters the text had (after trimming).
        chars: usize,
        max: usize,
    },
    #[error("{}", control_message(*field))]
    ControlCharacter { field: TextField },
}

impl CharacterError {
    /// The field the problem is about.
    pub fn field(&self) -> TextField {
        match self {
            CharacterError::NameEmpty => TextField::Name,
            CharacterError::TooLong { field, .. } | CharacterError::ControlCharacter { field } => {
                *field
            }
        }
    }
}

fn control_message(field: TextField) -> String {
    if field.multiline() {
        format!("{} can't contain control characters.", field.plural())
    } else {
        format!(
            "{} can't contain line breaks or control characters.",
            field.plural()
        )
    }
}

/// Trims, normalises line breaks (bios) and checks length and control characters.
/// `None` when nothing is left after trimming.
fn parse_text(field: TextField, raw: &str) -> Result<Option<String>, CharacterError> {
    // One line-break convention in the database, whatever system the text came from.
    let normalised;
    let raw = if field.multiline() && raw.contains('\r') {
        normalised = raw.replace("\r\n", "\n").replace('\r', "\n");
        normalised.as_str()
    } else {
        raw
    };
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let chars = text.chars().count();
    let max = field.max_chars();
    if chars > max {
        return Err(CharacterError::TooLong { field, chars, max });
    }
    let allowed = |c: char| field.multiline() && matches!(c, '\n' | '\t');
    if text.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(CharacterError::ControlCharacter { field });
    }
    Ok(Some(text.to_owned()))
}

macro_rules! character_text {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

character_text!(
    /// A character's name: trimmed, 1–64 characters, one line.
    CharacterName
);
character_text!(
    /// A character's class or role: trimmed, at most 64 characters, one line.
    CharacterClass
);
character_text!(
    /// A character's biography: trimmed, at most 1000 characters, line breaks allowed.
    CharacterBio
);

impl CharacterName {
    pub fn parse(raw: &str) -> Result<CharacterName, CharacterError> {
        match parse_text(TextField::Name, raw)? {
            Some(name) => Ok(CharacterName(name)),
            None => Err(CharacterError::NameEmpty),
        }
    }

    /// The key under which this name is unique per player and server.
    pub fn key(&self) -> String {
        name_key(&self.0)
    }
}

impl CharacterClass {
    /// `None` for an empty (or all-space) class: the character has none.
    pub fn parse(raw: &str) -> Result<Option<CharacterClass>, CharacterError> {
        Ok(parse_text(TextField::Class, raw)?.map(CharacterClass))
    }
}

impl CharacterBio {
    /// `None` for an empty (or all-space) bio: the character has none.
    pub fn parse(raw: &str) -> Result<Option<CharacterBio>, CharacterError> {
        Ok(parse_text(TextField::Bio, raw)?.map(CharacterBio))
    }
}

/// The key under which a player's character names are unique in a server: surrounding spaces
/// and case do not matter, so "Aria" and "aria " are the same character (and an import finds
/// the characters players registered themselves).
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::character::{DiscordId, NewCharacter};

    #[test]
    fn a_name_is_trimmed_and_keeps_its_case() {
        let name = CharacterName::parse("  Aria Moonwhisper ").unwrap();
        assert_eq!(name.as_str(), "Aria Moonwhisper");
        assert_eq!(name.key(), "aria moonwhisper");
    }

    #[test]
    fn an_empty_name_is_refused_with_a_players_message() {
        let err = CharacterName::parse("   ").unwrap_err();
        assert_eq!(err, CharacterError::NameEmpty);
        assert_eq!(err.to_string(), "A character needs a name.");
    }

    #[test]
    fn names_longer_than_64_characters_are_refused_counting_characters_not_bytes() {
        assert!(CharacterName::parse(&"é".repeat(64)).is_ok());
        let err = CharacterName::parse(&"é".repeat(65)).unwrap_err();
        assert_eq!(
            err,
            CharacterError::TooLong {
                field: TextField::Name,
                chars: 65,
                max: 64
            }
        );
        assert_eq!(
            err.to_string(),
            "Character names can be at most 64 characters."
        );
    }

    #[test]
    fn names_and_classes_refuse_line_breaks_and_control_characters() {
        for bad in ["Ar\nia", "Ar\tia", "Ar\u{0}ia", "Ar\u{7f}ia"] {
            assert_eq!(
                CharacterName::parse(bad).unwrap_err().to_string(),
                "Character names can't contain line breaks or control characters.",
                "{bad:?}"
            );
            assert_eq!(
                CharacterClass::parse(bad).unwrap_err(),
                CharacterError::ControlCharacter {
                    field: TextField::Class
                }
            );
        }
    }

    #[test]
    fn an_empty_class_or_bio_is_none() {
        assert_eq!(CharacterClass::parse("  ").unwrap(), None);
        assert_eq!(CharacterBio::parse("\r\n").unwrap(), None);
    }

    #[test]
    fn bios_keep_line_breaks_and_tabs_with_one_line_break_convention() {
        let bio = CharacterBio::parse(" Born in\r\nthe north.\rLikes\tcats. ")
            .unwrap()
            .unwrap();
        assert_eq!(bio.as_str(), "Born in\nthe north.\nLikes\tcats.");
        assert_eq!(
            CharacterBio::parse("bell\u{7}").unwrap_err().to_string(),
            "Bios can't contain control characters."
        );
    }

    #[test]
    fn bios_and_classes_have_their_own_limits() {
        assert!(CharacterBio::parse(&"a".repeat(1000)).unwrap().is_some());
        assert_eq!(
            CharacterBio::parse(&"a".repeat(1001))
                .unwrap_err()
                .to_string(),
            "Bios can be at most 1000 characters."
        );
        assert_eq!(
            CharacterClass::parse(&"a".repeat(65))
                .unwrap_err()
                .to_string(),
            "Classes can be at most 64 characters."
        );
    }

    #[test]
    fn a_new_character_parses_every_part_and_names_the_first_problem() {
        let guild = DiscordId::parse("1").unwrap();
        let owner = DiscordId::parse("2").unwrap();
        let new = NewCharacter::parse(guild, owner, " Aria ", Some(" "), Some("Hi")).unwrap();
        assert_eq!(new.name.as_str(), "Aria");
        assert_eq!(new.class, None);
        assert_eq!(new.bio.unwrap().as_str(), "Hi");
        let err =
            NewCharacter::parse(guild, owner, "Aria", Some(&"x".repeat(70)), None).unwrap_err();
        assert_eq!(err.field(), TextField::Class);
    }
}
