//! Free space of the data folder's file system, read at most once a second, so pushes are
//! refused before the disk fills rather than failing when it has.

use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

/// How long a reading is trusted.
const FRESH: Duration = Duration::from_secs(1);

/// Watches one folder's file system.
pub struct Space {
    dir: PathBuf,
    min_free: u64,
    last: Mutex<Option<(Instant, u64)>>,
}

impl Space {
    /// Refuses writes once `dir`'s file system has less than `min_free` bytes free.
    pub fn new(dir: &Path, min_free: u64) -> Self {
        Self { dir: dir.to_path_buf(), min_free, last: Mutex::new(None) }
    }

    /// Whether there is room (true when the file system cannot be asked).
    pub fn has_room(&self) -> bool {
        if self.min_free == 0 {
            return true;
        }
        let mut last = self.last.lock().expect("space");
        let free = match *last {
            Some((at, free)) if at.elapsed() < FRESH => free,
            _ => {
                let Some(free) = free_bytes(&self.dir) else { return true };
                *last = Some((Instant::now(), free));
                free
            }
        };
        free >= self.min_free
    }
}

/// Bytes an unprivileged process may still write on `dir`'s file system.
fn free_bytes(dir: &Path) -> Option<u64> {
    let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid C string and `st` points to writable memory for one
    // `statvfs`, which the call fills in full when it returns 0.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: the call returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_with_less_than_asked_free_has_no_room() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).is_some_and(|b| b > 0));
        assert!(Space::new(dir.path(), 1).has_room());
        assert!(!Space::new(dir.path(), u64::MAX).has_room());
        assert!(Space::new(dir.path(), 0).has_room(), "0 turns the check off");
    }
}
