//! An unlocked vault: its backend, keys and config, its metadata cache when it has one, and
//! the reads every operation shares (key slots, snapshots, trees, chunks).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use zerok_core::{ChunkId, Kdf, Key32, MasterKey, RecoveryKey, SlotId, SnapshotId, SyncGroupId, VaultKeys};

use crate::{
    Backend, Cache, Error, MasterIndex, Result,
    format::{
        Kind,
        config::{self, ChunkerParams, Config},
        envelope,
        keyslot::{KeySlot, SlotKind},
        names, open_msgpack,
        pack::{BlobEntry, Header, MAX_BLOB_BYTES, MAX_BUNDLE_BYTES},
        seal_msgpack,
        snapshot::Snapshot,
        sync_group::SyncGroup,
        tree::{TREE_VERSION, Tree},
    },
    span::Span,
};

/// The last bundle [`Vault::open_with`] opened (pack, offset and length) and its body, or
/// why it did not open: going through a pack in order opens each bundle once.
#[derive(Default)]
pub struct Opener {
    bundle: Option<(BundlePlace, std::result::Result<Vec<u8>, String>)>,
}

/// A bundle's pack name, offset and length.
type BundlePlace = (String, u32, u32);

/// A secret that may open a vault.
pub enum Secret<'a> {
    /// The recovery key: tried against every recovery slot.
    Recovery(&'a RecoveryKey),
    /// A device key: opens its own slot.
    Device(&'a DeviceKey),
    /// A passphrase: tried against every passphrase slot.
    Passphrase(&'a str),
}

/// A device's own key to a vault: the slot it opens and the 256-bit secret.
#[derive(Clone, Debug)]
pub struct DeviceKey {
    /// The slot this key opens.
    pub slot: SlotId,
    /// The secret (zeroized on drop, redacted in Debug).
    pub key: Key32,
}

/// Settings chosen at `init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Label of the first device slot (this device's name).
    pub device_label: String,
    /// FastCDC parameters.
    pub chunker: ChunkerParams,
    /// zstd level.
    pub compression_level: i32,
    /// Target pack size in bytes.
    pub pack_bytes: u32,
    /// Mark the vault append-only ([`crate::append_only`]).
    pub append_only: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            device_label: crate::hostname(),
            chunker: ChunkerParams::default(),
            compression_level: 3,
            pack_bytes: 8 << 20,
            append_only: false,
        }
    }
}

/// The end of the second a store's `LastModified` (Unix seconds) names, in nanoseconds.
pub(crate) fn stored_ns(modified: i64) -> i64 {
    modified.saturating_add(1).saturating_mul(1_000_000_000)
}

/// HEAD requests in flight.
const HEADS_AT_ONCE: usize = 16;
/// Trees read at once (remote: each read waits a round trip; local: each is a decode).
const TREES_AT_ONCE: usize = 32;
/// Tree packs fetched at once into the cache.
const TREE_PACKS_AT_ONCE: usize = 8;

/// A snapshot with the time it counts as taken (see [`Vault::snapshots_dated`]).
#[derive(Clone, Debug)]
pub struct Dated {
    /// Its id.
    pub id: SnapshotId,
    /// Its own time, or the store's write time (end of that second) when that is earlier.
    pub time_ns: i64,
    /// The snapshot.
    pub snapshot: Snapshot,
}

/// What `init` hands back: the vault, the recovery key to show once, this device's key.
pub struct Created {
    /// The new vault, unlocked.
    pub vault: Vault,
    /// Show to the user once; it is the only way in without a device.
    pub recovery_key: RecoveryKey,
    /// Store on this device.
    pub device_key: DeviceKey,
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Created({:?}, recovery key [REDACTED])", self.vault)
    }
}

/// An unlocked vault. Cloning is cheap (the store is shared) and copies the keys, each
/// copy wiped on drop.
#[derive(Clone)]
pub struct Vault {
    backend: Backend,
    keys: VaultKeys,
    config: Config,
    master: MasterKey,
    cache: Option<Arc<Cache>>,
    /// The config and the device slot as the store holds them, for the cache to keep.
    sealed: Arc<Sealed>,
}

/// The config and device key slot a vault was opened from, sealed as stored.
#[derive(Default)]
struct Sealed {
    config: Bytes,
    slot: Option<(SlotId, Bytes)>,
    /// Opened from the cache's copies: the slot is asked for with the first snapshot
    /// listing, so a device whose slot was removed is refused one round trip later.
    unconfirmed: bool,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vault({})", self.backend.url())
    }
}

impl Vault {
    /// Creates a vault: a recovery slot, a device slot, then `config` (written last, and
    /// only if absent, so a concurrent or repeated `init` never overwrites a vault).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] when the location already holds a vault (nothing is written).
    pub async fn init(mut backend: Backend, opts: InitOptions) -> Result<Created> {
        // An append-only vault's first writes are its own (checksums: Object Lock wants them).
        backend.set_append_only(opts.append_only)?;
        if backend.exists(names::CONFIG).await? || !backend.list(names::KEYS).await?.is_empty() {
            return Err(Error::AlreadyExists(backend.url().to_string()));
        }
        let master = MasterKey::generate();
        let keys = master.derive();
        let recovery_key = RecoveryKey::generate();
        let device_key = DeviceKey { slot: SlotId::random(), key: Key32::generate() };
        let recovery_slot = SlotId::random();
        let slots = [
            (recovery_slot, SlotKind::Recovery, recovery_key.secret().expose().as_slice(), "recovery key".to_string()),
            (device_key.slot, SlotKind::Device, device_key.key.expose().as_slice(), opts.device_label.clone()),
        ];
        let mut sealed = Sealed::default();
        for (id, kind, secret, label) in slots {
            let slot = Bytes::from(KeySlot::seal(&id, kind, Kdf::HkdfSha256, secret, &master, &label)?.encode());
            backend.put_new(&names::key(&id), slot.clone()).await?;
            if id == device_key.slot {
                sealed.slot = Some((id, slot));
            }
        }
        let config = Config {
            vault_id: zerok_core::VaultId::random(),
            chunker: opts.chunker,
            compression_level: opts.compression_level,
            pack_bytes: opts.pack_bytes,
            created: crate::now_secs(),
            append_only: opts.append_only,
        };
        sealed.config = Bytes::from(config.encode(&keys));
        if let Err(e) = backend.put_new(names::CONFIG, sealed.config.clone()).await {
            for id in [recovery_slot, device_key.slot] {
                let _ = backend.delete(&names::key(&id)).await;
            }
            return Err(e);
        }
        let sealed = Arc::new(sealed);
        Ok(Created { vault: Vault { backend, keys, config, master, cache: None, sealed }, recovery_key, device_key })
    }

    /// Reads the config header: refuses a newer format before any key is tried, and returns
    /// the vault id.
    ///
    /// # Errors
    /// [`Error::NoVault`], [`Error::Unsupported`] or [`Error::Corrupt`].
    pub async fn peek(backend: &Backend) -> Result<zerok_core::VaultId> {
        let bytes = match backend.get(names::CONFIG).await {
            Err(Error::NotFound { .. }) => return Err(Error::NoVault(backend.url().to_string())),
            other => other?,
        };
        config::peek_vault_id(&bytes)
    }

    /// Unlocks a vault with a secret.
    ///
    /// # Errors
    /// [`Error::WrongKey`] when no slot opens; [`Error::NoVault`], [`Error::Unsupported`],
    /// [`Error::Corrupt`] (config MAC) or storage errors.
    pub async fn open(mut backend: Backend, secret: Secret<'_>) -> Result<Vault> {
        // A device key names its slot: the slot is read beside the config, in one round trip.
        let device_slot = async {
            match secret {
                Secret::Device(dev) => Some(backend.get(&names::key(&dev.slot)).await),
                _ => None,
            }
        };
        let (config_bytes, device_slot) = tokio::join!(backend.get(names::CONFIG), device_slot);
        let config_bytes = match config_bytes {
            Err(Error::NotFound { .. }) => return Err(Error::NoVault(backend.url().to_string())),
            other => other?,
        };
        config::check_version(&config_bytes)?;
        let mut sealed = Sealed { config: config_bytes.clone(), ..Sealed::default() };
        let master = match secret {
            Secret::Device(dev) => {
                let bytes = match device_slot.expect("read for a device key") {
                    Err(Error::NotFound { .. }) => return Err(Error::WrongKey),
                    other => other?,
                };
                let master = KeySlot::decode(&dev.slot, &bytes)?.open(&dev.slot, dev.key.expose())?;
                sealed.slot = Some((dev.slot, bytes));
                master
            }
            Secret::Recovery(key) => Self::try_slots(&backend, SlotKind::Recovery, key.secret().expose()).await?,
            Secret::Passphrase(pass) => Self::try_slots(&backend, SlotKind::Passphrase, pass.as_bytes()).await?,
        };
        let keys = master.derive();
        let config = Config::decode(&config_bytes, &keys)?;
        backend.set_append_only(config.append_only)?;
        Ok(Vault { backend, keys, config, master, cache: None, sealed: Arc::new(sealed) })
    }

    /// Opens the vault with a device key from the copies of its config and slot in
    /// `cache`, without a round trip; `None` when the cache lacks them or they do not open
    /// (then [`Vault::open`]). The slot's presence in the store is confirmed beside the first
    /// snapshot listing ([`Vault::snapshots_dated`]): a slot removed since fails there.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a newer format.
    pub fn open_cached(mut backend: Backend, dev: &DeviceKey, cache: Cache) -> Result<Option<Vault>> {
        let slot_name = names::key(&dev.slot);
        let (Some(config_bytes), Some(slot_bytes)) = (cache.get(names::CONFIG), cache.get(&slot_name)) else {
            return Ok(None);
        };
        config::check_version(&config_bytes)?;
        let opened = KeySlot::decode(&dev.slot, &slot_bytes).and_then(|slot| slot.open(&dev.slot, dev.key.expose()));
        let Ok(master) = opened else {
            cache.remove(&slot_name);
            return Ok(None);
        };
        let keys = master.derive();
        let Ok(config) = Config::decode(&config_bytes, &keys) else {
            cache.remove(names::CONFIG);
            return Ok(None);
        };
        let sealed =
            Sealed { config: config_bytes.into(), slot: Some((dev.slot, slot_bytes.into())), unconfirmed: true };
        backend.set_append_only(config.append_only)?;
        Ok(Some(Vault { backend, keys, config, master, cache: Some(Arc::new(cache)), sealed: Arc::new(sealed) }))
    }

    /// This vault with the admin credentials when it is append-only (they may delete);
    /// else as it is.
    ///
    /// # Errors
    /// [`Error::AppendOnly`] when the vault is append-only and the admin credentials are
    /// not set ([`crate::append_only::ADMIN_ACCESS_KEY_ENV`]).
    pub fn into_admin(mut self) -> Result<Vault> {
        if self.config.append_only {
            self.backend = self.backend.as_admin()?;
        }
        Ok(self)
    }

    /// This vault reading and keeping its metadata through `cache` (see [`Cache`]); the
    /// cache keeps the config and the device slot it was opened with too.
    pub fn with_cache(mut self, cache: Cache) -> Vault {
        cache.put(names::CONFIG, &self.sealed.config);
        if let Some((id, bytes)) = &self.sealed.slot {
            cache.put(&names::key(id), bytes);
        }
        self.cache = Some(Arc::new(cache));
        self
    }

    /// For a vault opened from cached copies: fails when the store no longer holds the
    /// device's slot (the device was removed), dropping the cached copy.
    async fn confirm_slot(&self) -> Result<()> {
        let Some((id, _)) = self.sealed.slot.as_ref().filter(|_| self.sealed.unconfirmed) else { return Ok(()) };
        let name = names::key(id);
        if self.backend.exists(&name).await? {
            return Ok(());
        }
        if let Some(cache) = &self.cache {
            cache.remove(&name);
        }
        Err(Error::WrongKey)
    }

    /// Reads immutable object `name` and opens it with `open`: from the cache when it holds
    /// a copy that opens (a copy that does not is dropped), else from the store, caching
    /// what opened.
    ///
    /// # Errors
    /// Storage errors, or `open`'s error on the store's bytes.
    pub(crate) async fn get_verified<T>(&self, name: &str, open: impl Fn(&[u8]) -> Result<T>) -> Result<T> {
        if let Some(cache) = &self.cache
            && let Some(bytes) = cache.get(name)
        {
            match open(&bytes) {
                Ok(value) => return Ok(value),
                Err(e) => {
                    tracing::warn!(error = %e, "a cached copy did not open; reading the store");
                    cache.remove(name);
                }
            }
        }
        let bytes = self.backend.get(name).await?;
        let value = open(&bytes)?;
        if let Some(cache) = &self.cache {
            cache.put(name, &bytes);
        }
        Ok(value)
    }

    /// Keeps a copy of an object this process wrote, when the vault has a cache.
    pub(crate) fn cache_written(&self, name: &str, bytes: &[u8]) {
        if let Some(cache) = &self.cache {
            cache.put(name, bytes);
        }
    }

    /// Drops the cached objects of `folder` that `listed` (the store's listing) lacks.
    pub(crate) fn cache_retain<'a>(&self, folder: &str, listed: impl Iterator<Item = &'a str>) {
        if let Some(cache) = &self.cache {
            cache.retain(folder, &listed.map(str::to_string).collect());
        }
    }

    async fn read_slot(backend: &Backend, id: &SlotId) -> Result<KeySlot> {
        KeySlot::decode(id, &backend.get(&names::key(id)).await?)
    }

    async fn try_slots(backend: &Backend, kind: SlotKind, secret: &[u8]) -> Result<MasterKey> {
        for (id, slot) in Self::slots_of(backend).await? {
            if slot.kind == kind
                && let Ok(master) = slot.open(&id, secret)
            {
                return Ok(master);
            }
        }
        Err(Error::WrongKey)
    }

    async fn slots_of(backend: &Backend) -> Result<Vec<(SlotId, KeySlot)>> {
        let mut out = Vec::new();
        for (name, _) in backend.list(names::KEYS).await? {
            let id = SlotId::from_hex(names::id_part(&name)).map_err(|_| Error::corrupt(&name, "bad slot name"))?;
            out.push((id, Self::read_slot(backend, &id).await?));
        }
        Ok(out)
    }

    /// All key slots.
    ///
    /// # Errors
    /// Storage errors, or a slot that does not parse.
    pub async fn slots(&self) -> Result<Vec<(SlotId, KeySlot)>> {
        Self::slots_of(&self.backend).await
    }

    /// Adds a slot opened by `secret` (a device key or a passphrase). Existing data is not
    /// touched.
    ///
    /// # Errors
    /// Storage errors; invalid KDF parameters.
    pub async fn add_slot(&self, kind: SlotKind, kdf: Kdf, secret: &[u8], label: &str) -> Result<SlotId> {
        let id = SlotId::random();
        let slot = KeySlot::seal(&id, kind, kdf, secret, &self.master, label)?;
        self.backend.put_new(&names::key(&id), Bytes::from(slot.encode())).await?;
        Ok(id)
    }

    /// Adds a slot for a new device and returns its key.
    ///
    /// # Errors
    /// As [`Vault::add_slot`].
    pub async fn add_device(&self, label: &str) -> Result<DeviceKey> {
        let key = Key32::generate();
        let slot = self.add_slot(SlotKind::Device, Kdf::HkdfSha256, key.expose(), label).await?;
        Ok(DeviceKey { slot, key })
    }

    /// Removes a slot. Refuses to remove the last recovery slot, which would leave the
    /// vault unrecoverable once its devices are gone.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an unknown slot or the last recovery slot.
    pub async fn remove_slot(&self, id: &SlotId) -> Result<()> {
        let slots = self.slots().await?;
        let Some((_, slot)) = slots.iter().find(|(s, _)| s == id) else {
            return Err(Error::Invalid(format!("no key slot {}", id.short())));
        };
        let recoveries = slots.iter().filter(|(_, s)| s.kind == SlotKind::Recovery).count();
        if slot.kind == SlotKind::Recovery && recoveries == 1 {
            return Err(Error::Invalid("refusing to remove the only recovery key slot".into()));
        }
        self.backend.delete(&names::key(id)).await
    }

    /// The storage backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The derived keys.
    pub fn keys(&self) -> &VaultKeys {
        &self.keys
    }

    /// The vault's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every snapshot, oldest first (by the time each counts as taken: see
    /// [`Vault::snapshots_dated`]).
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming a snapshot that does not open.
    pub async fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        Ok(self.snapshots_dated().await?.into_iter().map(|d| (d.id, d.snapshot)).collect())
    }

    /// Every snapshot with the time it counts as taken: its own `time_ns`, but never later
    /// than the store wrote it (`LastModified`, to the end of its second), so a snapshot
    /// dated in the future cannot stay `latest`. Sorted by that time.
    ///
    /// # Errors
    /// As [`Vault::snapshots`].
    pub async fn snapshots_dated(&self) -> Result<Vec<Dated>> {
        let (listed, confirmed) = tokio::join!(self.backend.list_listed(names::SNAPSHOTS), self.confirm_slot());
        confirmed?;
        let listed = listed?;
        self.cache_retain(names::SNAPSHOTS, listed.iter().map(|l| l.name.as_str()));
        let mut all: Vec<Dated> = futures::stream::iter(listed)
            .map(|l| async move {
                let id =
                    SnapshotId::from_hex(names::id_part(&l.name)).map_err(|_| Error::corrupt(&l.name, "bad name"))?;
                let snapshot = self.load_snapshot(&id).await?;
                let time_ns = snapshot.time_ns.min(stored_ns(l.modified));
                Ok::<_, Error>(Dated { id, time_ns, snapshot })
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        all.sort_by_key(|d| (d.time_ns, d.snapshot.time_ns, d.id));
        Ok(all)
    }

    /// Every pack in the store with its size (whether or not an index names it).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn stored_packs(&self) -> Result<std::collections::HashMap<zerok_core::PackId, u64>> {
        Ok(self
            .backend
            .list(names::DATA)
            .await?
            .into_iter()
            .filter_map(|(name, size)| Some((zerok_core::PackId::from_hex(names::id_part(&name)).ok()?, size)))
            .collect())
    }

    /// Of `packs`, those the store does not hold, asked by HEAD (a listing may miss an
    /// object; a HEAD does not).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn absent_packs(
        &self,
        packs: Vec<zerok_core::PackId>,
    ) -> Result<std::collections::HashSet<zerok_core::PackId>> {
        let found: Vec<Result<(zerok_core::PackId, bool)>> = futures::stream::iter(packs)
            .map(|p| async move { Ok((p, self.backend.exists(&names::pack(&p)).await?)) })
            .buffer_unordered(HEADS_AT_ONCE)
            .collect()
            .await;
        let mut absent = std::collections::HashSet::new();
        for f in found {
            if let (pack, false) = f? {
                absent.insert(pack);
            }
        }
        Ok(absent)
    }

    /// Reads a pack's header (two ranged GETs: its length, then the header) and returns
    /// its chunks, checked against the pack's `size`, with what was found damaged. A
    /// version-3 header names a bundle's members only by length: the pack is then read
    /// whole, held to its name, and its bundles opened to name them (FORMAT.md §4.3).
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the pack when the header is damaged; storage errors.
    pub async fn read_pack_header(
        &self,
        id: &zerok_core::PackId,
        size: u64,
    ) -> Result<(Vec<crate::format::pack::BlobEntry>, Vec<Error>)> {
        let name = names::pack(id);
        if size < 4 {
            return Err(Error::corrupt(&name, "shorter than a pack header"));
        }
        let trailer = self.backend.get_range(&name, size - 4..size).await?;
        let len = crate::format::pack::header_len(size, &trailer).map_err(|why| Error::corrupt(&name, why))? as u64;
        let start = size - 4 - len;
        let sealed = self.backend.get_range(&name, start..size - 4).await?;
        let header = crate::format::pack::decode_header(self.keys.metadata(), &sealed, start)
            .map_err(|why| Error::corrupt(&name, why))?;
        if header.bundles.is_empty() {
            return Ok((header.entries, Vec::new()));
        }
        let bytes = self.backend.get(&name).await?;
        let mut bad = Vec::new();
        if *blake3::hash(&bytes).as_bytes() != id.0 {
            bad.push(Error::corrupt(&name, "content does not match its name (hash)"));
        }
        let (entries, damaged) = self.name_bundles(&name, header, &bytes);
        bad.extend(damaged);
        Ok((entries, bad))
    }

    /// Writes a new snapshot; returns its id and the object's name and size.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(SnapshotId, String, u64)> {
        let id = SnapshotId::random();
        let sealed = seal_msgpack(self.keys.metadata(), Kind::Snapshot, &id.0, snapshot);
        let (name, size) = (names::snapshot(&id), sealed.len() as u64);
        self.backend.put_new(&name, Bytes::from(sealed.clone())).await?;
        self.cache_written(&name, &sealed);
        Ok((id, name, size))
    }

    /// Stores a sync group's credentials (sealed under the metadata key) unless the vault
    /// has them already; returns their id for the snapshot to record. `device_key` and
    /// `roster` are the backing-up device's identity key and roster log (§4.8).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn save_sync_group(
        &self,
        secret: &[u8; 32],
        relays: &[String],
        device_key: Option<&[u8; 32]>,
        roster: Option<&[u8]>,
    ) -> Result<SyncGroupId> {
        let time_ns = crate::now_ns();
        let group = SyncGroup {
            version: 1,
            secret: secret.to_vec(),
            relays: relays.to_vec(),
            time_ns,
            device_key: device_key.map(|k| k.to_vec()),
            roster: roster.map(<[u8]>::to_vec),
        };
        let id = group.id(&self.keys);
        let name = names::sync_group(&id);
        if self.backend.exists(&name).await? {
            return Ok(id);
        }
        let sealed = seal_msgpack(self.keys.metadata(), Kind::SyncGroup, &id.0, &group);
        match self.backend.put_new(&name, sealed.into()).await {
            Ok(()) | Err(Error::AlreadyExists(_)) => Ok(id),
            Err(e) => Err(e),
        }
    }

    /// Reads stored sync-group credentials.
    ///
    /// # Errors
    /// [`Error::NotFound`] or [`Error::Corrupt`], naming the object.
    pub async fn load_sync_group(&self, id: &SyncGroupId) -> Result<SyncGroup> {
        let name = names::sync_group(id);
        let bytes = self.backend.get(&name).await?;
        let group: SyncGroup = open_msgpack(self.keys.metadata(), Kind::SyncGroup, &id.0, &name, &bytes)?;
        if group.version != 1 {
            return Err(Error::Unsupported { version: group.version, supported: 1 });
        }
        if group.secret.len() != 32 || group.device_key.as_ref().is_some_and(|k| k.len() != 32) {
            return Err(Error::corrupt(&name, "group secret or device key is not 32 bytes"));
        }
        Ok(group)
    }

    /// Every stored sync group, oldest first.
    ///
    /// # Errors
    /// As [`Vault::load_sync_group`].
    pub async fn sync_groups(&self) -> Result<Vec<(SyncGroupId, SyncGroup)>> {
        let mut all = Vec::new();
        for (name, _) in self.backend.list(names::SYNC).await? {
            let id = SyncGroupId::from_hex(names::id_part(&name)).map_err(|_| Error::corrupt(&name, "bad name"))?;
            all.push((id, self.load_sync_group(&id).await?));
        }
        all.sort_by_key(|(id, g)| (g.time_ns, *id));
        Ok(all)
    }

    /// Reads one snapshot.
    ///
    /// # Errors
    /// [`Error::NotFound`] or [`Error::Corrupt`], naming it.
    pub async fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let name = names::snapshot(id);
        let snap: Snapshot = self
            .get_verified(&name, |bytes| open_msgpack(self.keys.metadata(), Kind::Snapshot, &id.0, &name, bytes))
            .await?;
        if snap.version != 1 {
            return Err(Error::Unsupported { version: snap.version, supported: 1 });
        }
        Ok(snap)
    }

    /// Resolves `latest`, a full id, or a unique hex prefix.
    ///
    /// # Errors
    /// [`Error::Snapshot`] when nothing or more than one snapshot matches.
    pub async fn find_snapshot(&self, spec: &str) -> Result<(SnapshotId, Snapshot)> {
        Self::pick(self.snapshots().await?, spec)
    }

    /// Resolves `spec` as [`Vault::find_snapshot`] does, among `all` (oldest first).
    ///
    /// # Errors
    /// [`Error::Snapshot`] when nothing or more than one snapshot matches.
    pub fn pick(mut all: Vec<(SnapshotId, Snapshot)>, spec: &str) -> Result<(SnapshotId, Snapshot)> {
        if spec == "latest" {
            return all.pop().ok_or(Error::Snapshot(spec.into(), "the vault has no snapshots"));
        }
        let spec_lc = spec.to_ascii_lowercase();
        let mut hits = all.into_iter().filter(|(id, _)| id.to_string().starts_with(&spec_lc));
        match (hits.next(), hits.next()) {
            (Some(hit), None) if !spec.is_empty() => Ok(hit),
            (Some(_), Some(_)) => Err(Error::Snapshot(spec.into(), "prefix matches several snapshots")),
            _ => Err(Error::Snapshot(spec.into(), "no such snapshot")),
        }
    }

    /// Reads, authenticates, decompresses and verifies one chunk.
    ///
    /// # Errors
    /// [`Error::NotFound`] when no index lists it; [`Error::Corrupt`] naming the pack and
    /// chunk when any check fails.
    pub async fn read_chunk(&self, index: &MasterIndex, id: &ChunkId) -> Result<Vec<u8>> {
        if let Some(cache) = &self.cache {
            for loc in index.places(id) {
                let (name, e) = (names::pack(&loc.pack), loc.entry);
                let Some(sealed) = cache.get_range(&name, e.offset as u64..e.offset as u64 + e.length as u64) else {
                    continue;
                };
                match self.open_chunk(&name, &e, &sealed) {
                    Ok(plain) => return Ok(plain),
                    Err(err) => {
                        tracing::warn!(error = %err, "a cached pack did not open; reading the store");
                        cache.remove(&name);
                    }
                }
            }
        }
        let (name, loc, sealed) = self.read_sealed(index, id).await?;
        self.open_chunk(&name, &loc.entry, &sealed)
    }

    /// Copies into the cache every tree pack (a pack of trees only) `index` names that it
    /// lacks, whole and checked against its name, and drops the cached packs `index` no
    /// longer names. Nothing to do without a cache. A pack that cannot be fetched is left to
    /// be read from the store when needed.
    pub async fn cache_tree_packs(&self, index: &MasterIndex) {
        let Some(cache) = &self.cache else { return };
        let tree_packs: Vec<_> = index
            .packs
            .iter()
            .filter(|(_, entries)| crate::format::pack::is_tree_pack(entries))
            .map(|(id, _)| *id)
            .collect();
        cache.retain(names::DATA, &tree_packs.iter().map(names::pack).collect());
        let missing = tree_packs.into_iter().filter(|id| !cache.has(&names::pack(id)));
        futures::stream::iter(missing)
            .for_each_concurrent(TREE_PACKS_AT_ONCE, |id| async move {
                let name = names::pack(&id);
                match self.backend.get(&name).await {
                    Ok(bytes) if *blake3::hash(&bytes).as_bytes() == id.0 => cache.put(&name, &bytes),
                    Ok(_) => tracing::warn!("a tree pack does not match its name; left uncached"),
                    Err(e) => tracing::debug!(error = %e, "tree pack not cached"),
                }
            })
            .await;
    }

    /// Reads the trees `roots` and every tree below them, level by level: each level's trees
    /// are read in spans of neighbours (one ranged read for many trees of a pack), many
    /// spans at once; each tree's result under its id (the trees below one that fails are
    /// not read).
    pub async fn load_trees(&self, index: &MasterIndex, roots: Vec<ChunkId>) -> HashMap<ChunkId, Result<Tree>> {
        let mut out: HashMap<ChunkId, Result<Tree>> = HashMap::new();
        let mut queued: HashSet<ChunkId> = roots.iter().copied().collect();
        let mut level: Vec<ChunkId> = queued.iter().copied().collect();
        while !level.is_empty() {
            let (spans, unlisted) = tree_spans(index, level);
            let mut loaded: Vec<Vec<(ChunkId, Result<Tree>)>> = futures::stream::iter(spans)
                .map(|span| self.load_span(index, span))
                .buffer_unordered(TREES_AT_ONCE)
                .collect()
                .await;
            for id in unlisted {
                loaded.push(vec![(id, self.load_tree(index, &id).await)]);
            }
            level = Vec::new();
            for (id, tree) in loaded.into_iter().flatten() {
                if let Ok(tree) = &tree {
                    level.extend(tree.nodes.iter().filter_map(|n| n.subtree).filter(|sub| queued.insert(*sub)));
                }
                out.insert(id, tree);
            }
        }
        out
    }

    /// The trees of one span, read at once (from the cache when it holds the pack); a tree
    /// that does not come out of it is read on its own, from any copy.
    async fn load_span(&self, index: &MasterIndex, span: TreeSpan) -> Vec<(ChunkId, Result<Tree>)> {
        let (name, range) = (span.pack, span.start..span.end);
        let cached = self.cache.as_ref().and_then(|c| c.get_range(&name, range.clone()).map(Bytes::from));
        let bytes = match cached {
            Some(bytes) => bytes,
            None => match self.backend.get_range(&name, range).await {
                Ok(bytes) => bytes,
                // Each tree on its own, from any copy, many at once.
                Err(_) => {
                    return futures::stream::iter(span.items)
                        .map(|(id, _)| async move { (id, self.load_tree(index, &id).await) })
                        .buffer_unordered(TREES_AT_ONCE)
                        .collect()
                        .await;
                }
            },
        };
        let mut out = Vec::with_capacity(span.items.len());
        for (id, e) in span.items {
            let at = (e.offset as u64 - span.start) as usize;
            let tree = bytes
                .get(at..at + e.length as usize)
                .and_then(|sealed| self.open_chunk(&name, &e, sealed).ok())
                .map(|body| decode_tree(&id, &body));
            let tree = match tree {
                Some(Ok(tree)) => Ok(tree),
                _ => self.load_tree(index, &id).await,
            };
            out.push((id, tree));
        }
        out
    }

    /// Reads a chunk's sealed bytes (one ranged GET) without opening them; returns the pack
    /// name and location too, for [`Vault::open_chunk`].
    ///
    /// # Errors
    /// [`Error::NotFound`] when no index lists the chunk, or storage errors.
    pub async fn read_sealed(&self, index: &MasterIndex, id: &ChunkId) -> Result<(String, crate::BlobLocation, Bytes)> {
        let mut gone = None;
        // A chunk stored twice is read from the other pack when the first one is gone.
        for loc in index.places(id) {
            let name = names::pack(&loc.pack);
            let e = loc.entry;
            match self.backend.get_range(&name, e.offset as u64..e.offset as u64 + e.length as u64).await {
                Ok(sealed) => return Ok((name, *loc, sealed)),
                Err(e @ Error::NotFound { .. }) => gone = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(gone.unwrap_or_else(|| Error::NotFound { object: format!("chunk {id} (in no index)") }))
    }

    /// Opens the blob `e` names, read from pack `name`, and returns its chunk, checked
    /// against its id and length.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the pack and chunk.
    pub fn open_chunk(&self, name: &str, e: &BlobEntry, sealed: &[u8]) -> Result<Vec<u8>> {
        self.open_with(&mut Opener::default(), name, e, sealed)
    }

    /// As [`Vault::open_chunk`], keeping the last bundle opened in `opener`, so going
    /// through a pack's chunks in order opens each bundle once.
    ///
    /// # Errors
    /// As [`Vault::open_chunk`].
    pub fn open_with(&self, opener: &mut Opener, name: &str, e: &BlobEntry, sealed: &[u8]) -> Result<Vec<u8>> {
        let what = || format!("{name} (chunk {})", e.id.short());
        let plain = match e.within {
            None => {
                let key = if e.kind == Kind::Data { self.keys.data() } else { self.keys.metadata() };
                envelope::open(key, e.kind, &e.id.0, sealed, (e.raw_len.min(MAX_BLOB_BYTES)) as usize)
                    .map_err(|err| Error::corrupt(what(), err.to_string()))?
            }
            Some(within) => {
                let body = self
                    .bundle_body(opener, name, e, sealed)
                    .map_err(|why| Error::corrupt(what(), format!("its bundle: {why}")))?;
                let range = within as usize..within as usize + e.raw_len as usize;
                body.get(range).ok_or_else(|| Error::corrupt(what(), "lies outside its bundle"))?.to_vec()
            }
        };
        if plain.len() != e.raw_len as usize || self.keys.chunk_id(&plain) != e.id {
            return Err(Error::corrupt(what(), "content does not match its chunk id"));
        }
        Ok(plain)
    }

    /// The body of the bundle `e` lies in, opened once per bundle through `opener`.
    fn bundle_body<'o>(
        &self,
        opener: &'o mut Opener,
        name: &str,
        e: &BlobEntry,
        sealed: &[u8],
    ) -> std::result::Result<&'o [u8], String> {
        let place = (name.to_string(), e.offset, e.length);
        if opener.bundle.as_ref().is_none_or(|(at, _)| *at != place) {
            let body = envelope::open(self.keys.data(), Kind::Bundle, &[0; 32], sealed, MAX_BUNDLE_BYTES as usize)
                .map_err(|err| err.to_string());
            opener.bundle = Some((place, body));
        }
        let (_, body) = opener.bundle.as_ref().expect("just opened");
        body.as_deref().map_err(Clone::clone)
    }

    /// A bundle's whole body as members laid end to end, for copying it whole: each of the
    /// `listed` members (one bundle's index entries) where it lies, and what lies before,
    /// between or after them as members of their own, every piece named by its bytes.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the pack when the bundle does not open.
    pub fn bundle_members(
        &self,
        opener: &mut Opener,
        name: &str,
        listed: &[BlobEntry],
        sealed: &[u8],
    ) -> Result<Vec<(ChunkId, u32)>> {
        let first = listed.first().ok_or_else(|| Error::corrupt(name, "a bundle with no members"))?;
        let body = self
            .bundle_body(opener, name, first, sealed)
            .map_err(|why| Error::corrupt(format!("{name} (bundle at byte {})", first.offset), why))?;
        let mut cuts: Vec<usize> = vec![0, body.len()];
        for e in listed {
            let at = e.within.unwrap_or(0) as usize;
            cuts.extend([at.min(body.len()), (at + e.raw_len as usize).min(body.len())]);
        }
        cuts.sort_unstable();
        cuts.dedup();
        Ok(cuts.windows(2).map(|w| (self.keys.chunk_id(&body[w[0]..w[1]]), (w[1] - w[0]) as u32)).collect())
    }

    /// Every chunk of a pack whose header is `header`: the chunks it names and the members
    /// of the bundles it lays out by length (version 3), named by opening each from `pack`
    /// (the pack's bytes). Returns them in pack order, with the bundles that did not open
    /// (their members are left out).
    pub fn name_bundles(&self, name: &str, header: Header, pack: &[u8]) -> (Vec<BlobEntry>, Vec<Error>) {
        let Header { mut entries, bundles } = header;
        let mut bad = Vec::new();
        for layout in &bundles {
            let what = || format!("{name} (bundle at byte {})", layout.offset);
            let at = layout.offset as usize;
            let Some(sealed) = pack.get(at..at + layout.length as usize) else {
                bad.push(Error::corrupt(what(), "not in the bytes read"));
                continue;
            };
            let named = envelope::open(self.keys.data(), Kind::Bundle, &[0; 32], sealed, MAX_BUNDLE_BYTES as usize)
                .map_err(|err| err.to_string())
                .and_then(|body| layout.name(&body, |piece| self.keys.chunk_id(piece)));
            match named {
                Ok(members) => entries.extend(members),
                Err(why) => bad.push(Error::corrupt(what(), why)),
            }
        }
        entries.sort_by_key(|e| (e.offset, e.within));
        (entries, bad)
    }

    /// Reads one tree.
    ///
    /// # Errors
    /// As [`Vault::read_chunk`], or a tree that does not parse.
    pub async fn load_tree(&self, index: &MasterIndex, id: &ChunkId) -> Result<Tree> {
        decode_tree(id, &self.read_chunk(index, id).await?)
    }
}

/// A tree chunk's body as a tree of a version this build reads.
fn decode_tree(id: &ChunkId, body: &[u8]) -> Result<Tree> {
    let tree: Tree = rmp_serde::from_slice(body).map_err(|e| Error::corrupt(format!("tree {id}"), e.to_string()))?;
    if tree.version == 0 || tree.version > TREE_VERSION {
        return Err(Error::Unsupported { version: tree.version, supported: TREE_VERSION });
    }
    // Sorted, each name once (FORMAT.md §4.6): a name twice (a symlink, then a folder of
    // the same name) would lead a reader of the listing through the symlink.
    if let Some(w) = tree.nodes.windows(2).find(|w| w[0].name >= w[1].name) {
        let name = String::from_utf8_lossy(&w[1].name);
        return Err(Error::corrupt(format!("tree {id}"), format!("names out of order or twice at {name:?}")));
    }
    Ok(tree)
}

/// Most bytes between two trees read in one span.
const TREE_SPAN_GAP: u64 = 256 << 10;
/// Largest span of trees read at once.
const TREE_SPAN_BYTES: u64 = 4 << 20;

/// Neighbouring trees of one pack, read with one ranged read.
type TreeSpan = Span<(ChunkId, BlobEntry)>;

/// Cuts the trees `ids` into spans ([`crate::span::cut`]) by their first listed copy; and
/// the trees no index lists.
fn tree_spans(index: &MasterIndex, ids: Vec<ChunkId>) -> (Vec<TreeSpan>, Vec<ChunkId>) {
    let (mut placed, mut unlisted) = (Vec::with_capacity(ids.len()), Vec::new());
    for id in ids {
        match index.get(&id) {
            Some(loc) => placed.push((loc.pack, (id, loc.entry))),
            None => unlisted.push(id),
        }
    }
    (crate::span::cut(placed, |(_, e)| e, TREE_SPAN_GAP, TREE_SPAN_BYTES), unlisted)
}
