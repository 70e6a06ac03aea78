//! Crash campaign: `zerok backup` and `zerok forget --prune` are SIGKILLed at random
//! points, on a local folder and on the in-process S3 server. After every kill, `check
//! --read-data` must pass, every snapshot must restore bit-exact to what its source was,
//! and the next backup must succeed.
//!
//! Rounds go on until each command was killed `ZEROK_CRASH_KILLS` times (default 2 with the
//! test suite; `scripts/crash-campaign.sh` asks for 50) or three times that many rounds ran.
//! `ZEROK_CRASH_SEED` picks the kill points.

use std::{
    collections::{BTreeMap, HashMap},
    hash::{DefaultHasher, Hasher},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

mod process;
use process::{Device, ZEROK};

/// Deterministic pseudo-random numbers (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next() >> 24) as u8).collect()
    }
}

/// Path → hash of the content (and mode) of every file under `root`, and the bytes read.
fn digest(root: &Path) -> (BTreeMap<PathBuf, u64>, u64) {
    use std::os::unix::fs::PermissionsExt;
    let (mut out, mut bytes) = (BTreeMap::new(), 0);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mut h = DefaultHasher::new();
            if meta.is_dir() {
                stack.push(path.clone());
                h.write(b"dir");
            } else {
                let content = std::fs::read(&path).unwrap();
                bytes += content.len() as u64;
                h.write(&content);
                h.write_u32(meta.permissions().mode() & 0o7777);
            }
            out.insert(path.strip_prefix(root).unwrap().to_path_buf(), h.finish());
        }
    }
    (out, bytes)
}

/// A source tree that changes a little every round: small files rewritten, a large one
/// edited in place, one file added and one removed.
fn change(src: &Path, rng: &mut Rng, round: u64) {
    std::fs::create_dir_all(src.join("notes")).unwrap();
    for i in 0..5 {
        let n = rng.below(120);
        std::fs::write(src.join(format!("notes/n{n:03}.txt")), format!("note {n} round {round} {i}\n").repeat(40))
            .unwrap();
    }
    for big in 0..3u64 {
        let path = src.join(format!("big{big}.bin"));
        let mut bytes = std::fs::read(&path).unwrap_or_else(|_| rng.bytes((1 + big as usize) << 20));
        let at = rng.below(bytes.len() as u64 - 4096) as usize;
        bytes[at..at + 4096].copy_from_slice(&rng.bytes(4096));
        std::fs::write(path, bytes).unwrap();
    }
    std::fs::write(src.join(format!("added-{round}.bin")), rng.bytes(64 << 10)).unwrap();
    let _ = std::fs::remove_file(src.join(format!("added-{}.bin", round.saturating_sub(2))));
}

/// One vault under attack, and what its snapshots must hold.
struct Campaign<'a> {
    dev: Device,
    env: &'a [(&'static str, String)],
    vault: String,
    src: PathBuf,
    work: PathBuf,
    /// Tag → digest of the source when that backup began.
    expected: HashMap<String, BTreeMap<PathBuf, u64>>,
    /// Typical run time of each command, for picking kill points.
    took: HashMap<&'static str, Duration>,
    kills: HashMap<&'static str, u32>,
    finished_first: HashMap<&'static str, u32>,
    restores: u32,
    /// Bytes restored and found equal to their source.
    verified: u64,
}

impl Campaign<'_> {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.dev.cmd(ZEROK, args);
        c.envs(self.env.iter().cloned()).env("ZEROK_VAULT", &self.vault);
        c
    }

    fn ok(&self, args: &[&str]) -> Value {
        let out = self.cmd(args).output().unwrap();
        assert!(out.status.success(), "zerok {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Runs `args` to the end, timing it.
    fn timed(&mut self, what: &'static str, args: &[&str]) {
        let started = Instant::now();
        self.ok(args);
        self.took.insert(what, started.elapsed());
    }

    /// Starts `args` and SIGKILLs it after a random part of its usual run time.
    fn kill_during(&mut self, what: &'static str, args: &[&str], rng: &mut Rng) {
        let usual = self.took.get(what).copied().unwrap_or(Duration::from_millis(300));
        // Between 15% and 95% of a usual run: past the start-up, before the end.
        let usual = usual.as_micros() as u64;
        let delay = Duration::from_micros(usual * 15 / 100 + rng.below(usual * 80 / 100));
        let mut child = self.cmd(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(delay);
        match child.try_wait().unwrap() {
            Some(_) => *self.finished_first.entry(what).or_default() += 1,
            None => {
                child.kill().unwrap();
                *self.kills.entry(what).or_default() += 1;
            }
        }
        child.wait().unwrap();
    }

    /// `check --read-data` passes and every snapshot restores to what its source was.
    fn verify(&mut self, after: &str) {
        let check = self.cmd(&["check", "--read-data"]).output().unwrap();
        assert!(check.status.success(), "check after {after}: {}", String::from_utf8_lossy(&check.stderr));
        let snaps = self.ok(&["snapshots", "--json"]);
        for snap in snaps.as_array().unwrap() {
            let id = snap["id"].as_str().unwrap();
            let tag = snap["tags"][0].as_str().unwrap();
            let target = self.work.join(format!("restore-{}", self.restores));
            self.ok(&["restore", id, "--target", target.to_str().unwrap()]);
            let (restored, bytes) = digest(&target);
            assert!(restored == self.expected[tag], "snapshot {tag} restored different bytes after {after}");
            self.verified += bytes;
            std::fs::remove_dir_all(&target).unwrap();
            self.restores += 1;
        }
    }

    fn backup_args(&self, tag: &str) -> Vec<String> {
        ["backup", self.src.to_str().unwrap(), "--tag", tag].map(String::from).to_vec()
    }
}

fn run(name: &str, env: &[(&'static str, String)], vault: String, root: &Path, kills: u32, seed: u64) -> String {
    let mut rng = Rng(seed | 1);
    let mut c = Campaign {
        dev: Device::new(root, "dev"),
        env,
        vault,
        src: root.join("src"),
        work: root.join("work"),
        expected: HashMap::new(),
        took: HashMap::new(),
        kills: HashMap::new(),
        finished_first: HashMap::new(),
        restores: 0,
        verified: 0,
    };
    std::fs::create_dir_all(&c.work).unwrap();
    let vault = c.vault.clone();
    c.ok(&["init", "--vault", &vault, "--create-bucket", "--pack-size-mib", "1", "--json"]);
    let prune = ["forget", "--keep-last", "3", "--prune", "--json"];
    c.timed("prune", &prune);
    let killed = |c: &Campaign, what| c.kills.get(what).copied().unwrap_or(0);
    let mut rounds = 0;
    while (killed(&c, "backup") < kills || killed(&c, "prune") < kills) && rounds < u64::from(kills) * 3 {
        let round = rounds;
        rounds += 1;
        change(&c.src, &mut rng, round);
        let tag = format!("r{round}-killed");
        c.expected.insert(tag.clone(), digest(&c.src).0);
        let args = c.backup_args(&tag);
        c.kill_during("backup", &args.iter().map(String::as_str).collect::<Vec<_>>(), &mut rng);
        c.verify(&format!("backup killed in round {round}"));

        let tag = format!("r{round}");
        c.expected.insert(tag.clone(), digest(&c.src).0);
        let args = c.backup_args(&tag);
        c.timed("backup", &args.iter().map(String::as_str).collect::<Vec<_>>());
        c.kill_during("prune", &prune, &mut rng);
        c.verify(&format!("prune killed in round {round}"));
        c.timed("prune", &prune);
    }
    c.verify("the last prune");
    assert!(killed(&c, "backup") >= kills && killed(&c, "prune") >= kills, "too few kills landed in {rounds} rounds");
    let figure = |m: &HashMap<&str, u32>, k| m.get(k).copied().unwrap_or(0);
    format!(
        "{name}: {rounds} rounds, backup killed {} times ({} finished first), prune killed {} times ({} finished \
         first); {} snapshot restores ({} MiB) bit-exact, check --read-data clean after each kill: bytes lost 0",
        figure(&c.kills, "backup"),
        figure(&c.finished_first, "backup"),
        figure(&c.kills, "prune"),
        figure(&c.finished_first, "prune"),
        c.restores,
        c.verified >> 20
    )
}

#[test]
fn sigkilled_backups_and_prunes_lose_nothing() {
    let kills = std::env::var("ZEROK_CRASH_KILLS").ok().and_then(|r| r.parse().ok()).unwrap_or(2);
    let seed = std::env::var("ZEROK_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0xC4A5);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    println!("{}", run("local folder", &[], local.join("vault").display().to_string(), &local, kills, seed));

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let s3_root = dir.path().join("s3");
    std::fs::create_dir_all(&s3_root).unwrap();
    let server = rt.block_on(zerok_testkit::S3Server::start(&s3_root));
    let s3 = dir.path().join("s3-side");
    println!(
        "{}",
        run("S3 (in-process s3s-fs)", &server.env(), "s3://campaign/vault".into(), &s3, kills, seed ^ 0x5DEE_CE66)
    );
    println!("seed {seed}");
}
