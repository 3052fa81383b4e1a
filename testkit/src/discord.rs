//! A simulated Discord: the REST API and the gateway (WebSocket) that serenity 0.12 and
//! poise 0.6 talk to, both on 127.0.0.1, recording everything the bot does.
//!
//! ```text
//! let discord = TestDiscord::start().await;        // REST + gateway on 127.0.0.1:<random>
//! discord.add_guild(GUILD_ID);                     // in READY, then GUILD_CREATE
//! let http = discord.http();                       // HttpBuilder::new(BOT_TOKEN)
//!     // .proxy(discord.api_base()).ratelimiter_disabled(true): the proxy is ignored while
//!     // the rate limiter is on. The bot under test gets DISCORD_API_BASE = api_base().
//! // ... start serenity/poise with ClientBuilder::new_with_http(http, intents) ...
//! discord.wait_ready(1).await;                     // a shard IDENTIFYed and got READY
//! let image = Attachment::new("aria.png", &cdn.host(..), 1234).content_type("image/png");
//! let interaction = slash_command("portrait").option_attachment("image", &image).build();
//! let sent = discord.send_interaction(interaction.clone()).await;
//! let defer = discord.wait_for_rest("the defer", is_callback(&interaction), WAIT).await;
//! assert_eq!(defer.body()["type"], 5);             // what the user sees is in the REST calls
//! let latency = defer.at - sent;
//! ```
//!
//! REST answers like Discord where the bot could get it wrong: a second callback for one
//! interaction is refused (400, code 40060); callbacks, webhooks and `@original` of unknown
//! interactions are 404; anything not simulated is a 404 (and recorded, so tests can notice).
//! Gateway dispatches go to the shard that owns `guild_id` (`(guild_id >> 22) % shards`);
//! events without a guild (DMs) go to shard 0, as on Discord.
//!
//! Note: serenity sends the token as `Bot <token>`, in IDENTIFY as in the Authorization header.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The bot's application id (READY's `application.id`, `/oauth2/applications/@me`).
pub const APPLICATION_ID: u64 = 1_100_000_000_000_000_001;
/// The bot's user id (READY's `user.id`, `/users/@me`). Differs from the application id on
/// purpose, so code mixing them up fails.
pub const BOT_USER_ID: u64 = 1_100_000_000_000_000_002;
/// The bot token the helpers use (fake; never print it).
pub const BOT_TOKEN: &str = "test-token";
/// The bot's user name.
pub const BOT_NAME: &str = "Portrait Bot";
/// The guild the payload builders use unless told otherwise (same as `app::GUILD`).
pub const GUILD_ID: u64 = 1_200_000_000_000_000_001;
/// The channel the payload builders use unless told otherwise.
pub const CHANNEL_ID: u64 = 1_200_000_000_000_000_101;
/// The owner of the application (`/oauth2/applications/@me`), i.e. a poise "owner".
pub const OWNER_USER: User = User {
    id: 800_000_000_000_000_001,
    name: "owner",
};
/// The player the payload builders act as unless told otherwise (id = `app::PLAYER`).
pub const PLAYER_USER: User = User {
    id: 800_000_000_000_000_002,
    name: "player",
};
/// Another player, e.g. to prove a collector ignores other people's messages.
pub const OTHER_USER: User = User {
    id: 800_000_000_000_000_003,
    name: "other-player",
};
/// Discord's default per-file upload limit, sent as `attachment_size_limit`.
pub const DEFAULT_ATTACHMENT_SIZE_LIMIT: u64 = 10 * 1024 * 1024;
/// Heartbeat interval announced in HELLO (Discord's usual value).
pub const HEARTBEAT_INTERVAL_MS: u64 = 41_250;

/// Permission bits (as Discord numbers them) for the payload builders.
pub mod permissions {
    pub const VIEW_CHANNEL: u64 = 1 << 10;
    pub const SEND_MESSAGES: u64 = 1 << 11;
    pub const EMBED_LINKS: u64 = 1 << 14;
    pub const ATTACH_FILES: u64 = 1 << 15;
    pub const READ_MESSAGE_HISTORY: u64 = 1 << 16;
    pub const USE_APPLICATION_COMMANDS: u64 = 1 << 31;
    pub const MANAGE_MESSAGES: u64 = 1 << 13;
    pub const MANAGE_GUILD: u64 = 1 << 5;
    /// What an ordinary member has in an ordinary channel.
    pub const MEMBER: u64 = VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | USE_APPLICATION_COMMANDS;
}

/// Gateway intent bits, to compare with [`TestDiscord::identifies`].
pub mod intents {
    pub const GUILDS: u64 = 1 << 0;
    pub const GUILD_MESSAGES: u64 = 1 << 9;
    pub const DIRECT_MESSAGES: u64 = 1 << 12;
    pub const MESSAGE_CONTENT: u64 = 1 << 15;
}

/// Ids for interactions, messages, attachments and commands: one counter for the whole test
/// binary, so ids never collide between tests and always increase.
static NEXT_ID: AtomicU64 = AtomicU64::new(1_300_000_000_000_000_000);

/// A fresh snowflake-like id.
pub fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

fn now_timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

/// A guild id that lands on shard `shard` of `total` (`(id >> 22) % total == shard`); `n`
/// picks among many such ids.
pub fn guild_on_shard(shard: u64, total: u64, n: u64) -> u64 {
    assert!(
        shard < total,
        "shard {shard} is not below the total {total}"
    );
    let base = 1_000_000_000 / total * total;
    let id = ((base + n * total + shard) << 22) | 1;
    debug_assert_eq!(shard_of(id, total), shard);
    id
}

/// The shard owning `guild_id` when there are `total` shards.
pub fn shard_of(guild_id: u64, total: u64) -> u64 {
    (guild_id >> 22) % total.max(1)
}

// ---------------------------------------------------------------------------------------------
// Recorded REST calls
// ---------------------------------------------------------------------------------------------

/// One REST request the simulated Discord received (every one is recorded, answered or not).
#[derive(Debug, Clone)]
pub struct RestCall {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`.
    pub method: String,
    /// Full path, e.g. `/api/v10/interactions/1/tok/callback`.
    pub path: String,
    /// The raw query string, if any (serenity writes `?&key=value`).
    pub query: Option<String>,
    /// The JSON body, or the `payload_json` part of a multipart body.
    pub json: Option<Value>,
    /// Files of a multipart body: `(filename, bytes)` in the order sent.
    pub files: Vec<(String, Vec<u8>)>,
    /// When the request arrived.
    pub at: Instant,
}

impl RestCall {
    /// Whether this is `method` on exactly `path` (e.g. `"POST"`, `&callback_path(&i)`).
    pub fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }

    /// The JSON body; panics naming the call when there is none.
    pub fn body(&self) -> &Value {
        self.json
            .as_ref()
            .unwrap_or_else(|| panic!("{} {} has no JSON body", self.method, self.path))
    }

    fn summary(&self) -> String {
        let mut line = format!("{} {}", self.method, self.path);
        if let Some(query) = &self.query {
            line.push('?');
            line.push_str(query);
        }
        if let Some(json) = &self.json {
            let mut body = json.to_string();
            if body.len() > 600 {
                body.truncate(600);
                body.push('…');
            }
            line.push(' ');
            line.push_str(&body);
        }
        for (name, bytes) in &self.files {
            line.push_str(&format!(" [file {name}: {} bytes]", bytes.len()));
        }
        line
    }
}

/// `POST /api/v10/interactions/{id}/{token}/callback` of an interaction payload.
pub fn callback_path(interaction: &Value) -> String {
    format!(
        "/api/v10/interactions/{}/{}/callback",
        str_field(interaction, "id"),
        str_field(interaction, "token")
    )
}

/// `POST /api/v10/webhooks/{app}/{token}`: the follow-ups of an interaction.
pub fn followup_path(interaction: &Value) -> String {
    format!(
        "/api/v10/webhooks/{APPLICATION_ID}/{}",
        str_field(interaction, "token")
    )
}

/// `/api/v10/webhooks/{app}/{token}/messages/@original`: the original response.
pub fn original_path(interaction: &Value) -> String {
    format!("{}/messages/@original", followup_path(interaction))
}

/// A predicate for [`TestDiscord::wait_for_rest`]: the interaction's callback.
pub fn is_callback(interaction: &Value) -> impl Fn(&RestCall) -> bool {
    let path = callback_path(interaction);
    move |call| call.is("POST", &path)
}

/// A predicate: a follow-up message of the interaction.
pub fn is_followup(interaction: &Value) -> impl Fn(&RestCall) -> bool {
    let path = followup_path(interaction);
    move |call| call.is("POST", &path)
}

/// A predicate: an edit of the interaction's original response.
pub fn is_original_edit(interaction: &Value) -> impl Fn(&RestCall) -> bool {
    let path = original_path(interaction);
    move |call| call.is("PATCH", &path)
}

fn str_field(value: &Value, key: &str) -> String {
    match value.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => panic!("payload has no `{key}`: {value}"),
    }
}

fn id_field(value: &Value, key: &str) -> Option<u64> {
    match value.get(key)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// A DM channel object (type 1) with `recipient`, as `POST /users/@me/channels` returns it.
fn dm_channel_json(channel_id: u64, recipient: u64) -> Value {
    json!({
        "id": channel_id.to_string(),
        "type": 1,
        "last_message_id": null,
        "flags": 0,
        "recipients": [{
            "id": recipient.to_string(),
            "username": format!("user{recipient}"),
            "discriminator": "0",
            "global_name": null,
            "avatar": null,
            "public_flags": 0,
        }],
    })
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

struct Shared {
    state: Mutex<DiscordState>,
    /// Woken on every change (a REST call, a session getting READY or going away).
    changed: Notify,
    api_base: String,
    ws_url: String,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, DiscordState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Default)]
struct DiscordState {
    guilds: Vec<u64>,
    identifies: Vec<Value>,
    /// Open gateway connections that identified or resumed, by connection number.
    sessions: HashMap<u64, Session>,
    /// Every session id handed out, with its shard, so RESUME can be answered.
    known_sessions: HashMap<String, [u64; 2]>,
    /// IDENTIFYs asking for any of these intents are closed with 4014.
    disallowed_intents: u64,
    rest: Vec<RestCall>,
    faults: Vec<Fault>,
    interactions: HashMap<String, InteractionInfo>,
    acknowledged: HashSet<u64>,
    /// Message id of the original response, by interaction token.
    originals: HashMap<String, u64>,
    messages: BTreeMap<u64, Value>,
    /// Files attached to messages the bot sent, by path under the REST address.
    uploads: HashMap<String, Vec<u8>>,
    global_commands: Vec<Value>,
    guild_commands: HashMap<u64, Vec<Value>>,
    refreshed_urls: HashMap<String, String>,
    /// DM channel id by recipient, made by `POST /users/@me/channels`.
    dm_channels: HashMap<u64, u64>,
    /// Users who do not accept DMs from the bot: posting to their DM channel gets 403/50007.
    dms_closed: HashSet<u64>,
}

struct Session {
    shard: [u64; 2],
    seq: u64,
    tx: mpsc::UnboundedSender<Outgoing>,
}

impl Session {
    /// Queues a dispatch (op 0) with the next sequence number. Called with the state locked,
    /// so sequence numbers and queue order agree.
    fn dispatch(&mut self, event: &str, data: &Value, ack: Option<oneshot::Sender<()>>) {
        self.seq += 1;
        let frame = json!({ "op": 0, "s": self.seq, "t": event, "d": data });
        let _ = self.tx.send(Outgoing::Text(frame.to_string(), ack));
    }

    fn owns(&self, guild_id: Option<u64>) -> bool {
        match guild_id {
            Some(guild_id) => shard_of(guild_id, self.shard[1]) == self.shard[0],
            None => self.shard[0] == 0,
        }
    }
}

struct InteractionInfo {
    id: u64,
    channel_id: u64,
    /// The message a component interaction came from.
    message_id: Option<u64>,
}

struct Fault {
    method: String,
    path_contains: String,
    status: u16,
    body: Value,
    remaining: usize,
}

enum Outgoing {
    Text(String, Option<oneshot::Sender<()>>),
    Close(u16, String, Option<oneshot::Sender<()>>),
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/// The simulated Discord: REST on one 127.0.0.1 port, the gateway on another. Stopped (every
/// connection closed) when dropped.
pub struct TestDiscord {
    shared: Arc<Shared>,
    rest_server: JoinHandle<()>,
    gateway_server: JoinHandle<()>,
}

impl TestDiscord {
    /// Starts REST and gateway on `127.0.0.1:0`.
    pub async fn start() -> TestDiscord {
        let rest_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the simulated Discord REST API");
        let gateway_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the simulated Discord gateway");
        let rest_addr = rest_listener.local_addr().expect("REST address");
        let gateway_addr = gateway_listener.local_addr().expect("gateway address");
        let shared = Arc::new(Shared {
            state: Mutex::new(DiscordState {
                ..DiscordState::default()
            }),
            changed: Notify::new(),
            api_base: format!("http://{rest_addr}"),
            ws_url: format!("ws://{gateway_addr}"),
        });
        let router = axum::Router::new()
            .fallback(serve_rest)
            .with_state(shared.clone());
        let rest_server = tokio::spawn(async move {
            axum::serve(
                rest_listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                }),
                router,
            )
            .await
            .expect("the simulated Discord REST API serves");
        });
        let gateway_server = tokio::spawn(serve_gateway(gateway_listener, shared.clone()));
        TestDiscord {
            shared,
            rest_server,
            gateway_server,
        }
    }

    /// `http://127.0.0.1:PORT`: the value for `HttpBuilder::proxy` / `DISCORD_API_BASE`.
    pub fn api_base(&self) -> String {
        self.shared.api_base.clone()
    }

    /// A serenity `Http` for [`BOT_TOKEN`] aimed at this server (proxy set, rate limiter off,
    /// application id known), for `ClientBuilder::new_with_http` or direct REST calls.
    pub fn http(&self) -> serenity::http::Http {
        serenity::http::HttpBuilder::new(BOT_TOKEN)
            .proxy(self.api_base())
            .ratelimiter_disabled(true)
            .application_id(APPLICATION_ID.into())
            .build()
    }

    /// `ws://127.0.0.1:PORT`: what `GET /gateway` answers.
    pub fn gateway_url(&self) -> String {
        self.shared.ws_url.clone()
    }

    /// The bot is in `guild_id`: listed (unavailable) in the READY of the shard owning it,
    /// followed by a GUILD_CREATE; sent as GUILD_CREATE at once to a shard already READY.
    pub fn add_guild(&self, guild_id: u64) {
        let mut state = self.shared.lock();
        if state.guilds.contains(&guild_id) {
            return;
        }
        state.guilds.push(guild_id);
        let guild = guild_json(guild_id);
        for session in state.sessions.values_mut() {
            if session.owns(Some(guild_id)) {
                session.dispatch("GUILD_CREATE", &guild, None);
            }
        }
    }

    /// IDENTIFYs asking for any of these intent bits are closed with 4014 (Disallowed
    /// intent(s)), as Discord does for privileged intents not enabled in the portal.
    pub fn disallow_intents(&self, intents: u64) {
        self.shared.lock().disallowed_intents = intents;
    }

    /// Waits until `shards` gateway sessions are open and have received READY (or RESUMED).
    /// Panics after 10 s (plus 5 s per extra shard: serenity waits 5 s between the shards of
    /// one client) with what it saw.
    pub async fn wait_ready(&self, shards: usize) {
        let limit = Duration::from_secs(10 + 5 * shards.saturating_sub(1) as u64);
        let reached = self
            .wait_until(limit, |state| state.sessions.len() >= shards)
            .await;
        if !reached {
            let state = self.shared.lock();
            let identifies: Vec<String> = state.identifies.iter().map(redacted).collect();
            let rest: Vec<String> = state.rest.iter().map(RestCall::summary).collect();
            let ready = state.sessions.len();
            drop(state);
            panic!(
                "simulated Discord: only {ready} of {shards} shard(s) got READY within \
                 {limit:?}.\nIDENTIFYs: {identifies:#?}\nREST calls: {rest:#?}"
            );
        }
    }

    /// The `d` of every IDENTIFY received, in order (`intents`, `shard` `[id, count]`,
    /// `token`…). Never print these: they hold the token.
    pub fn identifies(&self) -> Vec<Value> {
        self.shared.lock().identifies.clone()
    }

    /// How many gateway sessions are open and READY.
    pub fn ready_sessions(&self) -> usize {
        self.shared.lock().sessions.len()
    }

    /// Sends the dispatch `event` (op 0, next `s` of each session) to the sessions of the shard
    /// owning `data.guild_id` (shard 0 when there is none, as for DMs), and returns once it is
    /// written to their sockets. Panics when no READY session owns that shard.
    pub async fn dispatch(&self, event: &str, data: Value) {
        self.dispatch_inner(event, &data).await;
    }

    async fn dispatch_inner(&self, event: &str, data: &Value) {
        let guild_id = id_field(data, "guild_id");
        let mut acks = Vec::new();
        {
            let mut state = self.shared.lock();
            if event == "INTERACTION_CREATE" {
                remember_interaction(&mut state, data);
            }
            for session in state.sessions.values_mut() {
                if session.owns(guild_id) {
                    let (ack, acked) = oneshot::channel();
                    session.dispatch(event, data, Some(ack));
                    acks.push(acked);
                }
            }
            if acks.is_empty() {
                let shards: Vec<[u64; 2]> = state.sessions.values().map(|s| s.shard).collect();
                drop(state);
                panic!(
                    "simulated Discord: no READY gateway session owns {event} for guild \
                     {guild_id:?} (open sessions' shards: {shards:?}); call wait_ready first"
                );
            }
        }
        for acked in acks {
            // An error means the connection went away meanwhile, as a real socket could.
            let _ = tokio::time::timeout(Duration::from_secs(5), acked).await;
        }
    }

    /// Sends INTERACTION_CREATE; returns the time just before it was sent.
    pub async fn send_interaction(&self, interaction: Value) -> Instant {
        let at = Instant::now();
        self.dispatch_inner("INTERACTION_CREATE", &interaction)
            .await;
        at
    }

    /// Sends MESSAGE_CREATE (see [`message_create`]).
    pub async fn send_message(&self, message: Value) {
        self.dispatch_inner("MESSAGE_CREATE", &message).await;
    }

    /// Closes every gateway session with `code` (e.g. 4014 Disallowed intent(s)), and returns
    /// once the close frames are written.
    pub async fn close_gateway(&self, code: u16, reason: &str) {
        let mut acks = Vec::new();
        {
            let mut state = self.shared.lock();
            for (_, session) in state.sessions.drain() {
                let (ack, acked) = oneshot::channel();
                let _ = session
                    .tx
                    .send(Outgoing::Close(code, reason.to_owned(), Some(ack)));
                acks.push(acked);
            }
        }
        self.shared.changed.notify_waiters();
        for acked in acks {
            let _ = tokio::time::timeout(Duration::from_secs(5), acked).await;
        }
    }

    /// Every REST call so far, in arrival order.
    pub fn rest_calls(&self) -> Vec<RestCall> {
        self.shared.lock().rest.clone()
    }

    /// Forgets the REST calls so far (e.g. after startup).
    pub fn clear_rest_calls(&self) {
        self.shared.lock().rest.clear();
    }

    /// The first REST call (already received or still to come) matching `predicate`. Panics
    /// after `timeout`, naming `what` and listing every call received.
    pub async fn wait_for_rest(
        &self,
        what: &str,
        predicate: impl Fn(&RestCall) -> bool,
        timeout: Duration,
    ) -> RestCall {
        let mut found = None;
        self.wait_until(timeout, |state| {
            found = state.rest.iter().find(|call| predicate(call)).cloned();
            found.is_some()
        })
        .await;
        match found {
            Some(call) => call,
            None => {
                let calls: Vec<String> = self.rest_calls().iter().map(RestCall::summary).collect();
                panic!(
                    "simulated Discord: no REST call for {what} within {timeout:?}; calls \
                     received: {calls:#?}"
                )
            }
        }
    }

    /// The next `times` requests whose method is `method` and whose path contains
    /// `path_contains` get `status` with `body` instead of the normal answer (still recorded).
    /// For 429 a `Retry-After` header is added from the body's `retry_after`.
    pub fn fail_rest(
        &self,
        method: &str,
        path_contains: &str,
        status: u16,
        body: Value,
        times: usize,
    ) {
        self.shared.lock().faults.push(Fault {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            status,
            body,
            remaining: times,
        });
    }

    /// `POST /attachments/refresh-urls` will answer `refreshed` for `original` (other URLs
    /// come back unchanged).
    pub fn set_refreshed_url(&self, original: &str, refreshed: &str) {
        self.shared
            .lock()
            .refreshed_urls
            .insert(original.to_owned(), refreshed.to_owned());
    }

    /// A message as it stands now (after edits), by id.
    pub fn message(&self, id: u64) -> Option<Value> {
        self.shared.lock().messages.get(&id).cloned()
    }

    /// Every message that exists now (sent by the bot, or a component's message), by id.
    pub fn messages(&self) -> Vec<Value> {
        self.shared.lock().messages.values().cloned().collect()
    }

    /// The original response of the interaction as the user sees it now (after edits).
    pub fn original_response(&self, interaction: &Value) -> Option<Value> {
        let token = str_field(interaction, "token");
        let state = self.shared.lock();
        let id = state.originals.get(&token)?;
        state.messages.get(id).cloned()
    }

    /// Every message in `channel_id` as it stands now, oldest first.
    pub fn channel_messages(&self, channel_id: u64) -> Vec<Value> {
        self.shared
            .lock()
            .messages
            .values()
            .filter(|m| id_field(m, "channel_id") == Some(channel_id))
            .cloned()
            .collect()
    }

    /// The DM channel the bot opened with `user_id`, if it opened one.
    pub fn dm_channel(&self, user_id: u64) -> Option<u64> {
        self.shared.lock().dm_channels.get(&user_id).copied()
    }

    /// The messages the bot sent `user_id` by DM, oldest first.
    pub fn direct_messages(&self, user_id: u64) -> Vec<Value> {
        match self.dm_channel(user_id) {
            Some(channel_id) => self.channel_messages(channel_id),
            None => Vec::new(),
        }
    }

    /// From now on `user_id` does not accept DMs: opening the channel works, posting to it
    /// gets 403 with code 50007, as when a member turned off DMs from server members.
    pub fn close_dms(&self, user_id: u64) {
        self.shared.lock().dms_closed.insert(user_id);
    }

    /// A press of the button `custom_id` on the stored message `message_id` (a message the
    /// bot sent), by `user` with `permissions` in `guild_id`: the interaction carries the
    /// message as it stands now, as Discord's does.
    pub fn press_button(
        &self,
        message_id: u64,
        custom_id: &str,
        user: User,
        guild_id: u64,
        permissions: u64,
    ) -> Value {
        let message = self
            .message(message_id)
            .unwrap_or_else(|| panic!("simulated Discord: no message {message_id} to press"));
        let channel_id = id_field(&message, "channel_id").unwrap_or(CHANNEL_ID);
        let mut interaction = button_click(custom_id, user, guild_id, channel_id, message_id);
        interaction["message"] = message;
        with_permissions(interaction, permissions)
    }

    /// The commands registered by the last `PUT` (globally with `None`, or in a guild).
    pub fn registered_commands(&self, guild_id: Option<u64>) -> Vec<Value> {
        let state = self.shared.lock();
        match guild_id {
            None => state.global_commands.clone(),
            Some(guild_id) => state
                .guild_commands
                .get(&guild_id)
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// Polls `condition` on every change until it holds or `limit` passes.
    async fn wait_until(
        &self,
        limit: Duration,
        mut condition: impl FnMut(&DiscordState) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if condition(&self.shared.lock()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return condition(&self.shared.lock());
            }
        }
    }
}

impl Drop for TestDiscord {
    fn drop(&mut self) {
        self.rest_server.abort();
        // Aborting the accept task drops its JoinSet, which ends every connection.
        self.gateway_server.abort();
    }
}

/// The IDENTIFY with its token hidden, for panic messages.
fn redacted(identify: &Value) -> String {
    let mut identify = identify.clone();
    if let Some(token) = identify.get_mut("token") {
        *token = json!("<redacted>");
    }
    identify.to_string()
}

fn remember_interaction(state: &mut DiscordState, interaction: &Value) {
    let (Some(id), Some(token)) = (
        id_field(interaction, "id"),
        interaction.get("token").and_then(Value::as_str),
    ) else {
        return;
    };
    let message_id = interaction.get("message").and_then(|m| id_field(m, "id"));
    if let (Some(message_id), Some(message)) = (message_id, interaction.get("message")) {
        state
            .messages
            .entry(message_id)
            .or_insert_with(|| message.clone());
    }
    state.interactions.insert(
        token.to_owned(),
        InteractionInfo {
            id,
            channel_id: id_field(interaction, "channel_id").unwrap_or(CHANNEL_ID),
            message_id,
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Gateway
// ---------------------------------------------------------------------------------------------

async fn serve_gateway(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    let mut next_connection = 0_u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else { continue };
                next_connection += 1;
                connections.spawn(serve_gateway_connection(socket, shared.clone(), next_connection));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_gateway_connection(socket: TcpStream, shared: Arc<Shared>, connection: u64) {
    // Real Discord does not hold back small frames; without this, one-way gateway frames wait
    // on the client's delayed ACKs and add tens of milliseconds to what tests measure.
    let _ = socket.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(socket).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    let hello = json!({
        "op": 10, "s": null, "t": null,
        "d": { "heartbeat_interval": HEARTBEAT_INTERVAL_MS, "_trace": ["simulated-discord"] },
    });
    let _ = tx.send(Outgoing::Text(hello.to_string(), None));

    let writer = async move {
        while let Some(outgoing) = rx.recv().await {
            match outgoing {
                Outgoing::Text(text, ack) => {
                    let sent = sink.send(WsMessage::Text(text)).await;
                    if let Some(ack) = ack {
                        let _ = ack.send(());
                    }
                    if sent.is_err() {
                        break;
                    }
                }
                Outgoing::Close(code, reason, ack) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    let _ = sink.send(WsMessage::Close(Some(frame))).await;
                    if let Some(ack) = ack {
                        let _ = ack.send(());
                    }
                    // Keep the connection until the client answers the close.
                }
            }
        }
        // Keep the socket open until the reader ends.
        std::future::pending::<()>().await;
    };

    let reader = {
        let shared = shared.clone();
        let tx = tx.clone();
        async move {
            while let Some(Ok(message)) = stream.next().await {
                match message {
                    WsMessage::Text(text) => {
                        let Ok(payload) = serde_json::from_str::<Value>(&text) else {
                            let _ = tx.send(Outgoing::Close(
                                4002,
                                "Error while decoding payload.".into(),
                                None,
                            ));
                            continue;
                        };
                        handle_gateway_payload(&shared, &tx, connection, payload);
                    }
                    WsMessage::Close(_) => break,
                    _ => {}
                }
            }
        }
    };

    tokio::select! {
        () = reader => {}
        () = writer => {}
    }
    if shared.lock().sessions.remove(&connection).is_some() {
        shared.changed.notify_waiters();
    }
}

fn handle_gateway_payload(
    shared: &Shared,
    tx: &mpsc::UnboundedSender<Outgoing>,
    connection: u64,
    payload: Value,
) {
    let op = payload.get("op").and_then(Value::as_u64);
    let data = payload.get("d").cloned().unwrap_or(Value::Null);
    match op {
        // Heartbeat → Heartbeat ACK.
        Some(1) => {
            let ack = json!({ "op": 11, "s": null, "t": null, "d": null });
            let _ = tx.send(Outgoing::Text(ack.to_string(), None));
        }
        // Identify → READY, then GUILD_CREATE for each guild of the shard.
        Some(2) => identify(shared, tx, connection, data),
        // Resume → RESUMED for a session we handed out, else Invalid Session (not resumable).
        Some(6) => {
            let session_id = data
                .get("session_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let mut state = shared.lock();
            match state.known_sessions.get(&session_id).copied() {
                Some(shard) => {
                    let seq = data.get("seq").and_then(Value::as_u64).unwrap_or(0);
                    let mut session = Session {
                        shard,
                        seq,
                        tx: tx.clone(),
                    };
                    session.dispatch("RESUMED", &json!({ "_trace": ["simulated-discord"] }), None);
                    state.sessions.insert(connection, session);
                    drop(state);
                    shared.changed.notify_waiters();
                }
                None => {
                    drop(state);
                    let invalid = json!({ "op": 9, "s": null, "t": null, "d": false });
                    let _ = tx.send(Outgoing::Text(invalid.to_string(), None));
                }
            }
        }
        // Presence updates, member requests…: accepted and ignored.
        _ => {}
    }
}

fn identify(shared: &Shared, tx: &mpsc::UnboundedSender<Outgoing>, connection: u64, data: Value) {
    let shard = match data.get("shard").and_then(Value::as_array) {
        Some(pair) if pair.len() == 2 => [
            pair[0].as_u64().unwrap_or(0),
            pair[1].as_u64().unwrap_or(1).max(1),
        ],
        _ => [0, 1],
    };
    let intents = data.get("intents").and_then(Value::as_u64).unwrap_or(0);
    let mut state = shared.lock();
    state.identifies.push(data);
    if intents & state.disallowed_intents != 0 {
        drop(state);
        let _ = tx.send(Outgoing::Close(4014, "Disallowed intent(s).".into(), None));
        shared.changed.notify_waiters();
        return;
    }
    let session_id = format!("simulated-session-{connection}-{}", next_id());
    state.known_sessions.insert(session_id.clone(), shard);
    let guilds: Vec<u64> = state
        .guilds
        .iter()
        .copied()
        .filter(|&guild| shard_of(guild, shard[1]) == shard[0])
        .collect();
    let ready = json!({
        "v": 10,
        "user": bot_user_json(),
        "guilds": guilds.iter().map(|id| json!({ "id": id.to_string(), "unavailable": true })).collect::<Vec<_>>(),
        "session_id": session_id,
        "resume_gateway_url": shared.ws_url,
        "shard": shard,
        "application": { "id": APPLICATION_ID.to_string(), "flags": 0 },
        "_trace": ["simulated-discord"],
    });
    let mut session = Session {
        shard,
        seq: 0,
        tx: tx.clone(),
    };
    session.dispatch("READY", &ready, None);
    for guild in guilds {
        session.dispatch("GUILD_CREATE", &guild_json(guild), None);
    }
    state.sessions.insert(connection, session);
    drop(state);
    shared.changed.notify_waiters();
}

// ---------------------------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------------------------

async fn serve_rest(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let at = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let (json, files) = parse_body(&content_type, &body);
    let call = RestCall {
        method: method.to_string(),
        path: path.clone(),
        query,
        json,
        files,
        at,
    };
    let response = {
        let mut state = shared.lock();
        state.rest.push(call.clone());
        match take_fault(&mut state, &call) {
            Some(response) => response,
            None => route(&shared, &mut state, &method, &call),
        }
    };
    shared.changed.notify_waiters();
    response
}

fn take_fault(state: &mut DiscordState, call: &RestCall) -> Option<Response> {
    let fault = state.faults.iter_mut().find(|f| {
        f.remaining > 0 && f.method == call.method && call.path.contains(&f.path_contains)
    })?;
    fault.remaining -= 1;
    let status = StatusCode::from_u16(fault.status).expect("a valid HTTP status");
    let mut response = json_response(status, fault.body.clone());
    if status == StatusCode::TOO_MANY_REQUESTS {
        let seconds = fault
            .body
            .get("retry_after")
            .and_then(Value::as_f64)
            .unwrap_or(1.0)
            .ceil() as u64;
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&seconds.to_string()).expect("a header value"),
        );
    }
    Some(response)
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn discord_error(status: StatusCode, code: u64, message: &str) -> Response {
    json_response(status, json!({ "message": message, "code": code }))
}

fn not_found() -> Response {
    discord_error(StatusCode::NOT_FOUND, 0, "404: Not Found")
}

fn unknown_message() -> Response {
    discord_error(StatusCode::NOT_FOUND, 10008, "Unknown Message")
}

fn unknown_webhook() -> Response {
    discord_error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook")
}

fn route(shared: &Shared, state: &mut DiscordState, method: &Method, call: &RestCall) -> Response {
    let Some(rest) = call.path.strip_prefix("/api/v10/") else {
        return match (method.as_str(), state.uploads.get(&call.path)) {
            ("GET", Some(bytes)) => bytes.clone().into_response(),
            _ => not_found(),
        };
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let app = APPLICATION_ID.to_string();
    let body = call.json.clone().unwrap_or(Value::Null);
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["gateway"]) => json_response(StatusCode::OK, json!({ "url": shared.ws_url })),
        ("GET", ["gateway", "bot"]) => json_response(
            StatusCode::OK,
            json!({
                "url": shared.ws_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1,
                },
            }),
        ),
        ("GET", ["oauth2", "applications", "@me"]) => {
            json_response(StatusCode::OK, application_json())
        }
        ("GET", ["users", "@me"]) => json_response(StatusCode::OK, bot_user_json()),

        ("PUT", ["applications", a, "commands"]) if *a == app => {
            let commands = echo_commands(&body, None);
            state.global_commands = commands.clone();
            json_response(StatusCode::OK, Value::Array(commands))
        }
        ("GET", ["applications", a, "commands"]) if *a == app => {
            json_response(StatusCode::OK, Value::Array(state.global_commands.clone()))
        }
        ("POST", ["applications", a, "commands"]) if *a == app => {
            json_response(StatusCode::CREATED, echo_command(&body, None))
        }
        ("PUT", ["applications", a, "guilds", guild, "commands"]) if *a == app => {
            let Ok(guild_id) = guild.parse::<u64>() else {
                return not_found();
            };
            let commands = echo_commands(&body, Some(guild_id));
            state.guild_commands.insert(guild_id, commands.clone());
            json_response(StatusCode::OK, Value::Array(commands))
        }
        ("GET", ["applications", a, "guilds", guild, "commands"]) if *a == app => {
            let commands = guild
                .parse::<u64>()
                .ok()
                .and_then(|g| state.guild_commands.get(&g).cloned())
                .unwrap_or_default();
            json_response(StatusCode::OK, Value::Array(commands))
        }
        ("POST", ["applications", a, "guilds", guild, "commands"]) if *a == app => json_response(
            StatusCode::CREATED,
            echo_command(&body, guild.parse::<u64>().ok()),
        ),

        ("POST", ["interactions", id, token, "callback"]) => {
            interaction_callback(shared, state, id, token, &body, call)
        }

        ("POST", ["webhooks", a, token]) if *a == app => {
            let Some(info) = state.interactions.get(*token) else {
                return unknown_webhook();
            };
            let channel_id = info.channel_id;
            let message = new_message(shared, state, channel_id, &body, &call.files, true, 0);
            json_response(StatusCode::OK, message)
        }
        (verb, ["webhooks", a, token, "messages", which]) if *a == app => {
            if !state.interactions.contains_key(*token) {
                return unknown_webhook();
            }
            let id = if *which == "@original" {
                state.originals.get(*token).copied()
            } else {
                which.parse::<u64>().ok()
            };
            let Some(id) = id.filter(|id| state.messages.contains_key(id)) else {
                return unknown_message();
            };
            message_verb(shared, state, verb, id, &body, &call.files)
        }

        ("POST", ["users", "@me", "channels"]) => {
            let Some(recipient) = id_field(&body, "recipient_id") else {
                return discord_error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
            };
            let channel_id = *state.dm_channels.entry(recipient).or_insert_with(next_id);
            json_response(StatusCode::OK, dm_channel_json(channel_id, recipient))
        }
        ("POST", ["channels", channel, "messages"]) => {
            let Ok(channel_id) = channel.parse::<u64>() else {
                return not_found();
            };
            let closed_dm = state
                .dm_channels
                .iter()
                .any(|(user, dm)| *dm == channel_id && state.dms_closed.contains(user));
            if closed_dm {
                return discord_error(
                    StatusCode::FORBIDDEN,
                    50007,
                    "Cannot send messages to this user",
                );
            }
            let message = new_message(shared, state, channel_id, &body, &call.files, false, 0);
            json_response(StatusCode::OK, message)
        }
        (verb, ["channels", _, "messages", message]) => {
            let Some(id) = message
                .parse::<u64>()
                .ok()
                .filter(|id| state.messages.contains_key(id))
            else {
                return unknown_message();
            };
            message_verb(shared, state, verb, id, &body, &call.files)
        }

        ("POST", ["attachments", "refresh-urls"]) => {
            let urls = body
                .get("attachment_urls")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let refreshed: Vec<Value> = urls
                .iter()
                .filter_map(Value::as_str)
                .map(|original| {
                    let refreshed = state
                        .refreshed_urls
                        .get(original)
                        .cloned()
                        .unwrap_or_else(|| original.to_owned());
                    json!({ "original": original, "refreshed": refreshed })
                })
                .collect();
            json_response(StatusCode::OK, json!({ "refreshed_urls": refreshed }))
        }
        _ => not_found(),
    }
}

fn message_verb(
    shared: &Shared,
    state: &mut DiscordState,
    verb: &str,
    id: u64,
    body: &Value,
    files: &[(String, Vec<u8>)],
) -> Response {
    match verb {
        "GET" => json_response(StatusCode::OK, state.messages[&id].clone()),
        "PATCH" => {
            let message = edit_message(shared, state, id, body, files);
            json_response(StatusCode::OK, message)
        }
        "DELETE" => {
            state.messages.remove(&id);
            no_content()
        }
        _ => not_found(),
    }
}

fn interaction_callback(
    shared: &Shared,
    state: &mut DiscordState,
    id: &str,
    token: &str,
    body: &Value,
    call: &RestCall,
) -> Response {
    let known = state
        .interactions
        .get(token)
        .filter(|info| info.id.to_string() == id);
    let Some(info) = known else {
        return discord_error(StatusCode::NOT_FOUND, 10062, "Unknown interaction");
    };
    let (interaction_id, channel_id, message_id) = (info.id, info.channel_id, info.message_id);
    if !state.acknowledged.insert(interaction_id) {
        return discord_error(
            StatusCode::BAD_REQUEST,
            40060,
            "Interaction has already been acknowledged.",
        );
    }
    let data = body.get("data").cloned().unwrap_or_else(|| json!({}));
    match body.get("type").and_then(Value::as_u64) {
        // CHANNEL_MESSAGE_WITH_SOURCE
        Some(4) => {
            let message = new_message(shared, state, channel_id, &data, &call.files, true, 20);
            let id = id_field(&message, "id").expect("message id");
            state.originals.insert(token.to_owned(), id);
        }
        // DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: "Bot is thinking…" (flags 128 = LOADING)
        Some(5) => {
            let flags = data.get("flags").and_then(Value::as_u64).unwrap_or(0) | 128;
            let placeholder = json!({ "content": "", "flags": flags });
            let message = new_message(shared, state, channel_id, &placeholder, &[], true, 20);
            let id = id_field(&message, "id").expect("message id");
            state.originals.insert(token.to_owned(), id);
        }
        // DEFERRED_UPDATE_MESSAGE / UPDATE_MESSAGE: the component's message is the original.
        Some(6 | 7) => {
            if let Some(message_id) = message_id {
                state.originals.insert(token.to_owned(), message_id);
                if body["type"] == 7 && state.messages.contains_key(&message_id) {
                    edit_message(shared, state, message_id, &data, &call.files);
                }
            }
        }
        // PONG, AUTOCOMPLETE_RESULT, MODAL (9: the form is in the recorded call), …: nothing
        // to show.
        _ => {}
    }
    no_content()
}

/// Builds, stores and returns a message the bot sent.
fn new_message(
    shared: &Shared,
    state: &mut DiscordState,
    channel_id: u64,
    body: &Value,
    files: &[(String, Vec<u8>)],
    webhook: bool,
    kind: u64,
) -> Value {
    let id = next_id();
    let attachments = store_uploads(shared, state, channel_id, files);
    let mut message = json!({
        "id": id.to_string(),
        "channel_id": channel_id.to_string(),
        "author": bot_user_json(),
        "content": body.get("content").and_then(Value::as_str).unwrap_or_default(),
        "timestamp": now_timestamp(),
        "edited_timestamp": null,
        "tts": false,
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": attachments,
        "embeds": body.get("embeds").cloned().unwrap_or_else(|| json!([])),
        "components": body.get("components").cloned().unwrap_or_else(|| json!([])),
        "pinned": false,
        "type": kind,
        "flags": body.get("flags").and_then(Value::as_u64).unwrap_or(0),
    });
    if webhook {
        message["webhook_id"] = json!(APPLICATION_ID.to_string());
        message["application_id"] = json!(APPLICATION_ID.to_string());
    }
    state.messages.insert(id, message.clone());
    message
}

/// Applies an edit (PATCH body) to a stored message and returns it.
fn edit_message(
    shared: &Shared,
    state: &mut DiscordState,
    id: u64,
    body: &Value,
    files: &[(String, Vec<u8>)],
) -> Value {
    let channel_id = state
        .messages
        .get(&id)
        .and_then(|m| id_field(m, "channel_id"))
        .unwrap_or(CHANNEL_ID);
    let new_attachments = store_uploads(shared, state, channel_id, files);
    let message = state.messages.get_mut(&id).expect("an existing message");
    for key in ["content", "embeds", "components"] {
        if let Some(value) = body.get(key) {
            message[key] = if value.is_null() && key == "content" {
                json!("")
            } else if value.is_null() {
                json!([])
            } else {
                value.clone()
            };
        }
    }
    let mut flags = message["flags"].as_u64().unwrap_or(0) & !128;
    if let Some(new_flags) = body.get("flags").and_then(Value::as_u64) {
        flags = new_flags;
    }
    message["flags"] = json!(flags);
    if let Some(Value::Array(keep)) = body.get("attachments") {
        let keep: HashSet<u64> = keep.iter().filter_map(|a| id_field(a, "id")).collect();
        if let Some(existing) = message["attachments"].as_array_mut() {
            existing.retain(|a| id_field(a, "id").is_some_and(|id| keep.contains(&id)));
        }
    }
    if let Some(existing) = message["attachments"].as_array_mut() {
        existing.extend(new_attachments);
    }
    message["edited_timestamp"] = json!(now_timestamp());
    message.clone()
}

/// Keeps uploaded files (served back under the REST address) and returns their Attachment
/// objects.
fn store_uploads(
    shared: &Shared,
    state: &mut DiscordState,
    channel_id: u64,
    files: &[(String, Vec<u8>)],
) -> Vec<Value> {
    files
        .iter()
        .map(|(filename, bytes)| {
            let id = next_id();
            let path = format!("/attachments/{channel_id}/{id}/{filename}");
            state.uploads.insert(path.clone(), bytes.clone());
            let url = format!("{}{path}", shared.api_base);
            json!({
                "id": id.to_string(),
                "filename": filename,
                "size": bytes.len(),
                "url": url,
                "proxy_url": url,
            })
        })
        .collect()
}

fn echo_commands(body: &Value, guild_id: Option<u64>) -> Vec<Value> {
    body.as_array()
        .map(|commands| commands.iter().map(|c| echo_command(c, guild_id)).collect())
        .unwrap_or_default()
}

/// A registered command as Discord returns it: the request plus ids.
fn echo_command(command: &Value, guild_id: Option<u64>) -> Value {
    let mut command = command.clone();
    let Some(object) = command.as_object_mut() else {
        return command;
    };
    let id = next_id().to_string();
    object.insert("id".into(), json!(id));
    object.insert("version".into(), json!(id));
    object.insert("application_id".into(), json!(APPLICATION_ID.to_string()));
    object.entry("type").or_insert(json!(1));
    object.entry("description").or_insert(json!(""));
    if let Some(guild_id) = guild_id {
        object.insert("guild_id".into(), json!(guild_id.to_string()));
    }
    if let Some(Value::Array(options)) = object.get_mut("options") {
        options.iter_mut().for_each(fill_option_descriptions);
    }
    command
}

fn fill_option_descriptions(option: &mut Value) {
    if let Some(object) = option.as_object_mut() {
        object.entry("description").or_insert(json!(""));
        if let Some(Value::Array(options)) = object.get_mut("options") {
            options.iter_mut().for_each(fill_option_descriptions);
        }
    }
}

/// JSON body, or multipart's `payload_json` plus its files.
fn parse_body(content_type: &str, body: &[u8]) -> (Option<Value>, Vec<(String, Vec<u8>)>) {
    if let Some(boundary) = content_type
        .strip_prefix("multipart/form-data")
        .and_then(|rest| {
            rest.split(';')
                .find_map(|p| p.trim().strip_prefix("boundary="))
        })
    {
        let boundary = boundary.trim_matches('"');
        let mut json = None;
        let mut files = Vec::new();
        for part in multipart_parts(body, boundary) {
            match (part.filename, part.name.as_deref()) {
                (Some(filename), _) => files.push((filename, part.content)),
                (None, Some("payload_json")) => json = serde_json::from_slice(&part.content).ok(),
                _ => {}
            }
        }
        return (json, files);
    }
    if body.is_empty() {
        return (None, Vec::new());
    }
    (serde_json::from_slice(body).ok(), Vec::new())
}

struct Part {
    name: Option<String>,
    filename: Option<String>,
    content: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn multipart_parts(body: &[u8], boundary: &str) -> Vec<Part> {
    let delimiter = format!("--{boundary}");
    let next_delimiter = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    let Some(mut at) = find(body, delimiter.as_bytes(), 0) else {
        return parts;
    };
    at += delimiter.len();
    loop {
        // `--` after a delimiter ends the body; otherwise skip the line break.
        if body.get(at..at + 2) == Some(b"--") {
            break;
        }
        let Some(headers_end) = find(body, b"\r\n\r\n", at) else {
            break;
        };
        let headers = String::from_utf8_lossy(&body[at..headers_end]).into_owned();
        let content_start = headers_end + 4;
        let Some(content_end) = find(body, next_delimiter.as_bytes(), content_start) else {
            break;
        };
        let mut part = Part {
            name: None,
            filename: None,
            content: body[content_start..content_end].to_vec(),
        };
        for line in headers.lines() {
            if !line
                .to_ascii_lowercase()
                .starts_with("content-disposition:")
            {
                continue;
            }
            for param in line.split(';').skip(1) {
                let Some((key, value)) = param.trim().split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"').to_owned();
                match key.trim() {
                    "name" => part.name = Some(value),
                    "filename" => part.filename = Some(value),
                    _ => {}
                }
            }
        }
        parts.push(part);
        at = content_end + next_delimiter.len();
    }
    parts
}

// ---------------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------------

fn bot_user_json() -> Value {
    json!({
        "id": BOT_USER_ID.to_string(),
        "username": BOT_NAME,
        "discriminator": "0",
        "global_name": null,
        "avatar": null,
        "bot": true,
        "verified": true,
        "mfa_enabled": false,
        "flags": 0,
    })
}

fn application_json() -> Value {
    json!({
        "id": APPLICATION_ID.to_string(),
        "name": BOT_NAME,
        "icon": null,
        "description": "A simulated application",
        "bot_public": true,
        "bot_require_code_grant": false,
        "verify_key": "0000000000000000000000000000000000000000000000000000000000000000",
        "owner": OWNER_USER.to_json(),
        "team": null,
        "flags": 0,
        "bot": bot_user_json(),
    })
}

/// A GUILD_CREATE payload: a guild with no channels, roles or members (so serenity's cache
/// permission checks stay out of the way).
fn guild_json(guild_id: u64) -> Value {
    json!({
        "id": guild_id.to_string(),
        "name": format!("Guild {guild_id}"),
        "icon": null,
        "splash": null,
        "discovery_splash": null,
        "owner_id": OWNER_USER.id.to_string(),
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": [],
        "emojis": [],
        "features": [],
        "mfa_level": 0,
        "application_id": null,
        "system_channel_id": null,
        "system_channel_flags": 0,
        "rules_channel_id": null,
        "vanity_url_code": null,
        "description": null,
        "banner": null,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": null,
        "nsfw_level": 0,
        "stickers": [],
        "premium_progress_bar_enabled": false,
        "joined_at": now_timestamp(),
        "large": false,
        "unavailable": false,
        "member_count": 2,
        "voice_states": [],
        "members": [],
        "channels": [],
        "threads": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
    })
}

// ---------------------------------------------------------------------------------------------
// Payload builders
// ---------------------------------------------------------------------------------------------

/// A Discord user for payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    pub id: u64,
    pub name: &'static str,
}

impl User {
    /// The user object Discord sends.
    pub fn to_json(self) -> Value {
        json!({
            "id": self.id.to_string(),
            "username": self.name,
            "discriminator": "0",
            "global_name": self.name,
            "avatar": null,
            "bot": false,
            "public_flags": 0,
        })
    }
}

/// A guild member object with `user`, as in interactions.
fn member_json(user: &User, permissions: Option<u64>) -> Value {
    let mut member = json!({
        "user": user.to_json(),
        "nick": null,
        "avatar": null,
        "roles": [],
        "joined_at": "2024-01-01T00:00:00.000000+00:00",
        "premium_since": null,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "pending": false,
        "communication_disabled_until": null,
    });
    if let Some(permissions) = permissions {
        member["permissions"] = json!(permissions.to_string());
    }
    member
}

/// An uploaded file as Discord describes it (in a message, or resolved in an interaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub id: u64,
    pub filename: String,
    pub url: String,
    pub size: u64,
    pub content_type: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl Attachment {
    /// A file with a fresh id; no content type or dimensions.
    pub fn new(filename: &str, url: &str, size: u64) -> Attachment {
        Attachment {
            id: next_id(),
            filename: filename.to_owned(),
            url: url.to_owned(),
            size,
            content_type: None,
            width: None,
            height: None,
        }
    }

    /// The content type Discord reports (from the upload, not checked).
    pub fn content_type(mut self, content_type: &str) -> Attachment {
        self.content_type = Some(content_type.to_owned());
        self
    }

    /// The dimensions Discord reports for images.
    pub fn dimensions(mut self, width: u32, height: u32) -> Attachment {
        self.width = Some(width);
        self.height = Some(height);
        self
    }

    /// The attachment object.
    pub fn to_json(&self) -> Value {
        let mut value = json!({
            "id": self.id.to_string(),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
        });
        if let Some(content_type) = &self.content_type {
            value["content_type"] = json!(content_type);
        }
        if let (Some(width), Some(height)) = (self.width, self.height) {
            value["width"] = json!(width);
            value["height"] = json!(height);
        }
        value
    }
}

/// A slash command interaction (type 2), in [`GUILD_ID`]/[`CHANNEL_ID`] by [`PLAYER_USER`]
/// with ordinary member permissions, until told otherwise.
pub fn slash_command(name: &str) -> CommandBuilder {
    CommandBuilder::new(name, 2)
}

/// An autocomplete interaction (type 4); add the option being typed with
/// [`CommandBuilder::focused`].
pub fn autocomplete(name: &str) -> CommandBuilder {
    CommandBuilder::new(name, 4)
}

/// Builds a command or autocomplete interaction payload.
#[derive(Debug, Clone)]
pub struct CommandBuilder {
    kind: u64,
    name: String,
    id: u64,
    guild: Option<u64>,
    channel: u64,
    user: User,
    permissions: u64,
    app_permissions: u64,
    subcommand: Option<String>,
    options: Vec<Value>,
    resolved_attachments: Map<String, Value>,
    attachment_size_limit: u64,
    locale: String,
}

impl CommandBuilder {
    fn new(name: &str, kind: u64) -> CommandBuilder {
        CommandBuilder {
            kind,
            name: name.to_owned(),
            id: next_id(),
            guild: Some(GUILD_ID),
            channel: CHANNEL_ID,
            user: PLAYER_USER,
            permissions: permissions::MEMBER,
            app_permissions: permissions::MEMBER,
            subcommand: None,
            options: Vec::new(),
            resolved_attachments: Map::new(),
            attachment_size_limit: DEFAULT_ATTACHMENT_SIZE_LIMIT,
            locale: "en-US".to_owned(),
        }
    }

    /// Used in this guild.
    pub fn guild(mut self, guild_id: u64) -> Self {
        self.guild = Some(guild_id);
        self
    }

    /// Used in this channel.
    pub fn channel(mut self, channel_id: u64) -> Self {
        self.channel = channel_id;
        self
    }

    /// Used by this user.
    pub fn user(mut self, user: User) -> Self {
        self.user = user;
        self
    }

    /// The member's permissions in the channel (`member.permissions`), a bitfield such as
    /// `permissions::MEMBER | permissions::MANAGE_GUILD`.
    pub fn permissions(mut self, bits: u64) -> Self {
        self.permissions = bits;
        self
    }

    /// The bot's permissions in the channel (`app_permissions`).
    pub fn app_permissions(mut self, bits: u64) -> Self {
        self.app_permissions = bits;
        self
    }

    /// The options go inside this subcommand.
    pub fn subcommand(mut self, name: &str) -> Self {
        self.subcommand = Some(name.to_owned());
        self
    }

    /// A string option.
    pub fn option_str(mut self, name: &str, value: &str) -> Self {
        self.options
            .push(json!({ "name": name, "type": 3, "value": value }));
        self
    }

    /// An attachment option (the file is added to `resolved.attachments`).
    pub fn option_attachment(mut self, name: &str, attachment: &Attachment) -> Self {
        self.options
            .push(json!({ "name": name, "type": 11, "value": attachment.id.to_string() }));
        self.resolved_attachments
            .insert(attachment.id.to_string(), attachment.to_json());
        self
    }

    /// The string option the user is typing in (autocomplete): `focused: true`.
    pub fn focused(mut self, name: &str, partial: &str) -> Self {
        self.options
            .push(json!({ "name": name, "type": 3, "value": partial, "focused": true }));
        self
    }

    /// The caller's upload limit (`attachment_size_limit`, default 10 MiB).
    pub fn attachment_size_limit(mut self, bytes: u64) -> Self {
        self.attachment_size_limit = bytes;
        self
    }

    /// The user's locale (default `en-US`).
    pub fn locale(mut self, locale: &str) -> Self {
        self.locale = locale.to_owned();
        self
    }

    /// The interaction payload (`d` of INTERACTION_CREATE).
    pub fn build(self) -> Value {
        let options = match &self.subcommand {
            Some(sub) => vec![json!({ "name": sub, "type": 1, "options": self.options })],
            None => self.options,
        };
        let mut resolved = Map::new();
        if !self.resolved_attachments.is_empty() {
            resolved.insert(
                "attachments".into(),
                Value::Object(self.resolved_attachments),
            );
        }
        let data = json!({
            "id": command_id(&self.name).to_string(),
            "name": self.name,
            "type": 1,
            "options": options,
            "resolved": resolved,
        });
        interaction_json(InteractionParts {
            kind: self.kind,
            id: self.id,
            data,
            guild: self.guild,
            channel: self.channel,
            user: self.user,
            permissions: self.permissions,
            app_permissions: self.app_permissions,
            attachment_size_limit: self.attachment_size_limit,
            locale: &self.locale,
            message: None,
        })
    }
}

/// A stable command id per name, like Discord's (registered commands keep their id).
fn command_id(name: &str) -> u64 {
    let hash = name
        .bytes()
        .fold(0_u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    1_400_000_000_000_000_000 + hash % 1_000_000_000
}

struct InteractionParts<'a> {
    kind: u64,
    id: u64,
    data: Value,
    guild: Option<u64>,
    channel: u64,
    user: User,
    permissions: u64,
    app_permissions: u64,
    attachment_size_limit: u64,
    locale: &'a str,
    message: Option<Value>,
}

fn interaction_json(parts: InteractionParts<'_>) -> Value {
    let mut interaction = json!({
        "id": parts.id.to_string(),
        "application_id": APPLICATION_ID.to_string(),
        "type": parts.kind,
        "data": parts.data,
        "channel_id": parts.channel.to_string(),
        "channel": {
            "id": parts.channel.to_string(),
            "type": if parts.guild.is_some() { 0 } else { 1 },
            "name": if parts.guild.is_some() { json!("general") } else { Value::Null },
        },
        "token": format!("simulated-interaction-token-{}", parts.id),
        "version": 1,
        "app_permissions": parts.app_permissions.to_string(),
        "locale": parts.locale,
        "entitlements": [],
        "attachment_size_limit": parts.attachment_size_limit,
    });
    match parts.guild {
        Some(guild_id) => {
            interaction["guild_id"] = json!(guild_id.to_string());
            interaction["guild_locale"] = json!("en-US");
            interaction["member"] = member_json(&parts.user, Some(parts.permissions));
            interaction["authorizing_integration_owners"] = json!({ "0": guild_id.to_string() });
            interaction["context"] = json!(0);
        }
        None => {
            interaction["user"] = parts.user.to_json();
            interaction["authorizing_integration_owners"] = json!({ "0": "0" });
            interaction["context"] = json!(1);
        }
    }
    if let Some(message) = parts.message {
        interaction["message"] = message;
    }
    interaction
}

/// `interaction` (any kind, in a guild) as sent by a member with `permissions` (bits, e.g.
/// [`permissions::MEMBER`] `|` [`permissions::MANAGE_GUILD`]).
pub fn with_permissions(mut interaction: Value, permissions: u64) -> Value {
    if let Some(member) = interaction.get_mut("member") {
        member["permissions"] = json!(permissions.to_string());
    }
    interaction
}

/// A button click (component interaction, type 3) on the bot's message `message_id`.
pub fn button_click(
    custom_id: &str,
    user: User,
    guild_id: u64,
    channel_id: u64,
    message_id: u64,
) -> Value {
    let message = json!({
        "id": message_id.to_string(),
        "channel_id": channel_id.to_string(),
        "author": bot_user_json(),
        "content": "",
        "timestamp": now_timestamp(),
        "edited_timestamp": null,
        "tts": false,
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "components": [{
            "type": 1,
            "components": [{ "type": 2, "style": 1, "label": custom_id, "custom_id": custom_id }],
        }],
        "pinned": false,
        "type": 0,
        "flags": 0,
        "webhook_id": APPLICATION_ID.to_string(),
        "application_id": APPLICATION_ID.to_string(),
    });
    interaction_json(InteractionParts {
        kind: 3,
        id: next_id(),
        data: json!({ "custom_id": custom_id, "component_type": 2 }),
        guild: Some(guild_id),
        channel: channel_id,
        user,
        permissions: permissions::MEMBER,
        app_permissions: permissions::MEMBER,
        attachment_size_limit: DEFAULT_ATTACHMENT_SIZE_LIMIT,
        locale: "en-US",
        message: Some(message),
    })
}

/// The MODAL_SUBMIT (interaction type 5) Discord sends when `user` fills in `form` — the
/// `data` of the bot's type 9 callback — in [`GUILD_ID`]/[`CHANNEL_ID`]. Each top-level Label
/// (type 18) comes back without its `label`/`description`, holding its child's `custom_id`
/// and either `value` (a Text Input, type 4: the text from `texts`, else the prefilled
/// `value`, else empty) or `values` (a File Upload, type 19: the ids of `files`, which are
/// described in `data.resolved.attachments`).
pub fn modal_submit(
    form: &Value,
    user: User,
    texts: &[(&str, &str)],
    files: &[&Attachment],
) -> Value {
    let mut attachments = Map::new();
    let components: Vec<Value> = form["components"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(n, label)| {
            let input = &label["component"];
            let custom_id = input["custom_id"].as_str().unwrap_or_default();
            let child = if input["type"] == 19 {
                for file in files {
                    attachments.insert(file.id.to_string(), file.to_json());
                }
                json!({
                    "type": 19, "id": 2 * n + 2, "custom_id": custom_id,
                    "values": files.iter().map(|f| f.id.to_string()).collect::<Vec<_>>(),
                })
            } else {
                let typed = texts
                    .iter()
                    .find(|(id, _)| *id == custom_id)
                    .map(|(_, text)| *text)
                    .or_else(|| input["value"].as_str())
                    .unwrap_or_default();
                json!({ "type": 4, "id": 2 * n + 2, "custom_id": custom_id, "value": typed })
            };
            json!({ "type": 18, "id": 2 * n + 1, "component": child })
        })
        .collect();
    let mut data = json!({ "custom_id": form["custom_id"], "components": components });
    if !attachments.is_empty() {
        data["resolved"] = json!({ "attachments": attachments });
    }
    interaction_json(InteractionParts {
        kind: 5,
        id: next_id(),
        data,
        guild: Some(GUILD_ID),
        channel: CHANNEL_ID,
        user,
        permissions: permissions::MEMBER,
        app_permissions: permissions::MEMBER,
        attachment_size_limit: DEFAULT_ATTACHMENT_SIZE_LIMIT,
        locale: "en-US",
        message: None,
    })
}

/// A MESSAGE_CREATE payload: `author` posts `content` with `attachments` in `channel_id` (a
/// guild channel with `guild_id`, a DM with `None`).
pub fn message_create(
    channel_id: u64,
    guild_id: Option<u64>,
    author: User,
    content: &str,
    attachments: &[Attachment],
) -> Value {
    let mut message = json!({
        "id": next_id().to_string(),
        "channel_id": channel_id.to_string(),
        "author": author.to_json(),
        "content": content,
        "timestamp": now_timestamp(),
        "edited_timestamp": null,
        "tts": false,
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": attachments.iter().map(Attachment::to_json).collect::<Vec<_>>(),
        "embeds": [],
        "components": [],
        "pinned": false,
        "type": 0,
        "flags": 0,
        "nonce": next_id().to_string(),
    });
    if let Some(guild_id) = guild_id {
        message["guild_id"] = json!(guild_id.to_string());
        let mut member = member_json(&author, None);
        if let Some(member) = member.as_object_mut() {
            member.remove("user");
        }
        message["member"] = member;
    }
    message
}
