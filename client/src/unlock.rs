//! Opening a vault with the best secret at hand: an explicit recovery key, else this
//! device's key, else a passphrase from `ZEROK_PASSPHRASE`; and giving a remote vault its
//! metadata cache.

use std::path::Path;

use zerok_core::RecoveryKey;
use zerok_vault::{Cache, Location, Secret, Vault};

use crate::{Error, Home, Result};

/// Which secret opened the vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The recovery key.
    Recovery,
    /// This device's key slot.
    Device,
    /// A passphrase slot.
    Passphrase,
}

/// An unlocked vault and how it was opened.
pub struct Unlocked {
    /// The vault.
    pub vault: Vault,
    /// The secret that opened it.
    pub via: KeySource,
}

/// The recovery key from `--recovery-key-file`, else `ZEROK_RECOVERY_KEY`; checksum
/// verified (a typo fails here, before any network access).
///
/// # Errors
/// Unreadable file or an invalid key.
pub fn read_recovery_key(file: Option<&Path>) -> Result<Option<RecoveryKey>> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?,
        None => match std::env::var("ZEROK_RECOVERY_KEY") {
            Ok(t) if !t.trim().is_empty() => t,
            _ => return Ok(None),
        },
    };
    RecoveryKey::parse(text.trim()).map(Some).map_err(|e| Error::WrongKey(format!("recovery key: {e}")))
}

/// Opens the vault at `url`.
///
/// # Errors
/// Bad URL, no vault, newer format, wrong key, or no secret available.
pub async fn unlock(url: &str, recovery: Option<&RecoveryKey>, home: &Home) -> Result<Unlocked> {
    let backend = Location::parse(url)?.open(url)?;
    if recovery.is_none()
        && let Some((id, device)) = home.device_key_for_url(url)?
    {
        // The key this device keeps for the URL: config and slot are read in one round trip.
        match Vault::open(backend.clone(), Secret::Device(&device)).await {
            Ok(vault) if vault.config().vault_id == id => return Ok(Unlocked { vault, via: KeySource::Device }),
            Err(e @ zerok_vault::Error::Store { .. }) => return Err(e.into()),
            // Another vault at the URL now, or the slot is gone: the usual way says which.
            _ => {}
        }
    }
    let vault_id = Vault::peek(&backend).await?;
    if let Some(key) = recovery {
        let vault = Vault::open(backend, Secret::Recovery(key)).await.map_err(refused("recovery key refused"))?;
        return Ok(Unlocked { vault, via: KeySource::Recovery });
    }
    if let Some(device) = home.device_key(&vault_id)? {
        let vault = Vault::open(backend, Secret::Device(&device)).await.map_err(refused(
            "this device's key slot no longer opens the vault (was it removed?); use the recovery key",
        ))?;
        return Ok(Unlocked { vault, via: KeySource::Device });
    }
    if let Ok(pass) = std::env::var("ZEROK_PASSPHRASE") {
        let vault = Vault::open(backend, Secret::Passphrase(&pass)).await.map_err(refused("passphrase refused"))?;
        return Ok(Unlocked { vault, via: KeySource::Passphrase });
    }
    Err(Error::State(format!(
        "this device has no key for the vault at {url}: give the recovery key (ZEROK_RECOVERY_KEY)"
    )))
}

/// A vault's refusal of a secret, said as `what`; any other failure as it is.
fn refused(what: &'static str) -> impl FnOnce(zerok_vault::Error) -> Error {
    move |e| match e {
        zerok_vault::Error::WrongKey => Error::WrongKey(what.into()),
        e => e.into(),
    }
}

/// Opens the vault at `url` as [`unlock`] does, reading a remote vault's metadata through
/// this machine's cache ([`Cache::default_root`], bounded by `ZEROK_CACHE_MAX_MB`, default
/// 2 GiB); with this device's key, from the cached config and key slot, without a round
/// trip (the slot is confirmed with the first snapshot listing). A local folder is read as
/// fast as a cache would be, and a cache that cannot be opened is skipped.
///
/// # Errors
/// As [`unlock`].
pub async fn unlock_cached(url: &str, recovery: Option<&RecoveryKey>, home: &Home) -> Result<Unlocked> {
    let backend = Location::parse(url)?.open(url)?;
    if backend.is_local() {
        return unlock(url, recovery, home).await;
    }
    if recovery.is_none()
        && let Some((id, device)) = home.device_key_for_url(url)?
        && let Some(cache) = open_cache(&id)
        && let Some(vault) = Vault::open_cached(backend, &device, cache)?
    {
        return Ok(Unlocked { vault, via: KeySource::Device });
    }
    let mut unlocked = unlock(url, recovery, home).await?;
    unlocked.vault = cached(unlocked.vault);
    Ok(unlocked)
}

/// `vault` with this machine's metadata cache (see [`unlock_cached`]) when it lives in a
/// remote store and a cache can be opened; else as it is.
pub fn cached(vault: Vault) -> Vault {
    if vault.backend().is_local() {
        return vault;
    }
    match open_cache(&vault.config().vault_id) {
        Some(cache) => vault.with_cache(cache),
        None => vault,
    }
}

fn open_cache(vault: &zerok_core::VaultId) -> Option<Cache> {
    let root = Cache::default_root()?;
    let max = std::env::var("ZEROK_CACHE_MAX_MB")
        .ok()
        .and_then(|mb| mb.parse::<u64>().ok())
        .map_or(zerok_vault::DEFAULT_CACHE_BYTES, |mb| mb << 20);
    Cache::open(&root, vault, max)
        .inspect_err(|e| tracing::warn!(error = %e, "no metadata cache; reading the store"))
        .ok()
}
