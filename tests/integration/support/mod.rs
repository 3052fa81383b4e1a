//! Test support: servers and fixtures the integration tests start on port 0.
pub mod app;
pub mod bot;
pub mod cdn;
pub mod database;
pub mod discord;
pub mod images;
pub mod s3;
pub mod variables;
