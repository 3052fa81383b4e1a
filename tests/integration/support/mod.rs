//! Test support: servers and fixtures the integration tests start on port 0.
pub mod database;
pub mod s3;
