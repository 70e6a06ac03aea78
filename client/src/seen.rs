//! What this device last saw of each vault, to notice a store that goes backwards
//! (`<home>/seen/<vault-id>.json`, mode 0600): for each host and paths, the newest snapshot
//! seen and the time it counted as taken. Forget always keeps the newest snapshot of each
//! host and paths, so the newest listed must be at least as new as the one recorded. If
//! not, the recorded one is gone (asked again by HEAD: a listing may miss it) or the store
//! now dates it earlier: either way the store rolled back or hides something
//! (vault/FORMAT.md §1 says what this does and does not catch).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zerok_core::SnapshotId;
use zerok_vault::{Dated, Vault, format::names};

use crate::{Home, Result, time::rfc3339};

#[derive(Serialize, Deserialize, Default)]
struct SeenFile {
    version: u32,
    /// `host` + "\n" + paths joined by "\n" → the newest snapshot seen of them.
    newest: BTreeMap<String, Mark>,
}

#[derive(Serialize, Deserialize, Clone, PartialEq)]
struct Mark {
    snapshot: String,
    /// The time it counts as taken ([`Dated::time_ns`]).
    time_ns: i64,
}

/// The vault's snapshots, and what went missing since this device last looked.
pub struct Observed {
    /// Every snapshot, oldest first (as [`Vault::snapshots_dated`]).
    pub snapshots: Vec<Dated>,
    /// One line for each newest snapshot this device saw that is gone with nothing as new
    /// of the same host and paths in its place.
    pub rollback: Vec<String>,
}

/// The record's key of a snapshot's host and paths.
fn group_of(d: &Dated) -> String {
    std::iter::once(d.snapshot.hostname.as_str())
        .chain(d.snapshot.paths.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Lists the vault's snapshots, compares them with what this device saw before, and
/// records the newest of each host and paths (marks only ever rise).
///
/// # Errors
/// Storage errors listing the snapshots.
pub async fn observe(home: &Home, vault: &Vault) -> Result<Observed> {
    record(home, vault, vault.snapshots_dated().await?).await
}

/// As [`observe`], with the vault's snapshots already listed (`snapshots`, as
/// [`Vault::snapshots_dated`] gives them; a backup's [`zerok_vault::BackupSummary::snapshots`]).
///
/// # Errors
/// Storage errors asking for a snapshot that is no longer listed.
pub async fn record(home: &Home, vault: &Vault, snapshots: Vec<Dated>) -> Result<Observed> {
    let name = format!("seen/{}.json", vault.config().vault_id);
    let mut file: SeenFile = match home.store().get(&name) {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "damaged record of seen snapshots; starting a new one");
            SeenFile::default()
        }),
        _ => SeenFile::default(),
    };
    let mut newest: BTreeMap<String, &Dated> = BTreeMap::new();
    for d in &snapshots {
        newest.insert(group_of(d), d);
    }
    let mut rollback = Vec::new();
    for (group, mark) in &file.newest {
        if newest.get(group).is_some_and(|d| d.time_ns >= mark.time_ns) {
            continue;
        }
        let what = match snapshots.iter().find(|d| d.id.to_string() == mark.snapshot) {
            Some(_) => "is dated earlier by the store than when this device saw it",
            None => match SnapshotId::from_hex(&mark.snapshot) {
                Ok(id) if vault.backend().exists(&names::snapshot(&id)).await? => continue,
                _ => "is gone, and nothing as new of that host and paths replaced it",
            },
        };
        let mut parts = group.split('\n');
        let host = parts.next().unwrap_or_default();
        rollback.push(format!(
            "snapshot {} of {host}:{} ({}), the newest this device saw, {what}: the store rolled back or hides it",
            mark.snapshot.chars().take(8).collect::<String>(),
            parts.collect::<Vec<_>>().join(","),
            rfc3339(mark.time_ns),
        ));
    }
    let mut changed = false;
    for (group, d) in newest {
        let mark = Mark { snapshot: d.id.to_string(), time_ns: d.time_ns };
        if file.newest.get(&group).is_none_or(|m| m.time_ns < mark.time_ns) {
            file.newest.insert(group, mark);
            changed = true;
        }
    }
    if changed {
        file.version = 1;
        // Not being able to remember costs only the next check, not this command.
        if let Err(e) = home.store().put(&name, &serde_json::to_vec_pretty(&file).expect("record encodes"), true) {
            tracing::warn!(error = %e, "the record of seen snapshots was not written");
        }
    }
    Ok(Observed { snapshots, rollback })
}
