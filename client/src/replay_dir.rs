//! The folders under `TARGET/.zerok` (`replay`, `content`): created before any file is restored, each
//! level opened with `O_NOFOLLOW | O_DIRECTORY` relative to the one above (so a `.zerok`
//! symlink, from a snapshot or left in the target, is refused, never followed), and written
//! only through its directory handle with `openat`/`renameat`.

use std::{
    ffi::OsStr,
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
};

use zerok_vault::dirfd::{open_at, open_dir, rename_at, subdir};

/// An open folder under `TARGET/.zerok`.
pub struct ReplayDir {
    dir: File,
    path: PathBuf,
}

impl ReplayDir {
    /// Creates `target/.zerok/<leaf>` (the target must exist and be a real folder).
    ///
    /// # Errors
    /// A level that is a symlink or a file; I/O errors.
    pub fn create(target: &Path, leaf: &str) -> io::Result<Self> {
        let top = open_dir(target)?;
        let dir = subdir(&subdir(&top, OsStr::new(".zerok"))?, OsStr::new(leaf))?;
        Ok(Self { dir, path: target.join(".zerok").join(leaf) })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one file (0600, synced, then renamed into place).
    ///
    /// # Errors
    /// I/O errors.
    pub fn write(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let tmp = format!("{name}.tmp");
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW;
        let mut f = open_at(&self.dir, OsStr::new(&tmp), flags, 0o600)?;
        f.write_all(data)?;
        f.sync_all()?;
        rename_at(&self.dir, OsStr::new(&tmp), OsStr::new(name))
    }

    /// Makes the folder's entries durable.
    ///
    /// # Errors
    /// I/O errors.
    pub fn sync(&self) -> io::Result<()> {
        self.dir.sync_all()
    }
}
