//! `zerok check`: verify the vault; exit 1 naming every damaged or missing object, and
//! every snapshot this device saw that the store no longer shows.

use std::sync::Arc;

use anyhow::{Result, bail};
use serde_json::json;
use zerok_vault::Progress;

use zerok_cli::progress::{Bar, Show};

use crate::common::{VaultArgs, print_json};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    vault: VaultArgs,
    /// Also download and verify every pack and chunk.
    #[arg(long)]
    read_data: bool,
    /// Print one JSON report object.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> Result<u8> {
    let unlocked = args.vault.open().await?;
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(&progress, Show::Check);
    let mut r = zerok_vault::check(&unlocked.vault, args.read_data, &progress).await?;
    drop(bar);
    r.errors.extend(zerok_client::seen::observe(&zerok_client::Home::locate()?, &unlocked.vault).await?.rollback);
    if args.json {
        print_json(&json!({
            "ok": r.errors.is_empty(),
            "snapshots": r.snapshots,
            "trees": r.trees,
            "packs": r.packs,
            "chunks_read": r.chunks_read,
            "errors": r.errors,
            "warnings": r.warnings,
        }));
    } else {
        for w in &r.warnings {
            eprintln!("zerok: warning: {w}");
        }
        for e in &r.errors {
            eprintln!("zerok: damaged: {e}");
        }
    }
    if !r.errors.is_empty() {
        bail!("check found {} problem(s); first: {}", r.errors.len(), r.errors[0]);
    }
    if !args.json {
        println!(
            "no problems: {} snapshots, {} trees, {} packs{}",
            r.snapshots,
            r.trees,
            r.packs,
            if args.read_data { format!(", {} chunks read and verified", r.chunks_read) } else { String::new() }
        );
    }
    Ok(0)
}
