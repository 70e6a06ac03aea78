//! `zerok forget` and `zerok prune`.

use anyhow::Result;
use serde_json::json;
use zerok_vault::{Progress, PruneReport, Retention};

use crate::common::{VaultArgs, print_json};

#[derive(clap::Args)]
pub struct ForgetArgs {
    /// Keep the newest N snapshots of each host and set of paths.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), required_unless_present_any = ["keep_daily", "keep_weekly"])]
    keep_last: Option<u64>,
    /// Also keep the newest snapshot of each of the last N days that have one.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    keep_daily: Option<u64>,
    /// Also keep the newest snapshot of each of the last N weeks that have one.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    keep_weekly: Option<u64>,
    /// Prune afterwards.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    vault: VaultArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct PruneArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn prune_json(r: &PruneReport) -> serde_json::Value {
    json!({
        "packs_deleted": r.packs_deleted,
        "packs_repacked": r.packs_repacked,
        "bytes_freed": r.bytes_freed,
        "bytes_written": r.bytes_written,
        "packs_pending": r.packs_pending,
        "bytes_pending": r.bytes_pending,
        "packs_kept": r.packs_kept,
        "locks_revoked": r.locks_revoked,
        "waiting_for": r.waiting_for,
    })
}

fn print_prune(r: &PruneReport) {
    println!(
        "prune: {} packs deleted ({} repacked), {} freed, {} rewritten",
        r.packs_deleted,
        r.packs_repacked,
        indicatif::HumanBytes(r.bytes_freed),
        indicatif::HumanBytes(r.bytes_written)
    );
    if r.packs_pending > 0 {
        println!(
            "prune: {} packs ({}) wait for backups still running ({}); the next prune after they end deletes them",
            r.packs_pending,
            indicatif::HumanBytes(r.bytes_pending),
            r.waiting_for.join(", ")
        );
    }
    if r.locks_revoked > 0 {
        println!("prune: {} stalled backup lock(s) revoked; those backups start over if they resume", r.locks_revoked);
    }
}

pub async fn run_forget(args: ForgetArgs) -> Result<u8> {
    let unlocked = args.vault.open().await?;
    let n = |v: Option<u64>| v.unwrap_or(0) as usize;
    let policy =
        Retention { keep_last: n(args.keep_last), keep_daily: n(args.keep_daily), keep_weekly: n(args.keep_weekly) };
    let report = zerok_vault::forget(&unlocked.vault, &policy).await?;
    let pruned = if args.prune { Some(zerok_vault::prune(&unlocked.vault, &Progress::default()).await?) } else { None };
    if args.json {
        print_json(&json!({
            "removed": report.removed.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            "kept": report.kept.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            "prune": pruned.as_ref().map(prune_json),
        }));
    } else {
        for id in &report.removed {
            println!("removed snapshot {}", id.short());
        }
        println!("{} removed, {} kept", report.removed.len(), report.kept.len());
        if let Some(r) = &pruned {
            print_prune(r);
        }
    }
    Ok(0)
}

pub async fn run_prune(args: PruneArgs) -> Result<u8> {
    let unlocked = args.vault.open().await?;
    let r = zerok_vault::prune(&unlocked.vault, &Progress::default()).await?;
    if args.json {
        print_json(&prune_json(&r));
    } else {
        print_prune(&r);
    }
    Ok(0)
}
