//! What `zerok backup` takes and leaves out, as a restic user drives it: `--exclude`
//! patterns, `--exclude-file`, `--exclude-if-present`, `--exclude-caches`, `--files-from`,
//! `--one-file-system`, and a `--dry-run` that stores nothing. Each checked by restoring
//! the snapshot and listing what came back.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

mod process;
use process::{Device, ZEROK};

/// Every file and folder below `root`, relative to it.
fn listing(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            out.insert(path.strip_prefix(root).unwrap().display().to_string());
            if path.symlink_metadata().unwrap().is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

fn write(path: PathBuf, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The objects a vault folder holds, but its locks (which come and go).
fn objects(vault: &Path) -> BTreeSet<String> {
    listing(vault).into_iter().filter(|p| !p.starts_with("locks")).collect()
}

fn restored(dev: &Device, root: &Path, id: &str) -> BTreeSet<String> {
    let target = root.join(format!("restored-{id}"));
    let out = dev.run(&["restore", id, "--target", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    listing(&target)
}

#[test]
fn excludes_leave_out_what_they_name_and_a_dry_run_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault");
    let dev = Device::new(dir.path(), "dev");
    dev.json(&["init", "--vault", vault.to_str().unwrap(), "--json"]);
    let src = dir.path().join("src");
    write(src.join("notes.txt"), "keep");
    write(src.join("scratch.tmp"), "pattern *.tmp");
    write(src.join("keep.tmp"), "taken back by !keep.tmp");
    write(src.join("web/node_modules/pkg/index.js"), "pattern node_modules at any depth");
    write(src.join("web/app.js"), "keep");
    write(src.join("out/build/a.o"), "pattern build/ (a folder)");
    write(src.join("docs/build"), "a file named build: kept");
    write(src.join("logs/app.log"), "the exclude file's absolute pattern");
    write(src.join("thumbs/CACHEDIR.TAG"), &format!("{}\n# a cache", zerok_vault::CACHEDIR_SIGNATURE));
    write(src.join("thumbs/1.png"), "a tagged cache");
    write(src.join("notcache/CACHEDIR.TAG"), "no signature: kept");
    write(src.join("private/.nobackup"), "");
    write(src.join("private/secret.txt"), "a folder with the marker");
    let list = dir.path().join("excludes");
    std::fs::write(&list, format!("# what the app rebuilds\n\n{}/logs\n", src.display())).unwrap();
    let flags = [
        "--exclude",
        "*.tmp",
        "--exclude",
        "!keep.tmp",
        "--exclude",
        "node_modules",
        "--exclude",
        "build/",
        "--exclude-file",
        list.to_str().unwrap(),
        "--exclude-if-present",
        ".nobackup",
        "--exclude-caches",
    ];
    let kept = set(&[
        "notes.txt",
        "keep.tmp",
        "web",
        "web/app.js",
        "out",
        "docs",
        "docs/build",
        "notcache",
        "notcache/CACHEDIR.TAG",
    ]);

    // The dry run says what would be stored and writes no object.
    let before = objects(&vault);
    let plan = dev.json(&[&["backup", src.to_str().unwrap(), "--dry-run", "--json"][..], &flags].concat());
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["files_new"], 5, "{plan}");
    assert_eq!(plan["excluded"], 6, "{plan}");
    assert!(plan["bytes_new"].as_u64().unwrap() > 0, "{plan}");
    assert_eq!(objects(&vault), before, "a dry run stored something");
    assert_eq!(dev.json(&["snapshots", "--json"]).as_array().unwrap().len(), 0);

    let done = dev.json(&[&["backup", src.to_str().unwrap(), "--json"][..], &flags].concat());
    assert_eq!((done["files_new"].as_u64(), done["excluded"].as_u64()), (Some(5), Some(6)), "{done}");
    assert_eq!(restored(&dev, dir.path(), done["snapshot_id"].as_str().unwrap()), kept);

    // Unchanged: a dry run against that snapshot has nothing new to store.
    let again = dev.json(&[&["backup", src.to_str().unwrap(), "--dry-run", "--json"][..], &flags].concat());
    assert_eq!((again["files_unmodified"].as_u64(), again["chunks_new"].as_u64()), (Some(5), Some(0)), "{again}");

    // Without the flags everything is there.
    let all = dev.json(&["backup", src.to_str().unwrap(), "--json"]);
    assert_eq!(all["excluded"], 0);
    assert!(restored(&dev, dir.path(), all["snapshot_id"].as_str().unwrap()).contains("private/secret.txt"));
}

#[test]
fn bad_patterns_and_lists_fail_in_one_line_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault");
    let dev = Device::new(dir.path(), "dev");
    dev.json(&["init", "--vault", vault.to_str().unwrap(), "--json"]);
    let src = dir.path().join("src");
    write(src.join("a.txt"), "a");
    let before = objects(&vault);
    let missing = dir.path().join("no-such-list");
    for (args, says) in [
        (vec!["--exclude", "a/{b"], "\"a/{b\""),
        (vec!["--exclude-if-present", "a/b"], "a file name"),
        (vec!["--exclude-file", missing.to_str().unwrap()], "no-such-list"),
        (vec!["--files-from", missing.to_str().unwrap()], "no-such-list"),
    ] {
        let out = dev.run(&[&["backup", src.to_str().unwrap()][..], &args].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(says) && stderr.trim().lines().count() == 1, "{args:?}: {stderr}");
    }
    assert_eq!(objects(&vault), before);
    let out = dev.run(&["backup"]);
    assert_eq!(out.status.code(), Some(2), "no path and no --files-from is a usage error");
}

#[test]
fn files_from_backs_up_the_listed_paths() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::new(dir.path(), "dev");
    dev.json(&["init", "--vault", dir.path().join("vault").to_str().unwrap(), "--json"]);
    write(dir.path().join("one/a.txt"), "a");
    write(dir.path().join("two words/b.txt"), "b");
    write(dir.path().join("three/c.txt"), "not listed");
    let list = dir.path().join("list");
    let (one, two) = (dir.path().join("one"), dir.path().join("two words"));
    std::fs::write(&list, format!("# the app's folders\n{}\n\n{}\n", one.display(), two.display())).unwrap();
    let done = dev.json(&["backup", "--files-from", list.to_str().unwrap(), "--json"]);
    assert_eq!(done["files_new"], 2);
    let snaps = dev.json(&["snapshots", "--json"]);
    let paths: Vec<&str> = snaps[0]["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(paths, [one.to_str().unwrap(), two.to_str().unwrap()]);
    assert_eq!(
        restored(&dev, dir.path(), done["snapshot_id"].as_str().unwrap()),
        set(&["one", "one/a.txt", "two words", "two words/b.txt"])
    );
}

/// `--one-file-system` over a tmpfs mounted inside the source, in a mount namespace of the
/// test's own (needs root and util-linux's `unshare`, as the netns test; skipped with a
/// note elsewhere unless `ZEROK_REQUIRE_NETNS` is set).
#[test]
fn one_file_system_keeps_mount_points_empty() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::new(dir.path(), "dev");
    dev.json(&["init", "--vault", dir.path().join("vault").to_str().unwrap(), "--json"]);
    let src = dir.path().join("src");
    write(src.join("a.txt"), "on the source's filesystem");
    std::fs::create_dir(src.join("mnt")).unwrap();
    // Mounts a tmpfs on src/mnt with a file in it, then runs zerok with the rest.
    let in_namespace = |zerok: &[&str]| {
        let script = r#"mount -t tmpfs tmpfs "$1/mnt" && echo mounted > "$1/mnt/inside" && shift && exec "$@""#;
        let args = [
            &["--mount", "--propagation", "private", "sh", "-c", script, "sh", src.to_str().unwrap(), ZEROK][..],
            zerok,
        ]
        .concat();
        dev.cmd("unshare", &args).output().unwrap()
    };
    let probe = in_namespace(&["--version"]);
    if !probe.status.success() {
        assert!(
            std::env::var_os("ZEROK_REQUIRE_NETNS").is_none(),
            "ZEROK_REQUIRE_NETNS is set but no mount namespace could be made: {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        eprintln!("skipping: cannot make a mount namespace here (needs root and unshare)");
        return;
    }
    let id = |out: std::process::Output| -> String {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["snapshot_id"].as_str().unwrap().to_string()
    };
    let crossed = id(in_namespace(&["backup", src.to_str().unwrap(), "--json"]));
    assert_eq!(restored(&dev, dir.path(), &crossed), set(&["a.txt", "mnt", "mnt/inside"]));
    let stayed = id(in_namespace(&["backup", "--one-file-system", src.to_str().unwrap(), "--json"]));
    assert_eq!(restored(&dev, dir.path(), &stayed), set(&["a.txt", "mnt"]), "the mount point kept, empty");
    // Outside the namespace nothing is mounted there.
    assert!(!src.join("mnt/inside").exists());
}

/// `backup --json` as a GUI reads it: status lines (restic's `status` messages) while it
/// runs, with totals from the scan, then one `summary` line holding the summary's keys; a
/// backup shorter than the interval prints its summary alone.
#[test]
fn json_progress_is_status_lines_then_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::new(dir.path(), "dev");
    dev.json(&["init", "--vault", dir.path().join("vault").to_str().unwrap(), "--json"]);
    let src = dir.path().join("src");
    let mut total = 0;
    for n in 0..40u64 {
        let bytes = process::noise(1 << 20, n + 1);
        total += bytes.len() as u64;
        std::fs::create_dir_all(src.join(format!("d{}", n % 4))).unwrap();
        std::fs::write(src.join(format!("d{}/f{n}", n % 4)), bytes).unwrap();
    }
    std::fs::write(src.join("d0/skip.tmp"), vec![7; 4 << 20]).unwrap();
    let src = src.to_str().unwrap();
    let out = dev
        .cmd(ZEROK, &["backup", src, "--exclude", "*.tmp", "--json"])
        .env("ZEROK_PROGRESS_FPS", "60")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (summary, status) = lines.split_last().unwrap();
    assert_eq!(summary["message_type"], "summary");
    assert_eq!(summary["bytes_total"], total);
    assert!(summary["snapshot_id"].as_str().is_some());
    assert!(!status.is_empty(), "no status line in a backup of 40 MiB at 60 a second");
    let mut done = 0;
    for line in status {
        assert_eq!(line["message_type"], "status", "{line}");
        let fraction = line["percent_done"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&fraction), "{line}");
        assert!(line["bytes_done"].as_u64().unwrap() >= done, "bytes done go forward");
        done = line["bytes_done"].as_u64().unwrap();
        if line["scanning"] == false {
            // The count leaves out what the backup leaves out.
            assert_eq!((line["total_bytes"].as_u64(), line["total_files"].as_u64()), (Some(total), Some(40)), "{line}");
        }
    }
    assert!(status.iter().any(|l| l["scanning"] == false), "the count finished while the backup ran");

    // Done within the interval (10 s here): its summary alone on stdout, one JSON object.
    let out = dev
        .cmd(ZEROK, &["backup", src, "--exclude", "*.tmp", "--json"])
        .env("ZEROK_PROGRESS_FPS", "0.1")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap()["files_unmodified"], 40);
}
