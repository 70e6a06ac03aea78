//! Files under `ZEROK_HOME/sync/`: this device's identity key, the group it belongs to
//! (`group.json`: secrets and cursors; `roster.bin`: the verified roster log), the outbox
//! of unacknowledged pushes, the ids of messages already delivered (`seen`), and how the
//! device reaches others (`net.json`). Secrets are written 0600 via rename.

use std::{
    collections::{BTreeMap, HashSet},
    io::Write,
    net::SocketAddr,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;
use zerok_core::sync::{
    BlobId, GroupSecret, SigningKey,
    roster::{Entry, Roster},
};
use zerok_wire::{NetOptions, RelayAddr};

use super::SyncError;

/// A group this device moved on from by a rotation, still to be read to its end (the
/// messages pushed before the rotation).
#[derive(Clone, Serialize, Deserialize)]
pub struct Draining {
    secret: String,
    #[serde(default)]
    cursors: BTreeMap<String, u64>,
}

impl Drop for Draining {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl Draining {
    /// The old group's secret.
    pub fn secret(&self) -> GroupSecret {
        secret_of(&self.secret)
    }

    /// Last pulled cursor at a relay, in the old group.
    pub fn cursor(&self, relay: &str) -> u64 {
        self.cursors.get(relay).copied().unwrap_or(0)
    }

    /// Records the last pulled cursor at a relay.
    pub fn set_cursor(&mut self, relay: &str, cursor: u64) {
        self.cursors.insert(relay.to_string(), cursor);
    }
}

fn secret_of(hex_text: &str) -> GroupSecret {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut raw).expect("validated when loaded");
    let s = GroupSecret::from_bytes(raw);
    raw.zeroize();
    s
}

/// The group this device belongs to.
#[derive(Clone, Serialize, Deserialize)]
pub struct GroupState {
    secret: String,
    relays: Vec<String>,
    #[serde(default)]
    cursors: BTreeMap<String, u64>,
    /// Groups left by rotations whose messages are not all read yet, oldest first.
    #[serde(default)]
    draining: Vec<Draining>,
    /// The roster log (in `roster.bin`) and the state it verifies to.
    #[serde(skip)]
    chain: Vec<Entry>,
    #[serde(skip)]
    roster: Option<Roster>,
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
    /// A membership in the group of `secret`, whose roster log is `chain` (verified here).
    ///
    /// # Errors
    /// [`SyncError::Roster`] when the log does not verify.
    pub fn new(
        secret: &GroupSecret,
        relays: &[RelayAddr],
        device_name: &str,
        chain: Vec<Entry>,
    ) -> Result<Self, SyncError> {
        let roster = Roster::replay(&chain).map_err(|e| SyncError::Roster(e.to_string()))?;
        Ok(Self {
            secret: hex::encode(secret.expose()),
            relays: relays.iter().map(|r| r.to_string()).collect(),
            cursors: BTreeMap::new(),
            draining: Vec::new(),
            chain,
            roster: Some(roster),
            pushed: BTreeMap::new(),
            device_name: device_name.to_string(),
        })
    }

    /// The group secret.
    pub fn secret(&self) -> GroupSecret {
        secret_of(&self.secret)
    }

    /// The verified roster.
    pub fn roster(&self) -> &Roster {
        self.roster.as_ref().expect("a loaded state has its roster")
    }

    /// The roster log.
    pub fn chain(&self) -> &[Entry] {
        &self.chain
    }

    /// Adds an entry already verified against [`GroupState::roster`], with the roster it
    /// leads to.
    pub fn push_entry(&mut self, entry: Entry, roster: Roster) {
        self.chain.push(entry);
        self.roster = Some(roster);
    }

    /// Replaces the roster log (a longer one of the same group: this device's join).
    ///
    /// # Errors
    /// [`SyncError::Roster`] when it does not verify or leads to another group.
    pub fn replace_chain(&mut self, chain: Vec<Entry>) -> Result<(), SyncError> {
        let roster = Roster::replay(&chain).map_err(|e| SyncError::Roster(e.to_string()))?;
        if roster.group() != self.roster().group() || roster.seq() < self.roster().seq() {
            return Err(SyncError::Roster("a roster log of another group".into()));
        }
        self.chain = chain;
        self.roster = Some(roster);
        Ok(())
    }

    /// Moves to the group of `secret` (a rotation): the current group is kept for
    /// draining, cursors start from zero.
    pub fn rotate_to(&mut self, secret: &GroupSecret) {
        let old = Draining {
            secret: std::mem::replace(&mut self.secret, hex::encode(secret.expose())),
            cursors: std::mem::take(&mut self.cursors),
        };
        self.draining.push(old);
        self.pushed.clear();
    }

    /// The oldest group still being drained.
    pub fn draining(&mut self) -> Option<&mut Draining> {
        self.draining.first_mut()
    }

    /// The secrets of the old groups still being drained.
    pub fn draining_secrets(&self) -> Vec<GroupSecret> {
        self.draining.iter().map(Draining::secret).collect()
    }

    /// Whether an old group is still to be read.
    pub fn is_draining(&self) -> bool {
        !self.draining.is_empty()
    }

    /// Done draining the oldest group.
    pub fn drained(&mut self) {
        if !self.draining.is_empty() {
            self.draining.remove(0);
        }
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

/// Most delivered message ids remembered (16 bytes each).
pub const MAX_SEEN: usize = 1 << 20;

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
    pub(super) fn write_private(path: &Path, bytes: &[u8], durable: bool) -> Result<(), SyncError> {
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
                Self::write_private(&path, &key.to_bytes(), true)?;
                Ok(key)
            }
            Err(e) => Err(Self::err(&path, e)),
        }
    }

    /// How this device's endpoint reaches others (`net.json`): iroh's public relays, DNS
    /// discovery, mDNS on the local network. All off until [`SyncHome::set_net`] turns
    /// one on.
    ///
    /// # Errors
    /// A damaged `net.json`.
    pub fn net(&self) -> Result<NetOptions, SyncError> {
        let path = self.dir.join("net.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Self::err(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NetOptions::default()),
            Err(e) => Err(Self::err(&path, e)),
        }
    }

    /// Keeps `net` for this device's next connections.
    ///
    /// # Errors
    /// When `net.json` cannot be written.
    pub fn set_net(&self, net: NetOptions) -> Result<(), SyncError> {
        let bytes = serde_json::to_vec_pretty(&net).map_err(|e| SyncError::State(e.to_string()))?;
        Self::write_private(&self.dir.join("net.json"), &bytes, true)
    }

    /// An endpoint with this device's identity and [`SyncHome::net`] options, on loopback
    /// when every relay it will talk to is on loopback, else on all interfaces.
    ///
    /// # Errors
    /// Key, `net.json` or bind failures.
    pub async fn endpoint(&self, relays: &[RelayAddr]) -> Result<iroh::Endpoint, SyncError> {
        Self::endpoint_as(self.device_key()?, relays, self.net()?).await
    }

    /// [`SyncHome::endpoint`] under a given identity.
    ///
    /// # Errors
    /// Bind failures.
    pub async fn endpoint_as(
        key: iroh::SecretKey,
        relays: &[RelayAddr],
        net: NetOptions,
    ) -> Result<iroh::Endpoint, SyncError> {
        let loopback = !relays.is_empty() && relays.iter().all(|r| r.addr.is_some_and(|a| a.ip().is_loopback()));
        let bind: SocketAddr = if loopback { "127.0.0.1:0" } else { "0.0.0.0:0" }.parse().expect("valid");
        Ok(zerok_wire::bind(key, bind, Vec::new(), NetOptions { server: false, ..net }).await?)
    }

    /// Where attachments are kept (`sync/content`).
    pub fn content_dir(&self) -> PathBuf {
        self.dir.join("content")
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
        if state.draining.iter().any(|d| d.secret.len() != 64 || hex::decode(&d.secret).is_err()) {
            return Err(Self::err(&path, "damaged group secret"));
        }
        let log = self.dir.join("roster.bin");
        let bytes = std::fs::read(&log).map_err(|e| Self::err(&log, e))?;
        state.chain = rmp_serde::from_slice(&bytes).map_err(|e| Self::err(&log, e))?;
        state.roster = Some(Roster::replay(&state.chain).map_err(|e| Self::err(&log, e))?);
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
        Self::write_private(&self.dir.join("pushed.json"), &bytes, false)
    }

    /// Saves the group (secret included; 0600), and its own-push cursors.
    ///
    /// # Errors
    /// Write failures.
    pub fn save_group(&self, state: &GroupState) -> Result<(), SyncError> {
        let log = rmp_serde::to_vec(&state.chain).map_err(|e| SyncError::State(e.to_string()))?;
        Self::write_private(&self.dir.join("roster.bin"), &log, true)?;
        let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| SyncError::State(e.to_string()))?;
        let result = Self::write_private(&self.dir.join("group.json"), &bytes, true);
        bytes.zeroize();
        result.and_then(|()| self.save_pushed(state))
    }

    /// Ids of messages already delivered (a relay replaying one at a new cursor is caught).
    pub fn seen_load(&self) -> HashSet<BlobId> {
        let bytes = std::fs::read(self.dir.join("seen")).unwrap_or_default();
        bytes.chunks_exact(16).map(|c| BlobId(c.try_into().expect("16 bytes"))).collect()
    }

    /// Records delivered message ids (appended; the oldest half is dropped beyond
    /// [`MAX_SEEN`]).
    ///
    /// # Errors
    /// Write failures.
    pub fn seen_add(&self, ids: &[BlobId]) -> Result<(), SyncError> {
        if ids.is_empty() {
            return Ok(());
        }
        let path = self.dir.join("seen");
        let len = std::fs::metadata(&path).map_or(0, |m| m.len() as usize);
        if len / 16 + ids.len() > MAX_SEEN {
            let bytes = std::fs::read(&path).map_err(|e| Self::err(&path, e))?;
            let keep = &bytes[bytes.len() / 32 * 16..];
            Self::write_private(&path, keep, false)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Self::err(&path, e))?;
        let bytes: Vec<u8> = ids.iter().flat_map(|id| id.0).collect();
        f.write_all(&bytes).map_err(|e| Self::err(&path, e))
    }

    /// Forgets delivered ids (a replay from a restored snapshot delivers them again).
    ///
    /// # Errors
    /// Delete failures.
    pub fn seen_clear(&self) -> Result<(), SyncError> {
        let path = self.dir.join("seen");
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Self::err(&path, e)),
            _ => Ok(()),
        }
    }

    /// This device's signing key (its identity key as Ed25519).
    ///
    /// # Errors
    /// As [`SyncHome::device_key`].
    pub fn signing_key(&self) -> Result<SigningKey, SyncError> {
        let mut raw = self.device_key()?.to_bytes();
        let key = SigningKey::from_bytes(&raw);
        raw.zeroize();
        Ok(key)
    }

    /// Installs a device identity key (a restore taking the backed-up device's place).
    ///
    /// # Errors
    /// Write failures.
    pub fn set_device_key(&self, raw: &[u8; 32]) -> Result<(), SyncError> {
        Self::write_private(&self.dir.join("device.key"), raw, true)
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
        Self::write_private(&self.outbox().join(id.to_string()), sealed, true)
    }

    /// A queued push.
    ///
    /// # Errors
    /// Read failures (it is not queued).
    pub fn outbox_get(&self, id: &BlobId) -> Result<Vec<u8>, SyncError> {
        let path = self.outbox().join(id.to_string());
        std::fs::read(&path).map_err(|e| Self::err(&path, e))
    }

    /// Sets a queued push aside (renamed `<id>.unreadable`, never sent).
    ///
    /// # Errors
    /// Rename failures.
    pub fn outbox_set_aside(&self, id: &BlobId) -> Result<(), SyncError> {
        let path = self.outbox().join(id.to_string());
        std::fs::rename(&path, path.with_extension("unreadable")).map_err(|e| Self::err(&path, e))
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
