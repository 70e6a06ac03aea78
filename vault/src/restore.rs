//! Restore: snapshot → trees → chunks read by ranged GETs, authenticated, verified against
//! their ids and decompressed → files with their modes and times, symlinks, empty files
//! and folders.
//!
//! Safety: every name from a tree is checked ([`Node::has_safe_name`]) before it is joined
//! to the target; folders that already exist are used only if they are real folders (never
//! through a symlink); files and symlinks are created with `O_EXCL` semantics after removing
//! whatever non-folder entry held the name. So nothing is ever written outside the target.

use std::{
    os::unix::{
        ffi::OsStrExt,
        fs::{FileExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    sync::Arc,
};

use futures::{StreamExt, TryStreamExt};
use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::{
    Error, MasterIndex, Progress, Result, Vault,
    format::{
        snapshot::Snapshot,
        tree::{Node, NodeKind},
    },
};

/// Where and what to restore.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// Folder to restore into (created when missing).
    pub target: PathBuf,
    /// Only paths matching one of these globs (relative to the target), or lying under a
    /// match, are restored. Empty: everything.
    pub includes: Vec<String>,
    /// Files restored at once.
    pub files_at_once: usize,
    /// Chunks fetched ahead within one file.
    pub chunks_ahead: usize,
}

impl RestoreOptions {
    /// Everything into `target`.
    pub fn new(target: PathBuf) -> Self {
        Self { target, includes: Vec::new(), files_at_once: 8, chunks_ahead: 4 }
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
    /// Bytes of file content.
    pub bytes: u64,
}

struct Plan {
    dirs: Vec<(PathBuf, Node)>,
    files: Vec<(PathBuf, Node)>,
    links: Vec<(PathBuf, Node)>,
}

/// Restores a snapshot into `opts.target`. A snapshot of one folder is restored with that
/// folder's contents directly in the target; several paths each under their base name.
///
/// # Errors
/// [`Error::UnsafePath`] for a tree entry that would escape the target (checked before
/// anything is written); [`Error::Corrupt`] / [`Error::NotFound`] naming the damaged or
/// missing object; [`Error::Io`] for local write failures.
pub async fn restore(
    vault: &Vault,
    snapshot: &Snapshot,
    opts: &RestoreOptions,
    progress: Arc<Progress>,
) -> Result<RestoreSummary> {
    let index = MasterIndex::load(vault).await?;
    let root = vault.load_tree(&index, &snapshot.tree).await?;
    let filter = build_filter(&opts.includes)?;
    let mut plan = Plan { dirs: Vec::new(), files: Vec::new(), links: Vec::new() };
    let mut top_dir = None;
    let top_nodes = match root.nodes.as_slice() {
        [only] if snapshot.paths.len() == 1 && only.kind == NodeKind::Dir => {
            top_dir = Some(only.clone());
            let sub = only
                .subtree
                .ok_or_else(|| Error::corrupt(format!("tree {}", snapshot.tree), "folder without subtree"))?;
            vault.load_tree(&index, &sub).await?.nodes
        }
        _ => root.nodes,
    };
    collect(vault, &index, top_nodes, PathBuf::new(), &mut plan).await?;
    if let Some(filter) = &filter {
        apply_filter(&mut plan, filter);
    }
    let total: u64 = plan.files.iter().map(|(_, n)| n.size).sum();
    Progress::add(&progress.bytes_total, total);

    create_real_dir(&opts.target).await?;
    for (rel, _) in &plan.dirs {
        create_real_dir(&opts.target.join(rel)).await?;
    }
    let summary = RestoreSummary {
        files: plan.files.len() as u64,
        dirs: plan.dirs.len() as u64,
        symlinks: plan.links.len() as u64,
        bytes: total,
    };
    let (index, progress, shared) = (&index, &progress, &Arc::new(vault.clone()));
    futures::stream::iter(plan.files.iter())
        .map(|(rel, node)| restore_file(shared, index, opts, opts.target.join(rel), node, progress))
        .buffer_unordered(opts.files_at_once.max(1))
        .try_collect::<()>()
        .await?;
    for (rel, node) in &plan.links {
        let path = opts.target.join(rel);
        clear_entry(&path)?;
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
        set_meta(&opts.target.join(rel), node)?;
    }
    if let (Some(node), None) = (&top_dir, &filter) {
        set_meta(&opts.target, node)?;
    }
    Ok(summary)
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

fn apply_filter(plan: &mut Plan, filter: &GlobSet) {
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

/// Walks trees depth-first, folders before their contents, checking every name.
async fn collect(vault: &Vault, index: &MasterIndex, nodes: Vec<Node>, base: PathBuf, plan: &mut Plan) -> Result<()> {
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
                    let children = vault.load_tree(index, &sub).await?.nodes;
                    plan.dirs.push((rel.clone(), node));
                    stack.push((children, rel));
                }
                NodeKind::File => plan.files.push((rel, node)),
                NodeKind::Symlink => plan.links.push((rel, node)),
            }
        }
    }
    plan.dirs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(())
}

/// Creates a folder, or accepts an existing one only if it is a real folder (not a
/// symlink to one), so no later write can be redirected outside the target.
async fn create_real_dir(path: &Path) -> Result<()> {
    match tokio::fs::symlink_metadata(path).await {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => {
            tokio::fs::remove_file(path).await.map_err(|e| Error::io(path, e))?;
            tokio::fs::create_dir(path).await.map_err(|e| Error::io(path, e))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tokio::fs::create_dir_all(path).await.map_err(|e| Error::io(path, e))
        }
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Removes a file or symlink holding `path`; refuses to replace a folder.
fn clear_entry(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(Error::io(path, std::io::Error::other("a folder is in the way"))),
        Ok(_) => std::fs::remove_file(path).map_err(|e| Error::io(path, e)),
        Err(_) => Ok(()),
    }
}

/// Chunks opened and written per blocking call (a few MiB): few thread hand-offs per file,
/// bounded memory per file.
const CHUNKS_PER_BATCH: usize = 8;

/// Writes one file: batches of chunks are fetched concurrently, then opened, verified and
/// written at their offsets on a blocking thread; two batches are in flight at once, so
/// fetching overlaps decrypting and both cores work.
async fn restore_file(
    vault: &Arc<Vault>,
    index: &MasterIndex,
    opts: &RestoreOptions,
    path: PathBuf,
    node: &Node,
    progress: &Progress,
) -> Result<()> {
    let mut offset = 0u64;
    let mut pieces = Vec::with_capacity(node.content.len());
    for id in &node.content {
        pieces.push((*id, offset));
        offset += index.get(id).map_or(0, |loc| loc.entry.raw_len as u64);
    }
    if offset != node.size {
        return Err(Error::corrupt(
            format!("file {}", path.display()),
            format!("chunks hold {offset} bytes, snapshot says {}", node.size),
        ));
    }
    let path = Arc::new(path);
    let file = {
        let path = path.clone();
        blocking(move || {
            clear_entry(&path)?;
            std::fs::OpenOptions::new().write(true).create_new(true).open(&*path).map_err(|e| Error::io(&path, e))
        })
        .await?
    };
    let file = Arc::new(file);
    futures::stream::iter(pieces.chunks(CHUNKS_PER_BATCH))
        .map(|batch| {
            let (vault, file, path) = (vault.clone(), file.clone(), path.clone());
            async move {
                let reader = &vault;
                let fetched: Vec<_> = futures::stream::iter(batch)
                    .map(|(id, at)| async move { Ok::<_, Error>((*id, *at, reader.read_sealed(index, id).await?)) })
                    .buffered(opts.chunks_ahead.max(1))
                    .try_collect()
                    .await?;
                let n = blocking(move || {
                    let mut n = 0u64;
                    for (id, at, (name, loc, sealed)) in fetched {
                        let plain = vault.open_chunk(&name, loc.entry.kind, &id, &sealed, loc.entry.raw_len)?;
                        file.write_all_at(&plain, at).map_err(|e| Error::io(&path, e))?;
                        n += plain.len() as u64;
                    }
                    Ok(n)
                })
                .await?;
                Progress::add(&progress.bytes, n);
                Ok::<_, Error>(())
            }
        })
        .buffer_unordered(2)
        .try_collect::<()>()
        .await?;
    drop(file);
    let node = node.clone();
    blocking(move || set_meta(&path, &node)).await?;
    Progress::add(&progress.files, 1);
    Ok(())
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Invalid(format!("restore worker failed: {e}")))?
}

fn set_meta(path: &Path, node: &Node) -> Result<()> {
    set_owner(path, node);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode)).map_err(|e| Error::io(path, e))?;
    let t = filetime::FileTime::from_unix_time(
        node.mtime_ns.div_euclid(1_000_000_000),
        node.mtime_ns.rem_euclid(1_000_000_000) as u32,
    );
    filetime::set_file_times(path, t, t).map_err(|e| Error::io(path, e))
}

/// Restores the owner where allowed (as root); elsewhere the restoring user keeps it.
fn set_owner(path: &Path, node: &Node) {
    if let Err(e) = std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))
        && e.kind() != std::io::ErrorKind::PermissionDenied
    {
        tracing::debug!(path = %path.display(), error = %e, "owner not restored");
    }
}
