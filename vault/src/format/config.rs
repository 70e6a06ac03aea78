//! `config`: the one plaintext, mutable-never object. Read before any key is known (to
//! refuse a newer format early), then authenticated with the config MAC.
//!
//! Layout: `"ZEROKCFG" ‖ version (u32 LE) ‖ body_len (u32 LE) ‖ body ‖ mac (32)`, where body
//! is a MessagePack map (see [`Config`]) and `mac = BLAKE3-keyed(config-mac key, all bytes
//! before it)`.

use serde::{Deserialize, Serialize};
use zerok_core::{VaultId, VaultKeys};

use super::FORMAT_VERSION;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"ZEROKCFG";
const MAX_BODY_BYTES: usize = 64 << 10;

/// Chunker parameters, fixed for the life of the vault (changing them would break dedup).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// Minimum chunk size in bytes.
    pub min_bytes: u32,
    /// Average chunk size in bytes.
    pub avg_bytes: u32,
    /// Maximum chunk size in bytes.
    pub max_bytes: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        Self { min_bytes: 128 << 10, avg_bytes: 512 << 10, max_bytes: 2 << 20 }
    }
}

/// Vault-wide settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Random id fixed at `init`.
    pub vault_id: VaultId,
    /// FastCDC parameters.
    pub chunker: ChunkerParams,
    /// zstd level for chunks and metadata.
    pub compression_level: i32,
    /// Target pack size in bytes.
    pub pack_bytes: u32,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// An append-only vault (`init --append-only`): devices write with conditional
    /// creates and delete nothing but their locks; deleting needs the admin credentials
    /// (see [`crate::append_only`]). Absent in older configs (false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub append_only: bool,
}

/// The version number in a config, readable without any key.
///
/// # Errors
/// [`Error::Corrupt`] when the magic is wrong; [`Error::Unsupported`] for a newer version.
pub fn check_version(bytes: &[u8]) -> Result<u32> {
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(Error::corrupt("config", "not a zerok vault config (bad magic)"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version > FORMAT_VERSION || version == 0 {
        return Err(Error::Unsupported { version, supported: FORMAT_VERSION });
    }
    Ok(version)
}

impl Config {
    /// Encodes and MACs the config.
    pub fn encode(&self, keys: &VaultKeys) -> Vec<u8> {
        let body = rmp_serde::to_vec_named(self).expect("config encodes");
        let mut out = Vec::with_capacity(16 + body.len() + 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        let mac = keys.config_mac(&out);
        out.extend_from_slice(&mac);
        out
    }

    /// Decodes a config, checking version and MAC.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a newer version; [`Error::Corrupt`] when it is malformed
    /// or its MAC does not verify under `keys`.
    pub fn decode(bytes: &[u8], keys: &VaultKeys) -> Result<Self> {
        check_version(bytes)?;
        let body_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
        if body_len > MAX_BODY_BYTES || bytes.len() != 16 + body_len + 32 {
            return Err(Error::corrupt("config", "length fields do not match"));
        }
        let (signed, mac) = bytes.split_at(16 + body_len);
        if keys.config_mac(signed) != mac {
            return Err(Error::corrupt("config", "MAC does not verify (altered, or keys of another vault)"));
        }
        rmp_serde::from_slice(&signed[16..]).map_err(|e| Error::corrupt("config", e.to_string()))
    }
}

/// The vault id of a config, read without verifying its MAC (only to find which local
/// device key to try; the MAC is checked once the vault is unlocked).
///
/// # Errors
/// As [`check_version`], or [`Error::Corrupt`] when the body does not parse.
pub fn peek_vault_id(bytes: &[u8]) -> Result<VaultId> {
    check_version(bytes)?;
    let body_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let body = bytes.get(16..16 + body_len.min(MAX_BODY_BYTES)).ok_or_else(|| Error::corrupt("config", "truncated"))?;
    let cfg: Config = rmp_serde::from_slice(body).map_err(|e| Error::corrupt("config", e.to_string()))?;
    Ok(cfg.vault_id)
}
