//! Restore: snapshot → trees → every needed chunk read once, pack by pack, neighbours in
//! one ranged GET → authenticated, verified against its id and decompressed → written at
//! each offset that holds it → files with their modes, extended attributes and times
//! (holes where a sparse file's chunk is all zeros), hard links between files the snapshot
//! saw as one, symlinks, fifos, empty files and folders.
//!
//! Safety: every name from a tree is checked ([`Node::has_safe_name`]) before it is joined
//! to the target; folders that already exist are used only if they are real folders (never
//! through a symlink); files and symlinks are created with `O_EXCL` semantics after removing
//! whatever non-folder entry held the name. So nothing is ever written outside the target.
//! Files are created 0600 and folders 0700; owner, mode and times are set at the end through
//! a handle opened with `O_NOFOLLOW` (never through a symlink), owner first, and setuid or
//! setgid survive only when the recorded owner could be set.

use std::{
    collections::HashMap,
    os::unix::{
        ffi::OsStrExt,
        fs::{FileExt, MetadataExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    sync::Arc,
};

use futures::StreamExt;
use globset::{Glob, GlobSet, GlobSetBuilder};
use zerok_core::ChunkId;

use crate::{
    Error, MasterIndex, Progress, Result, Vault,
    format::{
        snapshot::Snapshot,
        tree::{Node, NodeKind, Tree},
    },
};

/// Fresh looks at the index before anything is called lost.
const RELOOKS: usize = 2;

/// Where and what to restore.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// Folder to restore into (created when missing).
    pub target: PathBuf,
    /// Only paths matching one of these globs (relative to the target), or lying under a
    /// match, are restored. Empty: everything.
    pub includes: Vec<String>,
    /// Names at the top of the restored tree that are left out (a folder the caller writes
    /// itself, such as `zerok-restore`'s `.zerok`).
    pub reserved: Vec<std::ffi::OsString>,
}

impl RestoreOptions {
    /// Everything into `target`.
    pub fn new(target: PathBuf) -> Self {
        Self { target, includes: Vec::new(), reserved: Vec::new() }
    }
}

/// What a restore wrote.
#[derive(Clone, Debug, Default)]
pub struct RestoreSummary {
    /// Regular files.
    pub files: u64,
    /// Folders.
    pub dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Names made as hard links to a file restored under another name.
    pub hardlinks: u64,
    /// Named pipes.
    pub fifos: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// What was not restored because its data is lost or damaged, each "path: why"; the
    /// rest of the snapshot was restored.
    pub lost: Vec<String>,
    /// Index files and pack headers that did not open; the restore read around them.
    pub index_damage: Vec<String>,
}

struct Plan {
    dirs: Vec<(PathBuf, Node)>,
    files: Vec<(PathBuf, Node)>,
    /// Symlinks and fifos.
    links: Vec<(PathBuf, Node)>,
    /// Names of files restored elsewhere: (this name, the file's restored name).
    hardlinks: Vec<(PathBuf, PathBuf)>,
    /// The snapshot's one folder, whose metadata the target gets.
    top_dir: Option<Node>,
    /// Folders whose trees, and files whose chunks, are nowhere: (path, why).
    lost: Vec<(PathBuf, String)>,
}

/// Where each chunk is read from: the first place the index gives whose pack the store
/// still holds (a pack it lists, or that answers a HEAD).
struct Places<'i> {
    index: &'i MasterIndex,
    /// Packs the index names that the store does not hold (reading the headers of packs no
    /// index names adds none: those are listed).
    gone: &'i std::collections::HashSet<zerok_core::PackId>,
}

impl<'i> Places<'i> {
    fn locate(&self, id: &ChunkId) -> Option<&'i crate::BlobLocation> {
        self.index.places(id).find(|l| !self.gone.contains(&l.pack))
    }
}

/// Restores a snapshot into `opts.target`. A snapshot of one folder is restored with that
/// folder's contents directly in the target; several paths each under their base name.
///
/// Damage costs only what it touches. When an index file does not open, or a tree or chunk
/// is in no index or only in packs that are gone, the headers of the packs no index names
/// are read too. A file whose chunks are nowhere is left out before anything is written
/// (what the target holds at its name stays); one whose chunks do not open, or whose pack
/// vanishes during the restore, is removed once written in part. Both, and the contents of
/// a folder whose tree is lost, are named in [`RestoreSummary::lost`] (only those within
/// `opts.includes`).
///
/// # Errors
/// [`Error::UnsafePath`] for a tree entry that would escape the target (checked before
/// anything is written); [`Error::Corrupt`] / [`Error::NotFound`] when the snapshot's root
/// tree is lost; [`Error::Io`] for local write failures.
pub async fn restore(
    vault: &Vault,
    snapshot: &Snapshot,
    opts: &RestoreOptions,
    progress: Arc<Progress>,
) -> Result<RestoreSummary> {
    let filter = build_filter(&opts.includes)?;
    let (loaded, stored) = tokio::join!(MasterIndex::load_reporting(vault), vault.stored_packs());
    let (mut index, bad) = loaded?;
    let mut index_damage: Vec<String> = bad.iter().map(ToString::to_string).collect();
    let fell_back = !bad.is_empty();
    if fell_back {
        index_damage.extend(index.add_unindexed(vault).await?.iter().map(|(_, e)| e.to_string()));
    }
    let mut gone = index.gone_packs(vault, &stored?).await?;
    let mut planned = plan(vault, &Places { index: &index, gone: &gone }, snapshot, opts, filter.as_ref()).await;
    if !fell_back && !planned.as_ref().is_ok_and(|p| p.lost.is_empty()) {
        // Something is in no index file: it may be in a pack whose index file is gone.
        index_damage.extend(index.add_unindexed(vault).await?.iter().map(|(_, e)| e.to_string()));
        planned = plan(vault, &Places { index: &index, gone: &gone }, snapshot, opts, filter.as_ref()).await;
    }
    // A listing can miss objects (a dropped page) and a read can fail for a moment: what
    // still looks lost is looked for again, with fresh listings, before it is called lost.
    for _ in 0..RELOOKS {
        if planned.as_ref().is_ok_and(|p| p.lost.is_empty()) {
            break;
        }
        let (fresh, _) = MasterIndex::load_reporting(vault).await?;
        index.absorb(fresh);
        index.add_unindexed(vault).await?;
        gone = index.gone_packs(vault, &vault.stored_packs().await?).await?;
        planned = plan(vault, &Places { index: &index, gone: &gone }, snapshot, opts, filter.as_ref()).await;
    }
    let plan = planned?;
    let places = Places { index: &index, gone: &gone };
    let total: u64 = plan.files.iter().map(|(_, n)| n.size).sum();
    Progress::add(&progress.bytes_total, total);

    create_real_dir(&opts.target).await?;
    for (rel, _) in &plan.dirs {
        create_real_dir(&opts.target.join(rel)).await?;
    }
    let damaged = restore_contents(&Arc::new(vault.clone()), &places, &opts.target, &plan.files, &progress).await?;
    clear_stale_journals(&opts.target, &plan.files, &damaged);
    let mut lost: Vec<String> = plan.lost.iter().map(|(rel, why)| format!("{}: {why}", rel.display())).collect();
    for (file, why) in &damaged {
        lost.push(format!("{}: {why}", plan.files[*file].0.display()));
    }
    let damaged_paths: std::collections::HashSet<&Path> =
        damaged.iter().map(|(f, _)| plan.files[*f].0.as_path()).collect();
    let mut hardlinks = 0;
    for (rel, primary) in &plan.hardlinks {
        if damaged_paths.contains(primary.as_path()) {
            lost.push(format!("{}: a hard link to {}, which is lost", rel.display(), primary.display()));
            continue;
        }
        let path = opts.target.join(rel);
        clear_entry(&path)?;
        std::fs::hard_link(opts.target.join(primary), &path).map_err(|e| Error::io(&path, e))?;
        hardlinks += 1;
    }
    let fifos = plan.links.iter().filter(|(_, n)| n.kind == NodeKind::Fifo).count() as u64;
    let summary = RestoreSummary {
        files: (plan.files.len() - damaged.len()) as u64,
        dirs: plan.dirs.len() as u64,
        symlinks: plan.links.len() as u64 - fifos,
        hardlinks,
        fifos,
        bytes: total - damaged.iter().map(|(f, _)| plan.files[*f].1.size).sum::<u64>(),
        lost,
        index_damage,
    };
    for (rel, node) in &plan.links {
        let path = opts.target.join(rel);
        clear_entry(&path)?;
        if node.kind == NodeKind::Fifo {
            make_fifo(&path, node)?;
            continue;
        }
        let target = std::ffi::OsStr::from_bytes(node.target.as_deref().unwrap_or_default());
        std::os::unix::fs::symlink(target, &path).map_err(|e| Error::io(&path, e))?;
        set_owner(&path, node);
        let t = filetime::FileTime::from_unix_time(
            node.mtime_ns.div_euclid(1_000_000_000),
            node.mtime_ns.rem_euclid(1_000_000_000) as u32,
        );
        filetime::set_symlink_file_times(&path, t, t).map_err(|e| Error::io(&path, e))?;
    }
    for (rel, node) in plan.dirs.iter().rev() {
        let path = opts.target.join(rel);
        set_meta(&open_nofollow(&path, true)?, &path, node)?;
    }
    if let (Some(node), None) = (&plan.top_dir, &filter) {
        set_meta(&open_nofollow(&opts.target, true)?, &opts.target, node)?;
    }
    Ok(summary)
}

/// Makes a named pipe (0600 until its metadata is set through a handle to it).
fn make_fifo(path: &Path, node: &Node) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::io(path, std::io::Error::other("a NUL in the path")))?;
    // SAFETY: `c` is a NUL-terminated path that lives across the call.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(Error::io(path, std::io::Error::last_os_error()));
    }
    // Opened for reading without waiting for a writer, never through a symlink.
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    // The fifo made, not what someone swapped in since (its metadata would be set on that).
    use std::os::unix::fs::FileTypeExt;
    if !handle.metadata().map_err(|e| Error::io(path, e))?.file_type().is_fifo() {
        return Err(Error::io(path, std::io::Error::other("replaced during the restore; not set")));
    }
    set_meta(&handle, path, node)
}

/// Removes a `-journal`, `-wal` or `-shm` left in the target beside a restored SQLite
/// database that the snapshot does not hold: SQLite would apply it to the restored file.
fn clear_stale_journals(target: &Path, files: &[(PathBuf, Node)], damaged: &Damaged) {
    let restored: std::collections::HashSet<&Path> = files.iter().map(|(rel, _)| rel.as_path()).collect();
    for (n, (rel, _)) in files.iter().enumerate() {
        if damaged.iter().any(|(d, _)| *d == n) {
            continue;
        }
        let stale: Vec<PathBuf> = crate::backup::SIDECARS
            .iter()
            .map(|sfx| {
                let mut name = rel.as_os_str().to_owned();
                name.push(sfx);
                PathBuf::from(name)
            })
            .filter(|side| !restored.contains(side.as_path()) && std::fs::symlink_metadata(target.join(side)).is_ok())
            .collect();
        if stale.is_empty() || !crate::backup::is_database_at(&target.join(rel)) {
            continue;
        }
        for side in stale {
            if let Err(e) = crate::dirfd::remove_below(target, &side, None) {
                tracing::warn!(path = %side.display(), error = %e, "a stale SQLite journal beside a restored database was not removed");
            }
        }
    }
}

fn build_filter(includes: &[String]) -> Result<Option<GlobSet>> {
    if includes.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for pattern in includes {
        let glob =
            Glob::new(pattern.trim_matches('/')).map_err(|e| Error::Invalid(format!("--include {pattern:?}: {e}")))?;
        b.add(glob);
    }
    b.build().map(Some).map_err(|e| Error::Invalid(e.to_string()))
}

fn matches(filter: &GlobSet, rel: &Path) -> bool {
    rel.ancestors().any(|a| !a.as_os_str().is_empty() && filter.is_match(a))
}

/// Keeps what `filter` selects (and the folders above it), and the losses within it: a lost
/// folder counts when it is selected or an include lies below it.
fn apply_filter(plan: &mut Plan, filter: &GlobSet, includes: &[String]) {
    plan.lost.retain(|(rel, _)| {
        matches(filter, rel) || includes.iter().any(|p| Path::new(p.trim_matches('/')).starts_with(rel))
    });
    plan.files.retain(|(rel, _)| matches(filter, rel));
    plan.links.retain(|(rel, _)| matches(filter, rel));
    let needed: std::collections::HashSet<PathBuf> = plan
        .files
        .iter()
        .chain(plan.links.iter())
        .flat_map(|(rel, _)| rel.ancestors().skip(1).map(Path::to_path_buf).collect::<Vec<_>>())
        .collect();
    plan.dirs.retain(|(rel, _)| matches(filter, rel) || needed.contains(rel));
}

/// Reads the snapshot's trees into a plan of what to create, cut to `filter`. Fails only
/// when the root is lost or a name is unsafe; a lost subtree or chunk is noted in
/// [`Plan::lost`].
async fn plan(
    vault: &Vault,
    places: &Places<'_>,
    snapshot: &Snapshot,
    opts: &RestoreOptions,
    filter: Option<&GlobSet>,
) -> Result<Plan> {
    let index = places.index;
    let root = vault.load_tree(index, &snapshot.tree).await?;
    let mut plan = Plan {
        dirs: Vec::new(),
        files: Vec::new(),
        links: Vec::new(),
        hardlinks: Vec::new(),
        top_dir: None,
        lost: Vec::new(),
    };
    let top_nodes = match root.nodes.as_slice() {
        [only] if snapshot.paths.len() == 1 && only.kind == NodeKind::Dir => {
            plan.top_dir = Some(only.clone());
            let sub = only
                .subtree
                .ok_or_else(|| Error::corrupt(format!("tree {}", snapshot.tree), "folder without subtree"))?;
            vault.load_tree(index, &sub).await?.nodes
        }
        _ => root.nodes,
    };
    let top_nodes: Vec<Node> =
        top_nodes.into_iter().filter(|n| !opts.reserved.iter().any(|r| r.as_bytes() == n.name)).collect();
    let mut trees = vault.load_trees(index, top_nodes.iter().filter_map(|n| n.subtree).collect()).await;
    collect(places, &mut trees, top_nodes, PathBuf::new(), &mut plan)?;
    if let Some(filter) = filter {
        apply_filter(&mut plan, filter, &opts.includes);
    }
    link_names(&mut plan);
    Ok(plan)
}

/// Of the files the snapshot saw as one (same device and inode, same content), restores
/// the first and makes the others hard links to it.
fn link_names(plan: &mut Plan) {
    let mut first: HashMap<(u64, u64), (PathBuf, Vec<ChunkId>)> = HashMap::new();
    let mut files = Vec::with_capacity(plan.files.len());
    for (rel, node) in std::mem::take(&mut plan.files) {
        if let Some(link) = node.links {
            match first.get(&(link.dev, node.inode)) {
                Some((primary, content)) if *content == node.content => {
                    plan.hardlinks.push((rel, primary.clone()));
                    continue;
                }
                Some(_) => {}
                None => {
                    first.insert((link.dev, node.inode), (rel.clone(), node.content.clone()));
                }
            }
        }
        files.push((rel, node));
    }
    plan.files = files;
}

/// Walks the trees read (`trees`) depth-first, folders before their contents, checking
/// every name.
fn collect(
    places: &Places<'_>,
    trees: &mut HashMap<ChunkId, Result<Tree>>,
    nodes: Vec<Node>,
    base: PathBuf,
    plan: &mut Plan,
) -> Result<()> {
    let mut stack = vec![(nodes, base)];
    while let Some((nodes, base)) = stack.pop() {
        for node in nodes {
            if !node.has_safe_name() {
                return Err(Error::UnsafePath(String::from_utf8_lossy(&node.name).into_owned()));
            }
            let rel = base.join(std::ffi::OsStr::from_bytes(&node.name));
            match node.kind {
                NodeKind::Dir => {
                    let sub = node
                        .subtree
                        .ok_or_else(|| Error::corrupt(format!("folder {}", rel.display()), "no subtree"))?;
                    // A folder may hold the same tree as another: trees are read once, used by each.
                    match trees.get(&sub) {
                        Some(Ok(tree)) => stack.push((tree.nodes.clone(), rel.clone())),
                        // Lost only when gone or damaged: a failing store fails the restore.
                        Some(Err(e @ (Error::NotFound { .. } | Error::Corrupt { .. }))) => {
                            plan.lost.push((rel.clone(), format!("its contents: {e}")))
                        }
                        Some(Err(_)) => return Err(trees.remove(&sub).and_then(Result::err).expect("an error")),
                        None => {
                            plan.lost.push((rel.clone(), format!("its contents: tree {} was not read", sub.short())))
                        }
                    }
                    plan.dirs.push((rel, node));
                }
                NodeKind::File => match node.content.iter().find(|c| places.locate(c).is_none()) {
                    Some(c) => plan.lost.push((rel, format!("chunk {} is in no pack the store holds", c.short()))),
                    None => plan.files.push((rel, node)),
                },
                NodeKind::Symlink | NodeKind::Fifo => plan.links.push((rel, node)),
            }
        }
    }
    plan.dirs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(())
}

/// Creates a folder (0700 until its final mode is set), or accepts an existing one only if
/// it is a real folder (not a symlink to one), so no later write can be redirected outside
/// the target.
async fn create_real_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let create = |recursive| std::fs::DirBuilder::new().recursive(recursive).mode(0o700).create(path);
    match tokio::fs::symlink_metadata(path).await {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => {
            tokio::fs::remove_file(path).await.map_err(|e| Error::io(path, e))?;
            create(false).map_err(|e| Error::io(path, e))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(true).map_err(|e| Error::io(path, e)),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Opens a file or folder without following a symlink in its last component.
fn open_nofollow(path: &Path, dir: bool) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = libc::O_NOFOLLOW | if dir { libc::O_DIRECTORY } else { 0 };
    std::fs::OpenOptions::new().read(dir).write(!dir).custom_flags(flags).open(path).map_err(|e| Error::io(path, e))
}

/// Removes a file or symlink holding `path`; refuses to replace a folder.
fn clear_entry(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(Error::io(path, std::io::Error::other("a folder is in the way"))),
        Ok(_) => std::fs::remove_file(path).map_err(|e| Error::io(path, e)),
        Err(_) => Ok(()),
    }
}

/// Needed blobs of one pack closer than this are read in one GET (reading the gap is
/// cheaper than another request).
const MAX_GAP: u64 = 512 << 10;
/// Longest read: bounds memory (reads in flight × this).
const MAX_SPAN: u64 = 4 << 20;
/// Reads in flight ahead of the writer threads from a local folder (the disk is the limit).
const LOCAL_READS_AHEAD: usize = 2;
/// Reads in flight from a remote store: each waits out a round trip, so enough of them to
/// cover the bandwidth-delay product of a fast link across a WAN (16 × [`MAX_SPAN`] = 64
/// MiB: 400 MB/s at 80 ms). They land in any order; each is written where it belongs.
const REMOTE_READS_AHEAD: usize = 16;

/// A created file: where, which inode (every later write checks it is still the same
/// file), and what to set when its last chunk is in.
struct Target {
    path: PathBuf,
    inode: (u64, u64),
    node: Node,
    chunks_left: std::sync::atomic::AtomicUsize,
}

/// One blob to read, and every (file, offset) that holds its plaintext.
struct Need {
    entry: crate::format::pack::BlobEntry,
    writes: Vec<(usize, u64)>,
}

/// One ranged read of a pack and the blobs in it.
type Span = crate::span::Span<Need>;

/// Files (by position) whose data could not be read or opened, and why.
type Damaged = Vec<(usize, String)>;

/// Restores file contents pack by pack: every chunk is read once (however many files or
/// offsets hold it), neighbouring chunks of a pack are read in one ranged GET, and each
/// read is decrypted, verified and written by one of the writer threads while the next
/// reads are in flight. A pack that is gone or a chunk that does not open damages the files
/// holding it (returned, sorted); a failing store or a local write error stops the restore.
async fn restore_contents(
    vault: &Arc<Vault>,
    places: &Places<'_>,
    target: &Path,
    files: &[(PathBuf, Node)],
    progress: &Arc<Progress>,
) -> Result<Damaged> {
    let mut needs: HashMap<ChunkId, (crate::BlobLocation, Vec<(usize, u64)>)> = HashMap::new();
    for (i, (rel, node)) in files.iter().enumerate() {
        let mut offset = 0u64;
        for id in &node.content {
            let loc = places.locate(id).ok_or_else(|| Error::NotFound {
                object: format!("chunk {id} of file {} (in no index)", rel.display()),
            })?;
            needs.entry(*id).or_insert_with(|| (*loc, Vec::new())).1.push((i, offset));
            offset += loc.entry.raw_len as u64;
        }
        if offset != node.size {
            return Err(Error::corrupt(
                format!("file {}", rel.display()),
                format!("chunks hold {offset} bytes, snapshot says {}", node.size),
            ));
        }
    }
    let spans = plan_spans(needs);
    // The first reads are in flight while the files are created.
    let ahead = if vault.backend().is_local() { LOCAL_READS_AHEAD } else { REMOTE_READS_AHEAD };
    let (read_tx, mut read_rx) = tokio::sync::mpsc::channel(1);
    let reader = {
        let vault = vault.clone();
        tokio::spawn(async move {
            let mut reads = futures::stream::iter(spans)
                .map(|span| {
                    let vault = &vault;
                    async move {
                        let read = vault.backend().get_range(&span.pack, span.start..span.end).await;
                        (span, read)
                    }
                })
                .buffer_unordered(ahead);
            while let Some(read) = reads.next().await {
                if read_tx.send(read).await.is_err() {
                    return;
                }
            }
        })
    };
    let _stop_reads = tokio_util::task::AbortOnDropHandle::new(reader);
    let created = {
        let plan: Vec<(PathBuf, Node)> = files.iter().map(|(rel, node)| (target.join(rel), node.clone())).collect();
        let progress = progress.clone();
        blocking(move || create_files(plan, &progress)).await?
    };
    let targets = Arc::new(created);
    // Decrypting and writing run on a few long-lived threads (not the blocking pool), so
    // the read buffers are reused by the same allocator arenas and memory stays bounded.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (tx, rx) = tokio::sync::mpsc::channel::<(Span, bytes::Bytes)>(workers);
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let damaged: Arc<std::sync::Mutex<Damaged>> = Arc::default();
    let mut threads = Vec::with_capacity(workers);
    for n in 0..workers {
        let (rx, vault, targets, progress, failed, damaged) =
            (rx.clone(), vault.clone(), targets.clone(), progress.clone(), failed.clone(), damaged.clone());
        let thread = std::thread::Builder::new().name(format!("zerok-restore-{n}")).spawn(move || {
            loop {
                let next = rx.lock().expect("restore queue").blocking_recv();
                let Some((span, bytes)) = next else { return Ok(()) };
                if let Err(e) = write_span(&vault, &span, &bytes, &targets, &progress, &damaged) {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    return Err(e);
                }
            }
        });
        threads.push(thread.map_err(|e| Error::Invalid(format!("cannot start restore thread: {e}")))?);
    }
    drop(rx);
    let mut fetched = Ok(());
    while let Some((span, read)) = read_rx.recv().await {
        if failed.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        match read {
            Ok(bytes) => {
                if tx.send((span, bytes)).await.is_err() {
                    break;
                }
            }
            // A pack that vanished costs its files; a failing store fails the restore.
            Err(e @ Error::NotFound { .. }) => damage(&damaged, span.items.iter(), &e),
            Err(e) => {
                fetched = Err(e);
                break;
            }
        }
    }
    drop((read_rx, tx));
    blocking(move || {
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err(Error::Invalid("restore thread panicked".into()))))
            .collect::<Result<Vec<()>>>()
    })
    .await
    .and(fetched)?;
    let mut damaged = std::mem::take(&mut *damaged.lock().expect("damage list"));
    damaged.sort_by_key(|(file, _)| *file);
    damaged.dedup_by_key(|(file, _)| *file);
    for (file, _) in &damaged {
        // Only the file this restore created, written in part, is removed.
        if let Err(e) = crate::dirfd::remove_below(target, &files[*file].0, Some(targets[*file].inode)) {
            tracing::debug!(error = %e, "damaged file not removed");
        }
    }
    Ok(damaged)
}

/// Notes every file holding one of `needs` as damaged by `why`.
fn damage<'n>(damaged: &std::sync::Mutex<Damaged>, needs: impl Iterator<Item = &'n Need>, why: &Error) {
    let mut list = damaged.lock().expect("damage list");
    list.extend(needs.flat_map(|n| &n.writes).map(|&(file, _)| (file, why.to_string())));
}

/// Groups the needed blobs by pack and cuts each pack's into reads of neighbouring blobs.
fn plan_spans(needs: HashMap<ChunkId, (crate::BlobLocation, Vec<(usize, u64)>)>) -> Vec<Span> {
    let placed = needs.into_values().map(|(loc, writes)| (loc.pack, Need { entry: loc.entry, writes })).collect();
    crate::span::cut(placed, |n: &Need| &n.entry, MAX_GAP, MAX_SPAN)
}

/// Creates every file (replacing a file or symlink in the way, never a folder) and sets
/// the metadata of empty ones at once.
fn create_files(plan: Vec<(PathBuf, Node)>, progress: &Progress) -> Result<Vec<Target>> {
    let mut out = Vec::with_capacity(plan.len());
    for (path, node) in plan {
        let chunks = node.content.len();
        clear_entry(&path)?;
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW);
            o.open(&path).map_err(|e| Error::io(&path, e))?
        };
        let meta = file.metadata().map_err(|e| Error::io(&path, e))?;
        if node.sparse {
            // Its length first: the chunks left unwritten stay holes.
            file.set_len(node.size).map_err(|e| Error::io(&path, e))?;
        }
        if chunks == 0 {
            set_meta(&file, &path, &node)?;
            Progress::add(&progress.files, 1);
        }
        let inode = (meta.dev(), meta.ino());
        out.push(Target { path, inode, node, chunks_left: chunks.into() });
    }
    Ok(out)
}

/// Opens, verifies and writes the blobs of one read; finishes each file whose last chunk
/// this was. A blob that does not open damages its files (they are never finished).
fn write_span(
    vault: &Vault,
    span: &Span,
    bytes: &[u8],
    targets: &[Target],
    progress: &Progress,
    damaged: &std::sync::Mutex<Damaged>,
) -> Result<()> {
    let mut open: Option<(usize, std::fs::File)> = None;
    let mut opener = crate::Opener::default();
    let mut written = 0u64;
    for need in &span.items {
        let at = (need.entry.offset as u64 - span.start) as usize;
        let sealed = &bytes[at..at + need.entry.length as usize];
        let plain = match vault.open_with(&mut opener, &span.pack, &need.entry, sealed) {
            Ok(plain) => plain,
            Err(e) => {
                damage(damaged, std::iter::once(need), &e);
                continue;
            }
        };
        for &(file, offset) in &need.writes {
            let t = &targets[file];
            if open.as_ref().is_none_or(|(i, _)| *i != file) {
                open = Some((file, reopen(t)?));
            }
            let (_, handle) = open.as_ref().expect("just opened");
            // A sparse file's zeros stay holes (the file has its length already).
            let wrote = if t.node.sparse {
                write_around_zeros(handle, &plain, offset)
            } else {
                handle.write_all_at(&plain, offset)
            };
            wrote.map_err(|e| Error::io(&t.path, e))?;
            written += plain.len() as u64;
            if t.chunks_left.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
                let (_, handle) = open.take().expect("just written");
                set_meta(&handle, &t.path, &t.node)?;
                Progress::add(&progress.files, 1);
            }
        }
    }
    Progress::add(&progress.bytes, written);
    Ok(())
}

/// Block size holes are left in: a block of zeros is not written.
const HOLE_BLOCK: u64 = 4096;

/// Writes `data` at `offset` but for its blocks (aligned to the file) that are all zeros.
fn write_around_zeros(file: &std::fs::File, data: &[u8], offset: u64) -> std::io::Result<()> {
    let mut run: Option<usize> = None;
    let mut at = 0;
    while at < data.len() {
        let end = (((offset + at as u64) / HOLE_BLOCK + 1) * HOLE_BLOCK - offset).min(data.len() as u64) as usize;
        let zeros = data[at..end].iter().all(|&b| b == 0);
        match (zeros, run) {
            (true, Some(start)) => {
                file.write_all_at(&data[start..at], offset + start as u64)?;
                run = None;
            }
            (false, None) => run = Some(at),
            _ => {}
        }
        at = end;
    }
    match run {
        Some(start) => file.write_all_at(&data[start..], offset + start as u64),
        None => Ok(()),
    }
}

/// Opens a created file for writing, refusing it if the name now holds anything else.
fn reopen(t: &Target) -> Result<std::fs::File> {
    let file = open_nofollow(&t.path, false)?;
    let meta = file.metadata().map_err(|e| Error::io(&t.path, e))?;
    if (meta.dev(), meta.ino()) != t.inode {
        return Err(Error::io(&t.path, std::io::Error::other("replaced during the restore; not written")));
    }
    Ok(file)
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Invalid(format!("restore worker failed: {e}")))?
}

/// Sets owner, then mode, then times through an open handle (never through a symlink).
/// Setuid and setgid are kept only when the file has its recorded owner: the owner change
/// would clear them, and on a file left to the restoring user they would grant that user's
/// rights to whoever runs it.
fn set_meta(file: &std::fs::File, path: &Path, node: &Node) -> Result<()> {
    if let Err(e) = std::os::unix::fs::fchown(file, Some(node.uid), Some(node.gid))
        && e.kind() != std::io::ErrorKind::PermissionDenied
    {
        tracing::debug!(path = %path.display(), error = %e, "owner not restored");
    }
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    let owned = meta.uid() == node.uid && meta.gid() == node.gid;
    let mode = if owned { node.mode } else { node.mode & !0o6000 };
    file.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(|e| Error::io(path, e))?;
    // After the mode: an ACL sets the group bits to its mask, as it was.
    set_xattrs(file, path, node);
    let t = filetime::FileTime::from_unix_time(
        node.mtime_ns.div_euclid(1_000_000_000),
        node.mtime_ns.rem_euclid(1_000_000_000) as u32,
    );
    filetime::set_file_handle_times(file, Some(t), Some(t)).map_err(|e| Error::io(path, e))
}

/// Sets the node's `user.*` attributes and POSIX ACLs where the filesystem takes them (one
/// it refuses is noted in the log). Others are not restored: a tree another device wrote
/// could otherwise plant file capabilities (`security.capability`), relabel files
/// (`security.selinux`) or redirect an overlay (`trusted.*`) when root restores.
fn set_xattrs(file: &std::fs::File, path: &Path, node: &Node) {
    use xattr::FileExt;
    for x in &node.xattrs {
        if !(x.name.starts_with(b"user.") || x.name.starts_with(b"system.posix_acl_")) {
            continue;
        }
        if let Err(e) = file.set_xattr(std::ffi::OsStr::from_bytes(&x.name), &x.value) {
            let name = String::from_utf8_lossy(&x.name);
            tracing::warn!(path = %path.display(), %name, error = %e, "extended attribute not restored");
        }
    }
}

/// Restores the owner where allowed (as root); elsewhere the restoring user keeps it.
fn set_owner(path: &Path, node: &Node) {
    if let Err(e) = std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))
        && e.kind() != std::io::ErrorKind::PermissionDenied
    {
        tracing::debug!(path = %path.display(), error = %e, "owner not restored");
    }
}
