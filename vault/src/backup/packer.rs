//! The packer: gathers sealed chunks into packs of about the vault's pack size — trees in
//! packs of their own, which a metadata cache keeps whole — uploads them with bounded
//! concurrency, and writes index files as packs land.

use bytes::Bytes;
use futures::{StreamExt, stream::FuturesUnordered};
use zerok_core::{ChunkId, IndexId};

use crate::{
    Progress, Result, Vault,
    format::{
        Kind,
        index::{IndexFile, IndexPack},
        names,
        pack::PackWriter,
        seal_msgpack,
    },
    lock::{Lock, REFRESH_SECS},
};

/// Packs per index file while a backup runs (bounds what an interruption can orphan).
pub const INDEX_FLUSH_PACKS: usize = 4;

/// A blob sealed by a worker: one chunk, or a bundle of several small data chunks.
pub(super) struct Sealed {
    pub kind: Kind,
    /// The chunks in it, in order, with their plaintext lengths; more than one: a bundle.
    pub members: Vec<(ChunkId, u32)>,
    pub bytes: Vec<u8>,
}

/// What the packer stored.
#[derive(Default)]
pub(super) struct Packed {
    /// Bytes written (packs and index files).
    pub bytes: u64,
    /// Chunks stored.
    pub chunks: u64,
    /// The packs uploaded, as the index files name them.
    pub packs: Vec<IndexPack>,
    /// The index files written.
    pub indexes: Vec<IndexId>,
    /// Packs that landed after the last index file was written: the caller indexes them
    /// (see [`flush`]) before a snapshot names them.
    pub unflushed: Vec<IndexPack>,
}

/// Runs until the sealers hang up and every upload and index write it began has landed;
/// the packs that landed last are left to index ([`Packed::unflushed`]).
///
/// Packs are written as unsynced batch members; each index file is written only after the
/// packs it names are synced (see [`flush`]), and it is written beside the uploads, so an
/// upload slot never waits for a disk sync.
pub(super) async fn run(
    vault: &Vault,
    mut rx: tokio::sync::mpsc::Receiver<Sealed>,
    uploads: usize,
    progress: &Progress,
    lock: &Lock,
) -> Result<Packed> {
    let pack_bytes = vault.config().pack_bytes as usize;
    let new_writer = || PackWriter::with_capacity(pack_bytes + vault.config().chunker.max_bytes as usize);
    let mut writer = new_writer();
    let mut trees = new_writer();
    let mut inflight = FuturesUnordered::new();
    // At most one index write at a time; packs that land meanwhile wait for the next one.
    let mut flushing = FuturesUnordered::new();
    let mut pending = Vec::new();
    let mut out = Packed::default();
    let mut refresh = tokio::time::interval(std::time::Duration::from_secs(REFRESH_SECS));
    refresh.tick().await;
    let mut open = true;
    while open || !inflight.is_empty() || !flushing.is_empty() {
        if flushing.is_empty() && pending.len() >= INDEX_FLUSH_PACKS {
            flushing.push(flush(vault, std::mem::take(&mut pending), progress));
        }
        tokio::select! {
            Some(done) = inflight.next(), if !inflight.is_empty() => {
                let (pack, n): (IndexPack, u64) = done?;
                out.bytes += n;
                out.packs.push(pack.clone());
                pending.push(pack);
            }
            Some(done) = flushing.next(), if !flushing.is_empty() => {
                let (id, n) = done?;
                out.bytes += n;
                out.indexes.extend(id);
            }
            msg = rx.recv(), if open && inflight.len() < uploads => match msg {
                Some(s) => {
                    out.chunks += s.members.len() as u64;
                    let w = if s.kind == Kind::Tree { &mut trees } else { &mut writer };
                    match s.members[..] {
                        [(id, raw_len)] => w.add(s.kind, id, &s.bytes, raw_len),
                        _ => w.add_bundle(&s.bytes, s.members.iter().copied()),
                    }
                    if w.is_full(pack_bytes) {
                        inflight.push(upload(vault, std::mem::replace(w, new_writer()), progress));
                    }
                }
                None => {
                    open = false;
                    for w in [&mut writer, &mut trees] {
                        if !w.is_empty() {
                            inflight.push(upload(vault, std::mem::take(w), progress));
                        }
                    }
                }
            },
            _ = refresh.tick() => lock.refresh(vault).await?,
        }
    }
    out.unflushed = pending;
    Ok(out)
}

async fn upload(vault: &Vault, writer: PackWriter, progress: &Progress) -> Result<(IndexPack, u64)> {
    let (id, bytes, entries) = writer.finish(vault.keys().metadata());
    let (n, name) = (bytes.len() as u64, names::pack(&id));
    let bytes = Bytes::from(bytes);
    vault.backend().put_unsynced(&name, bytes.clone()).await?;
    if crate::format::pack::is_tree_pack(&entries) {
        vault.cache_written(&name, &bytes);
    }
    Progress::add(&progress.bytes_added, n);
    Ok((IndexPack::new(id, &entries), n))
}

/// Finishes `writer` and stores its pack (synced, for those that write packs outside a
/// backup: prune, repair, copy); returns what an index file says of it, and its size.
///
/// # Errors
/// Storage errors.
pub(crate) async fn put_pack(vault: &Vault, writer: PackWriter) -> Result<(IndexPack, u64)> {
    let (id, bytes, entries) = writer.finish(vault.keys().metadata());
    let n = bytes.len() as u64;
    vault.backend().put(&names::pack(&id), Bytes::from(bytes)).await?;
    Ok((IndexPack::new(id, &entries), n))
}

/// Packs named per index file by whoever writes index files in bulk (prune, repair, and a
/// backup naming its packs again).
pub(crate) const PACKS_PER_INDEX: usize = 1024;

/// Syncs `packs` (written by [`upload`] without a sync), then writes them as one index file;
/// returns its id and size. An index never names a pack that is not durable.
pub(crate) async fn flush(vault: &Vault, packs: Vec<IndexPack>, progress: &Progress) -> Result<(Option<IndexId>, u64)> {
    if packs.is_empty() {
        return Ok((None, 0));
    }
    vault.backend().sync(packs.iter().map(|p| names::pack(&p.id)).collect()).await?;
    let id = IndexId::random();
    let file = IndexFile::new(packs);
    let sealed = seal_msgpack(vault.keys().metadata(), Kind::Index, &id.0, &file);
    let (n, name, sealed) = (sealed.len() as u64, names::index(&id), Bytes::from(sealed));
    vault.backend().put_new(&name, sealed.clone()).await?;
    vault.cache_written(&name, &sealed);
    Progress::add(&progress.bytes_added, n);
    Ok((Some(id), n))
}
