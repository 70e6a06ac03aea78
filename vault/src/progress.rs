//! Live counters a caller can poll (for a progress bar) while an operation runs.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters updated by backup and restore as they go.
#[derive(Debug, Default)]
pub struct Progress {
    /// Files finished.
    pub files: AtomicU64,
    /// Content bytes read (backup) or written (restore).
    pub bytes: AtomicU64,
    /// Bytes uploaded to the vault (backup).
    pub bytes_added: AtomicU64,
    /// Bytes expected in all, when known (restore).
    pub bytes_total: AtomicU64,
}

impl Progress {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}
