//! Exit statuses: scripts tell a refused input from a fault of storage, network or database,
//! and both from a configuration mistake. Errors are mapped by their type, walking the
//! error's chain from the outside in; the first type that decides wins.

use std::error::Error;
use std::process::ExitCode;

use crate::app::AppError;
use crate::character::{CharacterError, DiscordIdError};
use crate::config::ConfigError;
use crate::db::DbError;
use crate::discord_api::DiscordApiError;
use crate::fetch::FetchError;
use crate::migration::cdn::CdnMigrationError;
use crate::migration::import::ImportError;
use crate::migration::prefix::MigrationError;
use crate::portrait::IngestError;
use crate::storage::StorageError;

/// What the process's exit status means. `--help` and the README list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// Done.
    Success = 0,
    /// Anything else, including a job that finished with some items failed.
    Failure = 1,
    /// The command line is wrong (clap's own status for usage errors).
    Usage = 2,
    /// The configuration is incomplete or invalid: fix the settings named.
    Config = 3,
    /// The input was refused (an image, a character name, an import file): fix it and run again.
    Refused = 4,
    /// Storage, the network or the database failed: nothing is wrong with the input; try again.
    Fault = 5,
}

/// The exit statuses, as `--help` shows them.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success
  1  any other failure (including a job that finished with some items failed)
  2  usage error (unknown command, bad argument)
  3  configuration error (e.g. incomplete R2 settings): fix the settings named
  4  input refused (an image, a character name or an import file): fix it and run again
  5  storage, network or database fault: the input is fine; try again later";

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status as u8)
    }
}

/// The operator's input was refused; the message is the one a player would get.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The exit status an error calls for.
pub fn classify(err: &anyhow::Error) -> ExitStatus {
    err.chain()
        .find_map(classify_one)
        .unwrap_or(ExitStatus::Failure)
}

/// The status one error in a chain decides, or `None` to look at its source.
fn classify_one(err: &(dyn Error + 'static)) -> Option<ExitStatus> {
    use ExitStatus::{Config, Failure, Fault, Refused as Input};
    if err.is::<ConfigError>() {
        return Some(Config);
    }
    if err.is::<Refused>() || err.is::<CharacterError>() || err.is::<DiscordIdError>() {
        return Some(Input);
    }
    if let Some(err) = err.downcast_ref::<IngestError>() {
        return Some(match err {
            _ if err.is_players_to_fix() => Input,
            IngestError::Worker(_) => Failure,
            _ => Fault,
        });
    }
    if let Some(err) = err.downcast_ref::<AppError>() {
        return Some(match err {
            AppError::Database(_) => Fault,
            // Built from the settings without touching the network: a shape problem.
            AppError::Storage(_) | AppError::Fetch(_) => Config,
        });
    }
    if let Some(err) = err.downcast_ref::<ImportError>() {
        return match err {
            ImportError::Database { .. } => Some(Fault),
            _ => Some(Input),
        };
    }
    if let Some(err) = err.downcast_ref::<MigrationError>() {
        return match err {
            MigrationError::InvalidEnvPrefix(_) => Some(Config),
            MigrationError::Listing { .. } | MigrationError::Database(_) => Some(Fault),
        };
    }
    if let Some(err) = err.downcast_ref::<CdnMigrationError>() {
        return Some(match err {
            CdnMigrationError::Database(_) => Fault,
            CdnMigrationError::UnknownRun(_) | CdnMigrationError::DryRunRollback(_) => Input,
            CdnMigrationError::AlreadyRunning { .. } => Failure,
        });
    }
    if err.is::<DbError>()
        || err.is::<StorageError>()
        || err.is::<FetchError>()
        || err.is::<DiscordApiError>()
    {
        return Some(Fault);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_their_status_through_context_and_wrapping() {
        let config = anyhow::Error::new(ConfigError {
            problems: vec!["R2_BUCKET_NAME is missing".into()],
        });
        assert_eq!(classify(&config), ExitStatus::Config);
        let name = anyhow::Error::new(CharacterError::NameEmpty).context("upload");
        assert_eq!(classify(&name), ExitStatus::Refused);
        let storage = anyhow::Error::new(IngestError::Storage(StorageError::Transient {
            message: "could not reach R2_ENDPOINT".into(),
        }))
        .context("the portrait was not stored");
        assert_eq!(classify(&storage), ExitStatus::Fault);
        let database = anyhow::Error::new(AppError::Database(DbError::CharacterNotFound));
        assert_eq!(classify(&database), ExitStatus::Fault);
        assert_eq!(
            classify(&anyhow::anyhow!("something else")),
            ExitStatus::Failure
        );
    }

    #[test]
    fn help_lists_every_status_with_its_number() {
        for status in [
            ExitStatus::Success,
            ExitStatus::Failure,
            ExitStatus::Usage,
            ExitStatus::Config,
            ExitStatus::Refused,
            ExitStatus::Fault,
        ] {
            let line = format!("\n  {}  ", status as u8);
            assert!(EXIT_STATUS_HELP.contains(&line), "{status:?}");
        }
    }
}
