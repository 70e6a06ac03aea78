//! zerok-client: what apps and the `zerok` and `zerok-restore` programs share — this
//! device's state under `ZEROK_HOME` (default vault, device keys), unlocking a vault with
//! the best secret available, the sync client, the link between a vault and a sync group,
//! and the cloud-backup API for apps.
//!
//! It never prints; binaries decide what the user sees.
//!
//! # Layout
//! - `error`: [`Error`] — the one error type, with [`Error::is_retryable`].
//! - `home`: [`Home`] — the device's own state: default vault, device keys, sync state.
//! - `state_store`: [`StateStore`] — where that state lives: [`FileStore`] (files under
//!   `ZEROK_HOME`, the default) or [`MemoryStore`] (an app that keeps secrets in the OS
//!   keychain).
//! - `unlock`: [`unlock`] — recovery key, device key or passphrase → [`zerok_vault::Vault`].
//! - [`time`]: times as people and JSON read them.
//! - [`new_device`]: a new device from a vault and its recovery key — restore, rejoin,
//!   replay, register ([`new_device::restore_new_device`]).
//! - `replay_dir`: folders under a restore's `TARGET/.zerok`, written through their handles.
//! - [`seen`]: what this device last saw of each vault, to notice a store that rolls back.
//! - [`sync`]: the sync client — relays, push/pull, events, devices, pairing.
//! - [`vault_sync`]: group credentials kept in the vault; rejoining and replaying.
//! - [`cloud`]: cloud backup mode for apps — schedule, retention, status, events.

pub mod cloud;
mod error;
mod home;
pub mod new_device;
pub(crate) mod replay_dir;
pub mod seen;
mod state_store;
pub mod sync;
pub mod time;
mod unlock;
pub mod vault_sync;

pub use error::{Error, Result};
pub use home::Home;
pub use state_store::{FileStore, MemoryStore, StateStore};
pub use unlock::{KeySource, Unlocked, cached, read_recovery_key, unlock, unlock_cached};
