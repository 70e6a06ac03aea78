//! zerok-relay: the zero-knowledge relay. It stores and forwards encrypted sync messages
//! between the devices of a group, assigns per-group cursors, and learns nothing but
//! sizes and timing: it never holds a group secret, checks membership by a proof bound to
//! each connection and by its copy of the group's signed roster, and logs no group, device
//! or blob id in clear. Every resource a peer can make it hold is bounded (protocol
//! document §7, in `zerok_core::sync`).
//!
//! # Layout (read in this order)
//! - `config`: [`Config`] — `relay.toml`, defaults, environment overrides.
//! - `error`: [`Error`] — the one error type, and its mapping to wire error codes.
//! - `server`: [`Relay`] — start, accept loop, cleanup, shutdown.
//! - `admission`: who may wait for HELLO (per-address share, oldest evicted when full).
//! - `session`: one connection — HELLO, then the stream loop.
//! - `cmd`: one module per request kind.
//! - `state`: [`State`] — what sessions share: storage, limits, the online registry.
//! - `notices`: NOTIFY / DEVICE_REVOKED / ROSTER_APPENDED to online devices, bounded.
//! - `storage`: [`Storage`] — one interface over transit and vault mode.
//! - `content`: vault mode's attachments — fetched from devices, archived, served.
//! - `store`: the redb store — messages, deletion, devices, invites, roster; typed keys.
//! - `push`: waking offline devices through a push gateway (log, webhook).
//! - `http`, `metrics`: `/health` and `/metrics`.

mod admission;
mod cmd;
mod config;
mod content;
mod error;
mod http;
mod metrics;
mod notices;
mod push;
mod server;
mod session;
mod state;
mod storage;
mod store;

pub use config::{
    CleanupConfig, Config, HttpConfig, LimitsConfig, PushConfig, PushGatewayKind, ServerConfig, StorageConfig,
    StorageMode,
};
pub use error::{Error, Result};
pub use metrics::Metrics;
pub use push::{LogGateway, PushGateway, WakeUp, WebhookGateway};
pub use server::{KEY_FILE, Relay};
pub use state::State;
pub use storage::{STORE_FILE, Storage};
pub use store::RECORD_OVERHEAD_BYTES;
