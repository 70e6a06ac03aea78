//! `zerok backup`: snapshot files and folders; SQLite databases through a consistent copy
//! (`--sqlite`), with optional commands run before and after (`--pre-hook`, `--post-hook`)
//! to pause and resume an app's writes.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context, Result, bail};
use serde_json::json;
use zerok_vault::{BackupOptions, Progress, SqliteMode};

use zerok_cli::progress::{Bar, Show};

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
    /// How SQLite databases (found by their header) are read: `consistent` copies each
    /// through SQLite's backup API and leaves out its -journal/-wal/-shm files; `raw` reads
    /// them as any file (a database being written may restore torn).
    #[arg(long, value_enum, default_value_t = Sqlite::Consistent)]
    sqlite: Sqlite,
    /// Shell command run before any file is read (pause the app's writes, dump a
    /// database); if it fails, nothing is backed up.
    #[arg(long)]
    pre_hook: Option<String>,
    /// Shell command run after the backup, whether or not it succeeded (also when the
    /// pre-hook failed or never ran), with ZEROK_BACKUP_STATUS=ok|failed and
    /// ZEROK_SNAPSHOT_ID in its environment; if it fails, the exit code is 3.
    #[arg(long)]
    post_hook: Option<String>,
    /// Print one JSON summary object.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Sqlite {
    Consistent,
    Raw,
}

/// Runs a hook through `sh -c` with `env`; an error names it and how it ended.
fn hook(which: &str, command: &str, env: &[(&str, &str)]) -> Result<()> {
    // Its output goes to stderr: stdout is this command's (and --json's).
    let status = std::process::Command::new("sh")
        .args(["-c", command])
        .envs(env.iter().copied())
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("{which} {command:?} could not start"))?;
    if !status.success() {
        bail!("{which} {command:?} failed ({status})");
    }
    Ok(())
}

pub async fn run(mut args: Args) -> Result<u8> {
    let post_hook = args.post_hook.take();
    let result = backup(args).await;
    let Some(command) = post_hook else { return result.map(|(code, _)| code) };
    let id = result.as_ref().ok().and_then(|(_, id)| id.clone()).unwrap_or_default();
    let status = if result.is_ok() { "ok" } else { "failed" };
    let ran = hook("post-hook", &command, &[("ZEROK_BACKUP_STATUS", status), ("ZEROK_SNAPSHOT_ID", &id)]);
    match (result, ran) {
        (Ok((code, _)), Ok(())) => Ok(code),
        (Ok(_), Err(e)) => {
            eprintln!("zerok: warning: the snapshot is saved, but {e:#}");
            Ok(EXIT_PARTIAL)
        }
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(hook_err)) => Err(e.context(format!("and {hook_err:#}"))),
    }
}

/// The backup itself; returns the exit code and the snapshot id.
async fn backup(args: Args) -> Result<(u8, Option<String>)> {
    let unlocked = args.vault.open().await?;
    if let Some(command) = &args.pre_hook {
        hook("pre-hook", command, &[])?;
    }
    let mut opts = BackupOptions::new(args.paths);
    opts.sqlite = match args.sqlite {
        Sqlite::Consistent => SqliteMode::Consistent,
        Sqlite::Raw => SqliteMode::Raw,
    };
    opts.tags = args.tags;
    if let Some(host) = args.host {
        opts.hostname = host;
    }
    let sync_home = zerok_client::Home::locate()?.sync();
    // A damaged sync state must not stop a backup: the files are saved without the group.
    if let Err(e) = zerok_client::vault_sync::record(&unlocked.vault, &sync_home, &mut opts).await {
        eprintln!("zerok: warning: sync group not recorded with this snapshot: {e:#}");
    }
    let sync_cursors = opts.sync_cursors.clone();
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(&progress, Show::Backup);
    let mut s = zerok_vault::backup(&unlocked.vault, opts, progress).await?;
    drop(bar);
    // Records the new snapshot as the newest this device has seen of these paths.
    let listed = std::mem::take(&mut s.snapshots);
    match zerok_client::seen::record(&zerok_client::Home::locate()?, &unlocked.vault, listed).await {
        Ok(observed) => observed.rollback.iter().for_each(|line| eprintln!("zerok: warning: {line}")),
        Err(e) => eprintln!("zerok: warning: the snapshot is saved, but recording it on this device failed: {e:#}"),
    }
    for (path, why) in &s.unreadable {
        eprintln!("zerok: could not read {}: {why}", path.display());
    }
    for (path, why) in &s.sqlite_raw {
        eprintln!("zerok: warning: SQLite database {} stored as read, not as a consistent copy: {why}", path.display());
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
            "sqlite_copied": s.sqlite_copied,
            "sqlite_raw": s.sqlite_raw.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>(),
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
    let code = if s.unreadable.is_empty() { 0 } else { EXIT_PARTIAL };
    Ok((code, Some(s.snapshot_id.to_string())))
}
