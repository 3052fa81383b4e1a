//! Per-player upload limits, kept in memory.
//!
//! All of a guild's interactions reach the one process that runs its shard, so a per-process
//! window is exact even when several machines share the gateway.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window the upload limit counts over.
pub const UPLOAD_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Counts each player's recent uploads per server. The allowance is not held here: each
/// server sets its own (`/admin settings set uploads_per_10_minutes`), so every call passes
/// the one that applies.
#[derive(Debug)]
pub struct UploadLimiter {
    window: Duration,
    recent: Mutex<HashMap<(u64, u64), VecDeque<Instant>>>,
}

impl UploadLimiter {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an upload by `user` in `guild`, allowed `per_window` uploads, or says how long
    /// until the next one is allowed.
    pub fn try_acquire(&self, guild: u64, user: u64, per_window: u32) -> Result<(), Duration> {
        self.try_acquire_at(guild, user, per_window, Instant::now())
    }

    fn try_acquire_at(
        &self,
        guild: u64,
        user: u64,
        per_window: u32,
        now: Instant,
    ) -> Result<(), Duration> {
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let times = recent.entry((guild, user)).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() >= per_window as usize {
            let oldest = *times.front().expect("non-empty when at the limit");
            return Err(self.window - now.duration_since(oldest));
        }
        times.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_player_gets_the_allowed_uploads_per_window_then_a_wait() {
        let limiter = UploadLimiter::new(UPLOAD_WINDOW);
        let start = Instant::now();
        assert!(limiter.try_acquire_at(1, 7, 2, start).is_ok());
        assert!(limiter
            .try_acquire_at(1, 7, 2, start + Duration::from_secs(60))
            .is_ok());
        let wait = limiter
            .try_acquire_at(1, 7, 2, start + Duration::from_secs(120))
            .expect_err("third upload in the window is refused");
        assert_eq!(wait, Duration::from_secs(480));
        // Another player, or the same player in another server, is counted separately.
        assert!(limiter.try_acquire_at(1, 8, 2, start).is_ok());
        assert!(limiter.try_acquire_at(2, 7, 2, start).is_ok());
        // Once the first upload leaves the window, one more is allowed.
        assert!(limiter
            .try_acquire_at(1, 7, 2, start + UPLOAD_WINDOW)
            .is_ok());
    }

    #[test]
    fn each_server_allowance_applies_to_its_own_uploads() {
        let limiter = UploadLimiter::new(UPLOAD_WINDOW);
        let start = Instant::now();
        assert!(limiter.try_acquire_at(1, 7, 1, start).is_ok());
        assert!(limiter.try_acquire_at(1, 7, 1, start).is_err());
        for _ in 0..3 {
            assert!(limiter.try_acquire_at(2, 7, 3, start).is_ok());
        }
        assert!(limiter.try_acquire_at(2, 7, 3, start).is_err());
        // A server that raises its allowance lets the player go on at once.
        assert!(limiter.try_acquire_at(1, 7, 2, start).is_ok());
    }
}
