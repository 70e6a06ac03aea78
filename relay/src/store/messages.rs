//! Messages: push (alone or in a group commit), pull in cursor order within a byte budget,
//! cursors, and the quota each stored record is charged.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use zerok_core::sync::{BlobId, DeviceId, GroupId, message::BlobEntry};

use super::{BLOB_IDS, BLOBS, CURSORS, DEVICES, EXPIRY, Store, TOTAL_BYTES, TOTALS, USAGE, charge, dec, enc, keys};
use crate::{Error, Result};

/// What each stored message costs its group's quota besides its payload (its record, its
/// keys, its PULL entry), so empty or tiny payloads cannot fill a relay with records.
pub const RECORD_OVERHEAD_BYTES: u64 = 256;

#[derive(Serialize, Deserialize)]
pub(super) struct StoredBlob {
    pub blob_id: BlobId,
    pub sender: DeviceId,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    pub timestamp: u64,
    pub expires: u64,
    /// Payload size when the payload is kept in the archive (vault mode).
    #[serde(default)]
    pub size: u64,
}

/// A stored record read without copying its payload (counting, judging a DELETE).
#[derive(Deserialize)]
pub(super) struct BlobView<'a> {
    pub _blob_id: BlobId,
    pub sender: DeviceId,
    #[serde(borrow, with = "serde_bytes")]
    pub _payload: &'a [u8],
    pub _timestamp: u64,
    pub _expires: u64,
    #[serde(default)]
    pub _size: u64,
}

/// Reads a record's ids without copying its payload.
pub(super) fn view(bytes: &[u8]) -> Result<BlobView<'_>> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::Damaged(e.to_string()))
}

/// Why a push under another device's blob id is refused.
const TAKEN: &str = "this blob id is another device's message";

impl StoredBlob {
    /// Payload bytes, wherever the payload is.
    pub fn len(&self) -> u64 {
        self.size.max(self.payload.len() as u64)
    }

    /// What it counts against its group's quota.
    pub fn charged(&self) -> u64 {
        self.len() + RECORD_OVERHEAD_BYTES
    }
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    /// The blob's cursor.
    pub cursor: u64,
    /// Relay time it was stored.
    pub timestamp: u64,
    /// True when this blob id was already stored (a retry).
    pub duplicate: bool,
}

/// A message to store.
#[derive(Clone, Copy, Debug)]
pub struct NewBlob<'a> {
    /// Its group.
    pub group: &'a GroupId,
    /// Who pushed it.
    pub sender: &'a DeviceId,
    /// Sender-chosen id.
    pub blob_id: &'a BlobId,
    /// Ciphertext.
    pub payload: &'a [u8],
    /// Lifetime.
    pub ttl_secs: u64,
    /// Relay time, Unix seconds.
    pub now: u64,
}

/// Storage caps a push must stay within.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    /// Bytes one group may count.
    pub group_bytes: u64,
    /// Bytes all groups together may count.
    pub total_bytes: u64,
}

impl Caps {
    /// No cap (indexing what the archive already holds).
    pub const NONE: Caps = Caps { group_bytes: u64::MAX, total_bytes: u64::MAX };
}

/// Where a pushed payload is kept.
#[derive(Clone, Copy)]
enum Placement {
    /// In the record; cursor assigned here.
    Inline,
    /// In the archive, already written at this cursor.
    Archived(u64),
}

impl Store {
    /// Stores one message (the relay pushes through [`Store::push_many`]).
    #[cfg(test)]
    pub fn push(&self, blob: &NewBlob<'_>, caps: Caps) -> Result<Pushed> {
        let mut results = self.push_many(std::slice::from_ref(blob), caps)?;
        results.pop().expect("one result")
    }

    /// Stores several pushes in one transaction with one durable commit (group commit:
    /// concurrent devices share the cost of the sync). Each push gets its own result: a
    /// quota refusal or a revoked sender refuses that push only.
    ///
    /// # Errors
    /// Database errors, which fail the whole batch (nothing of it is stored).
    pub fn push_many(&self, blobs: &[NewBlob<'_>], caps: Caps) -> Result<Vec<Result<Pushed>>> {
        let tx = self.db.begin_write()?;
        let mut out = Vec::with_capacity(blobs.len());
        for blob in blobs {
            let result = Self::admit(&tx, blob).and_then(|()| Self::insert_in(&tx, blob, caps, Placement::Inline));
            match result {
                Err(e @ (Error::Db(_) | Error::Damaged(_))) => return Err(e),
                other => out.push(other),
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Refuses, inside the push's own transaction (so no removal or rotation committed
    /// meanwhile slips past), a sender that is not a current member, is revoked, or pushes
    /// into a rotated group.
    fn admit(tx: &redb::WriteTransaction, blob: &NewBlob<'_>) -> Result<()> {
        let standing = super::roster::standing_in(tx, blob.group, blob.sender)?;
        let revoked =
            super::devices::record_in(&tx.open_table(DEVICES)?, blob.group, blob.sender)?.is_some_and(|r| r.revoked);
        match standing {
            _ if standing.removed || revoked => Err(Error::Revoked),
            _ if !standing.member => Err(Error::NotMember),
            _ if standing.closed => Err(Error::Rotated),
            _ => Ok(()),
        }
    }

    /// Records a message whose payload the archive already holds at `cursor` (which must
    /// be at or after the group's next cursor; cursors in between are skipped). It never
    /// expires.
    ///
    /// # Errors
    /// [`Error::Quota`], [`Error::Full`]; [`Error::Db`] when `cursor` was already assigned.
    pub fn index_archived(&self, blob: &NewBlob<'_>, caps: Caps, cursor: u64) -> Result<Pushed> {
        let tx = self.db.begin_write()?;
        let pushed = Self::insert_in(&tx, blob, caps, Placement::Archived(cursor))?;
        tx.commit()?;
        Ok(pushed)
    }

    /// Whether `len` more payload bytes fit the group's and the relay's caps.
    pub(crate) fn check_caps(&self, group: &GroupId, len: u64, caps: Caps) -> Result<()> {
        let tx = self.db.begin_read()?;
        let used = tx.open_table(USAGE)?.get(group.0.as_slice())?.map_or(0, |g| g.value());
        let total = tx.open_table(TOTALS)?.get(TOTAL_BYTES)?.map_or(0, |g| g.value());
        Self::within(used, total, len, caps)
    }

    fn within(used: u64, total: u64, len: u64, caps: Caps) -> Result<()> {
        let cost = len.saturating_add(RECORD_OVERHEAD_BYTES);
        if used.saturating_add(cost) > caps.group_bytes {
            return Err(Error::Quota(caps.group_bytes));
        }
        if total.saturating_add(cost) > caps.total_bytes {
            return Err(Error::Full);
        }
        Ok(())
    }

    /// Moves the group's next cursor past `cursor` (an archived message that was deleted).
    ///
    /// # Errors
    /// Database errors.
    pub fn skip_cursor(&self, group: &GroupId, cursor: u64) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut cursors = tx.open_table(CURSORS)?;
            let next = cursors.get(group.0.as_slice())?.map_or(1, |g| g.value());
            cursors.insert(group.0.as_slice(), next.max(cursor + 1))?;
        }
        tx.commit()?;
        Ok(())
    }

    /// One insert inside `tx`. Every refusal comes before the first write, so a refused
    /// push leaves the transaction as it was.
    fn insert_in(tx: &redb::WriteTransaction, blob: &NewBlob<'_>, caps: Caps, placement: Placement) -> Result<Pushed> {
        let NewBlob { group, sender, blob_id, payload, ttl_secs, now } = *blob;
        let mut ids = tx.open_table(BLOB_IDS)?;
        let id_key = keys::blob_id(group, blob_id);
        if let Some(cursor) = ids.get(id_key.as_slice())?.map(|g| g.value()) {
            let blobs = tx.open_table(BLOBS)?;
            let stored = blobs.get(keys::At::new(group, cursor).encode().as_slice())?;
            return match stored.map(|v| view(v.value()).map(|b| b.sender)).transpose()? {
                Some(by) if by != *sender => Err(Error::Invalid(TAKEN.into())),
                _ => Ok(Pushed { cursor, timestamp: now, duplicate: true }),
            };
        }
        let used = tx.open_table(USAGE)?.get(group.0.as_slice())?.map_or(0, |g| g.value());
        let total = tx.open_table(TOTALS)?.get(TOTAL_BYTES)?.map_or(0, |g| g.value());
        Self::within(used, total, payload.len() as u64, caps)?;
        let mut cursors = tx.open_table(CURSORS)?;
        let next = cursors.get(group.0.as_slice())?.map_or(1, |g| g.value());
        let (cursor, record) = match placement {
            Placement::Inline => {
                let expires = now.saturating_add(ttl_secs);
                let payload = payload.to_vec();
                (next, StoredBlob { blob_id: *blob_id, sender: *sender, payload, timestamp: now, expires, size: 0 })
            }
            Placement::Archived(at) if at >= next => {
                let size = payload.len() as u64;
                let (payload, expires) = (Vec::new(), u64::MAX);
                (at, StoredBlob { blob_id: *blob_id, sender: *sender, payload, timestamp: now, expires, size })
            }
            Placement::Archived(at) => return Err(Error::Db(format!("cursor {at} already assigned"))),
        };
        cursors.insert(group.0.as_slice(), cursor + 1)?;
        drop(cursors);
        charge(tx, group, record.charged() as i64)?;
        let at = keys::At::new(group, cursor);
        tx.open_table(BLOBS)?.insert(at.encode().as_slice(), enc(&record).as_slice())?;
        ids.insert(id_key.as_slice(), cursor)?;
        if record.expires != u64::MAX {
            let expiry = keys::Expiry { expires: record.expires, message: at };
            tx.open_table(EXPIRY)?.insert(expiry.encode().as_slice(), ())?;
        }
        Ok(Pushed { cursor, timestamp: now, duplicate: false })
    }

    /// Messages after `after`, at most `limit`, with no byte budget.
    #[cfg(test)]
    pub fn pull(&self, group: &GroupId, after: u64, limit: usize) -> Result<(Vec<BlobEntry>, bool)> {
        self.pull_within(group, after, limit, usize::MAX)
    }

    /// As [`Store::pull`], stopping before the payloads plus `overhead` bytes each would
    /// exceed `budget` bytes (one message is always returned). Archived messages come with
    /// empty payloads for the archive to fill.
    ///
    /// # Errors
    /// Database errors.
    pub fn pull_within(
        &self,
        group: &GroupId,
        after: u64,
        limit: usize,
        budget: usize,
    ) -> Result<(Vec<BlobEntry>, bool)> {
        let tx = self.db.begin_read()?;
        let blobs = tx.open_table(BLOBS)?;
        let (start, end) = keys::At::range(group, after.saturating_add(1));
        let mut out = Vec::new();
        let mut used = 0usize;
        for item in blobs.range(start.as_slice()..=end.as_slice())? {
            let (k, v) = item?;
            let b: StoredBlob = dec(v.value())?;
            used = used.saturating_add(b.len() as usize + ENTRY_BYTES);
            if out.len() == limit || (used > budget && !out.is_empty()) {
                return Ok((out, true));
            }
            let cursor = keys::At::decode(k.value())?.at;
            out.push(BlobEntry {
                blob_id: b.blob_id,
                cursor,
                sender_id: b.sender,
                payload: b.payload,
                timestamp: b.timestamp,
            });
        }
        Ok((out, false))
    }

    /// The cursor of a blob id `sender` stored before (a retry), if any.
    ///
    /// # Errors
    /// [`Error::Invalid`] when another device stored that id: a member that copied an id
    /// it saw elsewhere cannot take the sender's message's place.
    pub fn retry_of(&self, group: &GroupId, blob_id: &BlobId, sender: &DeviceId) -> Result<Option<u64>> {
        let tx = self.db.begin_read()?;
        let Some(cursor) = tx.open_table(BLOB_IDS)?.get(keys::blob_id(group, blob_id).as_slice())?.map(|g| g.value())
        else {
            return Ok(None);
        };
        let blobs = tx.open_table(BLOBS)?;
        match blobs.get(keys::At::new(group, cursor).encode().as_slice())? {
            Some(v) if view(v.value())?.sender != *sender => Err(Error::Invalid(TAKEN.into())),
            _ => Ok(Some(cursor)),
        }
    }

    /// Highest cursor assigned in the group (0 before the first push; never goes down).
    ///
    /// # Errors
    /// Database errors.
    pub fn max_cursor(&self, group: &GroupId) -> Result<u64> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(CURSORS)?.get(group.0.as_slice())?.map_or(0, |g| g.value().saturating_sub(1)))
    }

    /// Messages of others after this device's acknowledged cursor (capped at `cap`).
    ///
    /// # Errors
    /// Database errors.
    pub fn pending_count(&self, group: &GroupId, device: &DeviceId, cap: u32) -> Result<u32> {
        let tx = self.db.begin_read()?;
        let acked = super::devices::record_in(&tx.open_table(DEVICES)?, group, device)?.map_or(0, |r| r.acked);
        let blobs = tx.open_table(BLOBS)?;
        let (start, end) = keys::At::range(group, acked + 1);
        let mut n = 0;
        for item in blobs.range(start.as_slice()..=end.as_slice())? {
            if view(item?.1.value())?.sender != *device {
                n += 1;
                if n == cap {
                    break;
                }
            }
        }
        Ok(n)
    }
}

/// Bytes a PULL_RESPONSE needs around each payload (ids, cursor, time, framing).
pub const ENTRY_BYTES: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{A, C, G, put, store};

    #[test]
    fn cursors_are_gapless_and_retries_idempotent() {
        let (_d, s) = store();
        let p1 = put(&s, 1, b"one", 100, 10, 1 << 20).unwrap();
        let again = put(&s, 1, b"one", 100, 11, 1 << 20).unwrap();
        let p2 = put(&s, 2, b"two", 100, 12, 1 << 20).unwrap();
        assert_eq!((p1.cursor, again.cursor, again.duplicate, p2.cursor), (1, 1, true, 2));
        let (got, more) = s.pull(&G, 0, 1).unwrap();
        assert_eq!((got.len(), got[0].payload.as_slice(), more), (1, &b"one"[..], true));
        assert_eq!(s.pull(&G, 1, 10).unwrap().0[0].cursor, 2);
        assert_eq!(s.max_cursor(&G).unwrap(), 2);
        assert!(s.pull(&GroupId([9; 32]), 0, 10).unwrap().0.is_empty(), "groups are separate");
    }

    #[test]
    fn every_record_costs_its_overhead_and_the_relay_total_is_capped() {
        let (_d, s) = store();
        let quota = 10 * RECORD_OVERHEAD_BYTES;
        for i in 0..10 {
            put(&s, i, b"", 100, 0, quota).unwrap();
        }
        assert!(matches!(put(&s, 10, b"", 100, 0, quota), Err(Error::Quota(_))), "empty payloads still count");
        assert_eq!(s.usage(&G).unwrap(), quota);
        let caps = Caps { group_bytes: u64::MAX, total_bytes: quota + RECORD_OVERHEAD_BYTES };
        let ids = [BlobId([21; 16]), BlobId([22; 16])];
        let blob = |id| NewBlob { group: &G, sender: &A, blob_id: id, payload: b"", ttl_secs: 9, now: 0 };
        s.push(&blob(&ids[0]), caps).unwrap();
        assert!(matches!(s.push(&blob(&ids[1]), caps), Err(Error::Full)), "all groups together are capped");
        assert_eq!(s.totals().unwrap(), (1, 11, 11 * RECORD_OVERHEAD_BYTES));
    }

    #[test]
    fn a_batch_commits_together_and_refuses_push_by_push() {
        let (_d, s) = store();
        let b = *crate::store::tests::B;
        s.revoke(&G, &b).unwrap();
        let ids = [1u8, 2, 3, 1, 4].map(|i| BlobId([i; 16]));
        let senders = [*A, b, *A, *A, *A];
        let payloads: [&[u8]; 5] = [b"one", b"revoked", &[0; 64], b"one", b"four"];
        let batch: Vec<NewBlob<'_>> = (0..5)
            .map(|i| NewBlob {
                group: &G,
                sender: &senders[i],
                blob_id: &ids[i],
                payload: payloads[i],
                ttl_secs: 100,
                now: 1,
            })
            .collect();
        let caps = Caps { group_bytes: 2 * RECORD_OVERHEAD_BYTES + 20, total_bytes: u64::MAX };
        let results = s.push_many(&batch, caps).unwrap();
        assert_eq!(results[0].as_ref().unwrap().cursor, 1);
        assert!(matches!(results[1], Err(Error::Revoked)));
        assert!(matches!(results[2], Err(Error::Quota(_))));
        assert!(results[3].as_ref().unwrap().duplicate, "a retry inside the same batch");
        let copied = NewBlob { group: &G, sender: &C, blob_id: &ids[0], payload: b"mine now", ttl_secs: 100, now: 1 };
        assert!(matches!(s.push(&copied, caps), Err(Error::Invalid(_))), "another device's id is not a retry");
        assert_eq!(results[4].as_ref().unwrap().cursor, 2, "refusals leave no gap");
        assert_eq!(s.pull(&G, 0, 10).unwrap().0.len(), 2);
    }
}
