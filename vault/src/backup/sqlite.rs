//! Live SQLite databases: a file that starts with SQLite's magic is copied through SQLite's
//! online backup API into a private temporary file, in one step under one read
//! transaction, so the snapshot holds a state SQLite itself committed, whatever the app
//! writes meanwhile and in rollback-journal and WAL mode alike. Its `-journal`, `-wal` and
//! `-shm` files are then not stored: the copy holds every committed page. (A database that
//! cannot be copied is stored as read, with its journals.)

use std::{
    io::Read,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use rusqlite::{Connection, OpenFlags, backup::StepResult};

/// How SQLite databases are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SqliteMode {
    /// Through SQLite's backup API: every snapshot restores to a committed state.
    #[default]
    Consistent,
    /// As any other file (a database being written may restore torn).
    Raw,
}

/// The first 16 bytes of every SQLite 3 database.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// How long a copy waits for writers holding the database locked.
const BUSY_WAIT: Duration = Duration::from_secs(30);
/// Files SQLite keeps beside a database.
pub(crate) const SIDECARS: [&str; 3] = ["-journal", "-wal", "-shm"];

/// Whether the open file starts with SQLite's magic (reads 16 bytes from where it is).
pub(super) fn is_database(file: &mut std::fs::File) -> std::io::Result<bool> {
    let mut head = [0u8; 16];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..])? {
            0 => return Ok(false),
            n => got += n,
        }
    }
    Ok(&head == MAGIC)
}

/// Whether the regular file at `path` (not a symlink, fifo or device, which could block) is
/// a SQLite database.
pub(crate) fn is_database_at(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path);
    file.and_then(|mut f| is_database(&mut f)).unwrap_or(false)
}

/// Bytes of the chunks a SQLite database is cut into: a run of whole pages (FORMAT.md §4.3.1),
/// chosen on an app database after a day of scattered SQL writes (`benches/compare.py
/// --workload sqlite`): 8 KiB stored a sixth of what 512 KiB content-defined chunks did, for
/// an index of 1.6% of the database (4 KiB: a tenth, 3.2%).
pub(crate) const PAGE_RUN_BYTES: usize = 8 << 10;

/// Whether a file starting with `head` (its first bytes, as many as were read) is a SQLite
/// database.
pub(super) fn has_magic(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// The length of the page runs a file starting with `head` is cut into when it is a SQLite
/// database (its header names a page size, a power of two from 512 to 65536).
pub(super) fn page_run(head: &[u8]) -> Option<usize> {
    if !has_magic(head) || head.len() < 18 {
        return None;
    }
    let page = match u16::from_be_bytes([head[16], head[17]]) {
        1 => 65536,
        n => n as usize,
    };
    (page.is_power_of_two() && (512..=65536).contains(&page)).then(|| page * (PAGE_RUN_BYTES / page).max(1))
}

/// The database a `-journal`, `-wal` or `-shm` file belongs to.
pub(super) fn sidecar_of(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    SIDECARS
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .filter(|base| !base.is_empty())
        .map(|base| path.with_file_name(base))
}

/// Whether the database at `path` has a non-empty `-wal`: its commits land there and leave
/// the database file's own size and times as they were.
pub(super) fn has_wal(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::symlink_metadata(wal).is_ok_and(|m| m.len() > 0)
}

/// Copies the database at `path` into a new temporary file (in `TMPDIR`, mode 0600),
/// consistently.
///
/// The source is opened read-only, so the copy changes nothing; only when that fails (a
/// hot journal a crashed writer left needs rolling back, as any SQLite reader does, or a
/// WAL database lacks its `-shm`) is it opened read-write, never created. In rollback-journal
/// mode the app's commits wait while the copy reads (one read transaction, at disk speed).
///
/// # Errors
/// One line saying why (not a database, locked longer than [`BUSY_WAIT`], unreadable).
pub(super) fn copy(path: &Path) -> Result<tempfile::NamedTempFile, String> {
    let ro = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let rw = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    copy_with(path, ro).or_else(|_| copy_with(path, rw))
}

fn copy_with(path: &Path, flags: OpenFlags) -> Result<tempfile::NamedTempFile, String> {
    let src = Connection::open_with_flags(path, flags).map_err(|e| format!("SQLite cannot open it: {e}"))?;
    src.busy_timeout(BUSY_WAIT).map_err(|e| e.to_string())?;
    src.pragma_update(None, "query_only", true).map_err(|e| e.to_string())?;
    let out =
        tempfile::Builder::new().prefix(".zerok-sqlite-").tempfile().map_err(|e| format!("temporary copy: {e}"))?;
    let mut dst = Connection::open(out.path()).map_err(|e| format!("temporary copy: {e}"))?;
    dst.pragma_update(None, "journal_mode", "OFF").map_err(|e| e.to_string())?;
    dst.pragma_update(None, "synchronous", "OFF").map_err(|e| e.to_string())?;
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(|e| e.to_string())?;
        let started = Instant::now();
        // One step copies every page under one read transaction: a committed state.
        loop {
            match backup.step(-1).map_err(|e| format!("SQLite backup failed: {e}"))? {
                StepResult::Done => break,
                StepResult::More => {}
                _ if started.elapsed() > BUSY_WAIT => {
                    return Err(format!("locked by its writers for more than {}s", BUSY_WAIT.as_secs()));
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    dst.close().map_err(|(_, e)| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databases_are_cut_in_runs_of_whole_pages() {
        let dir = tempfile::tempdir().unwrap();
        let run = |page: u32| {
            let path = dir.path().join(format!("p{page}.db"));
            let db = Connection::open(&path).unwrap();
            db.pragma_update(None, "page_size", page).unwrap();
            db.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);").unwrap();
            drop(db);
            page_run(&std::fs::read(&path).unwrap())
        };
        assert_eq!(run(4096), Some(8192), "two 4 KiB pages");
        assert_eq!(run(1024), Some(8192), "eight 1 KiB pages");
        assert_eq!(run(65536), Some(65536), "one page when pages are larger than a run");
        let mut bad = b"SQLite format 3\0".to_vec();
        bad.extend([0x30, 0x00, 0, 0]);
        assert_eq!(page_run(&bad), None, "12288 is no page size");
        assert_eq!(page_run(&bad[..17]), None, "a header cut short");
        assert_eq!(page_run(b"hello, this is not a database"), None);
    }

    #[test]
    fn sidecars_name_their_database() {
        assert_eq!(sidecar_of(Path::new("/a/app.db-wal")), Some(PathBuf::from("/a/app.db")));
        assert_eq!(sidecar_of(Path::new("/a/app.db-journal")), Some(PathBuf::from("/a/app.db")));
        assert_eq!(sidecar_of(Path::new("/a/app.db-shm")), Some(PathBuf::from("/a/app.db")));
        assert_eq!(sidecar_of(Path::new("/a/-wal")), None);
        assert_eq!(sidecar_of(Path::new("/a/app.db")), None);
    }

    #[test]
    fn a_copy_holds_the_committed_rows_and_not_an_open_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let db = Connection::open(&path).unwrap();
        db.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);").unwrap();
        let writer = Connection::open(&path).unwrap();
        writer.execute_batch("BEGIN; INSERT INTO t VALUES (3);").unwrap();
        let copied = copy(&path).unwrap();
        let n: i64 =
            Connection::open(copied.path()).unwrap().query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 2);
        assert!(is_database(&mut std::fs::File::open(copied.path()).unwrap()).unwrap());
        std::fs::write(dir.path().join("not.db"), b"SQLite format 3\0 but nothing else").unwrap();
        assert!(copy(&dir.path().join("not.db")).is_err());
    }
}
