//! `/privacy export` and `/privacy delete-my-data` through the simulated Discord, driving the
//! real bot on SQLite and PostgreSQL; and an upload refused by the block-list, counted on the
//! bot's `/metrics`.

use std::time::Duration;

use portrait_bot::moderation::blocklist;
use portrait_bot::portrait::inspect::InspectLimits;
use serde_json::Value;

use crate::bot::portrait_set;
use crate::on_both_databases;
use crate::support::app::{new_character, PLAYER};
use crate::support::bot::{content, embed_image, is_ephemeral, BotOptions, TestBot, ANSWER};
use crate::support::pictures::{jpeg, picture, png};
use testkit::discord::{self, permissions, slash_command, User, GUILD_ID, OTHER_USER, PLAYER_USER};

const OTHER_GUILD: u64 = 1_200_000_000_000_000_077;
const OTHER: u64 = OTHER_USER.id;

/// Registering without an image registers on the default portrait at once.
fn without_message_step() -> BotOptions {
    BotOptions {
        registration_message_step: false,
        ..BotOptions::default()
    }
}

/// `/register name portrait:<png of picture(seed)>` as `user`; the stored portrait's URL.
async fn register(bot: &TestBot, user: User, name: &str, image: &[u8]) -> String {
    let image = bot.attachment("portrait.png", image, "image/png");
    let reply = bot
        .command(
            &slash_command("register")
                .user(user)
                .option_str("name", name)
                .option_attachment("portrait", &image)
                .build(),
        )
        .await;
    embed_image(&reply)
        .expect("the card shows the portrait")
        .to_owned()
}

fn privacy(subcommand: &str, user: User) -> Value {
    slash_command("privacy")
        .subcommand(subcommand)
        .user(user)
        .build()
}

/// Checks the bot deferred privately before answering.
async fn assert_deferred_privately(bot: &TestBot, interaction: &Value) {
    let defer = bot
        .discord
        .wait_for_rest("the defer", discord::is_callback(interaction), ANSWER)
        .await;
    assert_eq!(defer.body()["type"], 5, "deferred: {:?}", defer.json);
    assert_eq!(defer.body()["data"]["flags"], 64, "privately");
}

/// The delete-my-data message as it stands: the bot's follow-up with the buttons.
fn confirmation(bot: &TestBot, text: &str) -> Value {
    bot.discord
        .messages()
        .into_iter()
        .find(|m| content(m).contains(text))
        .unwrap_or_else(|| panic!("no message saying {text:?}"))
}

/// The custom ids of the confirmation's buttons: (delete, cancel).
fn buttons(message: &Value) -> (String, String) {
    let row = &message["components"][0]["components"];
    let id = |n: usize| row[n]["custom_id"].as_str().expect("a button").to_owned();
    (id(0), id(1))
}

fn message_id(message: &Value) -> u64 {
    message["id"].as_str().unwrap().parse().unwrap()
}

/// Presses `custom_id` on `message` as `user`; the press and the bot's callback body, after
/// checking it came within Discord's 3 seconds.
async fn press(bot: &TestBot, message: &Value, custom_id: &str, user: User) -> (Value, Value) {
    let click = bot.discord.press_button(
        message_id(message),
        custom_id,
        user,
        GUILD_ID,
        permissions::MEMBER,
    );
    let sent = bot.discord.send_interaction(click.clone()).await;
    let callback = bot
        .discord
        .wait_for_rest("the press's answer", discord::is_callback(&click), ANSWER)
        .await;
    assert!(
        callback.at.duration_since(sent) < Duration::from_secs(3),
        "answered within Discord's 3 s"
    );
    (click, callback.body().clone())
}

/// The player presses Delete: acknowledged at once (a deferred update), then the message is
/// edited to say what went; returns that text.
async fn confirm(bot: &TestBot, message: &Value, delete: &str) -> Value {
    let (click, acknowledged) = press(bot, message, delete, PLAYER_USER).await;
    assert_eq!(acknowledged["type"], 6, "deferred update first");
    let edit = bot
        .discord
        .wait_for_rest("the result", discord::is_original_edit(&click), ANSWER)
        .await;
    edit.body()["content"].clone()
}

on_both_databases! {
    async fn delete_my_data_confirmed_after_a_restart_still_deletes(t: TestDb) {
        let mut bot = TestBot::start(t).await;
        register(&bot, PLAYER_USER, "Aria", &png(&picture(3))).await;
        bot.command(&privacy("delete-my-data", PLAYER_USER)).await;
        let message = confirmation(&bot, "This deletes your 1 character");

        bot.restart().await;

        let (delete, _) = buttons(&message);
        assert_eq!(
            confirm(&bot, &message, &delete).await,
            "Deleted your 1 character: **Aria**, and 1 stored image."
        );
        assert!(bot.character(PLAYER, "Aria").await.is_none());
        assert!(bot.bucket_keys().await.is_empty());
    }

    async fn export_sends_the_caller_privately_a_json_file_of_only_their_characters_here(t: TestDb) {
        let bot = TestBot::start_with(t, without_message_step()).await;
        let aria_url = register(&bot, PLAYER_USER, "Aria", &png(&picture(1))).await;
        bot.command(&slash_command("register").option_str("name", "Brom").build()).await;
        register(&bot, OTHER_USER, "Cass", &png(&picture(2))).await;
        bot.db.db.create_character(&new_character(OTHER_GUILD, PLAYER, "Dana"), None).await.unwrap();

        let export = privacy("export", PLAYER_USER);
        let reply = bot.command(&export).await;
        assert_deferred_privately(&bot, &export).await;
        assert!(is_ephemeral(&reply), "only the caller sees it: {reply}");
        assert!(content(&reply).contains("2 characters"), "{reply}");

        let sent = bot
            .discord
            .rest_calls()
            .into_iter()
            .find(|call| discord::is_followup(&export)(call) && !call.files.is_empty())
            .expect("the reply carries a file");
        let (filename, bytes) = &sent.files[0];
        assert_eq!(filename, &format!("portrait-bot-export-{GUILD_ID}.json"));
        let file: Value = serde_json::from_slice(bytes).expect("the file is JSON");
        assert_eq!(file["guild_id"], GUILD_ID.to_string());
        assert_eq!(file["player_id"], PLAYER.to_string());
        let characters = file["characters"].as_array().expect("a list");
        let names: Vec<&str> = characters.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Aria", "Brom"], "not Cass (another player), not Dana (another server)");
        assert_eq!(characters[0]["portrait_url"], aria_url);
        assert_eq!(characters[1]["portrait_url"], Value::Null, "Brom shows the default portrait");
    }

    async fn delete_my_data_asks_first_refuses_others_and_deletes_only_the_callers_data(t: TestDb) {
        let bot = TestBot::start(t).await;
        let shared = png(&picture(3));
        let aria_url = register(&bot, PLAYER_USER, "Aria", &shared).await;
        register(&bot, PLAYER_USER, "Brom", &png(&picture(4))).await;
        // The same bytes are stored once: Cass shows Aria's object.
        let cass_url = register(&bot, OTHER_USER, "Cass", &shared).await;
        assert_eq!(aria_url, cass_url);
        assert_eq!(bot.bucket_keys().await.len(), 2);

        // Cancel first: nothing goes.
        let ask = privacy("delete-my-data", PLAYER_USER);
        let question = bot.command(&ask).await;
        assert_deferred_privately(&bot, &ask).await;
        assert!(is_ephemeral(&question), "{question}");
        let text = content(&question);
        assert!(
            text.contains("2 characters") && text.contains("**Aria**, **Brom**")
                && text.contains("1 stored image"),
            "says exactly what goes: {text}"
        );
        let message = confirmation(&bot, "This deletes your 2 characters");
        let (_, cancel) = buttons(&message);
        let (_, answer) = press(&bot, &message, &cancel, PLAYER_USER).await;
        assert_eq!(answer["type"], 7, "the message is updated in place");
        assert_eq!(answer["data"]["content"], "Cancelled: nothing was deleted.");
        assert_eq!(answer["data"]["components"], serde_json::json!([]));
        assert!(bot.character(PLAYER, "Aria").await.is_some());

        // Ask again; someone else pressing Delete is refused privately and changes nothing.
        bot.discord.clear_rest_calls();
        let ask = privacy("delete-my-data", PLAYER_USER);
        bot.command(&ask).await;
        let message = bot
            .discord
            .messages()
            .into_iter()
            .find(|m| content(m).contains("This deletes your") && !m["components"].as_array().unwrap().is_empty())
            .expect("the new confirmation");
        let (delete, _) = buttons(&message);
        let (_, refused) = press(&bot, &message, &delete, OTHER_USER).await;
        assert_eq!(refused["type"], 4);
        assert_eq!(refused["data"]["flags"], 64, "privately");
        assert!(
            refused["data"]["content"].as_str().unwrap().contains(&format!("Only <@{PLAYER}>")),
            "{refused}"
        );
        assert!(bot.character(PLAYER, "Aria").await.is_some());
        assert!(bot.character(PLAYER, "Brom").await.is_some());
        assert_eq!(bot.bucket_keys().await.len(), 2);

        // The player confirms: acknowledged at once, then the message says what went.
        assert_eq!(
            confirm(&bot, &message, &delete).await,
            "Deleted your 2 characters: **Aria**, **Brom**, and 1 stored image."
        );
        let shown = bot.discord.message(message_id(&message)).unwrap();
        assert_eq!(shown["components"], serde_json::json!([]), "no buttons left");
        assert!(is_ephemeral(&shown));

        assert!(bot.character(PLAYER, "Aria").await.is_none());
        assert!(bot.character(PLAYER, "Brom").await.is_none());
        let cass = bot.character(OTHER, "Cass").await.expect("another player's character stays");
        assert_eq!(cass.portrait_url.as_deref(), Some(cass_url.as_str()));
        let keys = bot.bucket_keys().await;
        assert_eq!(keys.len(), 1, "Brom's object is gone, the shared one stays: {keys:?}");
        assert!(cass_url.ends_with(&keys[0]));
    }

    async fn an_upload_of_a_blocked_picture_is_refused_and_counted_on_metrics(t: TestDb) {
        let bot = TestBot::start_with(t, without_message_step()).await;
        let page = bot.metrics_page().await;
        let before = bot.metric("portrait_moderation_actions_total{action=\"blocked_upload\"}").await;
        assert!(page.contains("# HELP portrait_moderation_actions_total "), "{page}");
        assert_eq!(before, 0.0);
        let removed = picture(5);
        let hash = blocklist::perceptual_hash(&png(&removed), &InspectLimits::default()).unwrap();
        bot.db.db.add_blocked_image(GUILD_ID, &hash, Some("Aria"), Some("offensive"), Some(1)).await.unwrap();
        bot.command(&slash_command("register").option_str("name", "Aria").build()).await;

        let again = bot.attachment("again.jpg", &jpeg(&removed, 70), "image/jpeg");
        let reply = bot.command(&portrait_set("Aria", &again)).await;
        assert!(content(&reply).contains("This image was removed by this server's moderators."), "{reply}");
        assert!(is_ephemeral(&reply));
        assert_eq!(bot.character(PLAYER, "Aria").await.unwrap().portrait_url, None);
        assert!(bot.bucket_keys().await.is_empty(), "nothing stored");
        let blocked = bot.metric("portrait_moderation_actions_total{action=\"blocked_upload\"}").await;
        assert_eq!(blocked, 1.0);

        let unrelated = bot.attachment("new.png", &png(&picture(6)), "image/png");
        let reply = bot.command(&portrait_set("Aria", &unrelated)).await;
        assert!(embed_image(&reply).is_some(), "an unrelated picture is stored: {reply}");
        let blocked = bot.metric("portrait_moderation_actions_total{action=\"blocked_upload\"}").await;
        assert_eq!(blocked, 1.0);
    }
}
