//! The replay folder, `TARGET/.zerok/replay`: created before any file is restored, each
//! level opened with `O_NOFOLLOW | O_DIRECTORY` relative to the one above (so a `.zerok`
//! symlink, from a snapshot or left in the target, is refused, never followed), and written
//! only through its directory handle with `openat`/`renameat`.

use std::{
    ffi::CString,
    fs::File,
    io::{self, Write},
    os::fd::{AsRawFd, FromRawFd},
    path::{Path, PathBuf},
};

/// The open replay folder.
pub struct ReplayDir {
    dir: File,
    path: PathBuf,
}

fn cstr(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

/// `openat(parent, name, flags, mode)` as a `File`.
fn open_at(parent: &File, name: &str, flags: libc::c_int, mode: libc::c_uint) -> io::Result<File> {
    let name = cstr(name)?;
    // SAFETY: a valid directory fd and a NUL-terminated name; the fd returned is ours.
    let fd = unsafe { libc::openat(parent.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Creates (if missing) and opens a real folder `name` inside `parent`.
fn subdir(parent: &File, name: &str) -> io::Result<File> {
    let c = cstr(name)?;
    // SAFETY: a valid directory fd and a NUL-terminated name.
    if unsafe { libc::mkdirat(parent.as_raw_fd(), c.as_ptr(), 0o700) } != 0 {
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::AlreadyExists {
            return Err(err);
        }
    }
    open_at(parent, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0).map_err(|e| {
        match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR) => {
                io::Error::other(format!("{name} is a symlink or a file, not a folder"))
            }
            _ => e,
        }
    })
}

impl ReplayDir {
    /// Creates `target/.zerok/replay` (the target must exist and be a real folder).
    ///
    /// # Errors
    /// A level that is a symlink or a file; I/O errors.
    pub fn create(target: &Path) -> io::Result<Self> {
        let top = {
            use std::os::unix::fs::OpenOptionsExt;
            let flags = libc::O_DIRECTORY | libc::O_NOFOLLOW;
            File::options().read(true).custom_flags(flags).open(target)?
        };
        let dir = subdir(&subdir(&top, ".zerok")?, "replay")?;
        Ok(Self { dir, path: target.join(".zerok/replay") })
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
        let mut f = open_at(&self.dir, &tmp, flags, 0o600)?;
        f.write_all(data)?;
        f.sync_all()?;
        let (from, to) = (cstr(&tmp)?, cstr(name)?);
        let fd = self.dir.as_raw_fd();
        // SAFETY: valid directory fd and NUL-terminated names.
        if unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Makes the folder's entries durable.
    ///
    /// # Errors
    /// I/O errors.
    pub fn sync(&self) -> io::Result<()> {
        self.dir.sync_all()
    }
}
