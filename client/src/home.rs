//! The device's own state: the default vault URL (`config.json`), one device key per vault
//! (`vaults/<vault-id>.json`), what this device last saw of each vault
//! (`seen/<vault-id>.json`, see `seen`) and its sync state (`sync/…`), in a [`StateStore`]:
//! files under `ZEROK_HOME` (default `<config dir>/zerok`, mode 0600) for the programs, or
//! whatever store an app gives.

use std::{path::PathBuf, sync::Arc};

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;
use zerok_core::{Key32, SlotId, VaultId};
use zerok_vault::DeviceKey;

use crate::{
    Error, Result,
    state_store::{FileStore, StateStore},
    sync::SyncHome,
};

/// A device's state.
#[derive(Clone, Debug)]
pub struct Home {
    store: Arc<dyn StateStore>,
    /// Where attachments are kept (iroh's blob store keeps them as files).
    content: PathBuf,
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
            _ => {
                dirs::config_dir().ok_or_else(|| Error::State("no config folder; set ZEROK_HOME".into()))?.join("zerok")
            }
        };
        Ok(Self::at(dir))
    }

    /// A home of files at an explicit folder.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let content = dir.join("sync").join("content");
        Self { store: Arc::new(FileStore::new(dir)), content }
    }

    /// A home in `store` (a [`crate::MemoryStore`], or the app's own over the OS
    /// keychain), attachments under `content`.
    pub fn with_store(store: Arc<dyn StateStore>, content: impl Into<PathBuf>) -> Self {
        Self { store, content: content.into() }
    }

    /// Its store.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// The sync state in the same store.
    pub fn sync(&self) -> SyncHome {
        SyncHome::with_store(self.store.clone(), self.content.clone())
    }

    /// The vault URL `init` or `zerok-restore` last set up on this device.
    pub fn default_vault(&self) -> Option<String> {
        let bytes = self.store.get("config.json").ok()??;
        serde_json::from_slice::<HomeConfig>(&bytes).ok()?.vault
    }

    /// Records the default vault URL.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn set_default_vault(&self, url: &str) -> Result<()> {
        let cfg = HomeConfig { vault: Some(url.to_string()) };
        self.store.put("config.json", &serde_json::to_vec_pretty(&cfg).expect("config encodes"), true)
    }

    fn device_name(vault: &VaultId) -> String {
        format!("vaults/{vault}.json")
    }

    /// This device's key to a vault, if it has one.
    ///
    /// # Errors
    /// When the key file exists but is damaged.
    pub fn device_key(&self, vault: &VaultId) -> Result<Option<DeviceKey>> {
        let name = Self::device_name(vault);
        let Some(text) = self.store.get(&name)? else {
            return Ok(None);
        };
        let parsed: Result<DeviceFile, _> = serde_json::from_slice(&text);
        let damaged = || Error::State(format!("damaged device key file {}", self.store.locate(&name)));
        let mut file = parsed.map_err(|_| damaged())?;
        let slot = SlotId::from_hex(&file.slot);
        let mut raw = [0u8; 32];
        let ok = hex::decode_to_slice(&file.key, &mut raw).is_ok();
        file.key.zeroize();
        let (true, Ok(slot)) = (ok, slot) else {
            raw.zeroize();
            return Err(damaged());
        };
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
        for file in self.store.list("vaults")? {
            let Ok(Some(text)) = self.store.get(&format!("vaults/{file}")) else { continue };
            #[derive(Deserialize)]
            struct Named {
                vault_id: String,
                url: String,
            }
            let Ok(named) = serde_json::from_slice::<Named>(&text) else { continue };
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
        let mut bytes = serde_json::to_vec_pretty(&file).expect("key file encodes");
        file.key.zeroize();
        let result = self.store.put(&Self::device_name(vault), &bytes, true);
        bytes.zeroize();
        result
    }
}
