//! Trees: one directory's listing, stored as a chunk of kind `Tree` (so unchanged subtrees
//! dedupe across snapshots). Body: MessagePack map `{version: 1, nodes: [Node, …]}` with
//! nodes sorted by name bytes, names unique.

use serde::{Deserialize, Serialize};
use zerok_core::ChunkId;

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
}

impl Node {
    /// Whether the name is safe to join onto a restore path: not empty, not `.` or `..`,
    /// no `/` and no NUL.
    pub fn has_safe_name(&self) -> bool {
        !self.name.is_empty()
            && self.name != b"."
            && self.name != b".."
            && !self.name.iter().any(|&b| b == b'/' || b == 0)
    }
}

impl Tree {
    /// Encodes the body (before sealing).
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("tree encodes")
    }
}
