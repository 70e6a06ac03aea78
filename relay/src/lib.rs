//! zerok-relay: the zero-knowledge relay. It stores and forwards encrypted sync messages
//! between the devices of a group, assigns per-group cursors, and learns nothing but
//! sizes and timing: it never holds a group secret, checks membership by a proof bound to
//! each connection, and logs no group, device or blob id in clear.
//!
//! # Layout
//! - `config`: [`Config`] — `relay.toml`, defaults, environment overrides.
//! - `store`: [`Store`] — the durable transit store (redb): cursors, messages, roster,
//!   quotas, TTL, invites.
//! - `roster`: the relay's verified copy of each group's signed roster log (who may use
//!   a group; rotated groups closed to pushes).
//! - `archive`: [`Archive`] — vault mode: payloads kept forever in object storage, the
//!   metadata rebuildable from the bucket.
//! - `committer`: group commit — concurrent pushes share one durable transaction.
//! - `server`: [`Relay`] — endpoint, accept loop, session cap, cleanup, shutdown.
//! - `session`: one connection's HELLO and requests.
//! - `http`, `metrics`: `/health` and `/metrics`.

mod archive;
mod committer;
mod config;
mod http;
mod metrics;
mod notices;
mod roster;
mod server;
mod session;
mod store;

pub use archive::{Archive, Rebuilt};
pub use config::{CleanupConfig, Config, HttpConfig, LimitsConfig, ServerConfig, StorageConfig, StorageMode};
pub use metrics::Metrics;
pub use roster::{Appended, RosterPage, Standing};
pub use server::{KEY_FILE, Relay, STORE_FILE, StartError, State};
pub use store::{ENTRY_OVERHEAD_BYTES, NewBlob, Pushed, Store, StoreError};
