//! Push tokens (spec §16): per group member, the mobile push token its app registered, so
//! the relay can wake it while it is offline. A token is kept until its device replaces or
//! drops it, or leaves the roster.

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};
use zerok_core::sync::{DeviceId, GroupId, message::PushPlatform};

use super::{PUSH_TOKENS, Store, dec, enc, keys::Member};
use crate::Result;

/// A registered token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushToken {
    /// The platform's token.
    pub token: String,
    /// Which platform.
    pub platform: PushPlatform,
    /// The app (APNs bundle id).
    pub app_id: Option<String>,
}

impl Store {
    /// Registers (or replaces) `device`'s token in `group`.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_push_token(&self, group: &GroupId, device: &DeviceId, token: &PushToken) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(PUSH_TOKENS)?.insert(Member::encode(group, device).as_slice(), enc(token).as_slice())?;
        tx.commit()?;
        Ok(())
    }

    /// Drops `device`'s token in `group`; whether it had one.
    ///
    /// # Errors
    /// Database errors.
    pub fn drop_push_token(&self, group: &GroupId, device: &DeviceId) -> Result<bool> {
        let tx = self.db.begin_write()?;
        let had = tx.open_table(PUSH_TOKENS)?.remove(Member::encode(group, device).as_slice())?.is_some();
        tx.commit()?;
        Ok(had)
    }

    /// The tokens registered in `group` (at most one per member).
    ///
    /// # Errors
    /// Database errors, a damaged record.
    pub fn push_tokens(&self, group: &GroupId) -> Result<Vec<(DeviceId, PushToken)>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(PUSH_TOKENS)?;
        let (from, to) = Member::range(group);
        let mut out = Vec::new();
        for item in table.range(from.as_slice()..=to.as_slice())? {
            let (k, v) = item?;
            out.push((Member::decode(k.value())?.device, dec(v.value())?));
        }
        Ok(out)
    }
}
