//! `zerok snapshots`: list snapshots, oldest first.

use anyhow::Result;
use serde_json::json;

use zerok_client::time::rfc3339;

use crate::common::{VaultArgs, print_json, snapshots};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    vault: VaultArgs,
    /// Print a JSON array.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> Result<u8> {
    let unlocked = args.vault.open().await?;
    let snaps = snapshots(&unlocked.vault).await?;
    if args.json {
        let list: Vec<_> = snaps
            .iter()
            .map(|(id, s)| {
                json!({
                    "id": id.to_string(),
                    "short_id": id.short(),
                    "time": rfc3339(s.time_ns),
                    "hostname": s.hostname,
                    "paths": s.paths,
                    "tags": s.tags,
                    "tree": s.tree.to_string(),
                    "parent": s.parent.map(|p| p.to_string()),
                    "files": s.summary.files,
                    "dirs": s.summary.dirs,
                    "bytes": s.summary.bytes,
                    "sync_cursors": s.sync_cursors,
                    "sync_group": s.sync_group.map(|g| g.to_string()),
                })
            })
            .collect();
        print_json(&serde_json::Value::Array(list));
    } else {
        println!("{:<10} {:<21} {:<16} {:>8} {:>10}  paths", "id", "time", "host", "files", "size");
        for (id, s) in &snaps {
            println!(
                "{:<10} {:<21} {:<16} {:>8} {:>10}  {}{}",
                id.short(),
                rfc3339(s.time_ns),
                s.hostname,
                s.summary.files,
                indicatif::HumanBytes(s.summary.bytes).to_string(),
                s.paths.join(" "),
                if s.tags.is_empty() { String::new() } else { format!("  [{}]", s.tags.join(",")) }
            );
        }
        println!("{} snapshots", snaps.len());
    }
    Ok(0)
}
