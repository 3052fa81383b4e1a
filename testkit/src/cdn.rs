//! A simulated Discord CDN: serves attachment bytes over real HTTP on 127.0.0.1, answers
//! expired links the way Discord does, and records every request with its time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::task::JoinHandle;

/// Discord's body for a link that has expired or whose file is gone.
pub const GONE_BODY: &str = "This content is no longer available.";

#[derive(Clone)]
enum Served {
    File {
        bytes: Bytes,
        content_type: String,
        delay: Duration,
    },
    Gone,
}

#[derive(Default)]
struct CdnState {
    files: HashMap<String, Served>,
    requests: Vec<CdnRequest>,
    /// Requests still to be answered 429, and the retry-after they are told.
    throttled: usize,
    retry_after_secs: f64,
    /// Added before every file response (on top of a file's own delay).
    latency: Duration,
}

/// One request the CDN received.
#[derive(Debug, Clone)]
pub struct CdnRequest {
    pub path: String,
    pub at: Instant,
}

pub struct TestCdn {
    addr: SocketAddr,
    state: Arc<Mutex<CdnState>>,
    server: JoinHandle<()>,
}

impl TestCdn {
    pub async fn start() -> TestCdn {
        let state = Arc::new(Mutex::new(CdnState::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the CDN");
        let addr = listener.local_addr().expect("CDN address");
        let router = axum::Router::new()
            .fallback(serve)
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("CDN serves");
        });
        TestCdn {
            addr,
            state,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`, to add to `CDN_ALLOWED_ORIGINS`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `bytes` at `path` (e.g. `/attachments/1/2/aria.png`) with a declared
    /// Content-Type that need not be true; returns a signed-looking URL to it.
    pub fn host(&self, path: &str, bytes: impl Into<Bytes>, content_type: &str) -> String {
        self.host_slowly(path, bytes, content_type, Duration::ZERO)
    }

    /// Like [`TestCdn::host`], but each response starts only after `delay`.
    pub fn host_slowly(
        &self,
        path: &str,
        bytes: impl Into<Bytes>,
        content_type: &str,
        delay: Duration,
    ) -> String {
        self.state.lock().unwrap().files.insert(
            path.to_owned(),
            Served::File {
                bytes: bytes.into(),
                content_type: content_type.to_owned(),
                delay,
            },
        );
        // Signed like Discord's links: valid for a day from now (hex Unix seconds).
        let now = chrono::Utc::now().timestamp();
        format!(
            "{}{path}?ex={:x}&is={now:x}&hm=0123abcd",
            self.origin(),
            now + 86_400
        )
    }

    /// From now on `path` answers 404 with Discord's "no longer available" body.
    pub fn expire(&self, path: &str) -> String {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(path.to_owned(), Served::Gone);
        format!("{}{path}?ex=1&is=1&hm=dead", self.origin())
    }

    /// The next `requests` requests are answered 429 with `retry_after_secs`, as Discord's
    /// CDN does when a client downloads too fast.
    pub fn throttle(&self, requests: usize, retry_after_secs: f64) {
        let mut state = self.state.lock().unwrap();
        state.throttled = requests;
        state.retry_after_secs = retry_after_secs;
    }

    /// Every file response waits `latency` first, like a distant CDN.
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().unwrap().latency = latency;
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<CdnRequest> {
        self.state.lock().unwrap().requests.clone()
    }
}

impl Drop for TestCdn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(State(state): State<Arc<Mutex<CdnState>>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let served = {
        let mut state = state.lock().unwrap();
        state.requests.push(CdnRequest {
            path: path.clone(),
            at: Instant::now(),
        });
        if state.throttled > 0 {
            state.throttled -= 1;
            let retry_after = state.retry_after_secs;
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, format!("{retry_after}"))],
                format!("{{\"message\": \"You are being rate limited.\", \"retry_after\": {retry_after}}}"),
            )
                .into_response();
        }
        state.files.get(&path).cloned().map(|served| match served {
            Served::File {
                bytes,
                content_type,
                delay,
            } => Served::File {
                bytes,
                content_type,
                delay: delay + state.latency,
            },
            gone => gone,
        })
    };
    match served {
        Some(Served::File {
            bytes,
            content_type,
            delay,
        }) => {
            tokio::time::sleep(delay).await;
            ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
        }
        Some(Served::Gone) | None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain")],
            GONE_BODY,
        )
            .into_response(),
    }
}
