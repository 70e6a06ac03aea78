//! Deleting messages, the sender's only (in vault mode the history is the group's: no
//! other member may erase it): a force DELETE removes at once; a plain DELETE marks the
//! message, which goes once every current member has acknowledged it (pulled past it).
//! Cleanup removes expired messages, and in transit mode those every current member has
//! acknowledged.

use redb::{ReadableDatabase, ReadableTable};
use zerok_core::sync::{BlobId, DeviceId, GroupId};

use super::{BLOB_IDS, BLOBS, CURSORS, DEVICES, EXPIRY, MARKS, Store, charge, dec, keys, messages::StoredBlob};
use crate::{Error, Result};

/// [`min_acked`] in a read or write transaction.
macro_rules! min_acked_in {
    ($tx:expr, $group:expr) => {
        min_acked(
            &$tx.open_table(DEVICES)?,
            super::roster::members_in(
                &$tx.open_table(super::roster::LINEAGES)?,
                &$tx.open_table(super::roster::ROSTERS)?,
                $group,
            )?,
            $group,
        )
    };
}

/// What a DELETE found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// No such message (never stored, expired, or deleted already).
    Unknown,
    /// It may go now: the message at this cursor.
    Now(u64),
    /// Marked: it goes once every current member has acknowledged it.
    Marked,
}

impl Store {
    /// Judges a DELETE by `requester` (the sender only): with `force` the message may go
    /// now; otherwise now if every current member acknowledged it, else it is marked (durably)
    /// for [`Store::due_marks`]. Removing is the caller's ([`Store::remove`]), after the
    /// archive's tombstone in vault mode.
    ///
    /// # Errors
    /// [`Error::NotOwner`] for another device's message.
    pub fn judge_delete(
        &self,
        group: &GroupId,
        blob_id: &BlobId,
        requester: &DeviceId,
        force: bool,
    ) -> Result<Deletion> {
        let tx = self.db.begin_write()?;
        let Some(cursor) = tx.open_table(BLOB_IDS)?.get(keys::blob_id(group, blob_id).as_slice())?.map(|g| g.value())
        else {
            return Ok(Deletion::Unknown);
        };
        let at = keys::At::new(group, cursor);
        let sender = match tx.open_table(BLOBS)?.get(at.encode().as_slice())? {
            Some(v) => super::messages::view(v.value())?.sender,
            None => return Ok(Deletion::Unknown),
        };
        if sender != *requester {
            return Err(Error::NotOwner);
        }
        if force || min_acked_in!(tx, group)?.is_some_and(|m| m >= cursor) {
            return Ok(Deletion::Now(cursor));
        }
        tx.open_table(MARKS)?.insert(at.encode().as_slice(), ())?;
        tx.commit()?;
        Ok(Deletion::Marked)
    }

    /// Marked messages of `group` every current member has acknowledged: due for removal.
    ///
    /// # Errors
    /// Database errors.
    pub fn due_marks(&self, group: &GroupId) -> Result<Vec<u64>> {
        let tx = self.db.begin_read()?;
        let marks = tx.open_table(MARKS)?;
        let (start, end) = keys::At::range(group, 0);
        let mut marked = marks.range(start.as_slice()..=end.as_slice())?.peekable();
        if marked.peek().is_none() {
            return Ok(Vec::new());
        }
        let Some(acked) = min_acked_in!(tx, group)? else { return Ok(Vec::new()) };
        let mut due = Vec::new();
        for item in marked {
            let at = keys::At::decode(item?.0.value())?;
            if at.at > acked {
                break;
            }
            due.push(at.at);
        }
        Ok(due)
    }

    /// Groups that hold marked messages.
    ///
    /// # Errors
    /// Database errors.
    pub fn marked_groups(&self) -> Result<Vec<GroupId>> {
        let tx = self.db.begin_read()?;
        let mut out: Vec<GroupId> = Vec::new();
        for item in tx.open_table(MARKS)?.iter()? {
            let group = keys::At::decode(item?.0.value())?.group;
            if out.last() != Some(&group) {
                out.push(group);
            }
        }
        Ok(out)
    }

    /// Removes the message at `cursor` (after the archive replaced its payload by a
    /// tombstone, in vault mode).
    ///
    /// # Errors
    /// Database errors.
    pub fn remove(&self, group: &GroupId, cursor: u64) -> Result<()> {
        let tx = self.db.begin_write()?;
        remove_in(&tx, group, cursor)?;
        tx.commit()?;
        Ok(())
    }

    /// Removes expired messages, expired invites and, in transit mode, messages every
    /// current member has acknowledged. Returns how many messages were removed.
    ///
    /// # Errors
    /// Database errors.
    pub fn cleanup(&self, now: u64) -> Result<u64> {
        let tx = self.db.begin_write()?;
        let mut removed = 0;
        let expired: Vec<keys::At> = {
            let expiry = tx.open_table(EXPIRY)?;
            let mut v = Vec::new();
            for item in expiry.range(&[][..]..=keys::Expiry::until(now).as_slice())? {
                v.push(keys::Expiry::decode(item?.0.value())?.message);
            }
            v
        };
        for at in expired {
            remove_in(&tx, &at.group, at.at)?;
            removed += 1;
        }
        // Vault mode keeps what everyone has acknowledged.
        let groups: Vec<GroupId> = if self.keep_history {
            Vec::new()
        } else {
            let mut v = Vec::new();
            for item in tx.open_table(CURSORS)?.iter()? {
                v.push(keys::group(item?.0.value())?);
            }
            v
        };
        for group in groups {
            let Some(acked) = min_acked_in!(tx, &group)? else { continue };
            let cursors: Vec<u64> = {
                let blobs = tx.open_table(BLOBS)?;
                let (start, end) = (keys::At::new(&group, 1).encode(), keys::At::new(&group, acked).encode());
                let mut v = Vec::new();
                for item in blobs.range(start.as_slice()..=end.as_slice())? {
                    v.push(keys::At::decode(item?.0.value())?.at);
                }
                v
            };
            for cursor in cursors {
                remove_in(&tx, &group, cursor)?;
                removed += 1;
            }
        }
        super::invites::expire_in(&tx, now)?;
        tx.commit()?;
        Ok(removed)
    }
}

/// The lowest cursor every current member has acknowledged: over the roster's members
/// when the relay knows the group's roster (one that never connected counts as 0), else
/// over the devices that said HELLO; revoked devices do not count. None: nobody to wait for.
fn min_acked(
    devices: &impl ReadableTable<&'static [u8], &'static [u8]>,
    members: Option<Vec<DeviceId>>,
    group: &GroupId,
) -> Result<Option<u64>> {
    let mut min: Option<u64> = None;
    let mut count = |acked: u64| min = Some(min.map_or(acked, |m: u64| m.min(acked)));
    match members {
        Some(members) => {
            for device in members {
                match super::devices::record_in(devices, group, &device)? {
                    Some(rec) if rec.revoked => {}
                    Some(rec) => count(rec.acked),
                    None => count(0),
                }
            }
        }
        None => {
            let (start, end) = keys::Member::range(group);
            for item in devices.range(start.as_slice()..=end.as_slice())? {
                let rec: super::devices::DeviceRecord = dec(item?.1.value())?;
                if !rec.revoked {
                    count(rec.acked);
                }
            }
        }
    }
    Ok(min)
}

/// Removes one message and everything that names it, and gives its bytes back.
fn remove_in(tx: &redb::WriteTransaction, group: &GroupId, cursor: u64) -> Result<()> {
    let at = keys::At::new(group, cursor);
    let Some(rec) =
        tx.open_table(BLOBS)?.remove(at.encode().as_slice())?.map(|v| dec::<StoredBlob>(v.value())).transpose()?
    else {
        tx.open_table(MARKS)?.remove(at.encode().as_slice())?;
        return Ok(());
    };
    tx.open_table(BLOB_IDS)?.remove(keys::blob_id(group, &rec.blob_id).as_slice())?;
    tx.open_table(EXPIRY)?.remove(keys::Expiry { expires: rec.expires, message: at }.encode().as_slice())?;
    tx.open_table(MARKS)?.remove(at.encode().as_slice())?;
    charge(tx, group, -(rec.charged() as i64))
}
