//! `zerok tag`: add, remove or set the tags of snapshots (each changed one is written anew
//! under a new id, the old one deleted).

use anyhow::{Result, bail};
use serde_json::json;
use zerok_vault::{TagChange, Vault};

use crate::common::{VaultArgs, print_json, snapshots};

#[derive(clap::Args)]
pub struct Args {
    /// Snapshots (ids, unique prefixes, or `latest`); none: every snapshot.
    snapshots: Vec<String>,
    /// Add this tag (repeatable).
    #[arg(long = "add", value_name = "TAG")]
    add: Vec<String>,
    /// Remove this tag (repeatable).
    #[arg(long = "remove", value_name = "TAG")]
    remove: Vec<String>,
    /// Replace the tags with these (repeatable), before --add and --remove.
    #[arg(long = "set", value_name = "TAG")]
    set: Vec<String>,
    #[command(flatten)]
    vault: VaultArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> Result<u8> {
    if args.add.is_empty() && args.remove.is_empty() && args.set.is_empty() {
        bail!("nothing to change: give --add, --remove or --set");
    }
    if let Some(bad) = args.add.iter().chain(&args.set).find(|t| t.is_empty() || t.contains(',')) {
        bail!("tag {bad:?}: a tag is not empty and holds no comma");
    }
    // A snapshot's tags change by writing it anew and deleting the old one.
    let unlocked = args.vault.open_admin("tag", true).await?;
    let all = snapshots(&unlocked.vault).await?;
    let ids = if args.snapshots.is_empty() {
        all.iter().map(|(id, _)| *id).collect()
    } else {
        args.snapshots.iter().map(|s| Ok(Vault::pick(all.clone(), s)?.0)).collect::<Result<Vec<_>>>()?
    };
    let change = TagChange { set: (!args.set.is_empty()).then_some(args.set), add: args.add, remove: args.remove };
    let done = zerok_vault::retag(&unlocked.vault, &ids, &change).await?;
    if args.json {
        print_json(&json!({
            "changed": done.iter().map(|(old, new)| json!({"old": old.to_string(), "new": new.to_string()})).collect::<Vec<_>>(),
            "unchanged": ids.len() - done.len(),
        }));
    } else {
        for (old, new) in &done {
            println!("snapshot {} is now {}", old.short(), new.short());
        }
        println!("{} changed, {} unchanged", done.len(), ids.len() - done.len());
    }
    Ok(0)
}
