//! The Discord bot end to end: the simulated Discord drives the real `run` code path, with
//! s3s-fs and SQLite (and PostgreSQL for the first four groups).

use std::time::Duration;

use portrait_bot::config::StorageSettings;
use serde_json::Value;

use crate::on_both_databases;
use crate::support::app::{settings, MAX_UPLOAD_BYTES, PLAYER};
use crate::support::bot::{
    bot_settings, content, embed_image, is_ephemeral, BotOptions, TestBot, ANSWER, DEFAULT_URL,
};
use crate::support::database::TestDb;
use crate::support::r2::R2Access;
use testkit::cdn::TestCdn;
use testkit::discord::{
    self, intents, message_create, permissions, slash_command, Attachment, GUILD_ID, OTHER_USER,
    PLAYER_USER,
};
use testkit::images::{self, contains};
use testkit::s3::TestS3;

fn register(name: &str) -> discord::CommandBuilder {
    slash_command("register").option_str("name", name)
}

pub(crate) fn portrait_set(character: &str, image: &Attachment) -> Value {
    slash_command("portrait")
        .subcommand("set")
        .option_str("character", character)
        .option_attachment("image", image)
        .build()
}

/// Registers `name` with a valid PNG and returns the stored portrait's URL.
async fn register_with_portrait(bot: &TestBot, name: &str) -> String {
    // A different image per name: the same bytes would be stored once, shared.
    let height = 20 + name.len() as u32;
    let image = bot.attachment("start.png", &images::png(30, height), "image/png");
    let reply = bot
        .command(&register(name).option_attachment("portrait", &image).build())
        .await;
    embed_image(&reply).expect("an embed").to_owned()
}

on_both_databases! {
    async fn register_with_an_attachment_defers_first_then_shows_the_stored_sanitized_portrait(t: TestDb) {
        let bot = TestBot::start(t).await;
        let photo = images::jpeg_with_gps(200, 150);
        let image = bot.attachment("IMG_0042.png", &photo, "image/png");
        let interaction = register("Aria Windrunner")
            .option_str("class", "Ranger")
            .option_attachment("portrait", &image)
            .build();

        let reply = bot.command(&interaction).await;

        let defer = bot.discord.wait_for_rest("the defer", discord::is_callback(&interaction), ANSWER).await;
        assert_eq!(defer.body()["type"], 5, "deferred");
        assert_eq!(defer.body()["data"]["flags"], 64, "privately");
        let download = bot.cdn.requests().into_iter().find(|r| r.path.ends_with("IMG_0042.png")).expect("downloaded");
        assert!(defer.at <= download.at, "the defer callback arrives before the CDN download starts");

        let character = bot.character(PLAYER, "Aria Windrunner").await.expect("the character row exists");
        assert_eq!(character.class.as_deref(), Some("Ranger"));
        let url = character.portrait_url.clone().expect("a stored portrait");
        assert_eq!(embed_image(&reply), Some(url.as_str()), "the embed shows the stored object");
        assert!(content(&reply).contains("Aria Windrunner"), "{reply}");
        let keys = bot.bucket_keys().await;
        assert_eq!(keys.len(), 1);
        assert!(keys[0].ends_with("_aria-windrunner.jpg"), "{keys:?}");
        assert_eq!(bot.s3.store().public_url(&keys[0]), url);
        let stored = bot.s3.store().get(&keys[0]).await.unwrap().bytes;
        assert!(!contains(&stored, &images::PLANTED_LATITUDE), "GPS removed");
        assert!(!contains(&stored, images::PLANTED_MAKE.as_bytes()), "camera removed");
        assert_eq!(images::jpeg_scan(&stored), images::jpeg_scan(&photo));
    }

    async fn register_without_an_attachment_takes_the_players_next_image_and_ignores_others(t: TestDb) {
        let bot = TestBot::start(t).await;
        let interaction = register("Brom").build();
        let prompt = bot.command(&interaction).await;
        assert!(content(&prompt).contains("post the portrait image"), "{prompt}");
        assert!(is_ephemeral(&prompt));

        let theirs = bot.attachment("theirs.png", &images::png(11, 11), "image/png");
        bot.discord.send_message(message_create(discord::CHANNEL_ID, Some(GUILD_ID), OTHER_USER, "", &[theirs])).await;
        bot.discord.send_message(message_create(discord::CHANNEL_ID, Some(GUILD_ID), PLAYER_USER, "one moment", &[])).await;
        let mine_png = images::png(12, 12);
        let mine = bot.attachment("mine.png", &mine_png, "image/png");
        bot.discord.send_message(message_create(discord::CHANNEL_ID, Some(GUILD_ID), PLAYER_USER, "here", &[mine])).await;

        let done = bot.followup(&interaction, 1).await;
        let character = bot.character(PLAYER, "Brom").await.expect("registered");
        let url = character.portrait_url.expect("stored from the message");
        assert_eq!(embed_image(&done), Some(url.as_str()));
        let keys = bot.bucket_keys().await;
        assert_eq!(keys.len(), 1, "only the player's image is stored: {keys:?}");
        assert_eq!(bot.s3.store().get(&keys[0]).await.unwrap().bytes.as_ref(), mine_png.as_slice());
        assert!(!bot.cdn.requests().iter().any(|r| r.path.ends_with("theirs.png")), "another user's image is never downloaded");
    }

    async fn invalid_uploads_get_a_private_reply_naming_the_problem_and_change_nothing(t: TestDb) {
        let bot = TestBot::start(t).await;
        let url = register_with_portrait(&bot, "Cass").await;
        let keys = bot.bucket_keys().await;

        let svg = bot.attachment("cute.png", images::SVG.as_bytes(), "image/png");
        let reply = bot.command(&portrait_set("Cass", &svg)).await;
        assert!(content(&reply).contains("SVG"), "{reply}");
        assert!(is_ephemeral(&reply));

        let png = images::png(40, 40);
        let truncated = bot.attachment("cut.png", &png[..png.len() / 2], "image/png");
        let reply = bot.command(&portrait_set("Cass", &truncated)).await;
        assert!(content(&reply).contains("damaged or incomplete"), "{reply}");

        let huge = Attachment::new("huge.png", &bot.cdn.host("/attachments/9/9/huge.png", vec![0u8; 16], "image/png"), MAX_UPLOAD_BYTES + 1);
        let reply = bot.command(&portrait_set("Cass", &huge)).await;
        assert!(content(&reply).contains("2.0 MiB"), "{reply}");

        assert_eq!(bot.bucket_keys().await, keys, "nothing stored");
        assert_eq!(bot.character(PLAYER, "Cass").await.unwrap().portrait_url, Some(url), "the existing portrait stays");
    }

    async fn with_storage_down_a_new_character_gets_the_default_and_is_told_why_then_set_works_again(t: TestDb) {
        let bot = TestBot::start(t).await;
        bot.s3.fail("HeadObject", testkit::s3::S3ErrorCode::InternalError, None);

        let image = bot.attachment("dara.png", &images::png(21, 21), "image/png");
        let reply = bot.command(&register("Dara").option_attachment("portrait", &image).build()).await;
        assert!(content(&reply).contains("could not be saved"), "{reply}");
        assert!(content(&reply).contains("storage"), "says why: {reply}");
        assert_eq!(embed_image(&reply), Some(DEFAULT_URL));
        let dara = bot.character(PLAYER, "Dara").await.expect("the character is kept");
        assert_eq!(dara.portrait_url, None);

        bot.s3.clear_faults();
        let image = bot.attachment("dara2.png", &images::png(22, 22), "image/png");
        let reply = bot.command(&portrait_set("Dara", &image)).await;
        let url = bot.character(PLAYER, "Dara").await.unwrap().portrait_url.expect("stored now");
        assert_eq!(embed_image(&reply), Some(url.as_str()));
        assert_eq!(bot.db.db.stats().await.unwrap().fallbacks, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_falls_back_to_the_default_when_no_image_arrives_in_time() {
    let options = BotOptions {
        registration_timeout: Duration::from_secs(1),
        ..BotOptions::default()
    };
    let bot = TestBot::start_with(TestDb::sqlite().await, options).await;
    let interaction = register("Eryn").build();
    bot.command(&interaction).await;
    let done = bot.followup(&interaction, 1).await;
    assert!(content(&done).contains("No image arrived"), "{done}");
    assert_eq!(embed_image(&done), Some(DEFAULT_URL));
    assert_eq!(
        bot.character(PLAYER, "Eryn").await.unwrap().portrait_url,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_attachment_link_asks_the_player_to_upload_again() {
    let bot = TestBot::start(TestDb::sqlite().await).await;
    let url = bot.cdn.expire("/attachments/1/2/old.png");
    let image = Attachment::new("old.png", &url, 5_000);
    let reply = bot
        .command(
            &register("Fen")
                .option_attachment("portrait", &image)
                .build(),
        )
        .await;
    assert!(
        content(&reply).contains("upload the image again"),
        "{reply}"
    );
    assert!(bot.bucket_keys().await.is_empty(), "no error page stored");
    assert!(
        bot.character(PLAYER, "Fen").await.is_none(),
        "nothing half-registered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_stats_is_refused_without_manage_server_even_past_the_client_gate() {
    let admin_by_id = discord::User {
        id: 800_000_000_000_000_077,
        name: "listed-admin",
    };
    let options = BotOptions {
        admin_user_ids: vec![admin_by_id.id],
        ..BotOptions::default()
    };
    let bot = TestBot::start_with(TestDb::sqlite().await, options).await;
    register_with_portrait(&bot, "Gale").await;
    let stats = || slash_command("admin").subcommand("stats");

    let refused = bot
        .command(&stats().permissions(permissions::MEMBER).build())
        .await;
    assert!(
        content(&refused).contains("Only server admins"),
        "{refused}"
    );
    assert!(
        refused["embeds"].as_array().is_none_or(|e| e.is_empty()),
        "no stats leak: {refused}"
    );

    let manager = bot
        .command(
            &stats()
                .permissions(permissions::MEMBER | permissions::MANAGE_GUILD)
                .build(),
        )
        .await;
    let fields = manager["embeds"][0]["fields"].to_string();
    assert!(
        fields.contains("Characters") && fields.contains("\"1\""),
        "{manager}"
    );
    assert!(fields.contains("10 GB free tier"), "{manager}");

    let listed = bot
        .command(
            &stats()
                .user(admin_by_id)
                .permissions(permissions::MEMBER)
                .build(),
        )
        .await;
    assert!(
        listed["embeds"][0]["fields"]
            .to_string()
            .contains("Stored portraits"),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registration_put_carries_every_command_with_options_descriptions_and_permissions() {
    let bot = TestBot::start(TestDb::sqlite().await).await;
    let commands = bot.discord.registered_commands(Some(GUILD_ID));
    let by_name = |name: &str| -> Value {
        commands
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no /{name} in {commands:#?}"))
    };
    let names: Vec<&str> = commands.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    let privacy: Vec<Value> = by_name("privacy")["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].clone())
        .collect();
    assert_eq!(privacy, ["export", "delete-my-data"]);

    fn walk(command: &Value, path: &str) {
        let description = command["description"].as_str().unwrap_or_default();
        assert!(!description.is_empty(), "{path} has no description");
        for option in command["options"].as_array().into_iter().flatten() {
            walk(
                option,
                &format!("{path} {}", option["name"].as_str().unwrap()),
            );
        }
    }
    for command in &commands {
        walk(command, command["name"].as_str().unwrap());
    }

    let register = by_name("register");
    let options = register["options"].as_array().unwrap();
    let option = |name: &str| options.iter().find(|o| o["name"] == name).unwrap().clone();
    assert_eq!(
        option("name")["required"],
        false,
        "without a name /register opens the form"
    );
    assert_eq!(option("portrait")["type"], 11, "an attachment option");
    assert_eq!(option("portrait")["required"], false);

    let portrait = by_name("portrait");
    let subcommands: Vec<&str> = portrait["options"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(subcommands, ["set", "show", "reset"]);
    let set = &portrait["options"][0]["options"];
    assert_eq!(set[0]["autocomplete"], true, "character names autocomplete");
    assert_eq!(set[1]["type"], 11);

    let character = by_name("character");
    let subcommands: Vec<&str> = character["options"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(subcommands, ["list", "show", "edit", "delete", "gallery"]);

    let admin = by_name("admin");
    assert_eq!(admin["default_member_permissions"], "32", "Manage Server");
    assert_eq!(admin["options"][0]["name"], "stats");
    assert!(
        register["default_member_permissions"].is_null(),
        "players' commands are open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn character_names_autocomplete_and_delete_asks_for_confirmation() {
    let bot = TestBot::start(TestDb::sqlite().await).await;
    register_with_portrait(&bot, "Hollis").await;
    register_with_portrait(&bot, "Holly").await;
    let keys_before = bot.bucket_keys().await;
    assert_eq!(keys_before.len(), 2);

    let suggest = discord::autocomplete("portrait")
        .subcommand("show")
        .focused("character", "holl")
        .build();
    bot.discord.send_interaction(suggest.clone()).await;
    let answer = bot
        .discord
        .wait_for_rest("autocomplete", discord::is_callback(&suggest), ANSWER)
        .await;
    assert_eq!(answer.body()["type"], 8);
    let choices: Vec<&str> = answer.body()["data"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(choices, ["Hollis", "Holly"]);

    let delete = slash_command("character")
        .subcommand("delete")
        .option_str("name", "Holly")
        .build();
    bot.discord.send_interaction(delete.clone()).await;
    let ask = bot
        .discord
        .wait_for_rest("the confirmation", discord::is_callback(&delete), ANSWER)
        .await;
    assert!(ask.body()["data"]["content"]
        .as_str()
        .unwrap()
        .contains("Delete **Holly**"));
    let confirm_id = ask.body()["data"]["components"][0]["components"][0]["custom_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let message_id = bot
        .discord
        .original_response(&delete)
        .expect("the question is shown")["id"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let click = discord::button_click(
        &confirm_id,
        PLAYER_USER,
        GUILD_ID,
        discord::CHANNEL_ID,
        message_id,
    );
    bot.discord.send_interaction(click.clone()).await;
    let done = bot
        .discord
        .wait_for_rest("the update", discord::is_callback(&click), ANSWER)
        .await;
    assert_eq!(done.body()["type"], 7);
    assert!(done.body()["data"]["content"]
        .as_str()
        .unwrap()
        .contains("was deleted"));

    assert!(bot.character(PLAYER, "Holly").await.is_none());
    assert!(bot.character(PLAYER, "Hollis").await.is_some());
    assert_eq!(
        bot.bucket_keys().await.len(),
        1,
        "Holly's portrait object is deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_player_limits_refuse_extra_characters_and_uploads_with_clear_messages() {
    let options = BotOptions {
        max_characters_per_player: 1,
        uploads_per_10_minutes: 2,
        ..BotOptions::default()
    };
    let bot = TestBot::start_with(TestDb::sqlite().await, options).await;
    register_with_portrait(&bot, "Ivo").await;

    let second = bot.command(&register("Jun").build()).await;
    assert!(content(&second).contains("the most allowed"), "{second}");
    assert!(bot.character(PLAYER, "Jun").await.is_none());

    let image = bot.attachment("ivo2.png", &images::png(23, 23), "image/png");
    bot.command(&portrait_set("Ivo", &image)).await;
    let image = bot.attachment("ivo3.png", &images::png(24, 24), "image/png");
    let third = bot.command(&portrait_set("Ivo", &image)).await;
    assert!(
        content(&third).contains("2 portrait uploads per 10 minutes"),
        "{third}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_content_intent_stops_the_bot_with_instructions() {
    let db = TestDb::sqlite().await;
    let discord = discord::TestDiscord::start().await;
    discord.disallow_intents(intents::MESSAGE_CONTENT);
    let s3 = TestS3::start().await;
    let cdn = TestCdn::start().await;
    let result = tokio::time::timeout(
        ANSWER,
        portrait_bot::cli::run_bot(
            settings(&db, StorageSettings::R2(s3.settings()), &cdn),
            bot_settings(&discord, &BotOptions::default()),
            std::future::pending(),
        ),
    )
    .await
    .expect("the bot gives up instead of hanging");
    let message = format!("{:#}", result.expect_err("refused"));
    assert!(message.contains("Message Content Intent"), "{message}");
    assert!(message.contains("Developer Portal"), "{message}");
    assert!(
        message.contains("REGISTRATION_MESSAGE_STEP=false"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_message_step_the_bot_asks_for_no_privileged_intent() {
    let options = BotOptions {
        registration_message_step: false,
        ..BotOptions::default()
    };
    let bot = TestBot::start_with(TestDb::sqlite().await, options).await;
    let identify = &bot.discord.identifies()[0];
    let requested = identify["intents"].as_u64().unwrap();
    assert_eq!(requested & intents::MESSAGE_CONTENT, 0, "{identify}");
    let reply = bot.command(&register("Kai").build()).await;
    assert!(content(&reply).contains("default portrait"), "{reply}");
    assert_eq!(embed_image(&reply), Some(DEFAULT_URL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_local_folder_the_portrait_is_attached_because_discord_cannot_fetch_localhost() {
    let options = BotOptions {
        local_storage: true,
        ..BotOptions::default()
    };
    let bot = TestBot::start_with(TestDb::sqlite().await, options).await;
    let png = images::png(27, 27);
    let image = bot.attachment("nox.png", &png, "image/png");
    let interaction = register("Nox")
        .option_attachment("portrait", &image)
        .build();
    bot.discord.send_interaction(interaction.clone()).await;
    let reply = bot
        .discord
        .wait_for_rest("the reply", discord::is_followup(&interaction), ANSWER)
        .await;
    assert_eq!(
        embed_image(reply.body()),
        Some("attachment://portrait.png"),
        "{:?}",
        reply.json
    );
    assert_eq!(reply.files.len(), 1);
    assert_eq!(reply.files[0].0, "portrait.png");
    assert_eq!(reply.files[0].1, png, "the stored image itself is attached");
    let url = bot
        .character(PLAYER, "Nox")
        .await
        .unwrap()
        .portrait_url
        .unwrap();
    assert!(
        url.starts_with("http://localhost:9091/objects/dev/portraits/"),
        "{url}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_command_is_admin_only_and_edits_its_progress_at_most_every_five_seconds() {
    let bot = TestBot::start(TestDb::sqlite().await).await;
    let db = &bot.db.db;
    for i in 0..24u32 {
        let character = db
            .create_character(
                &crate::support::app::new_character(
                    GUILD_ID,
                    20_000 + u64::from(i),
                    &format!("Old {i}"),
                ),
                None,
            )
            .await
            .unwrap();
        // Slow downloads make the run last several progress intervals.
        let url = bot.cdn.host_slowly(
            &format!("/attachments/8/{i}/old.png"),
            images::png(10 + i, 10),
            "image/png",
            Duration::from_millis(1_200),
        );
        db.set_character_external_portrait(character.id, &url)
            .await
            .unwrap();
    }
    let migrate = || slash_command("admin").subcommand("migrate-portraits");

    let refused = bot
        .command(&migrate().permissions(permissions::MEMBER).build())
        .await;
    assert!(
        content(&refused).contains("Only server admins"),
        "{refused}"
    );
    assert!(
        db.migration_runs(1).await.unwrap().is_empty(),
        "no run was started"
    );

    let interaction = migrate()
        .permissions(permissions::MEMBER | permissions::MANAGE_GUILD)
        .build();
    let started = bot.command(&interaction).await;
    assert!(
        content(&started).contains("progress is posted in this channel"),
        "{started}"
    );
    bot.discord
        .wait_for_rest(
            "the progress message",
            |c| {
                c.method == "POST"
                    && c.path
                        .ends_with(&format!("/channels/{}/messages", discord::CHANNEL_ID))
            },
            ANSWER,
        )
        .await;
    let finished = bot
        .discord
        .wait_for_rest(
            "the summary",
            |c| {
                c.method == "PATCH"
                    && c.json.as_ref().is_some_and(|b| {
                        b["content"]
                            .as_str()
                            .unwrap_or_default()
                            .contains("portraits migrated")
                    })
            },
            Duration::from_secs(60),
        )
        .await;
    assert!(
        content(finished.body()).contains("24 of 24 portraits migrated"),
        "{:?}",
        finished.json
    );

    let edits: Vec<_> = bot
        .discord
        .rest_calls()
        .into_iter()
        .filter(|c| c.method == "PATCH" && c.path.contains("/channels/"))
        .collect();
    assert!(
        edits.len() >= 2,
        "progress was shown before the summary: {} edits",
        edits.len()
    );
    for pair in edits.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(4_950),
            "two edits {gap:?} apart"
        );
    }
    let runs = db.migration_runs(1).await.unwrap();
    assert_eq!(
        (runs[0].migrated, runs[0].status.as_str()),
        (24, "completed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bot_processes_with_different_shard_ranges_share_the_gateway_and_one_postgres_database()
{
    let Some(db) = TestDb::postgres("two_bot_processes_with_different_shard_ranges").await else {
        return;
    };
    let discord = discord::TestDiscord::start().await;
    let guild_a = discord::guild_on_shard(0, 2, 1);
    let guild_b = discord::guild_on_shard(1, 2, 1);
    discord.add_guild(guild_a);
    discord.add_guild(guild_b);
    let s3 = TestS3::start().await;
    let cdn = TestCdn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut processes = Vec::new();
    for shard in ["0", "1"] {
        let process = crate::cli::portrait_bot(dir.path())
            .env("DATABASE_URL", &db.url)
            .env("DISCORD_TOKEN", discord::BOT_TOKEN)
            .env("DISCORD_API_BASE", discord.api_base())
            .env("DEV_GUILD_ID", guild_a.to_string())
            .env("SHARD_COUNT", "2")
            .env("SHARD_IDS", shard)
            .env("R2_ENDPOINT", s3.endpoint())
            .env("R2_ACCESS_KEY_ID", testkit::s3::ACCESS_KEY)
            .env("R2_SECRET_ACCESS_KEY", testkit::s3::SECRET_KEY)
            .env("R2_BUCKET_NAME", testkit::s3::BUCKET)
            .env("R2_PUBLIC_URL", testkit::s3::PUBLIC_URL)
            .env("CDN_ALLOWED_ORIGINS", cdn.origin())
            .env(
                "HTTP_ADDR",
                format!("127.0.0.1:{}", crate::cli::free_port()),
            )
            .env("RUST_LOG", "info")
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(format!("shard-{shard}.log"))).unwrap())
            .spawn()
            .expect("portrait-bot run starts");
        processes.push(KillOnDrop(process));
    }
    discord.wait_ready(2).await;
    let mut shards: Vec<String> = discord
        .identifies()
        .iter()
        .map(|i| i["shard"].to_string())
        .collect();
    shards.sort();
    assert_eq!(
        shards,
        ["[0,2]", "[1,2]"],
        "each process identifies as its own shard"
    );
    discord
        .wait_for_rest("command registration", |c| c.method == "PUT", ANSWER)
        .await;
    // Both processes are READY; give a wrongly registering second one time to show itself.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let registrations = discord
        .rest_calls()
        .iter()
        .filter(|c| c.method == "PUT" && c.path.ends_with("/commands"))
        .count();
    assert_eq!(
        registrations,
        1,
        "only shard 0's process registers commands: {}\n{}",
        std::fs::read_to_string(dir.path().join("shard-0.log")).unwrap_or_default(),
        std::fs::read_to_string(dir.path().join("shard-1.log")).unwrap_or_default()
    );

    for (guild, name) in [(guild_a, "Ash"), (guild_b, "Birch")] {
        // Different images: the same bytes would be stored once, shared.
        let png = images::png(30, 31 + name.len() as u32);
        let url = cdn.host(
            &format!("/attachments/{guild}/1/{name}.png"),
            png,
            "image/png",
        );
        let image = Attachment::new("p.png", &url, 100);
        let interaction = register(name)
            .guild(guild)
            .option_attachment("portrait", &image)
            .build();
        discord.send_interaction(interaction.clone()).await;
        let reply = discord
            .wait_for_rest("the reply", discord::is_followup(&interaction), ANSWER)
            .await;
        let character = db
            .db
            .find_character(guild, PLAYER, name)
            .await
            .unwrap()
            .expect("stored in the shared database");
        assert_eq!(embed_image(reply.body()), character.portrait_url.as_deref());
    }
    assert_eq!(s3.keys().await.len(), 2, "both uploads stored");
}

/// A child process stopped when the test ends, pass or fail.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
