//! A storage provider that goes backwards, as it happens: it hides the newest snapshot,
//! puts back yesterday's copy of the whole vault, re-inserts an index file prune deleted;
//! and a device with a key plants a snapshot dated a year ahead. Each is noticed, and none
//! makes `latest` silently give old or planted data.

use std::path::Path;

mod process;
use process::{Device, ZEROK, copy_dir, faketime};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn snapshot_file(vault: &Path, id: &str) -> std::path::PathBuf {
    vault.join("snapshots").join(id)
}

/// A laptop with a vault and two snapshots of `src`.
struct Scene {
    laptop: Device,
    vault: std::path::PathBuf,
    src: std::path::PathBuf,
    recovery: String,
    ids: [String; 2],
}

fn two_snapshots(dir: &Path) -> Scene {
    let vault = dir.join("vault");
    let laptop = Device::new(dir, "laptop");
    let init = laptop.json(&["init", "--vault", vault.to_str().unwrap(), "--json"]);
    let recovery = init["recovery_key"].as_str().unwrap().to_string();
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("doc.txt"), "monday").unwrap();
    let first = laptop.json(&["backup", src.to_str().unwrap(), "--json"])["snapshot_id"].as_str().unwrap().to_string();
    std::fs::write(src.join("doc.txt"), "tuesday").unwrap();
    let second = laptop.json(&["backup", src.to_str().unwrap(), "--json"])["snapshot_id"].as_str().unwrap().to_string();
    Scene { laptop, vault, src, recovery, ids: [first, second] }
}

#[test]
fn a_hidden_newest_snapshot_stops_latest_and_fails_check() {
    let dir = tempfile::tempdir().unwrap();
    let Scene { laptop, vault, src, recovery, ids: [first, second] } = two_snapshots(dir.path());
    let hidden = dir.path().join("hidden");
    std::fs::rename(snapshot_file(&vault, &second), &hidden).unwrap();

    let out = dir.path().join("out");
    let restore = laptop.run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(restore.status.code(), Some(1), "latest must not silently give Monday's file");
    assert!(stderr(&restore).contains("rolled back or hides it") && stderr(&restore).contains(&second[..8]));
    assert!(!out.join("doc.txt").exists());
    let check = laptop.run(&["check"]);
    assert!(!check.status.success() && stderr(&check).contains(&second[..8]), "{}", stderr(&check));
    let list = laptop.run(&["snapshots"]);
    assert!(list.status.success() && stderr(&list).contains("warning"), "{}", stderr(&list));
    // What is there is still reachable by id, with the warning.
    let by_id = laptop.run(&["restore", &first[..8], "--target", out.to_str().unwrap()]);
    assert!(by_id.status.success() && stderr(&by_id).contains("rolled back"), "{}", stderr(&by_id));
    assert_eq!(std::fs::read_to_string(out.join("doc.txt")).unwrap(), "monday");

    // The snapshot is back: all is well again.
    std::fs::rename(&hidden, snapshot_file(&vault, &second)).unwrap();
    let again = dir.path().join("again");
    assert!(laptop.run(&["restore", "latest", "--target", again.to_str().unwrap()]).status.success());
    assert_eq!(std::fs::read_to_string(again.join("doc.txt")).unwrap(), "tuesday");

    // Another device backs up the same host and paths and forgets the older snapshots: a
    // snapshot gone but replaced by a newer one is no rollback.
    let other = |args: &[&str]| {
        let out = Device::new(dir.path(), "other")
            .cmd(ZEROK, args)
            .env("ZEROK_VAULT", &vault)
            .env("ZEROK_RECOVERY_KEY", &recovery)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    };
    std::fs::write(src.join("doc.txt"), "wednesday").unwrap();
    let host = laptop.json(&["snapshots", "--json"])[0]["hostname"].as_str().unwrap().to_string();
    other(&["backup", src.to_str().unwrap(), "--host", &host]);
    other(&["forget", "--keep-last", "1"]);
    let clean = laptop.run(&["check"]);
    assert!(clean.status.success(), "{}", stderr(&clean));
    let latest = dir.path().join("latest");
    assert!(laptop.run(&["restore", "latest", "--target", latest.to_str().unwrap()]).status.success());
    assert_eq!(std::fs::read_to_string(latest.join("doc.txt")).unwrap(), "wednesday");
}

#[test]
fn yesterdays_copy_of_the_whole_vault_is_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault");
    let laptop = Device::new(dir.path(), "laptop");
    laptop.json(&["init", "--vault", vault.to_str().unwrap(), "--json"]);
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("ledger.txt"), "balance 100").unwrap();
    laptop.json(&["backup", src.to_str().unwrap(), "--json"]);
    let yesterday = dir.path().join("yesterday");
    copy_dir(&vault, &yesterday);
    std::fs::write(src.join("ledger.txt"), "balance 250").unwrap();
    let today = laptop.json(&["backup", src.to_str().unwrap(), "--json"])["snapshot_id"].as_str().unwrap().to_string();

    // The provider serves yesterday's bucket.
    std::fs::remove_dir_all(&vault).unwrap();
    copy_dir(&yesterday, &vault);
    let out = dir.path().join("out");
    let restore = laptop.run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(restore.status.code(), Some(1));
    assert!(stderr(&restore).contains(&today[..8]), "{}", stderr(&restore));
    assert!(!laptop.run(&["check"]).status.success());
}

#[test]
fn an_index_file_prune_deleted_and_the_store_put_back_cannot_lose_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault");
    let dev = Device::new(dir.path(), "dev");
    dev.json(&["init", "--vault", vault.to_str().unwrap(), "--json"]);
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let photo: Vec<u8> = (0..3u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    std::fs::write(src.join("photo.raw"), &photo).unwrap();
    dev.json(&["backup", src.to_str().unwrap(), "--json"]);
    let old_index = dir.path().join("old-index");
    copy_dir(&vault.join("index"), &old_index);
    std::fs::remove_file(src.join("photo.raw")).unwrap();
    std::fs::write(src.join("note.txt"), "photo deleted").unwrap();
    dev.json(&["backup", src.to_str().unwrap(), "--json"]);
    let pruned = dev.json(&["forget", "--keep-last", "1", "--prune", "--json"]);
    assert!(pruned["prune"]["packs_deleted"].as_u64().unwrap() >= 1, "{pruned}");

    // The provider re-inserts the index files prune deleted; they name packs that are gone.
    for entry in std::fs::read_dir(&old_index).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), vault.join("index").join(entry.file_name())).unwrap();
    }
    let check = dev.run(&["check"]);
    assert!(!check.status.success());
    assert!(
        stderr(&check).contains("missing pack") && stderr(&check).contains("named by index/"),
        "{}",
        stderr(&check)
    );

    // The photo comes back: the backup must not dedup against the packs that are gone.
    std::fs::write(src.join("photo.raw"), &photo).unwrap();
    dev.json(&["backup", src.to_str().unwrap(), "--json"]);
    let out = dir.path().join("out");
    let restore = dev.run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert!(restore.status.success(), "{}", stderr(&restore));
    assert_eq!(std::fs::read(out.join("photo.raw")).unwrap(), photo);
    dev.json(&["repair", "index", "--json"]);
    let clean = dev.run(&["check", "--read-data"]);
    assert!(clean.status.success(), "{}", stderr(&clean));
}

#[test]
fn a_snapshot_dated_a_year_ahead_does_not_stay_latest() {
    let Some(faketime) = faketime() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Scene { laptop, src, .. } = two_snapshots(dir.path());
    // A device with a key (revoked later, or malicious) plants a snapshot with its clock
    // a year ahead.
    std::fs::write(src.join("doc.txt"), "planted").unwrap();
    let planted =
        laptop.cmd(faketime, &["-f", "+365d", ZEROK, "backup", src.to_str().unwrap(), "--json"]).output().unwrap();
    assert!(planted.status.success(), "{}", stderr(&planted));
    let check = laptop.run(&["check", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let warned =
        report["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("after the store wrote it"));
    assert!(warned, "{report}");
    // The next honest backup is latest, and forget keeps it.
    // (A second later than the store's write time of the planted one, which has 1 s steps.)
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(src.join("doc.txt"), "honest").unwrap();
    laptop.json(&["backup", src.to_str().unwrap(), "--json"]);
    laptop.json(&["forget", "--keep-last", "1", "--prune", "--json"]);
    let out = dir.path().join("out");
    assert!(laptop.run(&["restore", "latest", "--target", out.to_str().unwrap()]).status.success());
    assert_eq!(std::fs::read_to_string(out.join("doc.txt")).unwrap(), "honest");
}
