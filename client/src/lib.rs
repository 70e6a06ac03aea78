//! zerok-client: what the `zerok` and `zerok-restore` programs share — this device's
//! state under `ZEROK_HOME` (default vault, device keys) and unlocking a vault with the
//! best secret available. Later also the sync client and the cloud-backup API for apps.
//!
//! It never prints; binaries decide what the user sees.
//!
//! # Layout
//! - `home`: [`Home`] — the per-device folder and the files in it.
//! - `unlock`: [`unlock`] — recovery key, device key or passphrase → [`zerok_vault::Vault`].
//! - `report`: JSON reports whose keys scripts rely on.
//! - [`sync`]: the sync client — relays, push/pull, events, devices, pairing.

mod home;
mod report;
pub mod sync;
mod unlock;

pub use home::Home;
pub use report::restore_json;
pub use unlock::{KeySource, Unlocked, read_recovery_key, unlock};
