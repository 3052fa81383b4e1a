//! Graceful shutdown: stop taking commands, let uploads in flight finish, then exit.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
}

/// Held while an upload runs; the shutdown waits for every guard to drop.
#[derive(Debug)]
pub struct InFlight(Arc<Lifecycle>);

impl Lifecycle {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Marks an upload as running, unless shutdown has begun.
    pub fn begin(self: &Arc<Self>) -> Option<InFlight> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if self.is_draining() {
            self.end();
            return None;
        }
        Some(InFlight(self.clone()))
    }

    /// Stops new work and waits up to `grace` for running uploads; returns how many were
    /// still running when the wait ended.
    pub async fn drain(&self, grace: Duration) -> usize {
        self.draining.store(true, Ordering::SeqCst);
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(grace, wait).await;
        self.in_flight.load(Ordering::SeqCst)
    }

    /// How many uploads are running.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    fn end(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn draining_waits_for_running_uploads_and_refuses_new_ones() {
        let lifecycle = Arc::new(Lifecycle::default());
        let upload = lifecycle.begin().expect("accepting before shutdown");
        let finisher = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(upload);
        });
        assert_eq!(lifecycle.drain(Duration::from_secs(5)).await, 0);
        assert!(lifecycle.begin().is_none(), "no new uploads while draining");
        finisher.await.unwrap();
    }

    #[tokio::test]
    async fn draining_gives_up_after_the_grace_period() {
        let lifecycle = Arc::new(Lifecycle::default());
        let _stuck = lifecycle.begin().unwrap();
        assert_eq!(lifecycle.drain(Duration::from_millis(20)).await, 1);
    }
}
