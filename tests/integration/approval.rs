//! The approval queue end to end through the simulated Discord, on SQLite and PostgreSQL: an
//! upload in a server that requires approval waits, the mod channel gets it with Approve and
//! Reject buttons, admins decide (a reason form for a rejection), the player is told by DM,
//! and the buttons survive a restart of the bot.

use serde_json::Value;

use portrait_bot::db::Character;
use portrait_bot::moderation::approval::ApprovalError;
use portrait_bot::moderation::history;
use portrait_bot::moderation::settings::{self, Defaults, SettingsChange};
use portrait_bot::moderation::{ModerationService, ReasonError};
use portrait_bot::portrait::{IngestRequest, PortraitOutcome, PortraitSource, Upload};

use crate::on_both_databases;
use crate::support::app::{TestApp, PLAYER};
use crate::support::bot::{content, embed_image, is_ephemeral, TestBot, ANSWER};
use crate::support::database::TestDb;
use testkit::discord::{
    self, modal_submit, permissions, slash_command, with_permissions, User, GUILD_ID, OTHER_USER,
    OWNER_USER, PLAYER_USER,
};
use testkit::images;

/// The server's mod channel, where uploads wait for approval.
const MOD_CHANNEL: u64 = 1_200_000_000_000_000_555;
const ADMIN: u64 = permissions::MEMBER | permissions::MANAGE_GUILD;
const MEMBER: u64 = permissions::MEMBER;
const BLOCKED: &str = "This image was removed by this server's moderators.";

/// A picture of its own for each seed (noise: unrelated pictures never look alike).
fn picture(seed: u64) -> Vec<u8> {
    images::noise_png(48, 48, seed)
}

/// A bot in a server that requires approval, with Aria already showing `picture(1)`, uploaded
/// before approval was turned on. Returns the bot and Aria's current portrait URL.
async fn approving_server(t: TestDb) -> (TestBot, String) {
    let bot = TestBot::start(t).await;
    let reply = register(&bot, "Aria", &picture(1)).await;
    assert!(content(&reply).contains("Aria"), "{reply}");
    let before = bot.character(PLAYER, "Aria").await.expect("registered");
    let url = before.portrait_url.expect("shows its first portrait");
    let defaults = Defaults {
        max_characters: 10,
        uploads_per_10_minutes: 50,
    };
    let change = SettingsChange {
        mod_channel: Some(MOD_CHANNEL),
        approval_required: Some(true),
        ..SettingsChange::default()
    };
    settings::update(&bot.db.db, GUILD_ID, &change, OWNER_USER.id, &defaults)
        .await
        .expect("approval turned on");
    (bot, url)
}

async fn register(bot: &TestBot, name: &str, image: &[u8]) -> Value {
    let image = bot.attachment("portrait.png", image, "image/png");
    bot.command(
        &slash_command("register")
            .option_str("name", name)
            .option_attachment("portrait", &image)
            .build(),
    )
    .await
}

/// `/portrait set` for one of the player's characters; the bot's private reply.
async fn upload(bot: &TestBot, name: &str, image: &[u8]) -> Value {
    let image = bot.attachment("new.png", image, "image/png");
    let reply = bot
        .command(
            &slash_command("portrait")
                .subcommand("set")
                .option_str("character", name)
                .option_attachment("image", &image)
                .build(),
        )
        .await;
    assert!(is_ephemeral(&reply), "{reply}");
    reply
}

/// The posts in the mod channel, oldest first.
fn posts(bot: &TestBot) -> Vec<Value> {
    let mut posts = bot.discord.channel_messages(MOD_CHANNEL);
    posts.sort_by_key(message_id);
    posts
}

fn message_id(message: &Value) -> u64 {
    message["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("numeric id")
}

/// The latest post in the mod channel, as it stands now.
fn latest_post(bot: &TestBot) -> Value {
    posts(bot).pop().expect("a post in the mod channel")
}

/// The custom ids of a post's buttons, by label.
fn buttons(post: &Value) -> Vec<(String, String)> {
    post["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .map(|button| {
            (
                button["label"].as_str().unwrap_or_default().to_owned(),
                button["custom_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn button(post: &Value, label: &str) -> String {
    buttons(post)
        .into_iter()
        .find(|(l, _)| l == label)
        .map(|(_, id)| id)
        .unwrap_or_else(|| panic!("no {label} button on {post}"))
}

/// Presses a button of `post` as `user` with `permissions`; returns the interaction and the
/// bot's answer (its callback body).
async fn press(
    bot: &TestBot,
    post: &Value,
    label: &str,
    user: User,
    permissions: u64,
) -> (Value, Value) {
    let interaction = bot.discord.press_button(
        message_id(post),
        &button(post, label),
        user,
        GUILD_ID,
        permissions,
    );
    bot.discord.send_interaction(interaction.clone()).await;
    let callback = bot
        .discord
        .wait_for_rest(
            "the press's answer",
            discord::is_callback(&interaction),
            ANSWER,
        )
        .await;
    (interaction, callback.body().clone())
}

/// Approve as an admin: the press is deferred (type 6), then the admin gets a private note.
async fn approve(bot: &TestBot, post: &Value) -> Value {
    let (interaction, answer) = press(bot, post, "Approve", OWNER_USER, ADMIN).await;
    assert_eq!(answer["type"], 6, "deferred update first: {answer}");
    let note = bot.followup(&interaction, 0).await;
    assert!(is_ephemeral(&note), "{note}");
    note
}

/// Reject: an admin's press opens the reason form (type 9), which `user` submits with
/// `reason`. Returns the submit's answer.
async fn reject(bot: &TestBot, post: &Value, reason: &str, user: User, permissions: u64) -> Value {
    let (_, answer) = press(bot, post, "Reject", OWNER_USER, ADMIN).await;
    assert_eq!(answer["type"], 9, "a form asking for the reason: {answer}");
    let form = answer["data"].clone();
    assert_eq!(form["components"][0]["type"], 18, "a Label: {form}");
    assert_eq!(form["components"][0]["component"]["required"], true);
    let submitted = with_permissions(
        modal_submit(&form, user, &[("reason", reason)], &[]),
        permissions,
    );
    let reply = bot.command(&submitted).await;
    assert!(is_ephemeral(&reply), "{reply}");
    reply
}

fn last_dm(bot: &TestBot, user: u64) -> String {
    let dms = bot.discord.direct_messages(user);
    content(dms.last().expect("a DM to the player")).to_owned()
}

async fn shown_url(bot: &TestBot) -> Option<String> {
    bot.character(PLAYER, "Aria")
        .await
        .expect("Aria exists")
        .portrait_url
}

on_both_databases! {
    async fn deleting_a_character_with_a_waiting_upload_deletes_the_waiting_image(t: TestDb) {
        let (bot, _) = approving_server(t).await;
        upload(&bot, "Aria", &picture(2)).await;
        let post = latest_post(&bot);
        assert_eq!(bot.bucket_keys().await.len(), 2, "shown and waiting images stored");

        bot.command(&slash_command("privacy").subcommand("delete-my-data").build()).await;
        let confirmation = bot
            .discord
            .messages()
            .into_iter()
            .find(|m| content(m).contains("This deletes your"))
            .expect("the confirmation");
        let (click, answer) = press(&bot, &confirmation, "Delete my data", PLAYER_USER, MEMBER).await;
        assert_eq!(answer["type"], 6, "{answer}");
        bot.discord
            .wait_for_rest("the result", discord::is_original_edit(&click), ANSWER)
            .await;

        assert!(bot.character(PLAYER, "Aria").await.is_none());
        let keys = bot.bucket_keys().await;
        assert!(keys.is_empty(), "no waiting image left behind: {keys:?}");
        let note = approve(&bot, &post).await;
        assert!(content(&note).contains("no longer waiting"), "{note}");
    }

    async fn an_upload_waits_with_the_old_portrait_shown_until_an_admin_approves_it(t: TestDb) {
        let (bot, old_url) = approving_server(t).await;

        let reply = upload(&bot, "Aria", &picture(2)).await;
        assert!(content(&reply).contains("A moderator will review"), "{reply}");
        assert_eq!(embed_image(&reply), Some(old_url.as_str()), "the card still shows the old portrait");
        assert_eq!(shown_url(&bot).await.as_deref(), Some(old_url.as_str()));
        assert_eq!(bot.bucket_keys().await.len(), 2, "the new image is stored, not shown");

        let post = latest_post(&bot);
        assert!(content(&post).contains("**Aria**"), "{post}");
        assert!(content(&post).contains(&format!("<@{PLAYER}>")), "who uploaded: {post}");
        let labels: Vec<String> = buttons(&post).into_iter().map(|(label, _)| label).collect();
        assert_eq!(labels, ["Approve", "Reject"]);
        assert!(button(&post, "Approve").starts_with("approval:approve:"));
        let pending_url = embed_image(&post).expect("the pending image").to_owned();
        assert_ne!(pending_url, old_url);

        let note = approve(&bot, &post).await;
        assert!(content(&note).contains("Approved"), "{note}");
        assert!(content(&note).contains("told by DM"), "{note}");
        assert_eq!(shown_url(&bot).await.as_deref(), Some(pending_url.as_str()), "switched");
        let keys = bot.bucket_keys().await;
        assert_eq!(keys.len(), 1, "the replaced portrait is deleted: {keys:?}");
        assert!(pending_url.ends_with(&keys[0]), "{pending_url} {keys:?}");

        let post = bot.discord.message(message_id(&post)).expect("the post");
        assert!(content(&post).contains(&format!("Approved by <@{}>", OWNER_USER.id)), "{post}");
        assert!(buttons(&post).is_empty(), "no buttons left: {post}");
        let dm = last_dm(&bot, PLAYER);
        assert!(dm.contains("approved") && dm.contains("**Aria**"), "{dm}");

        let aria = bot.character(PLAYER, "Aria").await.unwrap();
        let rows = history::last(&bot.db.db, aria.id, 10).await.unwrap();
        let actions: Vec<(&str, &str)> = rows.iter().map(|r| (r.action.as_str(), r.actor_kind.as_str())).collect();
        assert_eq!(actions[..2], [("approved", "admin"), ("uploaded", "player")], "{rows:?}");
    }

    async fn rejecting_with_a_reason_discards_and_blocks_the_image_and_tells_the_player_why(t: TestDb) {
        let (bot, old_url) = approving_server(t).await;
        let rejected_image = picture(3);
        upload(&bot, "Aria", &rejected_image).await;
        let post = latest_post(&bot);

        let refused = reject(&bot, &post, "   ", OWNER_USER, ADMIN).await;
        assert!(content(&refused).contains("Give a reason"), "{refused}");
        assert_eq!(bot.bucket_keys().await.len(), 2, "an empty reason changes nothing");
        assert_eq!(buttons(&bot.discord.message(message_id(&post)).unwrap()).len(), 2);

        let reply = reject(&bot, &post, "Not your character's face", OWNER_USER, ADMIN).await;
        assert!(content(&reply).contains("Rejected"), "{reply}");
        assert!(content(&reply).contains("told by DM"), "{reply}");
        assert_eq!(shown_url(&bot).await.as_deref(), Some(old_url.as_str()), "the old portrait stays");
        assert_eq!(bot.bucket_keys().await.len(), 1, "the rejected object is deleted");

        let post = bot.discord.message(message_id(&post)).expect("the post");
        assert!(content(&post).contains(&format!("Rejected by <@{}>", OWNER_USER.id)), "{post}");
        assert!(content(&post).contains("Not your character's face"), "the reason: {post}");
        assert!(buttons(&post).is_empty(), "{post}");
        let dm = last_dm(&bot, PLAYER);
        assert!(dm.contains("rejected") && dm.contains("Not your character's face"), "{dm}");

        let again = upload(&bot, "Aria", &rejected_image).await;
        assert!(content(&again).contains(BLOCKED), "{again}");
        assert_eq!(posts(&bot).len(), 1, "nothing new to review");
        assert_eq!(bot.bucket_keys().await.len(), 1);

        let aria = bot.character(PLAYER, "Aria").await.unwrap();
        let rows = history::last(&bot.db.db, aria.id, 1).await.unwrap();
        assert_eq!(rows[0].action, "rejected");
        assert_eq!(rows[0].reason.as_deref(), Some("Not your character's face"));
    }

    async fn a_second_upload_while_one_waits_replaces_it_and_deletes_the_first_object(t: TestDb) {
        let (bot, old_url) = approving_server(t).await;
        upload(&bot, "Aria", &picture(4)).await;
        let first = latest_post(&bot);
        let first_url = embed_image(&first).unwrap().to_owned();
        upload(&bot, "Aria", &picture(5)).await;
        let second = latest_post(&bot);
        assert_ne!(message_id(&first), message_id(&second), "a new post");

        let keys = bot.bucket_keys().await;
        assert_eq!(keys.len(), 2, "the old portrait and the second upload: {keys:?}");
        assert!(!keys.iter().any(|key| first_url.ends_with(key.as_str())), "first object deleted");
        let first = bot.discord.message(message_id(&first)).unwrap();
        assert!(content(&first).contains("Replaced by a newer upload"), "{first}");
        assert!(buttons(&first).is_empty(), "the first post decides nothing any more");

        let queue = bot.command(&slash_command("admin").subcommand("queue").permissions(ADMIN).build()).await;
        assert!(is_ephemeral(&queue));
        let listing = &queue["embeds"][0];
        assert_eq!(listing["title"], "1 portrait waiting for approval", "{queue}");

        approve(&bot, &second).await;
        assert_eq!(shown_url(&bot).await.as_deref(), embed_image(&second));
        assert_ne!(shown_url(&bot).await.as_deref(), Some(old_url.as_str()));
    }

    async fn a_member_without_manage_server_is_refused_privately_and_nothing_changes(t: TestDb) {
        let (bot, old_url) = approving_server(t).await;
        upload(&bot, "Aria", &picture(6)).await;
        let post = latest_post(&bot);

        for label in ["Approve", "Reject"] {
            let (_, answer) = press(&bot, &post, label, OTHER_USER, MEMBER).await;
            assert_eq!(answer["type"], 4, "{label}: {answer}");
            assert_eq!(answer["data"]["flags"], 64, "privately");
            assert!(answer["data"]["content"].as_str().unwrap().contains("Only server admins"), "{answer}");
        }
        // The form's submit is checked again: a member's submit decides nothing.
        let refused = reject(&bot, &post, "because", OTHER_USER, MEMBER).await;
        assert!(content(&refused).contains("Only server admins"), "{refused}");

        assert_eq!(shown_url(&bot).await.as_deref(), Some(old_url.as_str()));
        assert_eq!(bot.bucket_keys().await.len(), 2);
        let post = bot.discord.message(message_id(&post)).unwrap();
        assert_eq!(buttons(&post).len(), 2, "still waiting: {post}");
        assert!(bot.discord.direct_messages(PLAYER).is_empty(), "the player was told nothing");
    }

    async fn the_buttons_still_decide_after_the_bot_restarts(t: TestDb) {
        let (mut bot, _) = approving_server(t).await;
        upload(&bot, "Aria", &picture(7)).await;
        let post = latest_post(&bot);
        let pending_url = embed_image(&post).unwrap().to_owned();

        bot.restart().await;

        approve(&bot, &post).await;
        assert_eq!(shown_url(&bot).await, Some(pending_url));
        let post = bot.discord.message(message_id(&post)).unwrap();
        assert!(content(&post).contains("Approved by"), "{post}");
    }

    async fn a_press_on_an_upload_no_longer_waiting_says_so_and_takes_the_buttons_away(t: TestDb) {
        let (bot, _) = approving_server(t).await;
        upload(&bot, "Aria", &picture(8)).await;
        let post = latest_post(&bot);
        approve(&bot, &post).await;
        let shown = shown_url(&bot).await;

        // The post as a second admin still saw it, before the first decision reached them.
        let (_, answer) = press(&bot, &post, "Reject", OWNER_USER, ADMIN).await;
        assert_eq!(answer["type"], 4);
        assert_eq!(answer["data"]["flags"], 64);
        assert!(answer["data"]["content"].as_str().unwrap().contains("no longer waiting"), "{answer}");
        let note = approve(&bot, &post).await;
        assert!(content(&note).contains("no longer waiting"), "{note}");
        assert_eq!(shown_url(&bot).await, shown, "nothing changed");

        // A character deleted while its upload waits takes the upload with it.
        upload(&bot, "Aria", &picture(9)).await;
        let waiting = latest_post(&bot);
        let aria = bot.character(PLAYER, "Aria").await.unwrap();
        bot.db.db.delete_character(aria.id).await.unwrap();
        let note = approve(&bot, &waiting).await;
        assert!(content(&note).contains("its character was deleted"), "{note}");
        let waiting = bot.discord.message(message_id(&waiting)).unwrap();
        assert!(buttons(&waiting).is_empty(), "stale buttons removed: {waiting}");
    }

    async fn admin_queue_lists_the_uploads_waiting_in_this_server_with_links_to_their_posts(t: TestDb) {
        let (bot, _) = approving_server(t).await;
        let queue = slash_command("admin").subcommand("queue").permissions(ADMIN).build();
        let empty = bot.command(&queue).await;
        assert!(content(&empty).contains("No portraits are waiting"), "{empty}");

        register(&bot, "Brom", &picture(10)).await;
        upload(&bot, "Aria", &picture(11)).await;
        let aria_post = latest_post(&bot);
        let listing = bot.command(&slash_command("admin").subcommand("queue").permissions(ADMIN).build()).await;
        assert!(is_ephemeral(&listing), "{listing}");
        let embed = &listing["embeds"][0];
        assert_eq!(embed["title"], "2 portraits waiting for approval", "{listing}");
        let lines: Vec<&str> = embed["description"].as_str().unwrap().lines().collect();
        assert!(lines[0].starts_with("**Brom**"), "oldest first: {lines:?}");
        assert!(lines[1].starts_with("**Aria**"), "{lines:?}");
        assert!(lines[1].contains(&format!("<@{PLAYER}>")), "{lines:?}");
        assert!(lines[1].contains("<t:"), "when: {lines:?}");
        let link = format!("https://discord.com/channels/{GUILD_ID}/{MOD_CHANNEL}/{}", message_id(&aria_post));
        assert!(lines[1].contains(&link), "a jump link: {lines:?}");

        let refused = bot.command(&slash_command("admin").subcommand("queue").permissions(MEMBER).build()).await;
        assert!(content(&refused).contains("Only server admins"), "{refused}");
    }
}

/// The service under the buttons, without Discord: the metric and the one-decision rule.
mod service {
    use super::*;

    on_both_databases! {
        async fn approvals_and_rejections_are_counted_and_each_decision_happens_once(t: TestDb) {
            let app = TestApp::start(t).await;
            let moderation = ModerationService::new(app.app.db.clone(), app.app.store.clone(), app.app.portraits.clone());
            let aria = app.create_character("Aria").await;
            let brom = app.create_character("Brom").await;
            let submit = |character: Character, seed: u64| {
                let moderation = moderation.clone();
                async move {
                    let request = IngestRequest {
                        character: &character,
                        uploader_id: PLAYER,
                        source: PortraitSource::SlashCommand,
                        legacy_url: None,
                        migration_run: None,
                    };
                    match moderation.submit_for_approval(Upload::Bytes(picture(seed).into()), &request).await {
                        Ok(PortraitOutcome::Stored(pending)) => pending,
                        other => panic!("not pending: {other:?}"),
                    }
                }
            };
            let for_aria = submit(aria.clone(), 20).await;
            let for_brom = submit(brom.clone(), 21).await;
            assert_eq!(app.reload(&aria).await.portrait_url, None, "nothing shown yet");

            moderation.approve(for_aria.pending.id, OWNER_USER.id).await.expect("approved");
            assert!(matches!(
                moderation.approve(for_aria.pending.id, OWNER_USER.id).await,
                Err(ApprovalError::NotPending)
            ));
            assert!(matches!(
                moderation.reject(for_brom.pending.id, OWNER_USER.id, "").await,
                Err(ApprovalError::Reason(ReasonError::Missing))
            ));
            let rejected = moderation.reject(for_brom.pending.id, OWNER_USER.id, "off-topic").await.expect("rejected");
            assert!(rejected.blocked.is_some() && rejected.object_deleted);
            assert!(matches!(
                moderation.reject(for_brom.pending.id, OWNER_USER.id, "again").await,
                Err(ApprovalError::NotPending)
            ));

            assert_eq!(app.reload(&aria).await.portrait_url.as_deref(), Some(for_aria.record.public_url.as_str()));
            assert_eq!(app.reload(&brom).await.portrait_url, None);
            assert_eq!(app.metric("portrait_moderation_actions_total{action=\"approved\"}"), 1.0);
            assert_eq!(app.metric("portrait_moderation_actions_total{action=\"rejected\"}"), 1.0);
            assert_eq!(app.bucket_keys().await.len(), 1, "only Aria's approved portrait is kept");
        }
    }
}
