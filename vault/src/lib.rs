//! zerok-vault: encrypted, deduplicated, compressed snapshots of folders in any object store
//! (a local folder, S3/MinIO, or memory), and everything done with them: backup, restore,
//! check, forget and prune, key slots.
//!
//! A library only: it prints nothing and never exits; progress is reported through
//! [`Progress`] counters and results through typed values and [`Error`]. The byte format
//! is specified in `vault/FORMAT.md`.
//!
//! # Layout
//! - [`store`]: URLs → [`Backend`] (named objects under a prefix, errors that name them).
//! - [`format`]: encoders/decoders of every stored object.
//! - `vault`: [`Vault`] — init, unlock by key slot, snapshots, trees, chunk reads.
//! - `master_index`: [`MasterIndex`] — chunk id → pack location.
//! - `cache`: [`Cache`] — a remote vault's index files, snapshots and tree packs, kept
//!   sealed on this machine.
//! - [`chunker`]: content-defined chunking (FastCDC 2020) through one reusable buffer.
//! - [`dirfd`]: folder handles that never follow a symlink (restore's removals, replay).
//! - [`browse`]: a snapshot's entries by path, and two snapshots compared.
//! - `backup`: the parallel walk → chunk → compress → encrypt → pack → upload pipeline.
//! - `restore`, `check`, `prune`, `repair`, `lock`, `progress`, `stats`, `tags`.
//!
//! ```no_run
//! # async fn demo() -> zerok_vault::Result<()> {
//! use zerok_vault::{Location, Vault, InitOptions, BackupOptions};
//! let url = "/tmp/my-vault";
//! let created = Vault::init(Location::parse(url)?.open(url)?, InitOptions::default()).await?;
//! println!("write down: {}", created.recovery_key.display());
//! let opts = BackupOptions::new(vec!["/home/me/app-state".into()]);
//! let summary = zerok_vault::backup(&created.vault, opts, Default::default()).await?;
//! println!("snapshot {}", summary.snapshot_id);
//! # Ok(()) }
//! ```

pub mod append_only;
mod backup;
pub mod browse;
mod cache;
mod check;
pub mod chunker;
mod copy;
pub mod dirfd;
mod error;
pub mod format;
mod lock;
mod master_index;
mod progress;
mod prune;
mod repair;
mod restore;
mod retention;
mod span;
mod stats;
pub mod store;
mod tags;
mod vault;

pub use backup::{
    BackupOptions, BackupPlan, BackupSummary, CACHEDIR_SIGNATURE, Exclude, Marker, SqliteMode, backup, dry_run,
};
pub use cache::{Cache, DEFAULT_MAX_BYTES as DEFAULT_CACHE_BYTES};
pub use check::{CheckReport, check};
pub use copy::{CopyReport, copy};
pub use error::{Error, Result};
pub use format::keyslot::SlotKind;
pub use master_index::{BlobLocation, MasterIndex};
pub use progress::Progress;
pub use prune::{ForgetReport, PruneReport, forget, forget_plan, prune};
pub use repair::{REPAIRED_TAG, RepairIndexReport, RepairSnapshotsReport, repair_index, repair_snapshots};
pub use restore::{RestoreOptions, RestoreSummary, restore};
pub use retention::{GroupBy, Retention, civil_date};
pub use stats::{Stats, stats};
pub use store::{Backend, Location};
pub use tags::{TagChange, retag};
pub use vault::{Created, Dated, DeviceKey, InitOptions, Opener, Secret, Vault};

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// This machine's host name, for labels and snapshot grouping.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}
