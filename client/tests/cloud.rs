//! Cloud backup mode as an app uses it, on a local-folder vault: snapshots after bursts of
//! activity, writes held off while a snapshot reads, retention, status and events, and a
//! device in a sync group whose snapshots record the group and its cursor.

use std::{sync::Arc, time::Duration};

use zerok_client::{
    Home,
    cloud::{CloudBackup, CloudBackupConfig, CloudEvent},
    sync::GroupState,
};
use zerok_vault::{InitOptions, Location, Progress, RestoreOptions, Retention, Vault};
use zerok_wire::RelayAddr;

const WAIT: Duration = Duration::from_secs(20);

async fn setup(dir: &std::path::Path) -> (Home, String, Vault) {
    let url = dir.join("vault").display().to_string();
    let created =
        Vault::init(Location::parse(&url).unwrap().open(&url).unwrap(), InitOptions::default()).await.unwrap();
    let home = Home::at(dir.join("home"));
    home.save_device_key(&created.vault.config().vault_id, &url, &created.device_key).unwrap();
    (home, url, created.vault)
}

async fn next_saved(events: &mut tokio::sync::broadcast::Receiver<CloudEvent>) -> CloudEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await.unwrap() {
                e @ (CloudEvent::Saved { .. } | CloudEvent::Failed { .. }) => return e,
                _ => continue,
            }
        }
    })
    .await
    .expect("a snapshot within the wait")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_follow_activity_wait_for_writers_and_keep_what_the_policy_says() {
    let dir = tempfile::tempdir().unwrap();
    let (home, url, vault) = setup(dir.path()).await;
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("db"), b"version 1").unwrap();

    // The device belongs to a sync group (relay not needed for a backup to record it).
    let relay_id = hex::encode(iroh::SecretKey::generate().public().as_bytes());
    let relay = RelayAddr::parse(&format!("{relay_id}@127.0.0.1:4433")).unwrap();
    let sync = home.sync();
    let secret = zerok_core::sync::GroupSecret::generate();
    let genesis = zerok_core::sync::roster::create_entry(secret.derive().id(), &sync.signing_key().unwrap(), "app");
    let mut group = GroupState::new(&secret, std::slice::from_ref(&relay), "app", vec![genesis]).unwrap();
    group.set_cursor(&relay.to_string(), 7);
    sync.save_group(&group).unwrap();

    let mut config = CloudBackupConfig::new(&url, vec![state.clone()]);
    config.interval = None;
    config.after_messages = Some(3);
    config.retention = Some(Retention::last(2));
    let backup = CloudBackup::enable(&home, config).await.unwrap();
    let mut events = backup.subscribe();

    backup.note_messages(2);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(backup.status().snapshots, 0, "below the activity threshold");
    assert_eq!(backup.status().messages_since, 2);
    backup.note_messages(1);
    let CloudEvent::Saved { snapshot, .. } = next_saved(&mut events).await else { panic!("snapshot failed") };
    let snap = vault.load_snapshot(&snapshot).await.unwrap();
    assert_eq!(snap.sync_cursors.get(&relay.to_string()), Some(&7));
    let stored = vault.load_sync_group(&snap.sync_group.unwrap()).await.unwrap();
    assert!(stored.relays == [relay.to_string()]);
    assert_eq!(
        stored.device_key.as_deref(),
        Some(&sync.device_key().unwrap().to_bytes()[..]),
        "restore takes its place"
    );
    assert!(stored.roster.is_some(), "with the roster log to anchor it");
    assert_eq!(backup.status().messages_since, 0);

    // A writer holds the guard: a snapshot waits for it, and sees the finished write.
    let guard = backup.write_guard().await;
    std::fs::write(state.join("db"), b"half-writ").unwrap();
    let b = Arc::new(backup);
    let pending = tokio::spawn({
        let b = b.clone();
        async move { b.snapshot_now().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!pending.is_finished(), "snapshot waits for the writer");
    std::fs::write(state.join("db"), b"version 2").unwrap();
    drop(guard);
    let second = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    let (_, latest) = vault.find_snapshot("latest").await.unwrap();
    let target = dir.path().join("restored");
    zerok_vault::restore(&vault, &latest, &RestoreOptions::new(target.clone()), Arc::new(Progress::default()))
        .await
        .unwrap();
    assert_eq!(std::fs::read(target.join("db")).unwrap(), b"version 2");
    assert_eq!(latest.tree, vault.load_snapshot(&second.snapshot_id).await.unwrap().tree);

    b.snapshot_now().await.unwrap();
    let ids: Vec<_> = vault.snapshots().await.unwrap().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 2, "retention keeps the last two");
    let status = b.status();
    assert_eq!((status.snapshots, status.enabled, status.running, status.last_error), (3, true, false, None));
    Arc::into_inner(b).unwrap().disable().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_and_a_missing_device_key_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (home, url, _) = setup(dir.path()).await;
    let mut config = CloudBackupConfig::new(&url, Vec::new());
    assert!(CloudBackup::enable(&home, config.clone()).await.is_err(), "no paths");
    config.paths = vec![dir.path().to_path_buf()];
    config.retention = Some(Retention::default());
    let err = CloudBackup::enable(&home, config.clone()).await.err().unwrap();
    assert!(err.to_string().contains("keep at least one"), "{err}");
    config.retention = None;
    let stranger = Home::at(dir.path().join("other-home"));
    assert!(CloudBackup::enable(&stranger, config).await.is_err(), "no key for this vault on that device");
}

/// Records the app's pauses and resumes; refuses to pause when told to.
#[derive(Default)]
struct App {
    calls: std::sync::Mutex<Vec<&'static str>>,
    refuse: std::sync::atomic::AtomicBool,
}

impl zerok_client::cloud::Quiesce for App {
    fn quiesce(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.calls.lock().unwrap().push("quiesce");
        match self.refuse.load(std::sync::atomic::Ordering::Relaxed) {
            true => Err("the app is busy".into()),
            false => Ok(()),
        }
    }
    fn resume(&self) {
        self.calls.lock().unwrap().push("resume");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_quiesce_callback_brackets_each_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (home, url, vault) = setup(dir.path()).await;
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("db"), b"state").unwrap();
    let app = Arc::new(App::default());
    let mut config = CloudBackupConfig::new(&url, vec![state.clone()]);
    config.interval = None;
    config.after_messages = None;
    config.quiesce = Some(zerok_client::cloud::QuiesceHook(app.clone()));
    let backup = CloudBackup::enable(&home, config).await.unwrap();
    backup.snapshot_now().await.unwrap();
    assert_eq!(*app.calls.lock().unwrap(), ["quiesce", "resume"]);

    // An app that cannot pause gets no snapshot, a Failed event, and is resumed.
    app.refuse.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut events = backup.subscribe();
    let err = backup.snapshot_now().await.unwrap_err();
    assert!(format!("{err:#}").contains("the app is busy"), "{err:#}");
    assert!(matches!(next_saved(&mut events).await, CloudEvent::Failed { .. }));
    assert_eq!(*app.calls.lock().unwrap(), ["quiesce", "resume", "quiesce", "resume"]);
    assert_eq!(vault.snapshots().await.unwrap().len(), 1);
    backup.disable().await;
}
