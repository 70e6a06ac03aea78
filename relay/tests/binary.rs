//! `zerok-relay` as a process: the `--json` first line, `/health`, a graceful SIGTERM, and
//! an identity that survives restarts.

use std::{
    io::{BufRead, BufReader, Read, Write},
    process::{Command, Stdio},
    time::Duration,
};

const RELAY: &str = env!("CARGO_BIN_EXE_zerok-relay");

fn start(data: &std::path::Path) -> (std::process::Child, serde_json::Value) {
    let mut child = Command::new(RELAY)
        .args(["--data-dir", data.to_str().unwrap(), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--json"])
        .env("ZEROK_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (child, serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn terminate(mut child: std::process::Child) -> std::process::ExitStatus {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    panic!("relay did not stop within 10 s of SIGTERM");
}

#[test]
fn json_line_health_metrics_sigterm_and_stable_identity() {
    let dir = tempfile::tempdir().unwrap();
    let (child, info) = start(dir.path());
    let id = info["endpoint_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 64);
    assert!(info["addr"].as_str().unwrap().starts_with(&format!("{id}@127.0.0.1:")), "{info}");
    let http = info["http"].as_str().unwrap();
    let health = http_get(http, "/health");
    assert!(health.starts_with("HTTP/1.1 200") && health.contains(r#""status":"ok""#), "{health}");
    let metrics = http_get(http, "/metrics");
    assert!(metrics.contains("zerok_relay_pushes_total 0"), "{metrics}");
    assert!(http_get(http, "/nope").starts_with("HTTP/1.1 404"));
    assert!(terminate(child).success(), "graceful shutdown exits 0");

    let (child, again) = start(dir.path());
    assert_eq!(again["endpoint_id"].as_str().unwrap(), id, "identity kept across restarts");
    assert!(terminate(child).success());
}

#[test]
fn bad_config_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("relay.toml");
    std::fs::write(&cfg, "[storage]\nttl = 5\n").unwrap();
    let out = Command::new(RELAY).args(["--config", cfg.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("unknown field"), "{err}");
}
