//! Cloud backup mode for apps (spec: "apps enabling cloud backup mode"): the app's state
//! folder is snapshotted to its vault on an interval and after bursts of sync activity,
//! old snapshots are forgotten by a retention policy, and the app sees status and
//! progress events. A snapshot of a device in a sync group records the group and its
//! cursors, so a recovery key later restores the state *and* replays what came after.
//!
//! Consistency: SQLite databases in `paths` are copied through SQLite's backup API
//! ([`SqliteMode::Consistent`], the default), so each snapshot holds a committed state while
//! the app keeps writing. For other stores, the app holds a [`WriteGuard`] (from
//! [`CloudBackup::write_guard`]) while it changes its files — a snapshot waits for every
//! guard to drop and keeps new ones waiting until it has read the files — or gives a
//! [`Quiesce`] callback that pauses and resumes its writes around each snapshot.
//!
//! ```no_run
//! # async fn demo(home: zerok_client::Home) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use zerok_client::cloud::{CloudBackup, CloudBackupConfig};
//!
//! let mut config = CloudBackupConfig::new("/srv/vault", vec!["/var/lib/myapp".into()]);
//! config.interval = Some(Duration::from_secs(15 * 60));
//! config.after_messages = Some(50);
//! let backup = CloudBackup::enable(&home, config).await?;
//! {
//!     let _writing = backup.write_guard().await; // snapshots wait while this lives
//!     std::fs::write("/var/lib/myapp/state.db", b"...")?;
//! }
//! backup.snapshot_now().await?;
//! backup.disable().await;
//! # Ok(()) }
//! ```

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use tokio::sync::{OwnedRwLockReadGuard, RwLock, broadcast};
use zerok_core::SnapshotId;
use zerok_vault::{BackupOptions, BackupSummary, Progress, Retention, SqliteMode, Vault};

use crate::{Error, Home, Result, sync::SyncHome, unlock, vault_sync};

/// How often the schedule looks at the clock and the activity counters.
const TICK: Duration = Duration::from_millis(250);
/// After a failed scheduled snapshot, the next scheduled one waits this long.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// What to back up, when, and what to keep.
#[derive(Clone, Debug)]
pub struct CloudBackupConfig {
    /// Vault URL (this device must hold a key for it: `zerok init` or `zerok-restore`).
    pub vault: String,
    /// The app's state folder(s), or a consistent export the app writes.
    pub paths: Vec<PathBuf>,
    /// Snapshot this often (`None`: only on activity or on request).
    pub interval: Option<Duration>,
    /// Snapshot after this many messages pushed or pulled since the last one.
    pub after_messages: Option<u64>,
    /// Forget older snapshots after each one (`None`: keep all).
    pub retention: Option<Retention>,
    /// Prune unneeded data after forgetting (costs a full index pass).
    pub prune: bool,
    /// Tags on every snapshot.
    pub tags: Vec<String>,
    /// How SQLite databases are read (default: a consistent copy).
    pub sqlite: SqliteMode,
    /// The app's pause and resume, called around each snapshot.
    pub quiesce: Option<QuiesceHook>,
}

/// The app's own way to pause its writes while a snapshot reads its files (flush caches,
/// finish a transaction, stop a worker) and to resume them.
///
/// Both run on a blocking thread while the snapshot holds the write gate: they must not
/// wait for a [`WriteGuard`].
pub trait Quiesce: Send + Sync {
    /// Called before the snapshot reads any file. An error skips this snapshot (reported
    /// as [`CloudEvent::Failed`]); `resume` is still called.
    ///
    /// # Errors
    /// Whatever keeps the app from pausing.
    fn quiesce(&self) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;
    /// Called after the snapshot, whether or not it was saved.
    fn resume(&self);
}

/// A [`Quiesce`] callback in a [`CloudBackupConfig`].
#[derive(Clone)]
pub struct QuiesceHook(pub Arc<dyn Quiesce>);

impl std::fmt::Debug for QuiesceHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuiesceHook")
    }
}

impl CloudBackupConfig {
    /// Every hour and after 100 messages; keeps the last 10, 7 daily and 4 weekly.
    pub fn new(vault: impl Into<String>, paths: Vec<PathBuf>) -> Self {
        Self {
            vault: vault.into(),
            paths,
            interval: Some(Duration::from_secs(3600)),
            after_messages: Some(100),
            retention: Some(Retention { keep_last: 10, keep_daily: 7, keep_weekly: 4, ..Retention::default() }),
            prune: false,
            tags: vec!["cloud-backup".into()],
            sqlite: SqliteMode::Consistent,
            quiesce: None,
        }
    }
}

/// What the app hears about.
#[derive(Clone, Debug, PartialEq)]
pub enum CloudEvent {
    /// A snapshot began (after the app's writes paused).
    Started,
    /// Files and bytes read so far.
    Progress {
        /// Files read.
        files: u64,
        /// Bytes read.
        bytes: u64,
    },
    /// A snapshot was saved.
    Saved {
        /// Its id.
        snapshot: SnapshotId,
        /// New bytes stored.
        bytes_added: u64,
    },
    /// Snapshots removed by the retention policy.
    Forgot {
        /// How many.
        removed: usize,
    },
    /// A snapshot failed; the schedule goes on.
    Failed {
        /// One line.
        error: String,
    },
}

/// Where cloud backup stands.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CloudStatus {
    /// The schedule runs.
    pub enabled: bool,
    /// A snapshot is being taken now.
    pub running: bool,
    /// The last snapshot saved and when.
    pub last_snapshot: Option<(SnapshotId, SystemTime)>,
    /// The last failure, cleared by the next success.
    pub last_error: Option<String>,
    /// Messages pushed or pulled since the last snapshot.
    pub messages_since: u64,
    /// Snapshots saved since enabled.
    pub snapshots: u64,
}

/// Held by the app while it writes its state; snapshots wait for it.
pub type WriteGuard = OwnedRwLockReadGuard<()>;

struct Inner {
    vault: Vault,
    sync_home: SyncHome,
    home: Home,
    config: CloudBackupConfig,
    gate: Arc<RwLock<()>>,
    status: Mutex<CloudStatus>,
    events: broadcast::Sender<CloudEvent>,
    /// The app's own count first, then one per watched sync client.
    counters: Mutex<Vec<Arc<AtomicU64>>>,
    /// Activity total at the last snapshot.
    activity_mark: AtomicU64,
}

/// Cloud backup, enabled: a schedule running in the background until [`CloudBackup::disable`].
pub struct CloudBackup {
    inner: Arc<Inner>,
    stop: tokio::sync::watch::Sender<bool>,
    schedule: tokio::task::JoinHandle<()>,
}

impl Inner {
    fn activity(&self) -> u64 {
        self.counters.lock().expect("counters").iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn update(&self, f: impl FnOnce(&mut CloudStatus)) {
        f(&mut self.status.lock().expect("status"));
    }

    fn emit(&self, event: CloudEvent) {
        let _ = self.events.send(event);
    }

    async fn snapshot(&self) -> Result<BackupSummary> {
        // Exclusive: waits for the app's writers, and for a snapshot already running.
        let _paused = self.gate.clone().write_owned().await;
        self.update(|s| s.running = true);
        self.emit(CloudEvent::Started);
        let hook = self.config.quiesce.as_ref().map(|h| h.0.clone());
        // The app's callbacks may block: they run off the async threads.
        let paused = match hook.clone() {
            Some(h) => match tokio::task::spawn_blocking(move || h.quiesce()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Error::App(format!("the app's quiesce callback failed: {e}"))),
                Err(e) => Err(Error::App(format!("the app's quiesce callback failed: {e}"))),
            },
            None => Ok(()),
        };
        let result = match paused {
            Ok(()) => self.backup().await,
            Err(e) => Err(e),
        };
        if let Some(h) = hook {
            let _ = tokio::task::spawn_blocking(move || h.resume()).await;
        }
        self.update(|s| s.running = false);
        match &result {
            Ok(summary) => {
                self.update(|s| {
                    s.last_snapshot = Some((summary.snapshot_id, SystemTime::now()));
                    s.last_error = None;
                    s.snapshots += 1;
                });
                let (snapshot, bytes_added) = (summary.snapshot_id, summary.bytes_added);
                self.emit(CloudEvent::Saved { snapshot, bytes_added });
                if let Err(e) = self.retain().await {
                    self.fail(format!("snapshot saved, but the retention policy failed: {e}"));
                }
                match crate::seen::observe(&self.home, &self.vault).await {
                    Ok(observed) => {
                        for line in observed.rollback {
                            self.fail(format!("snapshot saved, but {line}"));
                        }
                    }
                    Err(e) => self.fail(format!("snapshot saved, but recording it on this device failed: {e}")),
                }
            }
            Err(e) => self.fail(e.to_string()),
        }
        result
    }

    fn fail(&self, error: String) {
        self.update(|s| s.last_error = Some(error.clone()));
        self.emit(CloudEvent::Failed { error });
    }

    async fn backup(&self) -> Result<BackupSummary> {
        let mark = self.activity();
        let mut opts = BackupOptions::new(self.config.paths.clone());
        opts.tags = self.config.tags.clone();
        opts.sqlite = self.config.sqlite;
        if let Err(e) = vault_sync::record(&self.vault, &self.sync_home, &mut opts).await {
            tracing::warn!(error = %e, "sync group not recorded with this snapshot");
        }
        let progress = Arc::new(Progress::default());
        let run = zerok_vault::backup(&self.vault, opts, progress.clone());
        tokio::pin!(run);
        let summary = loop {
            tokio::select! {
                done = &mut run => break done?,
                _ = tokio::time::sleep(TICK) => self.emit(CloudEvent::Progress {
                    files: Progress::get(&progress.files),
                    bytes: Progress::get(&progress.bytes),
                }),
            }
        };
        self.activity_mark.store(mark, Ordering::Relaxed);
        Ok(summary)
    }

    /// Applies the retention policy after a saved snapshot.
    async fn retain(&self) -> Result<()> {
        let Some(policy) = &self.config.retention else { return Ok(()) };
        // An append-only vault forgets with its admin credentials only; a device without
        // them keeps every snapshot, as it must.
        let vault = match self.vault.clone().into_admin() {
            Ok(vault) => vault,
            Err(e) => {
                tracing::info!(error = %e, "retention skipped");
                return Ok(());
            }
        };
        let forgot = zerok_vault::forget(&vault, policy).await?;
        if !forgot.removed.is_empty() {
            self.emit(CloudEvent::Forgot { removed: forgot.removed.len() });
            if self.config.prune {
                zerok_vault::prune(&vault, &Progress::default()).await?;
            }
        }
        Ok(())
    }
}

impl CloudBackup {
    /// Unlocks the vault with this device's key and starts the schedule.
    ///
    /// # Errors
    /// No paths, a retention policy that keeps nothing, or the vault does not open.
    pub async fn enable(home: &Home, config: CloudBackupConfig) -> Result<Self> {
        if config.paths.is_empty() {
            return Err(Error::Invalid("cloud backup needs at least one path".into()));
        }
        if config.retention.as_ref().is_some_and(Retention::is_empty) {
            return Err(Error::Invalid("the retention policy must keep at least one snapshot".into()));
        }
        let vault = unlock(&config.vault, None, home).await?.vault;
        let inner = Arc::new(Inner {
            vault,
            sync_home: home.sync(),
            home: home.clone(),
            config,
            gate: Arc::default(),
            status: Mutex::new(CloudStatus { enabled: true, ..Default::default() }),
            events: broadcast::channel(256).0,
            counters: Mutex::new(vec![Arc::default()]),
            activity_mark: AtomicU64::new(0),
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let schedule = tokio::spawn(schedule(inner.clone(), stopped));
        Ok(Self { inner, stop, schedule })
    }

    /// Counts a sync client's pushes and pulls toward `after_messages`.
    pub fn watch(&self, client: &crate::sync::SyncClient) {
        self.inner.counters.lock().expect("counters").push(client.activity());
    }

    /// Counts messages the app synced by other means.
    pub fn note_messages(&self, n: u64) {
        self.inner.counters.lock().expect("counters")[0].fetch_add(n, Ordering::Relaxed);
    }

    /// Waits until no snapshot is reading the files; hold the guard while writing them.
    pub async fn write_guard(&self) -> WriteGuard {
        self.inner.gate.clone().read_owned().await
    }

    /// Takes a snapshot now (waiting for one already running, and for the app's writes).
    ///
    /// # Errors
    /// The backup failed (also reported as [`CloudEvent::Failed`]).
    pub async fn snapshot_now(&self) -> Result<BackupSummary> {
        self.inner.snapshot().await
    }

    /// The current status.
    pub fn status(&self) -> CloudStatus {
        let mut status = self.inner.status.lock().expect("status").clone();
        status.messages_since = self.inner.activity().saturating_sub(self.inner.activity_mark.load(Ordering::Relaxed));
        status
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<CloudEvent> {
        self.inner.events.subscribe()
    }

    /// Stops the schedule, letting a snapshot in progress finish.
    pub async fn disable(self) {
        let _ = self.stop.send(true);
        let _ = self.schedule.await;
        self.inner.update(|s| s.enabled = false);
    }
}

/// Snapshots when the interval has passed or enough messages went by, until stopped.
async fn schedule(inner: Arc<Inner>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let mut last = tokio::time::Instant::now();
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        let due_time = inner.config.interval.is_some_and(|i| last.elapsed() >= i);
        let since = inner.activity().saturating_sub(inner.activity_mark.load(Ordering::Relaxed));
        let due_activity = inner.config.after_messages.is_some_and(|n| since >= n.max(1));
        if (due_time || due_activity) && retry_at.is_none_or(|t| tokio::time::Instant::now() >= t) {
            let failed = inner.snapshot().await.is_err();
            last = tokio::time::Instant::now();
            retry_at = failed.then(|| last + RETRY_AFTER);
        }
    }
}
