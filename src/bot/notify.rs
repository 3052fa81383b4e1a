//! Messages the bot sends on its own, outside any interaction: a DM telling a player what a
//! moderator did, and a record in a server's mod channel. Both are best effort: a member may
//! have closed their DMs (Discord answers 403 with code 50007), a mod channel may be gone or
//! unwritable, and neither may undo or fail the moderation action that caused the message.

use poise::serenity_prelude as serenity;

/// Discord's code for "Cannot send messages to this user" (DMs closed, or no shared server).
const CANNOT_MESSAGE_USER: isize = 50007;

/// What became of a DM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// The player does not accept DMs from the bot.
    Closed,
    /// Discord or the network failed; logged.
    Failed,
}

impl Delivery {
    /// A short note for the moderator's reply.
    pub fn note(self) -> &'static str {
        match self {
            Delivery::Sent => "The player was told by DM.",
            Delivery::Closed => "The player does not accept DMs, so they were not told.",
            Delivery::Failed => "The DM to the player could not be sent (see the logs).",
        }
    }
}

/// Sends `message` to `user_id` by DM: opens (or reuses) the DM channel, then posts to it.
pub async fn direct_message(
    http: &serenity::Http,
    user_id: u64,
    message: serenity::CreateMessage,
) -> Delivery {
    let user = serenity::UserId::new(user_id);
    let sent = match user.create_dm_channel(http).await {
        Ok(channel) => channel.id.send_message(http, message).await.map(drop),
        Err(err) => Err(err),
    };
    match sent {
        Ok(()) => Delivery::Sent,
        Err(serenity::Error::Http(serenity::HttpError::UnsuccessfulRequest(response)))
            if response.error.code == CANNOT_MESSAGE_USER =>
        {
            tracing::info!(user = user_id, "player does not accept DMs; not told");
            Delivery::Closed
        }
        Err(err) => {
            tracing::warn!(user = user_id, error = %err, "could not send a DM");
            Delivery::Failed
        }
    }
}

/// Posts `message` to a server's mod channel, when it set one; the posted message (to edit
/// later), or `None` when there is no channel or posting failed (logged).
pub async fn mod_channel_record(
    http: &serenity::Http,
    mod_channel: Option<u64>,
    message: serenity::CreateMessage,
) -> Option<serenity::Message> {
    let channel = serenity::ChannelId::new(mod_channel?);
    match channel.send_message(http, message).await {
        Ok(posted) => Some(posted),
        Err(err) => {
            tracing::warn!(channel = channel.get(), error = %err,
                "could not post to the mod channel");
            None
        }
    }
}
