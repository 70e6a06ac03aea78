//! The local metadata cache of a remote vault: copies of its index files, snapshots and
//! tree packs (packs holding only trees), exactly as the store holds them — sealed, so the
//! cache is as encrypted as the store — under `<root>/<vault id>/`, mirroring the store's
//! object names.
//!
//! Every object cached is immutable under its name (ids are random or content hashes), so
//! a cached copy is never stale; it can only be gone from the store, which the listings
//! that every read starts from tell (what is no longer listed is dropped here too, see
//! [`Cache::retain`]). Every cached byte is opened and authenticated exactly as the store's
//! would be; a copy that does not open is removed and read from the store instead. The
//! cache never grows past its bound: an object that would not fit is simply not cached.
//! Writes are best effort (a cache that cannot be written costs round trips, never a
//! backup): each file is written to a temporary name and renamed into place.

use std::{
    collections::HashSet,
    os::unix::fs::{DirBuilderExt, FileExt},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use zerok_core::VaultId;

/// The default bound of one vault's cache.
pub const DEFAULT_MAX_BYTES: u64 = 2 << 30;

/// One vault's cache folder.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
    used: AtomicU64,
}

impl Cache {
    /// The cache root: `ZEROK_CACHE_DIR`, else `$XDG_CACHE_HOME/zerok`, else
    /// `~/.cache/zerok`; `None` when none of them is set.
    pub fn default_root() -> Option<PathBuf> {
        let var = |k| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        var("ZEROK_CACHE_DIR")
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("zerok")))
            .or_else(|| var("HOME").map(|d| d.join(".cache").join("zerok")))
    }

    /// Opens (creating, mode 0700) the cache of `vault` under `root`, holding at most
    /// `max_bytes`.
    ///
    /// # Errors
    /// [`crate::Error::Io`] when the folder cannot be created or read.
    pub fn open(root: &Path, vault: &VaultId, max_bytes: u64) -> crate::Result<Cache> {
        let dir = root.join(vault.to_string());
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|e| crate::Error::io(&dir, e))?;
        let used = walk(&dir).iter().map(|(_, len)| len).sum();
        Ok(Cache { dir, max_bytes, used: AtomicU64::new(used) })
    }

    /// Bytes cached now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The cached copy of object `name`, if any.
    pub(crate) fn get(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(name)).ok()
    }

    /// `range` of the cached copy of object `name`, if it holds the whole range.
    pub(crate) fn get_range(&self, name: &str, range: std::ops::Range<u64>) -> Option<Vec<u8>> {
        let file = std::fs::File::open(self.path(name)).ok()?;
        let mut buf = vec![0u8; usize::try_from(range.end.checked_sub(range.start)?).ok()?];
        file.read_exact_at(&mut buf, range.start).ok()?;
        Some(buf)
    }

    /// Whether object `name` is cached.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.path(name).is_file()
    }

    /// Caches a copy of object `name` unless it is cached already or would not fit.
    pub(crate) fn put(&self, name: &str, bytes: &[u8]) {
        let len = bytes.len() as u64;
        if self.has(name) || self.used().saturating_add(len) > self.max_bytes {
            return;
        }
        let path = self.path(name);
        let written = (|| -> std::io::Result<()> {
            let folder = path.parent().expect("names have a folder");
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(folder)?;
            let mut tmp = tempfile::Builder::new().prefix(".part").tempfile_in(folder)?;
            std::io::Write::write_all(&mut tmp, bytes)?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        })();
        match written {
            Ok(()) => drop(self.used.fetch_add(len, Ordering::Relaxed)),
            Err(e) => tracing::debug!(error = %e, "metadata cache not written"),
        }
    }

    /// Drops the cached copy of object `name` (it did not open, or the store lost it).
    pub(crate) fn remove(&self, name: &str) {
        let path = self.path(name);
        if let Ok(meta) = std::fs::metadata(&path)
            && std::fs::remove_file(&path).is_ok()
        {
            self.used.fetch_sub(meta.len().min(self.used()), Ordering::Relaxed);
        }
    }

    /// Drops the cached objects of `folder` (`index`, `snapshots`, `data`) whose names are
    /// not in `keep`: the store no longer lists them.
    pub(crate) fn retain(&self, folder: &str, keep: &HashSet<String>) {
        for (rel, _) in walk(&self.path(folder)) {
            let name = format!("{folder}/{rel}");
            if !keep.contains(&name) {
                self.remove(&name);
            }
        }
    }
}

/// Every file below `dir` (relative path, length), left-over temporary files removed.
fn walk(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let sub = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push((entry.path(), sub)),
                Ok(_) if name.starts_with(".part") => drop(std::fs::remove_file(entry.path())),
                Ok(m) => out.push((sub, m.len())),
                Err(_) => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_copies_within_its_bound_and_drops_what_the_store_no_longer_lists() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::open(root.path(), &VaultId([7; 32]), 100).unwrap();
        cache.put("index/a", &[1; 40]);
        cache.put("index/b", &[2; 40]);
        cache.put("index/c", &[3; 40]);
        assert_eq!(cache.get("index/a").unwrap(), [1; 40]);
        assert!(cache.get("index/c").is_none(), "over the bound: not cached");
        assert_eq!(cache.get_range("index/b", 10..12).unwrap(), [2; 2]);
        assert!(cache.get_range("index/b", 30..50).is_none(), "past the end");
        cache.retain("index", &HashSet::from(["index/b".to_string()]));
        assert!(cache.get("index/a").is_none(), "no longer listed: dropped");
        assert_eq!(cache.used(), 40);
        let again = Cache::open(root.path(), &VaultId([7; 32]), 100).unwrap();
        assert_eq!(again.used(), 40, "what is cached is counted when reopened");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&again.dir).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o700);
    }
}
