//! Vault mode's attachments (protocol document §9). A member announces one with
//! CONTENT_REF; the relay fetches the ciphertext from that device over iroh-blobs (proof it
//! holds it, and a verified copy), keeps it in the object store in parts of 8 MiB
//! (`content/<group hex>/<hash hex>/<part>.<parts>`), and serves it over iroh-blobs to
//! members of the groups that archived it, from a local iroh-blobs store (`content/` in the
//! data folder) refilled from the bucket when a copy is missing. The relay never holds a key: it stores and serves
//! ciphertext it cannot open.
//!
//! Bounds: an attachment's size (`max-content-bytes`), a group's archived total
//! (`max-group-content-bytes`), and fetches at once (4 per relay).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use iroh::{Endpoint, EndpointAddr, EndpointId};
use iroh_blobs::{
    Hash,
    api::blobs::BlobStatus,
    store::{
        GcConfig,
        fs::{FsStore, options::Options},
    },
};
use tokio::{io::AsyncReadExt, sync::Semaphore};
use zerok_core::sync::{DeviceId, GroupId, content::ContentHash};
use zerok_vault::Backend;
use zerok_wire::blobs::{Gate, Served};

use crate::{Error, Result, State};

/// Fetches from devices at once.
const INGESTS: usize = 4;
/// Longest an ingest may take (a 100 MiB attachment over a slow uplink).
const INGEST_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How often the local store sweeps what no tag holds.
const GC_INTERVAL: Duration = Duration::from_secs(300);

/// Bytes of ciphertext per archived object (a part is the unit of every read and write,
/// so no object store needs multipart uploads and no copy is held whole in memory).
const PART_BYTES: u64 = 8 << 20;

/// Parts of an attachment of `size` bytes.
fn parts_of(size: u64) -> u64 {
    size.div_ceil(PART_BYTES).max(1)
}

/// `content/<group hex>/<hash hex>/<part>.<parts>`: part names say how many there are, so
/// an attachment whose upload was cut short is told from a whole one.
fn part_name(group: &GroupId, hash: &ContentHash, part: u64, parts: u64) -> String {
    format!("content/{}/{hash}/{part:06}.{parts:06}", hex::encode(group.0))
}

/// An archived attachment's place from a part's name: group, hash, part, parts.
fn parse_part(name: &str) -> Option<(GroupId, ContentHash, u64, u64)> {
    let mut it = name.rsplit('/');
    let (file, hash, group) = (it.next()?, it.next()?, it.next()?);
    let (part, parts) = file.split_once('.')?;
    let (part, parts) = (part.parse().ok()?, parts.parse().ok()?);
    Some((GroupId::from_hex(group).ok()?, ContentHash::from_hex(hash).ok()?, part, parts))
}

fn held_tag(hash: &ContentHash) -> String {
    format!("held/{hash}")
}

/// An object-store or local-store failure, without object names (they hold ids).
fn content_err(what: &str, e: impl std::fmt::Display) -> Error {
    let text = e.to_string();
    let text = if text.contains("content/") { "request failed".to_string() } else { text };
    Error::ObjectStore(format!("attachment {what}: {text}"))
}

/// One attachment to fetch from a device and archive.
struct Job {
    group: GroupId,
    hash: ContentHash,
    size: u64,
    /// The device that announced it.
    from: EndpointAddr,
}

/// Where a CONTENT_REF stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archived {
    /// The relay holds it.
    Held,
    /// It is being fetched from the device.
    Fetching,
}

impl Index {
    fn add(&mut self, group: GroupId, hash: ContentHash, size: u64) {
        if self.sizes.insert((group, hash), size).is_none() {
            self.groups.entry(hash).or_default().insert(group);
            *self.bytes.entry(group).or_default() += size;
        }
    }
}

#[derive(Default)]
struct Index {
    /// Groups that archived each attachment.
    groups: HashMap<ContentHash, HashSet<GroupId>>,
    /// Bytes archived per group.
    bytes: HashMap<GroupId, u64>,
    /// Bytes of each archived attachment, per group.
    sizes: HashMap<(GroupId, ContentHash), u64>,
    /// Fetches under way.
    fetching: HashSet<(GroupId, ContentHash)>,
}

/// The vault relay's attachments.
pub struct Attachments {
    store: FsStore,
    backend: Backend,
    index: Mutex<Index>,
    ingests: Semaphore,
    refills: Semaphore,
    max_bytes: u64,
    group_cap: u64,
    /// What the relay served.
    pub served: Arc<Served>,
}

impl Attachments {
    /// Opens the local store under `dir` and indexes what the bucket holds.
    ///
    /// # Errors
    /// The local store cannot be opened, or the bucket cannot be listed.
    pub async fn open(dir: &std::path::Path, backend: Backend, max_bytes: u64, group_cap: u64) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
        let mut options = Options::new(dir);
        options.gc = Some(GcConfig { interval: GC_INTERVAL, add_protected: None });
        let store = FsStore::load_with_opts(dir.join("blobs.db"), options)
            .await
            .map_err(|e| Error::Io(format!("attachment store: {e}")))?;
        // An attachment counts once every one of its parts is listed.
        let mut found: HashMap<(GroupId, ContentHash), (u64, HashSet<u64>, u64)> = HashMap::new();
        for (name, size) in backend.list("content").await.map_err(|e| content_err("listing", e))? {
            let Some((group, hash, part, parts)) = parse_part(&name) else { continue };
            let seen = found.entry((group, hash)).or_insert((parts, HashSet::new(), 0));
            if seen.0 == parts && part < parts && seen.1.insert(part) {
                seen.2 += size;
            }
        }
        let mut index = Index::default();
        for ((group, hash), (parts, seen, size)) in found {
            if seen.len() as u64 == parts {
                index.add(group, hash, size);
            }
        }
        Ok(Self {
            store,
            backend,
            index: Mutex::new(index),
            ingests: Semaphore::new(INGESTS),
            refills: Semaphore::new(INGESTS),
            max_bytes,
            group_cap,
            served: Arc::default(),
        })
    }

    /// The iroh-blobs protocol serving archived attachments to members, gated through `state`.
    pub fn protocol(&self, state: Weak<State>) -> iroh_blobs::BlobsProtocol {
        let events = zerok_wire::blobs::events(Arc::new(MembersOf(state)), self.served.clone());
        iroh_blobs::BlobsProtocol::new(&self.store, Some(events))
    }

    /// Archives `hash` for `group`, fetching it from `device` (at `from`) unless the
    /// relay holds it for that group already.
    ///
    /// # Errors
    /// [`Error::TooLarge`] over `max-content-bytes`, [`Error::Quota`] over the group's
    /// archived total.
    pub fn request(
        self: &Arc<Self>,
        endpoint: &Endpoint,
        group: GroupId,
        hash: ContentHash,
        size: u64,
        from: EndpointAddr,
    ) -> Result<Archived> {
        let mut index = self.index.lock().expect("not poisoned");
        if index.groups.get(&hash).is_some_and(|g| g.contains(&group)) {
            return Ok(Archived::Held);
        }
        if index.fetching.contains(&(group, hash)) {
            return Ok(Archived::Fetching);
        }
        if size > self.max_bytes {
            return Err(Error::TooLarge(self.max_bytes));
        }
        let pending: u64 = index.fetching.iter().filter(|(g, _)| *g == group).count() as u64 * self.max_bytes;
        if index.bytes.get(&group).copied().unwrap_or(0) + pending + size > self.group_cap {
            return Err(Error::Quota(self.group_cap));
        }
        index.fetching.insert((group, hash));
        drop(index);
        let (this, endpoint) = (self.clone(), endpoint.clone());
        tokio::spawn(async move {
            let job = Job { group, hash, size, from };
            let result = tokio::time::timeout(INGEST_TIMEOUT, this.ingest(&endpoint, job)).await;
            let failed = match result {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("timed out".to_string()),
            };
            if let Some(why) = failed {
                tracing::warn!(error = %why, "an attachment could not be archived (the device may announce it again)");
            }
            this.index.lock().expect("not poisoned").fetching.remove(&(group, hash));
        });
        Ok(Archived::Fetching)
    }

    /// Fetches, checks and uploads one attachment; whatever fails, the partial copy is
    /// left untagged for the local store's collection (a device cannot fill the relay's
    /// disk with fetches it breaks off).
    async fn ingest(&self, endpoint: &Endpoint, job: Job) -> Result<()> {
        let _permit = self.ingests.acquire().await.map_err(|e| Error::Io(e.to_string()))?;
        let h = Hash::from_bytes(job.hash.0);
        let tag = format!("fetch/{}/{}", hex::encode(job.group.0), job.hash);
        self.store.tags().set(&tag, h).await.map_err(|e| content_err("store", e))?;
        let archived = self.fetch_and_upload(endpoint, &job).await;
        self.store.tags().delete(&tag).await.map_err(|e| content_err("store", e))?;
        archived?;
        self.index.lock().expect("not poisoned").add(job.group, job.hash, job.size);
        Ok(())
    }

    async fn fetch_and_upload(&self, endpoint: &Endpoint, job: &Job) -> Result<()> {
        let Job { group, hash, size, .. } = *job;
        let from = job.from.clone();
        let h = Hash::from_bytes(hash.0);
        if !self.is_complete(h).await? {
            let conn = zerok_wire::blobs::connect(endpoint, from).await.map_err(|e| content_err("fetch", e))?;
            let request =
                zerok_wire::blobs::missing(&self.store, h, size).await.map_err(|e| content_err("store", e))?;
            let fetched = self.store.remote().execute_get(conn.clone(), request).await;
            conn.close(0u32.into(), b"done");
            fetched.map_err(|e| content_err("fetch", e))?;
        }
        let held = self.size_of(h).await?;
        if held != size {
            return Err(Error::Invalid(format!("attachment is {held} bytes, announced as {size}")));
        }
        let mut reader = self.store.reader(h);
        let parts = parts_of(size);
        for part in 0..parts {
            let len = (size - part * PART_BYTES).min(PART_BYTES) as usize;
            let mut bytes = vec![0u8; len];
            reader.read_exact(&mut bytes).await.map_err(|e| content_err("store", e))?;
            let name = part_name(&group, &hash, part, parts);
            self.backend.put(&name, bytes.into()).await.map_err(|e| content_err("upload", e))?;
        }
        self.store.tags().set(held_tag(&hash), h).await.map_err(|e| content_err("store", e))?;
        Ok(())
    }

    async fn is_complete(&self, hash: Hash) -> Result<bool> {
        Ok(matches!(self.store.status(hash).await.map_err(|e| content_err("store", e))?, BlobStatus::Complete { .. }))
    }

    async fn size_of(&self, hash: Hash) -> Result<u64> {
        match self.store.status(hash).await.map_err(|e| content_err("store", e))? {
            BlobStatus::Complete { size } => Ok(size),
            _ => Err(Error::Invalid("attachment incomplete".into())),
        }
    }

    /// The groups that archived `hash`.
    fn groups_of(&self, hash: &ContentHash) -> Vec<GroupId> {
        let index = self.index.lock().expect("not poisoned");
        index.groups.get(hash).map(|g| g.iter().copied().collect()).unwrap_or_default()
    }

    /// Puts the bucket's copy back into the local store when it is missing there (a new
    /// machine, a lost disk), streaming it through.
    async fn refill(&self, group: &GroupId, hash: &ContentHash) -> Result<()> {
        let h = Hash::from_bytes(hash.0);
        if self.is_complete(h).await? {
            return Ok(());
        }
        let _permit = self.refills.acquire().await.map_err(|e| Error::Io(e.to_string()))?;
        let size = self.index.lock().expect("not poisoned").sizes.get(&(*group, *hash)).copied().unwrap_or(0);
        let parts = parts_of(size);
        let names: Vec<String> = (0..parts).map(|p| part_name(group, hash, p, parts)).collect();
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(2);
        let backend = self.backend.clone();
        tokio::spawn(async move {
            for name in names {
                let part =
                    backend.get(&name).await.map_err(|e| std::io::Error::other(content_err("read", e).to_string()));
                let failed = part.is_err();
                if tx.send(part).await.is_err() || failed {
                    return;
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        let tag = self.store.add_stream(stream).await.temp_tag().await.map_err(|e| content_err("store", e))?;
        if tag.hash() != h {
            return Err(Error::Damaged("an archived attachment does not match its hash".into()));
        }
        self.store.tags().set(held_tag(hash), h).await.map_err(|e| content_err("store", e))?;
        Ok(())
    }

    /// Flushes and closes the local store.
    pub async fn shutdown(&self) {
        let _ = self.store.shutdown().await;
    }
}

/// Lets a peer fetch an attachment when it is a member of a group that archived it.
struct MembersOf(Weak<State>);

impl Gate for MembersOf {
    async fn allows(&self, peer: EndpointId, hash: Hash) -> bool {
        let Some(state) = self.0.upgrade() else { return false };
        let Some(content) = state.attachments.as_ref() else { return false };
        let hash = ContentHash(*hash.as_bytes());
        let device = DeviceId(*peer.as_bytes());
        for group in content.groups_of(&hash) {
            let member = state.storage.standing(group, device).await.is_ok_and(|s| s.member && !s.removed);
            if member {
                return match content.refill(&group, &hash).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "an archived attachment could not be served");
                        false
                    }
                };
            }
        }
        false
    }
}

/// How a peer's connection reaches it back: its id and the addresses of its open paths.
pub fn dial_back(conn: &iroh::endpoint::Connection) -> EndpointAddr {
    let paths = conn.paths();
    EndpointAddr::from_parts(conn.remote_id(), paths.iter().map(|p| p.remote_addr().clone()))
}
