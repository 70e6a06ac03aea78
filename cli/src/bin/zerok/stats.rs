//! `zerok stats`: what the vault holds and what it costs.

use anyhow::Result;
use serde_json::json;

use crate::common::{VaultArgs, print_json};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    vault: VaultArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> Result<u8> {
    let unlocked = args.vault.open().await?;
    let s = zerok_vault::stats(&unlocked.vault).await?;
    if args.json {
        print_json(&json!({
            "snapshots": s.snapshots,
            "files": s.files,
            "logical_bytes": s.logical_bytes,
            "data_chunks": s.data_chunks,
            "tree_chunks": s.tree_chunks,
            "unique_bytes": s.unique_bytes,
            "sealed_bytes": s.sealed_bytes,
            "packs": s.packs,
            "pack_bytes": s.pack_bytes,
            "other_bytes": s.other_bytes,
            "stored_bytes": s.pack_bytes + s.other_bytes,
            "dedup_ratio": s.dedup_ratio(),
            "compression_ratio": s.compression_ratio(),
        }));
        return Ok(0);
    }
    let b = |n: u64| indicatif::HumanBytes(n).to_string();
    println!("snapshots:          {} ({} files)", s.snapshots, s.files);
    println!("restore size:       {}", b(s.logical_bytes));
    println!("distinct chunks:    {} data, {} trees, {}", s.data_chunks, s.tree_chunks, b(s.unique_bytes));
    println!("stored:             {} in {} packs, {} other", b(s.pack_bytes), s.packs, b(s.other_bytes));
    println!("dedup:              {:.2}x", s.dedup_ratio());
    println!("compression:        {:.2}x", s.compression_ratio());
    Ok(0)
}
