//! Integration tests: one binary, real parts (s3s-fs in process, SQLite, PostgreSQL).

mod bot;
mod cli;
mod db;
mod deploy;
mod discord_harness;
mod import;
mod jobs_races;
mod jobs_streaming;
mod migration;
mod orphans;
mod pipeline;
mod prefix;
mod storage;
mod support;
