//! poise's `#[max_length = …]` takes a literal only, so the options cannot name the domain's
//! constants: these tests keep the two from drifting apart.

use crate::character::{MAX_BIO_CHARS, MAX_CLASS_CHARS, MAX_NAME_CHARS};

/// The `max_length` Discord is told for each option of a command, by option name.
fn max_lengths(command: poise::Command<super::Data, super::BotError>) -> Vec<(String, u64)> {
    let registered = command.create_as_slash_command().expect("a slash command");
    let json = serde_json::to_value(&registered).expect("serialisable");
    json["options"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|option| {
            Some((
                option["name"].as_str()?.to_owned(),
                option["max_length"].as_u64()?,
            ))
        })
        .collect()
}

#[test]
fn register_limits_each_text_option_to_what_the_character_domain_accepts() {
    let limits = max_lengths(super::register::register());
    assert_eq!(
        limits,
        [
            ("name".to_owned(), MAX_NAME_CHARS as u64),
            ("class".to_owned(), MAX_CLASS_CHARS as u64),
            ("bio".to_owned(), MAX_BIO_CHARS as u64),
        ]
    );
}
