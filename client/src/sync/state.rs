//! Files under `ZEROK_HOME/sync/`: this device's identity key, the group it belongs to,
//! and the outbox of unacknowledged pushes. Secrets are written 0600 via rename.

use std::{
    collections::BTreeMap,
    io::Write,
    net::SocketAddr,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;
use zerok_core::sync::{BlobId, GroupSecret};
use zerok_wire::{NetOptions, RelayAddr};

use super::SyncError;

/// The group this device belongs to.
#[derive(Clone, Serialize, Deserialize)]
pub struct GroupState {
    secret: String,
    relays: Vec<String>,
    #[serde(default)]
    cursors: BTreeMap<String, u64>,
    /// Per relay, the cursor of this device's own last push when nothing came between it
    /// and what the device already had. Kept in `pushed.json` beside the group (written on
    /// every push, so without the secret and without a sync).
    #[serde(skip)]
    pushed: BTreeMap<String, u64>,
    /// Name this device gives itself in HELLO.
    pub device_name: String,
}

impl std::fmt::Debug for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroupState({} relays, [REDACTED])", self.relays.len())
    }
}

impl Drop for GroupState {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl GroupState {
    /// A new membership.
    pub fn new(secret: &GroupSecret, relays: &[RelayAddr], device_name: &str) -> Self {
        Self {
            secret: hex::encode(secret.expose()),
            relays: relays.iter().map(|r| r.to_string()).collect(),
            cursors: BTreeMap::new(),
            pushed: BTreeMap::new(),
            device_name: device_name.to_string(),
        }
    }

    /// The group secret.
    pub fn secret(&self) -> GroupSecret {
        let mut raw = [0u8; 32];
        hex::decode_to_slice(&self.secret, &mut raw).expect("validated when loaded");
        let s = GroupSecret::from_bytes(raw);
        raw.zeroize();
        s
    }

    /// The relays, primary first.
    ///
    /// # Errors
    /// A stored address that does not parse.
    pub fn relays(&self) -> Result<Vec<RelayAddr>, SyncError> {
        self.relays.iter().map(|r| RelayAddr::parse(r).map_err(|e| SyncError::State(e.to_string()))).collect()
    }

    /// The relay addresses as stored.
    pub fn relays_text(&self) -> &[String] {
        &self.relays
    }

    /// Last pulled cursor at a relay.
    pub fn cursor(&self, relay: &str) -> u64 {
        self.cursors.get(relay).copied().unwrap_or(0)
    }

    /// Records the last pulled cursor at a relay.
    pub fn set_cursor(&mut self, relay: &str, cursor: u64) {
        self.cursors.insert(relay.to_string(), cursor);
    }

    /// The cursor at a relay up to which this device's state holds every message: those
    /// it pulled, and its own pushes that directly followed them.
    pub fn included(&self, relay: &str) -> u64 {
        self.cursor(relay).max(self.pushed.get(relay).copied().unwrap_or(0))
    }

    /// Records an acknowledged push; returns whether [`GroupState::included`] moved.
    pub fn note_pushed(&mut self, relay: &str, cursor: u64) -> bool {
        let follows = self.included(relay) + 1 == cursor;
        if follows {
            self.pushed.insert(relay.to_string(), cursor);
        }
        follows
    }

    /// [`GroupState::included`] for every relay (what a backup of the state records).
    pub fn included_all(&self) -> BTreeMap<String, u64> {
        self.relays.iter().map(|r| (r.clone(), self.included(r))).collect()
    }
}

/// The sync folder of one device.
#[derive(Clone, Debug)]
pub struct SyncHome {
    dir: PathBuf,
}

impl SyncHome {
    /// `home/sync`.
    pub fn new(home: &Path) -> Self {
        Self { dir: home.join("sync") }
    }

    fn err(path: &Path, e: impl std::fmt::Display) -> SyncError {
        SyncError::State(format!("{}: {e}", path.display()))
    }

    /// Writes `bytes` to `path` (0600) by rename; `durable` syncs them first.
    fn write_private(&self, path: &Path, bytes: &[u8], durable: bool) -> Result<(), SyncError> {
        let parent = path.parent().expect("in a folder");
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent).map_err(|e| Self::err(parent, e))?;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Self::err(&tmp, e))?;
        f.write_all(bytes).and_then(|_| if durable { f.sync_all() } else { Ok(()) }).map_err(|e| Self::err(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Self::err(path, e))
    }

    /// This device's identity (created on first use).
    ///
    /// # Errors
    /// When the key file cannot be read or written.
    pub fn device_key(&self) -> Result<iroh::SecretKey, SyncError> {
        let path = self.dir.join("device.key");
        match std::fs::read(&path) {
            Ok(mut bytes) => {
                let raw: [u8; 32] = bytes.as_slice().try_into().map_err(|_| Self::err(&path, "not a 32-byte key"))?;
                bytes.zeroize();
                Ok(iroh::SecretKey::from_bytes(&raw))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = iroh::SecretKey::generate();
                self.write_private(&path, &key.to_bytes(), true)?;
                Ok(key)
            }
            Err(e) => Err(Self::err(&path, e)),
        }
    }

    /// An endpoint with this device's identity, on loopback when every relay it will talk
    /// to is on loopback, else on all interfaces.
    ///
    /// # Errors
    /// Key or bind failures.
    pub async fn endpoint(&self, relays: &[RelayAddr]) -> Result<iroh::Endpoint, SyncError> {
        let loopback = !relays.is_empty() && relays.iter().all(|r| r.addr.is_some_and(|a| a.ip().is_loopback()));
        let bind: SocketAddr = if loopback { "127.0.0.1:0" } else { "0.0.0.0:0" }.parse().expect("valid");
        Ok(zerok_wire::bind(self.device_key()?, bind, Vec::new(), NetOptions::default()).await?)
    }

    /// The device's group.
    ///
    /// # Errors
    /// [`SyncError::State`] when this device is in no group.
    pub fn load_group(&self) -> Result<GroupState, SyncError> {
        let path = self.dir.join("group.json");
        let mut text = std::fs::read_to_string(&path).map_err(|_| {
            SyncError::State("this device is in no sync group: run `zerok sync create` or `zerok sync join`".into())
        })?;
        let state: Result<GroupState, _> = serde_json::from_str(&text);
        text.zeroize();
        let state = state.map_err(|e| Self::err(&path, e))?;
        if state.secret.len() != 64 || hex::decode(&state.secret).is_err() {
            return Err(Self::err(&path, "damaged group secret"));
        }
        let mut state = state;
        // Lost or damaged after a power cut: replay then starts at the pulled cursor.
        let pushed = std::fs::read(self.dir.join("pushed.json")).ok();
        state.pushed = pushed.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Ok(state)
    }

    /// Saves the own-push cursors (see [`GroupState::included`]); cheap, not synced.
    ///
    /// # Errors
    /// Write failures.
    pub fn save_pushed(&self, state: &GroupState) -> Result<(), SyncError> {
        let bytes = serde_json::to_vec(&state.pushed).map_err(|e| SyncError::State(e.to_string()))?;
        self.write_private(&self.dir.join("pushed.json"), &bytes, false)
    }

    /// Saves the group (secret included; 0600), and its own-push cursors.
    ///
    /// # Errors
    /// Write failures.
    pub fn save_group(&self, state: &GroupState) -> Result<(), SyncError> {
        let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| SyncError::State(e.to_string()))?;
        let result = self.write_private(&self.dir.join("group.json"), &bytes, true);
        bytes.zeroize();
        result.and_then(|()| self.save_pushed(state))
    }

    /// Whether this device already belongs to a group.
    pub fn has_group(&self) -> bool {
        self.dir.join("group.json").exists()
    }

    fn outbox(&self) -> PathBuf {
        self.dir.join("outbox")
    }

    /// Keeps a sealed push until it is acknowledged.
    ///
    /// # Errors
    /// Write failures.
    pub fn outbox_put(&self, id: &BlobId, sealed: &[u8]) -> Result<(), SyncError> {
        self.write_private(&self.outbox().join(id.to_string()), sealed, true)
    }

    /// Drops an acknowledged push.
    ///
    /// # Errors
    /// Delete failures.
    pub fn outbox_remove(&self, id: &BlobId) -> Result<(), SyncError> {
        let path = self.outbox().join(id.to_string());
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Self::err(&path, e)),
            _ => Ok(()),
        }
    }

    /// Pushes not yet acknowledged, oldest first.
    ///
    /// # Errors
    /// Read failures.
    pub fn outbox_list(&self) -> Result<Vec<(BlobId, Vec<u8>)>, SyncError> {
        let Ok(rd) = std::fs::read_dir(self.outbox()) else { return Ok(Vec::new()) };
        let mut items = Vec::new();
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(id) = BlobId::from_hex(&name) else { continue };
            let modified = entry.metadata().and_then(|m| m.modified()).ok();
            let bytes = std::fs::read(entry.path()).map_err(|e| Self::err(&entry.path(), e))?;
            items.push((modified, id, bytes));
        }
        items.sort_by_key(|(t, id, _)| (*t, *id));
        Ok(items.into_iter().map(|(_, id, b)| (id, b)).collect())
    }
}
