//! The new-device flow as an app calls it (`zerok_client::new_device`), with the app's state
//! in memory (a `MemoryStore`, as an app that keeps secrets in the OS keychain would): a
//! wrong recovery key writes nothing and says `WrongKey`; the right one restores the files,
//! hands every message after the snapshot's cursor to the app in order, and leaves the
//! device's keys in the app's store, not on disk; a stopped relay is `Unreachable`, retryable.

mod common;

use std::{path::Path, sync::Arc};

use zerok_client::{
    Error, Home, MemoryStore,
    new_device::{NewDeviceOptions, restore_new_device},
    sync::{SyncClient, create},
    vault_sync,
};
use zerok_core::RecoveryKey;
use zerok_vault::{BackupOptions, InitOptions, Location, Progress, Vault};

fn memory_home(root: &Path, name: &str) -> (Home, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    (Home::with_store(store.clone(), root.join(name).join("content")), store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_in_memory_is_restored_replayed_and_registered_and_a_wrong_key_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let relay = common::start_relay(&root.join("relay"), 0, |_| {}).await;
    let url = root.join("vault").display().to_string();
    let created =
        Vault::init(Location::parse(&url).unwrap().open(&url).unwrap(), InitOptions::default()).await.unwrap();
    let home_a = common::home(root, "a-home");
    let mut a = create(home_a.clone(), &[relay.addr()], "A").await.unwrap();
    let state = root.join("a-state");
    std::fs::create_dir_all(state.join("db")).unwrap();
    std::fs::write(state.join("db/notes.txt"), b"monday").unwrap();
    a.push(b"before the snapshot").await.unwrap();
    let mut opts = BackupOptions::new(vec![state.clone()]);
    vault_sync::record(&created.vault, &home_a, &mut opts).await.unwrap();
    zerok_vault::backup(&created.vault, opts, Arc::new(Progress::default())).await.unwrap();
    for text in ["after one", "after two"] {
        a.push(text.as_bytes()).await.unwrap();
    }
    a.disconnect().await;

    let (home, store) = memory_home(root, "n");
    let target = root.join("restored");
    let wrong =
        restore_new_device(&home, &url, &RecoveryKey::generate(), &target, &NewDeviceOptions::default(), |_| {
            panic!("nothing is replayed with a wrong key")
        })
        .await
        .unwrap_err();
    assert!(matches!(wrong, Error::WrongKey(_)), "{wrong}");
    assert!(!wrong.is_retryable());
    assert!(!target.exists(), "a wrong key writes nothing");
    assert!(store.snapshot().is_empty(), "nor keeps anything");

    let mut replayed = Vec::new();
    let options = NewDeviceOptions { device_name: "N".into(), ..NewDeviceOptions::default() };
    let done = restore_new_device(&home, &url, &created.recovery_key, &target, &options, |m| {
        replayed.push(m.data.clone());
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(std::fs::read(target.join("db/notes.txt")).unwrap(), b"monday");
    assert_eq!(replayed, [&b"after one"[..], b"after two"], "every message after the snapshot, in order");
    let replay = done.replay.unwrap();
    assert_eq!((replay.after, replay.done.messages, replay.missing), (1, 2, 0));
    assert!(!done.is_partial(), "{done:?}");
    assert!(!target.join(".zerok/replay").exists(), "no replay files unless asked for");

    // The device's keys went to the app's store, and they open the vault and the group.
    let held = store.snapshot();
    let vault_id = created.vault.config().vault_id;
    assert!(held.contains_key(&format!("vaults/{vault_id}.json")), "{:?}", held.keys());
    assert!(held.contains_key("sync/group.json") && held.contains_key("sync/device.key"));
    assert!(!root.join("n").join("sync").join("group.json").exists(), "no secret on disk");
    let again = Home::with_store(Arc::new(MemoryStore::from_snapshot(held).unwrap()), root.join("n/content"));
    assert_eq!(again.default_vault().as_deref(), Some(url.as_str()));
    let opened = zerok_client::unlock(&url, None, &again).await.unwrap();
    assert_eq!(opened.via, zerok_client::KeySource::Device);
    let mut n = SyncClient::connect(again.sync()).await.unwrap();
    assert!(n.pull().await.unwrap().is_empty(), "the cursor came back with the store");
    n.disconnect().await;

    // With the relay stopped, a restore of files succeeds as far as it can and says why
    // the rest did not: unreachable, worth trying again.
    relay.shutdown().await;
    let (cold, _) = memory_home(root, "cold");
    let err = restore_new_device(&cold, &url, &created.recovery_key, &root.join("cold-target"), &options, |_| Ok(()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable(_) | Error::Connection(_)), "{err}");
    assert!(err.is_retryable(), "{err}");
    assert_eq!(std::fs::read(root.join("cold-target/db/notes.txt")).unwrap(), b"monday");
}
