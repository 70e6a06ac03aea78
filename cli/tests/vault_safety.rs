//! Vault data safety under the events users meet, through the real `zerok` binary: a backup
//! paused mid-upload (SIGSTOP, as a closing laptop lid does) while another device, whose
//! clock runs 40 minutes ahead, prunes; and a backup that stays paused until the store's
//! clock says its lock is stale and prune collects its data.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

mod process;
use process::{Device, ZEROK, faketime};

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({sig}) failed");
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |rd| rd.count())
}

/// Lets a stopped backup run in 5 ms steps until it has written `more` index files of its
/// own (so some of its packs are named by an index), and leaves it stopped there.
fn step_until_indexed(child: &mut Child, vault: &Path, more: usize) {
    let before = count(&vault.join("index"));
    for _ in 0..4000 {
        signal(child, libc::SIGCONT);
        std::thread::sleep(Duration::from_millis(5));
        signal(child, libc::SIGSTOP);
        if count(&vault.join("index")) >= before + more {
            return;
        }
        assert!(child.try_wait().unwrap().is_none(), "the backup finished before it could be paused");
    }
    panic!("the backup wrote no index file in 20 s of running");
}

/// A laptop's vault with one small snapshot, and a 96 MiB file added since.
struct Scene {
    dir: tempfile::TempDir,
    laptop: Device,
    desktop_key: String,
    url: String,
    big: Vec<u8>,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let laptop = Device::new(dir.path(), "laptop");
        let url = format!("file://{}", dir.path().join("vault").display());
        let init = laptop.json(&["init", "--vault", &url, "--json"]);
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("notes.txt"), "first version\n").unwrap();
        laptop.json(&["backup", src.to_str().unwrap(), "--json"]);
        let big = zerok_testkit::random_bytes(7, 96 << 20);
        std::fs::write(src.join("video.bin"), &big).unwrap();
        std::fs::write(src.join("notes.txt"), "second version\n").unwrap();
        Self { laptop, desktop_key: init["recovery_key"].as_str().unwrap().into(), url, big, dir }
    }

    fn vault(&self) -> std::path::PathBuf {
        self.dir.path().join("vault")
    }

    fn src(&self) -> std::path::PathBuf {
        self.dir.path().join("src")
    }

    fn start_backup(&self) -> Child {
        let mut child = self
            .laptop
            .cmd(ZEROK, &["backup", self.src().to_str().unwrap(), "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        signal(&child, libc::SIGSTOP);
        step_until_indexed(&mut child, &self.vault(), 1);
        child
    }

    /// The other device: opens the vault with the recovery key, optionally under faketime.
    fn desktop(&self, clock: Option<(&str, &str)>, args: &[&str]) -> Command {
        let desktop = Device::new(self.dir.path(), "desktop");
        let mut c = match clock {
            Some((faketime, offset)) => {
                let mut c = desktop.cmd(faketime, &[&["-f", offset, ZEROK][..], args].concat());
                c.env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
                c
            }
            None => desktop.cmd(ZEROK, args),
        };
        c.env("ZEROK_VAULT", &self.url).env("ZEROK_RECOVERY_KEY", &self.desktop_key);
        c
    }

    fn desktop_ok(&self, clock: Option<(&str, &str)>, args: &[&str]) -> Value {
        let out = self.desktop(clock, args).output().unwrap();
        assert!(out.status.success(), "zerok {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// The vault is sound and every snapshot restores to a state the source had.
    fn assert_every_snapshot_restores(&self) {
        let check = self.desktop(None, &["check", "--read-data"]).output().unwrap();
        assert!(
            check.status.success(),
            "check --read-data: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let snaps = self.desktop_ok(None, &["snapshots", "--json"]);
        for snap in snaps.as_array().unwrap() {
            let id = snap["id"].as_str().unwrap();
            let target = self.dir.path().join(format!("restored-{id}"));
            let out = self.desktop(None, &["restore", id, "--target", target.to_str().unwrap()]).output().unwrap();
            assert!(out.status.success(), "restore {id}: {}", String::from_utf8_lossy(&out.stderr));
            let notes = std::fs::read_to_string(target.join("notes.txt")).unwrap();
            match std::fs::read(target.join("video.bin")) {
                Ok(video) => {
                    assert!(video == self.big, "snapshot {id}: video.bin differs from what was backed up");
                    assert_eq!(notes, "second version\n");
                }
                Err(_) => assert_eq!(notes, "first version\n"),
            }
        }
    }
}

/// Waits for the resumed backup; true when it saved a snapshot. A failure must say why on
/// one line.
fn finish(child: Child) -> bool {
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        return true;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    assert!(err.contains("prune"), "the error names what happened: {err}");
    false
}

#[test]
fn backup_paused_mid_upload_survives_prune_from_a_clock_40_minutes_ahead() {
    let Some(faketime) = faketime() else { return };
    let scene = Scene::new();
    let child = scene.start_backup();
    // The desktop's clock runs 40 minutes ahead: by its clock the laptop's lock is stale.
    let forgot = scene.desktop_ok(Some((faketime, "+40m")), &["forget", "--keep-last", "1", "--prune", "--json"]);
    assert!(forgot["prune"].is_object(), "{forgot}");
    signal(&child, libc::SIGCONT);
    assert!(finish(child), "a backup paused for seconds must complete");
    scene.assert_every_snapshot_restores();
    // A later prune (the backup has ended) leaves every snapshot whole too.
    scene.desktop_ok(Some((faketime, "+40m")), &["prune", "--json"]);
    scene.assert_every_snapshot_restores();
    assert_eq!(scene.desktop_ok(None, &["snapshots", "--json"]).as_array().unwrap().len(), 2);
}

/// Sets a lock's last write back by `secs` on the store's clock (a local folder's clock is
/// its files' mtimes): what the store shows of a backup paused that long.
fn age_locks(vault: &Path, secs: u64) {
    let then = std::time::SystemTime::now() - Duration::from_secs(secs);
    for entry in std::fs::read_dir(vault.join("locks")).unwrap() {
        let file = std::fs::File::options().write(true).open(entry.unwrap().path()).unwrap();
        file.set_modified(then).unwrap();
    }
}

#[test]
fn backup_paused_past_the_stores_stale_limit_starts_over_instead_of_committing_lost_data() {
    let scene = Scene::new();
    let child = scene.start_backup();
    // The first prune collects the paused backup's packs but must not delete them: the
    // backup's lock is fresh by the store's clock.
    let first = scene.desktop_ok(None, &["forget", "--keep-last", "1", "--prune", "--json"]);
    assert!(first["prune"]["packs_pending"].as_u64().unwrap() >= 1, "{first}");
    assert_eq!(first["prune"]["packs_deleted"], 0, "{first}");
    assert_eq!(first["prune"]["waiting_for"].as_array().unwrap().len(), 1, "{first}");
    // 31 minutes pass on the store's clock; the laptop stays asleep.
    age_locks(&scene.vault(), 31 * 60);
    let second = scene.desktop_ok(None, &["prune", "--json"]);
    assert_eq!(second["locks_revoked"], 1, "{second}");
    assert!(second["packs_deleted"].as_u64().unwrap() >= 1, "the stalled backup's packs are collected: {second}");
    // The laptop wakes: the backup finds its packs gone and starts over.
    signal(&child, libc::SIGCONT);
    assert!(finish(child), "the backup uploads again what was collected");
    scene.assert_every_snapshot_restores();
    assert_eq!(scene.desktop_ok(None, &["snapshots", "--json"]).as_array().unwrap().len(), 2);
}
