//! Vault mode's archive: message payloads kept forever in object storage (a local folder,
//! MinIO, S3), while the [`Store`] keeps only the cursor metadata.
//!
//! Layout under the store's prefix, one object per message so a write is one PUT:
//! - `groups/<group hex>/m/<cursor, 20 digits>`: MessagePack [`Record`] (blob id, sender,
//!   relay time, payload ciphertext), or a tombstone once a DELETE removed the payload (so
//!   a cursor is never handed out twice, even by a relay rebuilt from the bucket);
//! - `groups/<group hex>/revoked/<device hex>`: empty marker of a revoked device.
//!
//! A push writes its object with a conditional create *before* the metadata commits and
//! the PUSH_ACK is sent, so an acknowledged message is in the bucket. An object found at
//! the next cursor (a crash between the two writes, or a lost metadata file) is indexed
//! and the push moves on to the following cursor. [`Archive::rebuild`] indexes every
//! object the local metadata lacks, so a relay on a new machine pointed at the same bucket
//! serves the same history.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use zerok_core::sync::{BlobId, DeviceId, GroupId, message::BlobEntry};
use zerok_vault::Backend;

use super::on_blocking as blocking;
use crate::{
    Error, Result,
    store::{Caps, NewBlob, Pushed, Store},
};

/// Objects fetched at once by a PULL or a rebuild.
const FETCH_CONCURRENCY: usize = 16;
/// Largest archived object read back (a payload is at most one frame).
const MAX_RECORD_BYTES: usize = 2 << 20;

/// One archived message.
#[derive(Serialize, Deserialize)]
struct Record {
    blob_id: BlobId,
    sender: DeviceId,
    timestamp: u64,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
    /// Set when the payload was deleted.
    #[serde(default)]
    deleted: bool,
}

fn group_dir(group: &GroupId) -> String {
    format!("groups/{}", hex::encode(group.0))
}

fn message_name(group: &GroupId, cursor: u64) -> String {
    format!("{}/m/{cursor:020}", group_dir(group))
}

fn revoked_name(group: &GroupId, device: &DeviceId) -> String {
    format!("{}/revoked/{}", group_dir(group), hex::encode(device.0))
}

/// An object-store failure about `what`. Object names hold group and device ids, so the
/// store's own text is kept only when it names none.
fn object_err(what: &str, e: impl std::fmt::Display) -> Error {
    let text = e.to_string();
    let text = if text.contains("groups/") { "request failed".to_string() } else { text };
    Error::ObjectStore(format!("{what}: {text}"))
}

fn store_err(cursor: u64, e: impl std::fmt::Display) -> Error {
    object_err(&format!("message at cursor {cursor}"), e)
}

/// What a rebuild found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// Groups in the bucket.
    pub groups: u64,
    /// Messages indexed that the local metadata lacked.
    pub messages: u64,
    /// Revocations restored.
    pub revoked: u64,
}

/// Payloads in object storage, cursor metadata in the local [`Store`].
pub struct Archive {
    backend: Backend,
    store: Arc<Store>,
    /// One writer per group at a time: the cursor is chosen before the object is written.
    locks: Mutex<HashMap<GroupId, Arc<tokio::sync::Mutex<()>>>>,
}

impl Archive {
    /// Its object store.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// An archive over `backend` with metadata in `store`.
    pub fn new(backend: Backend, store: Arc<Store>) -> Self {
        Self { backend, store, locks: Mutex::new(HashMap::new()) }
    }

    fn group_lock(&self, group: &GroupId) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().expect("locks").entry(*group).or_default().clone()
    }

    async fn read(&self, group: &GroupId, cursor: u64) -> Result<Option<Record>, Error> {
        let name = message_name(group, cursor);
        let bytes = match self.backend.get(&name).await {
            Ok(b) => b,
            Err(zerok_vault::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_err(cursor, e)),
        };
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(Error::Damaged(format!("archived message at cursor {cursor}: {} bytes", bytes.len())));
        }
        rmp_serde::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Damaged(format!("archived message at cursor {cursor}: {e}")))
    }

    /// Indexes the archived record at `cursor` into the metadata (or skips the cursor for a
    /// tombstone). Quota does not apply: the message is stored already.
    async fn index(&self, group: GroupId, cursor: u64, rec: Record) -> Result<(), Error> {
        blocking(&self.store, move |s| {
            if rec.deleted {
                return s.skip_cursor(&group, cursor);
            }
            let blob = NewBlob {
                group: &group,
                sender: &rec.sender,
                blob_id: &rec.blob_id,
                payload: &rec.payload,
                ttl_secs: u64::MAX,
                now: rec.timestamp,
            };
            s.index_archived(&blob, Caps::NONE, cursor).map(|_| ())
        })
        .await
    }

    /// Stores a message: the object first, then the metadata; never expires.
    ///
    /// # Errors
    /// Quota, store and object-store failures.
    pub async fn push(&self, blob: &NewBlob<'_>, caps: Caps) -> Result<Pushed, Error> {
        let lock = self.group_lock(blob.group);
        let _guard = lock.lock().await;
        let (group, blob_id, sender, len) = (*blob.group, *blob.blob_id, *blob.sender, blob.payload.len() as u64);
        let (known, next) = blocking(&self.store, move |s| {
            let known = s.retry_of(&group, &blob_id, &sender)?;
            if known.is_none() {
                s.check_caps(&group, len, caps)?;
            }
            Ok((known, s.max_cursor(&group)? + 1))
        })
        .await?;
        if let Some(cursor) = known {
            return Ok(Pushed { cursor, timestamp: blob.now, duplicate: true });
        }
        let record = Record {
            blob_id,
            sender: *blob.sender,
            timestamp: blob.now,
            payload: blob.payload.to_vec(),
            deleted: false,
        };
        let body = Bytes::from(rmp_serde::to_vec(&record).expect("record encodes"));
        let mut cursor = next;
        loop {
            match self.backend.put_new(&message_name(&group, cursor), body.clone()).await {
                Ok(()) => break,
                Err(zerok_vault::Error::AlreadyExists(_)) => {
                    let found = self.read(&group, cursor).await?.ok_or_else(|| store_err(cursor, "object vanished"))?;
                    let retry = !found.deleted && found.blob_id == blob_id && found.sender == sender;
                    self.index(group, cursor, found).await?;
                    if retry {
                        return Ok(Pushed { cursor, timestamp: blob.now, duplicate: true });
                    }
                    cursor += 1;
                }
                Err(e) => return Err(store_err(cursor, e)),
            }
        }
        let timestamp = record.timestamp;
        self.index(group, cursor, record).await?;
        Ok(Pushed { cursor, timestamp, duplicate: false })
    }

    /// Fills in the payloads of entries the store returned for a PULL, fetching them
    /// concurrently; entries whose object is gone (deleted meanwhile) are dropped.
    ///
    /// # Errors
    /// Object-store failures or a damaged record.
    pub async fn fill(&self, group: &GroupId, entries: Vec<BlobEntry>) -> Result<Vec<BlobEntry>, Error> {
        let fetched: Vec<Option<BlobEntry>> = futures::stream::iter(entries)
            .map(|mut e| async move {
                Ok::<_, Error>(match self.read(group, e.cursor).await? {
                    Some(rec) if !rec.deleted && rec.blob_id == e.blob_id => {
                        e.payload = rec.payload;
                        Some(e)
                    }
                    _ => None,
                })
            })
            .buffered(FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(fetched.into_iter().flatten().collect())
    }

    /// Replaces the payload at `cursor` by a tombstone (so the cursor is never handed out
    /// again, even by a relay rebuilt from the bucket), then drops the metadata.
    ///
    /// # Errors
    /// Store and object-store failures.
    pub async fn remove(&self, group: GroupId, cursor: u64) -> Result<(), Error> {
        let lock = self.group_lock(&group);
        let _guard = lock.lock().await;
        let tombstone = Record {
            blob_id: BlobId([0; 16]),
            sender: DeviceId([0; 32]),
            timestamp: 0,
            payload: Vec::new(),
            deleted: true,
        };
        let body = Bytes::from(rmp_serde::to_vec(&tombstone).expect("record encodes"));
        self.backend.put(&message_name(&group, cursor), body).await.map_err(|e| store_err(cursor, e))?;
        blocking(&self.store, move |s| s.remove(&group, cursor)).await
    }

    /// Revokes a device: the marker object first (so a rebuilt relay still refuses it),
    /// then the metadata.
    ///
    /// # Errors
    /// Store and object-store failures.
    pub async fn revoke(&self, group: GroupId, device: DeviceId) -> Result<(), Error> {
        let marker = revoked_name(&group, &device);
        self.backend.put(&marker, Bytes::new()).await.map_err(|e| object_err("revocation marker", e))?;
        blocking(&self.store, move |s| s.revoke(&group, &device)).await
    }

    /// Indexes every archived message and revocation the local metadata lacks (all of
    /// them after the metadata file was lost). Idempotent; a listing per start.
    ///
    /// # Errors
    /// Store and object-store failures, or a damaged record.
    pub async fn rebuild(&self) -> Result<Rebuilt, Error> {
        let mut out = Rebuilt::default();
        let mut groups: HashMap<GroupId, (Vec<u64>, Vec<DeviceId>)> = HashMap::new();
        let listed = self.backend.list("groups").await.map_err(|e| object_err("listing", e))?;
        for (name, _) in listed {
            let parts: Vec<&str> = name.split('/').collect();
            let [_, group, kind, leaf] = parts[..] else { continue };
            let Some(group) = parse_hex32(group).map(GroupId) else { continue };
            let entry = groups.entry(group).or_default();
            match kind {
                "m" => entry.0.extend(leaf.parse::<u64>().ok()),
                "revoked" => entry.1.extend(parse_hex32(leaf).map(DeviceId)),
                _ => {}
            }
        }
        out.groups = groups.len() as u64;
        for (group, (mut cursors, revoked)) in groups {
            cursors.sort_unstable();
            let known = blocking(&self.store, move |s| s.max_cursor(&group)).await?;
            let missing: Vec<u64> = cursors.into_iter().filter(|c| *c > known).collect();
            let records: Vec<(u64, Option<Record>)> = futures::stream::iter(missing)
                .map(|c| async move { self.read(&group, c).await.map(|r| (c, r)) })
                .buffered(FETCH_CONCURRENCY)
                .try_collect()
                .await?;
            for (cursor, rec) in records {
                let Some(rec) = rec else { continue };
                out.messages += u64::from(!rec.deleted);
                self.index(group, cursor, rec).await?;
            }
            for device in revoked {
                if !blocking(&self.store, move |s| s.is_revoked(&group, &device)).await? {
                    blocking(&self.store, move |s| s.revoke(&group, &device)).await?;
                    out.revoked += 1;
                }
            }
        }
        Ok(out)
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok().map(|()| out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: GroupId = GroupId([1; 32]);
    const A: DeviceId = DeviceId([2; 32]);

    fn archive(dir: &std::path::Path, backend: &Backend) -> Archive {
        let store = Arc::new(Store::open(&dir.join("meta.redb")).unwrap().keep_history());
        Archive::new(backend.clone(), store)
    }

    async fn push(a: &Archive, id: u8) -> Pushed {
        let blob =
            NewBlob { group: &G, sender: &A, blob_id: &BlobId([id; 16]), payload: &[id; 10], ttl_secs: 1, now: 5 };
        a.push(&blob, Caps::NONE).await.unwrap()
    }

    #[tokio::test]
    async fn an_object_left_by_a_crash_is_indexed_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let backend = zerok_vault::Location::Memory.open("memory://").unwrap();
        let first = archive(dir.path(), &backend);
        assert_eq!(push(&first, 1).await.cursor, 1);
        // A relay that crashed after writing cursor 2's object but before its metadata.
        let orphan = Record { blob_id: BlobId([2; 16]), sender: A, timestamp: 5, payload: vec![2; 10], deleted: false };
        backend.put(&message_name(&G, 2), rmp_serde::to_vec(&orphan).unwrap().into()).await.unwrap();
        let retried = push(&first, 2).await;
        assert_eq!((retried.cursor, retried.duplicate), (2, true), "the retried push finds its own object");
        let next = push(&first, 3).await;
        assert_eq!((next.cursor, next.duplicate), (3, false));
        let (entries, more) = first.store.pull(&G, 0, 10).unwrap();
        let filled = first.fill(&G, entries).await.unwrap();
        assert_eq!(filled.iter().map(|e| (e.cursor, e.payload[0])).collect::<Vec<_>>(), [(1, 1), (2, 2), (3, 3)]);
        assert!(!more);
        first.remove(G, 2).await.unwrap();

        // Metadata lost: a rebuild restores the history, the deleted cursor stays used.
        std::fs::create_dir_all(dir.path().join("new")).unwrap();
        let rebuilt = archive(&dir.path().join("new"), &backend);
        let report = rebuilt.rebuild().await.unwrap();
        assert_eq!((report.groups, report.messages), (1, 2));
        let (entries, _) = rebuilt.store.pull(&G, 0, 10).unwrap();
        assert_eq!(entries.iter().map(|e| e.cursor).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(push(&rebuilt, 4).await.cursor, 4);
        assert_eq!(rebuilt.rebuild().await.unwrap().messages, 0, "a second rebuild finds nothing new");
    }
}
