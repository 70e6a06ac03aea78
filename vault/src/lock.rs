//! Vault locks, only to keep `prune` from deleting what a running backup still needs.
//!
//! Backups write `locks/<random id>` (shared) and prune writes one marked exclusive; each
//! writes its lock first (a conditional create: never overwrites) and then lists the others,
//! so of two that race at least one sees the other and backs off. Locks older than
//! [`STALE_AFTER_SECS`] without refresh belong to dead processes and are ignored. Backups
//! never wait for each other: several devices may back up into one vault at once.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use zerok_core::IndexId;

use crate::{
    Error, Result, Vault,
    format::{Kind, names, open_msgpack, seal_msgpack},
};

/// A lock not refreshed for this long is ignored.
pub const STALE_AFTER_SECS: i64 = 30 * 60;
/// How often a held lock is rewritten to show it is alive.
pub const REFRESH_SECS: u64 = 5 * 60;

#[derive(Serialize, Deserialize)]
struct LockBody {
    exclusive: bool,
    hostname: String,
    pid: u32,
    time: i64,
}

/// A held lock. [`Lock::release`] removes it; a lock dropped without release (its
/// operation was cancelled) is removed in the background; one left by a killed process is
/// ignored once stale, or at once on the same host when its process is gone.
pub struct Lock {
    name: String,
    id: IndexId,
    exclusive: bool,
    held: Option<crate::Backend>,
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let (Some(backend), Ok(rt)) = (self.held.take(), tokio::runtime::Handle::try_current()) {
            let name = std::mem::take(&mut self.name);
            rt.spawn(async move {
                let _ = backend.delete(&name).await;
            });
        }
    }
}

/// Whether a lock's holder is certainly gone: same host, and no such process.
fn holder_is_dead(body: &LockBody) -> bool {
    body.hostname == crate::hostname() && !std::path::Path::new(&format!("/proc/{}", body.pid)).exists()
}

impl Lock {
    /// Takes a shared (backup) or exclusive (prune) lock.
    ///
    /// # Errors
    /// [`Error::Locked`] naming the conflicting holder.
    pub async fn acquire(vault: &Vault, exclusive: bool) -> Result<Self> {
        let id = IndexId::random();
        let mut lock = Lock { name: format!("{}/{id}", names::LOCKS), id, exclusive, held: None };
        lock.write(vault, true).await?;
        lock.held = Some(vault.backend().clone());
        for (name, _) in vault.backend().list(names::LOCKS).await? {
            if name == lock.name {
                continue;
            }
            let Ok(other_id) = IndexId::from_hex(names::id_part(&name)) else {
                continue;
            };
            let body: LockBody = match vault.backend().get(&name).await {
                Ok(bytes) => match open_msgpack(vault.keys().metadata(), Kind::Lock, &other_id.0, &name, &bytes) {
                    Ok(body) => body,
                    Err(_) => continue,
                },
                Err(_) => continue,
            };
            if crate::now_secs() - body.time > STALE_AFTER_SECS
                || !(exclusive || body.exclusive)
                || holder_is_dead(&body)
            {
                continue;
            }
            lock.release(vault).await;
            let what = if body.exclusive { "prune" } else { "a backup" };
            return Err(Error::Locked(format!(
                "{what} is running on {} (pid {}); try again when it ends",
                body.hostname, body.pid
            )));
        }
        Ok(lock)
    }

    async fn write(&self, vault: &Vault, first: bool) -> Result<()> {
        let body = LockBody {
            exclusive: self.exclusive,
            hostname: crate::hostname(),
            pid: std::process::id(),
            time: crate::now_secs(),
        };
        let bytes = Bytes::from(seal_msgpack(vault.keys().metadata(), Kind::Lock, &self.id.0, &body));
        if first {
            vault.backend().put_new(&self.name, bytes).await
        } else {
            vault.backend().put(&self.name, bytes).await
        }
    }

    /// Rewrites the lock's time so others see it is alive.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn refresh(&self, vault: &Vault) -> Result<()> {
        self.write(vault, false).await
    }

    /// Removes the lock (best effort: a lock left behind goes stale).
    pub async fn release(mut self, vault: &Vault) {
        self.held = None;
        if let Err(e) = vault.backend().delete(&self.name).await {
            tracing::warn!(error = %e, "could not remove lock; it will go stale");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InitOptions, Location, Vault};

    async fn vault() -> Vault {
        Vault::init(Location::Memory.open("memory://").unwrap(), InitOptions::default()).await.unwrap().vault
    }

    #[tokio::test]
    async fn backups_share_but_prune_excludes() {
        let vault = vault().await;
        let a = Lock::acquire(&vault, false).await.unwrap();
        let b = Lock::acquire(&vault, false).await.unwrap();
        let err = Lock::acquire(&vault, true).await.err().expect("prune must wait for backups");
        assert!(err.to_string().contains("a backup is running"), "{err}");
        a.release(&vault).await;
        b.release(&vault).await;
        let prune = Lock::acquire(&vault, true).await.unwrap();
        let err = Lock::acquire(&vault, false).await.err().expect("backup must wait for prune");
        assert!(err.to_string().contains("prune is running"), "{err}");
        prune.release(&vault).await;
        assert!(vault.backend().list(names::LOCKS).await.unwrap().is_empty(), "refused attempts leave no lock");
    }

    #[tokio::test]
    async fn stale_locks_are_ignored() {
        let vault = vault().await;
        let mut stale = Lock {
            name: format!("{}/{}", names::LOCKS, IndexId::random()),
            id: IndexId::random(),
            exclusive: false,
            held: None,
        };
        stale.id = IndexId::from_hex(names::id_part(&stale.name)).unwrap();
        let body = LockBody {
            exclusive: false,
            hostname: "elsewhere".into(),
            pid: 1,
            time: crate::now_secs() - STALE_AFTER_SECS - 1,
        };
        let bytes = Bytes::from(seal_msgpack(vault.keys().metadata(), Kind::Lock, &stale.id.0, &body));
        vault.backend().put(&stale.name, bytes).await.unwrap();
        Lock::acquire(&vault, true).await.unwrap().release(&vault).await;
    }
}
