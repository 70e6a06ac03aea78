//! Helpers of the tests that drive the real binaries: a device (its own ZEROK_HOME),
//! incompressible bytes, folder copies, libfaketime for skewed clocks, and a network namespace of the test's own.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

pub const ZEROK: &str = env!("CARGO_BIN_EXE_zerok");

/// A device: its own ZEROK_HOME.
pub struct Device {
    pub home: PathBuf,
}

impl Device {
    pub fn new(root: &Path, name: &str) -> Self {
        Self { home: root.join(name) }
    }

    pub fn cmd(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args).env("ZEROK_HOME", &self.home).env_remove("ZEROK_VAULT").env_remove("ZEROK_RECOVERY_KEY");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(&[], args)
    }

    pub fn json(&self, args: &[&str]) -> Value {
        self.json_with(&[], args)
    }

    /// `zerok` with `env` set besides (an S3 server's `AWS_*`, say).
    pub fn run_with(&self, env: &[(&str, String)], args: &[&str]) -> Output {
        self.cmd(ZEROK, args).envs(env.iter().map(|(k, v)| (*k, v.as_str()))).output().unwrap()
    }

    /// As [`Device::run_with`], its stdout parsed as one JSON value; fails on a failure.
    pub fn json_with(&self, env: &[(&str, String)], args: &[&str]) -> Value {
        let out = self.run_with(env, args);
        assert!(out.status.success(), "zerok {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    }
}

/// `len` bytes that do not compress away (xorshift from `seed`).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `faketime` (libfaketime), which `.ci/run` installs; elsewhere the clock test is skipped
/// with a note unless `ZEROK_REQUIRE_FAKETIME` is set.
pub fn faketime() -> Option<&'static str> {
    let found = Command::new("faketime").arg("--version").output().is_ok_and(|o| o.status.success());
    match (found, std::env::var_os("ZEROK_REQUIRE_FAKETIME").is_some()) {
        (true, _) => Some("faketime"),
        (false, true) => panic!("ZEROK_REQUIRE_FAKETIME is set but faketime is not installed"),
        (false, false) => {
            eprintln!("skipping: faketime not installed (apt-get install faketime)");
            None
        }
    }
}

/// A network namespace the test made, with only a loopback interface, multicast on: a LAN
/// of processes where mDNS runs without touching the machine's network. Needs root and
/// iproute2, which `.ci/run` installs; elsewhere the test is skipped with a note unless
/// `ZEROK_REQUIRE_NETNS` is set. Deleted when dropped.
pub struct Netns(String);

impl Netns {
    pub fn create(tag: &str) -> Option<Self> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("zerok-{tag}-{}-{nanos:x}", std::process::id());
        let ip = |args: &[&str]| Command::new("ip").args(args).output().is_ok_and(|o| o.status.success());
        let made = ip(&["netns", "add", &name]);
        let ns = Self(name);
        let ready = made
            && ip(&["-n", &ns.0, "link", "set", "lo", "up"])
            && ip(&["-n", &ns.0, "link", "set", "lo", "multicast", "on"])
            && ip(&["-n", &ns.0, "route", "add", "224.0.0.0/4", "dev", "lo"]);
        match (ready, std::env::var_os("ZEROK_REQUIRE_NETNS").is_some()) {
            (true, _) => Some(ns),
            (false, true) => {
                panic!("ZEROK_REQUIRE_NETNS is set but no network namespace could be made (root, iproute2)")
            }
            (false, false) => {
                eprintln!("skipping: cannot make a network namespace here (needs root and iproute2)");
                None
            }
        }
    }

    /// Whether this process runs inside a test's namespace ([`Netns::run_test`]).
    pub fn inside() -> bool {
        std::env::var_os("ZEROK_IN_NETNS").is_some()
    }

    /// Runs the test `name` of this test binary again inside the namespace (with
    /// `ZEROK_IN_NETNS` set), within `limit`, and checks it ran and passed.
    pub fn run_test(&self, name: &str, limit: std::time::Duration) {
        let exe = std::env::current_exe().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (dir.path().join("out"), dir.path().join("err"));
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .arg(exe)
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env("ZEROK_IN_NETNS", &self.0)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                self.kill_all();
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let text = std::fs::read_to_string(&out).unwrap() + &std::fs::read_to_string(&err).unwrap();
        let passed = status.is_some_and(|s| s.success()) && text.contains("1 passed");
        assert!(passed, "{name} inside {} ({status:?}, limit {limit:?}):\n{text}", self.0);
    }

    /// Kills every process left in the namespace.
    fn kill_all(&self) {
        let pids = Command::new("ip").args(["netns", "pids", &self.0]).output().map(|o| o.stdout).unwrap_or_default();
        for pid in String::from_utf8_lossy(&pids).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).output();
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_all();
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// A child process killed (and reaped) when dropped, so a failing test leaves none behind.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
