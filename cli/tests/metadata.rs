//! What a restore brings back besides bytes, compared with the source as a user would:
//! hard links as links, sparse files with their holes, extended attributes (where the
//! filesystem takes them), fifos; and `ls` showing each.

use std::{
    io::{Seek, SeekFrom, Write},
    os::unix::fs::{FileTypeExt, MetadataExt},
    path::Path,
};

mod process;
use process::{Device, noise};

/// Whether this filesystem takes `user.` attributes (tmpfs before Linux 6.6 does not).
fn takes_xattrs(dir: &Path) -> bool {
    let probe = dir.join(".probe");
    std::fs::write(&probe, "").unwrap();
    let ok = xattr::set(&probe, "user.probe", b"1").is_ok();
    std::fs::remove_file(probe).unwrap();
    ok
}

/// Runs setfacl; false where it is missing or the filesystem takes no ACLs.
fn setfacl(args: &[&str]) -> bool {
    std::process::Command::new("setfacl").args(args).output().is_ok_and(|o| o.status.success())
}

#[test]
fn hard_links_holes_xattrs_and_fifos_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::new(dir.path(), "dev");
    dev.json(&["init", "--vault", dir.path().join("vault").to_str().unwrap(), "--json"]);
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let body = noise(100_000, 7);
    std::fs::write(src.join("a"), &body).unwrap();
    std::fs::hard_link(src.join("a"), src.join("b")).unwrap();
    std::fs::hard_link(src.join("a"), src.join("sub/c")).unwrap();
    // 64 MiB with two islands of data: a few blocks allocated.
    let mut sparse = std::fs::File::create(src.join("sparse")).unwrap();
    sparse.set_len(64 << 20).unwrap();
    for at in [0u64, 32 << 20] {
        sparse.seek(SeekFrom::Start(at)).unwrap();
        sparse.write_all(&noise(4096, at + 1)).unwrap();
    }
    drop(sparse);
    let pipe = std::ffi::CString::new(src.join("pipe").to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(pipe.as_ptr(), 0o640) }, 0);
    let xattrs = takes_xattrs(&src);
    if xattrs {
        xattr::set(src.join("a"), "user.note", b"hello").unwrap();
        xattr::set(src.join("sub"), "user.folder", b"kept").unwrap();
    } else {
        eprintln!("skipping the xattr checks: this filesystem takes no user attributes");
    }
    // A POSIX ACL (setfacl, from Debian's acl, which .ci/run installs): an extended
    // attribute too, system.posix_acl_access.
    let acl = xattrs && setfacl(&["-m", "u:nobody:rw", src.join("sub/c").to_str().unwrap()]);
    if !acl {
        assert!(std::env::var_os("ZEROK_REQUIRE_ACL").is_none(), "ZEROK_REQUIRE_ACL is set but setfacl failed");
        eprintln!("skipping the ACL check: no setfacl here (apt-get install acl)");
    }

    let id = dev.json(&["backup", src.to_str().unwrap(), "--json"])["snapshot_id"].as_str().unwrap().to_string();
    let target = dir.path().join("restored");
    let done = dev.json(&["restore", &id, "--target", target.to_str().unwrap(), "--json"]);
    assert_eq!((done["hardlinks_restored"].as_u64(), done["fifos_restored"].as_u64()), (Some(2), Some(1)), "{done}");

    let meta = |rel: &str| std::fs::symlink_metadata(target.join(rel)).unwrap();
    assert_eq!(std::fs::read(target.join("b")).unwrap(), body);
    assert_eq!((meta("a").ino(), meta("a").nlink()), (meta("b").ino(), 3));
    assert_eq!(meta("sub/c").ino(), meta("a").ino());
    assert_eq!(std::fs::read(target.join("sparse")).unwrap(), std::fs::read(src.join("sparse")).unwrap());
    assert!(meta("sparse").blocks() * 512 < 1 << 20, "{} blocks: the holes were written", meta("sparse").blocks());
    assert!(meta("pipe").file_type().is_fifo());
    assert_eq!(meta("pipe").mode() & 0o7777, 0o640);
    if acl {
        let shown =
            std::process::Command::new("getfacl").args(["-c", target.join("b").to_str().unwrap()]).output().unwrap();
        let shown = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.lines().any(|l| l == "user:nobody:rw-"), "{shown}");
    }
    if xattrs {
        assert_eq!(xattr::get(target.join("a"), "user.note").unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(xattr::get(target.join("sub"), "user.folder").unwrap().as_deref(), Some(&b"kept"[..]));
    }

    // ls says what each is.
    let listed = dev.json(&["ls", &id, "--json"]);
    let entry = |rel: &str| {
        let path = src.join(rel).display().to_string();
        listed.as_array().unwrap().iter().find(|e| e["path"] == path.as_str()).unwrap().clone()
    };
    assert_eq!(entry("b")["links"], 3);
    assert_eq!(entry("sparse")["sparse"], true);
    assert_eq!(entry("pipe")["type"], "fifo");
    if acl {
        // One file under three names: its ACL is on each.
        assert_eq!(entry("a")["xattrs"], serde_json::json!(["system.posix_acl_access", "user.note"]));
    } else if xattrs {
        assert_eq!(entry("a")["xattrs"], serde_json::json!(["user.note"]));
    }

    // Only one of the names: restored as the file it is.
    let part = dir.path().join("part");
    let one = dev.json(&["restore", &id, "--target", part.to_str().unwrap(), "--include", "sub/c", "--json"]);
    assert_eq!(one["hardlinks_restored"], 0);
    assert_eq!(std::fs::read(part.join("sub/c")).unwrap(), body);
}
