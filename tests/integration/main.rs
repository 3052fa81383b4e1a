//! Integration tests: one binary, real parts (s3s-fs in process, SQLite, PostgreSQL).

mod bot;
mod cli;
mod db;
mod discord_harness;
mod pipeline;
mod storage;
mod support;
