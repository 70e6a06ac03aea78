//! Options every command shares: which vault, and which secret opens it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use zerok_client::{Home, Unlocked, read_recovery_key, unlock};
use zerok_core::SnapshotId;
use zerok_vault::{Vault, format::snapshot::Snapshot};

/// Where the vault is and how to open it.
#[derive(clap::Args, Clone, Debug)]
pub struct VaultArgs {
    /// Vault URL: a folder path, file:///abs/path, s3://bucket/prefix (default: the
    /// vault set up by `init` on this device).
    #[arg(long, env = "ZEROK_VAULT")]
    pub vault: Option<String>,
    /// Read the recovery key from this file (or set ZEROK_RECOVERY_KEY).
    #[arg(long)]
    pub recovery_key_file: Option<PathBuf>,
    /// Read a remote vault's index, snapshots and trees from the store only, not from this
    /// machine's metadata cache (ZEROK_CACHE_DIR, default ~/.cache/zerok).
    #[arg(long)]
    pub no_cache: bool,
}

impl VaultArgs {
    /// The vault URL given, or this device's default.
    pub fn url(&self, home: &Home) -> Result<String> {
        self.vault
            .clone()
            .or_else(|| home.default_vault())
            .context("no vault given: pass --vault URL or set ZEROK_VAULT (or run `zerok init` first)")
    }

    /// Unlocks the vault.
    pub async fn open(&self) -> Result<Unlocked> {
        let home = Home::locate()?;
        let url = self.url(&home)?;
        let recovery = read_recovery_key(self.recovery_key_file.as_deref())?;
        if self.no_cache {
            return Ok(unlock(&url, recovery.as_ref(), &home).await?);
        }
        Ok(zerok_client::unlock_cached(&url, recovery.as_ref(), &home).await?)
    }

    /// Unlocks the vault for `command`, which deletes or changes keys when `admin`: an
    /// append-only vault is then reached with the admin credentials, and refused without
    /// them before anything is written.
    pub async fn open_admin(&self, command: &str, admin: bool) -> Result<Unlocked> {
        let mut unlocked = self.open().await?;
        if admin {
            unlocked.vault = unlocked.vault.into_admin().with_context(|| format!("zerok {command}"))?;
        }
        Ok(unlocked)
    }
}

/// Prints one JSON value on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

/// The vault's snapshots, oldest first, as this device observes them (a rollback the store
/// shows is warned of on stderr).
pub async fn snapshots(vault: &Vault) -> Result<Vec<(SnapshotId, Snapshot)>> {
    let observed = zerok_client::seen::observe(&Home::locate()?, vault).await?;
    for line in &observed.rollback {
        eprintln!("zerok: warning: {line}");
    }
    Ok(observed.snapshots.into_iter().map(|d| (d.id, d.snapshot)).collect())
}

/// The snapshot `spec` names: an id, a unique prefix of one, or `latest`.
pub async fn snapshot(vault: &Vault, spec: &str) -> Result<(SnapshotId, Snapshot)> {
    Ok(Vault::pick(snapshots(vault).await?, spec)?)
}
