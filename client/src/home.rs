//! The device's own folder (`ZEROK_HOME`, default `<config dir>/zerok`): the default vault
//! URL (`config.json`), one device key per vault (`vaults/<vault-id>.json`, mode 0600) and
//! what this device last saw of each vault (`seen/<vault-id>.json`, see `seen`).

use std::{
    fs,
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;
use zerok_core::{Key32, SlotId, VaultId};
use zerok_vault::DeviceKey;

/// The device folder.
#[derive(Clone, Debug)]
pub struct Home {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize, Default)]
struct HomeConfig {
    vault: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct DeviceFile {
    vault_id: String,
    url: String,
    slot: String,
    key: String,
}

impl Home {
    /// `ZEROK_HOME`, else the platform config dir + `zerok`.
    ///
    /// # Errors
    /// When neither is available.
    pub fn locate() -> Result<Self> {
        let dir = match std::env::var_os("ZEROK_HOME") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => dirs::config_dir().context("no config folder; set ZEROK_HOME")?.join("zerok"),
        };
        Ok(Self { dir })
    }

    /// A home at an explicit folder.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ensure(&self, sub: &Path) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(sub)
            .with_context(|| format!("creating {}", sub.display()))
    }

    pub(crate) fn write_private(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.ensure(path.parent().expect("file in a folder"))?;
        let tmp = path.with_extension("tmp");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(bytes).and_then(|_| f.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }

    /// The vault URL `init` or `zerok-restore` last set up on this device.
    pub fn default_vault(&self) -> Option<String> {
        let text = fs::read_to_string(self.dir.join("config.json")).ok()?;
        serde_json::from_str::<HomeConfig>(&text).ok()?.vault
    }

    /// Records the default vault URL.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn set_default_vault(&self, url: &str) -> Result<()> {
        let cfg = HomeConfig { vault: Some(url.to_string()) };
        self.write_private(&self.dir.join("config.json"), &serde_json::to_vec_pretty(&cfg)?)
    }

    fn device_path(&self, vault: &VaultId) -> PathBuf {
        self.dir.join("vaults").join(format!("{vault}.json"))
    }

    /// This device's key to a vault, if it has one.
    ///
    /// # Errors
    /// When the key file exists but is damaged.
    pub fn device_key(&self, vault: &VaultId) -> Result<Option<DeviceKey>> {
        let path = self.device_path(vault);
        let Ok(mut text) = fs::read_to_string(&path) else {
            return Ok(None);
        };
        let parsed: Result<DeviceFile, _> = serde_json::from_str(&text);
        text.zeroize();
        let mut file = parsed.with_context(|| format!("damaged device key file {}", path.display()))?;
        let mut raw = [0u8; 32];
        let ok = hex::decode_to_slice(&file.key, &mut raw).is_ok();
        file.key.zeroize();
        anyhow::ensure!(ok, "damaged device key file {}", path.display());
        let slot =
            SlotId::from_hex(&file.slot).with_context(|| format!("damaged device key file {}", path.display()))?;
        let key = Key32::from_bytes(raw);
        raw.zeroize();
        Ok(Some(DeviceKey { slot, key }))
    }

    /// The vault this device last opened at `url` with a key of its own, and that key
    /// (`None` when no key file names the URL): lets a vault be opened in one round trip,
    /// its config and key slot read at once.
    ///
    /// # Errors
    /// When the matching key file is damaged.
    pub fn device_key_for_url(&self, url: &str) -> Result<Option<(VaultId, DeviceKey)>> {
        let Ok(entries) = fs::read_dir(self.dir.join("vaults")) else { return Ok(None) };
        for entry in entries.flatten() {
            let Ok(mut text) = fs::read_to_string(entry.path()) else { continue };
            #[derive(Deserialize)]
            struct Named {
                vault_id: String,
                url: String,
            }
            let named = serde_json::from_str::<Named>(&text);
            text.zeroize();
            let Ok(named) = named else { continue };
            let Ok(id) = VaultId::from_hex(&named.vault_id) else { continue };
            if named.url == url
                && let Some(key) = self.device_key(&id)?
            {
                return Ok(Some((id, key)));
            }
        }
        Ok(None)
    }

    /// Stores this device's key to a vault (mode 0600).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save_device_key(&self, vault: &VaultId, url: &str, key: &DeviceKey) -> Result<()> {
        let mut file = DeviceFile {
            vault_id: vault.to_string(),
            url: url.to_string(),
            slot: key.slot.to_string(),
            key: hex::encode(key.key.expose()),
        };
        let mut bytes = serde_json::to_vec_pretty(&file)?;
        file.key.zeroize();
        let result = self.write_private(&self.device_path(vault), &bytes);
        bytes.zeroize();
        result
    }
}
