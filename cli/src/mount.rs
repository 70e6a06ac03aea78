//! `zerok mount`'s filesystem: a read-only FUSE view of a vault's snapshots.
//!
//! ```text
//! /snapshots/<time>/…        each snapshot's files (a name taken twice gets `-<id>` added)
//! /latest                    → snapshots/<time> of the newest
//! /ids/<short id>            → ../snapshots/<time>
//! /hosts/<host>/<time>       → ../../snapshots/<time>
//! /tags/<tag>/<time>         → ../../snapshots/<time>
//! ```
//!
//! Folders are read from the vault when first listed or looked into; a file's bytes when
//! read, one chunk at a time by a ranged GET of its blob, through a small cache of opened
//! chunks. Nothing here writes: the mount is read-only, and every attribute (mode, owner,
//! times, link count, extended attributes) is the one the snapshot recorded. A name no
//! folder can hold (empty, `.`, `..`, with `/` or NUL: only a hostile tree has one) is left
//! out; a host or tag holding `/` shows it as `∕` (U+2215).

use std::{
    collections::{BTreeMap, HashMap},
    ffi::{OsStr, OsString},
    os::unix::ffi::OsStrExt,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, ReplyXattr, Request,
};
use zerok_core::{ChunkId, SnapshotId};
use zerok_vault::{
    MasterIndex, Vault,
    format::{
        snapshot::Snapshot,
        tree::{Node, NodeKind},
    },
};

/// How long the kernel may keep what it was told: a snapshot never changes.
const TTL: Duration = Duration::from_secs(3600);
/// Bytes of opened chunks kept for reads that follow.
const CACHE_BYTES: usize = 64 << 20;
/// What an entry of the chunk cache costs beyond its bytes (so tiny chunks count too).
const CACHE_ENTRY_BYTES: usize = 128;

/// A folder's entries, sorted by name (trees are; the view's folders are sorted when made).
type Children = Arc<[(OsString, u64)]>;

/// One inode.
enum Entry {
    /// A folder of the view itself (`/`, `snapshots`, `hosts/<host>`, …), its children known.
    View { parent: u64, children: Children },
    /// A symlink of the view (`latest`, `hosts/<host>/<time>`, …).
    Link { target: PathBuf },
    /// A snapshot's top folder: its root tree's nodes.
    Root { parent: u64, tree: ChunkId, time_ns: i64, children: Option<Children> },
    /// A file, folder, symlink or fifo of a snapshot.
    Node { parent: u64, node: Box<Node>, children: Option<Children> },
}

/// The view's inodes (number = index + 1) and the files open for reading.
#[derive(Default)]
struct Inodes {
    entries: Vec<Entry>,
    open: HashMap<u64, Arc<FileMap>>,
    next_fh: u64,
}

impl Inodes {
    fn add(&mut self, entry: Entry) -> u64 {
        self.entries.push(entry);
        self.entries.len() as u64
    }

    fn get(&self, ino: u64) -> Option<&Entry> {
        self.entries.get(usize::try_from(ino).ok()?.checked_sub(1)?)
    }

    fn get_mut(&mut self, ino: u64) -> Option<&mut Entry> {
        self.entries.get_mut(usize::try_from(ino).ok()?.checked_sub(1)?)
    }
}

/// Where each chunk of an open file starts.
struct FileMap {
    chunks: Vec<(u64, ChunkId, u64)>,
}

/// Opened chunks, the least recently used dropped first (each use restamps its chunk).
#[derive(Default)]
struct ChunkCache {
    chunks: HashMap<ChunkId, (Arc<Vec<u8>>, u64)>,
    by_use: BTreeMap<u64, ChunkId>,
    stamp: u64,
    bytes: usize,
}

impl ChunkCache {
    fn get(&mut self, id: &ChunkId) -> Option<Arc<Vec<u8>>> {
        self.stamp += 1;
        let (plain, used) = self.chunks.get_mut(id)?;
        self.by_use.remove(used);
        *used = self.stamp;
        self.by_use.insert(self.stamp, *id);
        Some(plain.clone())
    }

    fn put(&mut self, id: ChunkId, plain: Arc<Vec<u8>>) {
        let cost = plain.len() + CACHE_ENTRY_BYTES;
        if cost > CACHE_BYTES || self.chunks.contains_key(&id) {
            return;
        }
        self.stamp += 1;
        self.bytes += cost;
        self.chunks.insert(id, (plain, self.stamp));
        self.by_use.insert(self.stamp, id);
        while self.bytes > CACHE_BYTES {
            let Some((_, old)) = self.by_use.pop_first() else { break };
            if let Some((gone, _)) = self.chunks.remove(&old) {
                self.bytes -= gone.len() + CACHE_ENTRY_BYTES;
            }
        }
    }
}

/// A host or tag as a name a folder can hold.
fn view_name(text: &str) -> OsString {
    match text {
        "" => OsString::from("(none)"),
        "." | ".." => OsString::from(format!("({text})")),
        _ => OsString::from(text.replace('/', "\u{2215}").replace('\0', "")),
    }
}

/// The filesystem.
pub struct VaultFs {
    vault: Vault,
    index: Arc<MasterIndex>,
    runtime: tokio::runtime::Handle,
    inodes: Mutex<Inodes>,
    cache: Mutex<ChunkCache>,
    /// Owner and time of the view's own folders: the mounting user, the newest snapshot.
    uid: u32,
    gid: u32,
    time: SystemTime,
}

fn system_time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        _ => FileType::RegularFile,
    }
}

impl VaultFs {
    /// The view of `snapshots` (oldest first; the newest is `latest`), reading through
    /// `runtime`.
    pub fn new(
        vault: Vault,
        index: MasterIndex,
        snapshots: &[(SnapshotId, Snapshot)],
        latest: Option<SnapshotId>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        // SAFETY: getuid and getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let mut inodes = Inodes::default();
        let root = inodes.add(Entry::View { parent: 1, children: Arc::new([]) });
        let folder = |inodes: &mut Inodes, parent: u64| inodes.add(Entry::View { parent, children: Arc::new([]) });
        // The view's folders as they fill, sorted and frozen once all snapshots are in.
        let mut lists: HashMap<u64, Vec<(OsString, u64)>> = HashMap::new();
        let (snaps, ids, hosts, tags) = (
            folder(&mut inodes, root),
            folder(&mut inodes, root),
            folder(&mut inodes, root),
            folder(&mut inodes, root),
        );
        let mut names: HashMap<SnapshotId, OsString> = HashMap::new();
        let mut by_host: HashMap<String, u64> = HashMap::new();
        let mut by_tag: HashMap<String, u64> = HashMap::new();
        let mut top = Vec::new();
        for (id, snap) in snapshots {
            let mut name = zerok_client::time::rfc3339(snap.time_ns);
            if top.iter().any(|(n, _): &(OsString, u64)| n == name.as_str()) {
                name = format!("{name}-{}", id.short());
            }
            let name = OsString::from(name);
            let ino = inodes.add(Entry::Root { parent: snaps, tree: snap.tree, time_ns: snap.time_ns, children: None });
            top.push((name.clone(), ino));
            names.insert(*id, name.clone());
            let link = |inodes: &mut Inodes, up: &str| {
                inodes.add(Entry::Link { target: PathBuf::from(up).join("snapshots").join(&name) })
            };
            let id_link = link(&mut inodes, "..");
            lists.entry(ids).or_default().push((OsString::from(id.short()), id_link));
            let host = *by_host.entry(snap.hostname.clone()).or_insert_with(|| {
                let ino = folder(&mut inodes, hosts);
                lists.entry(hosts).or_default().push((view_name(&snap.hostname), ino));
                ino
            });
            let host_link = link(&mut inodes, "../..");
            lists.entry(host).or_default().push((name.clone(), host_link));
            for tag in &snap.tags {
                let dir = *by_tag.entry(tag.clone()).or_insert_with(|| {
                    let ino = folder(&mut inodes, tags);
                    lists.entry(tags).or_default().push((view_name(tag), ino));
                    ino
                });
                let tag_link = link(&mut inodes, "../..");
                lists.entry(dir).or_default().push((name.clone(), tag_link));
            }
        }
        lists.insert(snaps, top);
        let mut root_children =
            vec![("snapshots".into(), snaps), ("ids".into(), ids), ("hosts".into(), hosts), ("tags".into(), tags)];
        if let Some(name) = latest.and_then(|id| names.get(&id)) {
            let latest = inodes.add(Entry::Link { target: PathBuf::from("snapshots").join(name) });
            root_children.push(("latest".into(), latest));
        }
        lists.insert(root, root_children);
        for (dir, mut list) in lists {
            list.sort();
            // Two hosts or tags that differ only by a `/` and a `∕` share a name: one shows.
            list.dedup_by(|a, b| a.0 == b.0);
            if let Some(Entry::View { children, .. }) = inodes.get_mut(dir) {
                *children = list.into();
            }
        }
        let time = snapshots.last().map_or_else(SystemTime::now, |(_, s)| system_time(s.time_ns));
        VaultFs {
            vault,
            index: Arc::new(index),
            runtime,
            inodes: Mutex::new(inodes),
            cache: Mutex::new(ChunkCache::default()),
            uid,
            gid,
            time,
        }
    }

    fn attr(&self, ino: u64, entry: &Entry) -> FileAttr {
        let view = |kind, perm, size: u64, time| FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: 0,
            atime: time,
            mtime: time,
            ctime: time,
            crtime: time,
            kind,
            perm,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        };
        match entry {
            Entry::View { .. } => view(FileType::Directory, 0o555, 0, self.time),
            Entry::Link { target } => view(FileType::Symlink, 0o777, target.as_os_str().len() as u64, self.time),
            Entry::Root { time_ns, .. } => view(FileType::Directory, 0o555, 0, system_time(*time_ns)),
            Entry::Node { node, .. } => {
                let kind = file_type(node.kind);
                let size = match node.kind {
                    NodeKind::Symlink => node.target.as_ref().map_or(0, |t| t.len() as u64),
                    NodeKind::File => node.size,
                    _ => 0,
                };
                let nlink = match (&node.links, kind) {
                    (Some(link), _) => u32::try_from(link.count).unwrap_or(u32::MAX),
                    (None, FileType::Directory) => 2,
                    (None, _) => 1,
                };
                FileAttr {
                    ino: INodeNo(ino),
                    size,
                    blocks: size.div_ceil(512),
                    atime: system_time(node.mtime_ns),
                    mtime: system_time(node.mtime_ns),
                    ctime: system_time(node.ctime_ns),
                    crtime: system_time(node.mtime_ns),
                    kind,
                    perm: (node.mode & 0o7777) as u16,
                    nlink,
                    uid: node.uid,
                    gid: node.gid,
                    rdev: 0,
                    blksize: 4096,
                    flags: 0,
                }
            }
        }
    }

    /// A folder's children, reading its tree from the vault the first time.
    fn children(&self, ino: u64) -> Result<(u64, Children), Errno> {
        let tree = {
            let inodes = self.inodes.lock().expect("inodes lock");
            match inodes.get(ino).ok_or(Errno::ENOENT)? {
                Entry::View { parent, children } => return Ok((*parent, children.clone())),
                Entry::Root { parent, children: Some(c), .. } | Entry::Node { parent, children: Some(c), .. } => {
                    return Ok((*parent, c.clone()));
                }
                Entry::Root { tree, .. } => *tree,
                Entry::Node { node, .. } if node.kind == NodeKind::Dir => node.subtree.ok_or(Errno::EIO)?,
                _ => return Err(Errno::ENOTDIR),
            }
        };
        let loaded = self.runtime.block_on(self.vault.load_tree(&self.index, &tree)).map_err(|e| {
            tracing::warn!(error = %e, "a folder of the mount could not be read");
            Errno::EIO
        })?;
        let mut inodes = self.inodes.lock().expect("inodes lock");
        // Another thread may have read it meanwhile: its inodes stay.
        if let Some(Entry::Root { parent, children: Some(c), .. } | Entry::Node { parent, children: Some(c), .. }) =
            inodes.get(ino)
        {
            return Ok((*parent, c.clone()));
        }
        let mut list = Vec::with_capacity(loaded.nodes.len());
        for node in loaded.nodes {
            if !node.has_safe_name() {
                tracing::warn!("a folder of the mount names an entry no folder can hold; left out");
                continue;
            }
            let name = OsStr::from_bytes(&node.name).to_os_string();
            let child = inodes.add(Entry::Node { parent: ino, node: Box::new(node), children: None });
            list.push((name, child));
        }
        let list: Children = list.into();
        let parent = match inodes.get_mut(ino) {
            Some(Entry::Root { parent, children, .. } | Entry::Node { parent, children, .. }) => {
                *children = Some(list.clone());
                *parent
            }
            _ => return Err(Errno::EIO),
        };
        Ok((parent, list))
    }

    /// One chunk's bytes, from the cache or the vault.
    fn chunk(&self, id: &ChunkId) -> Result<Arc<Vec<u8>>, Errno> {
        if let Some(hit) = self.cache.lock().expect("cache lock").get(id) {
            return Ok(hit);
        }
        let plain = self.runtime.block_on(self.vault.read_chunk(&self.index, id)).map_err(|e| {
            tracing::warn!(error = %e, "a file of the mount could not be read");
            Errno::EIO
        })?;
        let plain = Arc::new(plain);
        self.cache.lock().expect("cache lock").put(*id, plain.clone());
        Ok(plain)
    }

    /// `f` of the snapshot entry at `ino`; `other` for an entry of the view itself.
    fn with_node<T>(&self, ino: u64, other: Errno, f: impl FnOnce(&Node) -> Result<T, Errno>) -> Result<T, Errno> {
        match self.inodes.lock().expect("inodes lock").get(ino) {
            Some(Entry::Node { node, .. }) => f(node),
            Some(_) => Err(other),
            None => Err(Errno::ENOENT),
        }
    }
}

/// Replies with `data` as an xattr answer: its size when asked for 0 bytes, else the bytes
/// when they fit.
fn xattr_reply(reply: ReplyXattr, size: u32, data: &[u8]) {
    match u32::try_from(data.len()) {
        Ok(n) if size == 0 => reply.size(n),
        Ok(n) if n <= size => reply.data(data),
        _ => reply.error(Errno::ERANGE),
    }
}

impl Filesystem for VaultFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = self.children(parent.0).and_then(|(_, list)| {
            // Sorted by their bytes, which is how OsStr compares on Unix.
            let at = list.binary_search_by(|(n, _)| n.as_os_str().cmp(name)).map_err(|_| Errno::ENOENT)?;
            let ino = list[at].1;
            let inodes = self.inodes.lock().expect("inodes lock");
            Ok(self.attr(ino, inodes.get(ino).ok_or(Errno::ENOENT)?))
        });
        match found {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let inodes = self.inodes.lock().expect("inodes lock");
        match inodes.get(ino.0) {
            Some(entry) => reply.attr(&TTL, &self.attr(ino.0, entry)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let inodes = self.inodes.lock().expect("inodes lock");
        match inodes.get(ino.0) {
            Some(Entry::Link { target }) => reply.data(target.as_os_str().as_bytes()),
            Some(Entry::Node { node, .. }) if node.kind == NodeKind::Symlink => {
                reply.data(node.target.as_deref().unwrap_or_default());
            }
            Some(_) => reply.error(Errno::EINVAL),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let content = self.with_node(ino.0, Errno::EISDIR, |node| match node.kind {
            NodeKind::File => Ok(node.content.clone()),
            _ => Err(Errno::EISDIR),
        });
        let content = match content {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        let mut chunks = Vec::with_capacity(content.len());
        let mut start = 0;
        for id in content {
            let Some(place) = self.index.get(&id) else {
                tracing::warn!("a file of the mount names a chunk no index holds");
                return reply.error(Errno::EIO);
            };
            let len = u64::from(place.entry.raw_len);
            chunks.push((start, id, len));
            start += len;
        }
        let mut inodes = self.inodes.lock().expect("inodes lock");
        inodes.next_fh += 1;
        let fh = inodes.next_fh;
        inodes.open.insert(fh, Arc::new(FileMap { chunks }));
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(map) = self.inodes.lock().expect("inodes lock").open.get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        let end = offset.saturating_add(u64::from(size));
        let mut out = Vec::with_capacity(size as usize);
        let first = map.chunks.partition_point(|(start, _, len)| start + len <= offset);
        for (start, id, len) in &map.chunks[first..] {
            if *start >= end {
                break;
            }
            let plain = match self.chunk(id) {
                Ok(p) => p,
                Err(e) => return reply.error(e),
            };
            if plain.len() as u64 != *len {
                return reply.error(Errno::EIO);
            }
            let from = offset.saturating_sub(*start) as usize;
            let to = (end - start).min(*len) as usize;
            out.extend_from_slice(&plain[from..to]);
        }
        reply.data(&out);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: fuser::ReplyEmpty,
    ) {
        self.inodes.lock().expect("inodes lock").open.remove(&fh.0);
        reply.ok();
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let (parent, list) = match self.children(ino.0) {
            Ok(found) => found,
            Err(e) => return reply.error(e),
        };
        let inodes = self.inodes.lock().expect("inodes lock");
        let kind = |child: u64| match inodes.get(child) {
            Some(Entry::Link { .. }) => FileType::Symlink,
            Some(Entry::Node { node, .. }) => file_type(node.kind),
            _ => FileType::Directory,
        };
        let dots = [(OsString::from("."), ino.0), (OsString::from(".."), parent)];
        for (i, (name, child)) in dots.iter().chain(list.iter()).enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*child), i as u64 + 1, kind(*child), name) {
                break;
            }
        }
        reply.ok();
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let value = self.with_node(ino.0, Errno::NO_XATTR, |node| {
            node.xattrs.iter().find(|x| x.name == name.as_bytes()).map(|x| x.value.clone()).ok_or(Errno::NO_XATTR)
        });
        match value {
            Ok(v) => xattr_reply(reply, size, &v),
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let names = self.with_node(ino.0, Errno::NO_XATTR, |node| {
            Ok(node.xattrs.iter().flat_map(|x| x.name.iter().copied().chain([0])).collect::<Vec<u8>>())
        });
        match names {
            Ok(list) => xattr_reply(reply, size, &list),
            Err(_) => xattr_reply(reply, size, &[]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunk_cache_keeps_to_its_budget_and_drops_the_least_recently_used() {
        let mut cache = ChunkCache::default();
        let id = |n: u64| {
            let mut bytes = [0; 32];
            bytes[..8].copy_from_slice(&n.to_le_bytes());
            ChunkId(bytes)
        };
        // Tiny chunks count their entry's cost: a flood of them stays bounded.
        for n in 0..1_000_000 {
            cache.put(id(n), Arc::new(vec![0; 4]));
        }
        assert!(cache.bytes <= CACHE_BYTES && cache.chunks.len() < CACHE_BYTES / CACHE_ENTRY_BYTES);
        let big = || Arc::new(vec![7; 30 << 20]);
        cache.put(id(1), big());
        cache.put(id(2), big());
        assert!(cache.get(&id(1)).is_some(), "used last");
        cache.put(id(3), big());
        assert!(cache.get(&id(2)).is_none() && cache.get(&id(1)).is_some() && cache.get(&id(3)).is_some());
        assert!(cache.bytes <= CACHE_BYTES);
    }

    #[test]
    fn hosts_and_tags_become_names_a_folder_can_hold() {
        assert_eq!(view_name("release/1.0"), "release\u{2215}1.0");
        assert_eq!(view_name(""), "(none)");
        assert_eq!(view_name(".."), "(..)");
        assert_eq!(view_name("a\0b"), "ab");
    }
}
