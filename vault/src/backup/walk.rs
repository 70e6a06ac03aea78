//! The walker thread: visits the source paths in name order, reuses the chunk lists of
//! files unchanged since the parent snapshot, chunks and hashes the rest, and hands every
//! chunk the vault lacks to the sealers. Builds trees bottom-up. SQLite databases are read
//! through a consistent copy (`sqlite`), cut in runs of whole pages, and their journals left
//! out. Entries the [`super::exclude::Filter`] leaves out are not visited; a dry run names
//! and counts chunks without sending them.

use std::{
    collections::{HashMap, HashSet},
    ffi::OsStr,
    fs::{self, Metadata},
    os::unix::{
        ffi::OsStrExt,
        fs::{FileTypeExt, MetadataExt},
    },
    path::{Path, PathBuf},
    sync::Arc,
};

use zerok_core::{ChunkId, PackId};

use super::{
    exclude::Filter,
    sqlite::{self, SqliteMode},
};
use crate::{
    Error, MasterIndex, Progress, Result, Vault,
    chunker::Chunker,
    dirfd,
    format::{
        Kind,
        tree::{HardLink, Node, NodeKind, Tree, Xattr},
    },
};

/// How a listed file is opened for reading: not through a symlink, and without blocking
/// should a fifo have taken its place.
const OPEN_FILE: libc::c_int = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
/// A folder being walked; its handle is opened the first time a file in it is read.
struct Folder<'a> {
    path: &'a Path,
    handle: std::cell::OnceCell<Option<fs::File>>,
    /// Its tree in the parent snapshot records extended attributes (version 2): an
    /// unchanged file's are the ones recorded there.
    xattrs_recorded: bool,
}

impl Folder<'_> {
    /// The folder's handle (`None` when it cannot be opened: files are then opened by path).
    fn handle(&self) -> Option<&fs::File> {
        self.handle.get_or_init(|| dirfd::open_dir(self.path).ok()).as_ref()
    }
}

/// New data chunks shorter than this are gathered into bundles (FORMAT.md §4.3.1).
const BUNDLE_CHUNKS_BELOW: usize = 32 << 10;
/// A bundle is sent to the sealers once its body reaches this many bytes (chosen by
/// measurement, FORMAT.md §4.3.1).
const BUNDLE_BYTES: usize = 256 << 10;

/// Work for the sealers: one chunk, or a bundle of small data chunks laid end to end.
pub(super) struct Job {
    pub kind: Kind,
    /// The plaintext: one chunk's, or a bundle's body.
    pub data: Vec<u8>,
    /// The chunks in `data`, in order, with their lengths; more than one: a bundle.
    pub members: Vec<(ChunkId, u32)>,
}

impl Job {
    fn empty_bundle() -> Self {
        Self { kind: Kind::Data, data: Vec::with_capacity(BUNDLE_BYTES + BUNDLE_CHUNKS_BELOW), members: Vec::new() }
    }
}

/// Counts for the summary.
#[derive(Default)]
pub(super) struct WalkStats {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub dirs: u64,
    pub bytes_read: u64,
    pub bytes_total: u64,
    pub chunks_new: u64,
    /// Bytes of the new chunks, before compression.
    pub bytes_new: u64,
    /// Entries left out by the filter.
    pub excluded: u64,
    pub unreadable: Vec<(PathBuf, String)>,
    /// Packs holding the chunks reused from the index (verified before the commit).
    pub reused_packs: HashSet<PackId>,
    /// SQLite databases read through a consistent copy.
    pub sqlite_copied: u64,
    /// SQLite databases that could not be copied consistently and were read as they were.
    pub sqlite_raw: Vec<(PathBuf, String)>,
}

/// The name a source path gets in the snapshot's root tree.
pub(crate) fn base_name(path: &Path) -> Vec<u8> {
    match path.file_name() {
        Some(name) => name.as_bytes().to_vec(),
        None => b"root".to_vec(),
    }
}

/// How the walker reads and what it leaves out.
pub(super) struct Rules {
    pub sqlite: SqliteMode,
    /// Shared with the count beside the walk.
    pub filter: Arc<Filter>,
    /// Name and count chunks, send none.
    pub dry: bool,
}

pub(super) struct Walker {
    vault: Vault,
    index: Arc<MasterIndex>,
    /// The parent snapshot's trees, read before the walk.
    parents: Arc<HashMap<ChunkId, Tree>>,
    /// Chunks already sent to the sealers in this run (the index holds the rest).
    sent: HashSet<ChunkId>,
    tx: crossbeam_channel::Sender<Job>,
    progress: Arc<Progress>,
    stats: WalkStats,
    chunker: Chunker,
    rules: Rules,
    /// The filesystem of the source path being walked.
    device: u64,
    /// Databases copied consistently in this run (their journals are left out).
    copied: HashSet<PathBuf>,
    /// The bundle being filled with small data chunks.
    bundle: Job,
}

impl Walker {
    pub fn new(
        vault: Vault,
        index: Arc<MasterIndex>,
        parents: Arc<HashMap<ChunkId, Tree>>,
        tx: crossbeam_channel::Sender<Job>,
        progress: Arc<Progress>,
        rules: Rules,
    ) -> Self {
        let chunker = Chunker::new(vault.config().chunker, vault.keys().chunker_seed());
        let (sent, stats, copied) = (HashSet::new(), WalkStats::default(), HashSet::new());
        let bundle = Job::empty_bundle();
        Self { vault, index, parents, sent, tx, progress, stats, chunker, rules, device: 0, copied, bundle }
    }

    /// Walks every path; returns the root tree id.
    pub fn run(mut self, paths: &[PathBuf], parent_root: Option<ChunkId>) -> Result<(ChunkId, WalkStats)> {
        let parents = self.parents.clone();
        let parent_root = parent_root.and_then(|id| parents.get(&id));
        let mut nodes = Vec::new();
        for path in paths {
            let name = base_name(path);
            let prev = parent_root.and_then(|t| find(t, &name));
            let meta = fs::symlink_metadata(path);
            if let Ok(m) = &meta {
                self.device = m.dev();
            }
            if let Some(node) = self.entry(path, name, meta, None, prev, true)? {
                nodes.push(node);
            }
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let root = self.store_tree(Tree::new(nodes))?;
        self.send_bundle()?;
        Ok((root, self.stats))
    }

    fn unreadable(&mut self, path: &Path, err: impl std::fmt::Display) {
        tracing::warn!(path = %path.display(), error = %err, "cannot read; left out of the snapshot");
        self.stats.unreadable.push((path.to_path_buf(), err.to_string()));
    }

    /// `meta`: its `lstat`; `wal_beside`: whether a `-wal` may lie beside it (its folder
    /// lists one).
    fn entry(
        &mut self,
        path: &Path,
        name: Vec<u8>,
        meta: std::io::Result<fs::Metadata>,
        folder: Option<&Folder>,
        prev: Option<&Node>,
        wal_beside: bool,
    ) -> Result<Option<Node>> {
        let meta = match meta {
            Ok(m) => m,
            // A SQLite journal comes and goes with each transaction: one gone since the
            // folder was listed was never part of the database's state.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && sqlite::sidecar_of(path).is_some() => {
                return Ok(None);
            }
            Err(e) => {
                self.unreadable(path, e);
                return Ok(None);
            }
        };
        let mut node = node_from(name, &meta);
        let ft = meta.file_type();
        if ft.is_dir() && self.rules.filter.one_file_system && meta.dev() != self.device {
            // A mount point: kept, what is mounted there left out.
            node.kind = NodeKind::Dir;
            node.subtree = Some(self.store_tree(Tree::new(Vec::new()))?);
            self.stats.dirs += 1;
        } else if ft.is_dir() {
            node.kind = NodeKind::Dir;
            let parents = self.parents.clone();
            let prev_tree = prev
                .filter(|n| n.kind == NodeKind::Dir)
                .and_then(|n| n.subtree)
                .and_then(|id| Some((id, parents.get(&id)?)));
            node.subtree = Some(self.dir(path, prev_tree)?);
            self.stats.dirs += 1;
        } else if ft.is_file() {
            node.kind = NodeKind::File;
            node.size = meta.len();
            if !self.file(path, folder, &mut node, prev, wal_beside)? {
                return Ok(None);
            }
        } else if ft.is_symlink() {
            node.kind = NodeKind::Symlink;
            match fs::read_link(path) {
                Ok(target) => node.target = Some(target.as_os_str().as_bytes().to_vec()),
                Err(e) => {
                    self.unreadable(path, e);
                    return Ok(None);
                }
            }
        } else if ft.is_fifo() {
            node.kind = NodeKind::Fifo;
        } else {
            tracing::warn!(path = %path.display(), "special file (device or socket) skipped");
            return Ok(None);
        }
        if node.kind == NodeKind::Dir {
            node.xattrs = path_xattrs(path);
        }
        Ok(Some(node))
    }

    /// Stores a folder's tree; when every entry is as in the parent snapshot's tree
    /// (`prev`, with its id), that tree is used again without encoding it anew.
    fn dir(&mut self, path: &Path, prev: Option<(ChunkId, &Tree)>) -> Result<ChunkId> {
        // Each entry's lstat relative to the open folder (`fstatat`): no path walk per file.
        let mut listed: Vec<_> = match fs::read_dir(path) {
            Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| (e.file_name(), e.metadata())).collect(),
            Err(e) => {
                self.unreadable(path, e);
                Vec::new()
            }
        };
        listed.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        // Whether each entry has a `-wal` beside it (the folder lists one).
        let wal_beside: Vec<bool> = listed
            .iter()
            .map(|(name, _)| {
                let wal = [name.as_bytes(), b"-wal"].concat();
                listed.binary_search_by(|(n, _)| n.as_bytes().cmp(&wal)).is_ok()
            })
            .collect();
        let xattrs_recorded = prev.is_some_and(|(_, t)| t.version >= 2);
        let folder = Folder { path, handle: std::cell::OnceCell::new(), xattrs_recorded };
        let mut nodes = Vec::with_capacity(listed.len());
        for ((name, meta), wal_beside) in listed.into_iter().zip(wal_beside) {
            let child = path.join(&name);
            // Sorted after their database, which was copied whole.
            if sqlite::sidecar_of(&child).is_some_and(|db| self.copied.contains(&db)) {
                continue;
            }
            if self.rules.filter.excludes(&child, meta.as_ref().is_ok_and(Metadata::is_dir)) {
                self.stats.excluded += 1;
                continue;
            }
            let prev_node = prev.and_then(|(_, t)| find(t, name.as_bytes()));
            if let Some(node) =
                self.entry(&child, name.as_bytes().to_vec(), meta, Some(&folder), prev_node, wal_beside)?
            {
                nodes.push(node);
            }
        }
        let tree = Tree::new(nodes);
        if let Some((id, old)) = prev
            && *old == tree
            && self.index.contains(&id)
        {
            self.reuse(&id);
            return Ok(id);
        }
        self.store_tree(tree)
    }

    /// Fills `node.content`; false when the file could not be read.
    fn file(
        &mut self,
        path: &Path,
        folder: Option<&Folder>,
        node: &mut Node,
        prev: Option<&Node>,
        wal_beside: bool,
    ) -> Result<bool> {
        if let Some(p) = prev
            && p.kind == NodeKind::File
            && p.size == node.size
            && p.mtime_ns == node.mtime_ns
            && p.ctime_ns == node.ctime_ns
            && p.inode == node.inode
            && p.content.iter().all(|c| self.index.contains(c))
            && !(self.rules.sqlite == SqliteMode::Consistent && wal_beside && sqlite::has_wal(path))
        {
            for c in &p.content {
                self.reuse(c);
            }
            node.content = p.content.clone();
            // An attribute set or removed changes the ctime: the recorded ones are the
            // file's still (a version-1 parent recorded none: read them).
            node.xattrs = if folder.is_some_and(|f| f.xattrs_recorded) { p.xattrs.clone() } else { path_xattrs(path) };
            self.stats.files_unmodified += 1;
            self.stats.bytes_total += node.size;
            Progress::add(&self.progress.files, 1);
            Progress::add(&self.progress.bytes_done, node.size);
            return Ok(true);
        }
        let opened = match folder.and_then(Folder::handle) {
            // Relative to the open folder (no path walk), and never through a symlink or
            // into a fifo swapped in since the folder was listed.
            Some(dir) => dirfd::open_at(dir, OsStr::from_bytes(&node.name), OPEN_FILE, 0),
            None => {
                use std::os::unix::fs::OpenOptionsExt;
                fs::File::options().read(true).custom_flags(OPEN_FILE & !libc::O_ACCMODE).open(path)
            }
        };
        let mut file = match opened {
            Ok(f) => f,
            Err(e) => {
                self.unreadable(path, e);
                return Ok(false);
            }
        };
        {
            use xattr::FileExt;
            node.xattrs = xattrs(path, file.list_xattr().and_then(|names| read_all(names, |n| file.get_xattr(n))));
        }
        // The first read brings the header (or all of a small file).
        self.chunker.reset();
        let (database, run) = match self.chunker.head(&mut file) {
            Ok(head) => (sqlite::has_magic(head), sqlite::page_run(head)),
            Err(e) => {
                self.unreadable(path, e);
                return Ok(false);
            }
        };
        // Kept until the file is chunked: the copy is deleted when this drops.
        let _copy = match self.consistent_copy(path, database, &mut file) {
            Ok(copy) => copy,
            Err(e) => {
                self.unreadable(path, e);
                return Ok(false);
            }
        };
        // A SQLite database is cut at page boundaries: a scattered page write changes one run.
        self.chunker.set_fixed(run);
        let mut size = 0u64;
        loop {
            let data = match self.chunker.next_chunk(&mut file) {
                Ok(Some(data)) => data,
                Ok(None) => break,
                Err(e) => {
                    self.unreadable(path, e);
                    return Ok(false);
                }
            };
            size += data.len() as u64;
            Progress::add(&self.progress.bytes, data.len() as u64);
            let id = self.store(Kind::Data, data)?;
            node.content.push(id);
        }
        node.size = size;
        self.stats.bytes_read += size;
        self.stats.bytes_total += size;
        Progress::add(&self.progress.bytes_done, size);
        if prev.is_some() {
            self.stats.files_changed += 1;
        } else {
            self.stats.files_new += 1;
        }
        Progress::add(&self.progress.files, 1);
        Ok(true)
    }

    /// For a SQLite database in consistent mode, swaps `file` for a consistent copy (and
    /// returns the copy's guard), the chunker started anew on it; otherwise leaves both as
    /// they are. A database that cannot be copied is read as it is, and noted.
    fn consistent_copy(
        &mut self,
        path: &Path,
        database: bool,
        file: &mut fs::File,
    ) -> std::io::Result<Option<tempfile::NamedTempFile>> {
        if self.rules.sqlite == SqliteMode::Raw || !database {
            return Ok(None);
        }
        match sqlite::copy(path) {
            Ok(copy) => {
                *file = copy.reopen()?;
                self.chunker.reset();
                self.copied.insert(path.to_path_buf());
                self.stats.sqlite_copied += 1;
                Ok(Some(copy))
            }
            Err(why) => {
                tracing::warn!(path = %path.display(), error = %why, "SQLite database read as it is");
                self.stats.sqlite_raw.push((path.to_path_buf(), why));
                Ok(None)
            }
        }
    }

    fn store_tree(&mut self, tree: Tree) -> Result<ChunkId> {
        self.store(Kind::Tree, tree.encode())
    }

    /// Notes the pack of a chunk the snapshot reuses from the index.
    fn reuse(&mut self, id: &ChunkId) {
        if let Some(loc) = self.index.get(id) {
            self.stats.reused_packs.insert(loc.pack);
        }
    }

    /// Names a chunk and sends it to the sealers unless the vault already has it; a small
    /// data chunk goes into the bundle being filled.
    fn store(&mut self, kind: Kind, data: Vec<u8>) -> Result<ChunkId> {
        let id = self.vault.keys().chunk_id(&data);
        if self.index.contains(&id) {
            self.reuse(&id);
        } else if self.sent.insert(id) {
            self.stats.chunks_new += 1;
            self.stats.bytes_new += data.len() as u64;
            if self.rules.dry {
                return Ok(id);
            }
            let raw_len = data.len() as u32;
            if kind == Kind::Data && data.len() < BUNDLE_CHUNKS_BELOW {
                self.bundle.data.extend_from_slice(&data);
                self.bundle.members.push((id, raw_len));
                if self.bundle.data.len() >= BUNDLE_BYTES {
                    self.send_bundle()?;
                }
            } else {
                self.send(Job { kind, data, members: vec![(id, raw_len)] })?;
            }
        }
        Ok(id)
    }

    /// Sends the bundle being filled (a bundle of one as a lone chunk).
    fn send_bundle(&mut self) -> Result<()> {
        let bundle = std::mem::replace(&mut self.bundle, Job::empty_bundle());
        if bundle.members.is_empty() { Ok(()) } else { self.send(bundle) }
    }

    fn send(&self, job: Job) -> Result<()> {
        self.tx.send(job).map_err(|_| Error::Invalid("backup pipeline stopped".into()))
    }
}

fn find<'t>(tree: &'t Tree, name: &[u8]) -> Option<&'t Node> {
    tree.nodes.binary_search_by(|n| n.name.as_slice().cmp(name)).ok().map(|i| &tree.nodes[i])
}

/// Most bytes of extended attributes kept for one entry (Linux allows 64 KiB a value).
const MAX_XATTR_BYTES: usize = 1 << 20;

/// Reads the value of each attribute in `names` with `get` (one gone meanwhile is left out).
fn read_all(
    names: impl Iterator<Item = std::ffi::OsString>,
    get: impl Fn(&OsStr) -> std::io::Result<Option<Vec<u8>>>,
) -> std::io::Result<Vec<Xattr>> {
    let mut out = Vec::new();
    for name in names {
        if let Some(value) = get(&name)? {
            out.push(Xattr { name: name.as_bytes().to_vec(), value });
        }
    }
    Ok(out)
}

/// The extended attributes of the entry at `path` (not through a symlink).
fn path_xattrs(path: &Path) -> Vec<Xattr> {
    xattrs(path, xattr::list(path).and_then(|names| read_all(names, |n| xattr::get(path, n))))
}

/// An entry's extended attributes sorted by name, or none where the filesystem has none
/// or they cannot be read (noted in the log; the entry is backed up without them).
fn xattrs(path: &Path, read: std::io::Result<Vec<Xattr>>) -> Vec<Xattr> {
    let mut all = match read {
        Ok(all) => all,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Vec::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "extended attributes not read");
            return Vec::new();
        }
    };
    if all.iter().map(|x| x.name.len() + x.value.len()).sum::<usize>() > MAX_XATTR_BYTES {
        tracing::warn!(path = %path.display(), "extended attributes over 1 MiB left out");
        return Vec::new();
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

fn node_from(name: Vec<u8>, meta: &Metadata) -> Node {
    Node {
        name,
        kind: NodeKind::File,
        mode: meta.mode() & 0o7777,
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        inode: meta.ino(),
        uid: meta.uid(),
        gid: meta.gid(),
        size: 0,
        content: Vec::new(),
        subtree: None,
        target: None,
        links: (meta.is_file() && meta.nlink() > 1).then(|| HardLink { dev: meta.dev(), count: meta.nlink() }),
        xattrs: Vec::new(),
        // Fewer blocks than its length holds: holes (or a filesystem that compresses).
        sparse: meta.is_file() && meta.blocks().saturating_mul(512) < meta.len(),
    }
}
