//! `relay.toml`: plain data with documented defaults; unknown keys are errors. Command-line
//! flags and `ZEROK_RELAY_*` variables override the file.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// QUIC endpoint.
    pub server: ServerConfig,
    /// Where and how messages are kept.
    pub storage: StorageConfig,
    /// Abuse limits.
    pub limits: LimitsConfig,
    /// Health and metrics over HTTP.
    pub http: HttpConfig,
    /// Expiry sweeps.
    pub cleanup: CleanupConfig,
    /// Waking offline devices through mobile push.
    pub push: PushConfig,
}

/// Which push gateway wakes offline devices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PushGatewayKind {
    /// None: REGISTER_PUSH is refused (`INVALID_PUSH_TOKEN`).
    None,
    /// Wakes are written to the log (the default).
    #[default]
    Log,
    /// Wakes are POSTed as JSON to `webhook-url` (an operator's APNs/FCM bridge).
    Webhook,
}

/// Push settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PushConfig {
    /// `none`, `log` (default) or `webhook`.
    pub gateway: PushGatewayKind,
    /// With `webhook`: where wakes are POSTed.
    pub webhook_url: Option<String>,
    /// One device is woken at most this often. Default 30.
    pub min_interval_secs: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self { gateway: PushGatewayKind::Log, webhook_url: None, min_interval_secs: 30 }
    }
}

/// QUIC endpoint settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerConfig {
    /// UDP address to listen on. Default `0.0.0.0:4433`.
    pub listen: SocketAddr,
    /// Use iroh's public relay servers for hole punching (off: self-hosted, LAN, loopback).
    pub iroh_relays: bool,
    /// Publish and look up endpoint addresses through iroh's DNS discovery (off by default).
    pub discovery: bool,
    /// Announce the relay on the local network (mDNS), so devices there that have mDNS on
    /// dial it by its id alone (off by default).
    pub mdns: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { listen: "0.0.0.0:4433".parse().expect("valid"), iroh_relays: false, discovery: false, mdns: false }
    }
}

/// Storage mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageMode {
    /// Local store with TTL (default).
    #[default]
    Transit,
    /// Payloads kept forever in object storage (`object-store`), metadata local.
    Vault,
}

/// Storage settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct StorageConfig {
    /// Folder for the store and the relay's identity key. Default `./zerok-relay-data`.
    pub data_dir: PathBuf,
    /// `transit` (default) or `vault`.
    pub mode: StorageMode,
    /// Vault mode: where payloads are kept, as a vault URL (`s3://bucket/prefix` with the
    /// `AWS_*` variables, `file:///path`, or a plain path).
    pub object_store: Option<String>,
    /// Largest message payload. Default 1,000,000 bytes (fits a 1 MiB frame).
    pub max_blob_bytes: u64,
    /// Bytes one group may keep: payloads plus 256 per message. Default 100 MiB.
    pub max_group_bytes: u64,
    /// Bytes all groups together may keep (0: no cap but free space). Default 0.
    pub max_total_bytes: u64,
    /// Pushes are refused while the data folder's file system has less free (0: never).
    /// Default 128 MiB.
    pub min_free_bytes: u64,
    /// Message lifetime when the pusher gives none. Default 7 days.
    pub default_ttl_secs: u64,
    /// Longest lifetime a pusher may ask for. Default 30 days.
    pub max_ttl_secs: u64,
    /// Vault mode: largest attachment archived (plaintext bytes). Default 100 MiB.
    pub max_content_bytes: u64,
    /// Vault mode: attachment bytes one group may archive. Default 10 GiB.
    pub max_group_content_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: "zerok-relay-data".into(),
            mode: StorageMode::Transit,
            object_store: None,
            max_blob_bytes: 1_000_000,
            max_group_bytes: 100 << 20,
            max_total_bytes: 0,
            min_free_bytes: 128 << 20,
            default_ttl_secs: 7 * 24 * 3600,
            max_ttl_secs: 30 * 24 * 3600,
            max_content_bytes: 100 << 20,
            max_group_content_bytes: 10 << 30,
        }
    }
}

/// Abuse limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitsConfig {
    /// Requests per device per minute. Default 600.
    pub messages_per_minute: u32,
    /// Requests per group per second. Default 500.
    pub group_per_second: u32,
    /// Requests across all groups per second. Default 5,000.
    pub global_per_second: u32,
    /// Seconds a new connection has to complete HELLO. Default 10.
    pub hello_timeout_secs: u64,
    /// Connections waiting for HELLO; when full, the oldest is closed. Default 2,048.
    pub max_pending: usize,
    /// Connections waiting for HELLO from one IP address. Default 32.
    pub max_pending_per_ip: usize,
    /// Sessions (connections past HELLO). Default 10,000.
    pub max_sessions: usize,
    /// Sessions one IP address (an IPv6 /64) may hold. Default 256.
    pub max_sessions_per_ip: usize,
    /// Seconds a session that is not a member's (it proved the group secret but is in no
    /// roster: a device joining) may stay open. Default 60.
    pub guest_session_secs: u64,
    /// Requests one connection may have open at once. Default 16.
    pub max_streams_per_connection: u32,
    /// Seconds a request's frame has to arrive, and its reply to be taken. Default 10.
    pub request_timeout_secs: u64,
    /// Members of one group's roster. Default 500.
    pub max_group_devices: usize,
    /// Device names are cut to this many characters. Default 256.
    pub max_device_name_chars: usize,
    /// Most messages per PULL. Default 1,000.
    pub max_pull_limit: u32,
    /// Largest frame accepted. Default 1 MiB.
    pub max_frame_bytes: usize,
    /// Invite lookups per connection before it is closed. Default 5.
    pub invite_lookups_per_connection: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            messages_per_minute: 600,
            group_per_second: 500,
            global_per_second: 5_000,
            hello_timeout_secs: 10,
            max_pending: 2_048,
            max_pending_per_ip: 32,
            max_sessions: 10_000,
            max_sessions_per_ip: 256,
            guest_session_secs: 60,
            max_streams_per_connection: 16,
            request_timeout_secs: 10,
            max_group_devices: 500,
            max_device_name_chars: 256,
            max_pull_limit: 1_000,
            max_frame_bytes: zerok_core::sync::frame::MAX_FRAME_BYTES,
            invite_lookups_per_connection: 5,
        }
    }
}

/// HTTP settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpConfig {
    /// Serve `/health` and `/metrics`. Default true.
    pub enabled: bool,
    /// TCP address. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { enabled: true, listen: "127.0.0.1:8080".parse().expect("valid") }
    }
}

/// Expiry sweeps.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CleanupConfig {
    /// Seconds between sweeps. Default 3600.
    pub interval_secs: u64,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self { interval_secs: 3600 }
    }
}

/// Bytes a device's entry in PRESENCE needs besides its name.
pub const DEVICE_ENTRY_BYTES: usize = 160;

impl Config {
    /// Parses TOML text.
    ///
    /// # Errors
    /// Unknown keys, wrong types.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Applies `ZEROK_RELAY_LISTEN`, `ZEROK_RELAY_HTTP`, `ZEROK_RELAY_DATA_DIR`,
    /// `ZEROK_RELAY_OBJECT_STORE`.
    ///
    /// # Errors
    /// An address that does not parse.
    pub fn apply_env(&mut self) -> Result<(), String> {
        if let Ok(v) = std::env::var("ZEROK_RELAY_LISTEN") {
            self.server.listen = v.parse().map_err(|e| format!("ZEROK_RELAY_LISTEN={v:?}: {e}"))?;
        }
        if let Ok(v) = std::env::var("ZEROK_RELAY_HTTP") {
            self.http.listen = v.parse().map_err(|e| format!("ZEROK_RELAY_HTTP={v:?}: {e}"))?;
        }
        if let Ok(v) = std::env::var("ZEROK_RELAY_DATA_DIR") {
            self.storage.data_dir = v.into();
        }
        if let Ok(v) = std::env::var("ZEROK_RELAY_OBJECT_STORE") {
            self.storage.object_store = Some(v);
        }
        Ok(())
    }

    /// Settings that only make sense together.
    ///
    /// # Errors
    /// Vault mode without an object store, or an object store in transit mode; a device
    /// list that would not fit one frame.
    pub fn check(&self) -> Result<(), String> {
        let l = &self.limits;
        let list = l.max_group_devices.saturating_mul(4 * l.max_device_name_chars + DEVICE_ENTRY_BYTES);
        if list.saturating_add(DEVICE_ENTRY_BYTES) > l.max_frame_bytes {
            return Err(format!(
                "[limits] max-group-devices = {} with max-device-name-chars = {} would not fit the device list in one \
                 frame of max-frame-bytes = {}",
                l.max_group_devices, l.max_device_name_chars, l.max_frame_bytes
            ));
        }
        match (self.storage.mode, &self.storage.object_store) {
            (StorageMode::Vault, None) => {
                Err("[storage] mode = \"vault\" needs object-store = \"s3://bucket/prefix\" (or a folder)".into())
            }
            (StorageMode::Transit, Some(_)) => Err("[storage] object-store is used only with mode = \"vault\"".into()),
            _ if self.push.gateway == PushGatewayKind::Webhook && self.push.webhook_url.is_none() => {
                Err("[push] gateway = \"webhook\" needs webhook-url = \"https://…\"".into())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_keys() {
        let c = Config::from_toml("[storage]\ndefault-ttl-secs = 60\n").unwrap();
        assert_eq!(c.storage.default_ttl_secs, 60);
        assert_eq!(c.limits.max_frame_bytes, 1 << 20);
        assert!(Config::from_toml("[storage]\nttl = 60\n").unwrap_err().contains("unknown field"));
        assert!(Config::from_toml("[nonsense]\n").is_err());
        let vault = Config::from_toml("[storage]\nmode = \"vault\"\n").unwrap();
        assert!(vault.check().unwrap_err().contains("object-store"));
        let vault = Config::from_toml("[storage]\nmode = \"vault\"\nobject-store = \"s3://b/relay\"\n").unwrap();
        assert_eq!((vault.storage.mode, vault.check()), (StorageMode::Vault, Ok(())));
        let crowded = Config::from_toml("[limits]\nmax-group-devices = 5000\n").unwrap();
        assert!(crowded.check().unwrap_err().contains("one frame"), "the device list must fit a frame");
    }

    #[test]
    fn the_example_files_parse() {
        let c = Config::from_toml(include_str!("../relay.example.toml")).unwrap();
        assert_eq!(c.limits.max_frame_bytes, Config::default().limits.max_frame_bytes);
        let v = Config::from_toml(include_str!("../relay.vault.example.toml")).unwrap();
        assert_eq!((v.storage.mode, v.check()), (StorageMode::Vault, Ok(())));
    }
}
