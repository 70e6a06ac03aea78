//! Device records per group: the name from HELLO, last contact, the cursor acknowledged by
//! pulls, and revocation; and the device list PRESENCE returns.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use zerok_core::sync::{DeviceId, GroupId, message::DeviceInfo};

use super::{DEVICES, Store, dec, enc, keys};
use crate::{Error, Result};

#[derive(Serialize, Deserialize, Default)]
pub(super) struct DeviceRecord {
    pub name: String,
    pub last_seen: u64,
    pub acked: u64,
    pub revoked: bool,
}

/// A device's record in a group, from either kind of transaction's table.
pub(super) fn record_in(
    devices: &impl ReadableTable<&'static [u8], &'static [u8]>,
    group: &GroupId,
    device: &DeviceId,
) -> Result<Option<DeviceRecord>> {
    devices.get(keys::Member::encode(group, device).as_slice())?.map(|v| dec::<DeviceRecord>(v.value())).transpose()
}

/// Marks a device revoked inside `tx` (idempotent).
pub(super) fn mark_revoked_in(tx: &redb::WriteTransaction, group: &GroupId, device: &DeviceId) -> Result<()> {
    let mut devices = tx.open_table(DEVICES)?;
    let mut rec = record_in(&devices, group, device)?.unwrap_or_default();
    rec.revoked = true;
    devices.insert(keys::Member::encode(group, device).as_slice(), enc(&rec).as_slice())?;
    Ok(())
}

impl Store {
    /// Records a device's HELLO (name, time); refuses a revoked device.
    ///
    /// # Errors
    /// [`Error::Revoked`].
    pub fn hello(&self, group: &GroupId, device: &DeviceId, name: &str, now: u64) -> Result<()> {
        self.update_device(group, device, |d| {
            d.name = name.to_string();
            d.last_seen = now;
        })
    }

    /// Records that a device has everything up to `cursor` (from its PULL), and contact.
    ///
    /// # Errors
    /// [`Error::Revoked`].
    pub fn ack(&self, group: &GroupId, device: &DeviceId, cursor: u64, now: u64) -> Result<()> {
        self.update_device(group, device, |d| {
            d.acked = d.acked.max(cursor);
            d.last_seen = now;
        })
    }

    /// Changes a device's record in a commit that skips the disk sync: contact times and
    /// acknowledged cursors may be lost in a crash (the next push's durable commit persists
    /// them), which costs at most a redelivery; every HELLO and PULL paying an `fsync`
    /// would let one busy group stall every other group's pushes.
    fn update_device(&self, group: &GroupId, device: &DeviceId, f: impl FnOnce(&mut DeviceRecord)) -> Result<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::None).map_err(|e| Error::Db(e.to_string()))?;
        {
            let mut devices = tx.open_table(DEVICES)?;
            let mut rec = record_in(&devices, group, device)?.unwrap_or_default();
            if rec.revoked {
                return Err(Error::Revoked);
            }
            f(&mut rec);
            devices.insert(keys::Member::encode(group, device).as_slice(), enc(&rec).as_slice())?;
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
        Ok(record_in(&tx.open_table(DEVICES)?, group, device)?.is_some_and(|r| r.revoked))
    }

    /// Marks a device revoked (idempotent).
    ///
    /// # Errors
    /// Database errors.
    pub fn revoke(&self, group: &GroupId, device: &DeviceId) -> Result<()> {
        let tx = self.db.begin_write()?;
        mark_revoked_in(&tx, group, device)?;
        tx.commit()?;
        Ok(())
    }

    /// The group's devices, at most `limit`: current ones first, then revoked ones while
    /// room is left (online flags are the caller's to fill).
    ///
    /// # Errors
    /// Database errors.
    pub fn devices(&self, group: &GroupId, limit: usize) -> Result<Vec<DeviceInfo>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(DEVICES)?;
        let (start, end) = keys::Member::range(group);
        let (mut out, mut revoked) = (Vec::new(), Vec::new());
        for item in table.range(start.as_slice()..=end.as_slice())? {
            let (k, v) = item?;
            let rec: DeviceRecord = dec(v.value())?;
            let list = if rec.revoked { &mut revoked } else { &mut out };
            if list.len() >= limit {
                continue;
            }
            list.push(DeviceInfo {
                device_id: keys::Member::decode(k.value())?.device,
                name: rec.name,
                last_seen: rec.last_seen,
                online: false,
                revoked: rec.revoked,
            });
        }
        out.extend(revoked);
        out.truncate(limit);
        Ok(out)
    }
}
