//! The simulated CDN the benchmarks run in a child process (the benchmark binary re-executed
//! in CDN mode), so its CPU time and buffers are not in the measured process. It streams
//! fixture files from a folder, after an optional latency, and serves an endless body.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncReadExt;

/// Set in the child process that plays the CDN: the folder it serves.
const ROOT_VARIABLE: &str = "PORTRAIT_BENCH_CDN_ROOT";
/// Milliseconds the CDN waits before answering each request (time to first byte).
const LATENCY_VARIABLE: &str = "PORTRAIT_BENCH_CDN_LATENCY_MS";
const CHUNK: usize = 64 * 1024;

/// The `main` of a benchmark that uses this CDN: on a two-worker runtime, serves the CDN when
/// this process was started as it, and otherwise runs the benchmark.
pub fn main_serving_cdn<F: std::future::Future<Output = ()>>(benchmark: impl FnOnce() -> F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    match std::env::var_os(ROOT_VARIABLE) {
        Some(root) => runtime.block_on(serve(PathBuf::from(root))),
        None => runtime.block_on(benchmark()),
    }
}

/// A running CDN child process, stopped when dropped.
pub struct FileCdn {
    origin: String,
    child: std::process::Child,
}

impl FileCdn {
    /// Starts this benchmark again in CDN mode over `root`, answering after `latency`.
    pub async fn spawn(root: &Path, latency: Duration) -> FileCdn {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe().expect("own path"))
            .env(ROOT_VARIABLE, root)
            .env(LATENCY_VARIABLE, latency.as_millis().to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the CDN process");
        let stdout = child.stdout.take().expect("CDN stdout");
        let origin = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .expect("the CDN announces its address");
            line.trim().to_owned()
        })
        .await
        .expect("CDN address");
        FileCdn { origin, child }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        self.origin.clone()
    }

    /// The child's process id, for reading its CPU time from /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for FileCdn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CDN mode: prints its origin on the first line of stdout, then serves from `root`:
/// - `/files/{name}`: streamed in 64 KiB chunks with no Content-Length (the ingest benchmark's
///   large uploads, never held whole in this process);
/// - `/attachments/{channel}/{message}/{name}`: read whole and sent with a Content-Length and
///   an image type, as Discord's CDN does (the migration benchmark);
/// - `/endless`: 1 GiB with no Content-Length.
///
/// Every request waits the configured latency first.
async fn serve(root: PathBuf) {
    let latency = std::env::var(LATENCY_VARIABLE)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::ZERO, Duration::from_millis);
    let router = axum::Router::new()
        .route("/files/{name}", axum::routing::get(file))
        .route(
            "/attachments/{channel}/{message}/{name}",
            axum::routing::get(attachment),
        )
        .route("/endless", axum::routing::get(endless))
        .with_state((root, latency));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!("http://{}", listener.local_addr().expect("addr"));
    axum::serve(listener, router).await.expect("serve");
}

async fn file(
    State((root, latency)): State<(PathBuf, Duration)>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    tokio::time::sleep(latency).await;
    let Some(path) = fixture_path(&root, &name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(file) = tokio::fs::File::open(path).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let stream = futures::stream::unfold(file, |mut file| async move {
        let mut chunk = vec![0u8; CHUNK];
        match file.read(&mut chunk).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                chunk.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), file))
            }
        }
    });
    Body::from_stream(stream).into_response()
}

async fn attachment(
    State((root, latency)): State<(PathBuf, Duration)>,
    UrlPath((_channel, _message, name)): UrlPath<(String, String, String)>,
) -> Response {
    tokio::time::sleep(latency).await;
    let Some(path) = fixture_path(&root, &name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match tokio::fs::read(path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "image/jpeg")], Bytes::from(bytes)).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A fixture's path inside `root`; names that could leave it are refused.
fn fixture_path(root: &Path, name: &str) -> Option<PathBuf> {
    (!name.contains('/') && !name.contains("..")).then(|| root.join(name))
}

/// 1 GiB, generated lazily, with no Content-Length.
async fn endless() -> Response {
    let chunk = Bytes::from(vec![0x42u8; CHUNK]);
    let stream = futures::stream::iter(0..(1024 * 1024 * 1024 / CHUNK as u64))
        .map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    Body::from_stream(stream).into_response()
}
