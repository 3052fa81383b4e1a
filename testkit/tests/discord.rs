//! The simulated Discord against a bare serenity client (no poise): what it sends must
//! deserialize in serenity 0.12, and what serenity sends must be recorded as tests expect.

use std::sync::Arc;
use std::time::Duration;

use serenity::all::{
    AttachmentId, Command, CommandDataOptionValue, CommandInteraction, ComponentInteraction,
    Context, CreateAttachment, CreateAutocompleteResponse, CreateCommand, CreateCommandOption,
    CreateInteractionResponse, CreateInteractionResponseFollowup, CreateInteractionResponseMessage,
    CreateMessage, EditInteractionResponse, EditMessage, EventHandler, GatewayError,
    GatewayIntents, Guild, GuildId, HttpBuilder, HttpError, Interaction, Message, Permissions,
    Ready, ShardManager,
};
use serenity::client::ClientBuilder;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use testkit::discord::{
    self, autocomplete, button_click, guild_on_shard, is_callback, is_followup, is_original_edit,
    message_create, slash_command, Attachment, TestDiscord, APPLICATION_ID, BOT_USER_ID,
    CHANNEL_ID, GUILD_ID, OTHER_USER, PLAYER_USER,
};

const TOKEN: &str = discord::BOT_TOKEN;
const WAIT: Duration = Duration::from_secs(10);

/// What the bot's event handler saw.
enum Seen {
    Ready(Box<Ready>),
    GuildCreate(GuildId),
    Command(Box<CommandInteraction>, Box<Responses>),
    Autocomplete(Box<CommandInteraction>),
    Component(Box<ComponentInteraction>),
    Message(Box<Message>),
}

/// What the REST calls a command handler made returned.
struct Responses {
    defer: serenity::Result<()>,
    second_ack: serenity::Result<()>,
    followup: serenity::Result<Message>,
    edit: serenity::Result<Message>,
}

struct Recorder {
    seen: mpsc::UnboundedSender<Seen>,
}

#[serenity::async_trait]
impl EventHandler for Recorder {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        let _ = self.seen.send(Seen::Ready(Box::new(ready)));
    }

    async fn guild_create(&self, _ctx: Context, guild: Guild, _is_new: Option<bool>) {
        let _ = self.seen.send(Seen::GuildCreate(guild.id));
    }

    async fn message(&self, _ctx: Context, message: Message) {
        let _ = self.seen.send(Seen::Message(Box::new(message)));
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        match interaction {
            Interaction::Command(command) => {
                let responses = respond(&ctx, &command).await;
                let _ = self
                    .seen
                    .send(Seen::Command(Box::new(command), Box::new(responses)));
            }
            Interaction::Autocomplete(command) => {
                let choices = CreateAutocompleteResponse::new().add_string_choice("Aria", "aria");
                let _ = command
                    .create_response(&ctx.http, CreateInteractionResponse::Autocomplete(choices))
                    .await;
                let _ = self.seen.send(Seen::Autocomplete(Box::new(command)));
            }
            Interaction::Component(component) => {
                let _ = component
                    .create_response(&ctx.http, CreateInteractionResponse::Acknowledge)
                    .await;
                let _ = self.seen.send(Seen::Component(Box::new(component)));
            }
            _ => {}
        }
    }
}

/// What a portrait command does over REST: defer (ephemeral), a follow-up with a file, an edit
/// of the original; plus a second acknowledgement, which Discord refuses.
async fn respond(ctx: &Context, command: &CommandInteraction) -> Responses {
    let defer = command
        .create_response(
            &ctx.http,
            CreateInteractionResponse::Defer(
                CreateInteractionResponseMessage::new().ephemeral(true),
            ),
        )
        .await;
    let second_ack = command.defer(&ctx.http).await;
    let followup = command
        .create_followup(
            &ctx.http,
            CreateInteractionResponseFollowup::new()
                .content("Here is Aria")
                .ephemeral(true)
                .add_file(CreateAttachment::bytes(b"PNG bytes".to_vec(), "aria.png")),
        )
        .await;
    let edit = command
        .edit_response(
            &ctx.http,
            EditInteractionResponse::new().content("Portrait saved"),
        )
        .await;
    Responses {
        defer,
        second_ack,
        followup,
        edit,
    }
}

struct Bot {
    seen: mpsc::UnboundedReceiver<Seen>,
    run: JoinHandle<serenity::Result<()>>,
    shard_manager: Arc<ShardManager>,
}

impl Bot {
    /// A serenity client on the simulated Discord; `shard` is `(id, total)`, else one shard.
    async fn start(
        discord: &TestDiscord,
        intents: GatewayIntents,
        shard: Option<(u32, u32)>,
    ) -> Bot {
        let http = HttpBuilder::new(TOKEN)
            .proxy(discord.api_base())
            .ratelimiter_disabled(true)
            .build();
        let (sender, seen) = mpsc::unbounded_channel();
        let mut client = ClientBuilder::new_with_http(http, intents)
            .event_handler(Recorder { seen: sender })
            .await
            .expect("the serenity client builds");
        let shard_manager = client.shard_manager.clone();
        let run = tokio::spawn(async move {
            match shard {
                Some((id, total)) => client.start_shard(id, total).await,
                None => client.start().await,
            }
        });
        Bot {
            seen,
            run,
            shard_manager,
        }
    }

    /// The first event `pick` accepts (others are skipped); panics after [`WAIT`].
    async fn expect<T>(&mut self, what: &str, mut pick: impl FnMut(Seen) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.seen.recv()).await {
                Ok(Some(seen)) => {
                    if let Some(found) = pick(seen) {
                        return found;
                    }
                }
                Ok(None) => panic!("the bot stopped before {what}"),
                Err(_) => panic!("the bot did not see {what} within {WAIT:?}"),
            }
        }
    }

    /// Interactions seen so far and not yet taken, by guild.
    fn pending_interaction_guilds(&mut self) -> Vec<Option<GuildId>> {
        let mut guilds = Vec::new();
        while let Ok(seen) = self.seen.try_recv() {
            match seen {
                Seen::Command(command, _) | Seen::Autocomplete(command) => {
                    guilds.push(command.guild_id)
                }
                Seen::Component(component) => guilds.push(component.guild_id),
                _ => {}
            }
        }
        guilds
    }

    async fn stop(self) {
        self.shard_manager.shutdown_all().await;
        self.run.abort();
    }
}

fn intents() -> GatewayIntents {
    GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT
}

/// The simulated Discord with [`GUILD_ID`] and a bot that got READY and its GUILD_CREATE.
async fn connected() -> (TestDiscord, Bot) {
    let discord = TestDiscord::start().await;
    discord.add_guild(GUILD_ID);
    let mut bot = Bot::start(&discord, intents(), None).await;
    discord.wait_ready(1).await;
    bot.expect("the guild's GUILD_CREATE", |seen| match seen {
        Seen::GuildCreate(id) if id.get() == GUILD_ID => Some(()),
        _ => None,
    })
    .await;
    (discord, bot)
}

#[tokio::test]
async fn a_bare_serenity_client_identifies_with_its_intents_and_receives_ready_and_its_guild() {
    let discord = TestDiscord::start().await;
    discord.add_guild(GUILD_ID);
    let mut bot = Bot::start(&discord, intents(), None).await;

    discord.wait_ready(1).await;
    let ready = bot
        .expect("READY", |seen| match seen {
            Seen::Ready(ready) => Some(ready),
            _ => None,
        })
        .await;
    assert_eq!(ready.user.id.get(), BOT_USER_ID);
    assert!(ready.user.bot);
    assert_eq!(ready.application.id.get(), APPLICATION_ID);
    let guilds: Vec<u64> = ready.guilds.iter().map(|g| g.id.get()).collect();
    assert_eq!(guilds, [GUILD_ID]);
    bot.expect("GUILD_CREATE", |seen| match seen {
        Seen::GuildCreate(id) => Some(id),
        _ => None,
    })
    .await;

    let identifies = discord.identifies();
    assert_eq!(identifies.len(), 1);
    assert_eq!(identifies[0]["intents"], intents().bits());
    assert_eq!(identifies[0]["shard"], serde_json::json!([0, 1]));
    // serenity sends the token as it sends the Authorization header: "Bot <token>".
    assert!(
        identifies[0]["token"] == format!("Bot {TOKEN}"),
        "the IDENTIFY carries the bot token"
    );
    let gateway_lookups = discord
        .rest_calls()
        .iter()
        .filter(|call| call.is("GET", "/api/v10/gateway"))
        .count();
    assert_eq!(gateway_lookups, 1, "serenity asks REST for the gateway URL");
    bot.stop().await;
}

#[tokio::test]
async fn a_slash_command_with_an_attachment_arrives_whole_and_its_ephemeral_defer_is_recorded() {
    let (discord, mut bot) = connected().await;
    let image = Attachment::new(
        "aria.png",
        "https://cdn.discordapp.com/attachments/1/2/aria.png?ex=1",
        12_345,
    )
    .content_type("image/png")
    .dimensions(640, 480);
    let interaction = slash_command("portrait")
        .subcommand("set")
        .option_str("character", "Aria")
        .option_attachment("image", &image)
        .attachment_size_limit(8 * 1024 * 1024)
        .permissions(discord::permissions::MEMBER | discord::permissions::MANAGE_GUILD)
        .build();

    discord.send_interaction(interaction.clone()).await;
    let (command, responses) = bot
        .expect("the slash command", |seen| match seen {
            Seen::Command(command, responses) => Some((command, responses)),
            _ => None,
        })
        .await;

    assert_eq!(command.data.name, "portrait");
    assert_eq!(command.user.id.get(), PLAYER_USER.id);
    assert_eq!(command.guild_id, Some(GuildId::new(GUILD_ID)));
    assert_eq!(command.attachment_size_limit, 8 * 1024 * 1024);
    let member_permissions = command
        .member
        .as_ref()
        .and_then(|m| m.permissions)
        .expect("member permissions");
    assert!(member_permissions.contains(Permissions::MANAGE_GUILD));
    let [set] = command.data.options.as_slice() else {
        panic!("one subcommand option: {:?}", command.data.options)
    };
    assert_eq!(set.name, "set");
    let CommandDataOptionValue::SubCommand(options) = &set.value else {
        panic!("a subcommand: {:?}", set.value)
    };
    assert_eq!(
        options[0].value,
        CommandDataOptionValue::String("Aria".into())
    );
    assert_eq!(
        options[1].value,
        CommandDataOptionValue::Attachment(AttachmentId::new(image.id))
    );
    let resolved = &command.data.resolved.attachments[&AttachmentId::new(image.id)];
    assert_eq!(resolved.url, image.url);
    assert_eq!(resolved.size, 12_345);
    assert_eq!(resolved.filename, "aria.png");
    assert_eq!(resolved.content_type.as_deref(), Some("image/png"));
    assert_eq!(resolved.dimensions(), Some((640, 480)));

    responses.defer.expect("the defer is accepted");
    let defer = discord
        .wait_for_rest("the defer", is_callback(&interaction), WAIT)
        .await;
    assert_eq!(defer.body()["type"], 5);
    assert_eq!(defer.body()["data"]["flags"], 64);

    match responses.second_ack {
        Err(serenity::Error::Http(HttpError::UnsuccessfulRequest(response))) => {
            assert_eq!(response.error.code, 40060, "{}", response.error.message)
        }
        other => panic!("a second acknowledgement must be refused, got {other:?}"),
    }

    let followup = responses.followup.expect("the follow-up is accepted");
    assert_eq!(followup.content, "Here is Aria");
    assert_eq!(followup.attachments[0].filename, "aria.png");
    assert_eq!(followup.attachments[0].size, 9);
    let sent = discord
        .wait_for_rest("the follow-up", is_followup(&interaction), WAIT)
        .await;
    assert_eq!(sent.body()["content"], "Here is Aria");
    assert_eq!(sent.body()["flags"], 64);
    assert_eq!(sent.files, [("aria.png".to_owned(), b"PNG bytes".to_vec())]);

    let edited = responses.edit.expect("the edit is accepted");
    assert_eq!(edited.content, "Portrait saved");
    discord
        .wait_for_rest("the edit", is_original_edit(&interaction), WAIT)
        .await;
    let original = discord
        .original_response(&interaction)
        .expect("the original response exists");
    assert_eq!(original["content"], "Portrait saved");
    assert_eq!(original["flags"], 64, "still ephemeral, no longer loading");
    bot.stop().await;
}

#[tokio::test]
async fn a_message_with_an_attachment_reaches_the_handler_with_its_author_and_file() {
    let (discord, mut bot) = connected().await;
    let image = Attachment::new(
        "aria.webp",
        "https://cdn.discordapp.com/attachments/1/3/aria.webp",
        2_048,
    )
    .content_type("image/webp");

    discord
        .send_message(message_create(
            CHANNEL_ID,
            Some(GUILD_ID),
            OTHER_USER,
            "not me",
            &[],
        ))
        .await;
    discord
        .send_message(message_create(
            CHANNEL_ID,
            Some(GUILD_ID),
            PLAYER_USER,
            "here she is",
            std::slice::from_ref(&image),
        ))
        .await;

    let message = bot
        .expect("the player's message", |seen| match seen {
            Seen::Message(m) if m.author.id.get() == PLAYER_USER.id => Some(m),
            _ => None,
        })
        .await;
    assert_eq!(message.content, "here she is");
    assert_eq!(message.author.name, PLAYER_USER.name);
    assert_eq!(message.guild_id, Some(GuildId::new(GUILD_ID)));
    assert_eq!(message.channel_id.get(), CHANNEL_ID);
    let [file] = message.attachments.as_slice() else {
        panic!("one attachment: {:?}", message.attachments)
    };
    assert_eq!(file.url, image.url);
    assert_eq!(file.size, 2_048);
    assert_eq!(file.content_type.as_deref(), Some("image/webp"));
    bot.stop().await;
}

#[tokio::test]
async fn a_direct_message_goes_to_shard_zero_without_a_guild() {
    let (discord, mut bot) = connected().await;
    discord
        .send_message(message_create(CHANNEL_ID + 1, None, PLAYER_USER, "dm", &[]))
        .await;
    let message = bot
        .expect("the DM", |seen| match seen {
            Seen::Message(m) => Some(m),
            _ => None,
        })
        .await;
    assert_eq!(message.guild_id, None);
    assert_eq!(message.content, "dm");
    bot.stop().await;
}

#[tokio::test]
async fn a_button_click_and_an_autocomplete_deserialize_and_their_answers_are_recorded() {
    let (discord, mut bot) = connected().await;
    let message_id = discord::next_id();
    let click = button_click("confirm:42", PLAYER_USER, GUILD_ID, CHANNEL_ID, message_id);
    discord.send_interaction(click.clone()).await;
    let component = bot
        .expect("the button click", |seen| match seen {
            Seen::Component(c) => Some(c),
            _ => None,
        })
        .await;
    assert_eq!(component.data.custom_id, "confirm:42");
    assert_eq!(component.message.id.get(), message_id);
    assert_eq!(component.user.id.get(), PLAYER_USER.id);
    let ack = discord
        .wait_for_rest("the button's acknowledgement", is_callback(&click), WAIT)
        .await;
    assert_eq!(ack.body()["type"], 6);

    let typing = autocomplete("portrait")
        .subcommand("show")
        .focused("character", "Ar")
        .build();
    discord.send_interaction(typing.clone()).await;
    let command = bot
        .expect("the autocomplete", |seen| match seen {
            Seen::Autocomplete(c) => Some(c),
            _ => None,
        })
        .await;
    let focused = command.data.autocomplete().expect("a focused option");
    assert_eq!((focused.name, focused.value), ("character", "Ar"));
    let choices = discord
        .wait_for_rest("the autocomplete choices", is_callback(&typing), WAIT)
        .await;
    assert_eq!(choices.body()["type"], 8);
    assert_eq!(choices.body()["data"]["choices"][0]["value"], "aria");
    bot.stop().await;
}

#[tokio::test]
async fn rest_routes_answer_with_objects_serenity_accepts_and_unknown_routes_are_404s() {
    let discord = TestDiscord::start().await;
    let http = discord.http();

    let app = http
        .get_current_application_info()
        .await
        .expect("application info");
    assert_eq!(app.id.get(), APPLICATION_ID);
    assert!(app.owner.is_some());
    assert_eq!(
        http.get_current_user().await.expect("bot user").id.get(),
        BOT_USER_ID
    );
    assert_eq!(
        http.get_gateway().await.expect("gateway").url,
        discord.gateway_url()
    );
    assert_eq!(http.get_bot_gateway().await.expect("bot gateway").shards, 1);

    let portrait = CreateCommand::new("portrait")
        .description("Show or set a portrait")
        .add_option(CreateCommandOption::new(
            serenity::all::CommandOptionType::Attachment,
            "image",
            "The picture",
        ));
    let global = Command::set_global_commands(&http, vec![portrait.clone()])
        .await
        .expect("global commands registered");
    assert_eq!(global[0].name, "portrait");
    assert_eq!(global[0].application_id.get(), APPLICATION_ID);
    let in_guild = GuildId::new(GUILD_ID)
        .set_commands(&http, vec![portrait])
        .await
        .expect("guild commands registered");
    assert_eq!(in_guild[0].guild_id, Some(GuildId::new(GUILD_ID)));
    assert_eq!(discord.registered_commands(Some(GUILD_ID)).len(), 1);

    let channel = serenity::all::ChannelId::new(CHANNEL_ID);
    let sent = channel
        .send_message(
            &http,
            CreateMessage::new()
                .content("Migrating 3 portraits…")
                .add_file(CreateAttachment::bytes(b"report".to_vec(), "report.txt")),
        )
        .await
        .expect("a channel message");
    assert_eq!(sent.author.id.get(), BOT_USER_ID);
    let served = reqwest::get(&sent.attachments[0].url)
        .await
        .expect("the uploaded file is served")
        .bytes()
        .await
        .expect("its bytes");
    assert_eq!(&served[..], b"report");
    let edited = channel
        .edit_message(
            &http,
            sent.id,
            EditMessage::new().content("Migrated 3 portraits"),
        )
        .await
        .expect("the edit");
    assert_eq!(edited.content, "Migrated 3 portraits");
    assert_eq!(
        discord.message(sent.id.get()).expect("stored")["content"],
        "Migrated 3 portraits"
    );

    let unknown = http.get_guild(GuildId::new(GUILD_ID)).await;
    assert!(unknown.is_err(), "an unsimulated route fails");
    let calls = discord.rest_calls();
    assert!(calls
        .iter()
        .any(|c| c.is("GET", &format!("/api/v10/guilds/{GUILD_ID}"))));

    discord.fail_rest(
        "POST",
        "/messages",
        429,
        serde_json::json!({ "message": "You are being rate limited.", "retry_after": 0.25, "global": false }),
        1,
    );
    let limited = channel
        .send_message(&http, CreateMessage::new().content("again"))
        .await;
    match limited {
        Err(serenity::Error::Http(HttpError::UnsuccessfulRequest(response))) => {
            assert_eq!(response.status_code.as_u16(), 429)
        }
        other => panic!("the injected 429 must come back, got {other:?}"),
    }
    channel
        .send_message(&http, CreateMessage::new().content("again"))
        .await
        .expect("only one failure was injected");
}

#[tokio::test]
async fn a_dm_channel_is_opened_once_per_user_and_closed_dms_refuse_with_50007() {
    let discord = TestDiscord::start().await;
    let http = discord.http();
    let player = serenity::all::UserId::new(PLAYER_USER.id);

    let channel = player.create_dm_channel(&http).await.expect("a DM channel");
    assert_eq!(channel.kind, serenity::all::ChannelType::Private);
    assert_eq!(channel.recipient.id, player);
    let again = player
        .create_dm_channel(&http)
        .await
        .expect("the same DM channel");
    assert_eq!(again.id, channel.id, "one DM channel per user");
    channel
        .id
        .send_message(
            &http,
            CreateMessage::new().content("Your portrait was approved."),
        )
        .await
        .expect("the DM");
    let dms = discord.direct_messages(PLAYER_USER.id);
    assert_eq!(dms.len(), 1);
    assert_eq!(dms[0]["content"], "Your portrait was approved.");
    assert!(discord.direct_messages(OTHER_USER.id).is_empty());

    discord.close_dms(PLAYER_USER.id);
    let refused = channel
        .id
        .send_message(&http, CreateMessage::new().content("again"))
        .await;
    match refused {
        Err(serenity::Error::Http(HttpError::UnsuccessfulRequest(response))) => {
            assert_eq!(response.status_code.as_u16(), 403);
            assert_eq!(response.error.code, 50007);
        }
        other => panic!("a closed DM must be refused with 50007, got {other:?}"),
    }
    assert_eq!(discord.direct_messages(PLAYER_USER.id).len(), 1);
}

#[tokio::test]
async fn a_4014_close_ends_the_client_with_disallowed_gateway_intents() {
    let (discord, bot) = connected().await;

    discord.close_gateway(4014, "Disallowed intent(s).").await;

    let error = tokio::time::timeout(WAIT, bot.run)
        .await
        .expect("the client stops")
        .expect("the client task does not panic")
        .expect_err("the client ends with an error");
    assert!(
        matches!(
            error,
            serenity::Error::Gateway(GatewayError::DisallowedGatewayIntents)
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("Disallowed gateway intents"), "{message}");
}

#[tokio::test]
async fn an_identify_asking_for_a_disallowed_intent_is_refused_with_4014() {
    let discord = TestDiscord::start().await;
    discord.disallow_intents(discord::intents::MESSAGE_CONTENT);
    let bot = Bot::start(&discord, intents(), None).await;

    let ended = tokio::time::timeout(WAIT, bot.run)
        .await
        .expect("the client stops")
        .expect("the client task does not panic");
    assert!(
        matches!(
            ended,
            Err(serenity::Error::Gateway(
                GatewayError::DisallowedGatewayIntents
            ))
        ),
        "{ended:?}"
    );
    assert_eq!(discord.ready_sessions(), 0);

    // Without the privileged intent the same bot connects.
    let mut bot = Bot::start(&discord, GatewayIntents::GUILDS, None).await;
    discord.wait_ready(1).await;
    bot.expect("READY", |seen| match seen {
        Seen::Ready(_) => Some(()),
        _ => None,
    })
    .await;
    bot.stop().await;
}

#[tokio::test]
async fn two_clients_with_different_shards_get_only_their_own_guilds_interactions() {
    let discord = TestDiscord::start().await;
    let guild_a = guild_on_shard(0, 2, 1);
    let guild_b = guild_on_shard(1, 2, 1);
    discord.add_guild(guild_a);
    discord.add_guild(guild_b);
    let mut bot_a = Bot::start(&discord, GatewayIntents::GUILDS, Some((0, 2))).await;
    let mut bot_b = Bot::start(&discord, GatewayIntents::GUILDS, Some((1, 2))).await;
    discord.wait_ready(2).await;

    let mut shards: Vec<serde_json::Value> = discord
        .identifies()
        .iter()
        .map(|i| i["shard"].clone())
        .collect();
    shards.sort_by_key(|s| s[0].as_u64());
    assert_eq!(
        shards,
        [serde_json::json!([0, 2]), serde_json::json!([1, 2])]
    );
    let ready_a = bot_a
        .expect("READY of shard 0", |seen| match seen {
            Seen::Ready(r) => Some(r),
            _ => None,
        })
        .await;
    let ready_b = bot_b
        .expect("READY of shard 1", |seen| match seen {
            Seen::Ready(r) => Some(r),
            _ => None,
        })
        .await;
    assert_eq!(
        ready_a
            .guilds
            .iter()
            .map(|g| g.id.get())
            .collect::<Vec<_>>(),
        [guild_a]
    );
    assert_eq!(
        ready_b
            .guilds
            .iter()
            .map(|g| g.id.get())
            .collect::<Vec<_>>(),
        [guild_b]
    );

    let in_a = slash_command("portrait").guild(guild_a).build();
    let in_b = slash_command("portrait").guild(guild_b).build();
    discord.send_interaction(in_b.clone()).await;
    discord.send_interaction(in_a.clone()).await;

    let got_a = bot_a
        .expect("the command in guild A", |seen| match seen {
            Seen::Command(c, _) => Some(c),
            _ => None,
        })
        .await;
    let got_b = bot_b
        .expect("the command in guild B", |seen| match seen {
            Seen::Command(c, _) => Some(c),
            _ => None,
        })
        .await;
    assert_eq!(got_a.guild_id, Some(GuildId::new(guild_a)));
    assert_eq!(got_b.guild_id, Some(GuildId::new(guild_b)));
    // Each interaction was acknowledged once: no client handled the other's guild.
    for interaction in [&in_a, &in_b] {
        let callbacks = discord
            .rest_calls()
            .iter()
            .filter(|call| is_callback(interaction)(call))
            .count();
        assert_eq!(callbacks, 2, "one defer and one refused second ack");
    }
    assert!(bot_a.pending_interaction_guilds().is_empty());
    assert!(bot_b.pending_interaction_guilds().is_empty());
    bot_a.stop().await;
    bot_b.stop().await;
}

type PoiseError = Box<dyn std::error::Error + Send + Sync>;
type PoiseContext<'a> = poise::Context<'a, (), PoiseError>;

/// Set a character's portrait
#[poise::command(slash_command)]
async fn portrait(
    ctx: PoiseContext<'_>,
    #[description = "The picture"] image: serenity::all::Attachment,
) -> Result<(), PoiseError> {
    ctx.defer_ephemeral().await?;
    // Listen before prompting, so the answer cannot arrive before the collector exists.
    let mut posted = Box::pin(
        serenity::all::MessageCollector::new(ctx.serenity_context())
            .author_id(ctx.author().id)
            .channel_id(ctx.channel_id())
            .timeout(WAIT)
            .stream(),
    );
    ctx.send(
        poise::CreateReply::default()
            .content(format!(
                "Got {} ({} bytes); now post another",
                image.filename, image.size
            ))
            .ephemeral(true),
    )
    .await?;
    let answer = match futures::StreamExt::next(&mut posted).await {
        Some(message) => format!("Then {}", message.attachments[0].filename),
        None => "Timed out".to_owned(),
    };
    ctx.send(
        poise::CreateReply::default()
            .content(answer)
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_poise_bot_registers_its_commands_defers_replies_and_collects_the_callers_message() {
    let discord = TestDiscord::start().await;
    discord.add_guild(GUILD_ID);
    let framework = poise::Framework::builder()
        .options(poise::FrameworkOptions {
            commands: vec![portrait()],
            ..Default::default()
        })
        .setup(|ctx, _ready, framework| {
            Box::pin(async move {
                poise::builtins::register_in_guild(
                    ctx,
                    &framework.options().commands,
                    GuildId::new(GUILD_ID),
                )
                .await?;
                Ok(())
            })
        })
        .build();
    let http = HttpBuilder::new(TOKEN)
        .proxy(discord.api_base())
        .ratelimiter_disabled(true)
        .build();
    let mut client = ClientBuilder::new_with_http(http, intents())
        .framework(framework)
        .await
        .expect("the poise client builds");
    let shard_manager = client.shard_manager.clone();
    let run = tokio::spawn(async move { client.start().await });
    discord.wait_ready(1).await;
    let registered = discord
        .wait_for_rest(
            "the guild command registration",
            |c| c.method == "PUT" && c.path.ends_with(&format!("/guilds/{GUILD_ID}/commands")),
            WAIT,
        )
        .await;
    assert_eq!(registered.body()[0]["name"], "portrait");
    assert_eq!(registered.body()[0]["options"][0]["type"], 11);
    assert!(discord
        .rest_calls()
        .iter()
        .any(|c| c.is("GET", "/api/v10/oauth2/applications/@me")));

    let image = Attachment::new(
        "aria.png",
        "https://cdn.discordapp.com/attachments/1/2/aria.png",
        321,
    );
    let interaction = slash_command("portrait")
        .option_attachment("image", &image)
        .build();
    discord.send_interaction(interaction.clone()).await;
    let defer = discord
        .wait_for_rest("the defer", is_callback(&interaction), WAIT)
        .await;
    assert_eq!(
        (
            defer.body()["type"].clone(),
            defer.body()["data"]["flags"].clone()
        ),
        (5.into(), 64.into())
    );
    let prompt = discord
        .wait_for_rest("the prompt", is_followup(&interaction), WAIT)
        .await;
    assert_eq!(
        prompt.body()["content"],
        "Got aria.png (321 bytes); now post another"
    );

    let second = Attachment::new(
        "aria-2.png",
        "https://cdn.discordapp.com/attachments/1/4/aria-2.png",
        99,
    );
    let decoy = Attachment::new(
        "decoy.png",
        "https://cdn.discordapp.com/attachments/1/5/decoy.png",
        99,
    );
    discord
        .send_message(message_create(
            CHANNEL_ID,
            Some(GUILD_ID),
            OTHER_USER,
            "",
            &[decoy],
        ))
        .await;
    discord
        .send_message(message_create(
            CHANNEL_ID,
            Some(GUILD_ID),
            PLAYER_USER,
            "",
            &[second],
        ))
        .await;
    let answer = discord
        .wait_for_rest(
            "the answer",
            |c| is_followup(&interaction)(c) && c.at > prompt.at,
            WAIT,
        )
        .await;
    assert_eq!(answer.body()["content"], "Then aria-2.png");
    shard_manager.shutdown_all().await;
    run.abort();
}

#[tokio::test]
async fn a_session_closed_with_a_resumable_code_resumes_and_keeps_receiving_dispatches() {
    let (discord, mut bot) = connected().await;

    discord.close_gateway(4000, "Unknown error.").await;
    discord.wait_ready(1).await;

    assert_eq!(
        discord.identifies().len(),
        1,
        "resumed, not identified again"
    );
    discord
        .send_message(message_create(
            CHANNEL_ID,
            Some(GUILD_ID),
            PLAYER_USER,
            "still here",
            &[],
        ))
        .await;
    let message = bot
        .expect("a message after the resume", |seen| match seen {
            Seen::Message(m) => Some(m),
            _ => None,
        })
        .await;
    assert_eq!(message.content, "still here");
    bot.stop().await;
}
