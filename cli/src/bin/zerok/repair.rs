//! `zerok repair index | snapshots`: rebuild the index from pack headers, and rewrite
//! snapshots whose data is partly lost (exit 3 when data is lost: a pack header that does
//! not open, a file left out; each is named).

use anyhow::Result;
use serde_json::json;
use zerok_vault::Progress;

use crate::common::{VaultArgs, print_json};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Write the index anew from the index files that open and the headers of the packs
    /// none of them names; drop entries of packs that are gone.
    Index {
        #[command(flatten)]
        vault: VaultArgs,
        /// Read every pack's header, not only those no index file names.
        #[arg(long)]
        read_all_packs: bool,
        /// Print one JSON report object.
        #[arg(long)]
        json: bool,
    },
    /// Write, for each snapshot some of whose files lost data, one without them (tagged
    /// `repaired`); the lost paths are listed.
    Snapshots {
        #[command(flatten)]
        vault: VaultArgs,
        /// Only list what would change.
        #[arg(long)]
        dry_run: bool,
        /// Delete the snapshots that were repaired (then `check` passes again).
        #[arg(long)]
        forget: bool,
        /// Print one JSON report object.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: Args) -> Result<u8> {
    match args.what {
        What::Index { vault, read_all_packs, json } => index(vault, read_all_packs, json).await,
        What::Snapshots { vault, dry_run, forget, json } => snapshots(vault, dry_run, forget, json).await,
    }
}

/// `repair index`.
async fn index(vault: VaultArgs, read_all_packs: bool, as_json: bool) -> Result<u8> {
    let unlocked = vault.open_admin("repair index", true).await?;
    let r = zerok_vault::repair_index(&unlocked.vault, read_all_packs, &Progress::default()).await?;
    if as_json {
        print_json(&json!({
            "packs_read": r.packs_read,
            "packs_indexed": r.packs_indexed,
            "index_written": r.index_written,
            "index_removed": r.index_removed,
            "packs_missing": r.packs_missing,
            "packs_unreadable": r.packs_unreadable,
            "damaged": r.damaged,
        }));
    } else {
        for d in &r.damaged {
            eprintln!("zerok: damaged: {d}");
        }
        println!(
            "index rebuilt: {} packs indexed in {} file(s) ({} pack headers read, {} old index files replaced, {} \
             entries of missing packs dropped)",
            r.packs_indexed, r.index_written, r.packs_read, r.index_removed, r.packs_missing
        );
    }
    // Index files that did not open are replaced, entries of packs that are gone dropped
    // (their chunks may be stored elsewhere: `check` tells); unreadable packs are lost.
    Ok(if r.packs_unreadable == 0 { 0 } else { crate::EXIT_PARTIAL })
}

/// `repair snapshots`.
async fn snapshots(vault: VaultArgs, dry_run: bool, forget: bool, as_json: bool) -> Result<u8> {
    let unlocked = vault.open_admin("repair snapshots --forget", forget && !dry_run).await?;
    let r = zerok_vault::repair_snapshots(&unlocked.vault, dry_run, forget, &Progress::default()).await?;
    let pairs: Vec<_> =
        r.repaired.iter().map(|(old, new)| json!({"old": old.to_string(), "new": new.to_string()})).collect();
    if as_json {
        print_json(&json!({
            "snapshots": r.snapshots,
            "repaired": pairs,
            "lost": r.lost,
            "unrepairable": r.unrepairable,
            "dry_run": dry_run,
            "forgot": r.forgot,
        }));
    } else {
        for l in &r.lost {
            eprintln!("zerok: lost: {l}");
        }
        for u in &r.unrepairable {
            eprintln!("zerok: unrepairable: {u}");
        }
        let verb = if dry_run { "would repair" } else { "repaired" };
        println!("{verb} {} of {} snapshots", r.repaired.len(), r.snapshots);
        for (old, new) in &r.repaired {
            match dry_run {
                true => println!("  {}", old.short()),
                false => println!("  {} -> {}", old.short(), new.short()),
            }
        }
    }
    Ok(if r.lost.is_empty() && r.unrepairable.is_empty() { 0 } else { crate::EXIT_PARTIAL })
}
