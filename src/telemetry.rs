//! Logging: human-readable by default, JSON for log collectors.

use std::io::IsTerminal;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// The levels when `RUST_LOG` is unset: `info`, with the chattiest dependencies turned down.
const DEFAULT_LEVELS: &str = "info,sqlx=warn,aws_config=warn,aws_smithy_runtime=warn,hyper=warn";

/// The most detail the AWS SDK's crates (every target starting with `aws_`: `aws_sigv4`,
/// `aws_smithy_runtime`, `aws_config`, `aws_sdk_s3`…) may log.
///
/// Below `info` they print the R2 access key id: the orchestrator logs its runtime components
/// and endpoint-resolution state at `debug` (the static credentials provider's `Debug` shows
/// `access_key_id`), and at `trace` the resolved identity, the signing parameters and every
/// request it transmits. The SDK redacts only the secret, and only in some places. So the cap
/// is a filter of its own, ANDed with `RUST_LOG`'s: no `RUST_LOG`, however specific its
/// targets, can lift it (a directive such as `aws_sigv4::http_request=trace` would win over a
/// plain `aws_sigv4=info` added to the same `EnvFilter`). The SDK's warnings and errors —
/// which say what failed, never with the key — stay visible.
const AWS_SDK_MAX_LEVEL: LevelFilter = LevelFilter::INFO;

/// The filter no `RUST_LOG` can lift: everything, except the AWS SDK above `info`. A target
/// matches a prefix as a plain string, so `aws_` covers every crate of the SDK, including
/// ones a future version adds.
fn credential_caps() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("aws_", AWS_SDK_MAX_LEVEL)
}

/// Installs the global subscriber, writing to stderr. `RUST_LOG` overrides the default levels,
/// within [`AWS_SDK_MAX_LEVEL`] for the AWS SDK. Colours only when stderr is a terminal (and `NO_COLOR` is
/// unset): a pipe, a file or a log collector gets plain text.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LEVELS));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let layer = match format {
        LogFormat::Pretty => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    // A second init (tests, or a library user who set one up) is not an error worth failing for.
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter).with_filter(credential_caps()))
        .try_init();
}
