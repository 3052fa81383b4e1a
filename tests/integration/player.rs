//! What players do in a few taps, end to end through the simulated Discord: the registration
//! form with its upload field, editing and renaming in a form, the portrait upload form, and
//! the gallery's buttons.

use serde_json::{json, Value};

use crate::on_both_databases;
use crate::support::app::PLAYER;
use crate::support::bot::{
    content, embed_image, is_ephemeral, BotOptions, TestBot, ANSWER, DEFAULT_URL,
};
use crate::support::database::TestDb;
use crate::support::r2::R2Access;
use testkit::discord::{
    self, button_click, slash_command, Attachment, User, CHANNEL_ID, GUILD_ID, OTHER_USER,
    PLAYER_USER,
};
use testkit::images::{self, contains};

/// Sends a command that should open a form; returns the form (the type 9 callback's `data`)
/// after checking it was the first and only response.
async fn open_form(bot: &TestBot, interaction: &Value) -> Value {
    bot.discord.send_interaction(interaction.clone()).await;
    let callback = bot
        .discord
        .wait_for_rest("the form", discord::is_callback(interaction), ANSWER)
        .await;
    assert_eq!(callback.body()["type"], 9, "a modal: {:?}", callback.json);
    let form = callback.body()["data"].clone();
    for label in form["components"].as_array().expect("components") {
        assert_eq!(label["type"], 18, "every input sits in a Label: {form}");
    }
    form
}

/// The component of the form's Label around `custom_id`.
fn form_input<'a>(form: &'a Value, custom_id: &str) -> &'a Value {
    form["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|label| &label["component"])
        .find(|input| input["custom_id"] == custom_id)
        .unwrap_or_else(|| panic!("no input {custom_id} in {form}"))
}

fn submit(form: &Value, user: User, texts: &[(&str, &str)], files: &[&Attachment]) -> Value {
    discord::modal_submit(form, user, texts, files)
}

/// Sends a form submit and returns the bot's answer, after checking the submit was deferred
/// privately first.
async fn send_submit(bot: &TestBot, submitted: &Value) -> Value {
    let reply = bot.command(submitted).await;
    let defer = bot
        .discord
        .wait_for_rest("the defer", discord::is_callback(submitted), ANSWER)
        .await;
    assert_eq!(defer.body()["type"], 5, "deferred");
    assert_eq!(defer.body()["data"]["flags"], 64, "privately");
    assert!(is_ephemeral(&reply), "{reply}");
    reply
}

fn without_message_step() -> BotOptions {
    BotOptions {
        registration_message_step: false,
        max_characters_per_player: 50,
        ..BotOptions::default()
    }
}

/// `/character gallery player:<user_id>`.
fn gallery_of(user_id: u64) -> Value {
    let mut interaction = slash_command("character").subcommand("gallery").build();
    interaction["data"]["options"][0]["options"] =
        json!([{ "name": "player", "type": 6, "value": user_id.to_string() }]);
    interaction["data"]["resolved"]["users"] = json!({ user_id.to_string(): {
        "id": user_id.to_string(), "username": "player", "discriminator": "0",
        "global_name": null, "avatar": null,
    } });
    interaction
}

/// The custom ids of a gallery message's two buttons: (◀, ▶) with their disabled flags.
fn buttons(message: &Value) -> [(String, bool); 2] {
    let row = &message["components"][0]["components"];
    [0, 1].map(|n| {
        (
            row[n]["custom_id"].as_str().expect("a button").to_owned(),
            row[n]["disabled"].as_bool().unwrap_or(false),
        )
    })
}

/// Presses a gallery button as `user` and returns the bot's callback body.
async fn press(bot: &TestBot, message: &Value, custom_id: &str, user: User) -> Value {
    let message_id: u64 = message["id"].as_str().unwrap().parse().unwrap();
    let click = button_click(custom_id, user, GUILD_ID, CHANNEL_ID, message_id);
    bot.discord.send_interaction(click.clone()).await;
    bot.discord
        .wait_for_rest("the press's answer", discord::is_callback(&click), ANSWER)
        .await
        .body()
        .clone()
}

on_both_databases! {
    async fn the_registration_form_stores_the_uploaded_image_without_its_gps_and_shows_the_card(t: TestDb) {
        let bot = TestBot::start(t).await;
        let form = open_form(&bot, &slash_command("register").build()).await;
        assert_eq!(form_input(&form, "name")["required"], true);
        let upload = form_input(&form, "portrait");
        assert_eq!(upload["type"], 19);
        assert_eq!(upload["max_values"], 1);
        assert_eq!(upload["required"], false);

        let photo = images::jpeg_with_gps(120, 90);
        let image = bot.attachment("IMG_0042.png", &photo, "image/png");
        let filled = submit(&form, PLAYER_USER, &[("name", "Aria Windrunner"), ("class", "Ranger"), ("bio", "Scout of the north.")], &[&image]);
        let reply = send_submit(&bot, &filled).await;

        let character = bot.character(PLAYER, "Aria Windrunner").await.expect("registered");
        assert_eq!(character.class.as_deref(), Some("Ranger"));
        assert_eq!(character.bio.as_deref(), Some("Scout of the north."));
        let url = character.portrait_url.clone().expect("a stored portrait");
        assert_eq!(embed_image(&reply), Some(url.as_str()), "{reply}");
        assert_eq!(reply["embeds"][0]["title"], "Aria Windrunner");
        let keys = bot.bucket_keys().await;
        assert_eq!(keys.len(), 1);
        assert!(keys[0].ends_with("_aria-windrunner.jpg"), "the type comes from the bytes: {keys:?}");
        let stored = bot.s3.store().get(&keys[0]).await.unwrap().bytes;
        assert!(!contains(&stored, &images::PLANTED_LATITUDE), "GPS removed");
    }

    async fn editing_in_the_form_renames_the_character_but_not_onto_another_of_its_owners_names(t: TestDb) {
        let bot = TestBot::start_with(t, without_message_step()).await;
        for name in ["Aria", "Brom"] {
            bot.command(&slash_command("register").option_str("name", name).option_str("class", "Bard").build()).await;
        }

        let form = open_form(&bot, &slash_command("character").subcommand("edit").option_str("character", "aria").build()).await;
        assert_eq!(form_input(&form, "name")["value"], "Aria", "prefilled: {form}");
        assert_eq!(form_input(&form, "class")["value"], "Bard", "prefilled: {form}");
        let reply = send_submit(&bot, &submit(&form, PLAYER_USER, &[("name", "Aria the Bold"), ("class", "Paladin"), ("bio", "Sworn to the dawn.")], &[])).await;
        assert!(content(&reply).contains("**Aria the Bold** is updated"), "{reply}");
        assert!(bot.character(PLAYER, "Aria").await.is_none(), "the old name is gone");
        let renamed = bot.character(PLAYER, "Aria the Bold").await.expect("renamed");
        assert_eq!(renamed.class.as_deref(), Some("Paladin"));
        assert_eq!(renamed.bio.as_deref(), Some("Sworn to the dawn."));

        let form = open_form(&bot, &slash_command("character").subcommand("edit").option_str("character", "Brom").build()).await;
        let reply = send_submit(&bot, &submit(&form, PLAYER_USER, &[("name", "  aria THE bold ")], &[])).await;
        assert!(content(&reply).contains("already have a character named"), "{reply}");
        let brom = bot.character(PLAYER, "Brom").await.expect("unchanged");
        assert_eq!(brom.class.as_deref(), Some("Bard"));

        let form = open_form(&bot, &slash_command("character").subcommand("edit").option_str("character", "Brom").build()).await;
        let too_long = "x".repeat(65);
        let reply = send_submit(&bot, &submit(&form, PLAYER_USER, &[("name", &too_long)], &[])).await;
        assert!(content(&reply).contains("64"), "the domain's rule, said plainly: {reply}");
        assert!(bot.character(PLAYER, "Brom").await.is_some());
    }

    async fn the_gallery_pages_forward_and_back_through_thirty_characters_for_its_opener_only(t: TestDb) {
        let bot = TestBot::start_with(t, without_message_step()).await;
        for n in 0..30 {
            bot.command(
                &slash_command("register")
                    .option_str("name", &format!("Hero {n:02}"))
                    .build(),
            )
            .await;
        }
        let open = slash_command("character").subcommand("gallery").build();
        let first = bot.command(&open).await;
        assert!(!is_ephemeral(&first), "shown to the channel");
        assert_eq!(first["embeds"][0]["title"], "Hero 00");
        assert!(content(&first).contains("1 of 30"), "{first}");
        let mut message = bot.discord.original_response(&open).expect("the gallery");
        let [(_, back_disabled), _] = buttons(&message);
        assert!(back_disabled, "no page before the first");

        for n in 1..30 {
            let [_, (next, disabled)] = buttons(&message);
            assert!(!disabled);
            let answer = press(&bot, &message, &next, PLAYER_USER).await;
            assert_eq!(answer["type"], 7, "the message is updated in place");
            assert_eq!(answer["data"]["embeds"][0]["title"], format!("Hero {n:02}"));
            message = bot.discord.original_response(&open).expect("the gallery");
        }
        assert!(content(&message).contains("30 of 30"), "{message}");
        let [(back, _), (_, next_disabled)] = buttons(&message);
        assert!(next_disabled, "no page after the last");

        let refused = press(&bot, &message, &back, OTHER_USER).await;
        assert_eq!(refused["type"], 4);
        assert_eq!(refused["data"]["flags"], 64, "privately");
        assert!(
            refused["data"]["content"]
                .as_str()
                .unwrap()
                .contains("Only <@"),
            "{refused}"
        );
        let unchanged = bot.discord.original_response(&open).unwrap();
        assert_eq!(unchanged["embeds"][0]["title"], "Hero 29");

        let answer = press(&bot, &message, &back, PLAYER_USER).await;
        assert_eq!(answer["data"]["embeds"][0]["title"], "Hero 28");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_svg_named_png_in_the_form_is_refused_and_the_character_keeps_the_default_portrait() {
    let bot = TestBot::start(TestDb::sqlite().await).await;
    let form = open_form(&bot, &slash_command("register").build()).await;
    let svg = bot.attachment("cute.png", images::SVG.as_bytes(), "image/png");
    let reply = send_submit(
        &bot,
        &submit(&form, PLAYER_USER, &[("name", "Cass")], &[&svg]),
    )
    .await;
    assert!(content(&reply).contains("SVG"), "the reason: {reply}");
    assert!(
        content(&reply).contains("default portrait"),
        "what happened: {reply}"
    );
    assert!(
        content(&reply).contains("/portrait set"),
        "what to do: {reply}"
    );
    let character = bot
        .character(PLAYER, "Cass")
        .await
        .expect("what the player typed is kept");
    assert_eq!(character.portrait_url, None);
    assert_eq!(embed_image(&reply), Some(DEFAULT_URL));
    assert!(bot.bucket_keys().await.is_empty(), "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_a_file_registers_on_the_default_portrait_and_says_how_to_add_one() {
    let bot = TestBot::start(TestDb::sqlite().await).await;
    let form = open_form(&bot, &slash_command("register").build()).await;
    let reply = send_submit(
        &bot,
        &submit(&form, PLAYER_USER, &[("name", "Dara"), ("class", "")], &[]),
    )
    .await;
    assert!(content(&reply).contains("default portrait"), "{reply}");
    assert!(content(&reply).contains("/portrait set"), "{reply}");
    assert_eq!(embed_image(&reply), Some(DEFAULT_URL));
    let character = bot.character(PLAYER, "Dara").await.expect("registered");
    assert_eq!(character.class, None, "an empty class is none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_in_the_form_keeps_the_character_and_asks_for_the_image_again() {
    let bot = TestBot::start(TestDb::sqlite().await).await;
    let form = open_form(&bot, &slash_command("register").build()).await;
    let url = bot.cdn.expire("/attachments/1/2/old.png");
    let image = Attachment::new("old.png", &url, 5_000).content_type("image/png");
    let reply = send_submit(
        &bot,
        &submit(&form, PLAYER_USER, &[("name", "Fen")], &[&image]),
    )
    .await;
    assert!(
        content(&reply).contains("upload the image again"),
        "{reply}"
    );
    assert!(bot.bucket_keys().await.is_empty(), "no error page stored");
    let character = bot.character(PLAYER, "Fen").await.expect("registered");
    assert_eq!(character.portrait_url, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portrait_set_without_an_image_opens_an_upload_form_that_sets_the_portrait() {
    let bot = TestBot::start_with(TestDb::sqlite().await, without_message_step()).await;
    bot.command(&slash_command("register").option_str("name", "Gil").build())
        .await;
    let form = open_form(
        &bot,
        &slash_command("portrait")
            .subcommand("set")
            .option_str("character", "Gil")
            .build(),
    )
    .await;
    assert_eq!(form_input(&form, "portrait")["required"], true);
    let png = images::png(33, 21);
    let image = bot.attachment("gil.png", &png, "image/png");
    let reply = send_submit(&bot, &submit(&form, PLAYER_USER, &[], &[&image])).await;
    let character = bot.character(PLAYER, "Gil").await.expect("exists");
    let url = character.portrait_url.expect("stored");
    assert_eq!(embed_image(&reply), Some(url.as_str()), "{reply}");
    let keys = bot.bucket_keys().await;
    assert_eq!(
        bot.s3.store().get(&keys[0]).await.unwrap().bytes.as_ref(),
        png.as_slice()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gallery_left_alone_too_long_says_it_expired_and_drops_its_buttons() {
    let bot = TestBot::start_with(TestDb::sqlite().await, without_message_step()).await;
    for name in ["Ivo", "Jun"] {
        bot.command(&slash_command("register").option_str("name", name).build())
            .await;
    }
    bot.command(
        &slash_command("register")
            .option_str("name", "Kit")
            .user(OTHER_USER)
            .build(),
    )
    .await;
    let open = gallery_of(PLAYER);
    let first = bot.command(&open).await;
    assert!(
        content(&first).contains("1 of 2"),
        "only the player's two: {first}"
    );
    let message = bot.discord.original_response(&open).expect("the gallery");
    let [_, (next, _)] = buttons(&message);
    // The button as it would be after six minutes without a press: the last activity,
    // which the id carries, is six minutes old.
    let mut parts: Vec<String> = next.split(':').map(str::to_owned).collect();
    let active_at: u64 = parts[4].parse().expect("a timestamp");
    parts[4] = (active_at - 6 * 60).to_string();
    let stale = parts.join(":");

    let answer = press(&bot, &message, &stale, PLAYER_USER).await;
    assert_eq!(answer["type"], 7);
    assert!(
        answer["data"]["content"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{answer}"
    );
    let now = bot.discord.original_response(&open).unwrap();
    assert_eq!(now["components"], json!([]), "no buttons left: {now}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_gallery_is_edited_to_say_it_expired_without_anyone_pressing() {
    let options = BotOptions {
        gallery_timeout: std::time::Duration::from_secs(2),
        ..without_message_step()
    };
    let bot = TestBot::start_with(TestDb::sqlite().await, options).await;
    for name in ["Lia", "Mo"] {
        bot.command(&slash_command("register").option_str("name", name).build())
            .await;
    }
    let open = slash_command("character").subcommand("gallery").build();
    bot.command(&open).await;
    let message = bot.discord.original_response(&open).expect("the gallery");
    let [_, (next, _)] = buttons(&message);
    let answer = press(&bot, &message, &next, PLAYER_USER).await;
    assert_eq!(answer["data"]["embeds"][0]["title"], "Mo");

    let deadline = tokio::time::Instant::now() + ANSWER;
    let expired = loop {
        let now = bot.discord.original_response(&open).expect("the gallery");
        if now["components"] == json!([]) {
            break now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gallery never expired: {now}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(content(&expired).contains("expired"), "{expired}");
    assert_eq!(expired["embeds"][0]["title"], "Mo", "the last card stays");
}
