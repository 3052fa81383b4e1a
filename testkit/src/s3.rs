//! A real S3-protocol server (s3s-fs) in process, standing in for Cloudflare R2.
//!
//! ```text
//! let s3 = TestS3::start().await;          // 127.0.0.1:<random>, bucket created
//! // point an S3 client at s3.endpoint() with ACCESS_KEY / SECRET_KEY, path-style
//! assert!(s3.object_file("k").exists());   // objects are plain files under the temp dir
//! assert_eq!(s3.keys().await, ["k"]);      // every key in the bucket, read from the disk
//! assert_eq!(s3.requests("PutObject"), 1); // every request the server saw, by S3 operation
//! s3.fail("PutObject", S3ErrorCode::ServiceUnavailable, Some(2)); // next 2 PUTs get a 503
//! s3.stop().await;                         // storage "goes down": connections now refused
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::access::{S3Access, S3AccessContext};
use s3s::service::S3Service;
pub use s3s::S3ErrorCode;
use s3s::{S3Error, S3Result};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// Access key id the server accepts.
pub const ACCESS_KEY: &str = "portrait-test-access-key";
/// Secret key the server accepts (requests are really SigV4-signed and checked).
pub const SECRET_KEY: &str = "portrait-test-secret-key-0123456789";
/// The bucket [`TestS3::start`] creates.
pub const BUCKET: &str = "portraits";
/// A bucket name that never exists on the server.
pub const MISSING_BUCKET: &str = "no-such-bucket";
/// A public base URL for the bucket, for settings that need one (nothing listens there).
pub const PUBLIC_URL: &str = "https://portraits.example.test";

/// s3s-fs serving a temp folder on `127.0.0.1:0`. Stopped when dropped.
pub struct TestS3 {
    endpoint: String,
    addr: SocketAddr,
    bucket: String,
    dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    log: RequestLog,
}

impl TestS3 {
    /// Starts the server with the bucket [`BUCKET`] created.
    pub async fn start() -> TestS3 {
        Self::start_with_bucket(BUCKET).await
    }

    /// Starts the server with `bucket` created (S3 names: 3+ chars, lower-case, digits, `-`).
    pub async fn start_with_bucket(bucket: &str) -> TestS3 {
        let dir = tempfile::tempdir().expect("temp dir for s3s-fs");
        // With s3s-fs a bucket is simply a folder under the root.
        std::fs::create_dir(dir.path().join(bucket)).expect("create bucket folder");

        let fs = s3s_fs::FileSystem::new(dir.path()).expect("s3s-fs over the temp dir");
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let log = RequestLog::default();
        builder.set_access(log.clone());
        let service = builder.build();

        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (shutdown, stop_rx) = oneshot::channel();
        let server = tokio::spawn(serve(listener, service, stop_rx));

        TestS3 {
            endpoint: format!("http://{addr}"),
            addr,
            bucket: bucket.to_owned(),
            dir,
            shutdown: Some(shutdown),
            server: Some(server),
            log,
        }
    }

    /// How many requests for the S3 operation `op` (e.g. `"ListObjectsV2"`, `"DeleteObjects"`,
    /// `"PutObject"`) the server has seen, refused ones included.
    pub fn requests(&self, op: &str) -> usize {
        self.log
            .ops
            .lock()
            .unwrap()
            .iter()
            .filter(|o| *o == op)
            .count()
    }

    /// Every request's S3 operation name, in arrival order.
    pub fn request_log(&self) -> Vec<String> {
        self.log.ops.lock().unwrap().clone()
    }

    /// Forgets the requests seen so far (e.g. after seeding objects).
    pub fn clear_request_log(&self) {
        self.log.ops.lock().unwrap().clear();
    }

    /// Makes the server answer requests for the S3 operation `op` (e.g. `"PutObject"`) with
    /// `code` (`ServiceUnavailable` and `SlowDown` are 503, `InternalError` 500,
    /// `NotImplemented` 501, `AccessDenied` 403…) the next `times` times, or always with `None`.
    /// Refused requests still count in [`TestS3::requests`]. A later call for the same `op`
    /// replaces the earlier one.
    pub fn fail(&self, op: &str, code: S3ErrorCode, times: Option<usize>) {
        self.log.faults.lock().unwrap().retain(|f| f.op != op);
        self.log.faults.lock().unwrap().push(Fault {
            op: op.to_owned(),
            code,
            remaining: times,
        });
    }

    /// Removes every fault set with [`TestS3::fail`].
    pub fn clear_faults(&self) {
        self.log.faults.lock().unwrap().clear();
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bucket that exists.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The access key id the server accepts.
    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    /// The folder s3s-fs serves (buckets are its sub-folders).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Where s3s-fs keeps the bytes of `key` in the bucket, to look at the disk directly.
    pub fn object_file(&self, key: &str) -> PathBuf {
        self.dir.path().join(&self.bucket).join(key)
    }

    /// Every key in the bucket, sorted: the files s3s-fs keeps under the bucket's folder (it
    /// keeps its metadata and partial uploads outside it).
    pub async fn keys(&self) -> Vec<String> {
        let bucket = self.dir.path().join(&self.bucket);
        tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            collect_keys(&bucket, &bucket, &mut keys);
            keys.sort();
            keys
        })
        .await
        .expect("list the bucket folder")
    }

    /// Stops the server as if storage went down: the port is closed and open connections are
    /// dropped, so later requests fail to connect. Returns once that is done. Idempotent.
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// Whether [`TestS3::stop`] has been called.
    pub fn is_stopped(&self) -> bool {
        self.server.is_none()
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            // Dropping the task drops the listener and (through the JoinSet) every connection.
            server.abort();
        }
    }
}

/// An `http://127.0.0.1:PORT` endpoint where nothing listens (the port was just freed), for
/// "storage unreachable" tests.
pub async fn unreachable_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    format!("http://{addr}")
}

/// Adds the key of every file under `dir` (relative to `bucket`, `/`-separated) to `keys`.
fn collect_keys(bucket: &Path, dir: &Path, keys: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return; // a folder emptied and removed meanwhile
    };
    for entry in entries {
        let path = entry.expect("read the bucket folder").path();
        if path.is_dir() {
            collect_keys(bucket, &path, keys);
        } else {
            let key = path.strip_prefix(bucket).expect("under the bucket");
            let parts: Vec<_> = key.iter().map(|part| part.to_string_lossy()).collect();
            keys.push(parts.join("/"));
        }
    }
}

/// Accepts connections until told to stop, then closes the listener and every connection.
async fn serve(listener: TcpListener, service: S3Service, mut stop: oneshot::Receiver<()>) {
    let http = ConnBuilder::new(TokioExecutor::new());
    // Connections live in a JoinSet owned by this task, so stopping (or aborting) the task
    // also ends keep-alive connections a client might otherwise keep using.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else { continue };
                let http = http.clone();
                let service = service.clone();
                connections.spawn(async move {
                    let _ = http.serve_connection(TokioIo::new(socket), service).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Records the operation of every request and injects the faults asked for. Hooked in as
/// s3s's access check, which sees each request once its signature is known; it keeps the
/// default rule (anonymous requests refused).
#[derive(Clone, Default)]
struct RequestLog {
    ops: Arc<Mutex<Vec<String>>>,
    faults: Arc<Mutex<Vec<Fault>>>,
}

struct Fault {
    op: String,
    code: S3ErrorCode,
    /// `None`: always.
    remaining: Option<usize>,
}

impl RequestLog {
    fn decide(&self, op: &str, signed: bool) -> S3Result<()> {
        self.ops.lock().unwrap().push(op.to_owned());
        if !signed {
            return Err(s3s::s3_error!(AccessDenied, "Signature is required"));
        }
        let mut faults = self.faults.lock().unwrap();
        if let Some(fault) = faults.iter_mut().find(|f| f.op == op) {
            match &mut fault.remaining {
                Some(0) => {}
                Some(n) => {
                    *n -= 1;
                    return Err(S3Error::with_message(
                        fault.code.clone(),
                        "injected by TestS3",
                    ));
                }
                None => {
                    return Err(S3Error::with_message(
                        fault.code.clone(),
                        "injected by TestS3",
                    ))
                }
            }
        }
        Ok(())
    }
}

// Written out as `#[async_trait]` expands it: the `async-trait` crate is not a dev-dependency.
impl S3Access for RequestLog {
    fn check<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        cx: &'life1 mut S3AccessContext<'life2>,
    ) -> Pin<Box<dyn Future<Output = S3Result<()>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        let result = self.decide(cx.s3_op().name(), cx.credentials().is_some());
        Box::pin(std::future::ready(result))
    }
}
