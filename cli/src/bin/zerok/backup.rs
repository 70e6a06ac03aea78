//! `zerok backup`: snapshot files and folders; SQLite databases through a consistent copy
//! (`--sqlite`), with optional commands run before and after (`--pre-hook`, `--post-hook`)
//! to pause and resume an app's writes; what to leave out (`--exclude…`,
//! `--one-file-system`) and a `--dry-run` that says what would be stored.

use std::{
    io::Read,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, Result, bail};
use serde_json::json;
use zerok_vault::{BackupOptions, Exclude, Marker, Progress, SqliteMode};

use zerok_cli::progress::{Bar, JsonStatus, Show};

use crate::{
    EXIT_PARTIAL,
    common::{VaultArgs, print_json},
};

#[derive(clap::Args)]
pub struct Args {
    /// Files or folders to back up.
    #[arg(required_unless_present = "files_from")]
    paths: Vec<PathBuf>,
    /// Back up the paths listed in this file too, one a line, blank lines and lines
    /// starting with `#` skipped (`-`: standard input; repeatable).
    #[arg(long = "files-from", value_name = "FILE")]
    files_from: Vec<PathBuf>,
    /// Leave out what matches this gitignore-style pattern (repeatable): `*.tmp` or
    /// `node_modules` at any depth, `a/b` a path ending so, `/abs/path` only there, `dir/`
    /// folders only, `**` any folders, `!pattern` takes back an earlier one.
    #[arg(long = "exclude", value_name = "PATTERN")]
    excludes: Vec<String>,
    /// Read exclude patterns from this file, one a line (`#` comments; repeatable).
    #[arg(long = "exclude-file", value_name = "FILE")]
    exclude_files: Vec<PathBuf>,
    /// Leave out folders holding a file of this name; `NAME:HEADER` only when the file
    /// starts with HEADER (repeatable).
    #[arg(long = "exclude-if-present", value_name = "NAME[:HEADER]")]
    exclude_if_present: Vec<String>,
    /// Leave out folders tagged as caches: a CACHEDIR.TAG that starts with its signature.
    #[arg(long)]
    exclude_caches: bool,
    /// Stay on each path's filesystem: mount points below it are kept empty.
    #[arg(long, short = 'x')]
    one_file_system: bool,
    /// Walk the paths and say what would be stored; store nothing, run no hooks.
    #[arg(long, short = 'n')]
    dry_run: bool,
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
    if args.dry_run {
        return dry_run(args).await;
    }
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

/// The backup options the arguments give (the files they name read).
fn options(args: &mut Args) -> Result<BackupOptions> {
    let mut paths = std::mem::take(&mut args.paths);
    for file in &args.files_from {
        paths.extend(read_paths(file)?);
    }
    if paths.is_empty() {
        bail!("nothing to back up: the paths given and --files-from name none");
    }
    let mut patterns = std::mem::take(&mut args.excludes);
    for file in &args.exclude_files {
        patterns.extend(read_patterns(file)?);
    }
    let mut if_present = args.exclude_if_present.iter().map(|m| Marker::parse(m)).collect::<Result<Vec<_>, _>>()?;
    if args.exclude_caches {
        if_present.push(Marker::cache_dir_tag());
    }
    let mut opts = BackupOptions::new(paths);
    opts.exclude = Exclude { patterns, if_present, one_file_system: args.one_file_system };
    opts.sqlite = match args.sqlite {
        Sqlite::Consistent => SqliteMode::Consistent,
        Sqlite::Raw => SqliteMode::Raw,
    };
    opts.tags = std::mem::take(&mut args.tags);
    if let Some(host) = args.host.take() {
        opts.hostname = host;
    }
    Ok(opts)
}

/// Reads `file` (`-`: standard input), naming it when it cannot.
fn read_input(file: &Path) -> Result<Vec<u8>> {
    if file == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).context("reading the list on standard input")?;
        return Ok(buf);
    }
    std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
}

/// The lines of `bytes` that say something: not blank, not starting with `#`.
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace) && !l.starts_with(b"#"))
}

/// The paths a `--files-from` file lists, one a line, taken as written.
fn read_paths(file: &Path) -> Result<Vec<PathBuf>> {
    Ok(lines(&read_input(file)?).map(|l| PathBuf::from(std::ffi::OsStr::from_bytes(l))).collect())
}

/// The patterns an `--exclude-file` holds, one a line.
fn read_patterns(file: &Path) -> Result<Vec<String>> {
    let bytes = read_input(file)?;
    lines(&bytes)
        .map(|l| {
            std::str::from_utf8(l)
                .map(str::to_string)
                .map_err(|_| anyhow::anyhow!("{}: a pattern that is not UTF-8 text", file.display()))
        })
        .collect()
}

/// `--dry-run`: what the backup would store.
async fn dry_run(mut args: Args) -> Result<u8> {
    let opts = options(&mut args)?;
    let unlocked = args.vault.open().await?;
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(&progress, Show::Backup);
    let status = args.json.then(|| JsonStatus::start(&progress));
    let p = zerok_vault::dry_run(&unlocked.vault, opts, progress).await?;
    drop((bar, status));
    for (path, why) in &p.unreadable {
        eprintln!("zerok: could not read {}: {why}", path.display());
    }
    if args.json {
        print_json(&json!({
            "message_type": "summary",
            "dry_run": true,
            "parent": p.parent.map(|id| id.to_string()),
            "files_new": p.files_new,
            "files_changed": p.files_changed,
            "files_unmodified": p.files_unmodified,
            "dirs": p.dirs,
            "bytes_read": p.bytes_read,
            "bytes_total": p.bytes_total,
            "chunks_new": p.chunks_new,
            "bytes_new": p.bytes_new,
            "excluded": p.excluded,
            "files_unreadable": p.unreadable.len(),
            "unreadable": p.unreadable.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>(),
            "duration_secs": p.duration.as_secs_f64(),
        }));
    } else {
        println!(
            "dry run, nothing stored: {} new, {} changed, {} unmodified files, {} left out; {} new chunks ({} before compression)",
            p.files_new,
            p.files_changed,
            p.files_unmodified,
            p.excluded,
            p.chunks_new,
            indicatif::HumanBytes(p.bytes_new),
        );
    }
    Ok(if p.unreadable.is_empty() { 0 } else { EXIT_PARTIAL })
}

/// The backup itself; returns the exit code and the snapshot id.
async fn backup(mut args: Args) -> Result<(u8, Option<String>)> {
    let mut opts = options(&mut args)?;
    let unlocked = args.vault.open().await?;
    if let Some(command) = &args.pre_hook {
        hook("pre-hook", command, &[])?;
    }
    let sync_home = zerok_client::Home::locate()?.sync();
    // A damaged sync state must not stop a backup: the files are saved without the group.
    if let Err(e) = zerok_client::vault_sync::record(&unlocked.vault, &sync_home, &mut opts).await {
        eprintln!("zerok: warning: sync group not recorded with this snapshot: {e:#}");
    }
    let sync_cursors = opts.sync_cursors.clone();
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(&progress, Show::Backup);
    let status = args.json.then(|| JsonStatus::start(&progress));
    let mut s = zerok_vault::backup(&unlocked.vault, opts, progress).await?;
    drop((bar, status));
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
            "message_type": "summary",
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
            "excluded": s.excluded,
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
