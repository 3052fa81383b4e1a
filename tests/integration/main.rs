//! Integration tests: one binary, real parts (s3s-fs in process, SQLite, PostgreSQL, the
//! simulated Discord and CDN), from the test kit (`testkit`); `support` assembles the
//! application over them.

mod approval;
mod bot;
mod cli;
mod db;
mod deploy;
mod history;
mod import;
mod jobs_races;
mod jobs_streaming;
mod migration;
mod moderation;
mod moderation_bot;
mod ops;
mod orphans;
mod pipeline;
mod player;
mod prefix;
mod privacy;
mod privacy_bot;
mod storage;
mod structure;
mod support;
