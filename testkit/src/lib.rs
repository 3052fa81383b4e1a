//! portrait-bot's test kit: the outside world the tests and benchmarks run the bot against,
//! all real servers on 127.0.0.1 port 0, plus fixtures and a memory meter.
//!
//! - [`discord`]: a simulated Discord, REST and gateway, recording what the bot does;
//! - [`cdn`]: a simulated Discord CDN in process (expired links, throttling, latency);
//! - [`file_cdn`]: the benchmarks' CDN, streaming fixture files from a child process;
//! - [`s3`]: a real S3 server (s3s-fs) in a temp folder, standing in for R2, with faults;
//! - [`database`]: a fresh SQLite file or PostgreSQL database per test;
//! - [`corpus`]: the shared test corpora beside the clone, skipped loudly when absent;
//! - [`images`]: image fixtures made in code, and byte searches over stored files;
//! - [`allocation_meter`]: a counting global allocator for memory measurements;
//! - [`variables`]: every environment variable the binary reads, to clear them.
//!
//! The kit does not depend on `portrait_bot`. The crate's own unit tests use the kit (the
//! allocation meter), so a kit built on `portrait_bot` would put two copies of the crate in
//! those tests, with two sets of types that do not match. The kit therefore speaks in
//! protocols and plain values — URLs, keys, bytes, JSON — and what needs the application's
//! types (the `App` or the bot assembled over these servers, R2 settings and a `Store` for
//! the S3 server, a `Db` over a fresh database) lives in the integration test binary, in
//! `tests/integration/support/`; the benchmarks build their few settings themselves.
//!
//! The simulated Discord's own tests (that serenity and poise accept it) are this crate's
//! integration tests, in `testkit/tests/`.

pub mod allocation_meter;
pub mod cdn;
pub mod corpus;
pub mod database;
pub mod discord;
pub mod file_cdn;
pub mod images;
pub mod s3;
pub mod variables;

/// Prints `message` on the process's stderr even inside a passing test: the test harness
/// captures `eprintln!` and shows it only for failures, but a skipped check must be seen.
fn say_loudly(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "\n!!! {message} !!!\n");
}
