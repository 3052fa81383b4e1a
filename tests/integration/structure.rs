//! One rule in one place: the per-player cap in the database, and the CLI's `upload` held to
//! the rules and the refusal policy of `/register`, with exit statuses scripts can act on.

use std::path::Path;
use std::process::{Command, Output};

use portrait_bot::character::{CharacterClass, CharacterName};
use portrait_bot::db::{Character, Db, DbError};

use crate::cli::{portrait_bot, walk};
use crate::on_both_databases;
use crate::support::app::{new_character, PLAYER as PLAYER_ID};
use crate::support::bot::{content, is_ephemeral, TestBot};
use crate::support::database::TestDb;
use testkit::discord::slash_command;
use testkit::images;
use testkit::s3;

const GUILD: u64 = 1_300_000_000_000_000_001;
const PLAYER: u64 = 700_000_000_000_000_002;
const OTHER_PLAYER: u64 = 700_000_000_000_000_003;

on_both_databases! {
    async fn the_per_player_cap_refuses_one_more_character_of_that_player_in_that_server(t: TestDb) {
        for name in ["Aria", "Brom"] {
            t.db.create_character(&new_character(GUILD, PLAYER, name), Some(2)).await.unwrap();
        }
        let err = t.db.create_character(&new_character(GUILD, PLAYER, "Cass"), Some(2)).await
            .expect_err("a third character is one too many");
        assert!(matches!(err, DbError::TooManyCharacters { existing: 2, max: 2 }), "{err:?}");
        // Other players, and the same player in another server, have their own count.
        t.db.create_character(&new_character(GUILD, OTHER_PLAYER, "Cass"), Some(2)).await.unwrap();
        t.db.create_character(&new_character(GUILD + 1, PLAYER, "Cass"), Some(2)).await.unwrap();
        // Without a cap (an operator's upload, an import) nothing is counted.
        t.db.create_character(&new_character(GUILD, PLAYER, "Cass"), None).await.unwrap();
        assert_eq!(t.db.count_characters(GUILD, PLAYER).await.unwrap(), 3);
    }

    async fn under_the_cap_an_existing_name_is_refused_as_already_existing(t: TestDb) {
        t.db.create_character(&new_character(GUILD, PLAYER, "Aria"), Some(5)).await.unwrap();
        let err = t.db.create_character(&new_character(GUILD, PLAYER, " ARIA "), Some(5)).await
            .expect_err("the name exists");
        assert!(matches!(err, DbError::CharacterExists { ref name } if name == "ARIA"), "{err:?}");
    }

    async fn concurrent_registrations_never_take_a_player_past_the_cap(t: TestDb) {
        let attempts = (0..6).map(|i| {
            let db = t.db.clone();
            tokio::spawn(async move {
                db.create_character(&new_character(GUILD, PLAYER, &format!("Hero {i}")), Some(2)).await
            })
        });
        let results = futures::future::join_all(attempts).await;
        let created = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
        let refused = results.iter()
            .filter(|r| matches!(r, Ok(Err(DbError::TooManyCharacters { max: 2, .. }))))
            .count();
        assert_eq!((created, refused), (2, 4), "{results:?}");
        assert_eq!(t.db.count_characters(GUILD, PLAYER).await.unwrap(), 2);
    }
}

fn run(command: &mut Command) -> (Output, String, String) {
    let output = command.output().expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

fn upload(dir: &Path, file: &str, character: &str) -> Command {
    let mut command = portrait_bot(dir);
    command.args(["upload", file, "--guild", &GUILD.to_string(), "--owner"]);
    command.args([&PLAYER.to_string(), "--character", character]);
    command
}

/// The default SQLite database of a run in `dir`, opened (and created) the way the binary
/// opens it.
async fn database_in(dir: &Path) -> Db {
    let url = format!("sqlite://{}", dir.join("data/portraits.db").display());
    Db::connect(&url, &url).await.expect("the database opens")
}

async fn characters_in(dir: &Path) -> Vec<Character> {
    let db = database_in(dir).await;
    let characters = db.list_characters(GUILD, PLAYER).await.expect("listed");
    db.close().await;
    characters
}

#[tokio::test]
async fn upload_refuses_a_name_the_bot_refuses_with_the_bots_message_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    database_in(dir.path()).await.close().await;
    std::fs::write(dir.path().join("aria.png"), images::png(40, 40)).unwrap();
    let long = "A".repeat(200);
    for name in [long.as_str(), "Ar\u{7}ia", "Ar\nia"] {
        let players_message = CharacterName::parse(name).unwrap_err().to_string();
        let (output, stdout, stderr) = run(&mut upload(dir.path(), "aria.png", name));
        assert_eq!(output.status.code(), Some(4), "{stdout}\n{stderr}");
        assert_eq!(
            stderr.trim(),
            format!("refused: {players_message}"),
            "{name:?}"
        );
    }
    assert_eq!(
        characters_in(dir.path()).await,
        Vec::new(),
        "no character created"
    );
    assert!(
        walk(&dir.path().join("data/objects")).is_empty(),
        "nothing stored"
    );
}

#[tokio::test]
async fn upload_of_a_refused_file_exits_4_and_leaves_no_character_and_no_object() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sneaky.png"), images::SVG).unwrap();
    let (output, stdout, stderr) = run(&mut upload(dir.path(), "sneaky.png", "Sneak"));
    assert_eq!(output.status.code(), Some(4), "{stdout}\n{stderr}");
    assert!(
        stderr.starts_with("refused:") && stderr.contains("SVG"),
        "{stderr}"
    );
    assert!(!stdout.contains("created character"), "{stdout}");
    assert_eq!(
        characters_in(dir.path()).await,
        Vec::new(),
        "no character left behind"
    );
    assert!(
        walk(&dir.path().join("data/objects")).is_empty(),
        "nothing stored"
    );

    // A refused file for an existing character leaves that character as it was.
    std::fs::write(dir.path().join("sneak.png"), images::png(30, 30)).unwrap();
    let (output, stdout, stderr) = run(&mut upload(dir.path(), "sneak.png", "Sneak"));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let before = characters_in(dir.path()).await;
    let (output, _, _) = run(&mut upload(dir.path(), "sneaky.png", "Sneak"));
    assert_eq!(output.status.code(), Some(4));
    assert_eq!(characters_in(dir.path()).await, before);
}

#[test]
fn partial_r2_settings_exit_3_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("aria.png"), images::png(40, 40)).unwrap();
    let (output, stdout, stderr) = run(upload(dir.path(), "aria.png", "Aria")
        .env("R2_BUCKET_NAME", "portraits")
        .env("R2_SECRET_ACCESS_KEY", "shh-very-secret"));
    assert_eq!(output.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("R2_ACCESS_KEY_ID"), "{stderr}");
}

#[tokio::test]
async fn upload_with_storage_unreachable_exits_5_a_fault_not_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("aria.png"), images::png(40, 40)).unwrap();
    let endpoint = s3::unreachable_endpoint().await;
    let mut command = upload(dir.path(), "aria.png", "Aria");
    command
        .env("R2_ENDPOINT", &endpoint)
        .env("R2_ACCESS_KEY_ID", s3::ACCESS_KEY)
        .env("R2_SECRET_ACCESS_KEY", s3::SECRET_KEY)
        .env("R2_BUCKET_NAME", s3::BUCKET)
        .env("R2_PUBLIC_URL", s3::PUBLIC_URL);
    let (output, stdout, stderr) = tokio::task::spawn_blocking(move || run(&mut command))
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(5), "{stdout}\n{stderr}");
    assert!(
        stderr.starts_with("error: the portrait was not stored") && stderr.contains("R2_ENDPOINT"),
        "{stderr}"
    );
    assert!(!stderr.contains(s3::SECRET_KEY), "{stderr}");
}

#[test]
fn help_lists_the_exit_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let (output, stdout, _) = run(portrait_bot(dir.path()).arg("--help"));
    assert!(output.status.success());
    for line in [
        "Exit status:",
        "3  configuration error",
        "4  input refused",
        "5  storage, network or database fault",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
    let (usage, _, _) = run(portrait_bot(dir.path()).args(["upload", "--guild", "0"]));
    assert_eq!(usage.status.code(), Some(2), "usage errors are clap's 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_refuses_a_name_or_class_the_domain_refuses_with_its_message_and_creates_nothing()
{
    let bot = TestBot::start(TestDb::sqlite().await).await;
    let bad_name = slash_command("register").option_str("name", "Ar\u{7}ia");
    let bad_class = slash_command("register")
        .option_str("name", "Aria")
        .option_str("class", "Ran\nger");
    for (interaction, players_message) in [
        (bad_name, CharacterName::parse("Ar\u{7}ia").unwrap_err()),
        (bad_class, CharacterClass::parse("Ran\nger").unwrap_err()),
    ] {
        let reply = bot.command(&interaction.build()).await;
        assert_eq!(content(&reply), players_message.to_string(), "{reply}");
        assert!(is_ephemeral(&reply), "{reply}");
    }
    assert!(bot.character(PLAYER_ID, "Aria").await.is_none());
    assert!(bot.character(PLAYER_ID, "Ar\u{7}ia").await.is_none());
}
