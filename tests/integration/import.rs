//! `portrait-bot import`: another bot's export, in JSON or CSV, on SQLite and PostgreSQL.

use std::path::PathBuf;

use portrait_bot::db::{Character, Db, DbError, NewPortrait};

use crate::support::app::new_character;
use portrait_bot::migration::import::{
    import_file, import_records, import_text, ImportError, ImportOptions, ImportReport, ImportRow,
    Rejected, SHOWN_REJECTIONS,
};

use crate::on_both_databases;

const GUILD: u64 = 1_100_000_000_000_000_001;
const PLAYER: u64 = 900_000_000_000_000_002;
const OTHER_PLAYER: u64 = 900_000_000_000_000_003;

const ARIA_LINK: &str = "https://cdn.discordapp.com/attachments/11/21/aria.png";
const BROM_LINK: &str = "https://cdn.discordapp.com/attachments/11/22/brom.png";
const NEW_LINK: &str = "https://cdn.discordapp.com/attachments/11/23/aria-v2.png";
const STORED_URL: &str =
    "https://portraits.example.com/prod/portraits/2025/01/0123456789abcdef_aria.png";

async fn import(db: &Db, text: &str) -> ImportReport {
    import_text(db, text, &ImportOptions::default())
        .await
        .expect("the file imports")
}

async fn character(db: &Db, owner: u64, name: &str) -> Character {
    db.find_character(GUILD, owner, name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{name} exists"))
}

/// Every character in the guild, by owner and name.
async fn all_characters(db: &Db) -> Vec<Character> {
    let mut all = db.list_characters(GUILD, PLAYER).await.unwrap();
    all.extend(db.list_characters(GUILD, OTHER_PLAYER).await.unwrap());
    all
}

fn counts(report: &ImportReport) -> (usize, usize, usize, usize) {
    (
        report.created,
        report.updated,
        report.unchanged,
        report.rejected.len(),
    )
}

fn lines(report: &ImportReport) -> Vec<usize> {
    report.rejected.iter().map(|r| r.line).collect()
}

fn reason_on(report: &ImportReport, line: usize) -> &str {
    &report
        .rejected
        .iter()
        .find(|r| r.line == line)
        .unwrap_or_else(|| panic!("a rejection on line {line}: {report}"))
        .reason
}

/// Stores an object for a character as the CDN migration does: the portrait row keeps the
/// link it came from, and with a run the run records the change too.
async fn migrate(
    db: &Db,
    character: &Character,
    key: &str,
    legacy: Option<&str>,
    run: Option<i64>,
) {
    let portrait = NewPortrait {
        storage_key: key,
        public_url: STORED_URL,
        sha256: &"ab".repeat(32),
        size_bytes: 1234,
        content_type: "image/png",
        width: 64,
        height: 64,
        uploader_id: character.owner_id,
        source: if legacy.is_some() {
            "migration"
        } else {
            "slash_command"
        },
        legacy_url: legacy,
    };
    db.attach_portrait(character.id, &portrait, run)
        .await
        .expect("portrait attached");
}

fn csv_export() -> String {
    // Columns in another order, under aliases and in other cases; CRLF line ends; a quoted
    // comma, doubled quotes and a two-line bio; a column nobody asked for.
    [
        "Character,Guild,OWNER,Level,Portrait,Bio,class",
        &format!("Aria Windrunner,{GUILD},{PLAYER},7,{ARIA_LINK},\"Raised by wolves, mostly.\",Ranger"),
        &format!("\"Brom \"\"the Bold\"\"\",{GUILD},{PLAYER},3,{BROM_LINK},\"First line\r\nsecond line\",\"Fighter, retired\""),
        &format!("Cass,{GUILD},{OTHER_PLAYER},1,,,"),
        "",
    ]
    .join("\r\n")
}

fn json_export() -> String {
    // Ids as numbers (beyond 2^53: they must keep every digit) and as strings; null and
    // missing optional fields.
    format!(
        r#"[
  {{"guild_id": {GUILD}, "owner_id": {PLAYER}, "name": "Aria Windrunner", "class": "Ranger",
    "bio": "Raised by wolves.", "portrait_url": "{ARIA_LINK}"}},
  {{"guild_id": "{GUILD}", "user_id": "{PLAYER}", "character_name": "Brom", "class": null,
    "image_url": "{BROM_LINK}", "created_at": "2019-05-01"}},
  {{"guild": {GUILD}, "owner": {OTHER_PLAYER}, "name": "Cass", "portrait_url": ""}}
]"#
    )
}

on_both_databases! {
    async fn a_csv_export_with_quoted_commas_line_breaks_and_crlf_creates_every_character(t: TestDb) {
        let report = import(&t.db, &csv_export()).await;
        assert_eq!(counts(&report), (3, 0, 0, 0), "{report}");
        assert_eq!(report.records, 3);
        assert_eq!(report.ignored_columns, ["Level"]);

        let aria = character(&t.db, PLAYER, "aria windrunner").await;
        assert_eq!(aria.name, "Aria Windrunner");
        assert_eq!(aria.class.as_deref(), Some("Ranger"));
        assert_eq!(aria.bio.as_deref(), Some("Raised by wolves, mostly."));
        assert_eq!(aria.portrait_url.as_deref(), Some(ARIA_LINK), "an external portrait");
        assert_eq!(aria.portrait_id, None, "nothing stored yet: the migration does that");

        let brom = character(&t.db, PLAYER, "Brom \"the Bold\"").await;
        assert_eq!(brom.class.as_deref(), Some("Fighter, retired"));
        assert_eq!(brom.bio.as_deref(), Some("First line\nsecond line"), "one line-break convention");
        assert_eq!(brom.portrait_url.as_deref(), Some(BROM_LINK));

        let cass = character(&t.db, OTHER_PLAYER, "Cass").await;
        assert_eq!((cass.class, cass.bio, cass.portrait_url), (None, None, None));

        let text = report.to_string();
        assert!(text.contains("records read:      3 (CSV)"), "{text}");
        assert!(text.contains("created:           3"), "{text}");
        assert!(text.contains("Ignored columns (not recognised): Level."), "{text}");
    }

    async fn a_json_export_with_numeric_and_string_ids_creates_every_character(t: TestDb) {
        let report = import(&t.db, &json_export()).await;
        assert_eq!(counts(&report), (3, 0, 0, 0), "{report}");
        assert_eq!(report.ignored_columns, ["created_at"]);

        let aria = character(&t.db, PLAYER, "Aria Windrunner").await;
        assert_eq!((aria.guild_id, aria.owner_id), (GUILD, PLAYER), "every digit kept");
        assert_eq!(aria.bio.as_deref(), Some("Raised by wolves."));
        assert_eq!(aria.portrait_url.as_deref(), Some(ARIA_LINK));
        let brom = character(&t.db, PLAYER, "Brom").await;
        assert_eq!((brom.class, brom.portrait_url.as_deref()), (None, Some(BROM_LINK)));
        let cass = character(&t.db, OTHER_PLAYER, "Cass").await;
        assert_eq!(cass.portrait_url, None, "an empty link is no portrait");
    }

    async fn an_export_file_is_read_from_disk_by_its_content_whatever_its_name(t: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.txt");
        // Excel's "CSV UTF-8" starts with a byte-order mark.
        std::fs::write(&path, format!("\u{feff}{}", csv_export())).unwrap();
        let report = import_file(&t.db, &path, &ImportOptions::default()).await.unwrap();
        assert_eq!(counts(&report), (3, 0, 0, 0), "{report}");

        let path = dir.path().join("characters.csv");
        std::fs::write(&path, json_export()).unwrap();
        let report = import_file(&t.db, &path, &ImportOptions::default()).await.unwrap();
        assert_eq!(report.format.map(|f| f.to_string()).as_deref(), Some("JSON"));
        assert_eq!(counts(&report), (1, 1, 1, 0), "{report}");
    }

    async fn bad_records_are_rejected_with_their_line_and_reason_and_the_rest_imported(t: TestDb) {
        let long_bio = "x".repeat(1001);
        let text = [
            "guild_id,owner_id,name,class,bio,portrait_url",
            &format!("{GUILD},{PLAYER},Good One,,,{ARIA_LINK}"),
            &format!("abc,{PLAYER},Bad Guild,,,"),
            &format!("{GUILD},{PLAYER},   ,,,"),
            &format!("{GUILD},{PLAYER},Ftp,,,ftp://files.example.com/a.png"),
            &format!("{GUILD},{PLAYER},Talker,,{long_bio},"),
            &format!("{GUILD},1.1E+18,Sheet,,,"),
            &format!("{GUILD},{PLAYER},Shifted,Mage,likes commas, a lot,"),
            &format!("{GUILD},{PLAYER},\"Multi\nLine\",,,"),
            &format!("{GUILD},{OTHER_PLAYER},Good Two,,,"),
            "",
        ]
        .join("\n");
        let report = import(&t.db, &text).await;
        assert_eq!(counts(&report), (2, 0, 0, 7), "{report}");
        assert_eq!(report.records, 9);
        assert_eq!(lines(&report), [3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(reason_on(&report, 3), "guild_id `abc` is not a Discord id (a positive whole number)");
        assert_eq!(reason_on(&report, 4), "name is empty");
        assert_eq!(reason_on(&report, 5), "portrait_url must be an http:// or https:// link, not ftp:");
        assert_eq!(reason_on(&report, 6), "bio is 1001 characters; the limit is 1000");
        assert!(reason_on(&report, 7).contains("scientific notation"), "{report}");
        assert!(reason_on(&report, 8).starts_with("has 7 values but the header has 6 columns"), "{report}");
        assert!(reason_on(&report, 9).starts_with("name contains a control character"), "{report}");

        assert_eq!(
            all_characters(&t.db).await.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["Good One", "Good Two"]
        );
        let text = report.to_string();
        assert!(text.contains("rejected:          7"), "{text}");
        assert!(text.contains("  line 3: guild_id `abc` is not a Discord id"), "{text}");
        assert!(text.contains("  line 6: bio is 1001 characters; the limit is 1000\n"), "{text}");
    }

    async fn json_rejections_point_at_the_line_where_the_object_starts(t: TestDb) {
        let text = format!(
            "[\n  {{\"guild_id\": {GUILD}, \"owner_id\": {PLAYER}, \"name\": \"Fine\"}},\n  \
             {{\"guild_id\": -4, \"owner_id\": {PLAYER},\n   \"name\": \"Negative\"}},\n  \
             \"just text\",\n  {{\"guild_id\": {GUILD}, \"owner_id\": {PLAYER}, \"name\": [\"A\"]}},\n  \
             {{\"owner_id\": {PLAYER}, \"name\": \"No Guild\", \"character\": \"Twice\"}},\n  \
             {{\"guild_id\": 1.5e18, \"owner_id\": {PLAYER}, \"name\": \"Float\"}}\n]"
        );
        let report = import(&t.db, &text).await;
        assert_eq!(counts(&report), (1, 0, 0, 5), "{report}");
        assert_eq!(lines(&report), [3, 5, 6, 7, 8]);
        assert_eq!(reason_on(&report, 3), "guild_id `-4` is not a Discord id (a positive whole number)");
        assert!(reason_on(&report, 5).starts_with("expected an object"), "{report}");
        assert_eq!(reason_on(&report, 6), "name must be text, not a list");
        assert_eq!(
            reason_on(&report, 7),
            "both `character` and `name` give the name; keep one"
        );
        assert!(reason_on(&report, 8).starts_with("guild_id `1.5e+18` is in scientific notation"), "{report}");
        assert!(report.to_string().contains("  line 5 (object #3): expected an object"), "{report}");
    }

    async fn reimporting_the_same_file_changes_nothing_and_never_duplicates(t: TestDb) {
        let first = import(&t.db, &csv_export()).await;
        assert_eq!(counts(&first), (3, 0, 0, 0));
        let before = all_characters(&t.db).await;

        let second = import(&t.db, &csv_export()).await;
        assert_eq!(counts(&second), (0, 0, 3, 0), "{second}");
        let third = import(&t.db, &json_export()).await;
        // Aria's bio differs, Brom has another name there, Cass has no class or bio keys.
        assert_eq!(counts(&third), (1, 1, 1, 0), "{third}");

        let after = all_characters(&t.db).await;
        assert_eq!(after.len(), 4);
        let aria_before = before.iter().find(|c| c.name == "Aria Windrunner").unwrap();
        let aria_after = after.iter().find(|c| c.name == "Aria Windrunner").unwrap();
        assert_eq!(aria_after.id, aria_before.id, "the same row, updated");
    }

    async fn reimporting_an_edited_file_updates_class_bio_and_portrait_link(t: TestDb) {
        import(&t.db, &csv_export()).await;
        let before = character(&t.db, PLAYER, "Aria Windrunner").await;
        let edited = format!(
            "guild_id,owner_id,name,class,bio,portrait_url\n\
             {GUILD},{PLAYER},  ARIA windrunner ,Warden,,{NEW_LINK}\n\
             {GUILD},{OTHER_PLAYER},Cass,Bard,,\n"
        );
        let report = import(&t.db, &edited).await;
        assert_eq!(counts(&report), (0, 2, 0, 0), "{report}");

        let aria = character(&t.db, PLAYER, "Aria Windrunner").await;
        assert_eq!(aria.id, before.id);
        assert_eq!(aria.name, "Aria Windrunner", "the name keeps its spelling");
        assert_eq!(aria.class.as_deref(), Some("Warden"));
        assert_eq!(aria.bio, None, "an empty bio clears it");
        assert_eq!(aria.portrait_url.as_deref(), Some(NEW_LINK));
        assert!(aria.updated_at >= before.updated_at);
        let cass = character(&t.db, OTHER_PLAYER, "Cass").await;
        assert_eq!(cass.class.as_deref(), Some("Bard"));
        assert_eq!(all_characters(&t.db).await.len(), 3);

        // A file without a bio column and with no link leaves bio and portrait alone.
        let partial = format!("guild_id,owner_id,name,portrait_url\n{GUILD},{PLAYER},\"Brom \"\"the Bold\"\"\",\n");
        let report = import(&t.db, &partial).await;
        assert_eq!(counts(&report), (0, 0, 1, 0), "{report}");
        let brom = character(&t.db, PLAYER, "Brom \"the Bold\"").await;
        assert_eq!(brom.bio.as_deref(), Some("First line\nsecond line"));
        assert_eq!(brom.portrait_url.as_deref(), Some(BROM_LINK));
    }

    async fn imported_names_match_characters_players_registered_ignoring_case(t: TestDb) {
        let registered = t.db.create_character(&new_character(GUILD, PLAYER, "aria windrunner"), None).await.unwrap();
        let report = import(&t.db, &csv_export()).await;
        assert_eq!(counts(&report), (2, 1, 0, 0), "{report}");
        let aria = character(&t.db, PLAYER, "Aria Windrunner").await;
        assert_eq!(aria.id, registered.id);
        assert_eq!(aria.name, "aria windrunner");
        assert_eq!(aria.portrait_url.as_deref(), Some(ARIA_LINK));

        // And the other way round: an imported character blocks the same name in /register.
        let err = t.db.create_character(&new_character(GUILD, OTHER_PLAYER, " CASS "), None).await.expect_err("the imported Cass exists");
        assert!(matches!(err, DbError::CharacterExists { .. }), "{err:?}");
    }

    async fn duplicate_characters_in_one_file_keep_the_last_and_reject_the_earlier_ones(t: TestDb) {
        let text = format!(
            "guild_id,owner_id,name,class,portrait_url\n\
             {GUILD},{PLAYER},Aria,Ranger,{ARIA_LINK}\n\
             {GUILD},{PLAYER},Brom,Fighter,\n\
             {GUILD},{PLAYER},ARIA ,Warden,{NEW_LINK}\n\
             {GUILD},{PLAYER},aria,Bad,ftp://nope\n\
             {GUILD},{OTHER_PLAYER},Aria,Other,\n\
             {GUILD},{PLAYER},aria,Druid,{NEW_LINK}\n"
        );
        let report = import(&t.db, &text).await;
        assert_eq!(counts(&report), (3, 0, 0, 3), "{report}");
        assert_eq!(lines(&report), [2, 4, 5]);
        assert!(reason_on(&report, 2).starts_with("duplicate of line 7"), "{report}");
        assert!(reason_on(&report, 4).starts_with("duplicate of line 7"), "{report}");
        assert!(reason_on(&report, 5).starts_with("portrait_url must be"), "an invalid record is rejected for itself: {report}");

        let aria = character(&t.db, PLAYER, "aria").await;
        assert_eq!(aria.name, "aria", "the last record wins");
        assert_eq!(aria.class.as_deref(), Some("Druid"));
        assert_eq!(character(&t.db, OTHER_PLAYER, "Aria").await.class.as_deref(), Some("Other"));
        assert_eq!(all_characters(&t.db).await.len(), 3);
    }

    async fn a_migrated_portrait_is_kept_when_the_same_legacy_link_is_imported_again(t: TestDb) {
        import(&t.db, &csv_export()).await;
        let aria = character(&t.db, PLAYER, "Aria Windrunner").await;
        migrate(&t.db, &aria, "prod/portraits/2025/01/0123456789abcdef_aria.png", Some(ARIA_LINK), None).await;
        let migrated = character(&t.db, PLAYER, "Aria Windrunner").await;
        assert!(migrated.portrait_id.is_some());

        let report = import(&t.db, &csv_export()).await;
        assert_eq!(counts(&report), (0, 0, 3, 0), "{report}");
        assert_eq!(character(&t.db, PLAYER, "Aria Windrunner").await, migrated, "not even touched");

        // The same attachment with a refreshed signature, on the other CDN host, is the same
        // portrait; so is our own URL (an export of this bot's database).
        for link in [
            format!("{}?ex=6650&is=664f&hm=deadbeef", ARIA_LINK.replace("cdn.discordapp.com", "media.discordapp.net")),
            STORED_URL.to_owned(),
        ] {
            let text = format!("guild_id,owner_id,name,portrait_url\n{GUILD},{PLAYER},Aria Windrunner,{link}\n");
            let report = import(&t.db, &text).await;
            assert_eq!(counts(&report), (0, 0, 1, 0), "{report}");
        }
        assert_eq!(character(&t.db, PLAYER, "Aria Windrunner").await, migrated);
    }

    async fn a_changed_link_replaces_a_migrated_portrait_with_the_new_external_link(t: TestDb) {
        import(&t.db, &csv_export()).await;
        let aria = character(&t.db, PLAYER, "Aria Windrunner").await;
        migrate(&t.db, &aria, "prod/portraits/2025/01/0123456789abcdef_aria.png", Some(ARIA_LINK), None).await;

        let text = format!("guild_id,owner_id,name,portrait_url\n{GUILD},{PLAYER},Aria Windrunner,{NEW_LINK}\n");
        let report = import(&t.db, &text).await;
        assert_eq!(counts(&report), (0, 1, 0, 0), "{report}");
        assert_eq!(report.relinked, 1);
        assert!(report.to_string().contains("1 character had a portrait migrated from a different link"), "{report}");
        let aria = character(&t.db, PLAYER, "Aria Windrunner").await;
        assert_eq!((aria.portrait_id, aria.portrait_url.as_deref()), (None, Some(NEW_LINK)));
    }

    async fn a_portrait_a_player_uploaded_is_never_replaced_by_an_imported_link(t: TestDb) {
        import(&t.db, &csv_export()).await;
        let aria = character(&t.db, PLAYER, "Aria Windrunner").await;
        migrate(&t.db, &aria, "prod/portraits/2025/02/0123456789abcdef_aria.png", None, None).await;
        let uploaded = character(&t.db, PLAYER, "Aria Windrunner").await;

        let report = import(&t.db, &csv_export()).await;
        assert_eq!(counts(&report), (0, 0, 3, 0), "{report}");
        assert_eq!(report.kept_uploads, 1);
        assert!(report.to_string().contains("1 character kept the portrait a player uploaded"), "{report}");
        assert_eq!(character(&t.db, PLAYER, "Aria Windrunner").await, uploaded);
    }

    async fn characters_sharing_one_migrated_image_each_keep_it_on_reimport(t: TestDb) {
        // Aria's and Brom's links held the same bytes: one object, one portrait row, whose
        // legacy URL is Aria's. The migration run remembers Brom's link.
        import(&t.db, &csv_export()).await;
        let run = t.db.start_migration_run(false, "test").await.unwrap();
        let key = "prod/portraits/2025/01/0123456789abcdef_shared.png";
        let aria = character(&t.db, PLAYER, "Aria Windrunner").await;
        let brom = character(&t.db, PLAYER, "Brom \"the Bold\"").await;
        migrate(&t.db, &aria, key, Some(ARIA_LINK), Some(run.id)).await;
        migrate(&t.db, &brom, key, Some(BROM_LINK), Some(run.id)).await;
        let before = all_characters(&t.db).await;

        let report = import(&t.db, &csv_export()).await;
        assert_eq!(counts(&report), (0, 0, 3, 0), "{report}");
        assert_eq!(report.relinked, 0);
        assert_eq!(all_characters(&t.db).await, before);
    }

    async fn an_unparseable_file_is_an_error_and_changes_nothing(t: TestDb) {
        import(&t.db, &csv_export()).await;
        let before = all_characters(&t.db).await;
        let cases = [
            (format!("[{{\"guild_id\": {GUILD}, \"owner_id\": {PLAYER}, \"name\": \"New\"}},\n  {{\"oops\"}}]"),
             "the file is not valid JSON: expected `:` at line 2 column 10"),
            (format!("guild_id,owner_id,character\n{GUILD},{PLAYER},New\n"),
             "the CSV header has no column for portrait_url"),
            (format!("guild_id,owner_id,name,portrait_url\n{GUILD},{PLAYER},New,\n{GUILD},{PLAYER},\"Open,\n"),
             "the CSV cannot be read at line 3: a quoted value is never closed"),
            ("{\"characters\": []}".to_owned(), "a JSON import must be an array of characters"),
            ("  \n".to_owned(), "the file is empty"),
        ];
        for (text, message) in cases {
            let err = import_text(&t.db, &text, &ImportOptions::default()).await.expect_err("refused");
            assert!(err.to_string().starts_with(message), "{err}");
        }
        assert_eq!(all_characters(&t.db).await, before);

        let dir = tempfile::tempdir().unwrap();
        let latin1 = dir.path().join("latin1.csv");
        std::fs::write(&latin1, b"guild_id,owner_id,name,portrait_url\n1,2,Ana\xefs,\n").unwrap();
        let err = import_file(&t.db, &latin1, &ImportOptions::default()).await.unwrap_err();
        assert!(matches!(err, ImportError::NotUtf8 { line: 2 }), "{err}");
        let missing: PathBuf = dir.path().join("missing.json");
        let err = import_file(&t.db, &missing, &ImportOptions::default()).await.unwrap_err();
        assert!(err.to_string().starts_with(&format!("cannot read {}", missing.display())), "{err}");
        assert_eq!(all_characters(&t.db).await, before);
    }

    async fn a_dry_run_reports_what_would_happen_and_saves_nothing(t: TestDb) {
        import(&t.db, &json_export()).await;
        let before = all_characters(&t.db).await;
        let options = ImportOptions { dry_run: true, batch_size: 2, ..ImportOptions::default() };
        let report = import_text(&t.db, &csv_export(), &options).await.unwrap();
        assert!(report.dry_run);
        assert_eq!(counts(&report), (1, 1, 1, 0), "{report}");
        assert!(report.to_string().starts_with("Dry run: nothing was saved."), "{report}");
        assert_eq!(all_characters(&t.db).await, before);

        let report = import(&t.db, &csv_export()).await;
        assert_eq!(counts(&report), (1, 1, 1, 0), "the real import does what the dry run said");
    }

    async fn a_large_import_is_saved_in_batches_and_every_record_is_counted(t: TestDb) {
        let rows: Vec<ImportRow> = (0..120usize)
            .map(|i| ImportRow {
                line: i + 2,
                record: i + 2,
                guild_id: Some(GUILD.to_string()),
                owner_id: Some(if i % 2 == 0 { PLAYER } else { OTHER_PLAYER }.to_string()),
                // Every tenth name is empty: rejected, the batches go on.
                name: Some(if i % 10 == 9 { String::new() } else { format!("Hero {i:03}") }),
                class: Some(format!("Level {}", i % 5)),
                bio: None,
                portrait_url: Some(format!("https://cdn.discordapp.com/attachments/1/{i}/p.png")),
            })
            .collect();
        let options = ImportOptions { batch_size: 7, ..ImportOptions::default() };
        let report = import_records(&t.db, rows.clone(), &options).await.unwrap();
        assert_eq!(counts(&report), (108, 0, 0, 12), "{report}");
        assert_eq!(report.records, 120);
        assert_eq!(report.rejected[0], Rejected { line: 11, record: 11, reason: "name is empty".into() });
        assert_eq!(all_characters(&t.db).await.len(), 108);

        let report = import_records(&t.db, rows, &options).await.unwrap();
        assert_eq!(counts(&report), (0, 0, 108, 12), "{report}");
        assert_eq!(all_characters(&t.db).await.len(), 108);
    }

    async fn a_large_csv_file_is_streamed_in_batches_with_counts_and_the_first_rejections(t: TestDb) {
        // 1,000 records saved 7 at a time: every 50th has a bad owner id, blank lines in
        // between, and Hero 3 comes again as the last record, many batches later.
        let mut text = String::from("guild_id,owner_id,name,portrait_url\n");
        for i in 0..1000 {
            if i % 50 == 49 {
                text.push_str(&format!("{GUILD},x{i},Hero {i},\n"));
            } else {
                text.push_str(&format!(
                    "{GUILD},{PLAYER},Hero {i},https://cdn.discordapp.com/attachments/1/{i}/p.png\n"
                ));
            }
        }
        text.push_str(&format!("\n{GUILD},{PLAYER},hero 3,{NEW_LINK}\n"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.csv");
        std::fs::write(&path, &text).unwrap();
        let options = ImportOptions { batch_size: 7, ..ImportOptions::default() };

        let report = import_file(&t.db, &path, &options).await.unwrap();
        assert_eq!(report.records, 1001);
        assert_eq!((report.created, report.updated, report.unchanged), (980, 0, 0), "{report}");
        assert_eq!(report.rejected_count(), 21);
        assert_eq!(report.rejected.len(), SHOWN_REJECTIONS, "only the first are kept");
        assert_eq!(lines(&report)[..3], [5, 51, 101]);
        assert!(reason_on(&report, 5).starts_with("duplicate of line 1003"), "{report}");
        assert_eq!(reason_on(&report, 51), "owner_id `x49` is not a Discord id (a positive whole number)");
        let shown = report.to_string();
        assert!(shown.contains("rejected:         21"), "{shown}");
        assert!(shown.contains("  line 951: owner_id `x949`"), "{shown}");
        assert!(!shown.contains("line 1001"), "{shown}");
        assert!(shown.contains("… and 1 more"), "{shown}");

        assert_eq!(t.db.list_characters(GUILD, PLAYER).await.unwrap().len(), 980);
        let hero = character(&t.db, PLAYER, "Hero 3").await;
        assert_eq!(hero.portrait_url.as_deref(), Some(NEW_LINK), "the last record wins");

        let again = import_file(&t.db, &path, &options).await.unwrap();
        assert_eq!((again.created, again.updated, again.unchanged, again.rejected_count()), (0, 0, 980, 21), "{again}");
    }

    async fn a_reimport_in_batches_keeps_every_migrated_portrait(t: TestDb) {
        let link = |i: usize| format!("https://cdn.discordapp.com/attachments/11/{i}/hero.png");
        let export = |signature: &str| {
            let mut text = String::from("guild_id,owner_id,name,portrait_url\n");
            for i in 0..40 {
                text.push_str(&format!("{GUILD},{PLAYER},Hero {i},{}{signature}\n", link(i)));
            }
            text
        };
        let options = ImportOptions { batch_size: 7, ..ImportOptions::default() };
        let report = import_text(&t.db, &export(""), &options).await.unwrap();
        assert_eq!(counts(&report), (40, 0, 0, 0), "{report}");

        // Every second portrait migrated by a run, as the CDN migration does.
        let run = t.db.start_migration_run(false, "test").await.unwrap();
        for i in (0..40).step_by(2) {
            let hero = character(&t.db, PLAYER, &format!("Hero {i}")).await;
            let key = format!("prod/portraits/2025/01/{i:016x}_hero.png");
            migrate(&t.db, &hero, &key, Some(&link(i)), Some(run.id)).await;
        }
        let before = all_characters(&t.db).await;

        // The old bot's export again, every link signed anew: the same attachments.
        let report = import_text(&t.db, &export("?ex=6650&is=664f&hm=beef"), &options).await.unwrap();
        assert_eq!(counts(&report), (0, 0, 40, 0), "{report}");
        assert_eq!((report.relinked, report.kept_uploads), (0, 0), "{report}");
        let after = all_characters(&t.db).await;
        assert_eq!(after, before, "migrated portraits kept, nothing touched");
        assert_eq!(after.iter().filter(|c| c.portrait_id.is_some()).count(), 20);
    }
}
