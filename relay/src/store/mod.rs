//! The relay's durable store: one redb file holding, per group, the cursor counter, the
//! encrypted messages (with TTL) and their deletion marks, the device records (names, last
//! seen, acknowledged cursor, revoked), storage usage for quotas, sealed pairing invites, and
//! the relay's copy of each roster log.
//!
//! Every write is one ACID transaction committed durably before it returns, so a PUSH_ACK
//! sent after a push survives a crash; the cursor is assigned in the same transaction as the
//! insert, so cursors never have gaps from failed inserts. Pushing the same blob id twice
//! returns the first cursor (a retried push is idempotent).
//!
//! In vault mode the same tables hold only the metadata: payloads live in the archive
//! (`storage::vault`), records keep their size, nothing expires, and messages every device
//! acknowledged are kept ([`Store::keep_history`]).
//!
//! - `keys`: the key encoding of each table.
//! - `messages`: push, pull, cursors.
//! - `deletion`: DELETE, marks, expiry and acknowledgement cleanup.
//! - `devices`: device records (HELLO, acknowledgements, revocation, the device list).
//! - `invites`: sealed invites in their buckets.
//! - `push_tokens`: mobile push tokens of members.
//! - `roster`: the verified roster log of each lineage.

mod deletion;
mod devices;
mod invites;
mod keys;
mod messages;
mod push_tokens;
mod roster;

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

pub use deletion::Deletion;
pub use messages::{Caps, NewBlob, Pushed, RECORD_OVERHEAD_BYTES};
pub use push_tokens::PushToken;
pub use roster::{Appended, RosterPage, Standing};

use crate::{Error, Result};

/// group → next cursor.
const CURSORS: TableDefinition<&[u8], u64> = TableDefinition::new("cursors");
/// [`keys::At`] (group ‖ cursor) → `messages::StoredBlob`.
const BLOBS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blobs");
/// [`keys::blob_id`] → cursor.
const BLOB_IDS: TableDefinition<&[u8], u64> = TableDefinition::new("blob_ids");
/// [`keys::Expiry`] → ().
const EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("expiry");
/// [`keys::At`] (group ‖ cursor) → (): messages a non-force DELETE marked.
const MARKS: TableDefinition<&[u8], ()> = TableDefinition::new("delete_marks");
/// [`keys::Member`] → `devices::DeviceRecord`.
const DEVICES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("devices");
/// group → bytes counted against its quota (payloads plus [`RECORD_OVERHEAD_BYTES`] each).
const USAGE: TableDefinition<&[u8], u64> = TableDefinition::new("usage");
/// `"bytes"` → the sum of every group's usage.
const TOTALS: TableDefinition<&str, u64> = TableDefinition::new("totals");
/// bucket "/" invite key (hex) → `invites::StoredInvite`.
const INVITES: TableDefinition<&str, &[u8]> = TableDefinition::new("invites");
/// invite key → its bucket (to drop a sealed invite once a join used it).
const INVITE_BUCKETS: TableDefinition<&[u8], &str> = TableDefinition::new("invite_buckets");

/// [`keys::Member`] → `push_tokens::PushToken`.
const PUSH_TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("push_tokens");

/// The key of [`TOTALS`]' one row.
const TOTAL_BYTES: &str = "bytes";

pub(crate) fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    rmp_serde::to_vec(v).expect("record encodes")
}

pub(crate) fn dec<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::Damaged(e.to_string()))
}

/// Adds `bytes` (or, negative, takes them) to a group's usage and to the relay's total.
fn charge(tx: &redb::WriteTransaction, group: &zerok_core::sync::GroupId, bytes: i64) -> Result<()> {
    let apply =
        |v: u64| if bytes >= 0 { v.saturating_add(bytes as u64) } else { v.saturating_sub(bytes.unsigned_abs()) };
    let mut usage = tx.open_table(USAGE)?;
    let used = usage.get(group.0.as_slice())?.map_or(0, |g| g.value());
    usage.insert(group.0.as_slice(), apply(used))?;
    let mut totals = tx.open_table(TOTALS)?;
    let total = totals.get(TOTAL_BYTES)?.map_or(0, |g| g.value());
    totals.insert(TOTAL_BYTES, apply(total))?;
    Ok(())
}

/// The durable store.
pub struct Store {
    db: Database,
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
            tx.open_table(MARKS)?;
            tx.open_table(DEVICES)?;
            tx.open_table(USAGE)?;
            tx.open_table(TOTALS)?;
            tx.open_table(INVITES)?;
            tx.open_table(INVITE_BUCKETS)?;
            tx.open_table(PUSH_TOKENS)?;
            roster::open_tables(&tx)?;
            let mut totals = tx.open_table(TOTALS)?;
            if totals.get(TOTAL_BYTES)?.is_none() {
                // A store from before the total was kept: count it once.
                let mut sum = 0u64;
                for item in tx.open_table(USAGE)?.iter()? {
                    sum = sum.saturating_add(item?.1.value());
                }
                totals.insert(TOTAL_BYTES, sum)?;
            }
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

    /// Bytes the group counts against its quota.
    #[cfg(test)]
    pub fn usage(&self, group: &zerok_core::sync::GroupId) -> Result<u64> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(USAGE)?.get(group.0.as_slice())?.map_or(0, |g| g.value()))
    }

    /// Totals for /health and /metrics: (groups, messages, bytes counted).
    ///
    /// # Errors
    /// Database errors.
    pub fn totals(&self) -> Result<(u64, u64, u64)> {
        let tx = self.db.begin_read()?;
        let groups = tx.open_table(CURSORS)?.len()?;
        let blobs = tx.open_table(BLOBS)?.len()?;
        let bytes = tx.open_table(TOTALS)?.get(TOTAL_BYTES)?.map_or(0, |g| g.value());
        Ok((groups, blobs, bytes))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::LazyLock;

    use zerok_core::sync::{
        BlobId, DeviceId, GroupId, SigningKey,
        roster::{InviteKey, Roster, Ticket, create_entry, join_entry},
    };

    use super::{invites::MAX_INVITES_PER_BUCKET, *};

    pub const G: GroupId = GroupId([1; 32]);
    /// Members of G's roster (signing keys 2, 3 and 4), the first its creator.
    pub static A: LazyLock<DeviceId> = LazyLock::new(|| member(2));
    pub static B: LazyLock<DeviceId> = LazyLock::new(|| member(3));
    pub static C: LazyLock<DeviceId> = LazyLock::new(|| member(4));

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn member(n: u8) -> DeviceId {
        DeviceId(key(n).verifying_key().to_bytes())
    }

    pub fn put(s: &Store, id: u8, payload: &[u8], ttl_secs: u64, now: u64, quota: u64) -> Result<Pushed> {
        let caps = Caps { group_bytes: quota, total_bytes: u64::MAX };
        s.push(&NewBlob { group: &G, sender: &A, blob_id: &BlobId([id; 16]), payload, ttl_secs, now }, caps)
    }

    /// A store whose roster of G holds A, B and C.
    pub fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("relay.redb")).unwrap();
        let mut entries = vec![create_entry(G, &key(2), "a")];
        let mut roster = Roster::genesis(&entries[0]).unwrap().0;
        for n in [3, 4] {
            let join = join_entry(&roster, &key(n), "x", Ticket::new(G, &key(2), &[n; 32], u64::MAX), &[n; 32]);
            roster = roster.apply(&join, None).unwrap().0;
            entries.push(join);
        }
        s.roster_append(&G, &entries, 0, 9).unwrap();
        (dir, s)
    }

    #[test]
    fn ttl_and_ack_cleanup() {
        let (_d, s) = store();
        s.hello(&G, &A, "a", 0).unwrap();
        s.hello(&G, &B, "b", 0).unwrap();
        put(&s, 1, b"short", 10, 0, 1 << 20).unwrap();
        put(&s, 2, b"long", 1000, 0, 1 << 20).unwrap();
        assert_eq!(s.pending_count(&G, &B, 100).unwrap(), 2);
        assert_eq!(s.pending_count(&G, &A, 100).unwrap(), 0, "own messages are not pending");
        assert_eq!(s.cleanup(11).unwrap(), 1, "TTL expired");
        assert_eq!(s.usage(&G).unwrap(), 4 + RECORD_OVERHEAD_BYTES);
        s.ack(&G, &A, 2, 12).unwrap();
        assert_eq!(s.cleanup(12).unwrap(), 0, "B has not acknowledged");
        s.ack(&G, &B, 2, 12).unwrap();
        assert_eq!(s.cleanup(12).unwrap(), 0, "C never connected: it counts, as a current member");
        s.ack(&G, &C, 2, 12).unwrap();
        assert_eq!(s.cleanup(12).unwrap(), 1, "every current member acknowledged");
        assert_eq!((s.usage(&G).unwrap(), s.totals().unwrap().2), (0, 0));
        assert_eq!(s.max_cursor(&G).unwrap(), 2, "cursors never go back");
    }

    #[test]
    fn revocation_delete_and_invites() {
        let (_d, s) = store();
        s.hello(&G, &A, "a", 0).unwrap();
        s.revoke(&G, &B).unwrap();
        assert!(matches!(s.hello(&G, &B, "b", 1), Err(Error::Revoked)));
        assert!(s.is_revoked(&G, &B).unwrap());
        put(&s, 7, b"x", 100, 0, 1 << 20).unwrap();
        let id = BlobId([7; 16]);
        assert!(matches!(s.judge_delete(&G, &id, &B, true), Err(Error::NotOwner)));
        assert_eq!(s.judge_delete(&G, &id, &A, true).unwrap(), Deletion::Now(1));
        s.remove(&G, 1).unwrap();
        assert!(s.pull(&G, 0, 10).unwrap().0.is_empty());
        assert_eq!(s.judge_delete(&G, &id, &A, true).unwrap(), Deletion::Unknown);
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
        assert!(matches!(s.put_invite("ffff", &k1, b"x", 600, 0), Err(Error::Quota(_))), "a bucket is bounded");
    }

    #[test]
    fn survives_reopen() {
        let (dir, s) = store();
        put(&s, 1, b"kept", 100, 0, 1000).unwrap();
        drop(s);
        let s = Store::open(&dir.path().join("relay.redb")).unwrap();
        assert_eq!(s.pull(&G, 0, 10).unwrap().0[0].payload, b"kept");
        assert_eq!(s.totals().unwrap().2, 4 + RECORD_OVERHEAD_BYTES);
    }
}
