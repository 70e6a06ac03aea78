//! Vault locks: which backups are running, the exclusive lock that keeps two prunes apart,
//! and the revocation that takes a stalled backup's protection away.
//!
//! Backups write `locks/<random id>` (shared) and refresh it every [`REFRESH_SECS`]; prune
//! writes one marked exclusive, then lists the others and stops if another live prune holds
//! one. Backups and prune do not wait for each other: prune collects in two steps and only
//! deletes what no lock it saw can still need (`prune`, FORMAT.md §5.1). Ages are measured
//! by the store's clock (each lock's `LastModified` against that of a lock just written),
//! never by this machine's. A lock whose holder is gone is revoked by writing
//! `revoked/<lock id>`, which its backup checks on every refresh and after its snapshot.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use zerok_core::IndexId;

use crate::{
    Error, Result, Vault,
    format::{Kind, names, open_msgpack, seal_msgpack},
};

/// A lock whose last write is older than this, by the store's clock, is stale.
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
/// operation was cancelled) is removed in the background; one left by a killed process goes
/// stale, or is dead at once to a reader on the same host.
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

/// Another process's lock as listed.
pub(crate) struct Held {
    /// Its id.
    pub id: IndexId,
    /// Stale by the store's clock, or its holder is certainly gone.
    pub ended: bool,
    /// A prune's lock.
    pub exclusive: bool,
    /// Host and pid, for messages ("?" when the body does not open).
    pub holder: String,
}

/// Whether a lock's holder is certainly gone: same host, and no such process.
fn holder_is_dead(body: &LockBody) -> bool {
    body.hostname == crate::hostname() && !std::path::Path::new(&format!("/proc/{}", body.pid)).exists()
}

/// `revoked/<lock id>`.
fn revocation(id: &IndexId) -> String {
    format!("{}/{id}", names::REVOKED)
}

impl Lock {
    /// Takes a shared (backup) or exclusive (prune) lock. An exclusive lock is refused while
    /// another live prune holds one.
    ///
    /// # Errors
    /// [`Error::Locked`] naming the other prune; storage errors.
    pub async fn acquire(vault: &Vault, exclusive: bool) -> Result<Self> {
        let id = IndexId::random();
        let mut lock = Lock { name: format!("{}/{id}", names::LOCKS), id, exclusive, held: None };
        if let Err(e) = lock.write(vault, true).await {
            // The write may have landed although the store reported failure.
            let _ = vault.backend().delete(&lock.name).await;
            return Err(e);
        }
        lock.held = Some(vault.backend().clone());
        if !exclusive {
            return Ok(lock);
        }
        let others = match lock.others(vault).await {
            Ok(others) => others,
            Err(e) => {
                lock.release(vault).await;
                return Err(e);
            }
        };
        if let Some(other) = others.iter().find(|o| o.exclusive && !o.ended) {
            let holder = other.holder.clone();
            lock.release(vault).await;
            return Err(Error::Locked(format!("prune is running on {holder}; try again when it ends")));
        }
        Ok(lock)
    }

    /// The store's clock now: when it wrote this lock last.
    ///
    /// # Errors
    /// Storage errors; [`Error::Revoked`] when the lock is gone.
    pub async fn store_now(&self, vault: &Vault) -> Result<i64> {
        vault.backend().modified(&self.name).await?.ok_or_else(|| self.revoked())
    }

    /// Every lock but this one, with whether it has ended (judged by the store's clock).
    ///
    /// # Errors
    /// Storage errors.
    pub(crate) async fn others(&self, vault: &Vault) -> Result<Vec<Held>> {
        let listed = vault.backend().list_twice(names::LOCKS).await?;
        let now = match listed.iter().find(|l| l.name == self.name) {
            Some(own) => own.modified,
            None => self.store_now(vault).await?,
        };
        let revoked = vault.backend().names_in(names::REVOKED).await?;
        let mut out = Vec::new();
        for l in listed.into_iter().filter(|l| l.name != self.name) {
            let Ok(id) = IndexId::from_hex(names::id_part(&l.name)) else {
                continue;
            };
            let body: Option<LockBody> = match vault.backend().get(&l.name).await {
                Ok(bytes) => open_msgpack(vault.keys().metadata(), Kind::Lock, &id.0, &l.name, &bytes).ok(),
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let stale = now - l.modified > STALE_AFTER_SECS;
            let ended = stale || revoked.contains(&id.to_string()) || body.as_ref().is_some_and(holder_is_dead);
            let holder = body.as_ref().map_or("?".into(), |b| format!("{} (pid {})", b.hostname, b.pid));
            // A lock that does not open counts as a prune's: it keeps other prunes out.
            out.push(Held { id, ended, exclusive: body.as_ref().is_none_or(|b| b.exclusive), holder });
        }
        Ok(out)
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
            vault.backend().replace(&self.name, bytes).await
        }
    }

    fn revoked(&self) -> Error {
        Error::Revoked(format!(
            "prune took this {} for abandoned (it stalled or was paused for over {} minutes)",
            if self.exclusive { "prune" } else { "backup" },
            STALE_AFTER_SECS / 60
        ))
    }

    /// Fails when prune has revoked this lock: its marker exists, or the lock itself is gone
    /// (revocation deletes it, and markers are swept after 30 days). Returns when the store
    /// last wrote the lock (its `LastModified`, store clock, Unix seconds).
    ///
    /// # Errors
    /// [`Error::Revoked`]; storage errors.
    pub async fn check(&self, vault: &Vault) -> Result<i64> {
        let marker = revocation(&self.id);
        let (marked, held) = tokio::join!(vault.backend().exists(&marker), vault.backend().modified(&self.name));
        match (marked?, held?) {
            (false, Some(written)) => Ok(written),
            _ => Err(self.revoked()),
        }
    }

    /// Rewrites the lock so others see it is alive, after checking it was not revoked.
    ///
    /// # Errors
    /// [`Error::Revoked`]; storage errors.
    pub async fn refresh(&self, vault: &Vault) -> Result<()> {
        self.check(vault).await?;
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

/// Writes `snapshot` under `lock` and confirms the lock still holds (FORMAT.md §5.1 point
/// 3); returns the snapshot's id, object name and size, and the lock's last write. A
/// revoked lock's snapshot is deleted again — except by a device of an append-only vault,
/// which may not: it checks the lock before writing too, and names a snapshot written as
/// the lock was revoked for an admin to forget.
///
/// # Errors
/// [`Error::Revoked`]; storage errors.
pub(crate) async fn commit(
    vault: &Vault,
    lock: &Lock,
    snapshot: &crate::format::snapshot::Snapshot,
) -> Result<(zerok_core::SnapshotId, String, u64, i64)> {
    let may_delete = vault.backend().may_delete(names::SNAPSHOTS);
    if !may_delete {
        lock.check(vault).await?;
    }
    let (id, name, size) = vault.save_snapshot(snapshot).await?;
    match lock.check(vault).await {
        Ok(written) => Ok((id, name, size, written)),
        Err(e) if may_delete => {
            // Prune may be deleting what the snapshot uses.
            vault.backend().delete(&name).await?;
            Err(e)
        }
        Err(e) => Err(Error::Revoked(format!(
            "{e}; snapshot {} was written as it happened and may name data prune removed: this append-only \
             vault's devices may not delete it, an admin should forget it",
            id.short()
        ))),
    }
}

/// Takes an ended lock's protection away: writes its revocation marker, then removes it.
///
/// # Errors
/// Storage errors.
pub(crate) async fn revoke(vault: &Vault, id: &IndexId) -> Result<()> {
    match vault.backend().put_new(&revocation(id), Bytes::new()).await {
        Ok(()) | Err(Error::AlreadyExists(_)) => {}
        Err(e) => return Err(e),
    }
    vault.backend().delete(&format!("{}/{id}", names::LOCKS)).await
}

/// Deletes revocation markers whose lock is gone and that are older than `max_age` seconds
/// by the store's clock (`now`); returns how many.
///
/// # Errors
/// Storage errors.
pub(crate) async fn sweep_revocations(vault: &Vault, now: i64, max_age: i64) -> Result<usize> {
    let locks = vault.backend().names_in(names::LOCKS).await?;
    let mut swept = 0;
    for marker in vault.backend().list_listed(names::REVOKED).await? {
        if now - marker.modified > max_age && !locks.contains(names::id_part(&marker.name)) {
            vault.backend().delete(&marker.name).await?;
            swept += 1;
        }
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InitOptions, Location, Vault};

    async fn vault_in(dir: &std::path::Path) -> Vault {
        let url = dir.join("vault").display().to_string();
        Vault::init(Location::parse(&url).unwrap().open(&url).unwrap(), InitOptions::default()).await.unwrap().vault
    }

    #[tokio::test]
    async fn backups_never_wait_and_prunes_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault_in(dir.path()).await;
        let backup = Lock::acquire(&vault, false).await.unwrap();
        let prune = Lock::acquire(&vault, true).await.expect("prune does not wait for backups");
        let err = Lock::acquire(&vault, true).await.err().expect("a second prune must wait");
        assert!(err.to_string().contains("prune is running"), "{err}");
        Lock::acquire(&vault, false).await.expect("backups do not wait for prune").release(&vault).await;
        for lock in [backup, prune] {
            lock.release(&vault).await;
        }
        assert!(vault.backend().list(names::LOCKS).await.unwrap().is_empty(), "refused attempts leave no lock");
    }

    /// Writes a lock as another host would, with the writer's clock `skew` seconds off.
    async fn foreign_lock(vault: &Vault, exclusive: bool, skew: i64) -> IndexId {
        let id = IndexId::random();
        let body = LockBody { exclusive, hostname: "elsewhere".into(), pid: 1, time: crate::now_secs() + skew };
        let bytes = Bytes::from(seal_msgpack(vault.keys().metadata(), Kind::Lock, &id.0, &body));
        vault.backend().replace(&format!("{}/{id}", names::LOCKS), bytes).await.unwrap();
        id
    }

    fn age_by_store_clock(dir: &std::path::Path, id: &IndexId, secs: i64) {
        let path = dir.join("vault").join(names::LOCKS).join(id.to_string());
        let t = filetime::FileTime::from_unix_time(crate::now_secs() - secs, 0);
        filetime::set_file_mtime(path, t).unwrap();
    }

    #[tokio::test]
    async fn staleness_is_judged_by_the_stores_clock_not_the_writers() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault_in(dir.path()).await;
        // A live prune elsewhere whose clock runs a day slow still holds its lock.
        let other = foreign_lock(&vault, true, -86_400).await;
        let err = Lock::acquire(&vault, true).await.err().expect("a live prune with a slow clock still excludes");
        assert!(err.to_string().contains("prune is running on elsewhere"), "{err}");
        // Its lock not rewritten for 31 minutes by the store's clock: it has ended.
        age_by_store_clock(dir.path(), &other, STALE_AFTER_SECS + 60);
        let mine = Lock::acquire(&vault, true).await.expect("a stale prune lock is ignored");
        let others = mine.others(&vault).await.unwrap();
        assert!(others.iter().all(|o| o.ended) && others.len() == 1);
        mine.release(&vault).await;
    }

    #[tokio::test]
    async fn a_revoked_backup_learns_it_and_old_markers_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault_in(dir.path()).await;
        let backup = Lock::acquire(&vault, false).await.unwrap();
        backup.refresh(&vault).await.unwrap();
        revoke(&vault, &backup.id).await.unwrap();
        assert!(matches!(backup.check(&vault).await, Err(Error::Revoked(_))));
        assert!(matches!(backup.refresh(&vault).await, Err(Error::Revoked(_))), "refresh must not revive it");
        let now = vault.backend().modified(&revocation(&backup.id)).await.unwrap().unwrap();
        assert_eq!(sweep_revocations(&vault, now, 60).await.unwrap(), 0, "a young marker stays");
        assert_eq!(sweep_revocations(&vault, now + 61, 60).await.unwrap(), 1);
        backup.release(&vault).await;
    }
}
