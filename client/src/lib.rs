//! zerok-client: what apps and the `zerok` and `zerok-restore` programs share — this
//! device's state under `ZEROK_HOME` (default vault, device keys), unlocking a vault with
//! the best secret available, the sync client, the link between a vault and a sync group,
//! and the cloud-backup API for apps.
//!
//! It never prints; binaries decide what the user sees.
//!
//! # Layout
//! - `home`: [`Home`] — the per-device folder and the files in it.
//! - `unlock`: [`unlock`] — recovery key, device key or passphrase → [`zerok_vault::Vault`].
//! - `report`: JSON reports whose keys scripts rely on.
//! - [`seen`]: what this device last saw of each vault, to notice a store that rolls back.
//! - [`sync`]: the sync client — relays, push/pull, events, devices, pairing.
//! - [`vault_sync`]: group credentials kept in the vault; rejoining and replaying.
//! - [`cloud`]: cloud backup mode for apps — schedule, retention, status, events.
//! - [`progress`]: terminal progress bars fed by the vault's counters.
//! - [`process`]: how the programs run — allocator settings, runtime, one-line errors.

pub mod cloud;
mod home;
pub mod process;
pub mod progress;
mod report;
pub mod seen;
pub mod sync;
mod unlock;
pub mod vault_sync;

pub use home::Home;
pub use report::{restore_damage, restore_json, rfc3339};
pub use unlock::{KeySource, Unlocked, cached, read_recovery_key, unlock, unlock_cached};
