//! Trees: one directory's listing, stored as a chunk of kind `Tree` (so unchanged subtrees
//! dedupe across snapshots). Body: MessagePack map `{version, nodes: [Node, …]}` with
//! nodes sorted by name bytes, names unique. Version 2 when a node holds what version 1
//! cannot say (a fifo, a hard link, extended attributes, holes), else 1 (FORMAT.md §4.6).

use serde::{Deserialize, Serialize};
use zerok_core::ChunkId;

/// Folder levels a tree walk follows (a path of 4096 bytes has at most 2048).
pub(crate) const MAX_DEPTH: usize = 2048;

/// A directory listing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// Format version (1).
    pub version: u32,
    /// Entries sorted by name.
    pub nodes: Vec<Node>,
}

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// Regular file: `content` lists its chunks.
    File,
    /// Directory: `subtree` is its tree.
    Dir,
    /// Symbolic link: `target` is its target.
    Symlink,
    /// Named pipe (version 2).
    Fifo,
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// File name bytes (Unix names need not be UTF-8).
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// Kind.
    pub kind: NodeKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Modification time, Unix nanoseconds.
    pub mtime_ns: i64,
    /// Status-change time, Unix nanoseconds (change detection only).
    pub ctime_ns: i64,
    /// Inode number (change detection only).
    pub inode: u64,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Content size in bytes (files).
    pub size: u64,
    /// Chunks of a file, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<ChunkId>,
    /// Tree of a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<ChunkId>,
    /// Target of a symlink.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub target: Option<Vec<u8>>,
    /// A file with more than one name: the filesystem's device id (with `inode`, what the
    /// names share) and its link count (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<HardLink>,
    /// Extended attributes, sorted by name, POSIX ACLs among them (version 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
    /// A file with holes: restored with a hole wherever a chunk is all zeros (version 2).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sparse: bool,
}

/// What the names of one hard-linked file share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HardLink {
    /// `st_dev` of the filesystem it was on.
    pub dev: u64,
    /// `st_nlink` when backed up.
    pub count: u64,
}

/// One extended attribute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    /// Its name (`user.…`, `system.posix_acl_access`, …).
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// Its value.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

impl Node {
    /// Whether version 1 cannot hold this node.
    fn needs_v2(&self) -> bool {
        self.kind == NodeKind::Fifo || self.links.is_some() || !self.xattrs.is_empty() || self.sparse
    }

    /// Whether the name is safe to join onto a restore path: not empty, not `.` or `..`,
    /// no `/` and no NUL.
    pub fn has_safe_name(&self) -> bool {
        !self.name.is_empty()
            && self.name != b"."
            && self.name != b".."
            && !self.name.iter().any(|&b| b == b'/' || b == 0)
    }
}

/// The newest tree version this build reads and writes.
pub const TREE_VERSION: u32 = 2;

impl Tree {
    /// A tree of `nodes` (sorted by name), of the lowest version that holds them.
    pub fn new(nodes: Vec<Node>) -> Self {
        let version = if nodes.iter().any(Node::needs_v2) { 2 } else { 1 };
        Self { version, nodes }
    }

    /// Encodes the body (before sealing).
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("tree encodes")
    }
}
