//! Integration tests: one binary, real parts (s3s-fs in process, SQLite, PostgreSQL).

mod bot;
mod cli;
mod db;
mod deploy;
mod discord_harness;
mod import;
mod migration;
mod orphans;
mod pipeline;
mod prefix;
mod privacy;
mod storage;
mod support;
