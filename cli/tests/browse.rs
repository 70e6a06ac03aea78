//! Snapshots read without restoring them, as a restic user drives it: `zerok ls`, `zerok
//! diff`, `zerok find` and `zerok dump` on two snapshots of a real folder, each checked
//! against what was backed up.

use std::{collections::BTreeMap, os::unix::fs::PermissionsExt};

use serde_json::Value;

mod process;
use process::{Device, noise};

fn stdout(dev: &Device, args: &[&str]) -> Vec<u8> {
    let out = dev.run(args);
    assert!(out.status.success(), "zerok {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn ls_diff_find_and_dump_read_snapshots_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::new(dir.path(), "dev");
    dev.json(&["init", "--vault", dir.path().join("vault").to_str().unwrap(), "--json"]);
    let src = dir.path().join("app");
    let p = |rel: &str| src.join(rel).display().to_string();
    std::fs::create_dir_all(src.join("sub/deep")).unwrap();
    std::fs::write(src.join("a.txt"), "alpha").unwrap();
    std::fs::write(src.join("sub/b.txt"), "bravo").unwrap();
    let db = noise(3 << 20, 0x2545_f491_4f6c_dd1d);
    std::fs::write(src.join("sub/deep/c.db"), &db).unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    let first = dev.json(&["backup", src.to_str().unwrap(), "--json"])["snapshot_id"].as_str().unwrap().to_string();

    std::fs::write(src.join("a.txt"), "alpha, changed").unwrap();
    std::fs::remove_file(src.join("sub/b.txt")).unwrap();
    std::fs::write(src.join("new.txt"), "new").unwrap();
    std::fs::set_permissions(src.join("sub/deep/c.db"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(src.join("link")).unwrap();
    std::fs::create_dir(src.join("link")).unwrap();
    let second = dev.json(&["backup", src.to_str().unwrap(), "--json"])["snapshot_id"].as_str().unwrap().to_string();

    // ls: every entry under its backed-up path, parents first.
    let listed = dev.json(&["ls", &first, "--json"]);
    let paths: Vec<&str> = listed.as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    let (a, link, sub, b, deep, c) =
        (p("a.txt"), p("link"), p("sub"), p("sub/b.txt"), p("sub/deep"), p("sub/deep/c.db"));
    assert_eq!(paths, [src.to_str().unwrap(), &a, &link, &sub, &b, &deep, &c]);
    let c_entry = &listed.as_array().unwrap()[6];
    assert_eq!((c_entry["type"].as_str(), c_entry["size"].as_u64()), (Some("file"), Some(db.len() as u64)));
    assert_eq!(listed[2]["target"], "a.txt");
    let below = String::from_utf8(stdout(&dev, &["ls", &first, &sub])).unwrap();
    assert_eq!(below.lines().collect::<Vec<_>>(), [sub.as_str(), &b, &deep, &c]);
    let long = String::from_utf8(stdout(&dev, &["ls", "--long", &second, &c])).unwrap();
    assert!(long.starts_with("-rw------- ") && long.trim_end().ends_with(&c), "{long}");
    let missing = dev.run(&["ls", &first, &p("nope")]);
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(1), "{err}");
    assert!(err.contains("not in the snapshot") && err.trim().lines().count() == 1, "{err}");

    // diff: each change by path.
    let d = dev.json(&["diff", &first, &second, "--json"]);
    let changes: BTreeMap<String, Vec<String>> =
        d["changes"].as_array().unwrap().iter().fold(BTreeMap::new(), |mut m, c| {
            m.entry(c["path"].as_str().unwrap().to_string()).or_default().push(c["change"].as_str().unwrap().into());
            m
        });
    let want: BTreeMap<String, Vec<String>> = [
        (&a, vec!["modified"]),
        (&link, vec!["removed", "added"]),
        (&p("new.txt"), vec!["added"]),
        (&b, vec!["removed"]),
        (&c, vec!["metadata"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.clone(), v.into_iter().map(String::from).collect()))
    .collect();
    // Folders whose listing changed show a new modification time too.
    let folders = [src.display().to_string(), sub.clone(), deep.clone()];
    let changes: BTreeMap<_, _> =
        changes.into_iter().filter(|(k, v)| !(folders.contains(k) && v == &["metadata"])).collect();
    assert_eq!(changes, want, "{d}");
    assert_eq!(d["bytes_removed"], "alpha".len() + "bravo".len());
    let text = String::from_utf8(stdout(&dev, &["diff", &first, &second])).unwrap();
    assert!(text.lines().any(|l| l == format!("+    {}", p("new.txt"))), "{text}");
    assert!(text.lines().any(|l| l == format!("M    {a}")), "{text}");

    // find: by name in every snapshot, by whole path, in one snapshot.
    let hits = dev.json(&["find", "*.txt", "--json"]);
    let mut by_snapshot: Vec<(String, String)> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["snapshot"].as_str().unwrap()[..8].to_string(), h["path"].as_str().unwrap().to_string()))
        .collect();
    by_snapshot.sort();
    let mut want = vec![
        (first[..8].to_string(), a.clone()),
        (first[..8].to_string(), b.clone()),
        (second[..8].to_string(), a.clone()),
        (second[..8].to_string(), p("new.txt")),
    ];
    want.sort();
    assert_eq!(by_snapshot, want);
    let one = dev.json(&["find", &format!("{}/**/*.db", src.display()), "--snapshot", &first, "--json"]);
    assert_eq!(one.as_array().unwrap().len(), 1, "{one}");
    assert_eq!(dev.json(&["find", "b.txt", "--snapshot", &second, "--json"]), Value::Array(vec![]));

    // dump: a file's bytes, a folder as tar.
    assert_eq!(stdout(&dev, &["dump", &first, &c]), db);
    let tar = stdout(&dev, &["dump", &first, &sub]);
    let mut archive = tar::Archive::new(&tar[..]);
    let mut got = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        got.insert(name, bytes);
    }
    let names: Vec<&str> = got.keys().map(String::as_str).collect();
    assert_eq!(names, ["sub", "sub/b.txt", "sub/deep", "sub/deep/c.db"]);
    assert_eq!(got["sub/deep/c.db"], db);
    assert_eq!(got["sub/b.txt"], b"bravo");
    let out = dev.run(&["dump", &second, &b]);
    assert_eq!(out.status.code(), Some(1), "a path the snapshot lacks");

    // stats: the bytes stored are the vault folder's, the shared database counted once.
    let s = dev.json(&["stats", "--json"]);
    assert_eq!(s["snapshots"], 2);
    let sizes: u64 =
        dev.json(&["snapshots", "--json"]).as_array().unwrap().iter().map(|x| x["bytes"].as_u64().unwrap()).sum();
    assert_eq!(s["logical_bytes"], sizes);
    assert!(s["dedup_ratio"].as_f64().unwrap() > 1.9, "{s}");
    assert_eq!(s["stored_bytes"].as_u64().unwrap(), folder_bytes(&dir.path().join("vault")), "{s}");
}

/// Bytes of the files below `dir`, but its locks.
fn folder_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "locks")
        .map(|e| if e.file_type().unwrap().is_dir() { folder_bytes(&e.path()) } else { e.metadata().unwrap().len() })
        .sum()
}
