//! `zerok`: back up folders of app state to an encrypted vault and restore them.
//! This file only parses arguments, sets up logging, runs the command and maps the
//! outcome to an exit code (0 ok, 1 error, 3 done in part: a backup that could not read
//! some files or whose post-hook failed, a restore or repair that names data lost).

mod attach;
mod backup;
mod browse;
mod check;
mod common;
mod copy;
mod docs;
mod forget;
mod init;
mod key;
mod mount;
mod policy;
mod repair;
mod restore;
mod snapshots;
mod stats;
mod sync;
mod tag;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Zero-knowledge encrypted backup for local-first apps.
#[derive(Parser)]
#[command(name = "zerok", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a vault and print its recovery key (once).
    Init(init::Args),
    /// Back up files and folders into a new snapshot.
    Backup(backup::Args),
    /// List snapshots.
    Snapshots(snapshots::Args),
    /// Restore a snapshot (or part of one) into a folder.
    Restore(restore::Args),
    /// List what a snapshot holds (or what lies below a path in it).
    Ls(browse::LsArgs),
    /// Show what changed between two snapshots.
    Diff(browse::DiffArgs),
    /// Find the files and folders whose name matches a pattern, in every snapshot.
    Find(browse::FindArgs),
    /// Write a file of a snapshot to stdout, or a folder as a tar archive.
    Dump(browse::DumpArgs),
    /// Show the snapshots as a read-only folder (FUSE) until ctrl-c.
    Mount(mount::Args),
    /// Show what the vault holds and stores: sizes, chunks, dedup and compression.
    Stats(stats::Args),
    /// Add, remove or set the tags of snapshots.
    Tag(tag::Args),
    /// Copy snapshots into another vault (re-encrypted under its keys; only missing chunks sent).
    Copy(copy::Args),
    /// Verify the vault's structure, and with --read-data every byte.
    Check(check::Args),
    /// Delete old snapshots a retention policy does not keep (--dry-run to see which).
    Forget(forget::ForgetArgs),
    /// Delete data no snapshot needs.
    Prune(forget::PruneArgs),
    /// Rebuild the index from pack headers, or drop lost data from snapshots.
    Repair(repair::Args),
    /// Print the IAM policy for devices' credentials on an append-only S3 vault.
    Policy(policy::Args),
    /// Manage key slots.
    Key(key::Args),
    /// Sync encrypted messages between this group's devices through relays.
    Sync(sync::Args),
    /// Print a shell's completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Write man pages: zerok.1 and one per command.
    Man(docs::ManArgs),
}

/// Exit code: finished only in part — a backup that could not read some files, or a
/// `sync push` queued offline.
pub const EXIT_PARTIAL: u8 = 3;

/// The default log filter: warnings, but none from mDNS, whose warnings come from other
/// hosts on the LAN (and name their ids).
const QUIET: &str = "warn,swarm_discovery=error,iroh_mdns_address_lookup=error";

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("ZEROK_LOG").unwrap_or_else(|_| QUIET.into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    zerok_cli::process::run("zerok", async {
        match cli.command {
            Command::Init(a) => init::run(a).await,
            Command::Backup(a) => backup::run(a).await,
            Command::Snapshots(a) => snapshots::run(a).await,
            Command::Restore(a) => restore::run(a).await,
            Command::Ls(a) => browse::ls(a).await,
            Command::Diff(a) => browse::diff_cmd(a).await,
            Command::Find(a) => browse::find(a).await,
            Command::Dump(a) => browse::dump(a).await,
            Command::Mount(a) => mount::run(a).await,
            Command::Stats(a) => stats::run(a).await,
            Command::Tag(a) => tag::run(a).await,
            Command::Copy(a) => copy::run(a).await,
            Command::Check(a) => check::run(a).await,
            Command::Forget(a) => forget::run_forget(a).await,
            Command::Prune(a) => forget::run_prune(a).await,
            Command::Repair(a) => repair::run(a).await,
            Command::Key(a) => key::run(a).await,
            Command::Policy(a) => policy::run(a),
            Command::Sync(a) => sync::run(a).await,
            Command::Completions(a) => docs::completions::<Cli>(a),
            Command::Man(a) => docs::man::<Cli>(a),
        }
    })
}
