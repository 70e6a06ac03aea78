//! The link between a vault and a sync group. A backup on a device that belongs to a group
//! stores the group's credentials in the vault and records, per relay, the cursor its
//! state includes ([`record`]); a new device unlocked with the recovery key takes those
//! credentials back, joins the group and replays every message after the snapshot's
//! cursor ([`Rejoin`]) — like restoring a database backup and replaying its log.

use std::collections::BTreeMap;

use zerok_core::sync::{GroupSecret, roster::Entry};
use zerok_vault::{BackupOptions, Vault, format::snapshot::Snapshot};
use zerok_wire::RelayAddr;

use crate::Error;
use crate::sync::{GroupState, Received, SyncClient, SyncHome};

/// Stores this device's group credentials in the vault (once) and sets the backup to
/// record them with the device's cursors. A device in no group leaves `opts` as it is.
///
/// # Errors
/// A damaged `group.json`, or the vault cannot be written.
pub async fn record(vault: &Vault, home: &SyncHome, opts: &mut BackupOptions) -> Result<(), Error> {
    if !home.has_group() {
        return Ok(());
    }
    let state = home.load_group()?;
    let mut key = home.device_key()?.to_bytes();
    let roster = rmp_serde::to_vec(state.chain()).expect("roster log encodes");
    let saved = vault.save_sync_group(state.secret().expose(), state.relays_text(), Some(&key), Some(&roster)).await;
    zeroize::Zeroize::zeroize(&mut key);
    let id = saved?;
    opts.sync_group = Some(id);
    opts.sync_cursors = state.included_all();
    Ok(())
}

/// Most pulls a replay makes (each takes up to 100,000 messages).
const MAX_REPLAY_PULLS: usize = 10_000;

/// What a new device needs to take its place in a sync group again: the group's
/// credentials, and the backed-up device's identity and roster log, so the new device
/// *is* that device to the group (it can open every rotation made since the backup).
pub struct Rejoin {
    secret: GroupSecret,
    relays: Vec<RelayAddr>,
    cursors: BTreeMap<String, u64>,
    device_key: Option<[u8; 32]>,
    chain: Vec<Entry>,
}

impl Drop for Rejoin {
    fn drop(&mut self) {
        if let Some(k) = &mut self.device_key {
            zeroize::Zeroize::zeroize(k);
        }
    }
}

impl std::fmt::Debug for Rejoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rejoin({} relays, from cursor {}, [REDACTED])", self.relays.len(), self.cursor())
    }
}

/// What replaying did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Messages handed to the app.
    pub messages: u64,
    /// The cursor the device now has everything up to (at the relay it pulled from).
    pub last_cursor: u64,
}

impl Rejoin {
    /// The group a snapshot recorded, with its cursors; for a snapshot taken before the
    /// device joined a group (or no snapshot at all), the newest group in the vault from
    /// cursor 0. `relay`, when given, becomes the primary relay (replacing a stored one
    /// with the same endpoint id, whose cursor it keeps). `None` when the vault holds no
    /// group.
    ///
    /// # Errors
    /// The recorded group cannot be read, or a stored relay address is invalid.
    pub async fn from_vault(
        vault: &Vault,
        snapshot: Option<&Snapshot>,
        relay: Option<&RelayAddr>,
    ) -> Result<Option<Self>, Error> {
        let recorded = snapshot.and_then(|s| s.sync_group.map(|id| (id, &s.sync_cursors)));
        let (group, cursors) = match recorded {
            Some((id, cursors)) => (vault.load_sync_group(&id).await?, cursors.clone()),
            None => match vault.sync_groups().await?.pop() {
                Some((_, group)) => (group, BTreeMap::new()),
                None => return Ok(None),
            },
        };
        let mut relays: Vec<RelayAddr> = group
            .relays
            .iter()
            .map(|r| RelayAddr::parse(r))
            .collect::<Result<_, _>>()
            .map_err(|e| Error::Corrupt(format!("stored relay address: {e}")))?;
        let cursor_by_id = |id: &[u8; 32]| {
            cursors.iter().find(|(r, _)| RelayAddr::parse(r).is_ok_and(|a| a.id == *id)).map_or(0, |(_, c)| *c)
        };
        let mut by_addr: BTreeMap<String, u64> = BTreeMap::new();
        if let Some(primary) = relay {
            relays.retain(|r| r.id != primary.id);
            relays.insert(0, primary.clone());
        }
        for r in &relays {
            by_addr.insert(r.to_string(), cursor_by_id(&r.id));
        }
        let mut raw = [0u8; 32];
        raw.copy_from_slice(&group.secret);
        let secret = GroupSecret::from_bytes(raw);
        zeroize::Zeroize::zeroize(&mut raw);
        let device_key = group.device_key.as_deref().map(|k| k.try_into().expect("checked when loaded"));
        let chain: Vec<Entry> = match &group.roster {
            Some(bytes) => {
                rmp_serde::from_slice(bytes).map_err(|e| Error::Corrupt(format!("stored roster log: {e}")))?
            }
            None => Vec::new(),
        };
        Ok(Some(Self { secret, relays, cursors: by_addr, device_key, chain }))
    }

    /// The relays, primary first.
    pub fn relays(&self) -> &[RelayAddr] {
        &self.relays
    }

    /// The primary relay's cursor the restored state includes (replay starts after it).
    pub fn cursor(&self) -> u64 {
        self.relays.first().map_or(0, |r| self.cursors.get(&r.to_string()).copied().unwrap_or(0))
    }

    /// Refuses when this device already belongs to another group (checked before anything
    /// is restored).
    ///
    /// # Errors
    /// [`Error::State`] naming the conflict.
    pub fn check_home(&self, home: &SyncHome) -> Result<(), Error> {
        if home.has_group() && home.load_group()?.secret().expose() != self.secret.expose() {
            return Err(Error::State(
                "this device already belongs to another sync group (use a fresh ZEROK_HOME)".into(),
            ));
        }
        Ok(())
    }

    /// Takes the backed-up device's place in the group: as that device (its identity key
    /// and roster log from the vault; the relays' newer roster entries are verified from
    /// there, and any rotation since is followed) it pulls every message after the
    /// recorded cursor — of the recorded group up to its rotation, then of each later group
    /// from its start — and hands each to `apply` in order; then it replaces that identity
    /// with a fresh key ([`SyncClient::replace_identity`]), so the lost device is cut off.
    ///
    /// # Errors
    /// Another group on this device, credentials stored before the roster existed, the
    /// backed-up device revoked since (or replaced by an earlier restore), no relay
    /// reachable, an error from `apply` (later messages are not applied), or a refused
    /// replacement.
    pub async fn join(
        &self,
        home: SyncHome,
        device_name: &str,
        mut apply: impl FnMut(&Received) -> std::io::Result<()>,
    ) -> Result<(SyncClient, Replayed), Error> {
        self.check_home(&home)?;
        let key = self.device_key.as_ref().filter(|_| !self.chain.is_empty()).ok_or_else(|| {
            Error::State("the vault's sync credentials predate the signed roster: pair this device instead".into())
        })?;
        home.set_device_key(key)?;
        let mut state = GroupState::new(&self.secret, &self.relays, device_name, self.chain.clone())?;
        for (relay, cursor) in &self.cursors {
            state.set_cursor(relay, *cursor);
        }
        home.save_group(&state)?;
        home.seen_clear()?;
        let mut client = SyncClient::connect(home).await?;
        let mut messages = 0;
        // Until a pull brings nothing: an old group drained in one pull leaves the current
        // group to the next, and an error on the way fails the replay.
        for _ in 0..MAX_REPLAY_PULLS {
            let received = client.pull().await?;
            if received.is_empty() {
                break;
            }
            for msg in &received {
                apply(msg).map_err(|e| Error::App(format!("replaying message at cursor {}: {e}", msg.cursor)))?;
            }
            messages += received.len() as u64;
        }
        let last_cursor = client.last_cursor();
        let client = client.replace_identity(device_name).await?;
        Ok((client, Replayed { messages, last_cursor }))
    }
}
