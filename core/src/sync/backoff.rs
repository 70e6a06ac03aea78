//! Reconnect delays (spec §12.2): 1, 2, 4, 8, 16, then 30 s at most, each plus a uniform
//! 0–5 s jitter so devices do not return to a restarted relay all at once.

use std::time::Duration;

/// Longest base delay.
pub const MAX_DELAY_SECS: u64 = 30;
/// Largest jitter added to each delay, in milliseconds.
pub const MAX_JITTER_MS: u64 = 5000;

/// Backoff state; reset after a successful connect.
#[derive(Clone, Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// The delay before the next attempt, given a random `jitter_seed` (any u64).
    pub fn next_delay(&mut self, jitter_seed: u64) -> Duration {
        let base = (1u64 << self.attempt.min(5)).min(MAX_DELAY_SECS);
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_secs(base) + Duration::from_millis(jitter_seed % (MAX_JITTER_MS + 1))
    }

    /// Attempts since the last success.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// After a successful connect.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_doubles_to_thirty_seconds_with_bounded_jitter() {
        let mut b = Backoff::default();
        let secs: Vec<u64> = (0..8).map(|_| b.next_delay(0).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert!(b.next_delay(u64::MAX).as_millis() <= 35_000);
        b.reset();
        assert_eq!(b.next_delay(1234).as_millis(), 1234 + 1000);
    }
}
