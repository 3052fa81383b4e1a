//! `/character gallery`: one character card a page, with ◀ ▶ buttons.
//!
//! Everything a press needs is in the buttons' `custom_id`
//! (`gallery:<owner or 0>:<position>:<opener>:<last activity, unix seconds>:<p|n>`), so a
//! gallery keeps working across restarts and the bot holds no state for it. Each page is read
//! from the database on its own ([`Db::gallery_character`](crate::db::Db::gallery_character)),
//! so a server with thousands of characters never loads them all. Only the player who opened
//! the gallery may turn its pages. After `GALLERY_TIMEOUT_SECS` without a press the bot edits
//! the message to say the gallery expired and takes the buttons away ([`Watchers`], through
//! the latest interaction token, which lasts 15 minutes); after a restart, when no watcher is
//! left, the next press finds the old timestamp in its id and does the same.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use poise::serenity_prelude as serenity;
use poise::CreateReply;

use super::{embeds, BotError, Context, Data};
use crate::units::human_duration;

const PREFIX: &str = "gallery:";

/// A gallery page as its buttons remember it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Page {
    /// Only this player's characters; `None` for the whole server.
    owner: Option<u64>,
    position: u64,
    opener: u64,
    /// Unix seconds of the last press (or of the opening).
    active_at: u64,
}

/// Which button was pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    Previous,
    Next,
}

impl Page {
    fn custom_id(&self, turn: Turn) -> String {
        let turn = match turn {
            Turn::Previous => 'p',
            Turn::Next => 'n',
        };
        format!(
            "{PREFIX}{}:{}:{}:{}:{turn}",
            self.owner.unwrap_or(0),
            self.position,
            self.opener,
            self.active_at
        )
    }

    fn parse(custom_id: &str) -> Option<(Page, Turn)> {
        let mut parts = custom_id.strip_prefix(PREFIX)?.split(':');
        let owner: u64 = parts.next()?.parse().ok()?;
        let position = parts.next()?.parse().ok()?;
        let opener = parts.next()?.parse().ok()?;
        let active_at = parts.next()?.parse().ok()?;
        let turn = match parts.next()? {
            "p" => Turn::Previous,
            "n" => Turn::Next,
            _ => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        let owner = (owner != 0).then_some(owner);
        Some((
            Page {
                owner,
                position,
                opener,
                active_at,
            },
            turn,
        ))
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether a press belongs to a gallery.
pub fn is_gallery_press(custom_id: &str) -> bool {
    custom_id.starts_with(PREFIX)
}

/// Opens the gallery of this server (or of `player`) on its first page.
pub async fn open(
    ctx: Context<'_>,
    guild: u64,
    player: Option<&serenity::User>,
) -> Result<(), BotError> {
    let data = ctx.data();
    let owner = player.map(|p| p.id.get());
    let total = data.app.db.count_gallery(guild, owner).await?;
    if total == 0 {
        let message = match owner {
            Some(owner) => format!("<@{owner}> has no characters here yet."),
            None => "This server has no characters yet. `/register` creates one.".to_owned(),
        };
        ctx.send(CreateReply::default().content(message).ephemeral(true))
            .await?;
        return Ok(());
    }
    let page = Page {
        owner,
        position: 0,
        opener: ctx.author().id.get(),
        active_at: now_secs(),
    };
    match render(data, guild, page).await? {
        Some(reply) => {
            let handle = ctx.send(reply).await?;
            let message = handle.message().await?;
            if let poise::Context::Application(app) = ctx {
                data.galleries.touch(
                    ctx.serenity_context().http.clone(),
                    message.id.get(),
                    app.interaction.token.clone(),
                    data.settings.gallery_timeout,
                );
            }
        }
        None => {
            ctx.send(
                CreateReply::default()
                    .content("Those characters were just deleted.")
                    .ephemeral(true),
            )
            .await?;
        }
    }
    Ok(())
}

/// The card at `page.position` (clamped to the last one) with its page number and buttons;
/// `None` when the gallery has become empty.
async fn render(data: &Data, guild: u64, mut page: Page) -> Result<Option<CreateReply>, BotError> {
    let total = data.app.db.count_gallery(guild, page.owner).await?;
    if total == 0 {
        return Ok(None);
    }
    page.position = page.position.min(total - 1);
    let Some(character) = data
        .app
        .db
        .gallery_character(guild, page.owner, page.position)
        .await?
    else {
        return Ok(None);
    };
    let title = match page.owner {
        Some(owner) => format!("Characters of <@{owner}>"),
        None => "Characters of this server".to_owned(),
    };
    let buttons = serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new(page.custom_id(Turn::Previous))
            .label("◀")
            .style(serenity::ButtonStyle::Secondary)
            .disabled(page.position == 0),
        serenity::CreateButton::new(page.custom_id(Turn::Next))
            .label("▶")
            .style(serenity::ButtonStyle::Secondary)
            .disabled(page.position + 1 >= total),
    ]);
    Ok(Some(
        embeds::card_for(data, &character)
            .await
            .content(format!("{title} — {} of {total}", page.position + 1))
            // The title mentions the player; paging should not ping them.
            .allowed_mentions(serenity::CreateAllowedMentions::new())
            .components(vec![buttons]),
    ))
}

/// Answers a press on a gallery button: the next or previous card (response type 7), a
/// private refusal for anyone but the opener, or "expired" after the gallery timeout.
pub async fn press(
    ctx: &serenity::Context,
    data: &Data,
    interaction: &serenity::ComponentInteraction,
) -> Result<(), BotError> {
    let Some((page, turn)) = Page::parse(&interaction.data.custom_id) else {
        return refuse(
            ctx,
            interaction,
            "This button is from an older version of the bot. Run `/character gallery` again.",
        )
        .await;
    };
    if interaction.user.id.get() != page.opener {
        return refuse(
            ctx,
            interaction,
            &format!(
                "Only <@{}> can turn these pages. `/character gallery` opens your own.",
                page.opener
            ),
        )
        .await;
    }
    let now = now_secs();
    let timeout = data.settings.gallery_timeout;
    if now.saturating_sub(page.active_at) > timeout.as_secs() {
        let expired = serenity::CreateInteractionResponseMessage::new()
            .content(expired_text(timeout))
            .components(Vec::new());
        interaction
            .create_response(
                ctx,
                serenity::CreateInteractionResponse::UpdateMessage(expired),
            )
            .await?;
        return Ok(());
    }
    let Some(guild) = interaction.guild_id.map(|g| g.get()) else {
        return refuse(ctx, interaction, "Galleries live in servers, not in DMs.").await;
    };
    let position = match turn {
        Turn::Previous => page.position.saturating_sub(1),
        Turn::Next => page.position.saturating_add(1),
    };
    let next = Page {
        position,
        active_at: now,
        ..page
    };
    let update = match render(data, guild, next).await? {
        Some(reply) => {
            reply.to_slash_initial_response(serenity::CreateInteractionResponseMessage::new())
        }
        None => serenity::CreateInteractionResponseMessage::new()
            .content("No characters are left in this gallery.")
            .embeds(Vec::new())
            .components(Vec::new()),
    };
    interaction
        .create_response(
            ctx,
            serenity::CreateInteractionResponse::UpdateMessage(update),
        )
        .await?;
    // The press's token edits the same message from now on, for 15 minutes.
    data.galleries.touch(
        ctx.http.clone(),
        interaction.message.id.get(),
        interaction.token.clone(),
        timeout,
    );
    Ok(())
}

fn expired_text(timeout: Duration) -> String {
    format!(
        "This gallery expired after {} without a press. Run `/character gallery` again.",
        human_duration(timeout)
    )
}

/// The open galleries of this process: for each message, the latest interaction token that
/// can edit it and when it was last used. One task per gallery sleeps until the gallery has
/// been idle for the timeout, then edits the message to say it expired.
#[derive(Debug, Default, Clone)]
pub struct Watchers {
    open: Arc<Mutex<HashMap<u64, Watch>>>,
}

#[derive(Debug)]
struct Watch {
    token: String,
    active_at: tokio::time::Instant,
}

impl Watchers {
    /// Records activity on the gallery `message`; starts its watcher when it has none.
    fn touch(&self, http: Arc<serenity::Http>, message: u64, token: String, timeout: Duration) {
        let active_at = tokio::time::Instant::now();
        let watched = {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            open.insert(message, Watch { token, active_at }).is_some()
        };
        if !watched {
            tokio::spawn(self.clone().watch(http, message, timeout));
        }
    }

    async fn watch(self, http: Arc<serenity::Http>, message: u64, timeout: Duration) {
        let token = loop {
            let deadline = {
                let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
                match open.get(&message) {
                    Some(watch) => watch.active_at + timeout,
                    None => return,
                }
            };
            tokio::time::sleep_until(deadline).await;
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            let idle = open
                .get(&message)
                .map(|watch| watch.active_at + timeout <= tokio::time::Instant::now());
            match idle {
                Some(true) => match open.remove(&message) {
                    Some(watch) => break watch.token,
                    None => return,
                },
                Some(false) => continue,
                None => return,
            }
        };
        let expired = serde_json::json!({
            "content": expired_text(timeout),
            "components": [],
        });
        if let Err(err) = http
            .edit_original_interaction_response(&token, &expired, Vec::new())
            .await
        {
            tracing::warn!(error = %err, message, "could not mark a gallery as expired");
        }
    }
}

/// Answers a press with a private message (a refusal, or why nothing happened).
pub(super) async fn refuse(
    ctx: &serenity::Context,
    interaction: &serenity::ComponentInteraction,
    message: &str,
) -> Result<(), BotError> {
    interaction
        .create_response(
            ctx,
            serenity::CreateInteractionResponse::Message(
                serenity::CreateInteractionResponseMessage::new()
                    .content(message)
                    .ephemeral(true),
            ),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_survives_the_round_trip_through_its_buttons_ids() {
        let page = Page {
            owner: Some(123_456_789_012_345_678),
            position: 41,
            opener: 987_654_321_098_765_432,
            active_at: 1_800_000_000,
        };
        for turn in [Turn::Previous, Turn::Next] {
            let id = page.custom_id(turn);
            assert!(id.len() <= 100, "{id} is longer than Discord allows");
            assert_eq!(Page::parse(&id), Some((page, turn)));
        }
        let server = Page {
            owner: None,
            ..page
        };
        assert_eq!(
            Page::parse(&server.custom_id(Turn::Next)),
            Some((server, Turn::Next))
        );
        assert_ne!(page.custom_id(Turn::Previous), page.custom_id(Turn::Next));
    }

    #[test]
    fn ids_that_are_not_a_gallery_page_are_not_parsed() {
        for id in [
            "gallery:",
            "gallery:1:2:3:4",
            "gallery:1:2:3:4:x",
            "gallery:a:2:3:4:n",
            "gallery:1:2:3:4:n:5",
            "123-delete",
        ] {
            assert_eq!(Page::parse(id), None, "{id}");
        }
    }
}
