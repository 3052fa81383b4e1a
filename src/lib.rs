//! portrait-bot: permanent character portraits for Discord communities.

pub mod db;
pub mod fetch;
pub mod metrics;
pub mod portrait;
pub mod secret;
pub mod storage;
pub mod units;
