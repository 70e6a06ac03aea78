//! `zerok-restore`: rebuild a new device from a vault and its recovery key — the library's
//! [`zerok_client::new_device`] flow (restore the latest or chosen snapshot into the
//! target, rejoin the sync group, replay every message after the snapshot's cursor into
//! `TARGET/.zerok/replay/<cursor, 20 digits>.msg` — and `<n>.content.json` beside a message
//! with an attachment, fetched into `TARGET/.zerok/content/<hash>` — then register this
//! device) with a prompt, a progress display and the JSON report. Nothing is written unless
//! the key opens the vault; a non-empty target is refused unless `--force`.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::json;
use zerok_cli::{
    progress::{Bar, Show},
    restore_json,
};
use zerok_client::{
    Home,
    new_device::{NewDevice, NewDeviceOptions, Plan, REPLAY_DIR, check_target},
    read_recovery_key,
};
use zerok_core::RecoveryKey;
use zerok_wire::RelayAddr;

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

/// Exit status: 0, or 3 when files, messages or attachments could not all be brought back.
async fn run(args: Args) -> Result<u8> {
    let key = recovery_key(&args)?;
    let relay = args.relay.as_deref().map(RelayAddr::parse).transpose().map_err(anyhow::Error::msg)?;
    let mut options = NewDeviceOptions {
        snapshot: args.snapshot.clone(),
        relay,
        sync: !args.no_sync,
        force: args.force,
        replay_files: true,
        ..NewDeviceOptions::default()
    };
    if let Some(name) = &args.device_name {
        options.device_name = name.clone();
    }
    let home = Home::locate()?;
    check_target(&args.target, args.force).map_err(|e| match e {
        zerok_client::Error::Invalid(m) => anyhow::anyhow!("{m} (pass --force to restore into it anyway)"),
        e => e.into(),
    })?;
    let plan = Plan::new(&home, &args.vault, &key, &options).await?;
    if args.dry_run {
        dry_run(&args, &plan);
        return Ok(0);
    }
    let bar = Bar::start(&options.progress, Show::Restore);
    let done = plan.run(&home, &args.target, &options, |_| Ok(())).await?;
    drop(bar);
    for warning in &done.warnings {
        eprintln!("zerok-restore: warning: {warning}");
    }
    report(&args, &done);
    let lost = done.restored.as_ref().is_some_and(|(_, s)| zerok_cli::restore_damage("zerok-restore", s));
    if let Some(r) = done.replay {
        if r.attachments_missing > 0 {
            eprintln!(
                "zerok-restore: {} attachment(s) could not be fetched (no vault relay holds them and their senders \
                 are offline); the messages that reference them are replayed",
                r.attachments_missing
            );
        }
        if r.missing > 0 {
            eprintln!(
                "zerok-restore: {} sync message(s) after cursor {} are gone from the relay (expired or deleted \
                 before this restore); the state is restored without them",
                r.missing, r.after
            );
        }
    }
    Ok(if lost || done.is_partial() { 3 } else { 0 })
}

fn dry_run(args: &Args, plan: &Plan) {
    let snapshot = plan.snapshot();
    let relay = plan.relay().map(|r| r.to_string());
    let from = plan.replay_after();
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
        return;
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
}

fn report(args: &Args, done: &NewDevice) {
    let slot = done.device_slot.to_string();
    let replay = done.replay.as_ref();
    if args.json {
        let mut out = match &done.restored {
            Some((id, summary)) => restore_json(id, &args.target, summary),
            None => json!({ "snapshot_id": null, "target": args.target.display().to_string(), "files_restored": 0 }),
        };
        out["messages_replayed"] = replay.map_or(0, |r| r.done.messages).into();
        out["last_cursor"] = replay.map(|r| r.done.last_cursor).into();
        out["messages_missing"] = replay.map_or(0, |r| r.missing).into();
        out["attachments_restored"] = replay.map_or(0, |r| r.attachments).into();
        out["attachments_missing"] = replay.map_or(0, |r| r.attachments_missing).into();
        out["device_slot"] = slot.into();
        println!("{out}");
        return;
    }
    if let Some((id, summary)) = &done.restored {
        println!(
            "restored snapshot {} into {}: {} files, {}",
            id.short(),
            args.target.display(),
            summary.files,
            indicatif::HumanBytes(summary.bytes)
        );
    }
    if let Some(r) = replay {
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
    zerok_cli::process::run("zerok-restore", run(args))
}
