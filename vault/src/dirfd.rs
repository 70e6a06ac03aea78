//! Folder handles for work below a target that never follows a symlink: each level opened
//! with `openat(O_NOFOLLOW | O_DIRECTORY)` relative to the one above, and files created,
//! renamed and removed relative to the handle (`openat`, `renameat`, `unlinkat`).

use std::{
    ffi::{CString, OsStr},
    fs::File,
    io,
    os::{
        fd::{AsRawFd, FromRawFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
};

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

/// `openat(parent, name, flags | O_CLOEXEC, mode)` as a `File`.
///
/// # Errors
/// The OS error.
pub fn open_at(parent: &File, name: &OsStr, flags: libc::c_int, mode: libc::c_uint) -> io::Result<File> {
    let name = cstr(name)?;
    // SAFETY: a valid directory fd and a NUL-terminated name; the fd returned is ours.
    let fd = unsafe { libc::openat(parent.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Opens the real folder `name` inside `parent` (a symlink or a file is refused).
///
/// # Errors
/// The OS error; a symlink or a file says so.
pub fn open_dir_at(parent: &File, name: &OsStr) -> io::Result<File> {
    open_at(parent, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0).map_err(|e| {
        match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR) => {
                io::Error::other(format!("{} is a symlink or a file, not a folder", name.to_string_lossy()))
            }
            _ => e,
        }
    })
}

/// Opens the real folder at `path` itself (its last component must not be a symlink).
///
/// # Errors
/// The OS error.
pub fn open_dir(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options().read(true).custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW).open(path)
}

/// Creates (if missing) and opens the real folder `name` inside `parent`.
///
/// # Errors
/// As [`open_dir_at`].
pub fn subdir(parent: &File, name: &OsStr) -> io::Result<File> {
    let c = cstr(name)?;
    // SAFETY: a valid directory fd and a NUL-terminated name.
    if unsafe { libc::mkdirat(parent.as_raw_fd(), c.as_ptr(), 0o700) } != 0 {
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::AlreadyExists {
            return Err(err);
        }
    }
    open_dir_at(parent, name)
}

/// `renameat(dir, from, dir, to)`.
///
/// # Errors
/// The OS error.
pub fn rename_at(dir: &File, from: &OsStr, to: &OsStr) -> io::Result<()> {
    let (from, to) = (cstr(from)?, cstr(to)?);
    let fd = dir.as_raw_fd();
    // SAFETY: a valid directory fd and NUL-terminated names.
    if unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes the file `rel` below the folder `root`, walking down through real folders
/// only, and only if it is still the file `inode` (device, inode) names, when given.
///
/// # Errors
/// The OS error; a different file at that name says so.
pub fn remove_below(root: &Path, rel: &Path, inode: Option<(u64, u64)>) -> io::Result<()> {
    let parts: Vec<&OsStr> = rel.iter().collect();
    let Some((name, parents)) = parts.split_last() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty path"));
    };
    let mut dir = open_dir(root)?;
    for part in parents {
        dir = open_dir_at(&dir, part)?;
    }
    let c = cstr(name)?;
    if let Some(expected) = inode {
        // SAFETY: a zeroed `stat` is a valid out-parameter.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid directory fd, a NUL-terminated name and a writable `stat`.
        if unsafe { libc::fstatat(dir.as_raw_fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if (st.st_dev as u64, st.st_ino as u64) != expected {
            return Err(io::Error::other("replaced by another file; left alone"));
        }
    }
    // SAFETY: a valid directory fd and a NUL-terminated name.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
