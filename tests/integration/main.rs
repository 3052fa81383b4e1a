//! Integration tests: one binary, real parts (s3s-fs in process, SQLite, PostgreSQL).

mod db;
mod storage;
mod support;
