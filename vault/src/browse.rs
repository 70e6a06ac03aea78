//! A snapshot read without restoring it: its entries by path, parents first and names in
//! order (`ls`, `find`, `dump`), and two snapshots compared (`diff`). Paths are the ones
//! backed up: each source path as given to the backup, then the names below it.

use std::{
    collections::HashMap,
    ffi::OsStr,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use zerok_core::ChunkId;

use crate::{
    Error, MasterIndex, Result, Vault,
    format::{
        snapshot::Snapshot,
        tree::{Node, NodeKind, Tree},
    },
};

/// A snapshot's trees, read up front (many at once), to walk by path.
pub struct Browse {
    trees: HashMap<ChunkId, Result<Tree>>,
    /// The source paths backed up, with their nodes.
    roots: Vec<(PathBuf, Node)>,
}

impl Browse {
    /// Reads every tree of `snapshot`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] / [`Error::NotFound`] when its root tree cannot be read (a tree
    /// below it that cannot be read fails only the walks that reach it, naming its folder).
    pub async fn open(vault: &Vault, index: &MasterIndex, snapshot: &Snapshot) -> Result<Self> {
        let mut trees = vault.load_trees(index, vec![snapshot.tree]).await;
        let root = trees.remove(&snapshot.tree).unwrap_or_else(|| Err(Error::Invalid("root tree not read".into())))?;
        let source = |node: &Node| {
            snapshot
                .paths
                .iter()
                .map(PathBuf::from)
                .find(|p| crate::backup::base_name(p) == node.name)
                .unwrap_or_else(|| Path::new("/").join(OsStr::from_bytes(&node.name)))
        };
        let mut roots: Vec<(PathBuf, Node)> = root.nodes.into_iter().map(|n| (source(&n), n)).collect();
        roots.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self { trees, roots })
    }

    /// The tree `id`, or the error that kept it from being read, naming `path`.
    fn tree(&self, id: &ChunkId, path: &Path) -> Result<&Tree> {
        match self.trees.get(id) {
            Some(Ok(tree)) => Ok(tree),
            Some(Err(e)) => {
                Err(Error::Corrupt { object: format!("the tree of {}", path.display()), reason: e.to_string() })
            }
            None => Err(Error::NotFound { object: format!("the tree of {}", path.display()) }),
        }
    }

    /// The nodes of a folder node (none for other kinds).
    fn children(&self, node: &Node, path: &Path) -> Result<&[Node]> {
        match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(id)) => Ok(&self.tree(&id, path)?.nodes),
            _ => Ok(&[]),
        }
    }

    /// The node at `path` (as listed), if the snapshot has one.
    ///
    /// # Errors
    /// A folder on the way that cannot be read.
    pub fn get(&self, path: &Path) -> Result<Option<(PathBuf, &Node)>> {
        for (root, node) in &self.roots {
            let Ok(rest) = path.strip_prefix(root) else { continue };
            let (mut at, mut node) = (root.clone(), node);
            for name in rest.components() {
                let name = name.as_os_str().as_bytes();
                let nodes = self.children(node, &at)?;
                let Ok(i) = nodes.binary_search_by(|n| n.name.as_slice().cmp(name)) else { return Ok(None) };
                node = &nodes[i];
                at.push(OsStr::from_bytes(name));
            }
            return Ok(Some((at, node)));
        }
        Ok(None)
    }

    /// Visits every entry, or (with `under`) that entry and all below it: parents before
    /// their children, names in order.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `under` is not in the snapshot; [`Error::Corrupt`] naming a
    /// folder that cannot be read (what was visited before it stays visited).
    pub fn visit(&self, under: Option<&Path>, mut f: impl FnMut(&Path, &Node)) -> Result<()> {
        match under {
            Some(path) => {
                let (at, node) = self
                    .get(path)?
                    .ok_or_else(|| Error::Invalid(format!("{} is not in the snapshot", path.display())))?;
                self.visit_node(&at, node, &mut f)
            }
            None => self.roots.iter().try_for_each(|(path, node)| self.visit_node(path, node, &mut f)),
        }
    }

    fn visit_node(&self, path: &Path, node: &Node, f: &mut impl FnMut(&Path, &Node)) -> Result<()> {
        f(path, node);
        for child in self.children(node, path)? {
            self.visit_node(&path.join(OsStr::from_bytes(&child.name)), child, f)?;
        }
        Ok(())
    }
}

/// How an entry differs between two snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Only in the second.
    Added,
    /// Only in the first.
    Removed,
    /// A file whose bytes differ (or a symlink whose target does).
    Modified,
    /// Another kind of entry under the same name.
    Type,
    /// The same bytes, other metadata (mode, owner, times, extended attributes).
    Metadata,
}

impl Change {
    /// The one-letter mark restic uses: `+`, `-`, `M`, `T`, `U`.
    pub fn mark(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Type => 'T',
            Change::Metadata => 'U',
        }
    }
}

/// One difference: the path, how it differs, and the entry in each snapshot.
#[derive(Clone, Debug)]
pub struct Difference {
    /// The path, as listed.
    pub path: PathBuf,
    /// How it differs.
    pub change: Change,
    /// The entry in the first snapshot.
    pub before: Option<Node>,
    /// The entry in the second.
    pub after: Option<Node>,
}

/// What changed from `a` to `b`, in path order: an entry added or removed is listed with
/// everything below it; folders whose tree is the same are not read.
///
/// # Errors
/// A folder of either that cannot be read.
pub fn diff(a: &Browse, b: &Browse) -> Result<Vec<Difference>> {
    let mut out = Vec::new();
    let (mut left, mut right) = (a.roots.iter().peekable(), b.roots.iter().peekable());
    loop {
        let next = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some((pa, _)), Some((pb, _))) => pa.cmp(pb),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
        };
        match next {
            std::cmp::Ordering::Less => {
                let (path, node) = left.next().expect("peeked");
                all(a, path, node, Change::Removed, &mut out)?;
            }
            std::cmp::Ordering::Greater => {
                let (path, node) = right.next().expect("peeked");
                all(b, path, node, Change::Added, &mut out)?;
            }
            std::cmp::Ordering::Equal => {
                let ((path, na), (_, nb)) = (left.next().expect("peeked"), right.next().expect("peeked"));
                compare(a, b, path, na, nb, &mut out)?;
            }
        }
    }
    Ok(out)
}

/// `node` and everything below it, all `change`.
fn all(side: &Browse, path: &Path, node: &Node, change: Change, out: &mut Vec<Difference>) -> Result<()> {
    let mut found = Vec::new();
    side.visit_node(path, node, &mut |p, n| found.push((p.to_path_buf(), n.clone())))?;
    out.extend(found.into_iter().map(|(path, n)| {
        let (before, after) = if change == Change::Added { (None, Some(n)) } else { (Some(n), None) };
        Difference { path, change, before, after }
    }));
    Ok(())
}

fn compare(a: &Browse, b: &Browse, path: &Path, na: &Node, nb: &Node, out: &mut Vec<Difference>) -> Result<()> {
    let change = if na.kind != nb.kind {
        Some(Change::Type)
    } else if na.content != nb.content || na.target != nb.target || na.size != nb.size {
        Some(Change::Modified)
    } else if (na.mode, na.uid, na.gid, na.mtime_ns) != (nb.mode, nb.uid, nb.gid, nb.mtime_ns) || na.xattrs != nb.xattrs
    {
        Some(Change::Metadata)
    } else {
        None
    };
    if change == Some(Change::Type) {
        all(a, path, na, Change::Removed, out)?;
        return all(b, path, nb, Change::Added, out);
    }
    if let Some(change) = change {
        out.push(Difference { path: path.to_path_buf(), change, before: Some(na.clone()), after: Some(nb.clone()) });
    }
    if na.kind != NodeKind::Dir || na.subtree == nb.subtree {
        return Ok(());
    }
    let (ca, cb) = (a.children(na, path)?, b.children(nb, path)?);
    let (mut i, mut j) = (0, 0);
    while i < ca.len() || j < cb.len() {
        let order = match (ca.get(i), cb.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                all(a, &path.join(OsStr::from_bytes(&ca[i].name)), &ca[i], Change::Removed, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                all(b, &path.join(OsStr::from_bytes(&cb[j].name)), &cb[j], Change::Added, out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                compare(a, b, &path.join(OsStr::from_bytes(&ca[i].name)), &ca[i], &cb[j], out)?;
                (i, j) = (i + 1, j + 1);
            }
        }
    }
    Ok(())
}
