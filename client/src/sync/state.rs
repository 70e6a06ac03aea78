//! A device's sync state, under `sync/` in its [`StateStore`] (`ZEROK_HOME/sync/` for the
//! programs): this device's identity key, the group it belongs to (`group.json`: secrets
//! and cursors; `roster.bin`: the verified roster log), the outbox of unacknowledged
//! pushes, the ids of messages already delivered (`seen`), and how the device reaches
//! others (`net.json`). A [`crate::FileStore`] writes secrets 0600 via rename.

use std::{
    collections::{BTreeMap, HashSet},
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};
use zerok_core::sync::{
    BlobId, GroupSecret, SigningKey,
    roster::{Entry, Roster},
};
use zerok_wire::{NetOptions, RelayAddr};

use crate::{
    Error,
    state_store::{FileStore, StateStore},
};

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
    /// [`Error::Roster`] when the log does not verify.
    pub fn new(
        secret: &GroupSecret,
        relays: &[RelayAddr],
        device_name: &str,
        chain: Vec<Entry>,
    ) -> Result<Self, Error> {
        let roster = Roster::replay(&chain).map_err(|e| Error::Roster(e.to_string()))?;
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
    /// [`Error::Roster`] when it does not verify or leads to another group.
    pub fn replace_chain(&mut self, chain: Vec<Entry>) -> Result<(), Error> {
        let roster = Roster::replay(&chain).map_err(|e| Error::Roster(e.to_string()))?;
        if roster.group() != self.roster().group() || roster.seq() < self.roster().seq() {
            return Err(Error::Roster("a roster log of another group".into()));
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
    pub fn relays(&self) -> Result<Vec<RelayAddr>, Error> {
        self.relays.iter().map(|r| RelayAddr::parse(r).map_err(|e| Error::State(e.to_string()))).collect()
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

/// The sync state of one device: names under `sync/` in its [`StateStore`], and a folder
/// for attachments (which iroh's blob store keeps as files).
#[derive(Clone, Debug)]
pub struct SyncHome {
    store: Arc<dyn StateStore>,
    content: PathBuf,
}

/// Its names in the store.
const DEVICE_KEY: &str = "sync/device.key";
const NET: &str = "sync/net.json";
const GROUP: &str = "sync/group.json";
const ROSTER: &str = "sync/roster.bin";
const PUSHED: &str = "sync/pushed.json";
const SEEN: &str = "sync/seen";
const OUTBOX: &str = "sync/outbox";

impl SyncHome {
    /// `home/sync`, as files (attachments in `home/sync/content`).
    pub fn new(home: &Path) -> Self {
        Self::with_store(Arc::new(FileStore::new(home)), home.join("sync").join("content"))
    }

    /// Over `store` (names under `sync/`), attachments under `content`.
    pub fn with_store(store: Arc<dyn StateStore>, content: PathBuf) -> Self {
        Self { store, content }
    }

    fn err(&self, name: &str, e: impl std::fmt::Display) -> Error {
        Error::State(format!("{}: {e}", self.store.locate(name)))
    }

    /// This device's identity (created on first use).
    ///
    /// # Errors
    /// When the key cannot be read or written.
    pub fn device_key(&self) -> Result<iroh::SecretKey, Error> {
        match self.store.get(DEVICE_KEY)? {
            Some(bytes) => {
                let raw: [u8; 32] =
                    bytes.as_slice().try_into().map_err(|_| self.err(DEVICE_KEY, "not a 32-byte key"))?;
                Ok(iroh::SecretKey::from_bytes(&raw))
            }
            None => {
                let key = iroh::SecretKey::generate();
                self.store.put(DEVICE_KEY, &key.to_bytes(), true)?;
                Ok(key)
            }
        }
    }

    /// How this device's endpoint reaches others (`net.json`): iroh's public relays, DNS
    /// discovery, mDNS on the local network. All off until [`SyncHome::set_net`] turns
    /// one on.
    ///
    /// # Errors
    /// A damaged `net.json`.
    pub fn net(&self) -> Result<NetOptions, Error> {
        match self.store.get(NET)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.err(NET, e)),
            None => Ok(NetOptions::default()),
        }
    }

    /// Keeps `net` for this device's next connections.
    ///
    /// # Errors
    /// When `net.json` cannot be written.
    pub fn set_net(&self, net: NetOptions) -> Result<(), Error> {
        self.store.put(NET, &serde_json::to_vec_pretty(&net).expect("options encode"), true)
    }

    /// An endpoint with this device's identity and [`SyncHome::net`] options, on loopback
    /// when every relay it will talk to is on loopback, else on all interfaces.
    ///
    /// # Errors
    /// Key, `net.json` or bind failures.
    pub async fn endpoint(&self, relays: &[RelayAddr]) -> Result<iroh::Endpoint, Error> {
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
    ) -> Result<iroh::Endpoint, Error> {
        let loopback = !relays.is_empty() && relays.iter().all(|r| r.addr.is_some_and(|a| a.ip().is_loopback()));
        let bind: SocketAddr = if loopback { "127.0.0.1:0" } else { "0.0.0.0:0" }.parse().expect("valid");
        Ok(zerok_wire::bind(key, bind, Vec::new(), NetOptions { server: false, ..net }).await?)
    }

    /// Where attachments are kept (`sync/content` of a file home).
    pub fn content_dir(&self) -> PathBuf {
        self.content.clone()
    }

    /// The device's group.
    ///
    /// # Errors
    /// [`Error::NotFound`] when this device is in no group.
    pub fn load_group(&self) -> Result<GroupState, Error> {
        let text = self.store.get(GROUP)?.ok_or_else(|| {
            Error::NotFound("this device is in no sync group (create one, or join one with an invite)".into())
        })?;
        let mut state: GroupState = serde_json::from_slice(&text).map_err(|e| self.err(GROUP, e))?;
        let damaged = |secret: &str| secret.len() != 64 || hex::decode(secret).is_err();
        if damaged(&state.secret) || state.draining.iter().any(|d| damaged(&d.secret)) {
            return Err(self.err(GROUP, "damaged group secret"));
        }
        let bytes = self.store.get(ROSTER)?.ok_or_else(|| self.err(ROSTER, "missing"))?;
        state.chain = rmp_serde::from_slice(&bytes).map_err(|e| self.err(ROSTER, e))?;
        state.roster = Some(Roster::replay(&state.chain).map_err(|e| self.err(ROSTER, e))?);
        // Lost or damaged after a power cut: replay then starts at the pulled cursor.
        let pushed = self.store.get(PUSHED).ok().flatten();
        state.pushed = pushed.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Ok(state)
    }

    /// Saves the own-push cursors (see [`GroupState::included`]); cheap, not synced.
    ///
    /// # Errors
    /// Write failures.
    pub fn save_pushed(&self, state: &GroupState) -> Result<(), Error> {
        self.store.put(PUSHED, &serde_json::to_vec(&state.pushed).expect("cursors encode"), false)
    }

    /// Saves the group (secret included; 0600), and its own-push cursors.
    ///
    /// # Errors
    /// Write failures.
    pub fn save_group(&self, state: &GroupState) -> Result<(), Error> {
        self.store.put(ROSTER, &rmp_serde::to_vec(&state.chain).expect("roster log encodes"), true)?;
        let bytes = Zeroizing::new(serde_json::to_vec_pretty(state).expect("group encodes"));
        self.store.put(GROUP, &bytes, true)?;
        self.save_pushed(state)
    }

    /// Ids of messages already delivered (a relay replaying one at a new cursor is caught).
    pub fn seen_load(&self) -> HashSet<BlobId> {
        let bytes = self.store.get(SEEN).ok().flatten().unwrap_or_default();
        bytes.chunks_exact(16).map(|c| BlobId(c.try_into().expect("16 bytes"))).collect()
    }

    /// Records delivered message ids (appended; the oldest half is dropped beyond
    /// [`MAX_SEEN`]).
    ///
    /// # Errors
    /// Write failures.
    pub fn seen_add(&self, ids: &[BlobId]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let bytes: Vec<u8> = ids.iter().flat_map(|id| id.0).collect();
        let len = self.store.append(SEEN, &bytes)? as usize;
        if len / 16 > MAX_SEEN {
            let all = self.store.get(SEEN)?.unwrap_or_default();
            self.store.put(SEEN, &all[all.len() / 32 * 16..], false)?;
        }
        Ok(())
    }

    /// Forgets delivered ids (a replay from a restored snapshot delivers them again).
    ///
    /// # Errors
    /// Delete failures.
    pub fn seen_clear(&self) -> Result<(), Error> {
        self.store.remove(SEEN)
    }

    /// This device's signing key (its identity key as Ed25519).
    ///
    /// # Errors
    /// As [`SyncHome::device_key`].
    pub fn signing_key(&self) -> Result<SigningKey, Error> {
        let mut raw = self.device_key()?.to_bytes();
        let key = SigningKey::from_bytes(&raw);
        raw.zeroize();
        Ok(key)
    }

    /// Installs a device identity key (a restore taking the backed-up device's place).
    ///
    /// # Errors
    /// Write failures.
    pub fn set_device_key(&self, raw: &[u8; 32]) -> Result<(), Error> {
        self.store.put(DEVICE_KEY, raw, true)
    }

    /// Whether this device already belongs to a group (a group file that cannot be read
    /// counts: it is never overwritten by a new group).
    pub fn has_group(&self) -> bool {
        !matches!(self.store.get(GROUP), Ok(None))
    }

    fn outbox(id: &BlobId) -> String {
        format!("{OUTBOX}/{id}")
    }

    /// Keeps a sealed push until it is acknowledged.
    ///
    /// # Errors
    /// Write failures.
    pub fn outbox_put(&self, id: &BlobId, sealed: &[u8]) -> Result<(), Error> {
        self.store.put(&Self::outbox(id), sealed, true)
    }

    /// A queued push.
    ///
    /// # Errors
    /// Read failures, or it is not queued.
    pub fn outbox_get(&self, id: &BlobId) -> Result<Vec<u8>, Error> {
        let name = Self::outbox(id);
        match self.store.get(&name)? {
            Some(bytes) => Ok(bytes.to_vec()),
            None => Err(self.err(&name, "not queued")),
        }
    }

    /// Sets a queued push aside (kept as `<id>.unreadable`, never sent).
    ///
    /// # Errors
    /// Store failures.
    pub fn outbox_set_aside(&self, id: &BlobId) -> Result<(), Error> {
        let name = Self::outbox(id);
        if let Some(bytes) = self.store.get(&name)? {
            self.store.put(&format!("{name}.unreadable"), &bytes, true)?;
        }
        self.store.remove(&name)
    }

    /// Drops an acknowledged push.
    ///
    /// # Errors
    /// Delete failures.
    pub fn outbox_remove(&self, id: &BlobId) -> Result<(), Error> {
        self.store.remove(&Self::outbox(id))
    }

    /// Pushes not yet acknowledged, oldest first.
    ///
    /// # Errors
    /// Read failures.
    pub fn outbox_list(&self) -> Result<Vec<(BlobId, Vec<u8>)>, Error> {
        let mut items = Vec::new();
        for name in self.store.list(OUTBOX)? {
            let Ok(id) = BlobId::from_hex(&name) else { continue };
            if let Some(bytes) = self.store.get(&Self::outbox(&id))? {
                items.push((id, bytes.to_vec()));
            }
        }
        Ok(items)
    }
}
