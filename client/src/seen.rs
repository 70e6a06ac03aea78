//! What this device last saw of each vault, to notice a store that goes backwards
//! (`<home>/seen/<vault-id>.json`, mode 0600): for each host and paths, the newest snapshot
//! seen. Forget always keeps the newest snapshot of each host and paths, so when that one
//! is gone and nothing at least as new of the same host and paths replaced it, the store
//! rolled back or hides it (vault/FORMAT.md §1 says what this does and does not catch).

use std::collections::BTreeMap;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use zerok_vault::{Dated, Vault};

use crate::{Home, report::rfc3339};

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
/// Storage errors listing the snapshots; the record not being writable.
pub async fn observe(home: &Home, vault: &Vault) -> Result<Observed> {
    let snapshots = vault.snapshots_dated().await?;
    let path = home.dir().join("seen").join(format!("{}.json", vault.config().vault_id));
    let mut file: SeenFile = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "damaged record of seen snapshots; starting a new one");
            SeenFile::default()
        }),
        Err(_) => SeenFile::default(),
    };
    let mut newest: BTreeMap<String, &Dated> = BTreeMap::new();
    for d in &snapshots {
        newest.insert(group_of(d), d);
    }
    let mut rollback = Vec::new();
    for (group, mark) in &file.newest {
        let replaced = newest.get(group).is_some_and(|d| d.time_ns >= mark.time_ns);
        if !replaced && !snapshots.iter().any(|d| d.id.to_string() == mark.snapshot) {
            let mut parts = group.split('\n');
            let host = parts.next().unwrap_or_default();
            rollback.push(format!(
                "snapshot {} of {host}:{} ({}), which this device saw, is gone and nothing as new of that host and \
                 paths replaced it: the store rolled back or hides it",
                &mark.snapshot[..8.min(mark.snapshot.len())],
                parts.collect::<Vec<_>>().join(","),
                rfc3339(mark.time_ns),
            ));
        }
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
        home.write_private(&path, &serde_json::to_vec_pretty(&file)?)?;
    }
    Ok(Observed { snapshots, rollback })
}
