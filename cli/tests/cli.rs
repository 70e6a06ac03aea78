//! The `zerok` and `zerok-restore` command-line contract, run as real processes: the
//! command names, flags, JSON keys and exit codes that scripts rely on.

use std::path::Path;

use serde_json::Value;

mod process;
use process::{Device, Netns, Running, ZEROK, copy_dir, faketime};

fn write_tree(root: &Path) {
    std::fs::create_dir_all(root.join("db/empty")).unwrap();
    std::fs::write(root.join("db/app.sqlite"), (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect::<Vec<_>>())
        .unwrap();
    std::fs::write(root.join("notes é.txt"), "remember the milk").unwrap();
    std::os::unix::fs::symlink("notes é.txt", root.join("latest")).unwrap();
}

#[test]
fn init_backup_snapshots_restore_check_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault");
    let vault_url = format!("file://{}", vault.display());
    let src = dir.path().join("app-state");
    write_tree(&src);
    let laptop = Device::new(dir.path(), "laptop");

    let init = laptop.json(&["init", "--vault", &vault_url, "--json"]);
    let recovery = init["recovery_key"].as_str().unwrap().to_string();
    assert_eq!(init["vault_id"].as_str().unwrap().len(), 64);

    // The device needs no secret and no --vault after init.
    let first = laptop.json(&["backup", src.to_str().unwrap(), "--tag", "first", "--json"]);
    for key in ["snapshot_id", "files_new", "files_changed", "files_unmodified", "bytes_read", "bytes_added"] {
        assert!(first.get(key).is_some(), "backup --json lacks {key}: {first}");
    }
    assert_eq!(first["files_new"], 2);
    std::fs::write(src.join("notes é.txt"), "remember the eggs").unwrap();
    let second = laptop.json(&["backup", src.to_str().unwrap(), "--json"]);
    assert_eq!((second["files_changed"].as_u64(), second["files_unmodified"].as_u64()), (Some(1), Some(1)));

    let snaps = laptop.json(&["snapshots", "--json"]);
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    assert_eq!(snaps[0]["tags"][0], "first");

    // Restore the first snapshot by id prefix: the folder's contents land in the target.
    let old = dir.path().join("old");
    let prefix = &first["snapshot_id"].as_str().unwrap()[..8];
    let out = laptop.run(&["restore", prefix, "--target", old.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(old.join("notes é.txt")).unwrap(), "remember the milk");

    let check = laptop.run(&["check", "--read-data"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));

    // Any machine can read the vault with the recovery key in the environment.
    let other = Device::new(dir.path(), "other");
    let out = other
        .cmd(ZEROK, &["snapshots", "--json"])
        .env("ZEROK_VAULT", &vault_url)
        .env("ZEROK_RECOVERY_KEY", &recovery)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
}

#[test]
fn wrong_recovery_key_is_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault");
    let dev = Device::new(dir.path(), "dev");
    dev.json(&["init", "--vault", vault.to_str().unwrap(), "--json"]);
    let src = dir.path().join("src");
    write_tree(&src);
    dev.json(&["backup", src.to_str().unwrap(), "--json"]);

    let other = zerok_core::RecoveryKey::generate().display();
    let out = dev
        .cmd(ZEROK, &["snapshots", "--vault", vault.to_str().unwrap()])
        .env("ZEROK_RECOVERY_KEY", &other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("wrong key"), "{err}");

    // A typo is caught by the checksum before the vault is touched.
    let mut typo = other.clone().into_bytes();
    typo[0] = if typo[0] == b'A' { b'B' } else { b'A' };
    let out = dev
        .cmd(ZEROK, &["snapshots", "--vault", vault.to_str().unwrap()])
        .env("ZEROK_RECOVERY_KEY", String::from_utf8(typo).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("checksum"));
}

#[test]
fn second_init_bad_url_and_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault");
    let dev = Device::new(dir.path(), "dev");
    dev.json(&["init", "--vault", vault.to_str().unwrap(), "--json"]);
    let again = dev.run(&["init", "--vault", vault.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let bad = dev.run(&["snapshots", "--vault", "ftp://nowhere"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scheme"));

    // /proc/self/mem is a regular file that cannot be read from offset 0: exit 3, listed.
    let src = dir.path().join("src");
    write_tree(&src);
    let out = dev.run(&["backup", src.to_str().unwrap(), "/proc/self/mem", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["unreadable"][0], "/proc/self/mem");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/proc/self/mem"));

    // A damaged sync state does not stop a backup: saved, with a warning, no group recorded.
    std::fs::create_dir_all(dev.home.join("sync")).unwrap();
    std::fs::write(dev.home.join("sync/group.json"), "{ not json").unwrap();
    let out = dev.run(&["backup", src.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sync group not recorded"));
    let snaps = dev.json(&["snapshots", "--json"]);
    assert!(snaps.as_array().unwrap().iter().all(|s| s["sync_group"].is_null()));
}

#[test]
fn forget_and_prune_keep_the_newest_and_free_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault");
    let dev = Device::new(dir.path(), "dev");
    dev.json(&["init", "--vault", vault.to_str().unwrap(), "--json"]);
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for round in 0..3u32 {
        std::fs::write(src.join("data.bin"), (0..300_000u32).map(|i| (i * 7 + round * 13) as u8).collect::<Vec<_>>())
            .unwrap();
        dev.json(&["backup", src.to_str().unwrap(), "--json"]);
    }
    let forgot = dev.json(&["forget", "--keep-last", "1", "--prune", "--json"]);
    assert_eq!(forgot["removed"].as_array().unwrap().len(), 2);
    assert!(forgot["prune"]["packs_deleted"].as_u64().unwrap() >= 1, "{forgot}");
    let out = dir.path().join("out");
    assert!(dev.run(&["restore", "latest", "--target", out.to_str().unwrap()]).status.success());
    assert_eq!(std::fs::read(out.join("data.bin")).unwrap(), std::fs::read(src.join("data.bin")).unwrap());
    assert!(dev.run(&["check", "--read-data"]).status.success());
}

#[test]
fn forget_keeps_by_tag_span_and_group_and_a_dry_run_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::new(dir.path(), "dev");
    dev.json(&["init", "--vault", dir.path().join("vault").to_str().unwrap(), "--json"]);
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let mut ids = Vec::new();
    for (src, tag) in [(&one, Some("keep")), (&one, None), (&two, None), (&two, None)] {
        std::fs::create_dir_all(src).unwrap();
        std::fs::write(src.join("f"), format!("{}", ids.len())).unwrap();
        let mut args = vec!["backup", src.to_str().unwrap(), "--json"];
        args.extend(tag.iter().flat_map(|t| ["--tag", *t]));
        ids.push(dev.json(&args)["snapshot_id"].as_str().unwrap().to_string());
    }
    let removed = |v: &serde_json::Value| -> Vec<String> {
        let mut r: Vec<String> = v["removed"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().into()).collect();
        r.sort();
        r
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let count = || dev.json(&["snapshots", "--json"]).as_array().unwrap().len();

    // A dry run says what goes and removes nothing.
    let plan = dev.json(&["forget", "--keep-last", "1", "--dry-run", "--json"]);
    assert_eq!((plan["dry_run"].as_bool(), removed(&plan)), (Some(true), sorted(vec![ids[0].clone(), ids[2].clone()])));
    assert_eq!(count(), 4);
    // Within an hour of the newest: everything stays.
    assert!(removed(&dev.json(&["forget", "--keep-within", "1h", "--json"])).is_empty());
    // The tagged one stays beside the newest of its paths.
    assert_eq!(removed(&dev.json(&["forget", "--keep-last", "1", "--keep-tag", "keep", "--json"])), [ids[2].clone()]);
    // One group for the host: the newest of all stays, and the newest of each host and
    // paths whatever the rules (devices tell a rolled-back store by it).
    let one_group = dev.json(&["forget", "--keep-last", "1", "--group-by", "host", "--json"]);
    assert_eq!(removed(&one_group), [ids[0].clone()]);
    assert_eq!(count(), 2);
    // A tag alone would keep nothing of `two`: its newest stays all the same.
    assert!(removed(&dev.json(&["forget", "--keep-tag", "nothing-has-it", "--json"])).is_empty());
    for bad in [&["forget", "--keep-within", "5x"][..], &["forget", "--keep-last", "1", "--group-by", "hosts"]] {
        let out = dev.run(bad);
        assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).lines().count() <= 3, "{bad:?}");
    }
    assert_eq!(count(), 2);
}

#[test]
fn tags_change_by_rewriting_the_snapshot_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::new(dir.path(), "dev");
    dev.json(&["init", "--vault", dir.path().join("vault").to_str().unwrap(), "--json"]);
    let src = dir.path().join("src");
    write_tree(&src);
    let id = dev.json(&["backup", src.to_str().unwrap(), "--tag", "old", "--json"])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = dev.json(&["snapshots", "--json"])[0].clone();
    let done = dev.json(&["tag", &id[..8], "--add", "release", "--remove", "old", "--json"]);
    let new = done["changed"][0]["new"].as_str().unwrap().to_string();
    assert_eq!((done["changed"][0]["old"].as_str(), done["unchanged"].as_u64()), (Some(id.as_str()), Some(0)));
    let after = dev.json(&["snapshots", "--json"]);
    assert_eq!(after.as_array().unwrap().len(), 1, "the old one is gone");
    assert_eq!(after[0]["id"], new.as_str());
    assert_eq!(after[0]["tags"], serde_json::json!(["release"]));
    for key in ["time", "tree", "paths", "hostname", "bytes", "files", "parent"] {
        assert_eq!(after[0][key], before[key], "{key} changed");
    }
    // No rollback warning on the device, and the data restores under the new id.
    let restored = dir.path().join("restored");
    let out = dev.run(&["restore", "latest", "--target", restored.to_str().unwrap()]);
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(restored.join("notes é.txt")).unwrap(), "remember the milk");
    let again = dev.json(&["tag", "--add", "release", "--json"]);
    assert_eq!((again["changed"].as_array().unwrap().len(), again["unchanged"].as_u64()), (0, Some(1)));
    assert_eq!(dev.run(&["tag", "latest"]).status.code(), Some(1), "nothing to change");
}

#[test]
fn completions_and_man_pages_come_from_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::new(dir.path(), "dev");
    let out = dev.run(&["completions", "bash"]);
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success() && script.contains("_zerok") && script.contains("--exclude-if-present"), "{script}");
    let pages = dir.path().join("man");
    assert!(dev.run(&["man", "--out", pages.to_str().unwrap()]).status.success());
    let page = std::fs::read_to_string(pages.join("zerok-backup.1")).unwrap();
    assert!(page.contains(".TH") && page.contains("exclude"), "{page}");
    assert!(pages.join("zerok.1").exists() && pages.join("zerok-ls.1").exists());
}

#[test]
fn s3_vault_from_the_standard_environment_with_bucket_creation() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let s3_root = dir.path().join("s3");
    std::fs::create_dir(&s3_root).unwrap();
    let server = rt.block_on(zerok_testkit::S3Server::start(&s3_root));
    let dev = Device::new(dir.path(), "dev");
    let env = server.env();
    let with_env = |args: &[&str]| dev.run_with(&env, args);
    let url = "s3://fresh-bucket/devices/laptop";
    let out = with_env(&["init", "--vault", url, "--create-bucket", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(s3_root.join("fresh-bucket/devices/laptop/config").exists(), "vault written through S3 under the prefix");

    let src = dir.path().join("src");
    write_tree(&src);
    let out = with_env(&["backup", src.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let restored = dir.path().join("restored");
    let out = with_env(&["restore", "latest", "--target", restored.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read(restored.join("db/app.sqlite")).unwrap(),
        std::fs::read(src.join("db/app.sqlite")).unwrap()
    );

    // Wrong credentials are refused by the server (SigV4 is checked), in one line.
    let out = dev.cmd(ZEROK, &["snapshots"]).envs(server.env()).env("AWS_SECRET_ACCESS_KEY", "wrong").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim().lines().count(), 1);
}

#[test]
fn passphrase_slot_opens_the_vault_and_slots_can_be_removed() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault");
    let dev = Device::new(dir.path(), "dev");
    let init = dev.json(&["init", "--vault", vault.to_str().unwrap(), "--json"]);
    let added = dev.cmd(ZEROK, &["key", "add"]).env("ZEROK_NEW_PASSPHRASE", "correct horse battery").output().unwrap();
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));

    let stranger = Device::new(dir.path(), "stranger");
    let open = |pass: &str| {
        stranger
            .cmd(ZEROK, &["snapshots", "--json", "--vault", vault.to_str().unwrap()])
            .env("ZEROK_PASSPHRASE", pass)
            .output()
            .unwrap()
    };
    assert!(open("correct horse battery").status.success());
    assert_eq!(open("wrong horse battery").status.code(), Some(1));

    // The only recovery slot cannot be removed; the device slot can.
    let slots = dev.json(&["key", "list", "--json"]);
    let slot_of = |kind: &str| {
        slots.as_array().unwrap().iter().find(|s| s["kind"] == kind).unwrap()["id"].as_str().unwrap().to_string()
    };
    let out = dev.run(&["key", "remove", &slot_of("recovery")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only recovery"));
    assert_eq!(init["device_slot"].as_str().unwrap(), slot_of("device"));
    assert!(dev.run(&["key", "remove", &slot_of("device")[..12]]).status.success());
    // This device's key is gone; it now needs a secret.
    let out = dev.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("recovery key"));
}

#[test]
fn sync_commands_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, relay) = relay_in(dir.path());
    let addr = relay.addr().to_string();
    let (a, b) = (Device::new(dir.path(), "a"), Device::new(dir.path(), "b"));
    a.json(&["sync", "create", "--relay", &addr, "--name", "laptop", "--json"]);
    let invite = a.json(&["sync", "invite", "--json"]);
    assert!(invite["url"].as_str().unwrap().starts_with("zerok://pair?invite="));
    let code = invite["code"].as_str().unwrap();
    assert_eq!(code.len(), 19);
    b.json(&["sync", "join", code, "--relay", &addr, "--name", "phone", "--json"]);

    let file = dir.path().join("state.bin");
    std::fs::write(&file, b"\x00binary\xffstate").unwrap();
    let pushed = a.json(&["sync", "push", file.to_str().unwrap(), "--json"]);
    assert_eq!(pushed["cursor"], 1);
    let out = b.run(&["sync", "pull", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line: Value = serde_json::from_slice(out.stdout.split(|&c| c == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["cursor"], 1);
    assert_eq!(line["blob_id"], pushed["blob_id"]);
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD.decode(line["data"].as_str().unwrap()).unwrap(),
        b"\x00binary\xffstate"
    );

    let devices = b.json(&["sync", "devices", "--json"]);
    let list = devices.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|d| d["this_device"] == true).count(), 1);
    for key in ["device_id", "name", "last_seen", "this_device"] {
        assert!(list[0].get(key).is_some(), "devices --json lacks {key}");
    }
    let laptop = list.iter().find(|d| d["name"] == "laptop").unwrap()["device_id"].as_str().unwrap().to_string();
    let phone = list.iter().find(|d| d["name"] == "phone").unwrap()["device_id"].as_str().unwrap().to_string();
    let out = a.run(&["sync", "revoke", &phone, "--rotate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = b.run(&["sync", "pull"]);
    assert_eq!(out.status.code(), Some(1), "the revoked phone is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("revoked"));
    assert_ne!(laptop, phone);
    rt.block_on(relay.shutdown());

    // No relay: the push is queued durably, exit 3.
    let out = a.run(&["sync", "push", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let queued: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(queued["queued"], true);
    assert!(queued["cursor"].is_null());
}

#[test]
fn revocation_and_pairing_attacks_fail_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, relay) = relay_in(dir.path());
    let addr = relay.addr().to_string();
    let [a, b, c, thief] = ["a", "b", "c", "thief"].map(|n| Device::new(dir.path(), n));
    a.json(&["sync", "create", "--relay", &addr, "--name", "laptop", "--json"]);
    let url = a.json(&["sync", "invite", "--json"])["url"].as_str().unwrap().to_string();
    let b_id = b.json(&["sync", "join", &url, "--name", "phone", "--json"])["device_id"].as_str().unwrap().to_string();

    // Attack 3: the same invite URL a second time.
    let out = thief.run(&["sync", "join", &url, "--name", "thief"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already used"), "{}", String::from_utf8_lossy(&out.stderr));
    let code = a.json(&["sync", "invite", "--json"])["code"].as_str().unwrap().to_string();
    c.json(&["sync", "join", &code, "--relay", &addr, "--name", "tablet", "--json"]);

    // Attack 2 (setup): the phone copies its state and uses it under a second key.
    let b2 = Device::new(dir.path(), "b2");
    copy_dir(&b.home, &b2.home);
    std::fs::remove_file(b2.home.join("sync/device.key")).unwrap();
    let out = b2.run(&["sync", "pull", "--json"]);
    assert_eq!(out.status.code(), Some(1), "a second key is nobody: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty());

    // Revoke with no flags: the secret rotates by default.
    let out = a.run(&["sync", "revoke", &b_id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, b"pushed after the revoke").unwrap();
    a.json(&["sync", "push", secret.to_str().unwrap(), "--json"]);

    // Attack 1: the revoked phone deletes its key and pulls under a fresh one.
    std::fs::remove_file(b.home.join("sync/device.key")).unwrap();
    for device in [&b, &b2] {
        let out = device.run(&["sync", "pull", "--json"]);
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty(), "the revoked device read: {}", String::from_utf8_lossy(&out.stdout));
    }
    // The tablet follows the rotation with no action and reads it.
    let out = c.run(&["sync", "pull", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = out
        .stdout
        .split(|&ch| ch == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    use base64::Engine;
    let data =
        base64::engine::general_purpose::STANDARD.decode(lines.last().unwrap()["data"].as_str().unwrap()).unwrap();
    assert_eq!(data, b"pushed after the revoke");

    let devices = c.json(&["sync", "devices", "--json"]);
    let phone = devices.as_array().unwrap().iter().find(|d| d["device_id"] == b_id.as_str()).unwrap();
    assert_eq!(phone["revoked"], true);
    assert_eq!(phone["added_by"].as_str().unwrap().len(), 64);
    assert_eq!(devices.as_array().unwrap().len(), 3, "the second key never entered the roster");
    rt.block_on(relay.shutdown());
}

#[test]
fn invites_work_with_device_clocks_40_minutes_off_either_way() {
    let Some(faketime) = faketime() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (rt, relay) = relay_in(dir.path());
    let addr = relay.addr().to_string();
    let skewed = |device: &Device, offset: &str, args: &[&str]| {
        let mut c = device.cmd(faketime, &[&["-f", offset, ZEROK][..], args].concat());
        c.env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        c.output().unwrap()
    };
    let [a, b, c] = ["a", "b", "c"].map(|n| Device::new(dir.path(), n));
    a.json(&["sync", "create", "--relay", &addr, "--name", "laptop", "--json"]);
    // The inviting laptop runs 40 minutes slow, the joining phone 40 minutes fast: the invite
    // lives 10 minutes by the relay's clock, so the join works.
    let out = skewed(&a, "-40m", &["sync", "invite", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let invite: Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = skewed(&b, "+40m", &["sync", "join", invite["url"].as_str().unwrap(), "--name", "phone"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A laptop clock 40 minutes fast cannot stretch an invite either: made "now", it still
    // expires 10 minutes after the relay's now. Expiry itself is the relay's to judge.
    let out = skewed(&a, "+40m", &["sync", "invite", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let invite: Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = skewed(&c, "-40m", &["sync", "join", invite["code"].as_str().unwrap(), "--relay", &addr]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(a.json(&["sync", "devices", "--json"]).as_array().unwrap().len(), 3);
    rt.block_on(relay.shutdown());
}

/// A relay on loopback with its runtime (the CLI tests drive processes, not async code).
fn relay_in(dir: &Path) -> (tokio::runtime::Runtime, zerok_relay::Relay) {
    relay_with(dir, |_| {})
}

fn relay_with(
    dir: &Path,
    tweak: impl FnOnce(&mut zerok_relay::Config),
) -> (tokio::runtime::Runtime, zerok_relay::Relay) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let relay = rt.block_on(async {
        let mut c = zerok_relay::Config::default();
        c.server.listen = "127.0.0.1:0".parse().unwrap();
        c.http.enabled = false;
        c.storage.data_dir = dir.join("relay");
        tweak(&mut c);
        zerok_relay::Relay::start(c).await.unwrap()
    });
    (rt, relay)
}

#[test]
fn attachments_through_the_cli_with_a_vault_relay() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let (rt, relay) = relay_with(dir.path(), |c| {
        c.storage.mode = zerok_relay::StorageMode::Vault;
        c.storage.object_store = Some(bucket.display().to_string());
    });
    let addr = relay.addr().to_string();
    let (a, b) = (Device::new(dir.path(), "a"), Device::new(dir.path(), "b"));
    a.json(&["sync", "create", "--relay", &addr, "--name", "laptop", "--json"]);
    let url = a.json(&["sync", "invite", "--json"])["url"].as_str().unwrap().to_string();
    b.json(&["sync", "join", &url, "--name", "phone", "--json"]);

    let scan = dir.path().join("scan.pdf");
    let bytes = zerok_testkit::random_bytes(9, 3 << 20);
    std::fs::write(&scan, &bytes).unwrap();
    let note = dir.path().join("note.txt");
    std::fs::write(&note, b"the lease").unwrap();
    let pushed = a.json(&[
        "sync",
        "push",
        note.to_str().unwrap(),
        "--attach",
        scan.to_str().unwrap(),
        "--mime",
        "application/pdf",
        "--json",
    ]);
    let content = pushed["content"].as_str().unwrap().to_string();
    assert_eq!((content.len(), pushed["size"].as_u64()), (64, Some(3 << 20)));
    assert_eq!(pushed["archived"], 1, "the command waited for the vault relay: the laptop may go offline");

    let out = b.run(&["sync", "pull", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line: Value = serde_json::from_slice(out.stdout.split(|&c| c == b'\n').next().unwrap()).unwrap();
    assert_eq!((line["content"].as_str(), line["mime"].as_str()), (Some(content.as_str()), Some("application/pdf")));
    assert_eq!(line["name"], "scan.pdf");

    let got = dir.path().join("got.pdf");
    let fetched = b.json(&["sync", "fetch", &content, "--out", got.to_str().unwrap(), "--json"]);
    assert_eq!(fetched["size"], 3 << 20);
    assert_eq!(std::fs::read(&got).unwrap(), bytes);
    // Bad input: one clear line, non-zero exit, nothing overwritten.
    let out = b.run(&["sync", "fetch", &content, "--out", got.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not overwritten"));
    let out = b.run(&["sync", "fetch", "abcd", "--out", dir.path().join("x").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("64 hex digits"));
    rt.block_on(relay.shutdown());
}

/// A LAN where nobody's address is known ahead: the relay is dialled by its id alone, and
/// an attachment is fetched from its sender after the sender came back on another port
/// (the address in the reference is stale). The test runs itself again inside a network
/// namespace it makes.
#[test]
fn devices_on_one_lan_find_each_other_by_mdns() {
    if !Netns::inside() {
        if let Some(ns) = Netns::create("mdns") {
            ns.run_test("devices_on_one_lan_find_each_other_by_mdns", std::time::Duration::from_secs(180));
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (rt, relay) = relay_with(dir.path(), |c| c.server.mdns = true);
    let addr = relay.addr();
    let bare = zerok_wire::RelayAddr { addr: None, ..addr.clone() }.to_string();
    let (a, b) = (Device::new(dir.path(), "a"), Device::new(dir.path(), "b"));
    for d in [&a, &b] {
        assert_eq!(d.json(&["sync", "net", "--mdns", "on", "--json"])["mdns"], true);
    }
    a.json(&["sync", "create", "--relay", &addr.to_string(), "--name", "laptop", "--json"]);
    let code = a.json(&["sync", "invite", "--json"])["code"].as_str().unwrap().to_string();
    // The relay by its id alone: mDNS finds where it listens.
    b.json(&["sync", "join", &code, "--relay", &bare, "--name", "phone", "--json"]);

    let photo = dir.path().join("photo.jpg");
    let bytes = zerok_testkit::random_bytes(4, 2 << 20);
    std::fs::write(&photo, &bytes).unwrap();
    let pushed = a.json(&["sync", "push", "--attach", photo.to_str().unwrap(), "--no-wait", "--json"]);
    let content = pushed["content"].as_str().unwrap().to_string();
    // The laptop comes back later on another port: the reference's address is stale.
    let mut serve = Running(a.cmd(ZEROK, &["sync", "serve"]).stderr(std::process::Stdio::piped()).spawn().unwrap());
    let stderr = std::io::BufReader::new(serve.0.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(stderr).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())).unwrap().contains("serving") {
    }

    let out = b.run(&["sync", "pull", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&content));
    // Without mDNS the stale address is all the phone has: it cannot fetch.
    b.json(&["sync", "net", "--mdns", "off", "--json"]);
    let got = dir.path().join("got.jpg");
    let out = b.run(&["sync", "fetch", &content, "--out", got.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not be fetched"));
    assert!(!got.exists());
    // With it, the phone finds the laptop where it is now.
    b.json(&["sync", "net", "--mdns", "on", "--json"]);
    let fetched = b.json(&["sync", "fetch", &content, "--out", got.to_str().unwrap(), "--json"]);
    assert_eq!(fetched["size"], 2 << 20);
    assert_eq!(std::fs::read(&got).unwrap(), bytes);

    drop(serve);
    rt.block_on(relay.shutdown());
}

#[test]
fn damaged_index_and_lost_pack_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault");
    let dev = Device::new(dir.path(), "dev");
    dev.json(&["init", "--vault", vault.to_str().unwrap(), "--pack-size-mib", "1", "--json"]);
    let src = dir.path().join("src");
    write_tree(&src);
    dev.json(&["backup", src.to_str().unwrap(), "--json"]);
    let packs_before: std::collections::HashSet<_> = std::fs::read_dir(vault.join("data"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let big: Vec<u8> = (0..6u32 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    std::fs::write(src.join("big.bin"), &big).unwrap();
    dev.json(&["backup", src.to_str().unwrap(), "--json"]);

    // A flipped index file: restore reads the pack headers, warns, and restores everything.
    let index = std::fs::read_dir(vault.join("index")).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&index).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&index, bytes).unwrap();
    assert!(!dev.run(&["check"]).status.success());
    let out = dir.path().join("out");
    let restored = dev.run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(restored.status.code(), Some(0), "{}", String::from_utf8_lossy(&restored.stderr));
    assert!(String::from_utf8_lossy(&restored.stderr).contains("read the pack headers instead"));
    assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), big);
    let repaired = dev.json(&["repair", "index", "--json"]);
    for key in ["packs_read", "packs_indexed", "index_written", "index_removed", "packs_missing", "damaged"] {
        assert!(repaired.get(key).is_some(), "repair index --json lacks {key}: {repaired}");
    }
    assert!(dev.run(&["check", "--read-data"]).status.success());

    // A lost pack of big.bin. The trees are in one of the new packs too, and without the
    // root nothing can be restored (exit 1): the first new pack whose loss leaves exit 3.
    let new_packs: Vec<_> = std::fs::read_dir(vault.join("data"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| !packs_before.contains(p))
        .collect();
    assert!(new_packs.len() >= 3, "{new_packs:?}");
    let out = dir.path().join("partial");
    let aside = dir.path().join("aside");
    let partial = new_packs
        .iter()
        .find_map(|pack| {
            std::fs::rename(pack, &aside).unwrap();
            let partial =
                dev.cmd(ZEROK, &["restore", "latest", "--target", out.to_str().unwrap(), "--json"]).output().unwrap();
            match partial.status.code() {
                Some(3) => Some(partial),
                Some(1) => {
                    std::fs::rename(&aside, pack).unwrap();
                    None
                }
                other => panic!("restore with a pack gone exited {other:?}"),
            }
        })
        .expect("a pack of file data only");
    let report: Value = serde_json::from_slice(&partial.stdout).unwrap();
    assert!(report["lost"][0].as_str().unwrap().starts_with("big.bin: "), "{report}");
    assert!(String::from_utf8_lossy(&partial.stderr).contains("big.bin"));
    assert!(!out.join("big.bin").exists());
    assert_eq!(std::fs::read_to_string(out.join("notes é.txt")).unwrap(), "remember the milk");

    let fixed = dev.cmd(ZEROK, &["repair", "snapshots", "--forget", "--json"]).output().unwrap();
    assert_eq!(fixed.status.code(), Some(3), "lost data is named: {}", String::from_utf8_lossy(&fixed.stderr));
    let fixed: Value = serde_json::from_slice(&fixed.stdout).unwrap();
    assert_eq!(fixed["repaired"].as_array().unwrap().len(), 1, "{fixed}");
    let reindexed = dev.json(&["repair", "index", "--json"]);
    assert_eq!(reindexed["packs_missing"], 1, "{reindexed}");
    assert!(dev.run(&["check", "--read-data"]).status.success());
    let again = dir.path().join("again");
    assert_eq!(dev.run(&["restore", "latest", "--target", again.to_str().unwrap()]).status.code(), Some(0));
}

#[test]
fn pre_and_post_hooks_bracket_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::new(dir.path(), "dev");
    dev.json(&["init", "--vault", dir.path().join("vault").to_str().unwrap(), "--json"]);
    let src = dir.path().join("src");
    write_tree(&src);
    let log = dir.path().join("hooks.log");
    let pre = format!("echo paused >> {0} && echo from-the-hook > {1}/dumped.txt", log.display(), src.display());
    let post = format!("echo \"resumed $ZEROK_BACKUP_STATUS $ZEROK_SNAPSHOT_ID\" >> {}", log.display());
    let out = dev.json(&["backup", src.to_str().unwrap(), "--pre-hook", &pre, "--post-hook", &post, "--json"]);
    let id = out["snapshot_id"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), format!("paused\nresumed ok {id}\n"));
    // What the pre-hook wrote is in the snapshot.
    let restored = dir.path().join("restored");
    assert!(dev.run(&["restore", id, "--target", restored.to_str().unwrap()]).status.success());
    assert_eq!(std::fs::read_to_string(restored.join("dumped.txt")).unwrap(), "from-the-hook\n");

    // A failing pre-hook: nothing is backed up, the post-hook still resumes the app.
    std::fs::remove_file(&log).unwrap();
    let failed = dev.run(&["backup", src.to_str().unwrap(), "--pre-hook", "exit 7", "--post-hook", &post]);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("pre-hook") && stderr.contains("exit status: 7"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "resumed failed \n");
    assert_eq!(dev.json(&["snapshots", "--json"]).as_array().unwrap().len(), 1);
}
