//! `zerok forget` (which snapshots a retention policy keeps, and `--dry-run` to see it) and
//! `zerok prune`.

use anyhow::Result;
use serde_json::json;
use zerok_vault::{GroupBy, Progress, PruneReport, Retention};

use crate::common::{VaultArgs, print_json};

#[derive(clap::Args)]
pub struct ForgetArgs {
    /// Keep the newest N snapshots of each group (host and paths, or --group-by).
    #[arg(
        long,
        value_parser = clap::value_parser!(u64).range(1..),
        required_unless_present_any = [
            "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within", "keep_tags",
        ]
    )]
    keep_last: Option<u64>,
    /// Also keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    keep_hourly: Option<u64>,
    /// Also keep the newest snapshot of each of the last N days that have one.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    keep_daily: Option<u64>,
    /// Also keep the newest snapshot of each of the last N weeks that have one.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    keep_weekly: Option<u64>,
    /// Also keep the newest snapshot of each of the last N months that have one.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    keep_monthly: Option<u64>,
    /// Also keep the newest snapshot of each of the last N years that have one.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    keep_yearly: Option<u64>,
    /// Also keep every snapshot within this span of the group's newest: `2y5m7d3h`
    /// (years, months of 30 days, days, hours).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    keep_within: Option<i64>,
    /// Also keep every snapshot with this tag (repeatable).
    #[arg(long = "keep-tag", value_name = "TAG")]
    keep_tags: Vec<String>,
    /// Group snapshots by any of host, paths, tags (comma-separated; "" for one group).
    #[arg(long, value_name = "host,paths,tags", default_value = "host,paths")]
    group_by: String,
    /// Say what would be removed and kept; remove nothing.
    #[arg(long, short = 'n', conflicts_with = "prune")]
    dry_run: bool,
    /// Prune afterwards.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    vault: VaultArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `2y5m7d3h` as nanoseconds (a month is 30 days, a year 365).
fn parse_duration(text: &str) -> Result<i64, String> {
    let mut total: i64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let hours = match c {
            'y' => 365 * 24,
            'm' => 30 * 24,
            'd' => 24,
            'h' => 1,
            _ => return Err(format!("{text:?}: use numbers with y, m, d or h, as in 1y6m or 36h")),
        };
        let n: i64 = number.parse().map_err(|_| format!("{text:?}: a number must come before {c:?}"))?;
        number.clear();
        total = n
            .checked_mul(hours * 3_600_000_000_000)
            .and_then(|ns| total.checked_add(ns))
            .ok_or_else(|| format!("{text:?} is too long a span"))?;
    }
    if !number.is_empty() || text.is_empty() {
        return Err(format!("{text:?}: end each number with y, m, d or h"));
    }
    Ok(total)
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
    let n = |v: Option<u64>| v.unwrap_or(0) as usize;
    let policy = Retention {
        keep_last: n(args.keep_last),
        keep_hourly: n(args.keep_hourly),
        keep_daily: n(args.keep_daily),
        keep_weekly: n(args.keep_weekly),
        keep_monthly: n(args.keep_monthly),
        keep_yearly: n(args.keep_yearly),
        keep_within_ns: args.keep_within,
        keep_tags: args.keep_tags,
        group_by: GroupBy::parse(&args.group_by)?,
    };
    let unlocked = args.vault.open_admin("forget", !args.dry_run).await?;
    let report = if args.dry_run {
        zerok_vault::forget_plan(&unlocked.vault, &policy).await?
    } else {
        zerok_vault::forget(&unlocked.vault, &policy).await?
    };
    let pruned = if args.prune { Some(zerok_vault::prune(&unlocked.vault, &Progress::default()).await?) } else { None };
    if args.json {
        print_json(&json!({
            "dry_run": args.dry_run,
            "removed": report.removed.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            "kept": report.kept.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            "prune": pruned.as_ref().map(prune_json),
        }));
    } else {
        let verb = if args.dry_run { "would remove" } else { "removed" };
        for id in &report.removed {
            println!("{verb} snapshot {}", id.short());
        }
        println!("{} {verb}, {} kept", report.removed.len(), report.kept.len());
        if let Some(r) = &pruned {
            print_prune(r);
        }
    }
    Ok(0)
}

pub async fn run_prune(args: PruneArgs) -> Result<u8> {
    let unlocked = args.vault.open_admin("prune", true).await?;
    let r = zerok_vault::prune(&unlocked.vault, &Progress::default()).await?;
    if args.json {
        print_json(&prune_json(&r));
    } else {
        print_prune(&r);
    }
    Ok(0)
}
