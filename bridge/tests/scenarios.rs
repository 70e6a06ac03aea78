//! The scenarios every binding must pass, here through the bridge itself: two handles pair
//! through a relay the test starts and exchange messages both ways, with events; one backs
//! a folder up to a vault; a third restores that folder and its messages from the recovery
//! key; a wrong key and a stopped relay give their named kinds. Each handle awaits from the
//! test's own runtime while its work runs on the handle's.

use std::{path::Path, time::Duration};

use zerok_bridge::{BackupSettings, Bridge, Config, ErrorKind, Event};
use zerok_relay::{Config as RelayConfig, Relay};

fn handle(root: &Path, name: &str) -> Bridge {
    Bridge::open(Config { state_dir: root.join(name), device_name: Some(name.into()) }).unwrap()
}

async fn relay(root: &Path) -> Relay {
    let mut c = RelayConfig::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.http.enabled = false;
    c.storage.data_dir = root.join("relay");
    Relay::start(c).await.unwrap()
}

/// The next event of `kind` (within 10 s).
async fn next_of(bridge: &Bridge, kind: &str) -> Event {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match bridge.next_event().await.unwrap() {
                Some(e) if e.kind == kind => return e,
                Some(_) => continue,
                None => panic!("the handle closed before a {kind} event"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} event within 10 s"))
}

#[test]
fn pair_exchange_back_up_restore_and_fail_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (a, b, c) = (handle(root, "a"), handle(root, "b"), handle(root, "c"));
    let state = root.join("a-state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("notes.db"), b"the state on monday").unwrap();
    let vault = root.join("vault").display().to_string();

    rt.block_on(async {
        let relay = relay(root).await;
        a.create_group(vec![relay.addr().to_string()]).await.unwrap();
        let invite = a.create_invite().await.unwrap();
        assert!(invite.url.starts_with("zerok://") && invite.expires_in_secs > 0);
        b.join_group(invite.url, None).await.unwrap();

        // Both ways, with events: B hears of A's message, A of its push.
        let pushed = a.push(b"hello from a".to_vec()).await.unwrap();
        assert_eq!(next_of(&a, "blob-pushed").await.blob_id, Some(pushed.blob_id.clone()));
        let heard = next_of(&b, "blob-available").await;
        assert_eq!(heard.cursor, Some(pushed.cursor));
        let got = b.pull().await.unwrap();
        assert_eq!(got.iter().map(|m| m.data.as_slice()).collect::<Vec<_>>(), [b"hello from a"]);
        b.push(b"hello from b".to_vec()).await.unwrap();
        next_of(&a, "blob-available").await;
        let got = a.pull().await.unwrap();
        assert!(got.iter().any(|m| m.data == b"hello from b"), "{got:?}");
        let status = a.status().await.unwrap();
        assert!(status.in_group && status.status == "connected", "{status:?}");

        // A mobile pause and resume: A disconnects within its budget, B's message waits at
        // the relay, and A's resume reconnects and brings it.
        a.on_pause(Duration::from_millis(500)).await.unwrap();
        assert_eq!(a.status().await.unwrap().status, "disconnected");
        b.push(b"while a slept".to_vec()).await.unwrap();
        let woke = a.on_resume().await.unwrap();
        assert_eq!(woke.iter().map(|m| m.data.as_slice()).collect::<Vec<_>>(), [b"while a slept"]);
        assert_eq!(a.status().await.unwrap().status, "connected");

        // A backs its folder up (the snapshot records the group and A's cursor).
        let recovery = a.create_vault(vault.clone()).await.unwrap();
        let settings = BackupSettings {
            vault: vault.clone(),
            paths: vec![state.clone()],
            interval_secs: None,
            after_messages: None,
        };
        a.enable_backup(settings).await.unwrap();
        let saved = a.backup_now().await.unwrap();
        assert_eq!(next_of(&a, "backup-saved").await.snapshot_id, Some(saved.snapshot_id.clone()));
        assert_eq!(a.backup_status().await.unwrap().last_snapshot, Some(saved.snapshot_id.clone()));
        b.push(b"after the snapshot".to_vec()).await.unwrap();

        // A wrong key: named, and nothing written.
        let target = root.join("restored");
        let other = zerok_core::RecoveryKey::generate().display();
        let wrong = c.restore_new_device(vault.clone(), other, target.clone(), None).await.unwrap_err();
        assert_eq!(wrong.kind, ErrorKind::WrongKey, "{wrong}");
        assert!(!target.exists());
        let typo = c.restore_new_device(vault.clone(), "not a key".into(), target.clone(), None).await.unwrap_err();
        assert_eq!(typo.kind, ErrorKind::WrongKey, "{typo}");

        // C becomes A: the folder, and the message pushed after the snapshot.
        let restored = c.restore_new_device(vault.clone(), recovery, target.clone(), None).await.unwrap();
        assert_eq!(restored.snapshot_id, Some(saved.snapshot_id));
        assert_eq!(std::fs::read(target.join("notes.db")).unwrap(), b"the state on monday");
        let replayed: Vec<&[u8]> = restored.messages.iter().map(|m| m.data.as_slice()).collect();
        assert_eq!(replayed, [b"after the snapshot"]);
        c.connect().await.unwrap();
        assert_eq!(c.status().await.unwrap().status, "connected");

        // The relay stops: a push fails as unreachable, worth retrying.
        c.disconnect().await.unwrap();
        relay.shutdown().await;
        let down = b.push(b"into the void".to_vec()).await.unwrap_err();
        assert_eq!((down.kind, down.retryable), (ErrorKind::Unreachable, true), "{down}");
        let cold = c.connect().await.unwrap_err();
        assert_eq!(cold.kind, ErrorKind::Unreachable, "{cold}");

        for h in [&a, &b, &c] {
            h.close().await.unwrap();
            assert_eq!(h.next_event().await.unwrap_err().kind, ErrorKind::Closed);
        }
    });
    drop((a, b, c));
}

#[test]
fn a_handle_dropped_unclosed_shuts_down_in_order_and_calls_after_close_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let a = handle(dir.path(), "a");
    rt.block_on(async {
        let relay = relay(dir.path()).await;
        a.create_group(vec![relay.addr().to_string()]).await.unwrap();
        let bad = a.create_group(vec!["not an address".into()]).await.unwrap_err();
        assert_eq!(bad.kind, ErrorKind::InvalidInput, "{bad}");
        // What is queued (the connection made at create) is read; a read that times out is
        // cancelled and takes nothing.
        while let Ok(got) = tokio::time::timeout(Duration::from_secs(1), a.next_event()).await {
            assert!(got.unwrap().is_some());
        }
        a.close().await.unwrap();
        assert_eq!(a.push(b"late".to_vec()).await.unwrap_err().kind, ErrorKind::Closed);
        // A handle that has nothing to report: its waiting reader ends at the close.
        let idle = handle(dir.path(), "idle");
        let pending = idle.next_event();
        idle.close().await.unwrap();
        let got = pending.await.unwrap();
        assert!(got.is_none(), "a waiting next_event ends when the handle closes; it gave {got:?}");
        relay.shutdown().await;
    });
    drop(a);
    let b = handle(dir.path(), "b");
    drop(b);
}

#[test]
fn sync_turned_off_stays_off_a_paused_handle_reconnects_to_push_and_bad_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (a, b) = (handle(dir.path(), "a"), handle(dir.path(), "b"));
    rt.block_on(async {
        let relay = relay(dir.path()).await;
        a.create_group(vec![relay.addr().to_string()]).await.unwrap();
        let invite = a.create_invite().await.unwrap();
        let shown = format!("{invite:?}");
        assert!(!shown.contains(&invite.url) && !shown.contains(&invite.code), "{shown}");
        b.join_group(invite.url, None).await.unwrap();

        // Paused (an iOS glance at Control Center, with no resume after it): a push
        // connects again and goes out.
        a.on_pause(Duration::from_millis(300)).await.unwrap();
        a.push(b"pushed while paused".to_vec()).await.unwrap();
        assert_eq!(a.status().await.unwrap().status, "connected");
        let got = b.pull().await.unwrap();
        assert_eq!(got.iter().map(|m| m.data.as_slice()).collect::<Vec<_>>(), [b"pushed while paused"]);

        // Turned off: no resume turns it on again, and nothing is pulled.
        a.disconnect().await.unwrap();
        b.push(b"while a was off".to_vec()).await.unwrap();
        assert!(!a.resume_connection().await.unwrap());
        assert!(a.on_resume().await.unwrap().is_empty());
        assert_eq!(a.status().await.unwrap().status, "disconnected");
        assert_eq!(a.push(b"x".to_vec()).await.unwrap_err().kind, ErrorKind::InvalidInput);
        a.connect().await.unwrap();
        let got = a.pull().await.unwrap();
        assert!(got.iter().any(|m| m.data == b"while a was off"), "{got:?}");

        let vault = dir.path().join("vault").display().to_string();
        a.create_vault(vault.clone()).await.unwrap();
        let every_second =
            BackupSettings { vault, paths: vec![dir.path().join("a")], interval_secs: Some(0), after_messages: None };
        let refused = a.enable_backup(every_second).await.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::InvalidInput, "{refused}");
        for h in [&a, &b] {
            h.close().await.unwrap();
        }
        relay.shutdown().await;
    });
}
