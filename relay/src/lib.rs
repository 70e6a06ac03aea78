//! zerok-relay: the zero-knowledge relay. It stores and forwards encrypted sync messages
//! between the devices of a group, assigns per-group cursors, and learns nothing but
//! sizes and timing: it never holds a group secret and logs no group, device or blob id.
//!
//! # Layout
//! - `store`: [`Store`] — the durable transit store (redb).

mod store;

pub use store::{Pushed, Store, StoreError};
