//! Discord ids (snowflakes) of servers and players.

use std::fmt;
use std::num::NonZeroU64;

/// A Discord snowflake: a positive whole number below 2^63 (both databases store a signed
/// 64-bit integer; every real snowflake fits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DiscordId(NonZeroU64);

/// Why a text is not a Discord id. `Display` says it without naming the field; callers put
/// the field's name in front (`owner_id is 0, which is not a Discord id`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscordIdError {
    #[error("is empty")]
    Empty,
    #[error("is 0, which is not a Discord id")]
    Zero,
    #[error("`{0}` is too large to be a Discord id")]
    TooLarge(String),
    /// Spreadsheets show long numbers as 1.10E+18 and export them so: the last digits are
    /// gone and no import can bring them back.
    #[error(
        "`{0}` is in scientific notation, which loses the id's last digits; format the \
         column as text and export again"
    )]
    ScientificNotation(String),
    #[error("`{0}` is not a Discord id (a positive whole number)")]
    NotANumber(String),
}

/// Longest piece of a bad value quoted back in an error: short, one line.
const QUOTED_CHARS: usize = 40;

impl DiscordId {
    /// Parses a snowflake written in decimal, surrounding spaces allowed.
    pub fn parse(raw: &str) -> Result<DiscordId, DiscordIdError> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(DiscordIdError::Empty);
        }
        if value.chars().all(|c| c.is_ascii_digit()) {
            return match value.parse::<u64>() {
                Ok(id) => DiscordId::new(id).ok_or(if id == 0 {
                    DiscordIdError::Zero
                } else {
                    DiscordIdError::TooLarge(quoted(value))
                }),
                Err(_) => Err(DiscordIdError::TooLarge(quoted(value))),
            };
        }
        let looks_scientific = value.contains(['e', 'E'])
            && value
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | 'e' | 'E' | '+' | '-'));
        Err(if looks_scientific {
            DiscordIdError::ScientificNotation(quoted(value))
        } else {
            DiscordIdError::NotANumber(quoted(value))
        })
    }

    /// An id Discord gave us (a serenity id, a database column): `None` for 0 or ≥ 2^63.
    pub fn new(id: u64) -> Option<DiscordId> {
        if i64::try_from(id).is_err() {
            return None;
        }
        NonZeroU64::new(id).map(DiscordId)
    }

    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for DiscordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A value shown in an error: at most [`QUOTED_CHARS`] characters, control characters
/// replaced, so a report stays one readable line.
pub(crate) fn quoted(value: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snowflakes_parse_with_surrounding_spaces() {
        assert_eq!(
            DiscordId::parse(" 1100000000000000001 ").unwrap().get(),
            1_100_000_000_000_000_001
        );
    }

    #[test]
    fn ids_must_be_positive_whole_numbers_that_fit_a_signed_64_bit_column() {
        assert_eq!(DiscordId::parse(""), Err(DiscordIdError::Empty));
        assert_eq!(DiscordId::parse("0"), Err(DiscordIdError::Zero));
        assert_eq!(
            DiscordId::parse("9223372036854775808")
                .unwrap_err()
                .to_string(),
            "`9223372036854775808` is too large to be a Discord id"
        );
        assert!(DiscordId::parse("9223372036854775807").is_ok());
        assert_eq!(
            DiscordId::parse("99999999999999999999").unwrap_err(),
            DiscordIdError::TooLarge("99999999999999999999".into())
        );
        assert_eq!(
            DiscordId::parse("-5").unwrap_err().to_string(),
            "`-5` is not a Discord id (a positive whole number)"
        );
        assert!(matches!(
            DiscordId::parse("1.10E+18"),
            Err(DiscordIdError::ScientificNotation(_))
        ));
        assert_eq!(DiscordId::new(0), None);
        assert_eq!(DiscordId::new(u64::MAX), None);
    }

    #[test]
    fn long_bad_values_are_quoted_short_and_on_one_line() {
        let err = DiscordId::parse(&format!("x\n{}", "y".repeat(100))).unwrap_err();
        let text = err.to_string();
        assert!(text.contains('…') && !text.contains('\n'), "{text}");
    }
}
