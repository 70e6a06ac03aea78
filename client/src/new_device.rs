//! A new device from a vault and its recovery key, like restoring a database backup and
//! replaying its log: unlock → restore the chosen snapshot into the target → take the sync
//! group's credentials back from the vault → pull every message after the snapshot's
//! cursor, in cursor order, handing each to the app → fetch the attachments they name →
//! register this device (a key slot in the vault, its default vault, membership at the
//! relay). `zerok-restore` is this call and a terminal around it.
//!
//! Nothing is written unless the key opens the vault; a non-empty target is refused unless
//! forced. `TARGET/.zerok/content` (attachments) and, with
//! [`NewDeviceOptions::replay_files`], `TARGET/.zerok/replay` (each message as
//! `<n, 20 digits>.msg`, and `<n>.content.json` beside a message with an attachment) are
//! made before any file is restored and written only through their handles
//! (`replay_dir`); a snapshot's own top-level `.zerok` is not restored.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use zerok_core::{RecoveryKey, SlotId, SnapshotId, sync::content::ContentRef};
use zerok_vault::{Progress, RestoreOptions, RestoreSummary, Vault, format::snapshot::Snapshot};
use zerok_wire::RelayAddr;

use crate::{
    Error, Home, Result,
    replay_dir::ReplayDir,
    sync::Received,
    unlock,
    vault_sync::{Rejoin, Replayed},
};

/// How to restore.
#[derive(Clone, Debug)]
pub struct NewDeviceOptions {
    /// Snapshot id, unique prefix, or `latest` (the default).
    pub snapshot: String,
    /// Relay to replay from (default: the group's primary relay as stored in the vault).
    pub relay: Option<RelayAddr>,
    /// Rejoin the sync group and replay its messages (default); `false` restores files only.
    pub sync: bool,
    /// Restore into a target that is not empty (files of the same name are replaced).
    pub force: bool,
    /// Label of this device's key slot and its name in the sync group.
    pub device_name: String,
    /// Also write each replayed message under `TARGET/.zerok/replay` (what `zerok-restore`
    /// does, for an app that reads them at its next start).
    pub replay_files: bool,
    /// Counters of the file restore, for a progress display.
    pub progress: Arc<Progress>,
}

impl Default for NewDeviceOptions {
    fn default() -> Self {
        Self {
            snapshot: "latest".into(),
            relay: None,
            sync: true,
            force: false,
            device_name: zerok_vault::hostname(),
            replay_files: false,
            progress: Arc::default(),
        }
    }
}

/// Where `zerok-restore` writes replayed messages, under the target.
pub const REPLAY_DIR: &str = ".zerok/replay";

/// What a restore will do, found before anything is written.
pub struct Plan {
    vault: Vault,
    url: String,
    snapshot: Option<(SnapshotId, Snapshot)>,
    rejoin: Option<Rejoin>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan").field("snapshot", &self.snapshot.as_ref().map(|(id, _)| id.short())).finish()
    }
}

/// What the replay brought.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// The primary relay's cursor the restored state included: the replay began after it.
    pub after: u64,
    /// Messages handed to the app, and the cursor reached.
    pub done: Replayed,
    /// Messages after the snapshot's cursor the relay no longer holds (expired or deleted
    /// before this restore).
    pub missing: u64,
    /// Attachments fetched into `TARGET/.zerok/content`.
    pub attachments: u64,
    /// Attachments named by a message that no provider served.
    pub attachments_missing: u64,
}

/// What a restore did.
#[derive(Debug)]
pub struct NewDevice {
    /// The snapshot restored and what it brought (`None`: the vault held only a sync group).
    pub restored: Option<(SnapshotId, RestoreSummary)>,
    /// The replay (`None` without a sync group, or with [`NewDeviceOptions::sync`] off).
    pub replay: Option<ReplayReport>,
    /// This device's new key slot in the vault.
    pub device_slot: SlotId,
    /// Things that went wrong without failing the restore, one line each.
    pub warnings: Vec<String>,
}

impl NewDevice {
    /// Whether anything is missing: files lost, messages gone, attachments not fetched.
    pub fn is_partial(&self) -> bool {
        let lost = self.restored.as_ref().is_some_and(|(_, s)| !s.lost.is_empty());
        lost || self.replay.is_some_and(|r| r.missing > 0 || r.attachments_missing > 0)
    }
}

/// Refuses a target that holds anything, unless forced; a file is never a target. (A
/// restore checks this itself; a caller that wants to refuse before it asks for the
/// recovery key checks first.)
///
/// # Errors
/// [`Error::Invalid`] naming the target; [`Error::Io`] when it cannot be read.
pub fn check_target(target: &Path, force: bool) -> Result<()> {
    match std::fs::read_dir(target).map(|mut entries| entries.next().is_some()) {
        Ok(true) if !force => Err(Error::Invalid(format!("target {} is not empty", target.display()))),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(target, e)),
    }
}

impl Plan {
    /// Unlocks the vault at `url` with `recovery`, finds the snapshot and the sync group
    /// to rejoin, and checks that this device can take them (writes nothing).
    ///
    /// # Errors
    /// [`Error::WrongKey`]; [`Error::NotFound`] for no vault, no such snapshot, or a vault
    /// with neither snapshots nor a sync group; [`Error::State`] when this device already
    /// belongs to another group.
    pub async fn new(home: &Home, url: &str, recovery: &RecoveryKey, options: &NewDeviceOptions) -> Result<Self> {
        let vault = unlock(url, Some(recovery), home).await?.vault;
        let snapshot = match vault.find_snapshot(&options.snapshot).await {
            Ok(found) => Some(found),
            Err(zerok_vault::Error::Snapshot(_, _)) if options.snapshot == "latest" => None,
            Err(e) => return Err(e.into()),
        };
        let rejoin = match options.sync {
            true => Rejoin::from_vault(&vault, snapshot.as_ref().map(|(_, s)| s), options.relay.as_ref()).await?,
            false => None,
        };
        if let Some(r) = &rejoin {
            r.check_home(&home.sync())?;
        }
        if snapshot.is_none() && rejoin.is_none() {
            return Err(Error::NotFound(format!(
                "the vault at {url} has no snapshots and no sync group: nothing to restore"
            )));
        }
        Ok(Self { vault, url: url.to_string(), snapshot, rejoin })
    }

    /// The snapshot to restore.
    pub fn snapshot(&self) -> Option<&(SnapshotId, Snapshot)> {
        self.snapshot.as_ref()
    }

    /// The relay the replay pulls from.
    pub fn relay(&self) -> Option<&RelayAddr> {
        self.rejoin.as_ref().and_then(|r| r.relays().first())
    }

    /// The cursor the replay starts after (`None` without a sync group).
    pub fn replay_after(&self) -> Option<u64> {
        self.rejoin.as_ref().map(Rejoin::cursor)
    }

    /// Restores into `target`, replays (each message to `on_message`, in order) and
    /// registers this device.
    ///
    /// # Errors
    /// A non-empty target without [`NewDeviceOptions::force`], a `.zerok` in the target
    /// that is a symlink or a file, store or relay failures, an error from `on_message`
    /// (later messages are not applied). Files restored before a failure stay.
    pub async fn run(
        self,
        home: &Home,
        target: &Path,
        options: &NewDeviceOptions,
        mut on_message: impl FnMut(&Received) -> std::io::Result<()>,
    ) -> Result<NewDevice> {
        check_target(target, options.force)?;
        // The target and its `.zerok` folders exist before any file is restored, and the
        // snapshot's own top-level `.zerok` is left out: nothing it holds can redirect a
        // replay.
        std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
        let folders = match &self.rejoin {
            Some(_) => {
                let create = |leaf: &str| {
                    ReplayDir::create(target, leaf).map_err(|e| Error::io(&target.join(".zerok").join(leaf), e))
                };
                let replay = if options.replay_files { Some(create("replay")?) } else { None };
                Some((replay, create("content")?))
            }
            None => None,
        };
        let restored = match &self.snapshot {
            Some((id, snap)) => {
                let mut opts = RestoreOptions::new(target.to_path_buf());
                opts.reserved = vec![".zerok".into()];
                let summary = zerok_vault::restore(&self.vault, snap, &opts, options.progress.clone()).await?;
                Some((*id, summary))
            }
            None => None,
        };
        let mut warnings = Vec::new();
        let replay = match (&self.rejoin, &folders) {
            (Some(rejoin), Some((files, content))) => {
                let sink = Sink { files: files.as_ref(), on_message: &mut on_message };
                Some(replay(rejoin, home, &options.device_name, content, sink, &mut warnings).await?)
            }
            _ => None,
        };
        let device = self.vault.add_device(&options.device_name).await?;
        home.save_device_key(&self.vault.config().vault_id, &self.url, &device)?;
        home.set_default_vault(&self.url)?;
        // From now on this device notices if the store loses what it saw here.
        if let Err(e) = crate::seen::observe(home, &self.vault).await {
            warnings.push(format!("recording the vault's snapshots on this device failed: {e}"));
        }
        Ok(NewDevice { restored, replay, device_slot: device.slot, warnings })
    }
}

/// Restores a new device from the vault at `url` into `target` (see the module's text):
/// [`Plan::new`] then [`Plan::run`].
///
/// # Errors
/// As those.
pub async fn restore_new_device(
    home: &Home,
    url: &str,
    recovery: &RecoveryKey,
    target: &Path,
    options: &NewDeviceOptions,
    on_message: impl FnMut(&Received) -> std::io::Result<()>,
) -> Result<NewDevice> {
    check_target(target, options.force)?;
    Plan::new(home, url, recovery, options).await?.run(home, target, options, on_message).await
}

/// Where replayed messages go: the app's callback, and the replay folder when asked for.
struct Sink<'a, F> {
    files: Option<&'a ReplayDir>,
    on_message: &'a mut F,
}

/// Joins the group and hands over every message after the snapshot's cursor, in cursor
/// order, counting the cursors that never arrive; then fetches the attachments named.
async fn replay<F: FnMut(&Received) -> std::io::Result<()>>(
    rejoin: &Rejoin,
    home: &Home,
    label: &str,
    content: &ReplayDir,
    sink: Sink<'_, F>,
    warnings: &mut Vec<String>,
) -> Result<ReplayReport> {
    // Files are numbered in delivery order: a message of the snapshot's group by its cursor;
    // after a rotation (cursors restart in the new group) numbering continues after the last.
    // Cursors are dense in a group: the first message expected is the snapshot's cursor + 1
    // (1 in each group after a rotation), and each one after it follows on.
    let (mut group, mut base, mut last) = (None, 0, 0);
    let (mut expected, mut missing) = (rejoin.cursor() + 1, 0u64);
    let mut attached: Vec<ContentRef> = Vec::new();
    let Sink { files, on_message } = sink;
    let (mut client, done) = rejoin
        .join(home.sync(), label, |msg| {
            if group.is_some_and(|g| g != msg.group) {
                base = last;
                expected = 1;
            }
            missing += msg.cursor.saturating_sub(expected);
            expected = expected.max(msg.cursor + 1);
            group = Some(msg.group);
            last = base + msg.cursor;
            if let Some(c) = &msg.content {
                attached.push(c.clone());
            }
            if let Some(dir) = files {
                if let Some(c) = &msg.content {
                    let about = serde_json::json!({
                        "content": c.hash.to_string(), "size": c.size, "mime": c.mime, "name": c.name
                    });
                    dir.write(&format!("{last:020}.content.json"), about.to_string().as_bytes())?;
                }
                dir.write(&format!("{last:020}.msg"), &msg.data)?;
            }
            on_message(msg)
        })
        .await?;
    let (mut attachments, mut attachments_missing) = (0, 0);
    for c in &attached {
        let dest: PathBuf = content.path().join(c.hash.to_string());
        match dest.exists() {
            true => attachments += 1,
            false => match client.fetch_content(c, &dest).await {
                Ok(_) => attachments += 1,
                Err(e) => {
                    warnings.push(e.to_string());
                    attachments_missing += 1;
                }
            },
        }
    }
    client.disconnect().await;
    for dir in files.into_iter().chain([content]) {
        dir.sync().map_err(|e| Error::io(dir.path(), e))?;
    }
    Ok(ReplayReport { after: rejoin.cursor(), done, missing, attachments, attachments_missing })
}
