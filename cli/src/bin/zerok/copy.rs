//! `zerok copy`: snapshots into another vault, re-encrypted under its keys, sending only
//! the chunks it lacks.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;
use zerok_client::Home;
use zerok_vault::{Progress, Vault};

use crate::common::{VaultArgs, print_json, snapshots};

#[derive(clap::Args)]
pub struct Args {
    /// The source vault.
    #[command(flatten)]
    vault: VaultArgs,
    /// The destination vault's URL (made with `zerok init`).
    #[arg(long)]
    to: String,
    /// The destination's recovery key, read from this file (else this device's key for it,
    /// or ZEROK_PASSPHRASE for a passphrase slot).
    #[arg(long)]
    to_recovery_key_file: Option<PathBuf>,
    /// Snapshots to copy: ids, unique prefixes or `latest` (default: all). Those the
    /// destination holds a copy of already are skipped.
    snapshots: Vec<String>,
    /// Leave out the sync-group records the snapshots name (the group secret and this
    /// device's identity key in the group): a restore from the copies cannot rejoin the
    /// group, and whoever holds the destination's keys cannot act as this device in it.
    #[arg(long)]
    no_sync_group: bool,
    /// Print one JSON object (copied, skipped, chunks_sent, …) instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> Result<u8> {
    let started = std::time::Instant::now();
    let src = args.vault.open().await?.vault;
    let home = Home::locate()?;
    let to_key = match &args.to_recovery_key_file {
        Some(file) => zerok_client::read_recovery_key(Some(file))?,
        None => None,
    };
    let dst = zerok_client::unlock_cached(&args.to, to_key.as_ref(), &home)
        .await
        .with_context(|| format!("destination {}", args.to))?
        .vault;
    let all = snapshots(&src).await?;
    let chosen = if args.snapshots.is_empty() {
        all
    } else {
        let mut picked = Vec::new();
        for spec in &args.snapshots {
            let one = Vault::pick(all.clone(), spec)?;
            if !picked.iter().any(|(id, _)| *id == one.0) {
                picked.push(one);
            }
        }
        picked.sort_by_key(|(_, s)| s.time_ns);
        picked
    };
    let r = zerok_vault::copy(&src, &dst, &chosen, !args.no_sync_group, &Progress::default()).await?;
    if args.json {
        print_json(&json!({
            "copied": r.copied.iter().map(|(from, to)| json!({"source": from.to_string(), "snapshot_id": to.to_string()})).collect::<Vec<_>>(),
            "skipped": r.skipped.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            "chunks_sent": r.chunks_sent,
            "chunks_present": r.chunks_present,
            "bytes_sent": r.bytes_sent,
            "duration_secs": started.elapsed().as_secs_f64(),
        }));
    } else {
        for (from, to) in &r.copied {
            println!("copied snapshot {} as {}", from.short(), to.short());
        }
        for id in &r.skipped {
            println!("snapshot {} is in the destination already", id.short());
        }
        println!(
            "{} copied, {} skipped: {} chunks sent, {} already there, {} uploaded",
            r.copied.len(),
            r.skipped.len(),
            r.chunks_sent,
            r.chunks_present,
            indicatif::HumanBytes(r.bytes_sent)
        );
    }
    Ok(0)
}
