//! The built-in HTTP server: `/healthz`, `/metrics`, the default portrait, and the local
//! store's objects.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::App;
use crate::config::{DEFAULT_PORTRAIT_PATH, LOCAL_OBJECTS_PATH};
use crate::portrait::DEFAULT_PORTRAIT_PNG;
use crate::storage::{StorageError, Store, CACHE_CONTROL};

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

/// Serves the local folder's objects.
async fn local_object(State(app): State<App>, Path(key): Path<String>) -> Response {
    // With R2 the bucket's public URL serves objects; a key the store refuses (`../x`, hidden
    // metadata files) is simply not there.
    if !matches!(*app.store, Store::Local(_)) || app.store.check_key(&key).is_err() {
        return StatusCode::NOT_FOUND.into_response();
    }
    match app.store.get(&key).await {
        Ok(object) => {
            let content_type = object
                .info
                .content_type
                .as_deref()
                .and_then(|value| HeaderValue::from_str(value).ok())
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            let cache_control = object
                .info
                .cache_control
                .as_deref()
                .and_then(|value| HeaderValue::from_str(value).ok())
                .unwrap_or(HeaderValue::from_static(CACHE_CONTROL));
            (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CACHE_CONTROL, cache_control),
                    (
                        header::X_CONTENT_TYPE_OPTIONS,
                        HeaderValue::from_static("nosniff"),
                    ),
                ],
                object.bytes,
            )
                .into_response()
        }
        Err(StorageError::NotFound { .. }) => StatusCode::NOT_FOUND.into_response(),
        Err(err) => {
            tracing::warn!(%key, error = %err, "could not serve a local object");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
