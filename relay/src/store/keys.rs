//! Key encodings of the store's tables, one type each: callers build and read keys
//! through these, never by slicing bytes.

use zerok_core::sync::{BlobId, DeviceId, GroupId};

use crate::{Error, Result};

fn array<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N]> {
    bytes.try_into().map_err(|_| Error::Damaged(format!("{what} key of {} bytes", bytes.len())))
}

/// `group ‖ position (BE)`: a message by cursor, a deletion mark, a roster entry by seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct At {
    pub group: GroupId,
    pub at: u64,
}

impl At {
    pub fn new(group: &GroupId, at: u64) -> Self {
        Self { group: *group, at }
    }

    pub fn encode(&self) -> [u8; 40] {
        let mut out = [0; 40];
        out[..32].copy_from_slice(&self.group.0);
        out[32..].copy_from_slice(&self.at.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let raw: [u8; 40] = array(bytes, "position")?;
        let at = u64::from_be_bytes(raw[32..].try_into().expect("8 bytes"));
        Ok(Self { group: GroupId(raw[..32].try_into().expect("32 bytes")), at })
    }

    /// Keys of `group` from position `from` to the last, inclusive.
    pub fn range(group: &GroupId, from: u64) -> ([u8; 40], [u8; 40]) {
        (Self::new(group, from).encode(), Self::new(group, u64::MAX).encode())
    }
}

/// `group ‖ blob id`.
pub(crate) fn blob_id(group: &GroupId, blob_id: &BlobId) -> [u8; 48] {
    let mut out = [0; 48];
    out[..32].copy_from_slice(&group.0);
    out[32..].copy_from_slice(&blob_id.0);
    out
}

/// `group ‖ device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    pub group: GroupId,
    pub device: DeviceId,
}

impl Member {
    pub fn encode(group: &GroupId, device: &DeviceId) -> [u8; 64] {
        let mut out = [0; 64];
        out[..32].copy_from_slice(&group.0);
        out[32..].copy_from_slice(&device.0);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let raw: [u8; 64] = array(bytes, "device")?;
        Ok(Self {
            group: GroupId(raw[..32].try_into().expect("32")),
            device: DeviceId(raw[32..].try_into().expect("32")),
        })
    }

    /// Keys of every device of `group`.
    pub fn range(group: &GroupId) -> ([u8; 64], [u8; 64]) {
        (Self::encode(group, &DeviceId([0; 32])), Self::encode(group, &DeviceId([0xFF; 32])))
    }
}

/// `expires (BE) ‖ group ‖ cursor (BE)`: messages in expiry order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Expiry {
    pub expires: u64,
    pub message: At,
}

impl Expiry {
    pub fn encode(&self) -> [u8; 48] {
        let mut out = [0; 48];
        out[..8].copy_from_slice(&self.expires.to_be_bytes());
        out[8..].copy_from_slice(&self.message.encode());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let raw: [u8; 48] = array(bytes, "expiry")?;
        Ok(Self { expires: u64::from_be_bytes(raw[..8].try_into().expect("8")), message: At::decode(&raw[8..])? })
    }

    /// The last key of anything expiring at or before `now`.
    pub fn until(now: u64) -> [u8; 48] {
        let mut out = [0xFF; 48];
        out[..8].copy_from_slice(&now.to_be_bytes());
        out
    }
}

/// A group id read back from a table key.
pub(crate) fn group(bytes: &[u8]) -> Result<GroupId> {
    array(bytes, "group").map(GroupId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_position() {
        let g = GroupId([7; 32]);
        let at = At::new(&g, 300);
        assert_eq!(At::decode(&at.encode()).unwrap(), at);
        assert!(At::new(&g, 2).encode() < At::new(&g, 256).encode(), "big-endian positions sort");
        let e = Expiry { expires: 9, message: at };
        assert_eq!(Expiry::decode(&e.encode()).unwrap(), e);
        assert!(e.encode() <= Expiry::until(9) && Expiry::until(8) < e.encode());
        let m = Member { group: g, device: DeviceId([3; 32]) };
        assert_eq!(Member::decode(&Member::encode(&m.group, &m.device)).unwrap(), m);
        assert!(matches!(At::decode(&[0; 39]), Err(Error::Damaged(_))));
    }
}
