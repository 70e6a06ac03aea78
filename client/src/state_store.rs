//! Where a device keeps its state: named byte strings (`config.json`, `vaults/<id>.json`,
//! `sync/group.json`, `sync/outbox/<id>`, …) behind [`StateStore`]. [`FileStore`] keeps
//! them as files under a folder (0600, folders 0700, replaced by rename), the default;
//! [`MemoryStore`] keeps them in memory, for an app that loads its secrets from the OS
//! keychain and saves them back from [`MemoryStore::snapshot`], and for tests. (Attachments
//! and their records are files under the sync state's content folder either way.)

use std::{
    collections::BTreeMap,
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::Mutex,
};

use zeroize::Zeroizing;

use crate::{Error, Result};

/// A device's named state. Names are `/`-separated paths of `[A-Za-z0-9._-]` parts, none of
/// them `.` or `..`, not ending in `.tmp` (a store refuses others with [`Error::Invalid`]).
/// Implementations must replace a value atomically: a reader sees the old bytes or the new
/// ones, never a mix. Their `Debug` must not show values (they hold keys).
pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// The bytes under `name`, `None` when there are none.
    ///
    /// # Errors
    /// The store cannot be read.
    fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>>;
    /// Replaces `name` with `bytes`; when `durable`, they survive a power cut once this
    /// returns.
    ///
    /// # Errors
    /// The store cannot be written.
    fn put(&self, name: &str, bytes: &[u8], durable: bool) -> Result<()>;
    /// Appends `bytes` to `name` (created when missing) and returns its new length.
    ///
    /// # Errors
    /// The store cannot be written.
    fn append(&self, name: &str, bytes: &[u8]) -> Result<u64>;
    /// Removes `name`; nothing to remove is no error.
    ///
    /// # Errors
    /// The store cannot be written.
    fn remove(&self, name: &str) -> Result<()>;
    /// The last parts of the names directly under `folder`, oldest write first (a
    /// [`FileStore`] orders writes within its file system's timestamp granularity by name).
    ///
    /// # Errors
    /// The store cannot be read.
    fn list(&self, folder: &str) -> Result<Vec<String>>;
    /// Where `name` is, for messages (a [`FileStore`] gives the file's path).
    fn locate(&self, name: &str) -> String {
        name.to_string()
    }
}

/// Refuses a name that could leave the store's folder or is not one of its names.
fn check_name(name: &str) -> Result<()> {
    let part_ok = |p: &str| {
        !p.is_empty() && p != "." && p != ".." && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    match name.split('/').all(part_ok) && !name.ends_with(".tmp") {
        true => Ok(()),
        false => Err(Error::Invalid(format!("not a state name: {name:?}"))),
    }
}

/// State as files under a folder (`ZEROK_HOME` for the programs).
#[derive(Clone, Debug)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    /// A store at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        Ok(self.root.join(name))
    }
}

/// Creates `dir` and its parents, 0700.
pub(crate) fn private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| Error::io(dir, e))
}

/// Writes `bytes` to `path` (0600, its folder made 0700) by rename, through a temporary
/// file of this write's own; `durable` syncs the file before and its folder after.
pub(crate) fn write_private(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let folder = path.parent().expect("in a folder");
    private_dir(folder)?;
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.{n}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).and_then(|_| if durable { f.sync_all() } else { Ok(()) }).map_err(|e| Error::io(&tmp, e))?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    if durable {
        std::fs::File::open(folder).and_then(|d| d.sync_all()).map_err(|e| Error::io(folder, e))?;
    }
    Ok(())
}

impl StateStore for FileStore {
    fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let path = self.path(name)?;
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn put(&self, name: &str, bytes: &[u8], durable: bool) -> Result<()> {
        write_private(&self.path(name)?, bytes, durable)
    }

    fn append(&self, name: &str, bytes: &[u8]) -> Result<u64> {
        let path = self.path(name)?;
        private_dir(path.parent().expect("in a folder"))?;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        f.write_all(bytes).and_then(|()| f.metadata()).map(|m| m.len()).map_err(|e| Error::io(&path, e))
    }

    fn remove(&self, name: &str) -> Result<()> {
        let path = self.path(name)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path, e)),
            _ => Ok(()),
        }
    }

    fn list(&self, folder: &str) -> Result<Vec<String>> {
        let dir = self.path(folder)?;
        let entries = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut named = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // A write cut short leaves `<name>.tmp`, never a value.
            if check_name(&name).is_err() || name.ends_with(".tmp") {
                continue;
            }
            let written = entry.metadata().and_then(|m| m.modified()).ok();
            named.push((written, name));
        }
        named.sort();
        Ok(named.into_iter().map(|(_, n)| n).collect())
    }

    fn locate(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }
}

/// State in memory: no key or group secret touches the disk. Load what the app kept with
/// [`MemoryStore::from_snapshot`]; save [`MemoryStore::snapshot`] where the app keeps
/// secrets (it holds the device's keys and the group secret).
#[derive(Default)]
pub struct MemoryStore {
    /// Name → (write stamp, bytes).
    values: Mutex<BTreeMap<String, Stamped>>,
    writes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.values.lock().expect("state").keys().cloned().collect();
        f.debug_struct("MemoryStore").field("names", &names).finish_non_exhaustive()
    }
}

/// A value and when it was written (a store-wide counter).
type Stamped = (u64, Zeroizing<Vec<u8>>);

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding what [`MemoryStore::snapshot`] gave.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a name no store would hold.
    pub fn from_snapshot(values: BTreeMap<String, Zeroizing<Vec<u8>>>) -> Result<Self> {
        let store = Self::new();
        for (name, bytes) in values {
            store.put(&name, &bytes, false)?;
        }
        Ok(store)
    }

    /// Everything it holds, by name.
    pub fn snapshot(&self) -> BTreeMap<String, Zeroizing<Vec<u8>>> {
        let values = self.values.lock().expect("state");
        values.iter().map(|(name, (_, bytes))| (name.clone(), bytes.clone())).collect()
    }

    fn stamp(&self) -> u64 {
        self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

impl StateStore for MemoryStore {
    fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        check_name(name)?;
        Ok(self.values.lock().expect("state").get(name).map(|(_, b)| b.clone()))
    }

    fn put(&self, name: &str, bytes: &[u8], _durable: bool) -> Result<()> {
        check_name(name)?;
        let stamp = self.stamp();
        self.values.lock().expect("state").insert(name.to_string(), (stamp, Zeroizing::new(bytes.to_vec())));
        Ok(())
    }

    fn append(&self, name: &str, bytes: &[u8]) -> Result<u64> {
        check_name(name)?;
        let stamp = self.stamp();
        let mut values = self.values.lock().expect("state");
        let (_, value) = values.entry(name.to_string()).or_insert_with(|| (stamp, Zeroizing::default()));
        value.extend_from_slice(bytes);
        Ok(value.len() as u64)
    }

    fn remove(&self, name: &str) -> Result<()> {
        check_name(name)?;
        self.values.lock().expect("state").remove(name);
        Ok(())
    }

    fn list(&self, folder: &str) -> Result<Vec<String>> {
        check_name(folder)?;
        let prefix = format!("{folder}/");
        let values = self.values.lock().expect("state");
        let mut named: Vec<(u64, String)> = values
            .iter()
            .filter_map(|(name, (stamp, _))| {
                let rest = name.strip_prefix(&prefix)?;
                (!rest.contains('/')).then(|| (*stamp, rest.to_string()))
            })
            .collect();
        named.sort();
        Ok(named.into_iter().map(|(_, n)| n).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(store: &dyn StateStore) {
        assert!(store.get("sync/group.json").unwrap().is_none());
        store.put("sync/outbox/b", b"first", true).unwrap();
        // Past the file system's timestamp granularity (writes within it list by name).
        std::thread::sleep(std::time::Duration::from_millis(20));
        store.put("sync/outbox/a", b"second", true).unwrap();
        store.put("sync/group.json", b"{}", true).unwrap();
        assert_eq!(store.get("sync/outbox/b").unwrap().as_deref().map(Vec::as_slice), Some(&b"first"[..]));
        assert_eq!(store.list("sync/outbox").unwrap(), ["b", "a"], "oldest write first");
        assert_eq!(store.append("sync/seen", b"0123").unwrap(), 4);
        assert_eq!(store.append("sync/seen", b"45").unwrap(), 6);
        store.remove("sync/outbox/b").unwrap();
        store.remove("sync/outbox/b").unwrap();
        assert_eq!(store.list("sync/outbox").unwrap(), ["a"]);
        assert!(store.list("nothing/here").unwrap().is_empty());
        for bad in ["../escape", "sync/../../etc/passwd", "/abs", "sync//x", "a/./b", "", "ünï", "sync/group.json.tmp"]
        {
            assert!(matches!(store.get(bad), Err(Error::Invalid(_))), "{bad:?} must be refused");
            assert!(store.put(bad, b"x", false).is_err(), "{bad:?} must not be written");
        }
    }

    #[test]
    fn a_file_store_keeps_names_inside_its_folder_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("home"));
        exercise(&store);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| std::fs::metadata(dir.path().join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("home/sync/group.json"), 0o600);
        assert_eq!(mode("home/sync/seen"), 0o600);
        assert_eq!(mode("home/sync"), 0o700);
        assert!(!dir.path().join("escape").exists());
    }

    #[test]
    fn a_memory_store_round_trips_through_its_snapshot() {
        let store = MemoryStore::new();
        exercise(&store);
        assert!(!format!("{store:?}").contains("012345"), "Debug shows names, never values");
        let again = MemoryStore::from_snapshot(store.snapshot()).unwrap();
        assert_eq!(again.get("sync/seen").unwrap().as_deref().map(Vec::as_slice), Some(&b"012345"[..]));
        assert!(MemoryStore::from_snapshot([("../x".to_string(), Zeroizing::new(vec![]))].into()).is_err());
    }
}
