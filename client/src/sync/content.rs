//! A device's attachments (protocol document §9): an iroh-blobs store of ciphertext under
//! `sync/content/store/`, and a record per attachment under `sync/content/refs/` (0600: it
//! holds the attachment's key). Sent attachments are kept under a `sent/` tag until every
//! member has acknowledged them (or 30 days passed); a fetch in progress under a `fetch/`
//! tag, so an interrupted transfer resumes where it stopped, even after a restart; what is
//! untagged is swept by the store's garbage collection.

use std::{
    collections::BTreeSet,
    io::{Read, Write},
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use bytes::Bytes;
use futures::StreamExt;
use iroh::{EndpointAddr, EndpointId};
use iroh_blobs::{
    Hash,
    api::{blobs::BlobStatus, proto::ExportRangesItem, remote::GetProgressItem},
    store::{
        GcConfig,
        fs::{FsStore, options::Options},
    },
};
use serde::{Deserialize, Serialize};
use zerok_core::sync::{
    BlobId, DeviceId, GroupId, GroupSecret,
    content::{ContentHash, ContentId, ContentRef, Opener, Sealer},
};
use zerok_wire::blobs::{Gate, Served};

use crate::Error;

/// Largest attachment, unless the app sets another.
pub const DEFAULT_MAX_CONTENT_BYTES: u64 = 100 << 20;
/// Segments read ahead of the one being opened and written.
const OPEN_AHEAD: usize = 4;
/// How long a sent attachment is kept for members that have not acknowledged it.
pub const GRACE_SECS: u64 = 30 * 24 * 3600;
/// How often the store sweeps untagged data.
const GC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Bytes or a file to attach.
#[derive(Clone, Debug)]
pub enum ContentSource {
    /// In memory.
    Bytes(Vec<u8>),
    /// A file (its name travels in the reference).
    Path(PathBuf),
}

impl From<Vec<u8>> for ContentSource {
    fn from(data: Vec<u8>) -> Self {
        Self::Bytes(data)
    }
}

impl From<&Path> for ContentSource {
    fn from(path: &Path) -> Self {
        Self::Path(path.to_path_buf())
    }
}

/// What this device knows of one attachment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// The reference.
    pub content: ContentRef,
    /// The group its message was pushed in.
    pub group: GroupId,
    /// Its message.
    pub blob_id: BlobId,
    /// Who sent it.
    pub sender: DeviceId,
    /// When this device learnt of it, Unix seconds.
    pub since: u64,
    /// Set on the sender's own records.
    pub sent: Option<Sent>,
    /// Fetched and opened here.
    pub fetched: bool,
}

/// The sender's view of who holds an attachment.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sent {
    /// Members that acknowledged it.
    pub acked: BTreeSet<DeviceId>,
    /// Vault relays of the group when it was sent: each must hold it before this device
    /// releases its copy.
    pub vaults: BTreeSet<String>,
    /// Vault relays that hold it.
    pub archived: BTreeSet<String>,
    /// Its copy here was released (everyone has it, or the grace period ended).
    pub released: bool,
}

/// How a fetch went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Ciphertext bytes received by this fetch.
    pub received: u64,
    /// Ciphertext bytes that were here already (an interrupted fetch resumed).
    pub resumed_from: u64,
    /// Plaintext bytes written.
    pub size: u64,
}

/// Who may fetch this device's attachments: the group's members and relays.
#[derive(Debug, Default)]
pub struct Members(RwLock<BTreeSet<[u8; 32]>>);

impl Members {
    /// Replaces the set.
    pub fn set(&self, ids: impl IntoIterator<Item = [u8; 32]>) {
        *self.0.write().expect("not poisoned") = ids.into_iter().collect();
    }
}

impl Gate for Members {
    async fn allows(&self, peer: EndpointId, _hash: Hash) -> bool {
        self.0.read().expect("not poisoned").contains(peer.as_bytes())
    }
}

/// The attachment store of a device (opened when the device first sends or fetches an
/// attachment, and at every connect after that).
#[derive(Clone, Debug)]
pub struct ContentStore {
    store: FsStore,
    members: Arc<Members>,
    served: Arc<Served>,
}

/// The records of a device's attachments (`sync/content/refs/`).
#[derive(Clone, Debug)]
pub struct Refs {
    dir: PathBuf,
}

/// How long opening the store waits for a client of this device that was just dropped
/// (its store closes in the background) to let go of the database.
const OPEN_ATTEMPTS: u32 = 50;

fn hash_of(content: &ContentRef) -> Hash {
    Hash::from_bytes(content.hash.0)
}

fn store_err(e: impl std::fmt::Display) -> Error {
    Error::Content(format!("attachment store: {e}"))
}

fn sent_tag(hash: &ContentHash) -> String {
    format!("sent/{hash}")
}

fn fetch_tag(hash: &ContentHash) -> String {
    format!("fetch/{hash}")
}

impl ContentStore {
    /// Opens (or creates) the store under `dir` (`sync/content`), serving `members` and
    /// counting into `served`.
    ///
    /// # Errors
    /// When the store cannot be opened (another process holds it, a damaged database).
    pub async fn open(dir: &Path, members: Arc<Members>, served: Arc<Served>) -> Result<Self, Error> {
        let root = dir.join("store");
        crate::state_store::private_dir(&root)?;
        let mut attempt = 0;
        let store = loop {
            let mut options = Options::new(&root);
            options.gc = Some(GcConfig { interval: GC_INTERVAL, add_protected: None });
            match FsStore::load_with_opts(root.join("blobs.db"), options).await {
                Ok(store) => break store,
                Err(e) if attempt < OPEN_ATTEMPTS && e.to_string().contains("already open") => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => return Err(store_err(e)),
            }
        };
        Ok(Self { store, members, served })
    }

    /// The iroh-blobs protocol serving this store to [`ContentStore::members`].
    pub fn protocol(&self) -> iroh_blobs::BlobsProtocol {
        let events = zerok_wire::blobs::events(self.members.clone(), self.served.clone());
        iroh_blobs::BlobsProtocol::new(&self.store, Some(events))
    }

    /// Flushes and closes the store.
    pub async fn shutdown(&self) {
        let _ = self.store.shutdown().await;
    }

    /// Encrypts `source` as a new attachment of the group of `secret` and keeps its
    /// ciphertext here (tagged as sent) for members to fetch.
    ///
    /// # Errors
    /// [`Error::Content`] for a source over `max` bytes, one that changed while it was
    /// read, or read and store failures.
    pub async fn add(
        &self,
        secret: &GroupSecret,
        source: ContentSource,
        mime: &str,
        max: u64,
    ) -> Result<ContentRef, Error> {
        let (size, name) = match &source {
            ContentSource::Bytes(b) => (b.len() as u64, None),
            ContentSource::Path(p) => {
                let meta = std::fs::metadata(p).map_err(|e| Error::Content(format!("{}: {e}", p.display())))?;
                if !meta.is_file() {
                    return Err(Error::Content(format!("{}: not a regular file", p.display())));
                }
                (meta.len(), p.file_name().map(|n| n.to_string_lossy().into_owned()))
            }
        };
        if size > max {
            return Err(Error::Content(format!("attachment of {size} bytes is over the limit of {max} bytes")));
        }
        let id = ContentId::random();
        let sealer = Sealer::new(secret, &id, size);
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
        let producer = tokio::task::spawn_blocking(move || seal_into(sealer, source, &tx));
        let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        let added = self.store.add_stream(stream).await.temp_tag().await;
        let sealer = producer.await.map_err(|e| Error::State(e.to_string()))??;
        let tag = added.map_err(store_err)?;
        let hash = ContentHash(*tag.hash().as_bytes());
        self.store.tags().set(sent_tag(&hash), tag.hash_and_format()).await.map_err(store_err)?;
        let mime = if mime.is_empty() { "application/octet-stream" } else { mime };
        Ok(sealer.finish(id, hash, mime.to_string(), name))
    }

    /// Releases this device's copy of a sent attachment (garbage collection removes it).
    ///
    /// # Errors
    /// Store failures.
    pub async fn release(&self, hash: &ContentHash) -> Result<(), Error> {
        self.store.tags().delete(sent_tag(hash)).await.map_err(store_err)?;
        Ok(())
    }

    /// Ciphertext bytes of `hash` held here.
    ///
    /// # Errors
    /// Store failures.
    pub async fn local_bytes(&self, hash: &ContentHash) -> Result<u64, Error> {
        let info = self.store.remote().local(Hash::from_bytes(hash.0)).await.map_err(store_err)?;
        Ok(info.local_bytes())
    }

    /// Fetches an attachment's ciphertext from the first of `providers` that has it (what
    /// is here already is not fetched again, whoever sent it), verified as it streams, then
    /// opens it into `dest` (which must not exist). `progress` sees (bytes here, total).
    ///
    /// # Errors
    /// [`Error::Content`] when no provider has it, the data does not verify or open
    /// (named by its reference), or `dest` exists or cannot be written.
    pub async fn fetch(
        &self,
        endpoint: &iroh::Endpoint,
        content: &ContentRef,
        providers: &[EndpointAddr],
        dest: &Path,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Fetched, Error> {
        if dest.exists() {
            return Err(Error::Content(format!("{} exists: not overwritten", dest.display())));
        }
        let hash = hash_of(content);
        let total = content.encrypted_size();
        self.store.tags().set(fetch_tag(&content.hash), hash).await.map_err(store_err)?;
        let resumed_from = self.local_bytes(&content.hash).await?;
        let mut received = 0;
        let mut failures = Vec::new();
        for addr in providers {
            if self.is_complete(hash).await? {
                break;
            }
            let conn = match zerok_wire::blobs::connect(endpoint, addr.clone()).await {
                Ok(c) => c,
                Err(e) => {
                    failures.push(e.to_string());
                    continue;
                }
            };
            let base = self.local_bytes(&content.hash).await?;
            let request = zerok_wire::blobs::missing(&self.store, hash, total).await.map_err(store_err)?;
            let mut items = std::pin::pin!(self.store.remote().execute_get(conn.clone(), request).stream());
            let mut shown = 0;
            while let Some(item) = items.next().await {
                match item {
                    // Every 1% (or MiB), not every 16 KiB chunk group.
                    GetProgressItem::Progress(n)
                        if base + n >= shown + (total / 100).max(1 << 20) || base + n >= total =>
                    {
                        shown = (base + n).min(total);
                        progress(shown, total);
                    }
                    GetProgressItem::Progress(_) => {}
                    GetProgressItem::Done(stats) => {
                        received += stats.payload_bytes_read;
                        break;
                    }
                    GetProgressItem::Error(e) => {
                        received += self.local_bytes(&content.hash).await?.saturating_sub(base);
                        failures.push(e.to_string());
                        break;
                    }
                }
            }
            conn.close(0u32.into(), b"done");
        }
        if !self.is_complete(hash).await? {
            return Err(Error::Content(format!(
                "attachment {} could not be fetched: {}",
                content.hash,
                if failures.is_empty() && providers.is_empty() {
                    "no provider known".to_string()
                } else if failures.is_empty() {
                    "what its providers hold is larger than its reference says".to_string()
                } else {
                    failures.join("; ")
                }
            )));
        }
        progress(total, total);
        self.open_into(content, dest).await?;
        self.store.tags().delete(fetch_tag(&content.hash)).await.map_err(store_err)?;
        Ok(Fetched { received, resumed_from, size: content.size })
    }

    async fn is_complete(&self, hash: Hash) -> Result<bool, Error> {
        Ok(matches!(self.store.status(hash).await.map_err(store_err)?, BlobStatus::Complete { .. }))
    }

    /// Decrypts the complete ciphertext into a temporary file beside `dest`, then links it
    /// into place (never replacing a file that appeared meanwhile). One export stream reads
    /// the ciphertext; a blocking thread opens and writes each segment meanwhile.
    async fn open_into(&self, content: &ContentRef, dest: &Path) -> Result<(), Error> {
        let named = |e: &dyn std::fmt::Display| Error::Content(format!("attachment {}: {e}", content.hash));
        let size = match self.store.status(hash_of(content)).await.map_err(store_err)? {
            BlobStatus::Complete { size } => size,
            _ => return Err(named(&"not complete")),
        };
        if size != content.encrypted_size() {
            return Err(named(&"its size does not match its reference"));
        }
        let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let io = |e: std::io::Error| Error::Content(format!("{}: {e}", dest.display()));
        // A random name, created new; removed however this ends (error, panic, or the
        // caller dropping the fetch), so no plaintext is left beside `dest`.
        let (mut out, tmp) =
            tempfile::Builder::new().prefix(".zerok-partial").tempfile_in(dir).map_err(io)?.into_parts();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, Vec<u8>)>(OPEN_AHEAD);
        let c = content.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let opener = Opener::new(&c);
            let mut opened = 0;
            while let Some((i, sealed)) = rx.blocking_recv() {
                let plain = opener.open(i, &sealed).map_err(|_| Opened::Refused(i))?;
                out.write_all(&plain).map_err(Opened::Io)?;
                opened += 1;
            }
            if opened != opener.segments() {
                return Err(Opened::Short);
            }
            out.sync_all().map_err(Opened::Io)
        });
        let read = async {
            let opener = Opener::new(content);
            let mut stream = self.store.export_ranges(hash_of(content), 0..size).stream();
            let (mut index, mut at) = (0, 0);
            let mut sealed = Vec::with_capacity(opener.sealed_range(0).1 as usize);
            while let Some(item) = stream.next().await {
                let leaf = match item {
                    ExportRangesItem::Size(_) => continue,
                    ExportRangesItem::Data(leaf) if leaf.offset == at && at + leaf.data.len() as u64 <= size => leaf,
                    ExportRangesItem::Data(_) => return Err(named(&"the store returned bytes it does not hold")),
                    ExportRangesItem::Error(e) => return Err(named(&e)),
                };
                at += leaf.data.len() as u64;
                let mut data = &leaf.data[..];
                while !data.is_empty() {
                    let want = opener.sealed_range(index).1 as usize;
                    let take = (want - sealed.len()).min(data.len());
                    sealed.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if sealed.len() == want {
                        let next = Vec::with_capacity(want);
                        // A closed channel: the writer stopped, and says why below.
                        if tx.send((index, std::mem::replace(&mut sealed, next))).await.is_err() {
                            return Ok(());
                        }
                        index += 1;
                    }
                }
            }
            if at == size { Ok(()) } else { Err(named(&"the store returned less than it holds")) }
        }
        .await;
        drop(tx);
        let written = writer.await.map_err(|e| named(&e))?;
        match (read, written) {
            (Err(e), _) => Err(e),
            (Ok(()), Ok(())) => tmp.persist_noclobber(dest).map_err(|e| io(e.error)),
            (Ok(()), Err(Opened::Refused(i))) => {
                Err(named(&format!("segment {i} does not open: altered, or a forged reference")))
            }
            (Ok(()), Err(Opened::Short)) => Err(named(&"the store returned less than it holds")),
            (Ok(()), Err(Opened::Io(e))) => Err(io(e)),
        }
    }
}

/// Why the thread opening an attachment's segments stopped.
enum Opened {
    /// Segment `i` did not open.
    Refused(u64),
    /// Fewer segments came than the attachment has.
    Short,
    /// Writing failed.
    Io(std::io::Error),
}

impl Refs {
    /// The records under `dir` (`sync/content`).
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.join("refs") }
    }

    /// Whether this device ever sent or received an attachment.
    pub fn any(&self) -> bool {
        std::fs::read_dir(&self.dir).is_ok_and(|mut rd| rd.next().is_some())
    }

    /// The record of `hash`, if this device has one.
    pub fn record(&self, hash: &ContentHash) -> Option<Record> {
        let bytes = std::fs::read(self.dir.join(hash.to_string())).ok()?;
        rmp_serde::from_slice(&bytes).ok()
    }

    /// Every record.
    pub fn records(&self) -> Vec<Record> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        rd.flatten()
            .filter_map(|e| ContentHash::from_hex(&e.file_name().to_string_lossy()).ok())
            .filter_map(|h| self.record(&h))
            .collect()
    }

    /// Writes a record (0600, by rename).
    ///
    /// # Errors
    /// Write failures.
    pub fn put_record(&self, record: &Record) -> Result<(), Error> {
        let bytes = rmp_serde::to_vec_named(record).map_err(|e| Error::State(e.to_string()))?;
        crate::state_store::write_private(&self.dir.join(record.content.hash.to_string()), &bytes, true)
    }
}

/// Reads `source` segment by segment, seals each and sends it on; returns the sealer
/// once every segment went (off the async threads).
fn seal_into(
    mut sealer: Sealer,
    source: ContentSource,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) -> Result<Sealer, Error> {
    let changed = || Error::Content("the file changed while it was read".into());
    let mut reader: Box<dyn Read> = match source {
        ContentSource::Bytes(b) => Box::new(std::io::Cursor::new(b)),
        ContentSource::Path(p) => {
            Box::new(std::fs::File::open(&p).map_err(|e| Error::Content(format!("{}: {e}", p.display())))?)
        }
    };
    let mut buf = Vec::new();
    while !sealer.is_done() {
        buf.resize(sealer.next_len(), 0);
        reader.read_exact(&mut buf).map_err(|_| changed())?;
        if tx.blocking_send(Ok(Bytes::from(sealer.seal(&buf)))).is_err() {
            return Err(Error::Content("the attachment store stopped taking data".into()));
        }
    }
    if reader.read(&mut [0u8; 1]).map_err(|_| changed())? != 0 {
        let _ = tx.blocking_send(Err(std::io::Error::other("source grew")));
        return Err(changed());
    }
    Ok(sealer)
}
