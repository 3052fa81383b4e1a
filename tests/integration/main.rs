//! Integration tests: one binary, real parts (s3s-fs in process, SQLite, PostgreSQL).

mod cli;
mod db;
mod pipeline;
mod storage;
mod support;
