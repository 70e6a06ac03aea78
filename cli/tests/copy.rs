//! `zerok copy` as a restic user drives it: snapshots of a real folder in a local vault,
//! copied into a vault on an S3 server (its own keys), restored from there byte for byte;
//! a second copy sends nothing, a copy of a new snapshot sends only what changed.

use std::{collections::HashSet, path::Path};

use serde_json::Value;

mod process;
use process::{Device, noise};

fn names_in(folder: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    for entry in walk(folder) {
        out.insert(entry.file_name().unwrap().to_string_lossy().into_owned());
    }
    out
}

fn walk(folder: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

#[test]
fn copy_sends_what_the_other_vault_lacks_and_restores_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let s3_root = dir.path().join("s3");
    std::fs::create_dir_all(s3_root.join("offsite")).unwrap();
    let server = rt.block_on(zerok_testkit::S3Server::start(&s3_root));
    let dev = Device::new(dir.path(), "dev");
    let env = server.env();
    let run = |args: &[&str]| dev.run_with(&env, args);
    let json = |args: &[&str]| -> Value { dev.json_with(&env, args) };
    let local = dir.path().join("vault");
    let (a, b) = (local.to_str().unwrap(), "s3://offsite/copies");
    json(&["init", "--vault", a, "--json"]);
    json(&["init", "--vault", b, "--json"]);

    let src = dir.path().join("app");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/big.db"), noise(3 << 20, 11)).unwrap();
    std::fs::write(src.join("notes.txt"), "first").unwrap();
    std::os::unix::fs::symlink("notes.txt", src.join("link")).unwrap();
    let s = src.to_str().unwrap();
    json(&["backup", s, "--vault", a, "--tag", "daily", "--json"]);
    std::fs::write(src.join("notes.txt"), "second").unwrap();
    json(&["backup", s, "--vault", a, "--json"]);

    let copied = json(&["copy", "--vault", a, "--to", b, "--json"]);
    assert_eq!(copied["copied"].as_array().unwrap().len(), 2, "{copied}");
    assert!(copied["chunks_sent"].as_u64().unwrap() >= 4, "{copied}");

    // The copies say what the originals say, and restore to the same bytes.
    let (from_a, from_b) = (json(&["snapshots", "--vault", a, "--json"]), json(&["snapshots", "--vault", b, "--json"]));
    for (x, y) in from_a.as_array().unwrap().iter().zip(from_b.as_array().unwrap()) {
        for key in ["time", "hostname", "paths", "tags", "files", "bytes"] {
            assert_eq!(x[key], y[key], "{key}");
        }
        let target = dir.path().join(format!("restored-{}", y["short_id"].as_str().unwrap()));
        json(&["restore", y["id"].as_str().unwrap(), "--vault", b, "--target", target.to_str().unwrap(), "--json"]);
        assert_eq!(std::fs::read(target.join("sub/big.db")).unwrap(), std::fs::read(src.join("sub/big.db")).unwrap());
        assert_eq!(std::fs::read_link(target.join("link")).unwrap(), Path::new("notes.txt"));
    }
    let latest = dir.path().join("restored-latest");
    json(&["restore", "latest", "--vault", b, "--target", latest.to_str().unwrap(), "--json"]);
    assert_eq!(std::fs::read(latest.join("notes.txt")).unwrap(), b"second");
    let check = run(&["check", "--vault", b, "--read-data"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));

    // Sealed under the other vault's keys: no pack of one is a pack of the other.
    let (packs_a, packs_b) = (names_in(&local.join("data")), names_in(&s3_root.join("offsite/copies/data")));
    assert!(!packs_b.is_empty() && packs_a.is_disjoint(&packs_b));

    // Again: nothing to copy, nothing sent.
    let again = json(&["copy", "--vault", a, "--to", b, "--json"]);
    assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["skipped"].as_array().unwrap().len(), 2, "{again}");
    assert_eq!(again["chunks_sent"], 0, "{again}");

    // A new snapshot: only the changed file and the trees above it travel.
    std::fs::write(src.join("notes.txt"), "third").unwrap();
    json(&["backup", s, "--vault", a, "--json"]);
    let third = json(&["copy", "--vault", a, "--to", b, "latest", "--json"]);
    assert_eq!(third["copied"].as_array().unwrap().len(), 1, "{third}");
    assert!(third["chunks_sent"].as_u64().unwrap() <= 3, "the big file is not sent again: {third}");
    assert!(third["chunks_present"].as_u64().unwrap() >= 1, "{third}");
    assert!(third["bytes_sent"].as_u64().unwrap() < 64 << 10, "{third}");

    // Copied back, a copy is skipped: the source holds what it copies already.
    let back = json(&["copy", "--vault", b, "--to", a, "--json"]);
    assert_eq!(back["copied"].as_array().unwrap().len(), 0, "{back}");
    assert_eq!(back["skipped"].as_array().unwrap().len(), 3, "{back}");

    // Bad input: one line, non-zero.
    let same = run(&["copy", "--vault", a, "--to", a]);
    assert_eq!(same.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&same.stderr).contains("same vault"));
    let none = run(&["copy", "--vault", a, "--to", b, "ffffffff"]);
    assert_eq!(none.status.code(), Some(1));
}
