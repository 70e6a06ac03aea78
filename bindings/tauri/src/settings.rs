//! What the app decides, not its webview: the state folder, the device's name, the relays
//! a new group starts at, the vault, the folders backed up and where a restore writes.
//! Set in `tauri.conf.json` under `plugins.zerok`, or in Rust with [`crate::Builder`]
//! (which wins); relative paths are under the app's data folder.
//!
//! The webview cannot choose a folder or a vault: a script injected into it could
//! otherwise upload any folder the app can read, or restore over any it can write.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

/// `plugins.zerok` in `tauri.conf.json` (every key optional).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginConfig {
    /// The device's state folder (default `zerok` under the app's data folder).
    pub state_dir: Option<PathBuf>,
    /// The device's name in its group and on its vault key slot (default: the host name).
    pub device_name: Option<String>,
    /// Relays (`ENDPOINT_ID@IP:PORT`, the first primary) a group created by `sync_enable`
    /// starts at when the webview gives none.
    pub relays: Option<Vec<String>>,
    /// The vault URL (a folder path, `file://…`, `s3://bucket/prefix`); a relative folder path
    /// is under the app's data folder.
    pub vault: Option<String>,
    /// The folders cloud backup snapshots.
    pub backup_paths: Option<Vec<PathBuf>>,
    /// Where `restore_new_device` writes (an empty or missing folder; default
    /// `zerok-restored` under the app's data folder).
    pub restore_target: Option<PathBuf>,
    /// How long a pause may spend sending the outbox, milliseconds (default 3000).
    pub pause_budget_ms: Option<u64>,
}

impl PluginConfig {
    /// `self`, with what `over` sets taking its place.
    pub(crate) fn overridden_by(self, over: PluginConfig) -> Self {
        Self {
            state_dir: over.state_dir.or(self.state_dir),
            device_name: over.device_name.or(self.device_name),
            relays: over.relays.or(self.relays),
            vault: over.vault.or(self.vault),
            backup_paths: over.backup_paths.or(self.backup_paths),
            restore_target: over.restore_target.or(self.restore_target),
            pause_budget_ms: over.pause_budget_ms.or(self.pause_budget_ms),
        }
    }

    /// The settings in force, relative paths under `data_dir`.
    pub(crate) fn resolve(self, data_dir: &std::path::Path) -> Settings {
        let under = |p: PathBuf| if p.is_absolute() { p } else { data_dir.join(p) };
        Settings {
            state_dir: under(self.state_dir.unwrap_or_else(|| "zerok".into())),
            device_name: self.device_name,
            relays: self.relays.unwrap_or_default(),
            // A plain path is a folder vault: under the data folder too. URLs stay as given.
            vault: self
                .vault
                .map(|v| if v.contains("://") { v } else { under(v.into()).to_string_lossy().into_owned() }),
            backup_paths: self.backup_paths.unwrap_or_default().into_iter().map(under).collect(),
            restore_target: under(self.restore_target.unwrap_or_else(|| "zerok-restored".into())),
            pause_budget: Duration::from_millis(self.pause_budget_ms.unwrap_or(DEFAULT_PAUSE_MS)),
        }
    }
}

/// What a pause may spend sending by default: iOS gives an app about five seconds after it
/// leaves the foreground.
const DEFAULT_PAUSE_MS: u64 = 3000;

/// The settings in force.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub state_dir: PathBuf,
    pub device_name: Option<String>,
    pub relays: Vec<String>,
    pub vault: Option<String>,
    pub backup_paths: Vec<PathBuf>,
    pub restore_target: PathBuf,
    pub pause_budget: Duration,
}
