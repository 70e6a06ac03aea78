//! What `zerok-restore` replays after the snapshot's cursor: a device rebuilt from a
//! snapshot taken *before* a rotation takes the backed-up device's place, follows the
//! rotation, replays the old group's messages up to it, then the new group's (a vault-mode
//! relay keeps both histories), and replaces the old identity with its own; and a replay
//! whose messages the relay no longer holds says how many are gone and exits 3.

use std::{path::Path, process::Command, sync::Arc};

use serde_json::Value;
use zerok_client::{
    sync::{SyncClient, SyncHome, create, join},
    vault_sync,
};
use zerok_relay::{Config, Relay, StorageMode};
use zerok_vault::{BackupOptions, InitOptions, Location, Progress, Vault};

const RESTORE: &str = env!("CARGO_BIN_EXE_zerok-restore");

async fn vault_relay(root: &Path) -> Relay {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.http.enabled = false;
    c.storage.data_dir = root.join("relay");
    c.storage.mode = StorageMode::Vault;
    c.storage.object_store = Some(root.join("archive").display().to_string());
    Relay::start(c).await.unwrap()
}

/// Runs `zerok-restore --json` into `target` as a new device (home `root/n-home`).
fn restore_into(root: &Path, url: &str, recovery: &str, target: &Path) -> std::process::Output {
    Command::new(RESTORE)
        .args(["--vault", url, "--target", target.to_str().unwrap(), "--json"])
        .env("ZEROK_HOME", root.join("n-home"))
        .env("ZEROK_RECOVERY_KEY", recovery)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_from_before_a_rotation_ends_in_the_current_group_with_a_whole_replay() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let relay = vault_relay(root).await;
    let addr = relay.addr();
    let url = root.join("vault").display().to_string();
    let created =
        Vault::init(Location::parse(&url).unwrap().open(&url).unwrap(), InitOptions::default()).await.unwrap();
    let recovery = created.recovery_key.display();

    let home_a = SyncHome::new(&root.join("a-home"));
    let mut a = create(home_a.clone(), std::slice::from_ref(&addr), "A").await.unwrap();
    let (invite, _) = a.invite().await.unwrap();
    let b = join(SyncHome::new(&root.join("b-home")), &invite, None, "B").await.unwrap();
    let (invite, _) = a.invite().await.unwrap();
    let mut c = join(SyncHome::new(&root.join("c-home")), &invite, None, "C").await.unwrap();

    let state = root.join("a-state");
    std::fs::create_dir_all(&state).unwrap();
    for i in 1..=5u8 {
        a.push(format!("old {i}").as_bytes()).await.unwrap();
        std::fs::write(state.join("count"), [i]).unwrap();
        if i == 3 {
            let mut opts = BackupOptions::new(vec![state.clone()]);
            vault_sync::record(&created.vault, &home_a, &mut opts).await.unwrap();
            zerok_vault::backup(&created.vault, opts, Arc::new(Progress::default())).await.unwrap();
        }
    }
    let a_id = a.device_id();
    a.disconnect().await;
    std::fs::remove_dir_all(root.join("a-home")).unwrap();

    // While A is gone, C revokes B: the group moves to a new secret and carries on.
    c.revoke(b.device_id(), true).await.unwrap();
    c.push(b"new 1").await.unwrap();
    c.push(b"new 2").await.unwrap();

    let target = root.join("restored");
    let out = restore_into(root, &url, &recovery, &target);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["messages_replayed"], 4, "{summary}");
    assert_eq!(summary["last_cursor"], 2, "the new group's cursor");
    let replay = target.join(".zerok/replay");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&replay)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    let expected: Vec<(String, Vec<u8>)> = [(4, "old 4"), (5, "old 5"), (6, "new 1"), (7, "new 2")]
        .map(|(n, m)| (format!("{n:020}.msg"), m.as_bytes().to_vec()))
        .to_vec();
    assert_eq!(files, expected, "old group after the snapshot, then the new group, in order");

    // The restored device took A's place under a key of its own and removed A's old key
    // (a lost laptop's copy of it is cut off); C follows and hears from it.
    let mut n = SyncClient::connect(SyncHome::new(&root.join("n-home"))).await.unwrap();
    assert_ne!(n.device_id(), a_id);
    n.push(b"A is back").await.unwrap();
    let got = c.pull().await.unwrap();
    assert_eq!(got.last().map(|m| (m.data.as_slice(), m.sender)), Some((&b"A is back"[..], n.device_id())));
    let devices = c.list_devices().await.unwrap();
    let old = devices.iter().find(|d| d.device_id == a_id).unwrap();
    assert!(old.revoked && old.removed_by == Some(n.device_id()), "{old:?}");
    assert!(devices.iter().any(|d| d.device_id == n.device_id() && d.added_by == a_id && !d.revoked));
    n.disconnect().await;
    c.disconnect().await;
    relay.shutdown().await;
}

/// A transit relay, a vault, and device A alone in a new group.
async fn transit_scene(root: &Path) -> (Relay, String, zerok_vault::Created, SyncHome, SyncClient) {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.http.enabled = false;
    c.storage.data_dir = root.join("relay");
    let relay = Relay::start(c).await.unwrap();
    let url = root.join("vault").display().to_string();
    let created =
        Vault::init(Location::parse(&url).unwrap().open(&url).unwrap(), InitOptions::default()).await.unwrap();
    let home_a = SyncHome::new(&root.join("a-home"));
    let a = create(home_a.clone(), &[relay.addr()], "A").await.unwrap();
    (relay, url, created, home_a, a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_gone_from_the_relay_are_counted_and_exit_3_with_the_state_restored() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (relay, url, created, home_a, mut a) = transit_scene(root).await;
    let state = root.join("a-state");
    std::fs::create_dir_all(&state).unwrap();
    let mut pushed = Vec::new();
    for i in 1..=6u8 {
        pushed.push(a.push(format!("msg {i}").as_bytes()).await.unwrap().0);
        std::fs::write(state.join("count"), [i]).unwrap();
        if i == 2 {
            let mut opts = BackupOptions::new(vec![state.clone()]);
            vault_sync::record(&created.vault, &home_a, &mut opts).await.unwrap();
            zerok_vault::backup(&created.vault, opts, Arc::new(Progress::default())).await.unwrap();
        }
    }
    // Messages 3 and 4 leave the transit relay before the restore (expired, or deleted).
    for blob in &pushed[2..4] {
        a.force_delete(*blob).await.unwrap();
    }
    a.disconnect().await;
    std::fs::remove_dir_all(root.join("a-home")).unwrap();

    let target = root.join("restored");
    let out = restore_into(root, &url, &created.recovery_key.display(), &target);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("2 sync message(s) after cursor 2 are gone"), "{err}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((summary["messages_replayed"].as_u64(), summary["messages_missing"].as_u64()), (Some(2), Some(2)));
    assert_eq!(std::fs::read(target.join("count")).unwrap(), [2], "the snapshot's state is restored");
    let replayed: Vec<String> = std::fs::read_dir(target.join(".zerok/replay"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(replayed.len(), 2, "{replayed:?}");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zerok_symlink_in_the_snapshot_cannot_steer_the_replay_outside_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (relay, url, created, home_a, mut a) = transit_scene(root).await;
    // The backed-up state holds `.zerok` as a symlink to a folder outside any target.
    let outside = root.join("outside");
    std::fs::create_dir_all(outside.join("replay")).unwrap();
    let state = root.join("a-state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("data"), b"state").unwrap();
    std::os::unix::fs::symlink(&outside, state.join(".zerok")).unwrap();
    let mut opts = BackupOptions::new(vec![state.clone()]);
    vault_sync::record(&created.vault, &home_a, &mut opts).await.unwrap();
    zerok_vault::backup(&created.vault, opts, Arc::new(Progress::default())).await.unwrap();
    a.push(b"after the backup").await.unwrap();
    a.disconnect().await;

    let target = root.join("restored");
    let out = restore_into(root, &url, &created.recovery_key.display(), &target);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_dir(outside.join("replay")).unwrap().count(), 0, "nothing written outside the target");
    assert!(std::fs::symlink_metadata(target.join(".zerok")).unwrap().is_dir(), ".zerok is a real folder");
    assert_eq!(std::fs::read(target.join(".zerok/replay/00000000000000000001.msg")).unwrap(), b"after the backup");
    assert_eq!(std::fs::read(target.join("data")).unwrap(), b"state");
    relay.shutdown().await;
}
