//! `zerok snapshots`: list snapshots, oldest first.

use anyhow::Result;
use serde_json::json;

use crate::common::{VaultArgs, print_json};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    vault: VaultArgs,
    /// Print a JSON array.
    #[arg(long)]
    json: bool,
}

/// Formats Unix nanoseconds as RFC 3339 UTC.
pub fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

pub async fn run(args: Args) -> Result<u8> {
    let unlocked = args.vault.open().await?;
    let snaps = unlocked.vault.snapshots().await?;
    if args.json {
        let list: Vec<_> = snaps
            .iter()
            .map(|(id, s)| {
                json!({
                    "id": id.to_string(),
                    "short_id": id.short(),
                    "time": rfc3339(s.time_ns),
                    "hostname": s.hostname,
                    "paths": s.paths,
                    "tags": s.tags,
                    "tree": s.tree.to_string(),
                    "parent": s.parent.map(|p| p.to_string()),
                    "files": s.summary.files,
                    "dirs": s.summary.dirs,
                    "bytes": s.summary.bytes,
                    "sync_cursors": s.sync_cursors,
                    "sync_group": s.sync_group.map(|g| g.to_string()),
                })
            })
            .collect();
        print_json(&serde_json::Value::Array(list));
    } else {
        println!("{:<10} {:<21} {:<16} {:>8} {:>10}  paths", "id", "time", "host", "files", "size");
        for (id, s) in &snaps {
            println!(
                "{:<10} {:<21} {:<16} {:>8} {:>10}  {}{}",
                id.short(),
                rfc3339(s.time_ns),
                s.hostname,
                s.summary.files,
                indicatif::HumanBytes(s.summary.bytes).to_string(),
                s.paths.join(" "),
                if s.tags.is_empty() { String::new() } else { format!("  [{}]", s.tags.join(",")) }
            );
        }
        println!("{} snapshots", snaps.len());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000_000_000_000), "2023-11-14T22:13:20Z");
    }
}
