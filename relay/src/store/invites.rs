//! Sealed pairing invites, filed in buckets of 16 bits of a short code's hash, each under
//! its one-time invite key, until it expires, is cancelled, or its join is appended.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use zerok_core::sync::roster::InviteKey;

use super::{INVITE_BUCKETS, INVITES, Store, dec, enc};
use crate::{Error, Result};

/// Most live invites one bucket holds (a bucket is 16 bits of a code's hash).
pub const MAX_INVITES_PER_BUCKET: usize = 16;

#[derive(Serialize, Deserialize)]
struct StoredInvite {
    #[serde(with = "serde_bytes")]
    sealed: Vec<u8>,
    expires: u64,
}

fn invite_key(lookup: &str, key: &InviteKey) -> String {
    format!("{lookup}/{}", hex::encode(key.0))
}

fn bucket(invites: &impl ReadableTable<&'static str, &'static [u8]>, lookup: &str, now: u64) -> Result<Vec<Vec<u8>>> {
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

/// Drops the sealed invite of `key` (cancelled, or spent by a join) inside `tx`.
pub(super) fn drop_in(tx: &redb::WriteTransaction, key: &InviteKey) -> Result<()> {
    let Some(lookup) = tx.open_table(INVITE_BUCKETS)?.remove(key.0.as_slice())?.map(|b| b.value().to_string()) else {
        return Ok(());
    };
    tx.open_table(INVITES)?.remove(invite_key(&lookup, key).as_str())?;
    Ok(())
}

/// Drops expired invites inside `tx`.
pub(super) fn expire_in(tx: &redb::WriteTransaction, now: u64) -> Result<()> {
    let mut invites = tx.open_table(INVITES)?;
    invites.retain(|_, v| dec::<StoredInvite>(v).is_ok_and(|i| i.expires > now))?;
    let mut buckets = tx.open_table(INVITE_BUCKETS)?;
    buckets.retain(|k, lookup| {
        let key = InviteKey(k.try_into().unwrap_or_default());
        invites.get(invite_key(lookup, &key).as_str()).is_ok_and(|v| v.is_some())
    })?;
    Ok(())
}

impl Store {
    /// Stores a sealed invite in its bucket, under its one-time key.
    ///
    /// # Errors
    /// [`Error::Quota`] when the bucket already holds [`MAX_INVITES_PER_BUCKET`] live
    /// invites; database errors.
    pub fn put_invite(&self, lookup: &str, key: &InviteKey, sealed: &[u8], expires: u64, now: u64) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut invites = tx.open_table(INVITES)?;
            if bucket(&invites, lookup, now)?.len() >= MAX_INVITES_PER_BUCKET {
                return Err(Error::Quota(MAX_INVITES_PER_BUCKET as u64));
            }
            let rec = StoredInvite { sealed: sealed.to_vec(), expires };
            invites.insert(invite_key(lookup, key).as_str(), enc(&rec).as_slice())?;
            tx.open_table(INVITE_BUCKETS)?.insert(key.0.as_slice(), lookup)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The live sealed invites of a bucket. Each stays until it expires, is cancelled, or
    /// its join is appended to a roster (which accepts one join per invite).
    ///
    /// # Errors
    /// Database errors.
    pub fn invites(&self, lookup: &str, now: u64) -> Result<Vec<Vec<u8>>> {
        let tx = self.db.begin_read()?;
        bucket(&tx.open_table(INVITES)?, lookup, now)
    }

    /// Drops an invite (cancelled).
    ///
    /// # Errors
    /// Database errors.
    pub fn cancel_invite(&self, lookup: &str, key: &InviteKey) -> Result<()> {
        let tx = self.db.begin_write()?;
        let known = tx.open_table(INVITE_BUCKETS)?.get(key.0.as_slice())?.is_some_and(|b| b.value() == lookup);
        if known {
            drop_in(&tx, key)?;
        }
        tx.commit()?;
        Ok(())
    }
}
