//! zerok-testkit: real servers for tests — an S3 protocol server (s3s + s3s-fs) serving a
//! folder on 127.0.0.1, reached through the same `object_store` S3 client that talks to
//! MinIO and AWS — [`FaultyStore`], which wraps any store with injected faults, and
//! [`UdpProxy`], a loopback link with delay and black holes for QUIC peers, and [`TcpDelay`],
//! a pipelined latency link for TCP (an object store across a WAN).
//! Test-only: never a dependency of a shipped crate.

mod faulty;
mod iam;
mod s3_fs;
mod tcp_delay;
mod udp_proxy;
pub use faulty::{Faults, FaultyStore, Injected};
pub use tcp_delay::TcpDelay;
pub use udp_proxy::UdpProxy;

/// Deterministic incompressible bytes (xorshift64), for test and bench inputs.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use object_store::{ObjectStore, aws::AmazonS3Builder};

/// Access key the server accepts.
pub const ACCESS_KEY: &str = "AKIDEXAMPLE";
/// Secret key the server accepts (SigV4 is really checked).
pub const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// A second access key, held to the policy [`S3Server::set_device_policy`] gives it (none
/// at first: it may do nothing) — a device's credentials, where [`ACCESS_KEY`] is the owner's.
pub const DEVICE_ACCESS_KEY: &str = "AKIDDEVICE";
/// The device key's secret.
pub const DEVICE_SECRET_KEY: &str = "deviceSecretKeyForTestsOnly/0000000000000";

/// An S3 server on loopback; stops when dropped.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Its address.
    pub addr: std::net::SocketAddr,
    /// The folder it serves; each bucket is a sub-folder.
    pub root: PathBuf,
    policies: iam::Policies,
    /// The accept loop, stopped when the server is dropped.
    _task: tokio_util::task::AbortOnDropHandle<()>,
}

impl S3Server {
    /// Serves `root` (which must exist) on a free loopback port.
    ///
    /// # Panics
    /// When the folder or the port cannot be used: a test setup failure.
    pub async fn start(root: &Path) -> S3Server {
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| format!("{e:?}")).expect("s3s-fs root");
        let mut b = s3s::service::S3ServiceBuilder::new(s3_fs::Folder(fs));
        let mut auth = s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY);
        auth.register(DEVICE_ACCESS_KEY.into(), DEVICE_SECRET_KEY.into());
        b.set_auth(auth);
        let policies = iam::Policies::default();
        policies
            .0
            .write()
            .expect("policies lock")
            .insert(DEVICE_ACCESS_KEY.into(), serde_json::json!({"Statement": []}));
        b.set_access(policies.clone());
        let service = b.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let http = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            loop {
                let Ok((sock, _)) = listener.accept().await else { return };
                let conn = http.serve_connection(hyper_util::rt::TokioIo::new(sock), service.clone()).into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        let _task = tokio_util::task::AbortOnDropHandle::new(task);
        S3Server { endpoint: format!("http://{addr}"), addr, root: root.to_path_buf(), policies, _task }
    }

    /// Holds [`DEVICE_ACCESS_KEY`] to an IAM identity policy (the JSON document given to AWS;
    /// see `iam.rs` for what is evaluated) from now on.
    ///
    /// # Panics
    /// Never in practice (a poisoned lock).
    pub fn set_device_policy(&self, policy: serde_json::Value) {
        self.policies.0.write().expect("policies lock").insert(DEVICE_ACCESS_KEY.into(), policy);
    }

    /// An `object_store` S3 client for `bucket` (created as a folder when missing).
    ///
    /// # Panics
    /// When the client cannot be built.
    pub fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        self.store_as(bucket, ACCESS_KEY, SECRET_KEY)
    }

    /// An `object_store` S3 client for `bucket` signing with the given key.
    ///
    /// # Panics
    /// When the client cannot be built.
    pub fn store_as(&self, bucket: &str, access_key: &str, secret_key: &str) -> Arc<dyn ObjectStore> {
        std::fs::create_dir_all(self.root.join(bucket)).expect("bucket folder");
        let store = AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_bucket_name(bucket)
            .with_access_key_id(access_key)
            .with_secret_access_key(secret_key)
            .with_region("us-east-1")
            .build()
            .expect("S3 client");
        Arc::new(store)
    }

    /// The `AWS_*` environment a `zerok` process needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }
}
