//! portrait-bot: permanent character portraits for Discord communities.
//!
//! Layers point down only: `cli` → services (`portrait`) → infrastructure (`storage`, `db`,
//! `fetch`). Shared state is one [`app::App`] built from [`config::Config`].

pub mod app;
pub mod bot;
pub mod character;
pub mod cli;
pub mod config;
pub mod db;
pub mod discord_api;
pub mod fetch;
pub mod http;
pub mod metrics;
pub mod migration;
pub mod moderation;
pub mod portrait;
pub mod secret;
pub mod signals;
pub mod storage;
pub mod telemetry;
pub mod units;
