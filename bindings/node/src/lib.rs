//! The Node.js addon over `zerok-bridge`: a `Handle` whose async methods return Promises.
//! The work runs on the bridge's own runtime (napi's only awaits it); records cross as
//! plain objects, bytes as `Buffer`, cursors as numbers. A failure rejects with an `Error`
//! whose message is `KIND|RETRYABLE|text`, which `zerok.js` turns into a `ZerokError` with
//! `code` and `retryable`.

use std::{future::Future, path::PathBuf, sync::Arc};

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use zerok_bridge::{BackupSettings, Bridge, BridgeError, Config};

fn rejected(e: BridgeError) -> napi::Error {
    napi::Error::from_reason(format!("{}|{}|{}", e.kind.as_str(), e.retryable, e.message))
}

/// Awaits `work`, its error as a rejection.
async fn settle<T>(work: impl Future<Output = Result<T, BridgeError>>) -> napi::Result<T> {
    work.await.map_err(rejected)
}

/// A cursor as a JS number (exact below 2^53).
fn js(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A cursor from a JS number.
fn cursor(n: i64) -> napi::Result<u64> {
    u64::try_from(n).map_err(|_| rejected(BridgeError::new(zerok_bridge::ErrorKind::InvalidInput, "negative cursor")))
}

#[napi(object)]
pub struct Invite {
    pub url: String,
    pub code: String,
    pub expires_in_secs: i64,
}

#[napi(object)]
pub struct Pushed {
    pub blob_id: String,
    pub cursor: i64,
}

#[napi(object)]
pub struct Message {
    pub cursor: i64,
    pub blob_id: String,
    pub sender: String,
    pub data: Buffer,
}

impl From<zerok_bridge::Message> for Message {
    fn from(m: zerok_bridge::Message) -> Self {
        Self { cursor: js(m.cursor), blob_id: m.blob_id, sender: m.sender, data: m.data.into() }
    }
}

#[napi(object)]
pub struct SyncStatus {
    pub in_group: bool,
    pub status: String,
    pub attempt: Option<u32>,
    pub last_cursor: i64,
    pub device_id: Option<String>,
}

#[napi(object)]
pub struct BackupReport {
    pub snapshot_id: String,
    pub files: i64,
    pub bytes_added: i64,
}

#[napi(object)]
pub struct BackupStatus {
    pub enabled: bool,
    pub running: bool,
    pub last_snapshot: Option<String>,
    pub last_error: Option<String>,
    pub snapshots: i64,
}

#[napi(object)]
pub struct Restored {
    pub snapshot_id: Option<String>,
    pub files: i64,
    pub bytes: i64,
    pub lost: Vec<String>,
    pub messages: Vec<Message>,
    pub messages_missing: i64,
}

#[napi(object)]
pub struct Event {
    pub kind: String,
    pub relay: Option<String>,
    pub cursor: Option<i64>,
    pub blob_id: Option<String>,
    pub device: Option<String>,
    pub snapshot_id: Option<String>,
    pub status: Option<String>,
    pub attempt: Option<u32>,
    pub message: Option<String>,
}

impl From<zerok_bridge::Event> for Event {
    fn from(e: zerok_bridge::Event) -> Self {
        Self {
            kind: e.kind.to_string(),
            relay: e.relay,
            cursor: e.cursor.map(js),
            blob_id: e.blob_id,
            device: e.device,
            snapshot_id: e.snapshot_id,
            status: e.status,
            attempt: e.attempt,
            message: e.message,
        }
    }
}

/// One device's handle (see `Client` in `zerok.js`).
#[napi]
pub struct Handle {
    bridge: Arc<Bridge>,
}

#[napi]
impl Handle {
    #[napi(constructor)]
    pub fn new(state_dir: String, device_name: Option<String>) -> napi::Result<Self> {
        let bridge = Bridge::open(Config { state_dir: PathBuf::from(state_dir), device_name }).map_err(rejected)?;
        Ok(Self { bridge: Arc::new(bridge) })
    }

    #[napi]
    pub async fn create_group(&self, relays: Vec<String>) -> napi::Result<()> {
        settle(self.bridge.create_group(relays)).await
    }

    #[napi]
    pub async fn join_group(&self, invite: String, relay: Option<String>) -> napi::Result<()> {
        settle(self.bridge.join_group(invite, relay)).await
    }

    #[napi]
    pub async fn connect(&self) -> napi::Result<()> {
        settle(self.bridge.connect()).await
    }

    #[napi]
    pub async fn disconnect(&self) -> napi::Result<()> {
        settle(self.bridge.disconnect()).await
    }

    #[napi]
    pub async fn register_push_token(
        &self,
        token: String,
        platform: String,
        app_id: Option<String>,
    ) -> napi::Result<()> {
        settle(self.bridge.register_push_token(token, platform, app_id)).await
    }

    #[napi]
    pub async fn on_pause(&self, budget_ms: u32) -> napi::Result<()> {
        settle(self.bridge.on_pause(std::time::Duration::from_millis(u64::from(budget_ms)))).await
    }

    #[napi]
    pub async fn on_resume(&self) -> napi::Result<Vec<Message>> {
        Ok(settle(self.bridge.on_resume()).await?.into_iter().map(Message::from).collect())
    }

    #[napi]
    pub async fn create_invite(&self) -> napi::Result<Invite> {
        let i = settle(self.bridge.create_invite()).await?;
        Ok(Invite { url: i.url, code: i.code, expires_in_secs: js(i.expires_in_secs) })
    }

    #[napi]
    pub async fn push(&self, data: Buffer) -> napi::Result<Pushed> {
        let p = settle(self.bridge.push(data.to_vec())).await?;
        Ok(Pushed { blob_id: p.blob_id, cursor: js(p.cursor) })
    }

    #[napi]
    pub async fn pull(&self) -> napi::Result<Vec<Message>> {
        Ok(settle(self.bridge.pull()).await?.into_iter().map(Message::from).collect())
    }

    #[napi]
    pub async fn pull_after(&self, after: i64) -> napi::Result<Vec<Message>> {
        let work = self.bridge.pull_after(cursor(after)?);
        Ok(settle(work).await?.into_iter().map(Message::from).collect())
    }

    #[napi]
    pub async fn status(&self) -> napi::Result<SyncStatus> {
        let s = settle(self.bridge.status()).await?;
        Ok(SyncStatus {
            in_group: s.in_group,
            status: s.status,
            attempt: s.attempt,
            last_cursor: js(s.last_cursor),
            device_id: s.device_id,
        })
    }

    #[napi]
    pub async fn create_vault(&self, url: String) -> napi::Result<String> {
        settle(self.bridge.create_vault(url)).await
    }

    #[napi]
    pub async fn enable_backup(
        &self,
        vault: String,
        paths: Vec<String>,
        interval_secs: Option<u32>,
        after_messages: Option<u32>,
    ) -> napi::Result<()> {
        let settings = BackupSettings {
            vault,
            paths: paths.into_iter().map(PathBuf::from).collect(),
            interval_secs: interval_secs.map(u64::from),
            after_messages: after_messages.map(u64::from),
        };
        settle(self.bridge.enable_backup(settings)).await
    }

    #[napi]
    pub async fn backup_now(&self) -> napi::Result<BackupReport> {
        let r = settle(self.bridge.backup_now()).await?;
        Ok(BackupReport { snapshot_id: r.snapshot_id, files: js(r.files), bytes_added: js(r.bytes_added) })
    }

    #[napi]
    pub async fn backup_status(&self) -> napi::Result<BackupStatus> {
        let s = settle(self.bridge.backup_status()).await?;
        Ok(BackupStatus {
            enabled: s.enabled,
            running: s.running,
            last_snapshot: s.last_snapshot,
            last_error: s.last_error,
            snapshots: js(s.snapshots),
        })
    }

    #[napi]
    pub async fn disable_backup(&self) -> napi::Result<()> {
        settle(self.bridge.disable_backup()).await
    }

    #[napi]
    pub async fn restore_new_device(
        &self,
        vault: String,
        recovery_key: String,
        target: String,
        snapshot: Option<String>,
    ) -> napi::Result<Restored> {
        let r = settle(self.bridge.restore_new_device(vault, recovery_key, PathBuf::from(target), snapshot)).await?;
        Ok(Restored {
            snapshot_id: r.snapshot_id,
            files: js(r.files),
            bytes: js(r.bytes),
            lost: r.lost,
            messages: r.messages.into_iter().map(Message::from).collect(),
            messages_missing: js(r.messages_missing),
        })
    }

    #[napi]
    pub async fn next_event(&self) -> napi::Result<Option<Event>> {
        Ok(settle(self.bridge.next_event()).await?.map(Event::from))
    }

    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        settle(self.bridge.close()).await
    }
}
