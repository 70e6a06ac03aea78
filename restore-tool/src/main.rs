//! `zerok-restore`: rebuild a new device from a vault and its recovery key. Unlocks with
//! the recovery key (from `ZEROK_RECOVERY_KEY`, `--recovery-key-file`, or a hidden prompt),
//! restores the chosen snapshot into the target, then registers a key slot for this device
//! so later commands here need no secret. Nothing is written to the target unless the key
//! opens the vault.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::{Context, Result};
use clap::Parser;
use zerok_client::{Home, read_recovery_key, restore_json, unlock};
use zerok_core::RecoveryKey;
use zerok_vault::{Progress, RestoreOptions};

/// Restore a device from its vault with the recovery key.
#[derive(Parser)]
#[command(name = "zerok-restore", version, about)]
struct Args {
    /// Vault URL: a folder path, file:///abs/path or s3://bucket/prefix.
    #[arg(long, env = "ZEROK_VAULT")]
    vault: String,
    /// Folder to restore into.
    #[arg(long)]
    target: PathBuf,
    /// Snapshot id (or unique prefix), or `latest`.
    #[arg(long, default_value = "latest")]
    snapshot: String,
    /// Read the recovery key from this file (else ZEROK_RECOVERY_KEY, else a prompt).
    #[arg(long)]
    recovery_key_file: Option<PathBuf>,
    /// Label for this device's new key slot (default: host name).
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

async fn run(args: Args) -> Result<()> {
    let key = recovery_key(&args)?;
    let home = Home::locate()?;
    let unlocked = unlock(&args.vault, Some(&key), &home).await?;
    let vault = unlocked.vault;
    let (id, snap) = vault.find_snapshot(&args.snapshot).await?;
    let progress = Arc::new(Progress::default());
    let summary = zerok_vault::restore(&vault, &snap, &RestoreOptions::new(args.target.clone()), progress)
        .await
        .with_context(|| format!("restoring snapshot {} into {}", id.short(), args.target.display()))?;
    let label = args.device_name.clone().unwrap_or_else(zerok_vault::hostname);
    let device = vault.add_device(&label).await.context("restored, but registering this device failed")?;
    home.save_device_key(&vault.config().vault_id, &args.vault, &device)?;
    home.set_default_vault(&args.vault)?;
    if args.json {
        let mut report = restore_json(&id, &args.target, &summary);
        report["device_slot"] = device.slot.to_string().into();
        println!("{report}");
    } else {
        println!(
            "restored snapshot {} into {}: {} files, {} bytes; this device is now registered (slot {})",
            id.short(),
            args.target.display(),
            summary.files,
            summary.bytes,
            device.slot.short()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zerok-restore: error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the causes printed.
            let message = format!("{e:#}").split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("zerok-restore: error: {message}");
            ExitCode::FAILURE
        }
    }
}
