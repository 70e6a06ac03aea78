//! tauri-plugin-zerok: zerok's zero-knowledge sync, cloud backup and new-device restore for
//! Tauri apps. The webview invokes `plugin:zerok|<command>` (the spec's `sync_enable`,
//! `sync_disable`, `sync_create_invite`, `sync_join_invite`, `sync_push`, `sync_pull`,
//! `sync_status`, `sync_last_cursor`, and `vault_create`, `backup_enable`,
//! `backup_disable`, `backup_now`, `backup_status`, `restore_new_device`, `on_pause`,
//! `on_resume`, `register_push_token`) and listens to `zerok://<kind>` events; the guest
//! API in `guest-js/` wraps both. The Rust side of the app holds the same handle
//! (`app.state::<Zerok>().bridge()`).
//!
//! ```text
//! tauri::Builder::default()
//!     .plugin(tauri_plugin_zerok::Builder::new().vault("s3://bucket/notes").backup_paths(["db"]).build())
//! ```
//!
//! # Layout
//! - `settings`: what the app decides (folders, vault, relays), from `tauri.conf.json` or
//!   [`Builder`].
//! - `commands`: the commands. `models`: the spec's JavaScript shapes.
//! - `events`: the bridge's events as Tauri events. `lifecycle`: suspend, resume, exit.
//! - `error`: [`Error`], as the webview sees it.

mod commands;
mod error;
mod events;
mod lifecycle;
mod models;
mod settings;

use std::{path::PathBuf, time::Duration};

use tauri::{
    Manager, Runtime,
    plugin::{Builder as PluginBuilder, TauriPlugin},
};
use zerok_bridge::{Bridge, Config};

pub use error::Error;
pub use lifecycle::{Lifecycle, close, lifecycle};
pub use models::{BackupSchedule, Invite, PullResult, Restored};
pub use settings::PluginConfig;
use settings::Settings;

/// The plugin's state: this device's handle and the app's settings.
pub struct Zerok {
    bridge: Bridge,
    settings: Settings,
    changes: lifecycle::Changes,
}

impl Zerok {
    /// The device's handle, for the Rust side of the app.
    pub fn bridge(&self) -> &Bridge {
        &self.bridge
    }

    /// The app's vault URL.
    fn vault(&self) -> Result<String, Error> {
        self.settings
            .vault
            .clone()
            .ok_or_else(|| Error::invalid("no vault configured: set plugins.zerok.vault (or Builder::vault)"))
    }
}

/// The plugin with the settings of `tauri.conf.json` (`plugins.zerok`).
pub fn init<R: Runtime>() -> TauriPlugin<R, Option<PluginConfig>> {
    Builder::new().build()
}

/// The plugin with settings from Rust, which take the place of `tauri.conf.json`'s.
#[derive(Clone, Debug, Default)]
pub struct Builder {
    config: PluginConfig,
}

impl Builder {
    /// No settings of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// The device's state folder.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.state_dir = Some(dir.into());
        self
    }

    /// The device's name in its group.
    pub fn device_name(mut self, name: impl Into<String>) -> Self {
        self.config.device_name = Some(name.into());
        self
    }

    /// The relays a new group starts at (`ENDPOINT_ID@IP:PORT`, the first primary).
    pub fn relays<S: Into<String>>(mut self, relays: impl IntoIterator<Item = S>) -> Self {
        self.config.relays = Some(relays.into_iter().map(Into::into).collect());
        self
    }

    /// The vault URL.
    pub fn vault(mut self, url: impl Into<String>) -> Self {
        self.config.vault = Some(url.into());
        self
    }

    /// The folders cloud backup snapshots.
    pub fn backup_paths<P: Into<PathBuf>>(mut self, paths: impl IntoIterator<Item = P>) -> Self {
        self.config.backup_paths = Some(paths.into_iter().map(Into::into).collect());
        self
    }

    /// Where a new-device restore writes.
    pub fn restore_target(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.restore_target = Some(dir.into());
        self
    }

    /// How long a pause may spend sending the outbox.
    pub fn pause_budget(mut self, budget: Duration) -> Self {
        self.config.pause_budget_ms = Some(u64::try_from(budget.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// The plugin.
    pub fn build<R: Runtime>(self) -> TauriPlugin<R, Option<PluginConfig>> {
        PluginBuilder::<R, Option<PluginConfig>>::new("zerok")
            .invoke_handler(tauri::generate_handler![
                commands::sync_enable,
                commands::sync_disable,
                commands::sync_create_invite,
                commands::sync_join_invite,
                commands::sync_push,
                commands::sync_pull,
                commands::sync_status,
                commands::sync_last_cursor,
                commands::vault_create,
                commands::backup_enable,
                commands::backup_disable,
                commands::backup_now,
                commands::backup_status,
                commands::restore_new_device,
                commands::on_pause,
                commands::on_resume,
                commands::register_push_token,
            ])
            .setup(move |app, api| {
                let config = api.config().clone().unwrap_or_default().overridden_by(self.config);
                let data_dir = app.path().app_data_dir()?;
                let settings = config.resolve(&data_dir);
                let bridge = Bridge::open(Config {
                    state_dir: settings.state_dir.clone(),
                    device_name: settings.device_name.clone(),
                })?;
                let changes = lifecycle::Changes::start(app.clone());
                app.manage(Zerok { bridge, settings, changes });
                events::pump(app.clone());
                Ok(())
            })
            .on_event(lifecycle::on_run_event)
            .build()
    }
}
