//! `zerok restore`: restore a snapshot, or the parts matching --include, into a folder;
//! exit 3 when some of it is lost (named on stderr) and the rest restored.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context, Result, bail};
use zerok_vault::{Progress, RestoreOptions};

use zerok_cli::progress::{Bar, Show};

use crate::common::{VaultArgs, print_json};

#[derive(clap::Args)]
pub struct Args {
    /// Snapshot id (or unique prefix), or `latest`.
    snapshot: String,
    /// Folder to restore into.
    #[arg(long)]
    target: PathBuf,
    /// Restore only paths matching this glob, relative to the target (repeatable).
    #[arg(long = "include")]
    includes: Vec<String>,
    #[command(flatten)]
    vault: VaultArgs,
    /// Print one JSON summary object.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> Result<u8> {
    let unlocked = args.vault.open().await?;
    let observed = zerok_client::seen::observe(&zerok_client::Home::locate()?, &unlocked.vault).await?;
    if let (Some(first), "latest") = (observed.rollback.first(), args.snapshot.as_str()) {
        bail!("refusing to restore `latest`: {first}; restore a snapshot by id to go on");
    }
    for line in &observed.rollback {
        eprintln!("zerok: warning: {line}");
    }
    let all = observed.snapshots.into_iter().map(|d| (d.id, d.snapshot)).collect();
    let (id, snap) = zerok_vault::Vault::pick(all, &args.snapshot)?;
    let mut opts = RestoreOptions::new(args.target.clone());
    opts.includes = args.includes;
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(&progress, Show::Restore);
    let s = zerok_vault::restore(&unlocked.vault, &snap, &opts, progress)
        .await
        .with_context(|| format!("restoring snapshot {} into {}", id.short(), args.target.display()))?;
    drop(bar);
    if args.json {
        print_json(&zerok_cli::restore_json(&id, &args.target, &s));
    } else {
        println!(
            "restored snapshot {} into {}: {} files, {} folders, {} symlinks, {}",
            id.short(),
            args.target.display(),
            s.files,
            s.dirs,
            s.symlinks,
            indicatif::HumanBytes(s.bytes)
        );
    }
    Ok(if zerok_cli::restore_damage("zerok restore", &s) { 3 } else { 0 })
}
