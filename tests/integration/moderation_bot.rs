//! Server admins through Discord, end to end: the real bot driven through the simulated
//! Discord on SQLite and PostgreSQL. `/admin settings` per server and the limits it sets,
//! `/admin portrait remove` and `/admin character delete` (default portrait, stored object,
//! DM, mod channel record, history, block-list, metrics), `/admin history`, `/admin blocklist`,
//! and the admin rule on every one of them.

use image::imageops::FilterType;
use serde_json::{json, Map, Value};

use crate::on_both_databases;
use crate::support::app::PLAYER;
use crate::support::bot::{
    content, embed_image, is_ephemeral, BotOptions, TestBot, ANSWER, DEFAULT_URL,
};
use crate::support::pictures::{jpeg, picture, png};
use testkit::discord::{
    self, autocomplete, permissions, slash_command, CommandBuilder, User, CHANNEL_ID, GUILD_ID,
    OTHER_USER, OWNER_USER, PLAYER_USER,
};

/// A second server the bot is in, with its own channel.
const OTHER_GUILD: u64 = 1_200_000_000_000_000_077;
const OTHER_CHANNEL: u64 = 1_200_000_000_000_000_177;
/// The channel the admins pick as their mod channel.
const MOD_CHANNEL: u64 = 1_200_000_000_000_000_555;
/// Someone with Manage Server.
const ADMIN: User = OWNER_USER;
const ADMIN_PERMISSIONS: u64 = permissions::MEMBER | permissions::MANAGE_GUILD;
const ADMINS_ONLY: &str = "Only server admins (members with Manage Server) can do this.";
const BLOCKED: &str = "This image was removed by this server's moderators.";

/// An option of an `/admin` command.
enum Opt<'a> {
    Str(&'a str, &'a str),
    Int(&'a str, i64),
    Bool(&'a str, bool),
    Player(User),
    Channel(&'a str, u64),
    Focused(&'a str, &'a str),
}

/// A place the command is used in, by whom.
#[derive(Clone, Copy)]
struct Caller {
    user: User,
    permissions: u64,
    guild: u64,
}

const ADMIN_HERE: Caller = Caller {
    user: ADMIN,
    permissions: ADMIN_PERMISSIONS,
    guild: GUILD_ID,
};
const ADMIN_THERE: Caller = Caller {
    guild: OTHER_GUILD,
    ..ADMIN_HERE
};
const MEMBER_HERE: Caller = Caller {
    user: PLAYER_USER,
    permissions: permissions::MEMBER,
    guild: GUILD_ID,
};

fn channel_of(guild: u64) -> u64 {
    if guild == GUILD_ID {
        CHANNEL_ID
    } else {
        OTHER_CHANNEL
    }
}

/// `/admin <path…>` with `options` (a subcommand group's path has two names): the payload
/// Discord sends, with the users and channels picked resolved as Discord resolves them.
fn admin_payload(base: CommandBuilder, by: Caller, path: &[&str], options: &[Opt]) -> Value {
    let mut interaction = base
        .user(by.user)
        .permissions(by.permissions)
        .guild(by.guild)
        .channel(channel_of(by.guild))
        .build();
    let mut users = Map::new();
    let mut channels = Map::new();
    let values: Vec<Value> = options
        .iter()
        .map(|option| match option {
            Opt::Str(name, value) => json!({ "name": name, "type": 3, "value": value }),
            Opt::Int(name, value) => json!({ "name": name, "type": 4, "value": value }),
            Opt::Bool(name, value) => json!({ "name": name, "type": 5, "value": value }),
            Opt::Focused(name, value) => {
                json!({ "name": name, "type": 3, "value": value, "focused": true })
            }
            Opt::Player(user) => {
                users.insert(user.id.to_string(), user.to_json());
                json!({ "name": "player", "type": 6, "value": user.id.to_string() })
            }
            Opt::Channel(name, id) => {
                channels.insert(
                    id.to_string(),
                    json!({ "id": id.to_string(), "name": "mod-log", "type": 0, "permissions": "0" }),
                );
                json!({ "name": name, "type": 7, "value": id.to_string() })
            }
        })
        .collect();
    let (leaf, groups) = path.split_last().expect("a subcommand");
    let mut tree = json!({ "name": leaf, "type": 1, "options": values });
    for group in groups.iter().rev() {
        tree = json!({ "name": group, "type": 2, "options": [tree] });
    }
    interaction["data"]["options"] = json!([tree]);
    let mut resolved = Map::new();
    if !users.is_empty() {
        resolved.insert("users".into(), Value::Object(users));
    }
    if !channels.is_empty() {
        resolved.insert("channels".into(), Value::Object(channels));
    }
    interaction["data"]["resolved"] = Value::Object(resolved);
    interaction
}

fn admin_as(by: Caller, path: &[&str], options: &[Opt]) -> Value {
    admin_payload(slash_command("admin"), by, path, options)
}

fn admin(path: &[&str], options: &[Opt]) -> Value {
    admin_as(ADMIN_HERE, path, options)
}

fn no_message_step() -> BotOptions {
    BotOptions {
        registration_message_step: false,
        ..BotOptions::default()
    }
}

fn register_in(guild: u64, name: &str) -> Value {
    slash_command("register")
        .guild(guild)
        .channel(channel_of(guild))
        .option_str("name", name)
        .build()
}

/// `/portrait set` of `bytes` (served as a PNG or JPEG by the CDN) in `guild`; the bot's reply.
async fn set_portrait(bot: &TestBot, guild: u64, name: &str, bytes: &[u8]) -> Value {
    let image = bot.attachment(&format!("{}.img", discord::next_id()), bytes, "image/png");
    let interaction = slash_command("portrait")
        .subcommand("set")
        .guild(guild)
        .channel(channel_of(guild))
        .option_str("character", name)
        .option_attachment("image", &image)
        .build();
    bot.command(&interaction).await
}

/// Registers `name` for `player` with `bytes` as its portrait; the stored portrait's URL.
async fn register_with(bot: &TestBot, player: User, name: &str, bytes: &[u8]) -> String {
    let image = bot.attachment(&format!("{}.png", discord::next_id()), bytes, "image/png");
    let interaction = slash_command("register")
        .user(player)
        .option_str("name", name)
        .option_attachment("portrait", &image)
        .build();
    let reply = bot.command(&interaction).await;
    embed_image(&reply)
        .unwrap_or_else(|| panic!("a stored portrait: {reply}"))
        .to_owned()
}

/// Sends an admin command and checks it was deferred privately before the answer.
async fn deferred(bot: &TestBot, interaction: &Value) -> Value {
    let reply = bot.command(interaction).await;
    let defer = bot
        .discord
        .wait_for_rest("the defer", discord::is_callback(interaction), ANSWER)
        .await;
    assert_eq!(defer.body()["type"], 5, "deferred first: {reply}");
    assert_eq!(defer.body()["data"]["flags"], 64, "privately");
    assert!(is_ephemeral(&reply), "{reply}");
    reply
}

/// The value of the field `name` of a message's first embed.
fn field<'a>(message: &'a Value, name: &str) -> &'a str {
    message["embeds"][0]["fields"]
        .as_array()
        .and_then(|fields| fields.iter().find(|f| f["name"] == name))
        .and_then(|f| f["value"].as_str())
        .unwrap_or_else(|| panic!("no field {name} in {message}"))
}

on_both_databases! {
    async fn an_admin_resets_a_setting_to_the_default_but_not_the_channel_approvals_wait_in(t: TestDb) {
        let bot = TestBot::start_with(t, no_message_step()).await;
        // The choice's index, as Discord sends it.
        let reset = |index: i64| admin(&["settings", "reset"], &[Opt::Int("setting", index)]);
        bot.command(&admin(&["settings", "set"], &[
            Opt::Channel("mod_channel", MOD_CHANNEL),
            Opt::Bool("approval_required", true),
            Opt::Int("max_characters", 3),
        ])).await;

        let saved = bot.command(&reset(3)).await;
        assert!(is_ephemeral(&saved), "{saved}");
        assert!(content(&saved).contains("Max characters per player: 10 (the bot's default)"), "{saved}");
        let shown = content(&bot.command(&admin(&["settings", "show"], &[])).await).to_owned();
        assert!(shown.contains("Max characters per player: 10 (the bot's default)"), "{shown}");
        assert!(shown.contains("Approval required: yes (set by this server)"), "{shown}");

        let refused = bot.command(&reset(1)).await;
        assert!(is_ephemeral(&refused), "{refused}");
        assert!(content(&refused).contains("Nothing was changed: approval_required is on"), "{refused}");
        let shown = content(&bot.command(&admin(&["settings", "show"], &[])).await).to_owned();
        assert!(shown.contains(&format!("Mod channel: <#{MOD_CHANNEL}>")), "unchanged: {shown}");

        bot.command(&reset(2)).await;
        let unset = bot.command(&reset(1)).await;
        assert!(content(&unset).contains("Mod channel: none"), "{unset}");
        assert!(content(&unset).contains("Approval required: no (the bot's default)"), "{unset}");
    }

    async fn each_server_sets_its_own_limits_and_the_bot_enforces_them_separately(t: TestDb) {
        let bot = TestBot::start_with(t, no_message_step()).await;
        bot.discord.add_guild(OTHER_GUILD);

        let shown = bot.command(&admin(&["settings", "show"], &[])).await;
        assert!(is_ephemeral(&shown), "{shown}");
        let text = content(&shown);
        assert!(text.contains("Mod channel: none"), "{text}");
        assert!(text.contains("Max characters per player: 10 (the bot's default)"), "{text}");
        assert!(text.contains("Uploads per 10 minutes: 50 (the bot's default)"), "{text}");

        let saved = bot.command(&admin(&["settings", "set"], &[
            Opt::Channel("mod_channel", MOD_CHANNEL),
            Opt::Int("max_characters", 1),
            Opt::Int("uploads_per_10_minutes", 1),
        ])).await;
        assert!(is_ephemeral(&saved), "{saved}");
        let text = content(&saved);
        assert!(text.starts_with("**Settings saved**"), "{text}");
        assert!(text.contains(&format!("Mod channel: <#{MOD_CHANNEL}>")), "{text}");
        assert!(text.contains("Max characters per player: 1 (set by this server)"), "{text}");
        bot.command(&admin_as(ADMIN_THERE, &["settings", "set"], &[
            Opt::Int("max_characters", 2),
            Opt::Int("uploads_per_10_minutes", 2),
        ])).await;

        // Bad values are refused with the rule, and change nothing.
        for (options, problem) in [
            (vec![Opt::Int("max_characters", 0)], "max_characters must be between 1 and 100"),
            (vec![Opt::Int("uploads_per_10_minutes", 101)], "uploads_per_10_minutes must be between 1 and 100"),
            (vec![], "Choose at least one setting"),
        ] {
            let refused = bot.command(&admin(&["settings", "set"], &options)).await;
            assert!(is_ephemeral(&refused), "{refused}");
            assert!(content(&refused).contains(problem), "{refused}");
        }
        let refused = bot.command(&admin_as(ADMIN_THERE, &["settings", "set"], &[Opt::Bool("approval_required", true)])).await;
        assert!(content(&refused).contains("set mod_channel before turning approval_required on"), "{refused}");

        let here = content(&bot.command(&admin(&["settings", "show"], &[])).await).to_owned();
        assert!(here.contains("Max characters per player: 1 (set by this server)"), "{here}");
        assert!(here.contains("Uploads per 10 minutes: 1 (set by this server)"), "{here}");
        assert!(here.contains("Approval required: no (the bot's default)"), "{here}");
        let there = content(&bot.command(&admin_as(ADMIN_THERE, &["settings", "show"], &[])).await).to_owned();
        assert!(there.contains("Mod channel: none"), "{there}");
        assert!(there.contains("Max characters per player: 2 (set by this server)"), "{there}");
        assert!(there.contains("Uploads per 10 minutes: 2 (set by this server)"), "{there}");
        assert!(there.contains("Approval required: no (the bot's default)"), "{there}");

        // One character here, two there: by /register and by the registration form alike.
        bot.command(&register_in(GUILD_ID, "Aria")).await;
        let second = bot.command(&register_in(GUILD_ID, "Brom")).await;
        assert!(content(&second).contains("You already have 1 characters here, the most allowed in this server"), "{second}");
        assert!(bot.character(PLAYER, "Brom").await.is_none());
        let open = slash_command("register").build();
        bot.discord.send_interaction(open.clone()).await;
        let form = bot.discord.wait_for_rest("the form", discord::is_callback(&open), ANSWER).await.body()["data"].clone();
        let submitted = discord::modal_submit(&form, PLAYER_USER, &[("name", "Cara")], &[]);
        let by_form = bot.command(&submitted).await;
        assert!(content(&by_form).contains("the most allowed in this server"), "{by_form}");
        assert!(bot.character(PLAYER, "Cara").await.is_none());
        for name in ["Aria", "Brom"] {
            let reply = bot.command(&register_in(OTHER_GUILD, name)).await;
            assert!(content(&reply).contains("is registered"), "{reply}");
        }
        let third = bot.command(&register_in(OTHER_GUILD, "Cara")).await;
        assert!(content(&third).contains("You already have 2 characters here"), "{third}");

        // One upload per 10 minutes here, two there.
        let first = set_portrait(&bot, GUILD_ID, "Aria", &png(&picture(1))).await;
        assert!(content(&first).contains("Portrait saved"), "{first}");
        let again = set_portrait(&bot, GUILD_ID, "Aria", &png(&picture(2))).await;
        assert!(content(&again).contains("this server's limit of 1 portrait uploads per 10 minutes"), "{again}");
        for seed in [3, 4] {
            let reply = set_portrait(&bot, OTHER_GUILD, "Aria", &png(&picture(seed))).await;
            assert!(content(&reply).contains("Portrait saved"), "{reply}");
        }
        let over = set_portrait(&bot, OTHER_GUILD, "Brom", &png(&picture(5))).await;
        assert!(content(&over).contains("this server's limit of 2 portrait uploads per 10 minutes"), "{over}");
    }

    async fn removing_a_portrait_shows_the_default_tells_the_player_records_it_and_blocks_the_picture(t: TestDb) {
        let bot = TestBot::start_with(t, no_message_step()).await;
        bot.command(&admin(&["settings", "set"], &[Opt::Channel("mod_channel", MOD_CHANNEL)])).await;
        let original = picture(1);
        register_with(&bot, PLAYER_USER, "Aria", &png(&original)).await;
        assert_eq!(bot.bucket_keys().await.len(), 1);

        let removed = deferred(&bot, &admin(&["portrait", "remove"], &[
            Opt::Player(PLAYER_USER),
            Opt::Str("character", "aria"),
            Opt::Str("reason", "Not safe for work"),
        ])).await;
        let text = content(&removed);
        assert!(text.contains("removed the portrait of **Aria**"), "{text}");
        assert!(text.contains("on this server's block-list"), "{text}");
        assert!(text.contains("The stored image was deleted."), "{text}");
        assert!(text.contains("The player was told by DM."), "{text}");
        assert!(text.contains(&format!("Recorded in <#{MOD_CHANNEL}>.")), "{text}");

        let aria = bot.character(PLAYER, "Aria").await.expect("the character stays");
        assert_eq!(aria.portrait_url, None);
        assert!(bot.bucket_keys().await.is_empty(), "the unused object is deleted");
        let card = bot.command(&slash_command("portrait").subcommand("show").option_str("character", "Aria").build()).await;
        assert_eq!(embed_image(&card), Some(DEFAULT_URL), "{card}");

        let dms = bot.discord.direct_messages(PLAYER);
        assert_eq!(dms.len(), 1, "{dms:?}");
        let dm = content(&dms[0]);
        assert!(dm.contains("removed the portrait of your character **Aria**"), "{dm}");
        assert!(dm.ends_with("Reason: Not safe for work"), "{dm}");

        let records = bot.discord.channel_messages(MOD_CHANNEL);
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0]["embeds"][0]["title"], "Portrait removed");
        assert_eq!(field(&records[0], "Moderator"), format!("<@{}>", ADMIN.id));
        assert_eq!(field(&records[0], "Player"), format!("<@{PLAYER}>"));
        assert_eq!(field(&records[0], "Character"), "Aria");
        assert_eq!(field(&records[0], "Reason"), "Not safe for work");

        let history = deferred(&bot, &admin(&["history"], &[Opt::Player(PLAYER_USER), Opt::Str("character", "Aria")])).await;
        let text = content(&history);
        let removal_line = text.lines().nth(1).unwrap_or_default();
        assert!(removal_line.contains(&format!("removed by admin <@{}> · Not safe for work", ADMIN.id)), "newest first: {text}");
        assert!(text.contains(&format!("uploaded by player <@{PLAYER}>")), "{text}");
        assert_eq!(bot.metric("portrait_moderation_actions_total{action=\"removed\"}").await, 1.0);

        // The same picture re-encoded and resized is refused; a different one is not.
        let smaller = original.resize_exact(160, 160, FilterType::Triangle);
        let larger = original.resize_exact(480, 480, FilterType::Triangle);
        for again in [jpeg(&original, 70), jpeg(&smaller, 70), jpeg(&larger, 70)] {
            let refused = set_portrait(&bot, GUILD_ID, "Aria", &again).await;
            assert_eq!(content(&refused), BLOCKED, "{refused}");
            assert!(is_ephemeral(&refused));
        }
        assert_eq!(bot.character(PLAYER, "Aria").await.unwrap().portrait_url, None);
        assert!(bot.bucket_keys().await.is_empty());
        assert_eq!(bot.metric("portrait_moderation_actions_total{action=\"blocked_upload\"}").await, 3.0);
        let unrelated = set_portrait(&bot, GUILD_ID, "Aria", &png(&picture(7))).await;
        assert!(content(&unrelated).contains("Portrait saved"), "{unrelated}");
    }

    async fn deleting_a_character_keeps_a_shared_object_and_succeeds_when_the_player_closed_dms(t: TestDb) {
        let bot = TestBot::start_with(t, no_message_step()).await;
        bot.command(&admin(&["settings", "set"], &[Opt::Channel("mod_channel", MOD_CHANNEL)])).await;
        // Same name and bytes make one stored object, shown by both players' Brom.
        let shared = png(&picture(2));
        let url = register_with(&bot, PLAYER_USER, "Brom", &shared).await;
        assert_eq!(register_with(&bot, OTHER_USER, "Brom", &shared).await, url);
        assert_eq!(bot.bucket_keys().await.len(), 1);
        bot.discord.close_dms(PLAYER);

        let deleted = deferred(&bot, &admin(&["character", "delete"], &[
            Opt::Player(PLAYER_USER),
            Opt::Str("character", "Brom"),
            Opt::Str("reason", "Impersonation"),
        ])).await;
        let text = content(&deleted);
        assert!(text.contains("deleted the character **Brom**"), "{text}");
        assert!(text.contains("The stored image is kept: another character still shows it."), "{text}");
        assert!(text.contains("The player does not accept DMs, so they were not told."), "{text}");
        assert!(bot.character(PLAYER, "Brom").await.is_none(), "deleted");
        let others = bot.character(OTHER_USER.id, "Brom").await.expect("the other player's Brom stays");
        assert_eq!(others.portrait_url.as_deref(), Some(url.as_str()));
        assert_eq!(bot.bucket_keys().await.len(), 1, "the shared object is kept");
        assert!(bot.discord.direct_messages(PLAYER).is_empty());
        let records = bot.discord.channel_messages(MOD_CHANNEL);
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0]["embeds"][0]["title"], "Character deleted");
        assert_eq!(field(&records[0], "Reason"), "Impersonation");
        assert_eq!(bot.metric("portrait_moderation_actions_total{action=\"deleted\"}").await, 1.0);

        // The history outlives the character.
        let history = deferred(&bot, &admin(&["history"], &[Opt::Player(PLAYER_USER), Opt::Str("character", "brom")])).await;
        let text = content(&history);
        assert!(text.starts_with(&format!("**Brom** (deleted) of <@{PLAYER}>")), "{text}");
        assert!(text.contains(&format!("deleted by admin <@{}> · Impersonation", ADMIN.id)), "{text}");
        let none = deferred(&bot, &admin(&["history"], &[Opt::Player(PLAYER_USER), Opt::Str("character", "Nobody")])).await;
        assert!(content(&none).contains("has no character named `Nobody` here"), "{none}");

        // A second delete finds nothing and changes nothing.
        let again = deferred(&bot, &admin(&["character", "delete"], &[
            Opt::Player(PLAYER_USER),
            Opt::Str("character", "Brom"),
            Opt::Str("reason", "Impersonation"),
        ])).await;
        assert!(content(&again).contains("has no character named `Brom` here"), "{again}");
        assert_eq!(bot.metric("portrait_moderation_actions_total{action=\"deleted\"}").await, 1.0);
    }

    async fn the_block_list_lists_this_servers_entries_and_removing_one_lets_the_picture_back(t: TestDb) {
        let bot = TestBot::start_with(t, no_message_step()).await;
        let original = picture(1);
        register_with(&bot, PLAYER_USER, "Aria", &png(&original)).await;
        register_with(&bot, PLAYER_USER, "Brom", &png(&picture(2))).await;
        for (name, reason) in [("Aria", "Gore"), ("Brom", "Spam")] {
            deferred(&bot, &admin(&["portrait", "remove"], &[
                Opt::Player(PLAYER_USER),
                Opt::Str("character", name),
                Opt::Str("reason", reason),
            ])).await;
        }
        let db = &bot.db.db;
        let elsewhere = db.add_blocked_image(OTHER_GUILD, "AAAAAAAAAAA=", Some("Zed"), Some("x"), None).await.unwrap();
        let entries = db.blocked_images(GUILD_ID).await.unwrap();
        let [aria, brom] = [&entries[0], &entries[1]];

        let listed = bot.command(&admin(&["blocklist", "list"], &[])).await;
        assert!(is_ephemeral(&listed), "{listed}");
        let text = content(&listed);
        assert!(text.contains("(2 entries, newest first)"), "{text}");
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert!(lines[0].starts_with(&format!("- #{} · Brom · ", brom.id)), "{text}");
        assert!(lines[0].ends_with(&format!("by <@{}> · Spam", ADMIN.id)), "{text}");
        assert!(lines[1].starts_with(&format!("- #{} · Aria · ", aria.id)), "{text}");
        assert!(!text.contains("Zed"), "another server's entries are not listed: {text}");

        for (entry, problem) in [(elsewhere.id, elsewhere.id), (999_999, 999_999)] {
            let refused = bot.command(&admin(&["blocklist", "remove"], &[Opt::Int("entry", entry)])).await;
            assert!(is_ephemeral(&refused), "{refused}");
            assert!(content(&refused).contains(&format!("has no entry #{problem}")), "{refused}");
        }
        assert_eq!(db.blocked_images(OTHER_GUILD).await.unwrap().len(), 1, "untouched");

        let blocked = set_portrait(&bot, GUILD_ID, "Aria", &jpeg(&original, 80)).await;
        assert_eq!(content(&blocked), BLOCKED);
        let lifted = bot.command(&admin(&["blocklist", "remove"], &[Opt::Int("entry", aria.id)])).await;
        assert!(content(&lifted).contains(&format!("Entry #{} is off the block-list", aria.id)), "{lifted}");
        let back = set_portrait(&bot, GUILD_ID, "Aria", &jpeg(&original, 80)).await;
        assert!(content(&back).contains("Portrait saved"), "{back}");
        let left = db.blocked_images(GUILD_ID).await.unwrap();
        assert_eq!(left.iter().map(|e| e.id).collect::<Vec<_>>(), [brom.id]);
    }

    async fn a_member_without_manage_server_is_refused_every_admin_command_privately_and_nothing_changes(t: TestDb) {
        let options = BotOptions {
            admin_user_ids: vec![OTHER_USER.id],
            ..no_message_step()
        };
        let bot = TestBot::start_with(t, options).await;
        bot.command(&admin(&["settings", "set"], &[Opt::Channel("mod_channel", MOD_CHANNEL), Opt::Int("max_characters", 3)])).await;
        let url = register_with(&bot, PLAYER_USER, "Aria", &png(&picture(1))).await;
        register_with(&bot, PLAYER_USER, "Brom", &png(&picture(2))).await;
        deferred(&bot, &admin(&["portrait", "remove"], &[
            Opt::Player(PLAYER_USER),
            Opt::Str("character", "Brom"),
            Opt::Str("reason", "Spam"),
        ])).await;
        let entry = bot.db.db.blocked_images(GUILD_ID).await.unwrap()[0].id;
        let keys = bot.bucket_keys().await;
        let who = [Opt::Player(PLAYER_USER), Opt::Str("character", "Aria")];

        let attempts: Vec<(&[&str], Vec<Opt>)> = vec![
            (&["settings", "show"], vec![]),
            (&["settings", "set"], vec![Opt::Int("max_characters", 50), Opt::Channel("mod_channel", CHANNEL_ID)]),
            (&["portrait", "remove"], vec![Opt::Player(PLAYER_USER), Opt::Str("character", "Aria"), Opt::Str("reason", "mine")]),
            (&["character", "delete"], vec![Opt::Player(PLAYER_USER), Opt::Str("character", "Aria"), Opt::Str("reason", "mine")]),
            (&["history"], vec![Opt::Player(PLAYER_USER), Opt::Str("character", "Aria")]),
            (&["blocklist", "list"], vec![]),
            (&["blocklist", "remove"], vec![Opt::Int("entry", entry)]),
            (&["stats"], vec![]),
        ];
        for (path, options) in &attempts {
            let interaction = admin_as(MEMBER_HERE, path, options);
            bot.discord.send_interaction(interaction.clone()).await;
            let answer = bot.discord.wait_for_rest("the refusal", discord::is_callback(&interaction), ANSWER).await;
            assert_eq!(answer.body()["type"], 4, "{path:?}: answered at once: {:?}", answer.json);
            assert_eq!(answer.body()["data"]["flags"], 64, "{path:?}: privately");
            assert_eq!(answer.body()["data"]["content"], ADMINS_ONLY, "{path:?}");
        }

        let aria = bot.character(PLAYER, "Aria").await.expect("not deleted");
        assert_eq!(aria.portrait_url.as_deref(), Some(url.as_str()), "not removed");
        assert_eq!(bot.bucket_keys().await, keys);
        let stored = bot.db.db.guild_settings(GUILD_ID).await.unwrap();
        assert_eq!((stored.max_characters, stored.mod_channel_id), (Some(3), Some(MOD_CHANNEL)));
        assert_eq!(bot.db.db.blocked_images(GUILD_ID).await.unwrap().len(), 1);
        assert_eq!(bot.discord.direct_messages(PLAYER).len(), 1, "only the one removal's DM");
        assert_eq!(bot.discord.channel_messages(MOD_CHANNEL).len(), 1, "only the one record");

        // An admin typing a character's name gets the chosen player's characters.
        let typing = admin_payload(autocomplete("admin"), ADMIN_HERE, &["history"], &[Opt::Player(PLAYER_USER), Opt::Focused("character", "ar")]);
        bot.discord.send_interaction(typing.clone()).await;
        let answer = bot.discord.wait_for_rest("the choices", discord::is_callback(&typing), ANSWER).await;
        assert_eq!(answer.body()["type"], 8);
        assert_eq!(answer.body()["data"]["choices"], json!([{ "name": "Aria", "value": "Aria" }]));

        // ADMIN_USER_IDS counts as admin without Manage Server.
        let listed_admin = Caller { user: OTHER_USER, permissions: permissions::MEMBER, guild: GUILD_ID };
        let shown = bot.command(&admin_as(listed_admin, &["history"], &who)).await;
        assert!(content(&shown).contains("**Aria** of"), "{shown}");
    }
}
