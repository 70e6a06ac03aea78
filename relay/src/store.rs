//! The transit store: one redb file holding, per group, the cursor counter, the encrypted
//! messages (with TTL), the device roster (names, last seen, acknowledged cursor, revoked),
//! storage usage for quotas, and sealed pairing invites.
//!
//! Every write is one ACID transaction committed durably before it returns, so a PUSH_ACK
//! sent after [`Store::push`] survives a crash; the cursor is assigned in the same
//! transaction as the insert, so cursors never have gaps from failed inserts. Pushing the
//! same blob id twice returns the first cursor (a retried push is idempotent).
//!
//! In vault mode the same tables hold only the metadata: payloads live in the
//! [`crate::archive::Archive`], records keep their size, nothing expires, and messages every
//! device acknowledged are kept ([`Store::keep_history`]).

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use zerok_core::sync::{
    BlobId, DeviceId, GroupId,
    message::{BlobEntry, DeviceInfo},
    roster::InviteKey,
};

/// group → next cursor.
const CURSORS: TableDefinition<&[u8], u64> = TableDefinition::new("cursors");
/// group ‖ cursor (BE) → [`StoredBlob`].
const BLOBS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blobs");
/// group ‖ blob id → cursor.
const BLOB_IDS: TableDefinition<&[u8], u64> = TableDefinition::new("blob_ids");
/// expires (BE) ‖ group ‖ cursor (BE) → ().
const EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("expiry");
/// group ‖ device → [`DeviceRecord`].
const DEVICES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("devices");
/// group → payload bytes stored.
const USAGE: TableDefinition<&[u8], u64> = TableDefinition::new("usage");
/// bucket "/" invite key (hex) → [`StoredInvite`].
const INVITES: TableDefinition<&str, &[u8]> = TableDefinition::new("invites");
/// invite key → its bucket (to drop a sealed invite once a join used it).
const INVITE_BUCKETS: TableDefinition<&[u8], &str> = TableDefinition::new("invite_buckets");

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("relay store: {0}")]
    Db(String),
    /// The group's quota would be exceeded.
    #[error("group storage quota of {0} bytes reached")]
    Quota(u64),
    /// The device is revoked in this group.
    #[error("device revoked")]
    Revoked,
    /// Only the sender may force-delete.
    #[error("only the sender may force-delete a message")]
    NotOwner,
    /// The group rotated to a new secret: no more pushes.
    #[error("the group has rotated to a new secret")]
    Rotated,
    /// The device is not a member of the group.
    #[error("not a member of this group")]
    NotMember,
    /// A roster entry does not extend the relay's head.
    #[error("the roster changed meanwhile (another entry came first)")]
    Conflict,
    /// A roster entry that does not verify or is not allowed.
    #[error("roster entry refused: {0}")]
    Roster(String),
    /// The relay knows no roster for the group: send the log from its genesis.
    #[error("this relay knows no roster for the group")]
    UnknownRoster,
}

macro_rules! db_err {
    ($($t:ty),*) => {$(impl From<$t> for StoreError {
        fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
    })*};
}
db_err!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

pub(crate) type Result<T> = std::result::Result<T, StoreError>;

#[derive(Serialize, Deserialize)]
struct StoredBlob {
    blob_id: BlobId,
    sender: DeviceId,
    #[serde(with = "serde_bytes_vec")]
    payload: Vec<u8>,
    timestamp: u64,
    expires: u64,
    /// Payload size when the payload is kept in the archive (vault mode).
    #[serde(default)]
    size: u64,
}

impl StoredBlob {
    fn len(&self) -> u64 {
        self.size.max(self.payload.len() as u64)
    }
}

#[derive(Serialize, Deserialize, Default)]
struct DeviceRecord {
    name: String,
    last_seen: u64,
    acked: u64,
    revoked: bool,
}

#[derive(Serialize, Deserialize)]
struct StoredInvite {
    #[serde(with = "serde_bytes_vec")]
    sealed: Vec<u8>,
    expires: u64,
}

mod serde_bytes_vec {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
        }
        d.deserialize_bytes(V)
    }
}

pub(crate) fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    rmp_serde::to_vec(v).expect("record encodes")
}

pub(crate) fn dec<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| StoreError::Db(format!("damaged record: {e}")))
}

/// A device's record in a group, from either kind of transaction's table.
fn device_record(
    devices: &impl ReadableTable<&'static [u8], &'static [u8]>,
    group: &GroupId,
    device: &DeviceId,
) -> Result<Option<DeviceRecord>> {
    devices.get(key2(&group.0, &device.0).as_slice())?.map(|v| dec::<DeviceRecord>(v.value())).transpose()
}

pub(crate) fn key2(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

fn blob_key(group: &GroupId, cursor: u64) -> Vec<u8> {
    key2(&group.0, &cursor.to_be_bytes())
}

/// Runs a store call on tokio's blocking pool (redb calls block on disk).
///
/// # Errors
/// The call's error, or [`StoreError::Db`] when the blocking task failed.
pub(crate) async fn on_blocking<T: Send + 'static>(
    store: &std::sync::Arc<Store>,
    f: impl FnOnce(&Store) -> Result<T> + Send + 'static,
) -> Result<T> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store)).await.unwrap_or_else(|e| Err(StoreError::Db(e.to_string())))
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

/// Bytes a PULL_RESPONSE needs around each payload (ids, cursor, time, framing).
pub const ENTRY_OVERHEAD_BYTES: usize = 128;

/// Where a pushed payload is kept.
#[derive(Clone, Copy)]
enum Placement {
    /// In the record; cursor assigned here.
    Inline,
    /// In the archive, already written at this cursor.
    Archived(u64),
}

/// The transit store.
pub struct Store {
    pub(crate) db: Database,
    keep_history: bool,
}

impl Store {
    /// Opens or creates the store file.
    ///
    /// # Errors
    /// When the file cannot be opened or is damaged.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path)?;
        let tx = db.begin_write()?;
        {
            tx.open_table(CURSORS)?;
            tx.open_table(BLOBS)?;
            tx.open_table(BLOB_IDS)?;
            tx.open_table(EXPIRY)?;
            tx.open_table(DEVICES)?;
            tx.open_table(USAGE)?;
            tx.open_table(INVITES)?;
            tx.open_table(INVITE_BUCKETS)?;
            Self::open_roster_tables(&tx)?;
        }
        tx.commit()?;
        Ok(Self { db, keep_history: false })
    }

    /// Vault mode: messages are kept after every device acknowledged them (only a DELETE
    /// removes one).
    #[must_use]
    pub fn keep_history(mut self) -> Self {
        self.keep_history = true;
        self
    }

    /// Stores a message and assigns its cursor, durably.
    ///
    /// # Errors
    /// [`StoreError::Quota`] when the group would exceed `quota` bytes.
    pub fn push(&self, blob: &NewBlob<'_>, quota: u64) -> Result<Pushed> {
        let tx = self.db.begin_write()?;
        Self::admit(&tx, blob)?;
        let pushed = Self::insert_in(&tx, blob, quota, Placement::Inline)?;
        tx.commit()?;
        Ok(pushed)
    }

    /// Refuses a push from a revoked sender or into a rotated group.
    fn admit(tx: &redb::WriteTransaction, blob: &NewBlob<'_>) -> Result<()> {
        if device_record(&tx.open_table(DEVICES)?, blob.group, blob.sender)?.is_some_and(|r| r.revoked) {
            return Err(StoreError::Revoked);
        }
        if tx.open_table(crate::roster::CLOSED)?.get(blob.group.0.as_slice())?.is_some() {
            return Err(StoreError::Rotated);
        }
        Ok(())
    }

    /// Records a message whose payload the archive already holds at `cursor` (which must
    /// be at or after the group's next cursor; cursors in between are skipped). It never
    /// expires.
    ///
    /// # Errors
    /// [`StoreError::Quota`]; [`StoreError::Db`] when `cursor` was already assigned.
    pub fn index_archived(&self, blob: &NewBlob<'_>, quota: u64, cursor: u64) -> Result<Pushed> {
        self.insert(blob, quota, Placement::Archived(cursor))
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

    fn insert(&self, blob: &NewBlob<'_>, quota: u64, placement: Placement) -> Result<Pushed> {
        let tx = self.db.begin_write()?;
        let pushed = Self::insert_in(&tx, blob, quota, placement)?;
        tx.commit()?;
        Ok(pushed)
    }

    /// Stores several pushes in one transaction with one durable commit (group commit:
    /// concurrent devices share the cost of the sync). Each push gets its own result: a
    /// quota refusal or a revoked sender refuses that push only.
    ///
    /// # Errors
    /// Database errors, which fail the whole batch (nothing of it is stored).
    pub fn push_many(&self, blobs: &[NewBlob<'_>], quota: u64) -> Result<Vec<Result<Pushed>>> {
        let tx = self.db.begin_write()?;
        let mut out = Vec::with_capacity(blobs.len());
        for blob in blobs {
            out.push(match Self::admit(&tx, blob) {
                Err(e @ StoreError::Db(_)) => return Err(e),
                Err(refused) => Err(refused),
                Ok(()) => match Self::insert_in(&tx, blob, quota, Placement::Inline) {
                    Err(e @ StoreError::Db(_)) => return Err(e),
                    other => other,
                },
            });
        }
        tx.commit()?;
        Ok(out)
    }

    /// One insert inside `tx`. Every refusal comes before the first write, so a refused
    /// push leaves the transaction as it was.
    fn insert_in(tx: &redb::WriteTransaction, blob: &NewBlob<'_>, quota: u64, placement: Placement) -> Result<Pushed> {
        let NewBlob { group, sender, blob_id, payload, ttl_secs, now } = *blob;
        let mut ids = tx.open_table(BLOB_IDS)?;
        let id_key = key2(&group.0, &blob_id.0);
        if let Some(cursor) = ids.get(id_key.as_slice())?.map(|g| g.value()) {
            return Ok(Pushed { cursor, timestamp: now, duplicate: true });
        }
        let mut usage = tx.open_table(USAGE)?;
        let used = usage.get(group.0.as_slice())?.map_or(0, |g| g.value());
        if used + payload.len() as u64 > quota {
            return Err(StoreError::Quota(quota));
        }
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
            Placement::Archived(at) => return Err(StoreError::Db(format!("cursor {at} already assigned"))),
        };
        usage.insert(group.0.as_slice(), used + payload.len() as u64)?;
        cursors.insert(group.0.as_slice(), cursor + 1)?;
        tx.open_table(BLOBS)?.insert(blob_key(group, cursor).as_slice(), enc(&record).as_slice())?;
        ids.insert(id_key.as_slice(), cursor)?;
        if record.expires != u64::MAX {
            let exp_key = [&record.expires.to_be_bytes()[..], &group.0, &cursor.to_be_bytes()].concat();
            tx.open_table(EXPIRY)?.insert(exp_key.as_slice(), ())?;
        }
        Ok(Pushed { cursor, timestamp: now, duplicate: false })
    }

    /// Messages after `after`, at most `limit`, in cursor order; and whether more remain.
    ///
    /// # Errors
    /// Database errors.
    pub fn pull(&self, group: &GroupId, after: u64, limit: usize) -> Result<(Vec<BlobEntry>, bool)> {
        self.pull_within(group, after, limit, usize::MAX)
    }

    /// As [`Store::pull`], stopping before the payloads plus [`ENTRY_OVERHEAD_BYTES`] each
    /// would exceed `budget` bytes (one message is always returned). Archived messages come
    /// with empty payloads for the archive to fill.
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
        let start = blob_key(group, after.saturating_add(1));
        let end = blob_key(group, u64::MAX);
        let mut out = Vec::new();
        let mut used = 0usize;
        for item in blobs.range(start.as_slice()..=end.as_slice())? {
            let (k, v) = item?;
            let b: StoredBlob = dec(v.value())?;
            used = used.saturating_add(b.len() as usize + ENTRY_OVERHEAD_BYTES);
            if out.len() == limit || (used > budget && !out.is_empty()) {
                return Ok((out, true));
            }
            let cursor = u64::from_be_bytes(k.value()[32..40].try_into().expect("8 bytes"));
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

    /// The cursor of a stored blob id.
    ///
    /// # Errors
    /// Database errors.
    pub fn cursor_of(&self, group: &GroupId, blob_id: &BlobId) -> Result<Option<u64>> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(BLOB_IDS)?.get(key2(&group.0, &blob_id.0).as_slice())?.map(|g| g.value()))
    }

    /// Highest cursor assigned in the group (0 before the first push; never goes down).
    ///
    /// # Errors
    /// Database errors.
    pub fn max_cursor(&self, group: &GroupId) -> Result<u64> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(CURSORS)?.get(group.0.as_slice())?.map_or(0, |g| g.value().saturating_sub(1)))
    }

    /// Records a device's HELLO (name, time); refuses a revoked device.
    ///
    /// # Errors
    /// [`StoreError::Revoked`].
    pub fn hello(&self, group: &GroupId, device: &DeviceId, name: &str, now: u64) -> Result<()> {
        self.update_device(group, device, |d| {
            if d.revoked {
                return Err(StoreError::Revoked);
            }
            d.name = name.to_string();
            d.last_seen = now;
            Ok(())
        })
    }

    /// Records that a device has everything up to `cursor` (from its PULL), and contact.
    ///
    /// # Errors
    /// [`StoreError::Revoked`].
    pub fn ack(&self, group: &GroupId, device: &DeviceId, cursor: u64, now: u64) -> Result<()> {
        self.update_device(group, device, |d| {
            if d.revoked {
                return Err(StoreError::Revoked);
            }
            d.acked = d.acked.max(cursor);
            d.last_seen = now;
            Ok(())
        })
    }

    fn update_device(
        &self,
        group: &GroupId,
        device: &DeviceId,
        f: impl FnOnce(&mut DeviceRecord) -> Result<()>,
    ) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut devices = tx.open_table(DEVICES)?;
            let key = key2(&group.0, &device.0);
            let mut rec = device_record(&devices, group, device)?.unwrap_or_default();
            f(&mut rec)?;
            devices.insert(key.as_slice(), enc(&rec).as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Whether a device is revoked in a group.
    ///
    /// # Errors
    /// Database errors.
    pub fn is_revoked(&self, group: &GroupId, device: &DeviceId) -> Result<bool> {
        let tx = self.db.begin_read()?;
        Ok(device_record(&tx.open_table(DEVICES)?, group, device)?.is_some_and(|r| r.revoked))
    }

    /// Marks a device revoked (idempotent).
    ///
    /// # Errors
    /// Database errors.
    pub fn revoke(&self, group: &GroupId, device: &DeviceId) -> Result<()> {
        let tx = self.db.begin_write()?;
        Self::mark_revoked_in(&tx, group, device)?;
        tx.commit()?;
        Ok(())
    }

    /// [`Store::revoke`] inside `tx`.
    pub(crate) fn mark_revoked_in(tx: &redb::WriteTransaction, group: &GroupId, device: &DeviceId) -> Result<()> {
        let mut devices = tx.open_table(DEVICES)?;
        let mut rec = device_record(&devices, group, device)?.unwrap_or_default();
        rec.revoked = true;
        devices.insert(key2(&group.0, &device.0).as_slice(), enc(&rec).as_slice())?;
        Ok(())
    }

    /// The group's roster (online flags are the caller's to fill).
    ///
    /// # Errors
    /// Database errors.
    pub fn devices(&self, group: &GroupId) -> Result<Vec<DeviceInfo>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(DEVICES)?;
        let mut out = Vec::new();
        for item in table.range(key2(&group.0, &[0; 32]).as_slice()..=key2(&group.0, &[0xFF; 32]).as_slice())? {
            let (k, v) = item?;
            let rec: DeviceRecord = dec(v.value())?;
            let id = DeviceId(k.value()[32..64].try_into().expect("32 bytes"));
            out.push(DeviceInfo {
                device_id: id,
                name: rec.name,
                last_seen: rec.last_seen,
                online: false,
                revoked: rec.revoked,
            });
        }
        Ok(out)
    }

    /// Messages of others after this device's acknowledged cursor (capped at `cap`).
    ///
    /// # Errors
    /// Database errors.
    pub fn pending_count(&self, group: &GroupId, device: &DeviceId, cap: u32) -> Result<u32> {
        let tx = self.db.begin_read()?;
        let acked = device_record(&tx.open_table(DEVICES)?, group, device)?.map_or(0, |r| r.acked);
        let blobs = tx.open_table(BLOBS)?;
        let mut n = 0;
        for item in blobs.range(blob_key(group, acked + 1).as_slice()..=blob_key(group, u64::MAX).as_slice())? {
            let (_, v) = item?;
            if dec::<StoredBlob>(v.value())?.sender != *device {
                n += 1;
                if n == cap {
                    break;
                }
            }
        }
        Ok(n)
    }

    /// Deletes one message. `force` (sender only) deletes now; otherwise it is deleted now
    /// if every active device has acknowledged it, and else by cleanup once they have.
    ///
    /// # Errors
    /// [`StoreError::NotOwner`] for a force-delete by another device.
    pub fn delete(&self, group: &GroupId, blob_id: &BlobId, requester: &DeviceId, force: bool) -> Result<bool> {
        let tx = self.db.begin_write()?;
        let cursor = Self::deletable_in(&tx, group, blob_id, requester, force)?;
        if let Some(cursor) = cursor {
            Self::remove_blob(&tx, group, cursor)?;
        }
        tx.commit()?;
        Ok(cursor.is_some())
    }

    /// The cursor of a message that `requester` may delete now (the rules of
    /// [`Store::delete`]), without deleting it; `None` when it is unknown or must wait.
    ///
    /// # Errors
    /// [`StoreError::NotOwner`] for a force-delete by another device.
    pub fn deletable(
        &self,
        group: &GroupId,
        blob_id: &BlobId,
        requester: &DeviceId,
        force: bool,
    ) -> Result<Option<u64>> {
        let tx = self.db.begin_write()?;
        let cursor = Self::deletable_in(&tx, group, blob_id, requester, force)?;
        tx.abort()?;
        Ok(cursor)
    }

    /// Removes the message at `cursor` (after the archive deleted its payload).
    ///
    /// # Errors
    /// Database errors.
    pub fn remove(&self, group: &GroupId, cursor: u64) -> Result<()> {
        let tx = self.db.begin_write()?;
        Self::remove_blob(&tx, group, cursor)?;
        tx.commit()?;
        Ok(())
    }

    fn deletable_in(
        tx: &redb::WriteTransaction,
        group: &GroupId,
        blob_id: &BlobId,
        requester: &DeviceId,
        force: bool,
    ) -> Result<Option<u64>> {
        let Some(cursor) = tx.open_table(BLOB_IDS)?.get(key2(&group.0, &blob_id.0).as_slice())?.map(|g| g.value())
        else {
            return Ok(None);
        };
        let sender = match tx.open_table(BLOBS)?.get(blob_key(group, cursor).as_slice())? {
            Some(v) => dec::<StoredBlob>(v.value())?.sender,
            None => return Ok(None),
        };
        if force && sender != *requester {
            return Err(StoreError::NotOwner);
        }
        if !force && Self::min_acked(tx, group)?.is_none_or(|m| m < cursor) {
            return Ok(None);
        }
        Ok(Some(cursor))
    }

    fn min_acked(tx: &redb::WriteTransaction, group: &GroupId) -> Result<Option<u64>> {
        let devices = tx.open_table(DEVICES)?;
        let mut min: Option<u64> = None;
        for item in devices.range(key2(&group.0, &[0; 32]).as_slice()..=key2(&group.0, &[0xFF; 32]).as_slice())? {
            let rec: DeviceRecord = dec(item?.1.value())?;
            if !rec.revoked {
                min = Some(min.map_or(rec.acked, |m| m.min(rec.acked)));
            }
        }
        Ok(min)
    }

    fn remove_blob(tx: &redb::WriteTransaction, group: &GroupId, cursor: u64) -> Result<()> {
        let mut blobs = tx.open_table(BLOBS)?;
        let Some(rec) =
            blobs.remove(blob_key(group, cursor).as_slice())?.map(|v| dec::<StoredBlob>(v.value())).transpose()?
        else {
            return Ok(());
        };
        tx.open_table(BLOB_IDS)?.remove(key2(&group.0, &rec.blob_id.0).as_slice())?;
        let exp_key = [&rec.expires.to_be_bytes()[..], &group.0, &cursor.to_be_bytes()].concat();
        tx.open_table(EXPIRY)?.remove(exp_key.as_slice())?;
        let mut usage = tx.open_table(USAGE)?;
        let used = usage.get(group.0.as_slice())?.map_or(0, |g| g.value());
        usage.insert(group.0.as_slice(), used.saturating_sub(rec.len()))?;
        Ok(())
    }

    /// Removes expired messages, messages every active device has acknowledged, and
    /// expired invites. Returns how many messages were removed.
    ///
    /// # Errors
    /// Database errors.
    pub fn cleanup(&self, now: u64) -> Result<u64> {
        let tx = self.db.begin_write()?;
        let mut removed = 0;
        {
            let expired: Vec<(GroupId, u64)> = {
                let expiry = tx.open_table(EXPIRY)?;
                let end = [&now.to_be_bytes()[..], &[0xFF; 40]].concat();
                let mut v = Vec::new();
                for item in expiry.range(&[][..]..=end.as_slice())? {
                    let k = item?.0.value().to_vec();
                    v.push((
                        GroupId(k[8..40].try_into().expect("32")),
                        u64::from_be_bytes(k[40..48].try_into().expect("8")),
                    ));
                }
                v
            };
            for (group, cursor) in expired {
                Self::remove_blob(&tx, &group, cursor)?;
                removed += 1;
            }
            let groups: Vec<GroupId> = {
                let cursors = tx.open_table(CURSORS)?;
                let mut v = Vec::new();
                for item in cursors.iter()? {
                    v.push(GroupId(item?.0.value().try_into().map_err(|_| StoreError::Db("bad group key".into()))?));
                }
                v
            };
            // Vault mode keeps what everyone has acknowledged.
            let groups = if self.keep_history { Vec::new() } else { groups };
            for group in groups {
                let Some(acked) = Self::min_acked(&tx, &group)? else { continue };
                let cursors: Vec<u64> = {
                    let blobs = tx.open_table(BLOBS)?;
                    let mut v = Vec::new();
                    for item in blobs.range(blob_key(&group, 1).as_slice()..=blob_key(&group, acked).as_slice())? {
                        v.push(u64::from_be_bytes(item?.0.value()[32..40].try_into().expect("8")));
                    }
                    v
                };
                for cursor in cursors {
                    Self::remove_blob(&tx, &group, cursor)?;
                    removed += 1;
                }
            }
            let mut invites = tx.open_table(INVITES)?;
            invites.retain(|_, v| dec::<StoredInvite>(v).is_ok_and(|i| i.expires > now))?;
            let mut buckets = tx.open_table(INVITE_BUCKETS)?;
            buckets.retain(|k, lookup| {
                let key = InviteKey(k.try_into().unwrap_or_default());
                invites.get(invite_key(lookup, &key).as_str()).is_ok_and(|v| v.is_some())
            })?;
        }
        tx.commit()?;
        Ok(removed)
    }

    /// Bytes of payload the group stores.
    ///
    /// # Errors
    /// Database errors.
    pub fn usage(&self, group: &GroupId) -> Result<u64> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(USAGE)?.get(group.0.as_slice())?.map_or(0, |g| g.value()))
    }

    /// Totals for /health and /metrics: (groups, messages, payload bytes).
    ///
    /// # Errors
    /// Database errors.
    pub fn totals(&self) -> Result<(u64, u64, u64)> {
        let tx = self.db.begin_read()?;
        let groups = tx.open_table(CURSORS)?.len()?;
        let blobs = tx.open_table(BLOBS)?.len()?;
        let mut bytes = 0;
        for item in tx.open_table(USAGE)?.iter()? {
            bytes += item?.1.value();
        }
        Ok((groups, blobs, bytes))
    }

    /// Stores a sealed invite in its bucket, under its one-time key.
    ///
    /// # Errors
    /// [`StoreError::Quota`] when the bucket already holds [`MAX_INVITES_PER_BUCKET`] live
    /// invites; database errors.
    pub fn put_invite(&self, lookup: &str, key: &InviteKey, sealed: &[u8], expires: u64, now: u64) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut invites = tx.open_table(INVITES)?;
            let live = Self::bucket(&invites, lookup, now)?.len();
            if live >= MAX_INVITES_PER_BUCKET {
                return Err(StoreError::Quota(MAX_INVITES_PER_BUCKET as u64));
            }
            let rec = StoredInvite { sealed: sealed.to_vec(), expires };
            invites.insert(invite_key(lookup, key).as_str(), enc(&rec).as_slice())?;
            tx.open_table(INVITE_BUCKETS)?.insert(key.0.as_slice(), lookup)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn bucket(
        invites: &impl ReadableTable<&'static str, &'static [u8]>,
        lookup: &str,
        now: u64,
    ) -> Result<Vec<Vec<u8>>> {
        let (from, to) = (format!("{lookup}/"), format!("{lookup}0"));
        let mut out = Vec::new();
        for item in invites.range(from.as_str()..to.as_str())? {
            let rec: StoredInvite = dec(item?.1.value())?;
            if rec.expires > now {
                out.push(rec.sealed);
            }
        }
        Ok(out)
    }

    /// The live sealed invites of a bucket. Each stays until it expires, is cancelled, or
    /// its join is appended to a roster (which accepts one join per invite).
    ///
    /// # Errors
    /// Database errors.
    pub fn invites(&self, lookup: &str, now: u64) -> Result<Vec<Vec<u8>>> {
        let tx = self.db.begin_read()?;
        Self::bucket(&tx.open_table(INVITES)?, lookup, now)
    }

    /// Drops an invite (cancelled).
    ///
    /// # Errors
    /// Database errors.
    pub fn cancel_invite(&self, lookup: &str, key: &InviteKey) -> Result<()> {
        let tx = self.db.begin_write()?;
        let known = tx.open_table(INVITE_BUCKETS)?.get(key.0.as_slice())?.is_some_and(|b| b.value() == lookup);
        if known {
            Self::drop_invite_in(&tx, key)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Drops the sealed invite of `key` (cancelled, or spent by a join) inside `tx`.
    pub(crate) fn drop_invite_in(tx: &redb::WriteTransaction, key: &InviteKey) -> Result<()> {
        let Some(lookup) = tx.open_table(INVITE_BUCKETS)?.remove(key.0.as_slice())?.map(|b| b.value().to_string())
        else {
            return Ok(());
        };
        tx.open_table(INVITES)?.remove(invite_key(&lookup, key).as_str())?;
        Ok(())
    }
}

/// Most live invites one bucket holds (a bucket is 16 bits of a code's hash).
pub const MAX_INVITES_PER_BUCKET: usize = 16;

fn invite_key(lookup: &str, key: &InviteKey) -> String {
    format!("{lookup}/{}", hex::encode(key.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: GroupId = GroupId([1; 32]);
    const A: DeviceId = DeviceId([2; 32]);
    const B: DeviceId = DeviceId([3; 32]);

    fn put(s: &Store, id: u8, payload: &[u8], ttl_secs: u64, now: u64, quota: u64) -> Result<Pushed> {
        s.push(&NewBlob { group: &G, sender: &A, blob_id: &BlobId([id; 16]), payload, ttl_secs, now }, quota)
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("relay.redb")).unwrap();
        (dir, s)
    }

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
    fn quota_ttl_and_ack_cleanup() {
        let (_d, s) = store();
        assert!(matches!(put(&s, 1, &[0; 100], 10, 0, 50), Err(StoreError::Quota(50))));
        s.hello(&G, &A, "a", 0).unwrap();
        s.hello(&G, &B, "b", 0).unwrap();
        put(&s, 1, b"short", 10, 0, 1000).unwrap();
        put(&s, 2, b"long", 1000, 0, 1000).unwrap();
        assert_eq!(s.pending_count(&G, &B, 100).unwrap(), 2);
        assert_eq!(s.pending_count(&G, &A, 100).unwrap(), 0, "own messages are not pending");
        assert_eq!(s.cleanup(11).unwrap(), 1, "TTL expired");
        assert_eq!(s.usage(&G).unwrap(), 4);
        s.ack(&G, &A, 2, 12).unwrap();
        assert_eq!(s.cleanup(12).unwrap(), 0, "B has not acknowledged");
        s.ack(&G, &B, 2, 12).unwrap();
        assert_eq!(s.cleanup(12).unwrap(), 1, "everyone acknowledged");
        assert_eq!(s.usage(&G).unwrap(), 0);
        assert_eq!(s.max_cursor(&G).unwrap(), 2, "cursors never go back");
    }

    #[test]
    fn revocation_delete_and_invites() {
        let (_d, s) = store();
        s.hello(&G, &A, "a", 0).unwrap();
        s.revoke(&G, &B).unwrap();
        assert!(matches!(s.hello(&G, &B, "b", 1), Err(StoreError::Revoked)));
        assert!(s.is_revoked(&G, &B).unwrap());
        let p = put(&s, 7, b"x", 100, 0, 1000).unwrap();
        assert!(matches!(s.delete(&G, &BlobId([7; 16]), &B, true), Err(StoreError::NotOwner)));
        assert!(s.delete(&G, &BlobId([7; 16]), &A, true).unwrap());
        assert!(s.pull(&G, 0, 10).unwrap().0.is_empty());
        assert_eq!(p.cursor, 1);
        let (k1, k2) = (InviteKey([1; 32]), InviteKey([2; 32]));
        s.put_invite("abcd", &k1, b"one", 600, 0).unwrap();
        s.put_invite("abcd", &k2, b"two", 5, 0).unwrap();
        s.put_invite("abce", &k2, b"other bucket", 600, 0).unwrap();
        assert_eq!(s.invites("abcd", 1).unwrap(), [b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(s.invites("abcd", 10).unwrap(), [b"one".to_vec()], "expired ones are not handed out");
        s.cancel_invite("abcd", &k1).unwrap();
        assert!(s.invites("abcd", 10).unwrap().is_empty());
        for i in 0..MAX_INVITES_PER_BUCKET as u8 {
            s.put_invite("ffff", &InviteKey([i; 32]), b"x", 600, 0).unwrap();
        }
        assert!(matches!(s.put_invite("ffff", &k1, b"x", 600, 0), Err(StoreError::Quota(_))), "a bucket is bounded");
    }

    #[test]
    fn a_batch_commits_together_and_refuses_push_by_push() {
        let (_d, s) = store();
        s.revoke(&G, &B).unwrap();
        let ids = [1u8, 2, 3, 1, 4].map(|i| BlobId([i; 16]));
        let senders = [A, B, A, A, A];
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
        let results = s.push_many(&batch, 20).unwrap();
        assert_eq!(results[0].as_ref().unwrap().cursor, 1);
        assert!(matches!(results[1], Err(StoreError::Revoked)));
        assert!(matches!(results[2], Err(StoreError::Quota(20))));
        assert!(results[3].as_ref().unwrap().duplicate, "a retry inside the same batch");
        assert_eq!(results[4].as_ref().unwrap().cursor, 2, "refusals leave no gap");
        assert_eq!(s.pull(&G, 0, 10).unwrap().0.len(), 2);
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.redb");
        put(&Store::open(&path).unwrap(), 1, b"kept", 100, 0, 1000).unwrap();
        let s = Store::open(&path).unwrap();
        assert_eq!(s.pull(&G, 0, 10).unwrap().0[0].payload, b"kept");
    }
}
