//! The lost-device story end to end on loopback: a vault and a vault-mode relay both on the
//! in-process S3 server. Device A syncs 100 messages, backing up its state after the 60th;
//! A is deleted; `zerok-restore` (a real process) with only the recovery key rebuilds A's
//! state plus the 40 later messages, takes A's place in the group under a key of its own,
//! and device C hears from it. Then the relay loses its local metadata and, restarted on
//! the same bucket, still serves the history and learns the roster again.

use std::{path::Path, process::Command, sync::Arc, time::Duration};

use serde_json::Value;
use zerok_client::{
    sync::{SyncClient, SyncHome, create, join},
    vault_sync,
};
use zerok_relay::{Config, Relay, StorageMode};
use zerok_testkit::S3Server;
use zerok_vault::{Backend, BackupOptions, InitOptions, Progress, Vault};

mod common;

use common::tree;

const RESTORE: &str = env!("CARGO_BIN_EXE_zerok-restore");

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_relay(data: &Path, port: u16, s3: &S3Server) -> Relay {
    let mut c = Config::default();
    c.server.listen = format!("127.0.0.1:{port}").parse().unwrap();
    c.http.enabled = false;
    c.storage.data_dir = data.to_path_buf();
    c.storage.mode = StorageMode::Vault;
    c.storage.object_store = Some("s3://relay/archive".into());
    c.limits.messages_per_minute = 10_000;
    for _ in 0..50 {
        let backend = Backend::new(s3.store("relay"), "archive", "s3://relay/archive");
        match Relay::start_on(c.clone(), Some(backend)).await {
            Ok(relay) => return relay,
            Err(zerok_relay::Error::Wire(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("relay start: {e}"),
        }
    }
    panic!("port {port} stayed busy");
}

/// The app's state after applying messages `1..=n`: a log and a counter file.
fn write_state(dir: &Path, n: u32) {
    std::fs::create_dir_all(dir.join("db")).unwrap();
    let log: String = (1..=n).map(|i| format!("message {i}\n")).collect();
    std::fs::write(dir.join("db/log.txt"), log).unwrap();
    std::fs::write(dir.join("count"), n.to_string()).unwrap();
}

fn message(i: u32) -> Vec<u8> {
    format!("message {i}: {}", "x".repeat(i as usize % 97)).into_bytes()
}

fn restore(s3: &S3Server, home: &Path, recovery: &str, args: &[&str]) -> std::process::Output {
    Command::new(RESTORE)
        .args(["--vault", "s3://vaults/alice"])
        .args(args)
        .envs(s3.env())
        .env("ZEROK_HOME", home)
        .env("ZEROK_RECOVERY_KEY", recovery)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_device_comes_back_with_state_and_later_messages_and_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("s3")).unwrap();
    let s3 = S3Server::start(&root.join("s3")).await;
    let port = free_udp_port();
    let relay = start_relay(&root.join("relay"), port, &s3).await;
    let addr = relay.addr();

    let created = Vault::init(Backend::new(s3.store("vaults"), "alice", "s3://vaults/alice"), InitOptions::default())
        .await
        .unwrap();
    let recovery = created.recovery_key.display();
    let home_a = SyncHome::new(&root.join("a-home"));
    let mut a = create(home_a.clone(), std::slice::from_ref(&addr), "A").await.unwrap();
    let (invite, _) = a.invite().await.unwrap();
    let mut c = join(SyncHome::new(&root.join("c-home")), &invite, None, "C").await.unwrap();

    let state = root.join("a-state");
    let mut at_backup = Vec::new();
    for i in 1..=100u32 {
        let (_, cursor) = a.push(&message(i)).await.unwrap();
        assert_eq!(cursor, u64::from(i));
        write_state(&state, i);
        if i == 60 {
            let mut opts = BackupOptions::new(vec![state.clone()]);
            vault_sync::record(&created.vault, &home_a, &mut opts).await.unwrap();
            assert_eq!(opts.sync_cursors.get(&addr.to_string()), Some(&60), "A's own pushes are in its state");
            zerok_vault::backup(&created.vault, opts, Arc::new(Progress::default())).await.unwrap();
            at_backup = tree(&state);
        }
    }
    // Then a photo, archived by the vault relay before A goes.
    let photo = zerok_testkit::random_bytes(7, 3 << 20);
    let sent = a.push_content(photo.clone(), "image/png").await.unwrap();
    assert_eq!(a.wait_archived(&sent.hash, Duration::from_secs(30)).await.unwrap(), 1);
    assert_eq!(c.pull().await.unwrap().len(), 101);
    let a_id = a.device_id();
    a.disconnect().await;
    std::fs::remove_dir_all(root.join("a-home")).unwrap();
    std::fs::remove_dir_all(&state).unwrap();

    // A wrong key is refused and writes nothing.
    let target = root.join("restored");
    let home_n = root.join("new-home");
    let wrong = zerok_core::RecoveryKey::generate().display();
    let out = restore(&s3, &home_n, &wrong, &["--target", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!target.exists());

    // A dry run shows the plan and writes nothing.
    let out = restore(&s3, &home_n, &recovery, &["--target", target.to_str().unwrap(), "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((plan["replay_after_cursor"].as_u64(), plan["files"].as_u64()), (Some(60), Some(2)));
    assert!(!target.exists());

    let out = restore(&s3, &home_n, &recovery, &["--target", target.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["messages_replayed"], 41, "{summary}");
    assert_eq!(summary["last_cursor"], 101);
    assert_eq!((summary["attachments_restored"].as_u64(), summary["attachments_missing"].as_u64()), (Some(1), Some(0)));
    let kept = target.join(".zerok/content").join(sent.hash.to_string());
    assert_eq!(std::fs::read(&kept).unwrap(), photo, "the attachment comes back from the vault relay");
    let about: Value =
        serde_json::from_slice(&std::fs::read(target.join(format!(".zerok/replay/{:020}.content.json", 101))).unwrap())
            .unwrap();
    assert_eq!(
        (about["content"].as_str(), about["mime"].as_str()),
        (Some(sent.hash.to_string().as_str()), Some("image/png"))
    );
    assert_eq!(summary["files_restored"], 2);
    let mut restored = tree(&target);
    let mut replayed: Vec<(String, Vec<u8>)> =
        restored.extract_if(.., |(name, _)| name.starts_with(".zerok")).collect();
    replayed.retain(|(name, _)| name.ends_with(".msg"));
    assert_eq!(restored, at_backup, "the state as it was at the backup");
    let mut expected: Vec<(String, Vec<u8>)> =
        (61..=100u32).map(|i| (format!(".zerok/replay/{i:020}.msg"), message(i))).collect();
    expected.push((format!(".zerok/replay/{:020}.msg", 101), Vec::new()));
    assert_eq!(replayed, expected, "every later message, decrypted, in cursor order");

    // A non-empty target is refused without --force.
    let out = restore(&s3, &root.join("other-home"), &recovery, &["--target", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));

    // The new device took A's place under a key of its own (A's old key is removed, the
    // group rotated): what it pushes reaches C, in the group C followed it to.
    let mut n = SyncClient::connect(SyncHome::new(&home_n)).await.unwrap();
    assert_ne!(n.device_id(), a_id);
    let (_, cursor) = n.push(b"hello from the new device").await.unwrap();
    // Cursor 1 of the group the restore rotated to is its acknowledgement of the photo.
    assert_eq!(cursor, 2, "the first app message of the group the restore rotated to");
    let got = c.pull().await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].data.as_slice(), got[0].sender), (&b"hello from the new device"[..], n.device_id()));
    n.disconnect().await;
    c.disconnect().await;

    // The relay loses its local metadata (roster included); restarted on the same bucket it
    // serves the history again, learns the roster from the first member to connect, and the
    // next push does not reuse a cursor.
    relay.shutdown().await;
    std::fs::remove_file(root.join("relay").join(zerok_relay::STORE_FILE)).unwrap();
    let relay = start_relay(&root.join("relay"), port, &s3).await;
    assert_eq!(relay.addr(), addr);
    let mut c = SyncClient::connect(SyncHome::new(&root.join("c-home"))).await.unwrap();
    let (invite, _) = c.invite().await.unwrap();
    let mut f = join(SyncHome::new(&root.join("fresh-home")), &invite, None, "F").await.unwrap();
    c.disconnect().await;
    let all = f.pull().await.unwrap();
    assert_eq!(
        all.iter().map(|m| (m.cursor, m.data.clone())).collect::<Vec<_>>(),
        [(2, b"hello from the new device".to_vec())]
    );
    assert_eq!(f.push(b"after the rebuild").await.unwrap().1, 3);
    f.disconnect().await;

    // A's snapshot cannot bring A's old identity back: it was replaced.
    let snapshot = summary["snapshot_id"].as_str().unwrap();
    let out = restore(
        &s3,
        &root.join("home-3"),
        &recovery,
        &["--target", root.join("t3").to_str().unwrap(), "--snapshot", snapshot],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("revoked"), "{}", String::from_utf8_lossy(&out.stderr));

    // The restored device backs up in turn; a restore of that snapshot replays what came
    // after it and takes the restored device's place.
    let mut opts = BackupOptions::new(vec![target.clone()]);
    vault_sync::record(&created.vault, &SyncHome::new(&home_n), &mut opts).await.unwrap();
    assert_eq!(opts.sync_cursors.get(&addr.to_string()), Some(&2));
    zerok_vault::backup(&created.vault, opts, Arc::new(Progress::default())).await.unwrap();
    let out = restore(&s3, &root.join("home-4"), &recovery, &["--target", root.join("t4").to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((summary["messages_replayed"].as_u64(), summary["last_cursor"].as_u64()), (Some(1), Some(3)));
    relay.shutdown().await;
}
