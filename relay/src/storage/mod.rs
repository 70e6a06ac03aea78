//! One storage interface over the relay's two modes: *transit* (messages in the local
//! store, pushes group-committed, TTL) and *vault* (payloads kept forever in object
//! storage, metadata local). Every method does its own membership check and runs the
//! store's blocking calls on tokio's blocking pool, so the two modes cannot drift: they
//! differ only where a payload is written, read and removed.
//!
//! - `committer`: transit mode's group commit.
//! - `vault`: vault mode's archive in object storage.
//! - `space`: the free-space guard.

mod committer;
mod space;
mod vault;

#[cfg(test)]
mod contract;

use std::sync::Arc;

use zerok_core::sync::{
    BlobId, DeviceId, GroupId,
    message::{BlobEntry, DeviceInfo},
    roster::{Entry, InviteKey},
};
use zerok_vault::Backend;

pub use vault::Archive;

use crate::{
    Config, Error, Result, StorageMode,
    store::{Appended, Caps, Deletion, NewBlob, PushToken, Pushed, RosterPage, Standing, Store},
};

/// File in the data folder holding the store (in vault mode, the metadata only).
pub const STORE_FILE: &str = "transit.redb";

/// Runs a store call on tokio's blocking pool (redb calls block on disk).
///
/// # Errors
/// The call's error, or [`Error::Db`] when the blocking task failed.
pub(crate) async fn on_blocking<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> Result<T> + Send + 'static,
) -> Result<T> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store)).await.unwrap_or_else(|e| Err(Error::Db(e.to_string())))
}

/// Where payloads live.
enum Mode {
    /// In the store; pushes share durable commits.
    Transit(committer::Committer),
    /// In object storage.
    Vault(Archive),
}

/// What HELLO found.
#[derive(Debug, Clone, Copy)]
pub struct Welcomed {
    /// The device's standing.
    pub standing: Standing,
    /// The group's highest cursor (0 for a guest).
    pub max_cursor: u64,
    /// Messages of others the device has not acknowledged (capped).
    pub pending: u32,
}

/// WELCOME counts pending messages up to this many (bounds the work of a HELLO).
const PENDING_COUNT_CAP: u32 = 10_000;

/// The relay's storage.
pub struct Storage {
    store: Arc<Store>,
    mode: Mode,
    caps: Caps,
    max_members: usize,
    space: space::Space,
}

impl Storage {
    /// Opens the store and, in vault mode, the archive (on `backend`, else opened from
    /// `object-store`), rebuilt from the bucket where the local metadata lacks what the
    /// bucket holds. Transit mode starts its commit thread.
    ///
    /// # Errors
    /// The store, the object store, or the writer thread.
    pub async fn open(config: &Config, backend: Option<Backend>) -> Result<Self> {
        let path = config.storage.data_dir.join(STORE_FILE);
        let caps = Caps {
            group_bytes: config.storage.max_group_bytes,
            total_bytes: match config.storage.max_total_bytes {
                0 => u64::MAX,
                n => n,
            },
        };
        let (store, mode) = match (config.storage.mode, &config.storage.object_store) {
            (StorageMode::Vault, Some(url)) => {
                let backend = match backend {
                    Some(b) => b,
                    None => zerok_vault::Location::parse(url)
                        .and_then(|l| l.open(url))
                        .map_err(|e| Error::Config(format!("object-store: {e}")))?,
                };
                let store = Arc::new(Store::open(&path)?.keep_history());
                let archive = Archive::new(backend, store.clone());
                let rebuilt = archive.rebuild().await?;
                tracing::info!(
                    groups = rebuilt.groups,
                    indexed = rebuilt.messages,
                    revocations = rebuilt.revoked,
                    "vault mode: archive checked against local metadata"
                );
                (store, Mode::Vault(archive))
            }
            _ => {
                let store = Arc::new(Store::open(&path)?);
                let committer = committer::Committer::start(store.clone(), caps)
                    .map_err(|e| Error::Io(format!("store writer: {e}")))?;
                (store, Mode::Transit(committer))
            }
        };
        let space = space::Space::new(&config.storage.data_dir, config.storage.min_free_bytes);
        Ok(Self { store, mode, caps, max_members: config.limits.max_group_devices, space })
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Store) -> Result<T> + Send + 'static) -> Result<T> {
        on_blocking(&self.store, f).await
    }

    /// Vault mode's object store.
    pub fn backend(&self) -> Option<Backend> {
        match &self.mode {
            Mode::Vault(archive) => Some(archive.backend().clone()),
            Mode::Transit(_) => None,
        }
    }

    /// Whether this is a vault-mode relay.
    pub fn is_vault(&self) -> bool {
        matches!(self.mode, Mode::Vault(_))
    }

    /// `device`'s standing in `group`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn standing(&self, group: GroupId, device: DeviceId) -> Result<Standing> {
        self.blocking(move |s| s.standing(&group, &device)).await
    }

    /// Refuses a device that is not (or no longer) a member.
    pub async fn member(&self, group: GroupId, device: DeviceId) -> Result<Standing> {
        match self.standing(group, device).await? {
            s if s.removed => Err(Error::Revoked),
            s if !s.member => Err(Error::NotMember),
            s => Ok(s),
        }
    }

    /// A HELLO that proved the group secret: a removed or revoked device is refused; a
    /// member's name and contact are recorded; a guest is let in to read and append to
    /// the roster only.
    ///
    /// # Errors
    /// [`Error::Revoked`]; database errors.
    pub async fn hello(&self, group: GroupId, device: DeviceId, name: String, now: u64) -> Result<Welcomed> {
        self.blocking(move |s| {
            let standing = s.standing(&group, &device)?;
            if standing.removed || s.is_revoked(&group, &device)? {
                return Err(Error::Revoked);
            }
            if !standing.member {
                // Nobody joins a group that rotated away: a guest there is a removed
                // device under a fresh key.
                if standing.closed {
                    return Err(Error::Rotated);
                }
                return Ok(Welcomed { standing, max_cursor: 0, pending: 0 });
            }
            s.hello(&group, &device, &name, now)?;
            Ok(Welcomed {
                standing,
                max_cursor: s.max_cursor(&group)?,
                pending: s.pending_count(&group, &device, PENDING_COUNT_CAP)?,
            })
        })
        .await
    }

    /// Records a device that became a member during its session (its join).
    ///
    /// # Errors
    /// [`Error::Revoked`]; database errors.
    pub async fn joined(&self, group: GroupId, device: DeviceId, name: String, now: u64) -> Result<()> {
        self.blocking(move |s| s.hello(&group, &device, &name, now)).await
    }

    /// Stores a member's message durably and assigns its cursor.
    ///
    /// # Errors
    /// [`Error::NotMember`], [`Error::Revoked`], [`Error::Rotated`], [`Error::Quota`],
    /// [`Error::Full`], storage failures.
    pub async fn push(&self, blob: &NewBlob<'_>) -> Result<Pushed> {
        if !self.space.has_room() {
            return Err(Error::Full);
        }
        match &self.mode {
            // Membership is checked in the push's own transaction (no extra round trip
            // to the blocking pool on the hot path).
            Mode::Transit(committer) => committer.push(blob).await,
            Mode::Vault(archive) => {
                if self.member(*blob.group, *blob.sender).await?.closed {
                    return Err(Error::Rotated);
                }
                archive.push(blob, self.caps).await
            }
        }
    }

    /// A member's PULL: acknowledges everything up to `after`, returns the messages after
    /// it within `limit` and `budget` bytes, and whether more remain; then removes marked
    /// messages every member now has.
    ///
    /// # Errors
    /// [`Error::NotMember`], [`Error::Revoked`], storage failures.
    pub async fn pull(
        &self,
        group: GroupId,
        device: DeviceId,
        (after, limit, budget): (u64, usize, usize),
        now: u64,
    ) -> Result<(Vec<BlobEntry>, bool)> {
        self.member(group, device).await?;
        let (mut blobs, more) = self
            .blocking(move |s| {
                s.ack(&group, &device, after, now)?;
                s.pull_within(&group, after, limit, budget)
            })
            .await?;
        if let Mode::Vault(archive) = &self.mode {
            blobs = archive.fill(&group, blobs).await?;
        }
        self.settle(group).await?;
        Ok((blobs, more))
    }

    /// A member's device list (at most `limit`; online flags are the caller's to fill);
    /// counts as contact.
    ///
    /// # Errors
    /// [`Error::NotMember`], [`Error::Revoked`], storage failures.
    pub async fn devices(&self, group: GroupId, device: DeviceId, now: u64, limit: usize) -> Result<Vec<DeviceInfo>> {
        self.member(group, device).await?;
        self.blocking(move |s| {
            s.ack(&group, &device, 0, now)?;
            s.devices(&group, limit)
        })
        .await
    }

    /// A member's DELETE of its own message: returns whether it is gone now (false: marked
    /// until every current member has it, or unknown).
    ///
    /// # Errors
    /// [`Error::NotOwner`] for another device's message; membership and storage failures.
    pub async fn delete(&self, group: GroupId, device: DeviceId, blob_id: BlobId, force: bool) -> Result<bool> {
        self.member(group, device).await?;
        match self.blocking(move |s| s.judge_delete(&group, &blob_id, &device, force)).await? {
            Deletion::Now(cursor) => {
                self.remove(group, cursor).await?;
                Ok(true)
            }
            Deletion::Marked | Deletion::Unknown => Ok(false),
        }
    }

    async fn remove(&self, group: GroupId, cursor: u64) -> Result<()> {
        match &self.mode {
            Mode::Transit(_) => self.blocking(move |s| s.remove(&group, cursor)).await,
            Mode::Vault(archive) => archive.remove(group, cursor).await,
        }
    }

    /// Removes `group`'s marked messages that every current member has.
    async fn settle(&self, group: GroupId) -> Result<()> {
        for cursor in self.blocking(move |s| s.due_marks(&group)).await? {
            self.remove(group, cursor).await?;
        }
        Ok(())
    }

    /// Roster entries after `after` within `budget` bytes (guests may read the roster).
    ///
    /// # Errors
    /// Database errors.
    pub async fn roster_get(&self, group: GroupId, after: u64, budget: usize) -> Result<RosterPage> {
        self.blocking(move |s| s.roster_entries(&group, after, budget)).await
    }

    /// Appends verified roster entries (guests may: a join, or a log the relay lacks). In
    /// vault mode each removal is also marked in the bucket, so a rebuilt relay refuses
    /// the device too.
    ///
    /// # Errors
    /// [`Error::Conflict`], [`Error::Roster`], [`Error::UnknownRoster`], storage failures.
    pub async fn roster_append(&self, group: GroupId, entries: Vec<Entry>, now: u64) -> Result<Appended> {
        if !self.space.has_room() {
            return Err(Error::Full);
        }
        let max = self.max_members;
        let appended = self.blocking(move |s| s.roster_append(&group, &entries, now, max)).await?;
        if let Mode::Vault(archive) = &self.mode {
            for (from, device) in &appended.removed {
                archive.revoke(*from, *device).await?;
            }
        }
        Ok(appended)
    }

    /// Registers a member's push token (replacing its last).
    ///
    /// # Errors
    /// Membership; database errors.
    pub async fn set_push_token(&self, group: GroupId, device: DeviceId, token: PushToken) -> Result<()> {
        self.member(group, device).await?;
        self.blocking(move |s| s.set_push_token(&group, &device, &token)).await
    }

    /// Drops a member's push token; whether it had one.
    ///
    /// # Errors
    /// Membership; database errors.
    pub async fn drop_push_token(&self, group: GroupId, device: DeviceId) -> Result<bool> {
        self.member(group, device).await?;
        self.blocking(move |s| s.drop_push_token(&group, &device)).await
    }

    /// The tokens of `group`'s current members other than `sender` and those `online`:
    /// the devices a PUSH should wake.
    ///
    /// # Errors
    /// Database errors.
    pub async fn wake_targets(
        &self,
        group: GroupId,
        sender: DeviceId,
        online: std::collections::HashSet<DeviceId>,
    ) -> Result<Vec<(DeviceId, PushToken)>> {
        self.blocking(move |s| {
            let mut out = Vec::new();
            for (device, token) in s.push_tokens(&group)? {
                if device != sender && !online.contains(&device) && s.standing(&group, &device)?.member {
                    out.push((device, token));
                }
            }
            Ok(out)
        })
        .await
    }

    /// Files a member's sealed invite; `times` is (expiry, now).
    ///
    /// # Errors
    /// Membership; [`Error::Quota`] for a full bucket; database errors.
    pub async fn put_invite(
        &self,
        (group, device): (GroupId, DeviceId),
        lookup: String,
        key: InviteKey,
        sealed: Vec<u8>,
        (expires, now): (u64, u64),
    ) -> Result<()> {
        self.member(group, device).await?;
        if !self.space.has_room() {
            return Err(Error::Full);
        }
        self.blocking(move |s| s.put_invite(&lookup, &key, &sealed, expires, now)).await
    }

    /// The live sealed invites of a bucket.
    ///
    /// # Errors
    /// [`Error::InviteNotFound`] when there are none; database errors.
    pub async fn invites(&self, lookup: String, now: u64) -> Result<Vec<Vec<u8>>> {
        match self.blocking(move |s| s.invites(&lookup, now)).await? {
            found if found.is_empty() => Err(Error::InviteNotFound),
            found => Ok(found),
        }
    }

    /// Drops an invite, at a member's request.
    ///
    /// # Errors
    /// Membership; database errors.
    pub async fn cancel_invite(
        &self,
        (group, device): (GroupId, DeviceId),
        lookup: String,
        key: InviteKey,
    ) -> Result<()> {
        self.member(group, device).await?;
        self.blocking(move |s| s.cancel_invite(&lookup, &key)).await
    }

    /// Removes expired messages and invites, acknowledged messages (transit mode), and
    /// marked messages every member has; returns how many messages went.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn cleanup(&self, now: u64) -> Result<u64> {
        let mut removed = self.blocking(move |s| s.cleanup(now)).await?;
        for group in self.blocking(|s| s.marked_groups()).await? {
            let due = self.blocking(move |s| s.due_marks(&group)).await?;
            removed += due.len() as u64;
            for cursor in due {
                self.remove(group, cursor).await?;
            }
        }
        Ok(removed)
    }

    /// (groups, messages, bytes counted), for health and metrics.
    pub async fn totals(&self) -> (u64, u64, u64) {
        self.blocking(|s| s.totals()).await.unwrap_or_default()
    }

    /// Lets transit mode's writer commit what it holds and end.
    pub async fn stop(&self) {
        if let Mode::Transit(committer) = &self.mode {
            committer.stop().await;
        }
    }
}
