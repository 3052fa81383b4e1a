//! The signals that ask the process to stop: SIGINT (Ctrl-C) and SIGTERM (what Fly.io and
//! most supervisors send). One listener for the bot, the HTTP server and the second-signal
//! "stop now", so every path stops on exactly the same signals.

/// Which stop signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Interrupt,
    Terminate,
}

impl StopSignal {
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "Ctrl-C",
            StopSignal::Terminate => "SIGTERM",
        }
    }
}

/// Resolves on the next SIGINT or SIGTERM. While a listener is installed, tokio's handler
/// keeps the default action from ending the process, so the caller decides what a signal means.
/// A signal that cannot be listened to is logged and never resolves.
pub async fn next_stop_signal() -> StopSignal {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "could not listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "could not listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => StopSignal::Interrupt,
        () = terminate => StopSignal::Terminate,
    }
}
