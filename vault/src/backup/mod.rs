//! Backup: walk → skip unchanged files (parent snapshot) → FastCDC → keyed BLAKE3 → dedup →
//! zstd → XChaCha20-Poly1305 → packs → bounded concurrent uploads → index → snapshot.
//!
//! Threads: one walker (reads, chunks, hashes, dedups), `workers` sealers (compress and
//! encrypt), and the async packer/uploader; all are joined, and a panic in any is an
//! error. Bounded channels between them cap memory at about
//! `(2·workers + 2·workers) · max chunk + (uploads + 1) · pack size`. Index files are
//! written every [`packer::INDEX_FLUSH_PACKS`] packs, so an interrupted backup leaves packs
//! that the next run finds in the index and does not upload again. SQLite databases are
//! read through a consistent copy (`sqlite`).
//!
//! Before the snapshot is written, `verify` checks that every pack it uses exists and is
//! indexed; after, the lock is checked for revocation. A prune that collected what this
//! backup uses (it was paused past the store clock's limit) makes it start over, without
//! the packs found gone (FORMAT.md §5.1).

mod exclude;
pub use exclude::{CACHEDIR_SIGNATURE, Exclude, Marker};
mod packer;
mod scan;
pub(crate) use packer::{PACKS_PER_INDEX, flush as flush_index, put_pack};
pub(crate) use verify::{Uses, verify};
mod sqlite;
pub use sqlite::SqliteMode;
pub(crate) use sqlite::{SIDECARS, is_database_at};
mod verify;
mod walk;
pub(crate) use walk::base_name;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use zerok_core::{ChunkId, PackId, SnapshotId};

use crate::{
    Error, MasterIndex, Progress, Result, Vault,
    format::{
        Kind,
        envelope::Sealer,
        snapshot::{Snapshot, SnapshotSummary},
        tree::Tree,
    },
    lock::Lock,
};

/// Runs of one backup before a prune that keeps collecting its data makes it give up.
const ATTEMPTS: usize = 3;

/// Stack of the walker thread, which recurses once per folder level (a path of 4096 bytes
/// has at most 2048 levels).
const WALKER_STACK_BYTES: usize = 64 << 20;

/// What to back up, and how.
#[derive(Clone, Debug)]
pub struct BackupOptions {
    /// Files or folders to back up.
    pub paths: Vec<PathBuf>,
    /// Tags recorded in the snapshot.
    pub tags: Vec<String>,
    /// Host name recorded in the snapshot (also picks the parent snapshot).
    pub hostname: String,
    /// Sync cursors (per relay) the backed-up state includes.
    pub sync_cursors: BTreeMap<String, u64>,
    /// The sync group whose cursors these are (see [`crate::Vault::save_sync_group`]).
    pub sync_group: Option<zerok_core::SyncGroupId>,
    /// Compress/encrypt threads.
    pub workers: usize,
    /// Pack uploads in flight at once; 0 picks by store: 2 for a local folder (enough to
    /// keep a disk busy writing one pack while the other syncs), 4 for remote stores,
    /// where each PUT waits on the network.
    pub uploads: usize,
    /// How SQLite databases are read (default: a consistent copy).
    pub sqlite: SqliteMode,
    /// What to leave out (default: nothing).
    pub exclude: Exclude,
}

impl BackupOptions {
    /// Defaults: this host, one sealer per core, uploads picked by store.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Self {
            paths,
            tags: Vec::new(),
            hostname: crate::hostname(),
            sync_cursors: BTreeMap::new(),
            sync_group: None,
            workers: cores,
            uploads: 0,
            sqlite: SqliteMode::default(),
            exclude: Exclude::default(),
        }
    }
}

/// What a backup did.
#[derive(Clone, Debug)]
pub struct BackupSummary {
    /// The new snapshot.
    pub snapshot_id: SnapshotId,
    /// The snapshot whose unchanged files were reused.
    pub parent: Option<SnapshotId>,
    /// Files not in the parent.
    pub files_new: u64,
    /// Files in the parent but changed.
    pub files_changed: u64,
    /// Files skipped as unchanged (size, mtime, ctime, inode).
    pub files_unmodified: u64,
    /// Directories.
    pub dirs: u64,
    /// Bytes read from files (unchanged files are not read).
    pub bytes_read: u64,
    /// Bytes of all files in the snapshot.
    pub bytes_total: u64,
    /// Bytes newly stored in the vault (packs, index, snapshot), after dedup and compression.
    pub bytes_added: u64,
    /// Chunks not already in the vault.
    pub chunks_new: u64,
    /// Entries (files, folders and what else) left out by [`BackupOptions::exclude`].
    pub excluded: u64,
    /// Files that could not be read, with the reason; they are not in the snapshot.
    pub unreadable: Vec<(PathBuf, String)>,
    /// SQLite databases stored through a consistent copy.
    pub sqlite_copied: u64,
    /// SQLite databases that could not be copied consistently, with the reason; they were
    /// stored as read.
    pub sqlite_raw: Vec<(PathBuf, String)>,
    /// The vault's snapshots as the backup found them, and the new one, oldest first (as
    /// [`Vault::snapshots_dated`], the new one dated no later than the store can have
    /// written it): what a caller would otherwise list again.
    pub snapshots: Vec<crate::Dated>,
    /// Wall time.
    pub duration: Duration,
}

/// Backs up `opts.paths` into a new snapshot.
///
/// # Errors
/// [`Error::Io`] for a source path that does not exist; [`Error::Revoked`] when prunes
/// collected its data three runs in a row; storage errors after their retries. Unreadable files inside the paths are not errors:
/// they are listed in [`BackupSummary::unreadable`].
pub async fn backup(vault: &Vault, opts: BackupOptions, progress: Arc<Progress>) -> Result<BackupSummary> {
    let started = std::time::Instant::now();
    let paths = sources(&opts.paths)?;
    let mut gone: HashSet<PackId> = HashSet::new();
    for attempt in 1..=ATTEMPTS {
        let lock = Lock::acquire(vault, false).await?;
        let result = run(vault, &opts, paths.clone(), progress.clone(), &lock, &gone).await;
        lock.release(vault).await;
        let why = match result {
            Ok(Attempt::Done(mut summary)) => {
                summary.duration = started.elapsed();
                return Ok(*summary);
            }
            Ok(Attempt::Collected(missing)) => {
                let why = format!("a prune removed {} pack(s) this backup uses while it ran", missing.len());
                gone.extend(missing);
                why
            }
            Err(Error::Revoked(why)) => why,
            Err(e) => return Err(e),
        };
        if attempt == ATTEMPTS {
            return Err(Error::Revoked(format!("{why}; gave up after {ATTEMPTS} runs (run the backup again)")));
        }
        tracing::warn!(attempt, %why, "starting the backup over");
    }
    unreachable!("the last attempt returns")
}

/// The source paths made absolute; each must exist and have a name of its own.
fn sources(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for p in given {
        let abs = std::path::absolute(p).map_err(|e| Error::io(p, e))?;
        std::fs::symlink_metadata(&abs).map_err(|e| Error::io(&abs, e))?;
        paths.push(abs);
    }
    if paths.is_empty() {
        return Err(Error::Invalid("nothing to back up: give at least one path".into()));
    }
    let mut names_seen = std::collections::HashSet::new();
    for p in &paths {
        if !names_seen.insert(walk::base_name(p)) {
            return Err(Error::Invalid(format!(
                "two paths share the name {:?}; back them up separately",
                p.file_name()
            )));
        }
    }
    Ok(paths)
}

/// What a backup would do, found by walking the paths as [`backup`] does (unchanged files
/// skipped, new chunks looked up in the index) without storing anything.
#[derive(Clone, Debug)]
pub struct BackupPlan {
    /// The snapshot whose unchanged files would be reused.
    pub parent: Option<SnapshotId>,
    /// Files not in the parent.
    pub files_new: u64,
    /// Files in the parent but changed.
    pub files_changed: u64,
    /// Files that would be skipped as unchanged.
    pub files_unmodified: u64,
    /// Directories.
    pub dirs: u64,
    /// Bytes read from files.
    pub bytes_read: u64,
    /// Bytes of all files the snapshot would hold.
    pub bytes_total: u64,
    /// Chunks the vault lacks (data and trees).
    pub chunks_new: u64,
    /// Their bytes before compression: an upper bound of what the backup would add.
    pub bytes_new: u64,
    /// Entries left out by [`BackupOptions::exclude`].
    pub excluded: u64,
    /// Files that could not be read, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
    /// Wall time.
    pub duration: Duration,
}

/// Walks `opts.paths` as [`backup`] would and says what it would store; writes nothing to
/// the vault but its lock while it reads the index.
///
/// # Errors
/// As [`backup`].
pub async fn dry_run(vault: &Vault, opts: BackupOptions, progress: Arc<Progress>) -> Result<BackupPlan> {
    let started = std::time::Instant::now();
    let paths = sources(&opts.paths)?;
    let lock = Lock::acquire(vault, false).await?;
    let walked = walk(vault, &opts, paths, progress, &lock, &HashSet::new(), true).await;
    lock.release(vault).await;
    let Walked { parent, stats, .. } = walked?;
    Ok(BackupPlan {
        parent: parent.map(|(id, _)| id),
        files_new: stats.files_new,
        files_changed: stats.files_changed,
        files_unmodified: stats.files_unmodified,
        dirs: stats.dirs,
        bytes_read: stats.bytes_read,
        bytes_total: stats.bytes_total,
        chunks_new: stats.chunks_new,
        bytes_new: stats.bytes_new,
        excluded: stats.excluded,
        unreadable: stats.unreadable,
        duration: started.elapsed(),
    })
}

/// How one run ended.
enum Attempt {
    Done(Box<BackupSummary>),
    /// Packs the snapshot would use are gone (collected by a prune): nothing was committed.
    Collected(Vec<PackId>),
}

/// Joins a pipeline thread off the async threads; a panic becomes an error.
async fn join<T: Send + 'static>(thread: std::thread::JoinHandle<T>, what: &'static str) -> Result<T> {
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .map_err(|e| Error::Invalid(format!("backup {what} could not be joined: {e}")))?
        .map_err(|_| Error::Invalid(format!("backup {what} panicked; no snapshot was written")))
}

/// What the walk and the pipeline behind it did.
struct Walked {
    index: Arc<MasterIndex>,
    snapshots: Vec<crate::Dated>,
    parent: Option<(SnapshotId, Snapshot)>,
    path_strings: Vec<String>,
    time_ns: i64,
    root: ChunkId,
    stats: walk::WalkStats,
    packed: packer::Packed,
}

/// Walks the paths against the parent snapshot; unless `dry`, seals and uploads every new
/// chunk into packs (their index files written as they fill).
async fn walk(
    vault: &Vault,
    opts: &BackupOptions,
    paths: Vec<PathBuf>,
    progress: Arc<Progress>,
    lock: &Lock,
    gone: &HashSet<PackId>,
    dry: bool,
) -> Result<Walked> {
    let filter = Arc::new(exclude::Filter::new(&opts.exclude)?);
    let time_ns = crate::now_ns();
    let (index, snapshots) = tokio::join!(MasterIndex::load(vault), vault.snapshots_dated());
    let mut index = index?;
    index.remove_packs(gone);
    let index = Arc::new(index);
    let path_strings: Vec<String> = paths.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let snapshots = snapshots?;
    let parent = snapshots
        .iter()
        .rfind(|d| d.snapshot.hostname == opts.hostname && d.snapshot.paths == path_strings)
        .map(|d| (d.id, d.snapshot.clone()));
    // Every tree of the parent is read up front, many at once: the walk never waits on one.
    // A parent tree that cannot be read only costs re-reading its files.
    let parents: HashMap<ChunkId, Tree> = match &parent {
        Some((_, snap)) => vault
            .load_trees(&index, vec![snap.tree])
            .await
            .into_iter()
            .filter_map(|(id, tree)| Some((id, tree.ok()?)))
            .collect(),
        None => HashMap::new(),
    };
    let parent_root = parent.as_ref().map(|(_, snap)| snap.tree);

    let workers = opts.workers.max(1);
    let (chunk_tx, chunk_rx) = crossbeam_channel::bounded::<walk::Job>(workers * 2);
    let (sealed_tx, sealed_rx) = tokio::sync::mpsc::channel::<packer::Sealed>(workers * 2);
    let mut sealers = Vec::with_capacity(workers);
    for n in 0..workers {
        let (rx, tx, keys, level) =
            (chunk_rx.clone(), sealed_tx.clone(), vault.keys().clone(), vault.config().compression_level);
        let sealer = std::thread::Builder::new()
            .name(format!("zerok-seal-{n}"))
            .spawn(move || {
                let mut sealer = Sealer::new(level);
                for job in rx {
                    let bytes = match job.members[..] {
                        [(id, _)] => {
                            let key = if job.kind == Kind::Data { keys.data() } else { keys.metadata() };
                            sealer.seal(key, job.kind, &id.0, &job.data)
                        }
                        _ => sealer.seal(keys.data(), Kind::Bundle, &[0; 32], &job.data),
                    };
                    let sealed = packer::Sealed { kind: job.kind, members: job.members, bytes };
                    if tx.blocking_send(sealed).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| Error::Invalid(format!("cannot start worker thread: {e}")))?;
        sealers.push(sealer);
    }
    drop((chunk_rx, sealed_tx));

    let scan = scan::Scan::start(&paths, filter.clone(), progress.clone());
    let rules = walk::Rules { sqlite: opts.sqlite, filter, dry };
    let walker = walk::Walker::new(vault.clone(), index.clone(), Arc::new(parents), chunk_tx, progress.clone(), rules);
    // Its own thread with a large stack: the walk recurses once per folder level.
    let walker = std::thread::Builder::new()
        .name("zerok-walk".into())
        .stack_size(WALKER_STACK_BYTES)
        .spawn(move || walker.run(&paths, parent_root))
        .map_err(|e| Error::Invalid(format!("cannot start walker thread: {e}")))?;
    let uploads = match opts.uploads {
        0 if vault.backend().is_local() => 2,
        0 => 8,
        n => n,
    };
    let packed = packer::run(vault, sealed_rx, uploads, &progress, lock).await;
    let walked = join(walker, "walker").await;
    drop(scan);
    for sealer in sealers {
        join(sealer, "sealer").await?;
    }
    let packed = packed?;
    let (root, stats) = walked??;
    if !dry && packed.chunks != stats.chunks_new {
        return Err(Error::Invalid(format!(
            "backup pipeline lost chunks ({} sent, {} stored); no snapshot was written",
            stats.chunks_new, packed.chunks
        )));
    }
    Ok(Walked { index, snapshots, parent, path_strings, time_ns, root, stats, packed })
}

async fn run(
    vault: &Vault,
    opts: &BackupOptions,
    paths: Vec<PathBuf>,
    progress: Arc<Progress>,
    lock: &Lock,
    gone: &HashSet<PackId>,
) -> Result<Attempt> {
    let Walked { index, mut snapshots, parent, path_strings, time_ns, root, stats, mut packed } =
        walk(vault, opts, paths, progress.clone(), lock, gone, false).await?;
    let last = std::mem::take(&mut packed.unflushed);
    let uses =
        verify::Uses { start: &index, reused: &stats.reused_packs, uploaded: &packed.packs, written: &packed.indexes };
    // The last index file is written while the rest is verified: the store just took it.
    let (last, missing) = tokio::join!(flush_index(vault, last, &progress), verify::verify(vault, uses, &progress));
    let (last, last_bytes) = last?;
    packed.indexes.extend(last);
    packed.bytes += last_bytes;
    let missing = missing?;
    if !missing.is_empty() {
        verify::unindex(vault, &packed, &missing, &progress).await?;
        return Ok(Attempt::Collected(missing));
    }
    let mut bytes_added = packed.bytes;

    let snapshot = Snapshot {
        version: 1,
        time_ns,
        hostname: opts.hostname.clone(),
        tags: opts.tags.clone(),
        paths: path_strings,
        tree: root,
        parent: parent.as_ref().map(|(id, _)| *id),
        sync_cursors: opts.sync_cursors.clone(),
        sync_group: opts.sync_group,
        summary: SnapshotSummary {
            files: stats.files_new + stats.files_changed + stats.files_unmodified,
            dirs: stats.dirs,
            bytes: stats.bytes_total,
        },
        program: concat!("zerok ", env!("CARGO_PKG_VERSION")).into(),
        original: None,
    };
    let (id, _, size, lock_written) = crate::lock::commit(vault, lock, &snapshot).await?;
    bytes_added += size;
    // The store wrote the snapshot after the lock: the lock's time bounds the snapshot's.
    let time_ns = snapshot.time_ns.min(crate::vault::stored_ns(lock_written));
    snapshots.push(crate::Dated { id, time_ns, snapshot: snapshot.clone() });
    snapshots.sort_by_key(|d| (d.time_ns, d.snapshot.time_ns, d.id));
    Ok(Attempt::Done(Box::new(BackupSummary {
        snapshot_id: id,
        parent: snapshot.parent,
        files_new: stats.files_new,
        files_changed: stats.files_changed,
        files_unmodified: stats.files_unmodified,
        dirs: stats.dirs,
        bytes_read: stats.bytes_read,
        bytes_total: stats.bytes_total,
        bytes_added,
        chunks_new: stats.chunks_new,
        excluded: stats.excluded,
        unreadable: stats.unreadable,
        sqlite_copied: stats.sqlite_copied,
        sqlite_raw: stats.sqlite_raw,
        snapshots,
        duration: Duration::ZERO,
    })))
}
