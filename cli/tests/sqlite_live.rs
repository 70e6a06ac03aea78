//! Live databases restore whole: an app commits small transactions to a SQLite database
//! in a loop (each updates 40 rows, inserts one and bumps a counter) while `zerok backup`
//! runs again and again; every restored snapshot must pass `PRAGMA integrity_check` and
//! hold as many rows as its own counter says — in rollback-journal and WAL mode.
//!
//! `ZEROK_TEST_SQLITE=raw` runs the same with `--sqlite raw`, which shows the tearing the
//! consistent copy prevents (the test then fails).

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use rusqlite::Connection;

mod process;
use process::Device;

const ROWS: i64 = 20_000;
const BACKUPS_PER_MODE: usize = 12;

fn create(path: &Path, journal: &str) {
    let db = Connection::open(path).unwrap();
    db.pragma_update(None, "journal_mode", journal).unwrap();
    db.execute_batch(
        "CREATE TABLE rows(id INTEGER PRIMARY KEY, v INTEGER NOT NULL, pad BLOB NOT NULL);
         CREATE TABLE counter(n INTEGER NOT NULL); INSERT INTO counter VALUES (0);",
    )
    .unwrap();
    let tx = db.unchecked_transaction().unwrap();
    for i in 0..ROWS {
        tx.execute("INSERT INTO rows(v, pad) VALUES (?1, randomblob(300))", [i]).unwrap();
    }
    tx.commit().unwrap();
}

/// Commits transactions until `stop`; returns how many.
fn write_until(path: &Path, stop: &AtomicBool) -> u64 {
    let db = Connection::open(path).unwrap();
    db.busy_timeout(Duration::from_secs(30)).unwrap();
    let mut n = 0u64;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    while !stop.load(Ordering::Relaxed) {
        let tx = db.unchecked_transaction().unwrap();
        for _ in 0..40 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = (x % ROWS as u64) as i64 + 1;
            tx.execute("UPDATE rows SET v = v + 1, pad = randomblob(300) WHERE id = ?1", [id]).unwrap();
        }
        tx.execute("INSERT INTO rows(v, pad) VALUES (-1, randomblob(300))", []).unwrap();
        tx.execute("UPDATE counter SET n = n + 1", []).unwrap();
        tx.commit().unwrap();
        n += 1;
    }
    n
}

/// Whether a restored database is whole: SQLite finds no damage and the rows match the
/// counter. Returns the counter.
fn verify(path: &Path) -> Result<i64, String> {
    let db = Connection::open(path).map_err(|e| e.to_string())?;
    let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|e| e.to_string())?;
    if check != "ok" {
        return Err(format!("integrity_check: {check}"));
    }
    let rows: i64 = db.query_row("SELECT count(*) FROM rows", [], |r| r.get(0)).map_err(|e| e.to_string())?;
    let n: i64 = db.query_row("SELECT n FROM counter", [], |r| r.get(0)).map_err(|e| e.to_string())?;
    match rows == ROWS + n {
        true => Ok(n),
        false => Err(format!("{rows} rows, but the counter says {}", ROWS + n)),
    }
}

#[test]
fn databases_written_during_backups_restore_whole() {
    let mode = std::env::var("ZEROK_TEST_SQLITE").unwrap_or_else(|_| "consistent".into());
    let mut torn = Vec::new();
    for journal in ["DELETE", "WAL"] {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault");
        let dev = Device::new(dir.path(), "dev");
        dev.json(&["init", "--vault", vault.to_str().unwrap(), "--json"]);
        let src = dir.path().join("app");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("settings.json"), "{}").unwrap();
        let db = src.join("state.db");
        create(&db, journal);

        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || write_until(&db, &stop))
        };
        let mut ids = Vec::new();
        for _ in 0..BACKUPS_PER_MODE {
            let run = dev.run(&["backup", src.to_str().unwrap(), "--sqlite", &mode, "--json"]);
            let out: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
            if mode == "consistent" {
                // A journal that comes and goes is left out, never "unreadable".
                assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
                assert_eq!(out["sqlite_copied"], 1, "{out}");
            }
            ids.push(out["snapshot_id"].as_str().unwrap().to_string());
        }
        stop.store(true, Ordering::Relaxed);
        let commits = writer.join().unwrap();
        assert!(commits > 50, "the writer must keep writing during the backups ({commits} commits)");

        let mut counters = Vec::new();
        for (n, id) in ids.iter().enumerate() {
            let out = dir.path().join(format!("restored-{n}"));
            // A journal the app left in the target would be applied to the restored
            // database: restore removes it.
            std::fs::create_dir_all(&out).unwrap();
            std::fs::write(out.join("state.db-journal"), b"stale journal of another state").unwrap();
            assert!(dev.run(&["restore", &id[..12], "--target", out.to_str().unwrap()]).status.success());
            if mode == "consistent" {
                for sidecar in ["state.db-journal", "state.db-wal", "state.db-shm"] {
                    assert!(!out.join(sidecar).exists(), "{sidecar} beside a restored consistent copy");
                }
            }
            match verify(&out.join("state.db")) {
                Ok(counter) => counters.push(counter),
                Err(why) => torn.push(format!("{journal} snapshot {n}: {why}")),
            }
        }
        counters.dedup();
        assert!(!torn.is_empty() || counters.len() > 1, "{journal}: every snapshot holds the same state: {counters:?}");
        println!("{journal}: {} backups during {commits} commits; counters restored: {counters:?}", ids.len());
    }
    assert!(torn.is_empty(), "{} of {} snapshots restore torn:\n{}", torn.len(), 2 * BACKUPS_PER_MODE, torn.join("\n"));
}
