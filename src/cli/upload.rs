//! `upload`: a local image file as a character's portrait, through the same rules and the
//! same pipeline as a Discord upload.

use std::path::PathBuf;
use std::process::ExitCode;

use bytes::Bytes;

use super::Refused;
use crate::app::App;
use crate::character::{DiscordId, NewCharacter};
use crate::config::Settings;
use crate::portrait::registration::{self, IfExists, RegistrationError};
use crate::portrait::{IngestRequest, PortraitSource, Upload};
use crate::units::human_bytes;

#[derive(Debug, clap::Args)]
pub struct UploadArgs {
    /// The image file (PNG, JPEG, GIF or WebP).
    pub file: PathBuf,
    /// Discord server (guild) id the character belongs to.
    #[arg(long, value_parser = DiscordId::parse)]
    pub guild: DiscordId,
    /// Discord user id of the character's owner (also recorded as the uploader).
    #[arg(long, value_parser = DiscordId::parse)]
    pub owner: DiscordId,
    /// Character name.
    #[arg(long)]
    pub character: String,
    /// Character class, when the character is created.
    #[arg(long)]
    pub class: Option<String>,
    /// Character bio, when the character is created.
    #[arg(long)]
    pub bio: Option<String>,
}

pub(super) async fn upload(settings: Settings, args: UploadArgs) -> anyhow::Result<ExitCode> {
    // The rules of /register, before anything is read, opened or created.
    let new = NewCharacter::parse(
        args.guild,
        args.owner,
        &args.character,
        args.class.as_deref(),
        args.bio.as_deref(),
    )?;
    let max_bytes = settings.inspect_limits.max_bytes;
    let cannot_read =
        |err: std::io::Error| Refused(format!("cannot read {}: {err}", args.file.display()));
    let size = tokio::fs::metadata(&args.file)
        .await
        .map_err(cannot_read)?
        .len();
    if size > max_bytes {
        return Err(Refused(format!(
            "{} is {}; the limit is {} (MAX_UPLOAD_BYTES)",
            args.file.display(),
            human_bytes(size),
            human_bytes(max_bytes)
        ))
        .into());
    }
    let bytes = tokio::fs::read(&args.file).await.map_err(cannot_read)?;

    let app = App::build(settings).await?;
    let result = upload_with(&app, &new, Bytes::from(bytes)).await;
    app.shutdown().await;
    result
}

/// Creates the character when it does not exist yet (operators are not held to the players'
/// per-server cap), stores the portrait, and removes a character it created when the file is
/// refused: a refusal changes nothing.
async fn upload_with(app: &App, new: &NewCharacter, bytes: Bytes) -> anyhow::Result<ExitCode> {
    let registered = registration::register(
        &app.db,
        new,
        None,
        IfExists::Reuse,
        async |character: &_| {
            let request = IngestRequest {
                character,
                uploader_id: new.owner_id.get(),
                source: PortraitSource::Cli,
                legacy_url: None,
                migration_run: None,
            };
            app.portraits.ingest(Upload::Bytes(bytes), &request).await
        },
    )
    .await;
    let registered = match registered {
        Ok(registered) => registered,
        Err(RegistrationError::Character(err)) => return Err(err.into()),
        Err(RegistrationError::Portrait(err)) if err.is_players_to_fix() => {
            return Err(Refused(err.player_message()).into())
        }
        Err(RegistrationError::Portrait(err)) => {
            return Err(anyhow::Error::new(err).context("the portrait was not stored"))
        }
    };
    if registered.created {
        println!("created character `{}`", registered.character.name);
    }
    let stored = registered.portrait;
    let record = &stored.record;
    println!("key:        {}", record.storage_key);
    println!("url:        {}", record.public_url);
    println!("bytes:      {}", record.size_bytes);
    println!("type:       {}", record.content_type);
    println!("dimensions: {}x{}", record.width, record.height);
    if !stored.removed_metadata.is_empty() {
        println!("removed:    {}", stored.removed_metadata.join(", "));
    }
    if stored.already_stored {
        println!("(the same image was already stored; nothing new was written)");
    }
    Ok(ExitCode::SUCCESS)
}
