//! [`Bridge`]: the handle a binding holds. Every method returns a `Send + 'static` future
//! that runs its work on the handle's own runtime, so a binding awaits it from whatever
//! executor it has (asyncio through pyo3's, Node's through napi's) without sharing one.

use std::{
    future::Future,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Mutex, broadcast, watch};
use zeroize::Zeroizing;
use zerok_client::{
    Home,
    cloud::{CloudBackup, CloudBackupConfig},
    new_device::{NewDeviceOptions, restore_new_device},
    sync::{INVITE_SECS, SyncClient},
};
use zerok_core::{RecoveryKey, sync::message::PushPlatform};
use zerok_vault::{InitOptions, Location, Vault};
use zerok_wire::RelayAddr;

use crate::{
    BackupReport, BackupSettings, BackupStatus, BridgeError, ErrorKind, Event, InviteInfo, Message, Pulled, Pushed,
    Restored, SyncStatus, event::status_words,
};

/// Where the device keeps its state, and what it is called.
#[derive(Clone, Debug)]
pub struct Config {
    /// The device's state folder (created 0700; its files 0600): keys, group, cursors,
    /// outbox. One folder per device.
    pub state_dir: PathBuf,
    /// Its name in the sync group and on its vault key slot (default: the host name).
    pub device_name: Option<String>,
}

/// Events kept for an app that reads them late (older ones are dropped first).
const EVENT_BUFFER: usize = 1024;

/// Longest a [`Bridge`] dropped unclosed waits to close (backup, then sync).
const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// Longest a dropped [`Bridge`] then waits for its runtime's tasks.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// One device: its sync client, its cloud backup and its restores, on a runtime of its own.
pub struct Bridge {
    runtime: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").field("closed", &self.shared.closed.load(Ordering::Relaxed)).finish()
    }
}

struct Shared {
    home: Home,
    device_name: String,
    sync: Mutex<Option<SyncClient>>,
    backup: Mutex<Option<CloudBackup>>,
    events: broadcast::Sender<Event>,
    inbox: Mutex<broadcast::Receiver<Event>>,
    closed: AtomicBool,
    closing: watch::Sender<bool>,
    /// Sync was disconnected by [`Bridge::on_pause`].
    paused: AtomicBool,
    /// Sync was turned off by [`Bridge::disconnect`]: a resume leaves it off.
    disabled: AtomicBool,
    /// Held across each change of connection (create, join, connect, disconnect, pause,
    /// resume, restore), so two never interleave: a resume during a pause's flush would
    /// otherwise connect a second client on the same state.
    changing: Mutex<()>,
}

/// The shortest backup interval taken: a snapshot every few seconds would run up the
/// store's bill and the battery (backup_now is there for more).
const MIN_INTERVAL_SECS: u64 = 60;

fn closed() -> BridgeError {
    BridgeError::new(ErrorKind::Closed, "the handle was closed")
}

fn no_group() -> BridgeError {
    BridgeError::new(ErrorKind::InvalidInput, "not connected to a sync group: create, join or connect first")
}

fn relay_list(relays: &[String]) -> Result<Vec<RelayAddr>, BridgeError> {
    relays
        .iter()
        .map(|r| {
            RelayAddr::parse(r).map_err(|e| BridgeError::new(ErrorKind::InvalidInput, format!("relay {r:?}: {e}")))
        })
        .collect()
}

impl Shared {
    /// Takes `client` as this device's sync client, its events joining the stream (with
    /// the connections it made before anyone listened); a client made while the handle
    /// closed is disconnected instead.
    async fn install(&self, client: SyncClient) -> Result<(), BridgeError> {
        let mut sync = self.sync.lock().await;
        if self.closed.load(Ordering::Relaxed) {
            drop(sync);
            client.disconnect().await;
            return Err(closed());
        }
        forward(client.subscribe(), self.events.clone(), Event::from_sync);
        for (relay, _) in client.status().into_iter().filter(|(_, open)| *open) {
            let _ = self.events.send(Event { kind: "connected", relay: Some(relay), ..Event::default() });
        }
        let (words, attempt) = status_words(client.connection_status());
        let _ =
            self.events.send(Event { kind: "status-changed", status: Some(words.into()), attempt, ..Event::default() });
        if let Some(backup) = &*self.backup.lock().await {
            backup.watch(&client);
        }
        if let Some(old) = sync.replace(client) {
            old.disconnect().await;
        }
        self.paused.store(false, Ordering::Relaxed);
        self.disabled.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Reconnects when sync was connected before a pause (or this device is in a group
    /// and sync was not turned off); `true` when connected. Call it holding `changing`.
    async fn resume(&self) -> Result<bool, BridgeError> {
        if self.sync.lock().await.is_some() {
            return Ok(true);
        }
        if self.disabled.load(Ordering::Relaxed)
            || (!self.paused.load(Ordering::Relaxed) && !self.home.sync().has_group())
        {
            return Ok(false);
        }
        let client = SyncClient::connect(self.home.sync()).await?;
        self.install(client).await?;
        Ok(true)
    }

    /// The sync client's slot, connected again first when a pause left it empty (an iOS
    /// app paused by a glance at Control Center gets no resume when it comes back).
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<SyncClient>>, BridgeError> {
        if self.paused.load(Ordering::Relaxed) {
            let _changing = self.changing.lock().await;
            self.resume().await?;
        }
        Ok(self.sync.lock().await)
    }

    async fn close(&self) {
        // Set under the sync lock: a client being installed sees it.
        let sync = self.sync.lock().await;
        self.closed.store(true, Ordering::Relaxed);
        drop(sync);
        // Stored even when nobody listens yet: a next_event that subscribes later sees it.
        self.closing.send_replace(true);
        if let Some(backup) = self.backup.lock().await.take() {
            backup.disable().await;
        }
        if let Some(client) = self.sync.lock().await.take() {
            client.disconnect().await;
        }
    }
}

/// Stops a task when its caller stops waiting for it.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Copies `rx`'s events, mapped by `map`, into the bridge's stream until `rx` closes.
fn forward<E: Clone + Send + 'static>(
    mut rx: broadcast::Receiver<E>,
    out: broadcast::Sender<Event>,
    map: fn(&E) -> Option<Event>,
) {
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    if let Some(event) = map(&e) {
                        let _ = out.send(event);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let message = format!("{n} events were dropped (the app read them too slowly)");
                    let _ = out.send(Event { kind: "error", message: Some(message), ..Event::default() });
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

impl Bridge {
    /// A handle for the device whose state is in `config.state_dir`.
    ///
    /// # Errors
    /// [`ErrorKind::Other`] when the runtime cannot start.
    pub fn open(config: Config) -> Result<Self, BridgeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("zerok")
            .enable_all()
            .build()
            .map_err(|e| BridgeError::new(ErrorKind::Other, format!("cannot start a runtime: {e}")))?;
        let (events, inbox) = broadcast::channel(EVENT_BUFFER);
        let shared = Arc::new(Shared {
            home: Home::at(config.state_dir),
            device_name: config.device_name.unwrap_or_else(zerok_vault::hostname),
            sync: Mutex::new(None),
            backup: Mutex::new(None),
            events,
            inbox: Mutex::new(inbox),
            closed: AtomicBool::new(false),
            closing: watch::channel(false).0,
            paused: AtomicBool::new(false),
            disabled: AtomicBool::new(false),
            changing: Mutex::new(()),
        });
        Ok(Self { runtime: Some(runtime), shared })
    }

    /// Runs `work` on the handle's runtime; dropping the returned future cancels it (a pull
    /// cancelled midway may have moved its cursor: [`Bridge::pull_after`] reads again).
    fn run<T, F, W>(&self, work: W) -> impl Future<Output = Result<T, BridgeError>> + 'static + use<T, F, W>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, BridgeError>> + Send + 'static,
        W: FnOnce(Arc<Shared>) -> F,
    {
        let shared = self.shared.clone();
        let spawned = match (&self.runtime, shared.closed.load(Ordering::Relaxed)) {
            (Some(rt), false) => Some(rt.spawn(work(shared))),
            _ => None,
        };
        async move {
            let task = spawned.ok_or_else(closed)?;
            // Dropping the call (a timeout on the app's side) stops its work, so nothing it
            // would have delivered is taken and thrown away.
            let _cancel = AbortOnDrop(task.abort_handle());
            task.await.map_err(|e| BridgeError::new(ErrorKind::Other, format!("the call did not finish: {e}")))?
        }
    }

    /// Creates a sync group with this device as its first member, at `relays`
    /// (`ENDPOINT_ID@IP:PORT`, the first one primary), and connects.
    pub fn create_group(
        &self,
        relays: Vec<String>,
    ) -> impl Future<Output = Result<(), BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let relays = relay_list(&relays)?;
            let _changing = s.changing.lock().await;
            let client = zerok_client::sync::create(s.home.sync(), &relays, &s.device_name).await?;
            s.install(client).await
        })
    }

    /// Joins a group from an invite URL, or a short code looked up at `relay`, and connects.
    pub fn join_group(
        &self,
        invite: String,
        relay: Option<String>,
    ) -> impl Future<Output = Result<(), BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let relay = relay.map(|r| relay_list(&[r])).transpose()?.and_then(|mut r| r.pop());
            let _changing = s.changing.lock().await;
            let client = zerok_client::sync::join(s.home.sync(), &invite, relay.as_ref(), &s.device_name).await?;
            s.install(client).await
        })
    }

    /// Connects to this device's group (after a restart of the app); nothing when connected.
    pub fn connect(&self) -> impl Future<Output = Result<(), BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let _changing = s.changing.lock().await;
            if s.sync.lock().await.is_some() {
                return Ok(());
            }
            let client = SyncClient::connect(s.home.sync()).await?;
            s.install(client).await
        })
    }

    /// Lets pushes under way finish, then closes the connections (the group stays); sync
    /// stays off through pauses and resumes until connected again.
    pub fn disconnect(&self) -> impl Future<Output = Result<(), BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let _changing = s.changing.lock().await;
            s.disabled.store(true, Ordering::Relaxed);
            s.paused.store(false, Ordering::Relaxed);
            if let Some(client) = s.sync.lock().await.take() {
                client.disconnect().await;
            }
            Ok(())
        })
    }

    /// The app goes to the background (a mobile OS suspends it soon): sends what waits in
    /// the outbox within `budget`, then disconnects; what did not go stays queued for
    /// [`Bridge::on_resume`]. Never takes much longer than `budget` plus the closing. A
    /// push or pull while paused connects again first (a resume may never come: iOS pauses
    /// an app for a glance at Control Center and resumes it only from the background).
    pub fn on_pause(&self, budget: Duration) -> impl Future<Output = Result<(), BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let _changing = s.changing.lock().await;
            let Some(mut client) = s.sync.lock().await.take() else { return Ok(()) };
            s.paused.store(true, Ordering::Relaxed);
            if let Ok(Err(e)) = tokio::time::timeout(budget, client.flush()).await {
                tracing::debug!(error = %e, "pushes left queued at pause");
            }
            client.disconnect().await;
            Ok(())
        })
    }

    /// The app is back in the foreground (or a push notification woke it): reconnects when
    /// it was connected before [`Bridge::on_pause`] (queued pushes go out), and pulls.
    pub fn on_resume(&self) -> impl Future<Output = Result<Vec<Message>, BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let connected = {
                let _changing = s.changing.lock().await;
                s.resume().await?
            };
            if !connected {
                return Ok(Vec::new());
            }
            let mut sync = s.client().await?;
            let got = sync.as_mut().ok_or_else(no_group)?.pull().await?;
            Ok(got.iter().map(Message::from).collect())
        })
    }

    /// [`Bridge::on_resume`] without the pull, for a host that resumes the handle on its
    /// own (a Tauri app's lifecycle event) and leaves pulling to the app, so no message is
    /// taken where nobody reads it. `true` when sync is connected.
    pub fn resume_connection(&self) -> impl Future<Output = Result<bool, BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let _changing = s.changing.lock().await;
            s.resume().await
        })
    }

    /// Registers the app's push token (`platform` `apns` or `fcm`; `app_id` the APNs bundle
    /// id) at the group's relays, so a relay wakes this device with a silent push when a
    /// message arrives while it is offline (the wake says nothing of the group; the app
    /// calls [`Bridge::on_resume`]).
    pub fn register_push_token(
        &self,
        token: String,
        platform: String,
        app_id: Option<String>,
    ) -> impl Future<Output = Result<(), BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let platform = match platform.as_str() {
                "apns" => PushPlatform::Apns,
                "fcm" => PushPlatform::Fcm,
                other => {
                    let message = format!("push platform {other:?}: give apns or fcm");
                    return Err(BridgeError::new(ErrorKind::InvalidInput, message));
                }
            };
            let mut sync = s.client().await?;
            let client = sync.as_mut().ok_or_else(no_group)?;
            Ok(client.register_push_token(&token, platform, app_id.as_deref()).await?)
        })
    }

    /// An invite for another device (one device, once, for 10 minutes).
    pub fn create_invite(&self) -> impl Future<Output = Result<InviteInfo, BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let mut sync = s.client().await?;
            let (url, code) = sync.as_mut().ok_or_else(no_group)?.invite().await?;
            Ok(InviteInfo { url, code: code.to_string(), expires_in_secs: INVITE_SECS })
        })
    }

    /// Encrypts, signs and pushes `data` to the group.
    pub fn push(&self, data: Vec<u8>) -> impl Future<Output = Result<Pushed, BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let mut sync = s.client().await?;
            let (blob_id, cursor) = sync.as_mut().ok_or_else(no_group)?.push(&data).await?;
            Ok(Pushed { blob_id: blob_id.to_string(), cursor })
        })
    }

    /// Everything new since the last pull, in order.
    pub fn pull(&self) -> impl Future<Output = Result<Vec<Message>, BridgeError>> + Send + 'static + use<> {
        let page = self.pull_page();
        async move { Ok(page.await?.messages) }
    }

    /// [`Bridge::pull`], with whether more wait and the cursor reached.
    pub fn pull_page(&self) -> impl Future<Output = Result<Pulled, BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let mut sync = s.client().await?;
            let client = sync.as_mut().ok_or_else(no_group)?;
            let got = client.pull().await?;
            let messages = got.iter().map(Message::from).collect();
            Ok(Pulled { messages, has_more: client.has_more(), last_cursor: client.last_cursor() })
        })
    }

    /// The group's messages after `cursor`, read again (the saved cursor stays).
    pub fn pull_after(
        &self,
        cursor: u64,
    ) -> impl Future<Output = Result<Vec<Message>, BridgeError>> + Send + 'static + use<> {
        let page = self.pull_after_page(cursor);
        async move { Ok(page.await?.messages) }
    }

    /// [`Bridge::pull_after`], with whether more wait and the cursor the read reached (read
    /// on from there while `has_more`).
    pub fn pull_after_page(
        &self,
        cursor: u64,
    ) -> impl Future<Output = Result<Pulled, BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let mut sync = s.client().await?;
            let client = sync.as_mut().ok_or_else(no_group)?;
            let (got, reached) = client.pull_after(cursor).await?;
            let messages = got.iter().map(Message::from).collect();
            Ok(Pulled { messages, has_more: client.has_more(), last_cursor: reached })
        })
    }

    /// Where sync stands.
    pub fn status(&self) -> impl Future<Output = Result<SyncStatus, BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let sync = s.sync.lock().await;
            let in_group = s.home.sync().has_group();
            let Some(client) = sync.as_ref() else {
                let status = "disconnected".to_string();
                return Ok(SyncStatus { in_group, status, attempt: None, last_cursor: 0, device_id: None });
            };
            let (words, attempt) = status_words(client.connection_status());
            Ok(SyncStatus {
                in_group,
                status: words.into(),
                attempt,
                last_cursor: client.last_cursor(),
                device_id: Some(client.device_id().to_string()),
            })
        })
    }

    /// Creates a vault at `url` and keeps this device's key to it; returns the recovery
    /// key, for the user to write down (shown once: the only way in without a device).
    pub fn create_vault(
        &self,
        url: String,
    ) -> impl Future<Output = Result<String, BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let backend = Location::parse(&url)?.open(&url)?;
            let created = Vault::init(backend, InitOptions::default()).await?;
            s.home.save_device_key(&created.vault.config().vault_id, &url, &created.device_key)?;
            s.home.set_default_vault(&url)?;
            Ok(created.recovery_key.display())
        })
    }

    /// Turns cloud backup on: the folders are snapshotted to the vault on the schedule, after
    /// bursts of sync activity and on [`Bridge::backup_now`]. The device must hold a key to
    /// the vault ([`Bridge::create_vault`], or a restore).
    pub fn enable_backup(
        &self,
        settings: BackupSettings,
    ) -> impl Future<Output = Result<(), BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let mut config = CloudBackupConfig::new(settings.vault, settings.paths);
            if let Some(secs) = settings.interval_secs {
                if secs < MIN_INTERVAL_SECS {
                    let message = format!("backup interval {secs} s: give at least {MIN_INTERVAL_SECS}");
                    return Err(BridgeError::new(ErrorKind::InvalidInput, message));
                }
                config.interval = Some(Duration::from_secs(secs));
            }
            if let Some(n) = settings.after_messages {
                config.after_messages = Some(n);
            }
            let backup = CloudBackup::enable(&s.home, config).await?;
            forward(backup.subscribe(), s.events.clone(), Event::from_cloud);
            if let Some(client) = &*s.sync.lock().await {
                backup.watch(client);
            }
            if let Some(old) = s.backup.lock().await.replace(backup) {
                old.disable().await;
            }
            Ok(())
        })
    }

    /// Takes a snapshot now (after one already running).
    pub fn backup_now(&self) -> impl Future<Output = Result<BackupReport, BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let backup = s.backup.lock().await;
            let backup = backup
                .as_ref()
                .ok_or_else(|| BridgeError::new(ErrorKind::InvalidInput, "cloud backup is off: enable it first"))?;
            let summary = backup.snapshot_now().await?;
            Ok(BackupReport {
                snapshot_id: summary.snapshot_id.to_string(),
                files: summary.files_new + summary.files_changed + summary.files_unmodified,
                bytes_added: summary.bytes_added,
            })
        })
    }

    /// Where cloud backup stands.
    pub fn backup_status(&self) -> impl Future<Output = Result<BackupStatus, BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let backup = s.backup.lock().await;
            let Some(status) = backup.as_ref().map(CloudBackup::status) else {
                return Ok(BackupStatus {
                    enabled: false,
                    running: false,
                    last_snapshot: None,
                    last_error: None,
                    snapshots: 0,
                });
            };
            Ok(BackupStatus {
                enabled: status.enabled,
                running: status.running,
                last_snapshot: status.last_snapshot.map(|(id, _)| id.to_string()),
                last_error: status.last_error,
                snapshots: status.snapshots,
            })
        })
    }

    /// Stops cloud backup (a snapshot under way finishes).
    pub fn disable_backup(&self) -> impl Future<Output = Result<(), BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            if let Some(backup) = s.backup.lock().await.take() {
                backup.disable().await;
            }
            Ok(())
        })
    }

    /// Makes this device the one backed up to the vault at `url`: restores the latest
    /// snapshot (or `snapshot`) into `target`, rejoins its sync group and hands back every
    /// message after the snapshot, registers this device with the vault. Then
    /// [`Bridge::connect`] connects to the group.
    pub fn restore_new_device(
        &self,
        url: String,
        recovery_key: String,
        target: PathBuf,
        snapshot: Option<String>,
    ) -> impl Future<Output = Result<Restored, BridgeError>> + Send + 'static + use<> {
        let recovery_key = Zeroizing::new(recovery_key);
        self.run(move |s| async move {
            let _changing = s.changing.lock().await;
            if s.sync.lock().await.is_some() {
                let message = "this device is connected to a sync group: disconnect before restoring into it";
                return Err(BridgeError::new(ErrorKind::InvalidInput, message));
            }
            let key = RecoveryKey::parse(recovery_key.trim())
                .map_err(|e| BridgeError::new(ErrorKind::WrongKey, format!("recovery key: {e}")))?;
            let mut options = NewDeviceOptions { device_name: s.device_name.clone(), ..NewDeviceOptions::default() };
            if let Some(snapshot) = snapshot {
                options.snapshot = snapshot;
            }
            let mut messages = Vec::new();
            let done = restore_new_device(&s.home, &url, &key, &target, &options, |m| {
                messages.push(Message::from(m));
                Ok(())
            })
            .await?;
            let (snapshot_id, files, bytes, lost) = match &done.restored {
                Some((id, summary)) => (Some(id.to_string()), summary.files, summary.bytes, summary.lost.clone()),
                None => (None, 0, 0, Vec::new()),
            };
            let messages_missing = done.replay.map_or(0, |r| r.missing);
            Ok(Restored { snapshot_id, files, bytes, lost, messages, messages_missing })
        })
    }

    /// The next event; `None` when the handle closes while waiting (a call after it is
    /// closed fails with [`ErrorKind::Closed`]).
    pub fn next_event(&self) -> impl Future<Output = Result<Option<Event>, BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            let mut closing = s.closing.subscribe();
            let mut inbox = s.inbox.lock().await;
            // Closing first: what the shutdown itself reports (the connections going) is not
            // handed to a caller that waits past the close.
            tokio::select! {
                biased;
                _ = closing.wait_for(|closed| *closed) => Ok(None),
                got = inbox.recv() => match got {
                    Ok(event) => Ok(Some(event)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let message = format!("{n} events were dropped (the app read them too slowly)");
                        Ok(Some(Event { kind: "error", message: Some(message), ..Event::default() }))
                    }
                    Err(broadcast::error::RecvError::Closed) => Ok(None),
                },
            }
        })
    }

    /// Closes the handle: cloud backup stops (a snapshot under way finishes), sync
    /// disconnects (pushes under way finish; its endpoint closes), then every later call
    /// fails with [`ErrorKind::Closed`]. Dropping the handle then stops its runtime.
    pub fn close(&self) -> impl Future<Output = Result<(), BridgeError>> + Send + 'static + use<> {
        self.run(move |s| async move {
            s.close().await;
            Ok(())
        })
    }
}

impl Drop for Bridge {
    /// Closes (if the app did not), in order, and stops the runtime — on a thread of its own,
    /// so a handle collected by Python's or Node's garbage collector never blocks the
    /// interpreter, and one dropped inside a runtime does not block it either.
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else { return };
        let shared = self.shared.clone();
        let stop = move || {
            if !shared.closed.load(Ordering::Relaxed) {
                runtime.block_on(async move {
                    let _ = tokio::time::timeout(CLOSE_WAIT, shared.close()).await;
                });
            }
            runtime.shutdown_timeout(SHUTDOWN_WAIT);
        };
        if std::thread::Builder::new().name("zerok-close".into()).spawn(stop).is_err() {
            tracing::warn!("no thread to close a dropped handle on; its tasks stop where they are");
        }
    }
}
