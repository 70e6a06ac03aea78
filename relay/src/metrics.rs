//! Counters for `/metrics` (Prometheus text) and `/health`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Relay counters; all monotonic except `sessions_active`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Sessions now open.
    pub sessions_active: AtomicU64,
    /// Connections accepted.
    pub connections_total: AtomicU64,
    /// Connections refused before the handshake (the address's share of the waiting room
    /// was full).
    pub connections_refused_total: AtomicU64,
    /// Pushes stored.
    pub pushes_total: AtomicU64,
    /// Pulls served.
    pub pulls_total: AtomicU64,
    /// Payload bytes received.
    pub bytes_received_total: AtomicU64,
    /// NOTIFYs sent.
    pub notifies_total: AtomicU64,
    /// Requests refused by a rate limit.
    pub rate_limited_total: AtomicU64,
    /// HELLOs refused (bad proof, revoked, version).
    pub hello_refused_total: AtomicU64,
    /// Connections closed for malformed or oversized frames.
    pub bad_frames_total: AtomicU64,
    /// Messages removed by expiry or acknowledgement.
    pub expired_total: AtomicU64,
}

impl Metrics {
    /// Adds one.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Prometheus exposition text; `store` = (groups, messages, bytes).
    pub fn render(&self, store: (u64, u64, u64), uptime_secs: u64) -> String {
        let g = |c: &AtomicU64| c.load(Relaxed);
        let mut out = String::new();
        let mut line = |name: &str, kind: &str, help: &str, value: u64| {
            out.push_str(&format!(
                "# HELP zerok_relay_{name} {help}\n# TYPE zerok_relay_{name} {kind}\nzerok_relay_{name} {value}\n"
            ));
        };
        line("sessions_active", "gauge", "Sessions open now.", g(&self.sessions_active));
        line("connections_total", "counter", "Connections accepted.", g(&self.connections_total));
        let refused = g(&self.connections_refused_total);
        line("connections_refused_total", "counter", "Connections refused before HELLO (per-address cap).", refused);
        line("pushes_total", "counter", "Messages stored.", g(&self.pushes_total));
        line("pulls_total", "counter", "Pulls served.", g(&self.pulls_total));
        line("bytes_received_total", "counter", "Payload bytes received.", g(&self.bytes_received_total));
        line("notifies_total", "counter", "NOTIFY messages sent.", g(&self.notifies_total));
        line("rate_limited_total", "counter", "Requests refused by rate limits.", g(&self.rate_limited_total));
        line("hello_refused_total", "counter", "HELLOs refused.", g(&self.hello_refused_total));
        line("bad_frames_total", "counter", "Connections closed for bad frames.", g(&self.bad_frames_total));
        line("expired_total", "counter", "Messages removed by TTL or acknowledgement.", g(&self.expired_total));
        line("storage_groups", "gauge", "Groups with a cursor.", store.0);
        line("storage_messages", "gauge", "Messages stored.", store.1);
        line("storage_bytes", "gauge", "Bytes stored, as quotas count them.", store.2);
        line("uptime_seconds", "gauge", "Seconds since start.", uptime_secs);
        out
    }
}
