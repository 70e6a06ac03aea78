//! `zerok mount` as a restic user drives it: two snapshots of a real folder mounted through
//! the kernel's FUSE, browsed and read with ordinary file calls, compared with the source,
//! then unmounted with ctrl-c. Needs /dev/fuse (skipped, saying so, where it is missing).

use std::{
    io::{Read, Seek, SeekFrom},
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
    process::{Child, Stdio},
    time::Duration,
};

mod process;
use process::{Device, ZEROK, noise};

/// Mounted file systems' mount points (from /proc/self/mounts).
fn mounted(at: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let at = at.to_str().unwrap();
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(at))
}

/// Stops the mount if the test fails before it does.
struct Mounted(Child, std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.0.try_wait().unwrap().is_none() {
            // SAFETY: kill sends a signal to the child this test started, still running.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
            let _ = self.0.wait();
        }
        if mounted(&self.1) {
            let _ = std::process::Command::new("fusermount3").arg("-u").arg(&self.1).status();
        }
    }
}

/// `zerok mount` at `mnt`, once it answers.
fn mount(dev: &Device, mnt: &Path) -> Mounted {
    let child = dev.cmd(ZEROK, &["mount", mnt.to_str().unwrap()]).stderr(Stdio::piped()).spawn().unwrap();
    let mut child = Mounted(child, mnt.to_path_buf());
    for _ in 0..100 {
        if mounted(mnt) && mnt.join("latest").exists() {
            return child;
        }
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut err = String::new();
            child.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("zerok mount exited with {status}: {err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the mount did not come up in 10 s");
}

/// Waits (at most 10 s) for the mount process to end.
fn ended(child: &mut Mounted) -> Option<std::process::ExitStatus> {
    for _ in 0..100 {
        if let Some(status) = child.0.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn a_mounted_vault_reads_as_the_folders_it_backed_up() {
    if !Path::new("/dev/fuse").exists() {
        eprintln!("skipping: no /dev/fuse on this machine (FUSE is not available)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::new(dir.path(), "dev");
    dev.json(&["init", "--vault", dir.path().join("vault").to_str().unwrap(), "--json"]);
    let src = dir.path().join("app");
    std::fs::create_dir_all(src.join("sub/deep")).unwrap();
    let big = noise(5 << 20, 0x9e37_79b9);
    std::fs::write(src.join("sub/deep/big.db"), &big).unwrap();
    std::fs::write(src.join("notes.txt"), "first").unwrap();
    std::fs::set_permissions(src.join("notes.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("notes.txt", src.join("link")).unwrap();
    std::fs::hard_link(src.join("notes.txt"), src.join("notes-again.txt")).unwrap();
    let xattrs = xattr::set(src.join("notes.txt"), "user.origin", b"laptop").is_ok();
    let s = src.to_str().unwrap();
    let first = dev.json(&["backup", s, "--json"])["snapshot_id"].as_str().unwrap().to_string();
    std::fs::write(src.join("notes.txt"), "second").unwrap();
    dev.json(&["backup", s, "--tag", "release", "--json"]);

    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mut child = mount(&dev, &mnt);

    let names = |p: &Path| {
        let mut n: Vec<String> =
            std::fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&mnt), ["hosts", "ids", "latest", "snapshots", "tags"]);
    let times = names(&mnt.join("snapshots"));
    assert_eq!(times.len(), 2);
    assert_eq!(std::fs::read_link(mnt.join("latest")).unwrap(), Path::new("snapshots").join(&times[1]));
    assert_eq!(names(&mnt.join("tags/release")), [times[1].clone()]);
    let host = names(&mnt.join("hosts"));
    assert_eq!(names(&mnt.join("hosts").join(&host[0])), times);
    let by_id = mnt.join("ids").join(&first[..8]);
    // Each snapshot holds the folders it backed up, by name.
    assert_eq!(names(&by_id), ["app"]);
    assert_eq!(std::fs::read(by_id.join("app/notes.txt")).unwrap(), b"first");

    // The newest snapshot reads as the source: bytes, links, modes, hard links, xattrs.
    let latest = mnt.join("latest/app");
    assert_eq!(names(&latest), ["link", "notes-again.txt", "notes.txt", "sub"]);
    assert_eq!(std::fs::read(latest.join("notes.txt")).unwrap(), b"second");
    assert_eq!(std::fs::read(latest.join("sub/deep/big.db")).unwrap(), big);
    assert_eq!(std::fs::read_link(latest.join("link")).unwrap(), Path::new("notes.txt"));
    let meta = std::fs::metadata(latest.join("notes.txt")).unwrap();
    let source = std::fs::metadata(src.join("notes.txt")).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.uid(), meta.nlink()), (0o640, source.uid(), 2));
    assert_eq!(meta.mtime(), source.mtime());
    if xattrs {
        assert_eq!(xattr::get(latest.join("notes.txt"), "user.origin").unwrap().as_deref(), Some(&b"laptop"[..]));
    }
    // A read in the middle of a chunk, across the next one.
    let mut file = std::fs::File::open(latest.join("sub/deep/big.db")).unwrap();
    file.seek(SeekFrom::Start(3 << 20)).unwrap();
    let mut part = vec![0; 1 << 20];
    file.read_exact(&mut part).unwrap();
    assert_eq!(part, &big[3 << 20..4 << 20]);

    // Read-only: nothing can be written or removed.
    assert!(std::fs::write(latest.join("notes.txt"), "ransom").is_err());
    assert!(std::fs::write(latest.join("new.txt"), "x").is_err());
    assert!(std::fs::remove_file(latest.join("notes.txt")).is_err());
    assert!(std::fs::metadata(latest.join("missing")).is_err());
    assert_eq!(std::fs::read(latest.join("notes-again.txt")).unwrap(), b"second");

    // ctrl-c with a file still open: the mount is detached at once, the open file reads on,
    // and the process ends when it is closed.
    // SAFETY: kill sends a signal to the child this test started.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGINT) };
    let mut gone = false;
    for _ in 0..100 {
        if !mounted(&mnt) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gone, "still mounted 10 s after ctrl-c");
    assert!(child.0.try_wait().unwrap().is_none(), "ended while a file was open");
    file.seek(SeekFrom::Start(1 << 20)).unwrap();
    file.read_exact(&mut part).unwrap();
    assert_eq!(part, &big[1 << 20..2 << 20]);
    drop(file);
    let status = ended(&mut child);
    assert!(status.is_some_and(|s| s.success()), "zerok mount did not end cleanly once the file closed: {status:?}");

    // With nothing open, ctrl-c unmounts and ends it at once.
    let mut child = mount(&dev, &mnt);
    // SAFETY: kill sends a signal to the child this test started.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGINT) };
    let status = ended(&mut child);
    assert!(status.is_some_and(|s| s.success()), "zerok mount did not end cleanly on ctrl-c: {status:?}");
    assert!(!mounted(&mnt), "still mounted");
}

#[test]
fn mounting_on_a_missing_folder_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::new(dir.path(), "dev");
    dev.json(&["init", "--vault", dir.path().join("vault").to_str().unwrap(), "--json"]);
    let out = dev.run(&["mount", dir.path().join("nowhere").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("mount point"), "{err}");
}

/// A snapshot a hostile device wrote: entries named "", "..", "a/b" beside "ok", and a host
/// and a tag holding `/`. The kernel refuses a whole folder listing over one such name; the
/// mount leaves them out (or, for hosts and tags, shows `∕`), so the rest still lists.
#[test]
fn hostile_names_in_a_snapshot_leave_the_rest_of_the_mount_listable() {
    use zerok_vault::{
        Secret, Vault,
        format::{
            Kind,
            index::{IndexFile, IndexPack},
            names,
            pack::PackWriter,
            seal_msgpack,
            snapshot::{Snapshot, SnapshotSummary},
            tree::{Node, NodeKind, Tree},
        },
    };
    if !Path::new("/dev/fuse").exists() {
        eprintln!("skipping: no /dev/fuse on this machine (FUSE is not available)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::new(dir.path(), "dev");
    let url = dir.path().join("vault").display().to_string();
    let init = dev.json(&["init", "--vault", &url, "--json"]);
    let key = zerok_core::RecoveryKey::parse(init["recovery_key"].as_str().unwrap()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let backend = zerok_vault::Location::parse(&url).unwrap().open(&url).unwrap();
        let vault = Vault::open(backend, Secret::Recovery(&key)).await.unwrap();
        let link = |name: &[u8]| Node {
            name: name.to_vec(),
            kind: NodeKind::Symlink,
            mode: 0o777,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            content: Vec::new(),
            subtree: None,
            target: Some(b"/etc/passwd".to_vec()),
            links: None,
            xattrs: Vec::new(),
            sparse: false,
        };
        // Sorted and each once, as a reader demands; every name but "ok" unholdable.
        let body = Tree::new(vec![link(b""), link(b".."), link(b"a/b"), link(b"ok")]).encode();
        let (keys, tree) = (vault.keys(), vault.keys().chunk_id(&body));
        let sealed = zerok_vault::format::envelope::seal(keys.metadata(), Kind::Tree, &tree.0, &body, 3);
        let mut pack = PackWriter::default();
        pack.add(Kind::Tree, tree, &sealed, body.len() as u32);
        let (pack_id, bytes, entries) = pack.finish(keys.metadata());
        vault.backend().put(&names::pack(&pack_id), bytes::Bytes::from(bytes)).await.unwrap();
        let index_id = zerok_core::IndexId::random();
        let index = seal_msgpack(
            keys.metadata(),
            Kind::Index,
            &index_id.0,
            &IndexFile::new(vec![IndexPack::new(pack_id, &entries)]),
        );
        vault.backend().put(&names::index(&index_id), bytes::Bytes::from(index)).await.unwrap();
        let snapshot = Snapshot {
            version: 1,
            time_ns: 1_700_000_000_000_000_000,
            hostname: "host/evil".into(),
            tags: vec!["release/1.0".into(), String::new()],
            paths: vec!["/x".into()],
            tree,
            parent: None,
            sync_cursors: Default::default(),
            sync_group: None,
            summary: SnapshotSummary::default(),
            program: "attacker".into(),
            original: None,
        };
        vault.save_snapshot(&snapshot).await.unwrap();
    });

    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mut child = mount(&dev, &mnt);
    let names = |p: &Path| -> std::io::Result<Vec<String>> {
        let mut n = Vec::new();
        for e in std::fs::read_dir(p)? {
            n.push(e?.file_name().to_string_lossy().into_owned());
        }
        n.sort();
        Ok(n)
    };
    assert_eq!(names(&mnt.join("latest")).unwrap(), ["ok"]);
    assert_eq!(std::fs::read_link(mnt.join("latest/ok")).unwrap(), Path::new("/etc/passwd"));
    assert_eq!(names(&mnt.join("hosts")).unwrap(), ["host\u{2215}evil"]);
    assert_eq!(names(&mnt.join("tags")).unwrap(), ["(none)", "release\u{2215}1.0"]);
    // SAFETY: kill sends a signal to the child this test started.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGINT) };
    assert!(ended(&mut child).is_some_and(|s| s.success()));
}
