//! Live counters a caller can poll (for a progress bar) while an operation runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Counters updated by backup and restore as they go.
#[derive(Debug, Default)]
pub struct Progress {
    /// Files finished.
    pub files: AtomicU64,
    /// Content bytes read (backup) or written (restore).
    pub bytes: AtomicU64,
    /// Bytes uploaded to the vault (backup).
    pub bytes_added: AtomicU64,
    /// Bytes expected in all, when known (restore; backup: as counted so far).
    pub bytes_total: AtomicU64,
    /// Files expected in all, as counted so far (backup).
    pub files_total: AtomicU64,
    /// Content bytes of the files finished, read or found unchanged (backup: against
    /// `bytes_total` for a percentage).
    pub bytes_done: AtomicU64,
    /// The counts of `files_total` and `bytes_total` are complete.
    pub scanned: AtomicBool,
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
