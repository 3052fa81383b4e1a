//! The built-in HTTP server: `/healthz`, `/metrics`, the default portrait, and the local
//! store's objects.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::json;
use tower_http::services::ServeDir;

use crate::app::App;
use crate::config::{DEFAULT_PORTRAIT_PATH, LOCAL_OBJECTS_PATH};
use crate::portrait::DEFAULT_PORTRAIT_PNG;
use crate::storage::local::ServedHeaders;
use crate::storage::{Store, CACHE_CONTROL};

/// How long `/healthz` waits for each dependency before calling it down.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(DEFAULT_PORTRAIT_PATH, get(default_portrait))
        .route(&format!("{LOCAL_OBJECTS_PATH}/{{*key}}"), get(local_object))
        .with_state(app)
}

/// Binds `addr` and serves until `shutdown` resolves. Returns the bound address through
/// `on_bound` first, so callers using port 0 learn the real port.
pub async fn serve(
    app: App,
    addr: SocketAddr,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    on_bound(bound);
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz(State(app): State<App>) -> Response {
    let database = check(app.db.ping()).await;
    let storage = check(app.store.ping()).await;
    let healthy = database.is_none() && storage.is_none();
    let body = json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "database": database.unwrap_or_else(|| "ok".into()),
        "storage": storage.unwrap_or_else(|| "ok".into()),
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `None` when healthy, else what went wrong.
async fn check<E: std::fmt::Display>(probe: impl Future<Output = Result<(), E>>) -> Option<String> {
    match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => None,
        Ok(Err(err)) => Some(err.to_string()),
        Err(_) => Some(format!(
            "no answer within {} s",
            HEALTH_CHECK_TIMEOUT.as_secs()
        )),
    }
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        app.metrics.render(),
    )
        .into_response()
}

async fn default_portrait() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        DEFAULT_PORTRAIT_PNG,
    )
        .into_response()
}

/// Serves the local folder's objects with tower-http's `ServeDir`: `Range` (206),
/// `If-Modified-Since` (304) and `Last-Modified` come from it; the `ETag`, `If-None-Match`
/// and the headers the object was stored with (as R2 would send them) are added here.
///
/// Only a key the store accepts reaches the folder (no `..`, no segment starting with `.`, so
/// neither the metadata files nor temp files are served), and `ServeDir` is given exactly that
/// key, re-encoded, so what it opens is what was checked. A folder, a missing object and any
/// refused key are 404.
async fn local_object(
    State(app): State<App>,
    Path(key): Path<String>,
    request: Request,
) -> Response {
    // With R2 the bucket's public URL serves objects.
    let Store::Local(local) = &*app.store else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let headers = match local.serving_headers(&key).await {
        Ok(Some(headers)) => headers,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(err) => {
            tracing::warn!(%key, error = %err, "could not serve a local object");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if none_match(request.headers(), &headers.etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        add_object_headers(&mut response, &headers, false);
        return response;
    }

    let (mut parts, body) = request.into_parts();
    let encoded = key
        .split('/')
        .map(|segment| utf8_percent_encode(segment, PATH_SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/");
    parts.uri = match format!("/{encoded}").parse() {
        Ok(uri) => uri,
        Err(_) => return StatusCode::NOT_FOUND.into_response(),
    };
    let served = ServeDir::new(local.root())
        .append_index_html_on_directories(false)
        .try_call(Request::from_parts(parts, body))
        .await;
    match served {
        Ok(response) => {
            let mut response = response.map(Body::new);
            if matches!(
                response.status(),
                StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
            ) {
                let with_type = response.status() != StatusCode::NOT_MODIFIED;
                add_object_headers(&mut response, &headers, with_type);
            }
            response
        }
        Err(err) => {
            tracing::warn!(%key, error = %err, "could not serve a local object");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Characters escaped in one path segment of the URI handed to `ServeDir` (which decodes it
/// again): controls, space, and everything that means something in a URI path or query.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Whether `If-None-Match` lists `etag` (or is `*`), compared weakly as RFC 9110 says.
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    let bare = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let etag = bare(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == "*" || bare(tag) == etag)
}

/// The headers an object is served with, as R2 would send them.
fn add_object_headers(response: &mut Response, headers: &ServedHeaders, with_type: bool) {
    let out = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&headers.etag) {
        out.insert(header::ETAG, etag);
    }
    let cache_control = HeaderValue::from_str(&headers.cache_control)
        .unwrap_or(HeaderValue::from_static(CACHE_CONTROL));
    out.insert(header::CACHE_CONTROL, cache_control);
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if with_type {
        if let Some(content_type) = headers
            .content_type
            .as_deref()
            .and_then(|value| HeaderValue::from_str(value).ok())
        {
            out.insert(header::CONTENT_TYPE, content_type);
        }
    }
}
