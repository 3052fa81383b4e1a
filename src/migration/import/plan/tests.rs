//! Validation through the character domain, and the portrait rule.

use super::*;
use crate::character::{CharacterBio, CharacterName, DiscordId};
use crate::migration::import::ImportOptions;

fn row(guild: &str, owner: &str, name: &str, url: &str) -> ImportRow {
    ImportRow {
        line: 2,
        record: 2,
        guild_id: Some(guild.into()),
        owner_id: Some(owner.into()),
        name: Some(name.into()),
        class: None,
        bio: None,
        portrait_url: Some(url.into()),
    }
}

#[test]
fn ids_must_be_positive_whole_numbers_that_fit_the_database() {
    assert!(validate(&row(" 1100000000000000001 ", "2", "A", "")).is_ok());
    let reason = |guild: &str| validate(&row(guild, "2", "A", "")).unwrap_err();
    assert_eq!(reason("0"), "guild_id is 0, which is not a Discord id");
    assert_eq!(reason(""), "guild_id is empty");
    assert_eq!(
        reason("-5"),
        "guild_id `-5` is not a Discord id (a positive whole number)"
    );
    assert_eq!(
        reason("+5"),
        "guild_id `+5` is not a Discord id (a positive whole number)"
    );
    assert_eq!(
        reason("9223372036854775808"),
        "guild_id `9223372036854775808` is too large to be a Discord id"
    );
    assert!(
        reason("1.10E+18").contains("scientific notation"),
        "{}",
        reason("1.10E+18")
    );
}

#[test]
fn every_problem_of_a_record_is_reported_at_once() {
    let mut bad = row("x", "", "  ", "ftp://example.com/a.png");
    bad.bio = Some("b".repeat(1001));
    assert_eq!(
        validate(&bad).unwrap_err(),
        "guild_id `x` is not a Discord id (a positive whole number); owner_id is empty; \
         name is empty; bio is 1001 characters; the limit is 1000; portrait_url must be an \
         http:// or https:// link, not ftp:"
    );
}

#[test]
fn names_classes_and_bios_are_checked_for_length_and_control_characters() {
    let ok = validate(&row("1", "2", &"é".repeat(64), "")).unwrap();
    assert_eq!(
        ok.name.as_str().chars().count(),
        64,
        "the limit counts characters, not bytes"
    );
    assert_eq!(
        validate(&row("1", "2", &"a".repeat(65), "")).unwrap_err(),
        "name is 65 characters; the limit is 64"
    );
    assert!(validate(&row("1", "2", "A\tB", ""))
        .unwrap_err()
        .contains("control character"));

    let mut record = row("1", "2", "A", "");
    record.bio = Some(" line one\r\nline two\ttabbed ".into());
    record.class = Some("  ".into());
    let valid = validate(&record).unwrap();
    assert_eq!(
        valid.bio,
        TextChange::Set(
            CharacterBio::parse("line one\nline two\ttabbed")
                .unwrap()
                .unwrap()
        )
    );
    assert_eq!(valid.class, TextChange::Clear);

    record.bio = Some("nul\0".into());
    assert_eq!(
        validate(&record).unwrap_err(),
        "bio contains a control character"
    );
    record.bio = None;
    record.class = Some("a\nb".into());
    assert!(validate(&record)
        .unwrap_err()
        .starts_with("class contains a control character"));
}

#[test]
fn portrait_links_must_be_http_or_https_with_a_host() {
    let link = |url: &str| validate(&row("1", "2", "A", url)).map(|r| r.portrait_url);
    assert_eq!(link("  "), Ok(None));
    assert_eq!(
        link(" HTTPS://CDN.discordapp.com/attachments/1/2/a.png?ex=1 "),
        Ok(Some(
            "https://cdn.discordapp.com/attachments/1/2/a.png?ex=1".into()
        ))
    );
    assert!(link("javascript:alert(1)")
        .unwrap_err()
        .contains("not javascript:"));
    assert!(link("not a link")
        .unwrap_err()
        .starts_with("portrait_url is not a link"));
    let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
    assert!(link(&long).unwrap_err().contains("the limit is 2048"));
}

#[test]
fn cdn_links_are_the_same_portrait_whatever_their_signature_or_cdn_host() {
    let cdn = ImportOptions::default().cdn_origins;
    let signed = "https://cdn.discordapp.com/attachments/1/2/a.png?ex=65&is=64&hm=ab";
    let refreshed = "https://media.discordapp.net/attachments/1/2/a.png?ex=99&is=98&hm=cd";
    assert!(same_link(signed, refreshed, &cdn));
    assert!(same_link(
        signed,
        "https://cdn.discordapp.com/attachments/1/2/a.png",
        &cdn
    ));
    assert!(!same_link(
        signed,
        "https://cdn.discordapp.com/attachments/1/3/a.png",
        &cdn
    ));
    // Elsewhere the query may be what names the image.
    assert!(!same_link(
        "https://img.example/?id=1",
        "https://img.example/?id=2",
        &cdn
    ));
    assert!(same_link(
        "https://IMG.example/a",
        "https://img.example/a",
        &cdn
    ));
}

fn target(portrait_id: Option<i64>, url: Option<&str>, migrated_from: &[&str]) -> ImportTarget {
    ImportTarget {
        character: Character {
            id: 7,
            guild_id: 1,
            owner_id: 2,
            name: "Aria".into(),
            class: Some("Ranger".into()),
            bio: Some("Old bio".into()),
            portrait_id,
            portrait_url: url.map(Into::into),
            created_at: "2024-01-01T00:00:00.000Z".into(),
            updated_at: "2024-01-01T00:00:00.000Z".into(),
        },
        migrated_from: migrated_from.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[test]
fn the_portrait_rule_keeps_what_we_store_unless_the_community_changed_the_link() {
    let cdn = ImportOptions::default().cdn_origins;
    let old = "https://cdn.discordapp.com/attachments/1/2/old.png";
    let new = "https://cdn.discordapp.com/attachments/1/2/new.png";
    let ours = "https://bucket.example/prod/portraits/2024/01/ab_aria.png";
    let record = |url: Option<&str>| ValidRecord {
        line: 2,
        record: 2,
        guild_id: DiscordId::new(1).unwrap(),
        owner_id: DiscordId::new(2).unwrap(),
        name: CharacterName::parse("aria").unwrap(),
        class: TextChange::Keep,
        bio: TextChange::Keep,
        portrait_url: url.map(Into::into),
    };
    let decide = |t: &ImportTarget, url| {
        let (wanted, decision) = plan(t, &record(url), &cdn);
        (decision, wanted.portrait_id, wanted.portrait_url)
    };

    let migrated = target(Some(3), Some(ours), &[old]);
    assert_eq!(
        decide(&migrated, Some(old)),
        (PortraitDecision::Same, Some(3), Some(ours.into()))
    );
    let resigned = format!("{old}?ex=1&is=2&hm=3");
    assert_eq!(decide(&migrated, Some(&resigned)).0, PortraitDecision::Same);
    assert_eq!(
        decide(&migrated, Some(new)),
        (PortraitDecision::Relinked, None, Some(new.into()))
    );
    assert_eq!(
        decide(&migrated, None),
        (PortraitDecision::NotGiven, Some(3), Some(ours.into()))
    );
    assert_eq!(decide(&migrated, Some(ours)).0, PortraitDecision::Same);

    let uploaded = target(Some(4), Some(ours), &[]);
    assert_eq!(
        decide(&uploaded, Some(new)),
        (PortraitDecision::KeptUpload, Some(4), Some(ours.into()))
    );

    let external = target(None, Some(old), &[]);
    assert_eq!(decide(&external, Some(old)).0, PortraitDecision::Same);
    assert_eq!(
        decide(&external, Some(new)),
        (PortraitDecision::Linked, None, Some(new.into()))
    );
    let default = target(None, None, &[]);
    assert_eq!(
        decide(&default, Some(new)),
        (PortraitDecision::Linked, None, Some(new.into()))
    );
}

#[test]
fn absent_columns_keep_class_and_bio_and_empty_ones_clear_them() {
    let t = target(None, None, &[]);
    let mut record = validate(&row("1", "2", "Aria", "")).unwrap();
    let (wanted, _) = plan(&t, &record, &[]);
    assert_eq!(wanted, t.character, "nothing to change");
    record.class = TextChange::Clear;
    record.bio = TextChange::Set(CharacterBio::parse("New").unwrap().unwrap());
    let (wanted, _) = plan(&t, &record, &[]);
    assert_eq!((wanted.class, wanted.bio.as_deref()), (None, Some("New")));
}
