//! `zerok backup`: snapshot files and folders.

use std::{path::PathBuf, sync::Arc};

use anyhow::Result;
use serde_json::json;
use zerok_vault::{BackupOptions, Progress};

use zerok_client::progress::{Bar, Show};

use crate::{
    EXIT_PARTIAL,
    common::{VaultArgs, print_json},
};

#[derive(clap::Args)]
pub struct Args {
    /// Files or folders to back up.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    vault: VaultArgs,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Host name to record (default: this machine's).
    #[arg(long)]
    host: Option<String>,
    /// Print one JSON summary object.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> Result<u8> {
    let unlocked = args.vault.open().await?;
    let mut opts = BackupOptions::new(args.paths);
    opts.tags = args.tags;
    if let Some(host) = args.host {
        opts.hostname = host;
    }
    let sync_home = zerok_client::sync::SyncHome::new(zerok_client::Home::locate()?.dir());
    // A damaged sync state must not stop a backup: the files are saved without the group.
    if let Err(e) = zerok_client::vault_sync::record(&unlocked.vault, &sync_home, &mut opts).await {
        eprintln!("zerok: warning: sync group not recorded with this snapshot: {e:#}");
    }
    let sync_cursors = opts.sync_cursors.clone();
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(&progress, Show::Backup);
    let s = zerok_vault::backup(&unlocked.vault, opts, progress).await?;
    drop(bar);
    for (path, why) in &s.unreadable {
        eprintln!("zerok: could not read {}: {why}", path.display());
    }
    if args.json {
        print_json(&json!({
            "snapshot_id": s.snapshot_id.to_string(),
            "parent": s.parent.map(|p| p.to_string()),
            "files_new": s.files_new,
            "files_changed": s.files_changed,
            "files_unmodified": s.files_unmodified,
            "dirs": s.dirs,
            "bytes_read": s.bytes_read,
            "bytes_total": s.bytes_total,
            "bytes_added": s.bytes_added,
            "chunks_new": s.chunks_new,
            "files_unreadable": s.unreadable.len(),
            "unreadable": s.unreadable.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>(),
            "duration_secs": s.duration.as_secs_f64(),
            "sync_cursors": sync_cursors,
        }));
    } else {
        println!(
            "snapshot {} saved: {} new, {} changed, {} unmodified files; {} read, {} added in {:.2}s",
            s.snapshot_id.short(),
            s.files_new,
            s.files_changed,
            s.files_unmodified,
            indicatif::HumanBytes(s.bytes_read),
            indicatif::HumanBytes(s.bytes_added),
            s.duration.as_secs_f64()
        );
    }
    Ok(if s.unreadable.is_empty() { 0 } else { EXIT_PARTIAL })
}
