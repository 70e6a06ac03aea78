//! zerok-cli: the terminal side of the `zerok` and `zerok-restore` programs — how they
//! run, what they draw and the JSON they print. Apps use `zerok-client` instead, which
//! never prints.
//!
//! # Layout
//! - [`mount`]: the read-only FUSE view of a vault's snapshots (`zerok mount`).
//! - [`process`]: allocator settings, a runtime shaped for backup work, one-line errors.
//! - [`progress`]: terminal progress bars fed by the vault's counters.
//! - `report`: JSON reports whose keys scripts rely on, and what a restore lost.

pub mod mount;
pub mod process;
pub mod progress;
mod report;

pub use report::{restore_damage, restore_json};
