//! Append-only vaults against ransomware and stolen devices, through the real `zerok`
//! binary and a real S3 server on loopback that holds a second access key (the device's)
//! to the very IAM policy `zerok init --append-only` prints. The server has no versioning
//! or Object Lock, so init refuses unless told to rely on the policy alone.

mod process;

use std::{collections::HashMap, path::Path, process::Output};

use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, path::Path as StorePath};
use process::{Device, noise};
use serde_json::Value;
use zerok_testkit::{ACCESS_KEY, DEVICE_ACCESS_KEY, DEVICE_SECRET_KEY, S3Server, SECRET_KEY};

const URL: &str = "s3://vault/home";

struct Setup {
    dev: Device,
    admin: Vec<(&'static str, String)>,
    device: Vec<(&'static str, String)>,
}

impl Setup {
    fn new(root: &Path, server: &S3Server) -> Self {
        let admin = server.env();
        let device = admin
            .iter()
            .map(|(k, v)| match *k {
                "AWS_ACCESS_KEY_ID" => (*k, DEVICE_ACCESS_KEY.to_string()),
                "AWS_SECRET_ACCESS_KEY" => (*k, DEVICE_SECRET_KEY.to_string()),
                _ => (*k, v.clone()),
            })
            .collect();
        Setup { dev: Device::new(root, "dev"), admin, device }
    }

    fn run(&self, env: &[(&'static str, String)], args: &[&str]) -> Output {
        self.dev.run_with(env, args)
    }

    fn json(&self, env: &[(&'static str, String)], args: &[&str]) -> Value {
        self.dev.json_with(env, args)
    }

    fn snapshot_count(&self) -> usize {
        self.json(&self.device, &["snapshots", "--json"]).as_array().unwrap().len()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every way a stolen credential could destroy `name`: delete it, overwrite it, delete it in
/// bulk. Returns the attempts the store let through.
async fn attack(store: &dyn ObjectStore, name: &str) -> Vec<String> {
    let path = StorePath::from(name);
    let mut through = Vec::new();
    if store.delete(&path).await.is_ok() {
        through.push(format!("delete {name}"));
    }
    if store.put(&path, PutPayload::from_static(b"ransom")).await.is_ok() {
        through.push(format!("overwrite {name}"));
    }
    let create = PutOptions { mode: PutMode::Create, ..Default::default() };
    if store.put_opts(&path, PutPayload::from_static(b"ransom"), create).await.is_ok() {
        through.push(format!("create over {name}"));
    }
    let elsewhere = StorePath::from(format!("{name}.copy"));
    store.put(&elsewhere, PutPayload::from_static(b"ransom")).await.ok();
    if store.copy(&elsewhere, &path).await.is_ok() {
        through.push(format!("copy over {name}"));
    }
    let bulk = store.delete_stream(futures::stream::iter([Ok(path.clone())]).boxed()).collect::<Vec<_>>().await;
    if bulk.iter().all(Result::is_ok) {
        through.push(format!("bulk delete {name}"));
    }
    through
}

#[test]
fn a_stolen_devices_credentials_cannot_destroy_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let s3_root = dir.path().join("s3");
    std::fs::create_dir_all(s3_root.join("vault")).unwrap();
    let server = rt.block_on(S3Server::start(&s3_root));
    let s = Setup::new(dir.path(), &server);

    // This server has no versioning or Object Lock: init refuses, in one line, writing nothing.
    let out = s.run(&s.admin, &["init", "--vault", URL, "--append-only"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("versioning") && stderr(&out).contains("--no-object-lock"), "{}", stderr(&out));
    assert!(!s3_root.join("vault/home").exists(), "nothing written");

    // Relying on the policy alone; the policy printed is the one `zerok policy` prints.
    let init = s.json(&s.admin, &["init", "--vault", URL, "--append-only", "--no-object-lock", "--json"]);
    assert_eq!(init["append_only"], true);
    let policy = init["device_policy"].clone();
    let printed = s.run(&s.admin, &["policy", "--vault", URL]);
    assert_eq!(serde_json::from_slice::<Value>(&printed.stdout).unwrap(), policy);
    server.set_device_policy(policy);

    // A device backs up with its own credentials, twice (the second reuses what is stored).
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("docs")).unwrap();
    std::fs::write(src.join("docs/big.bin"), noise(3 << 20, 7)).unwrap();
    std::fs::write(src.join("notes.txt"), b"first").unwrap();
    let src_arg = src.to_str().unwrap();
    s.json(&s.device, &["backup", src_arg, "--vault", URL, "--json"]);
    std::fs::write(src.join("notes.txt"), b"second").unwrap();
    let second = s.json(&s.device, &["backup", src_arg, "--vault", URL, "--json"]);
    assert_eq!(s.snapshot_count(), 2);

    // zerok itself refuses to delete (or add a key) with a device's credentials, before any
    // request.
    for args in [
        &["forget", "--keep-last", "1", "--prune"][..],
        &["prune"],
        &["tag", "--add", "x"],
        &["repair", "index"],
        &["key", "add", "--device"],
    ] {
        let out = s.run(&s.device, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("ZEROK_ADMIN_AWS_ACCESS_KEY_ID"), "{args:?}: {}", stderr(&out));
    }
    // A dry run deletes nothing and needs no admin.
    let plan = s.json(&s.device, &["forget", "--keep-last", "1", "--dry-run", "--json"]);
    assert_eq!(plan["removed"].as_array().unwrap().len(), 1);
    assert_eq!(s.snapshot_count(), 2);

    // A malicious device ignores that and uses the credentials directly: every object that
    // holds the backups survives every attempt.
    let stolen = server.store_as("vault", DEVICE_ACCESS_KEY, DEVICE_SECRET_KEY);
    let owner = server.store_as("vault", ACCESS_KEY, SECRET_KEY);
    let through = rt.block_on(async {
        let mut victims = HashMap::new();
        for folder in ["snapshots", "index", "data", "keys"] {
            let prefix = StorePath::from(format!("home/{folder}"));
            let listed: Vec<_> = owner.list(Some(&prefix)).collect().await;
            if let Some(Ok(meta)) = listed.first() {
                victims
                    .insert(meta.location.to_string(), owner.get(&meta.location).await.unwrap().bytes().await.unwrap());
            }
        }
        victims.insert("home/config".into(), owner.get(&"home/config".into()).await.unwrap().bytes().await.unwrap());
        assert!(victims.len() >= 5, "{:?}", victims.keys());
        // Nor can it add a key slot (adding devices is the admin's).
        let slot = StorePath::from("home/keys/0000000000000000000000000000000000000000000000000000000000000000");
        let create = PutOptions { mode: PutMode::Create, ..Default::default() };
        assert!(stolen.put_opts(&slot, PutPayload::from_static(b"{}"), create).await.is_err());
        let mut through = Vec::new();
        for (name, bytes) in &victims {
            through.extend(attack(stolen.as_ref(), name).await);
            let now = owner.get(&name.as_str().into()).await.unwrap().bytes().await.unwrap();
            assert_eq!(&now, bytes, "{name} changed");
        }
        through
    });
    assert!(through.is_empty(), "a device's credentials got through: {through:?}");

    // Everything still reads, byte for byte.
    let check = s.run(&s.device, &["check", "--read-data"]);
    assert!(check.status.success(), "{}", stderr(&check));
    let restored = dir.path().join("restored");
    let snap = second["snapshot_id"].as_str().unwrap();
    s.json(&s.device, &["restore", snap, "--target", restored.to_str().unwrap(), "--json"]);
    assert_eq!(std::fs::read(restored.join("docs/big.bin")).unwrap(), std::fs::read(src.join("docs/big.bin")).unwrap());
    assert_eq!(std::fs::read(restored.join("notes.txt")).unwrap(), b"second");

    // The admin credentials may: forget and prune run with them.
    let mut with_admin = s.device.clone();
    with_admin.push(("ZEROK_ADMIN_AWS_ACCESS_KEY_ID", ACCESS_KEY.into()));
    with_admin.push(("ZEROK_ADMIN_AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()));
    let forgot = s.json(&with_admin, &["forget", "--keep-last", "1", "--prune", "--json"]);
    assert_eq!(forgot["removed"].as_array().unwrap().len(), 1, "{forgot}");
    assert_eq!(s.snapshot_count(), 1);
}

#[test]
fn a_local_folder_cannot_be_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::new(dir.path(), "dev");
    let vault = dir.path().join("vault");
    let out = dev.run(&["init", "--vault", vault.to_str().unwrap(), "--append-only"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs an s3:// vault"));
    assert!(!vault.join("config").exists());
}
