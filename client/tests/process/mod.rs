//! Helpers of the tests that drive the real binaries: a device (its own ZEROK_HOME),
//! folder copies, and libfaketime for skewed clocks.
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
        self.cmd(ZEROK, args).output().unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(out.status.success(), "zerok {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    }
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
