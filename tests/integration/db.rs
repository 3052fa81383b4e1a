//! Every repository function, on SQLite and on PostgreSQL.

use portrait_bot::character::{CharacterName, DiscordId, NewCharacter};
use portrait_bot::db::{
    Db, DbError, ImportKey, ImportedCharacter, NewFallback, NewPortrait, Stats,
};

use crate::on_both_databases;

const GUILD: u64 = 1_100_000_000_000_000_001;
const PLAYER: u64 = 900_000_000_000_000_002;
const OTHER_PLAYER: u64 = 900_000_000_000_000_003;

fn id(id: u64) -> DiscordId {
    DiscordId::new(id).expect("a Discord id")
}

fn name(name: &str) -> CharacterName {
    CharacterName::parse(name).expect("a valid name")
}

fn new_aria() -> NewCharacter {
    NewCharacter::parse(
        id(GUILD),
        id(PLAYER),
        "Aria Windrunner",
        Some("Ranger"),
        Some("Raised by wolves; fond of ✨ sparkles."),
    )
    .expect("a valid character")
}

fn portrait(key: &str) -> NewPortrait<'_> {
    NewPortrait {
        storage_key: key,
        public_url: "https://img.example.com/placeholder",
        sha256: "ab".repeat(32).leak(),
        size_bytes: 123_456,
        content_type: "image/png",
        width: 640,
        height: 480,
        uploader_id: PLAYER,
        source: "cli",
        legacy_url: Some("https://cdn.discordapp.com/attachments/1/2/old.png"),
    }
}

async fn create(db: &Db, new: NewCharacter) -> portrait_bot::db::Character {
    db.create_character(&new, None)
        .await
        .expect("character created")
}

on_both_databases! {
    async fn a_created_character_reads_back_with_every_field(t: TestDb) {
        t.db.ping().await.expect("the database answers");
        let created = create(&t.db, new_aria()).await;
        assert_eq!(created.guild_id, GUILD);
        assert_eq!(created.owner_id, PLAYER);
        assert_eq!(created.name, "Aria Windrunner");
        assert_eq!(created.class.as_deref(), Some("Ranger"));
        assert_eq!(created.bio.as_deref(), Some("Raised by wolves; fond of ✨ sparkles."));
        assert_eq!(created.portrait_url, None);
        assert!(created.created_at.ends_with('Z'), "{}", created.created_at);
        assert_eq!(t.db.character_by_id(created.id).await.unwrap(), Some(created));
    }

    async fn a_second_character_with_the_same_name_in_any_case_is_refused(t: TestDb) {
        create(&t.db, new_aria()).await;
        let duplicate = NewCharacter { name: name("  aria WINDRUNNER "), ..new_aria() };
        let err = t.db.create_character(&duplicate, None).await.expect_err("duplicate refused");
        assert!(matches!(err, DbError::CharacterExists { .. }), "{err:?}");
        assert_eq!(err.to_string(), "you already have a character named `aria WINDRUNNER` here");
        // Another player, or another guild, may use the name.
        create(&t.db, NewCharacter { owner_id: id(OTHER_PLAYER), ..new_aria() }).await;
        create(&t.db, NewCharacter { guild_id: id(GUILD + 1), ..new_aria() }).await;
        assert_eq!(t.db.count_characters(GUILD, PLAYER).await.unwrap(), 1);
    }

    async fn characters_are_found_by_name_ignoring_case_and_listed_by_name(t: TestDb) {
        let aria = create(&t.db, new_aria()).await;
        create(&t.db, NewCharacter { name: name("brom"), class: None, bio: None, ..new_aria() }).await;
        create(&t.db, NewCharacter { owner_id: id(OTHER_PLAYER), name: name("Cass"), ..new_aria() }).await;

        let found = t.db.find_character(GUILD, PLAYER, "ARIA windrunner").await.unwrap();
        assert_eq!(found.map(|c| c.id), Some(aria.id));
        assert_eq!(t.db.find_character(GUILD, OTHER_PLAYER, "Aria Windrunner").await.unwrap(), None);

        let names: Vec<String> = t.db.list_characters(GUILD, PLAYER).await.unwrap()
            .into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["Aria Windrunner", "brom"]);
        assert_eq!(t.db.count_characters(GUILD, PLAYER).await.unwrap(), 2);
        assert_eq!(t.db.count_characters(GUILD, OTHER_PLAYER).await.unwrap(), 1);
    }

    async fn attaching_a_portrait_records_the_object_and_points_the_character_at_it(t: TestDb) {
        let aria = create(&t.db, new_aria()).await;
        let key = "dev/portraits/2026/11/0123456789abcdef_aria.png";
        let (record, character) = t.db.attach_portrait(aria.id, &portrait(key), None).await.unwrap();
        assert_eq!(record.storage_key, key);
        assert_eq!(record.size_bytes, 123_456);
        assert_eq!((record.width, record.height), (640, 480));
        assert_eq!(record.uploader_id, PLAYER);
        assert_eq!(record.source, "cli");
        assert_eq!(record.legacy_url.as_deref(), Some("https://cdn.discordapp.com/attachments/1/2/old.png"));
        assert_eq!(character.portrait_id, Some(record.id));
        assert_eq!(character.portrait_url.as_deref(), Some("https://img.example.com/placeholder"));
        assert_eq!(t.db.portrait_by_id(record.id).await.unwrap(), Some(record.clone()));
        assert_eq!(t.db.portrait_by_key(key).await.unwrap(), Some(record.clone()));
        assert_eq!(t.db.portrait_references(record.id).await.unwrap(), 1);
    }

    async fn the_same_key_recorded_twice_is_one_row_shared_by_both_characters(t: TestDb) {
        let aria = create(&t.db, new_aria()).await;
        let brom = create(&t.db, NewCharacter { name: name("Brom"), ..new_aria() }).await;
        let key = "dev/portraits/2026/11/0123456789abcdef_shared.png";
        let (first, _) = t.db.attach_portrait(aria.id, &portrait(key), None).await.unwrap();
        let (second, _) = t.db.attach_portrait(brom.id, &portrait(key), None).await.unwrap();
        assert_eq!(first.id, second.id);
        let again = t.db.record_portrait(&portrait(key)).await.unwrap();
        assert_eq!(again.id, first.id);
        assert_eq!(t.db.portrait_references(first.id).await.unwrap(), 2);
        assert_eq!(t.db.stats().await.unwrap().portraits, 1);
    }

    async fn attaching_to_a_deleted_character_records_nothing(t: TestDb) {
        let aria = create(&t.db, new_aria()).await;
        t.db.delete_character(aria.id).await.unwrap();
        let key = "dev/portraits/2026/11/0123456789abcdef_gone.png";
        let err = t.db.attach_portrait(aria.id, &portrait(key), None).await.expect_err("no character");
        assert!(matches!(err, DbError::CharacterNotFound), "{err:?}");
        assert_eq!(t.db.portrait_by_key(key).await.unwrap(), None, "the transaction rolled back");
    }

    async fn a_portrait_row_is_deleted_only_once_no_character_references_it(t: TestDb) {
        let aria = create(&t.db, new_aria()).await;
        let brom = create(&t.db, NewCharacter { name: name("Brom"), ..new_aria() }).await;
        let key = "dev/portraits/2026/11/0123456789abcdef_shared.png";
        let (record, _) = t.db.attach_portrait(aria.id, &portrait(key), None).await.unwrap();
        t.db.attach_portrait(brom.id, &portrait(key), None).await.unwrap();

        let before = t.db.clear_character_portrait(aria.id).await.unwrap().expect("aria exists");
        assert_eq!(before.portrait_id, Some(record.id), "returns the character as it was");
        let aria_now = t.db.character_by_id(aria.id).await.unwrap().unwrap();
        assert_eq!((aria_now.portrait_id, aria_now.portrait_url), (None, None));
        assert_eq!(t.db.delete_portrait_if_unreferenced(record.id).await.unwrap(), None, "Brom still shows it");

        let deleted = t.db.delete_character(brom.id).await.unwrap().expect("brom existed");
        assert_eq!(deleted.portrait_id, Some(record.id));
        let removed = t.db.delete_portrait_if_unreferenced(record.id).await.unwrap();
        assert_eq!(removed.map(|r| r.storage_key), Some(key.to_owned()));
        assert_eq!(t.db.portrait_by_id(record.id).await.unwrap(), None);
        assert_eq!(t.db.delete_character(brom.id).await.unwrap(), None);
        assert_eq!(t.db.clear_character_portrait(brom.id).await.unwrap(), None);
    }

    async fn an_imported_external_portrait_url_is_shown_without_a_stored_object(t: TestDb) {
        let aria = create(&t.db, new_aria()).await;
        let url = "https://cdn.discordapp.com/attachments/1/2/aria.png?ex=1&is=2&hm=3";
        t.db.set_character_external_portrait(aria.id, url).await.unwrap();
        let now = t.db.character_by_id(aria.id).await.unwrap().unwrap();
        assert_eq!(now.portrait_url.as_deref(), Some(url));
        assert_eq!(now.portrait_id, None);
    }

    async fn stats_count_characters_portraits_bytes_and_fallbacks(t: TestDb) {
        assert_eq!(t.db.stats().await.unwrap(), Stats::default());
        let aria = create(&t.db, new_aria()).await;
        create(&t.db, NewCharacter { name: name("Brom"), ..new_aria() }).await;
        t.db.attach_portrait(aria.id, &portrait("dev/portraits/2026/11/aaaaaaaaaaaaaaaa_a.png"), None).await.unwrap();
        t.db.record_portrait(&NewPortrait { size_bytes: 1_000, ..portrait("dev/portraits/2026/11/bbbbbbbbbbbbbbbb_b.png") }).await.unwrap();
        t.db.record_fallback(&NewFallback {
            guild_id: GUILD,
            owner_id: PLAYER,
            character_id: Some(aria.id),
            error_kind: "transient",
            reason: "could not reach R2",
        }).await.unwrap();
        assert_eq!(t.db.stats().await.unwrap(), Stats {
            characters: 2,
            portraits: 2,
            stored_bytes: 124_456,
            fallbacks: 1,
        });
    }

    async fn migrations_are_applied_once_even_when_connecting_again(t: TestDb) {
        create(&t.db, new_aria()).await;
        let again = Db::connect(&t.url, &t.url).await.expect("reconnects");
        assert_eq!(again.count_characters(GUILD, PLAYER).await.unwrap(), 1);
        again.close().await;
    }

    async fn an_import_batch_reads_and_creates_many_characters_by_key_in_order(t: TestDb) {
        let aria = create(&t.db, new_aria()).await;
        // More than one statement's worth (500), so the pages of keys line up too.
        let names: Vec<CharacterName> =
            (0..1_200).map(|i| name(&format!("Hero {i}"))).collect();
        let registered_meanwhile = name("  ARIA windrunner ");
        let mut tx = t.db.begin_import().await.unwrap();
        let mut new: Vec<ImportedCharacter> = names
            .iter()
            .map(|name| ImportedCharacter {
                guild_id: id(GUILD),
                owner_id: id(OTHER_PLAYER),
                name,
                class: None,
                bio: None,
                portrait_url: Some("https://cdn.discordapp.com/attachments/1/2/hero.png"),
            })
            .collect();
        new.insert(700, ImportedCharacter { owner_id: id(PLAYER), name: &registered_meanwhile, ..new[0] });
        let created = tx.create_many(&new).await.unwrap();
        assert_eq!(created.len(), 1_201);
        assert!(created[700].is_none(), "the player's own Aria is not created again");
        for (i, character) in created.iter().enumerate().filter(|(i, _)| *i != 700) {
            let character = character.as_ref().expect("created");
            assert_eq!(character.name, new[i].name.as_str(), "result {i} belongs to record {i}");
            assert_eq!(character.owner_id, OTHER_PLAYER);
        }

        let mut keys: Vec<ImportKey> = new
            .iter()
            .map(|n| ImportKey { guild_id: n.guild_id, owner_id: n.owner_id, name: n.name })
            .collect();
        let unknown = name("Nobody");
        keys.push(ImportKey { guild_id: id(GUILD), owner_id: id(PLAYER), name: &unknown });
        let found = tx.find_many(&keys).await.unwrap();
        assert_eq!(found.len(), 1_202);
        assert_eq!(found[700].as_ref().expect("Aria found by her key").character.id, aria.id);
        assert!(found[1_201].is_none(), "no character of that name");
        for i in (0..1_201).filter(|i| *i != 700) {
            let target = found[i].as_ref().expect("found");
            assert_eq!(Some(target.character.id), created[i].as_ref().map(|c| c.id));
            assert!(target.migrated_from.is_empty(), "nothing was migrated");
        }
        tx.commit().await.unwrap();
        assert_eq!(t.db.count_characters(GUILD, OTHER_PLAYER).await.unwrap(), 1_200);
        assert_eq!(t.db.count_characters(GUILD, PLAYER).await.unwrap(), 1);
    }
}
