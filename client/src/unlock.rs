//! Opening a vault with the best secret at hand: an explicit recovery key, else this
//! device's key, else a passphrase from `ZEROK_PASSPHRASE`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use zerok_core::RecoveryKey;
use zerok_vault::{Location, Secret, Vault};

use crate::Home;

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
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading recovery key file {}", path.display()))?
        }
        None => match std::env::var("ZEROK_RECOVERY_KEY") {
            Ok(t) if !t.trim().is_empty() => t,
            _ => return Ok(None),
        },
    };
    Ok(Some(RecoveryKey::parse(text.trim())?))
}

/// Opens the vault at `url`.
///
/// # Errors
/// Bad URL, no vault, newer format, wrong key, or no secret available.
pub async fn unlock(url: &str, recovery: Option<&RecoveryKey>, home: &Home) -> Result<Unlocked> {
    let backend = Location::parse(url)?.open(url)?;
    let vault_id = Vault::peek(&backend).await?;
    if let Some(key) = recovery {
        let vault = Vault::open(backend, Secret::Recovery(key)).await.context("recovery key refused")?;
        return Ok(Unlocked { vault, via: KeySource::Recovery });
    }
    if let Some(device) = home.device_key(&vault_id)? {
        let vault = Vault::open(backend, Secret::Device(&device))
            .await
            .context("this device's key slot no longer opens the vault (was it removed?); use the recovery key")?;
        return Ok(Unlocked { vault, via: KeySource::Device });
    }
    if let Ok(pass) = std::env::var("ZEROK_PASSPHRASE") {
        let vault = Vault::open(backend, Secret::Passphrase(&pass)).await.context("passphrase refused")?;
        return Ok(Unlocked { vault, via: KeySource::Passphrase });
    }
    bail!("this device has no key for the vault at {url}: set ZEROK_RECOVERY_KEY or pass --recovery-key-file")
}
