//! `zerok-restore`: rebuild a new device from a vault and its recovery key, like restoring
//! a database backup and replaying its log: recovery key → unlock → restore the latest (or
//! chosen) snapshot into the target → take the sync group's credentials back from the
//! vault → pull every message after the snapshot's cursor from the relay and write each,
//! in cursor order, to `TARGET/.zerok/replay/<cursor, 20 digits>.msg` (and, for a message
//! with an attachment, `<n>.content.json` beside it, the attachment itself fetched into
//! `TARGET/.zerok/content/<hash>` from the group's vault relay or its sender) → register this
//! device (a key slot in the vault, membership at the relay). Nothing is written unless the
//! key opens the vault; a non-empty target is refused unless `--force`. The replay folder
//! is made before any file is restored and written only through its handle (`replay_dir`);
//! a snapshot's own top-level `.zerok` is not restored.

mod replay_dir;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::json;
use zerok_client::{
    Home,
    progress::{Bar, Show},
    read_recovery_key, restore_json,
    sync::SyncHome,
    unlock,
    vault_sync::{Rejoin, Replayed},
};
use zerok_core::RecoveryKey;
use zerok_vault::{Progress, RestoreOptions, RestoreSummary};
use zerok_wire::RelayAddr;

use crate::replay_dir::ReplayDir;

/// Where replayed messages go, under the target.
const REPLAY_DIR: &str = ".zerok/replay";

/// Restore a device from its vault with the recovery key.
#[derive(Parser)]
#[command(name = "zerok-restore", version, about)]
struct Args {
    /// Vault URL: a folder path, file:///abs/path or s3://bucket/prefix.
    #[arg(long, env = "ZEROK_VAULT")]
    vault: String,
    /// Folder to restore into (must be empty or missing, unless --force).
    #[arg(long)]
    target: PathBuf,
    /// Snapshot id (or unique prefix), or `latest`.
    #[arg(long, default_value = "latest")]
    snapshot: String,
    /// Relay to replay sync messages from, `ENDPOINT_ID@IP:PORT` (default: the group's
    /// primary relay as stored in the vault).
    #[arg(long, value_name = "ADDR")]
    relay: Option<String>,
    /// Restore files only: do not rejoin the sync group or replay messages.
    #[arg(long)]
    no_sync: bool,
    /// Show what would be restored and replayed, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Restore into a target that is not empty (files of the same name are replaced).
    #[arg(long)]
    force: bool,
    /// Read the recovery key from this file (else ZEROK_RECOVERY_KEY, else a prompt).
    #[arg(long)]
    recovery_key_file: Option<PathBuf>,
    /// Label for this device's new key slot and its name in the sync group (default: host name).
    #[arg(long)]
    device_name: Option<String>,
    /// Print one JSON summary object.
    #[arg(long)]
    json: bool,
}

fn recovery_key(args: &Args) -> Result<RecoveryKey> {
    if let Some(key) = read_recovery_key(args.recovery_key_file.as_deref())? {
        return Ok(key);
    }
    let typed = rpassword::prompt_password("recovery key: ")
        .context("no recovery key: set ZEROK_RECOVERY_KEY, pass --recovery-key-file, or type it at the prompt")?;
    Ok(RecoveryKey::parse(typed.trim())?)
}

/// Refuses a target that holds anything, unless forced; a file is never a target.
fn check_target(target: &Path, force: bool) -> Result<()> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if !force && entries.next().is_some() {
                bail!("target {} is not empty (pass --force to restore into it anyway)", target.display())
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("target {}", target.display())),
    }
}

/// Exit status: 0, or 3 when messages after the snapshot's cursor were missing.
async fn run(args: Args) -> Result<u8> {
    let key = recovery_key(&args)?;
    let relay = args.relay.as_deref().map(RelayAddr::parse).transpose().map_err(anyhow::Error::msg)?;
    check_target(&args.target, args.force)?;
    let home = Home::locate()?;
    let vault = unlock(&args.vault, Some(&key), &home).await?.vault;
    let snapshot = match vault.find_snapshot(&args.snapshot).await {
        Ok(found) => Some(found),
        Err(zerok_vault::Error::Snapshot(_, _)) if args.snapshot == "latest" => None,
        Err(e) => return Err(e.into()),
    };
    let rejoin = match args.no_sync {
        true => None,
        false => Rejoin::from_vault(&vault, snapshot.as_ref().map(|(_, s)| s), relay.as_ref()).await?,
    };
    let sync_home = SyncHome::new(home.dir());
    if let Some(r) = &rejoin {
        r.check_home(&sync_home)?;
    }
    if snapshot.is_none() && rejoin.is_none() {
        bail!("the vault at {} has no snapshots and no sync group: nothing to restore", args.vault);
    }
    if args.dry_run {
        return dry_run(&args, snapshot.as_ref(), rejoin.as_ref()).map(|()| 0);
    }

    // The target and its replay folder exist before any file is restored, and the
    // snapshot's own top-level `.zerok` is left out: nothing it holds can redirect a replay.
    std::fs::create_dir_all(&args.target).with_context(|| format!("creating {}", args.target.display()))?;
    let replay_dir = match &rejoin {
        Some(_) => {
            let create = |leaf: &str| {
                ReplayDir::create(&args.target, leaf)
                    .with_context(|| format!("creating {}", args.target.join(".zerok").join(leaf).display()))
            };
            Some((create("replay")?, create("content")?))
        }
        None => None,
    };
    let restored = match &snapshot {
        Some((id, snap)) => {
            let progress = Arc::new(Progress::default());
            let bar = Bar::start(&progress, Show::Restore);
            let mut opts = RestoreOptions::new(args.target.clone());
            opts.reserved = vec![".zerok".into()];
            let summary = zerok_vault::restore(&vault, snap, &opts, progress)
                .await
                .with_context(|| format!("restoring snapshot {} into {}", id.short(), args.target.display()))?;
            drop(bar);
            Some((*id, summary))
        }
        None => None,
    };
    let label = args.device_name.clone().unwrap_or_else(zerok_vault::hostname);
    let replayed = match (&rejoin, &replay_dir) {
        (Some(r), Some((dir, content))) => Some(replay(r, dir, content, sync_home, &label).await?),
        _ => None,
    };
    let device = vault.add_device(&label).await.context("restored, but registering this device failed")?;
    home.save_device_key(&vault.config().vault_id, &args.vault, &device)?;
    home.set_default_vault(&args.vault)?;
    // From now on this device notices if the store loses what it saw here.
    if let Err(e) = zerok_client::seen::observe(&home, &vault).await {
        eprintln!("zerok-restore: warning: recording the vault's snapshots on this device failed: {e:#}");
    }
    report(&args, restored.as_ref(), replayed.as_ref(), &device.slot.to_string());
    let lost = restored.as_ref().is_some_and(|(_, s)| zerok_client::restore_damage("zerok-restore", s));
    let unfetched = replayed.as_ref().map_or(0, |r| r.attachments_missing);
    if unfetched > 0 {
        eprintln!(
            "zerok-restore: {unfetched} attachment(s) could not be fetched (no vault relay holds them and their \
             senders are offline); the messages that reference them are replayed"
        );
    }
    match replayed.map_or(0, |r| r.missing) {
        0 => Ok(if lost || unfetched > 0 { 3 } else { 0 }),
        missing => {
            eprintln!(
                "zerok-restore: {missing} sync message(s) after cursor {} are gone from the relay (expired or deleted \
                 before this restore); the state is restored without them",
                rejoin.as_ref().map_or(0, Rejoin::cursor)
            );
            Ok(3)
        }
    }
}

/// What a replay brought, and how many messages it should have brought but the relay no
/// longer holds (cursors skipped: expired or deleted before the restore).
struct Replay {
    done: Replayed,
    missing: u64,
    /// Attachments fetched into `.zerok/content`.
    attachments: u64,
    /// Attachments referenced that no provider served.
    attachments_missing: u64,
}

/// Joins the group and writes every message after the snapshot's cursor to the replay
/// folder, in cursor order, counting the cursors that never arrive.
async fn replay(rejoin: &Rejoin, dir: &ReplayDir, content: &ReplayDir, home: SyncHome, label: &str) -> Result<Replay> {
    let bar = indicatif::ProgressBar::new_spinner();
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_message(format!("replaying sync messages after cursor {}", rejoin.cursor()));
    // Files are numbered in delivery order: a message of the snapshot's group by its cursor;
    // after a rotation (cursors restart in the new group) numbering continues after the last.
    // Cursors are dense in a group: the first message expected is the snapshot's cursor + 1
    // (1 in each group after a rotation), and each one after it follows on.
    let (mut group, mut base, mut last) = (None, 0, 0);
    let (mut expected, mut missing) = (rejoin.cursor() + 1, 0u64);
    let mut attached = Vec::new();
    let (mut client, replayed) = rejoin
        .join(home, label, |msg| {
            bar.inc(1);
            if group.is_some_and(|g| g != msg.group) {
                base = last;
                expected = 1;
            }
            missing += msg.cursor.saturating_sub(expected);
            expected = expected.max(msg.cursor + 1);
            group = Some(msg.group);
            last = base + msg.cursor;
            if let Some(c) = &msg.content {
                let about = json!({ "content": c.hash.to_string(), "size": c.size, "mime": c.mime, "name": c.name });
                dir.write(&format!("{last:020}.content.json"), about.to_string().as_bytes())?;
                attached.push(c.clone());
            }
            dir.write(&format!("{last:020}.msg"), &msg.data)
        })
        .await
        .context("files restored, but replaying sync messages failed")?;
    let (mut attachments, mut attachments_missing) = (0, 0);
    for c in &attached {
        bar.set_message(format!("fetching attachment {} ({})", c.hash, indicatif::HumanBytes(c.size)));
        let dest = content.path().join(c.hash.to_string());
        match dest.exists() {
            true => attachments += 1,
            false => match client.fetch_content(c, &dest).await {
                Ok(_) => attachments += 1,
                Err(e) => {
                    eprintln!("zerok-restore: warning: {e}");
                    attachments_missing += 1;
                }
            },
        }
    }
    bar.finish_and_clear();
    client.disconnect().await;
    dir.sync().with_context(|| format!("syncing {}", dir.path().display()))?;
    content.sync().with_context(|| format!("syncing {}", content.path().display()))?;
    Ok(Replay { done: replayed, missing, attachments, attachments_missing })
}

fn dry_run(
    args: &Args,
    snapshot: Option<&(zerok_core::SnapshotId, zerok_vault::format::snapshot::Snapshot)>,
    rejoin: Option<&Rejoin>,
) -> Result<()> {
    let relay = rejoin.and_then(|r| r.relays().first()).map(|r| r.to_string());
    let from = rejoin.map(Rejoin::cursor);
    if args.json {
        println!(
            "{}",
            json!({
                "dry_run": true,
                "snapshot_id": snapshot.map(|(id, _)| id.to_string()),
                "target": args.target.display().to_string(),
                "files": snapshot.map(|(_, s)| s.summary.files),
                "dirs": snapshot.map(|(_, s)| s.summary.dirs),
                "bytes": snapshot.map(|(_, s)| s.summary.bytes),
                "snapshot_time_ns": snapshot.map(|(_, s)| s.time_ns),
                "relay": relay,
                "replay_after_cursor": from,
            })
        );
        return Ok(());
    }
    match snapshot {
        Some((id, s)) => println!(
            "would restore snapshot {} ({} files, {} dirs, {}) into {}",
            id.short(),
            s.summary.files,
            s.summary.dirs,
            indicatif::HumanBytes(s.summary.bytes),
            args.target.display()
        ),
        None => println!("the vault has no snapshot: no files to restore"),
    }
    match (relay, from) {
        (Some(relay), Some(from)) => println!(
            "would rejoin the sync group and replay every message after cursor {from} from {relay} into {}",
            args.target.join(REPLAY_DIR).display()
        ),
        _ => println!("no sync group to rejoin"),
    }
    Ok(())
}

fn report(
    args: &Args,
    restored: Option<&(zerok_core::SnapshotId, RestoreSummary)>,
    replayed: Option<&Replay>,
    slot: &str,
) {
    let messages = replayed.map_or(0, |r| r.done.messages);
    if args.json {
        let mut out = match restored {
            Some((id, summary)) => restore_json(id, &args.target, summary),
            None => json!({ "snapshot_id": null, "target": args.target.display().to_string(), "files_restored": 0 }),
        };
        out["messages_replayed"] = messages.into();
        out["last_cursor"] = replayed.map(|r| r.done.last_cursor).into();
        out["messages_missing"] = replayed.map_or(0, |r| r.missing).into();
        out["attachments_restored"] = replayed.map_or(0, |r| r.attachments).into();
        out["attachments_missing"] = replayed.map_or(0, |r| r.attachments_missing).into();
        out["device_slot"] = slot.into();
        println!("{out}");
        return;
    }
    if let Some((id, summary)) = restored {
        println!(
            "restored snapshot {} into {}: {} files, {}",
            id.short(),
            args.target.display(),
            summary.files,
            indicatif::HumanBytes(summary.bytes)
        );
    }
    if let Some(r) = replayed {
        println!(
            "replayed {} sync messages into {} (up to cursor {}); this device is in the sync group",
            r.done.messages,
            args.target.join(REPLAY_DIR).display(),
            r.done.last_cursor
        );
    }
    println!("this device is registered with the vault (key slot {})", &slot[..8.min(slot.len())]);
}

fn main() -> ExitCode {
    let args = Args::parse();
    zerok_client::process::run("zerok-restore", run(args))
}
