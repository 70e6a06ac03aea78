//! Opening object stores from URLs, and the [`Backend`]: named-object access relative to
//! the vault's prefix, with errors that name the object.
//!
//! URLs: `file:///abs/path` or a plain path (the embedded default: a local folder; every
//! write is synced, batch members in one go, see [`Backend::put_unsynced`]),
//! `s3://bucket/prefix` (AWS S3, MinIO and other S3-compatible stores, set up from the
//! standard `AWS_*` environment variables), `memory://` (process-local, for tests).
//! Retries: the S3 client retries transient failures with backoff, at most
//! [`S3_MAX_RETRIES`] times within [`S3_RETRY_TIMEOUT`].

use std::{ops::Range, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, aws::AmazonS3Builder, local::LocalFileSystem,
    memory::InMemory, path::Path as StorePath,
};

use crate::{Error, Result};

/// Retries of one S3 request before its error is reported.
pub const S3_MAX_RETRIES: usize = 4;
/// Time limit across one S3 request and its retries.
pub const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a vault lives, parsed from its URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A local folder (absolute path).
    Local(std::path::PathBuf),
    /// An S3 bucket and key prefix.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing `/`.
        prefix: String,
    },
    /// An in-process store that lives as long as the returned [`Backend`].
    Memory,
}

impl Location {
    /// Parses a vault URL or plain path.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for an unknown scheme, an empty bucket, or a relative
    /// `file://` path.
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidUrl { url: url.to_string(), reason: reason.to_string() };
        if url.is_empty() {
            return Err(bad("empty"));
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            let path = std::path::absolute(url).map_err(|e| bad(&e.to_string()))?;
            return Ok(Location::Local(path));
        };
        match scheme {
            "file" => {
                if !rest.starts_with('/') {
                    return Err(bad("file:// needs an absolute path, as in file:///srv/vault"));
                }
                Ok(Location::Local(rest.into()))
            }
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() || bucket.contains(|c: char| c.is_whitespace()) {
                    return Err(bad("s3:// needs a bucket, as in s3://bucket/prefix"));
                }
                Ok(Location::S3 { bucket: bucket.into(), prefix: prefix.trim_matches('/').into() })
            }
            "memory" => Ok(Location::Memory),
            other => Err(bad(&format!("unknown scheme {other:?} (use file://, s3:// or a path)"))),
        }
    }

    /// Opens the store. A local folder is created when missing.
    ///
    /// # Errors
    /// [`Error::Io`] when a local folder cannot be created; [`Error::InvalidUrl`] when the S3
    /// settings are incomplete.
    pub fn open(&self, url: &str) -> Result<Backend> {
        let (store, prefix): (Arc<dyn ObjectStore>, String) = match self {
            Location::Local(path) => {
                std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
                let folder = |fsync| {
                    LocalFileSystem::new_with_prefix(path)
                        .map(|fs| Arc::new(fs.with_fsync(fsync).with_automatic_cleanup(true)))
                        .map_err(|e| Error::InvalidUrl { url: url.into(), reason: e.to_string() })
                };
                let unsynced = Unsynced { store: folder(false)?, root: path.clone() };
                return Ok(Backend { unsynced: Some(unsynced), ..Backend::new(folder(true)?, "", url) });
            }
            Location::S3 { bucket, prefix } => (
                Arc::new(
                    s3_builder(bucket)
                        .build()
                        .map_err(|e| Error::InvalidUrl { url: url.into(), reason: e.to_string() })?,
                ),
                prefix.clone(),
            ),
            Location::Memory => (Arc::new(InMemory::new()), String::new()),
        };
        let from_env = matches!(self, Location::S3 { .. });
        Ok(Backend { from_env, ..Backend::new(store, &prefix, url) })
    }
}

/// An S3 client configured from the environment: `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL` (path-style requests when set,
/// as MinIO expects) and `AWS_ALLOW_HTTP`.
pub fn s3_builder(bucket: &str) -> AmazonS3Builder {
    configure(AmazonS3Builder::from_env(), bucket)
}

/// Bucket, retries, path-style requests to an endpoint, and a default region.
fn configure(b: AmazonS3Builder, bucket: &str) -> AmazonS3Builder {
    let env = |k: &str| std::env::var(k).ok();
    let mut b = b.with_bucket_name(bucket).with_retry(object_store::RetryConfig {
        max_retries: S3_MAX_RETRIES,
        retry_timeout: S3_RETRY_TIMEOUT,
        ..Default::default()
    });
    if let Some(endpoint) = env("AWS_ENDPOINT_URL") {
        b = b.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
    }
    if env("AWS_REGION").is_none() && env("AWS_DEFAULT_REGION").is_none() {
        b = b.with_region("us-east-1");
    }
    b
}

/// Every `AWS_*` setting of the environment but its credentials (for the admin's).
fn env_without_credentials() -> AmazonS3Builder {
    const CREDENTIALS: [&str; 3] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];
    std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") && !CREDENTIALS.contains(&k.as_str()))
        .filter_map(|(k, v)| Some((k.to_ascii_lowercase().parse::<object_store::aws::AmazonS3ConfigKey>().ok()?, v)))
        .fold(AmazonS3Builder::new(), |b, (k, v)| b.with_config(k, v))
}

/// The client of an append-only vault: every upload carries its SHA-256 (S3 refuses
/// uploads without a checksum into a bucket with Object Lock), signed with `admin` when
/// given (and nothing of the device's `AWS_*` credentials), else as [`s3_builder`].
fn append_only_store(
    bucket: &str,
    admin: Option<&crate::append_only::AdminCredentials>,
) -> Result<Arc<dyn ObjectStore>> {
    let b = match admin {
        None => s3_builder(bucket),
        Some(creds) => {
            let b = configure(env_without_credentials(), bucket)
                .with_access_key_id(&creds.access_key)
                .with_secret_access_key(&creds.secret_key);
            match &creds.session_token {
                Some(token) => b.with_token(token),
                None => b,
            }
        }
    };
    let store = b
        .with_checksum_algorithm(object_store::aws::Checksum::SHA256)
        .build()
        .map_err(|e| Error::InvalidUrl { url: format!("s3://{bucket}"), reason: e.to_string() })?;
    Ok(Arc::new(store))
}

/// One listed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Name relative to the vault.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// When the store last wrote it, Unix seconds by the store's clock.
    pub modified: i64,
}

/// Named objects under one vault prefix of any [`ObjectStore`].
#[derive(Clone)]
pub struct Backend {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    /// For a local folder: the same folder written without syncs, and its path.
    unsynced: Option<Unsynced>,
    /// The vault is append-only: writes are conditional creates, and deletions other than
    /// of locks are refused unless `admin`.
    append_only: bool,
    /// Signed with the admin credentials ([`Backend::as_admin`]).
    admin: bool,
    /// An S3 client built from the environment by [`Location::open`] (so it may be built
    /// again, for an append-only vault or with the admin's credentials).
    from_env: bool,
}

#[derive(Clone)]
struct Unsynced {
    store: Arc<dyn ObjectStore>,
    root: std::path::PathBuf,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Backend({})", self.url)
    }
}

impl Backend {
    /// Wraps an existing store (tests, embedding apps) with a key prefix.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Self {
        Self {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            url: url.to_string(),
            unsynced: None,
            append_only: false,
            admin: false,
            from_env: false,
        }
    }

    /// Holds writes and deletions to an append-only vault's rules (set from its config).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] when its S3 client cannot be built again.
    pub(crate) fn set_append_only(&mut self, on: bool) -> Result<()> {
        if on
            && !self.append_only
            && self.from_env
            && let Ok(Location::S3 { bucket, .. }) = Location::parse(&self.url)
        {
            self.store = append_only_store(&bucket, None)?;
        }
        self.append_only = on;
        Ok(())
    }

    /// Whether this backend may delete `name` (a device in an append-only vault deletes
    /// only locks).
    pub fn may_delete(&self, name: &str) -> bool {
        !self.append_only || self.admin || name.starts_with(&format!("{}/", crate::format::names::LOCKS))
    }

    /// The same vault reached with the admin credentials
    /// ([`crate::append_only::ADMIN_ACCESS_KEY_ENV`] and its secret): an S3 client signing
    /// with them, allowed to delete. A local folder, a memory store, or a store handed to
    /// [`Backend::new`] (whose credentials are its owner's business) is its own admin.
    ///
    /// # Errors
    /// [`Error::AppendOnly`] when they are not set; [`Error::InvalidUrl`] when the client
    /// cannot be built.
    pub fn as_admin(&self) -> Result<Backend> {
        let mut admin = self.clone();
        admin.admin = true;
        if self.from_env
            && let Ok(Location::S3 { bucket, .. }) = Location::parse(&self.url)
        {
            let creds = crate::append_only::admin_credentials().ok_or_else(|| {
                Error::AppendOnly(format!(
                    "{} is append-only: this needs its admin credentials ({} and {}), which a device has not",
                    self.url,
                    crate::append_only::ADMIN_ACCESS_KEY_ENV,
                    crate::append_only::ADMIN_SECRET_KEY_ENV
                ))
            })?;
            admin.store = append_only_store(&bucket, Some(&creds))?;
        }
        Ok(admin)
    }

    /// True for a local folder or memory (no network between us and the bytes).
    pub fn is_local(&self) -> bool {
        !self.url.starts_with("s3://")
    }

    /// The URL this backend was opened from.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, name: &str) -> StorePath {
        if self.prefix.is_empty() { StorePath::from(name) } else { StorePath::from(format!("{}/{name}", self.prefix)) }
    }

    fn err(name: &str, source: object_store::Error) -> Error {
        match source {
            object_store::Error::NotFound { .. } => Error::NotFound { object: name.to_string() },
            source => Error::store(name, &source),
        }
    }

    /// Reads a whole object.
    ///
    /// # Errors
    /// [`Error::NotFound`] or [`Error::Store`], naming the object.
    pub async fn get(&self, name: &str) -> Result<Bytes> {
        let res = self.store.get(&self.path(name)).await.map_err(|e| Self::err(name, e))?;
        res.bytes().await.map_err(|e| Self::err(name, e))
    }

    /// Reads a byte range of an object.
    ///
    /// # Errors
    /// As [`Backend::get`]; a range past the end is an error.
    pub async fn get_range(&self, name: &str, range: Range<u64>) -> Result<Bytes> {
        let want = range.end - range.start;
        let bytes = self.store.get_range(&self.path(name), range).await.map_err(|e| Self::err(name, e))?;
        if bytes.len() as u64 != want {
            // The store's fault, not the object's: trying again may succeed.
            let message = format!("short read: {} of {want} bytes", bytes.len());
            return Err(Error::Store { object: name.to_string(), message, retryable: true });
        }
        Ok(bytes)
    }

    /// Writes a content-named object (whose content is the same whoever writes it),
    /// replacing any existing one; in an append-only vault, only if none exists (a
    /// conditional create, which is all a device may do there).
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn put(&self, name: &str, bytes: Bytes) -> Result<()> {
        if self.append_only {
            return match self.put_new(name, bytes).await {
                Err(Error::AlreadyExists(_)) => Ok(()),
                other => other,
            };
        }
        self.replace(name, bytes).await
    }

    /// Writes an object, replacing any existing one (a lock's refresh).
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn replace(&self, name: &str, bytes: Bytes) -> Result<()> {
        self.store.put(&self.path(name), PutPayload::from(bytes)).await.map_err(|e| Self::err(name, e))?;
        Ok(())
    }

    /// Writes one object of a batch, replacing any existing one (content-named objects only).
    /// A local folder skips the per-object sync (a file sync and a folder sync each, which
    /// would stall the writer); the caller must [`Backend::sync`] the batch before anything
    /// names its objects. Object stores are durable on return; the same as [`Backend::put`].
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn put_unsynced(&self, name: &str, bytes: Bytes) -> Result<()> {
        let Some(unsynced) = self.unsynced.as_ref().filter(|_| !self.append_only) else {
            return self.put(name, bytes).await;
        };
        unsynced.store.put(&self.path(name), PutPayload::from(bytes)).await.map_err(|e| Self::err(name, e))?;
        Ok(())
    }

    /// Makes objects written with [`Backend::put_unsynced`] durable: each file's data, then
    /// every folder that gained an entry, up to the vault's root. Nothing to do elsewhere.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file or folder that could not be synced.
    pub async fn sync(&self, names: Vec<String>) -> Result<()> {
        let Some(unsynced) = &self.unsynced else {
            return Ok(());
        };
        let root = unsynced.root.clone();
        let sync = move || -> Result<()> {
            let mut folders = std::collections::BTreeSet::new();
            for name in &names {
                let path = root.join(name);
                let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
                file.sync_data().map_err(|e| Error::io(&path, e))?;
                folders
                    .extend(path.ancestors().skip(1).take_while(|dir| dir.starts_with(&root)).map(|d| d.to_path_buf()));
            }
            // Deepest first: a folder's entry in its parent is synced after its own entries.
            for dir in folders.iter().rev() {
                let handle = std::fs::File::open(dir).map_err(|e| Error::io(dir, e))?;
                handle.sync_all().map_err(|e| Error::io(dir, e))?;
            }
            Ok(())
        };
        tokio::task::spawn_blocking(sync).await.map_err(|e| Error::Invalid(format!("sync task failed: {e}")))?
    }

    /// Writes an object only if no object of that name exists (a conditional write).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] when it exists; [`Error::Store`] otherwise.
    pub async fn put_new(&self, name: &str, bytes: Bytes) -> Result<()> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(&self.path(name), PutPayload::from(bytes), opts).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                Err(Error::AlreadyExists(format!("{}/{name}", self.url)))
            }
            Err(e) => Err(Self::err(name, e)),
        }
    }

    /// When the store last wrote an object, in Unix seconds by the store's own clock (its
    /// `LastModified`); `None` when there is no such object.
    ///
    /// # Errors
    /// [`Error::Store`] when the store cannot answer.
    pub async fn modified(&self, name: &str) -> Result<Option<i64>> {
        match self.store.head(&self.path(name)).await {
            Ok(meta) => Ok(Some(meta.last_modified.timestamp())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Self::err(name, e)),
        }
    }

    /// Whether an object exists.
    ///
    /// # Errors
    /// [`Error::Store`] when the store cannot answer.
    pub async fn exists(&self, name: &str) -> Result<bool> {
        match self.store.head(&self.path(name)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Self::err(name, e)),
        }
    }

    /// Lists the objects under a folder (`"data"`, `"index"`, …), recursively, as
    /// `(name relative to the vault, size)`.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn list(&self, folder: &str) -> Result<Vec<(String, u64)>> {
        Ok(self.list_listed(folder).await?.into_iter().map(|l| (l.name, l.size)).collect())
    }

    /// The last path components (ids) of the objects listed in a folder.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn names_in(&self, folder: &str) -> Result<std::collections::HashSet<String>> {
        Ok(self
            .list(folder)
            .await?
            .into_iter()
            .map(|(name, _)| crate::format::names::id_part(&name).to_string())
            .collect())
    }

    /// Lists a folder twice and returns the union, for decisions that delete: an object a
    /// listing misses (a dropped page, a lagging replica) must be missed by both.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn list_twice(&self, folder: &str) -> Result<Vec<Listed>> {
        let mut all = self.list_listed(folder).await?;
        let seen: std::collections::HashSet<String> = all.iter().map(|l| l.name.clone()).collect();
        all.extend(self.list_listed(folder).await?.into_iter().filter(|l| !seen.contains(&l.name)));
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    /// As [`Backend::list`], with each object's `LastModified` (store clock).
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn list_listed(&self, folder: &str) -> Result<Vec<Listed>> {
        let base = self.path(folder);
        let skip = if self.prefix.is_empty() { 0 } else { self.prefix.len() + 1 };
        let metas: Vec<_> = self.store.list(Some(&base)).try_collect().await.map_err(|e| Self::err(folder, e))?;
        let mut out: Vec<_> = metas
            .into_iter()
            .map(|m| Listed {
                name: m.location.as_ref()[skip..].to_string(),
                size: m.size,
                modified: m.last_modified.timestamp(),
            })
            .filter(|l| !l.name.rsplit('/').next().unwrap_or("").starts_with('#'))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes an object; deleting a missing object is not an error. In an append-only
    /// vault, only a lock unless signed with the admin credentials ([`Backend::as_admin`]).
    ///
    /// # Errors
    /// [`Error::AppendOnly`] for what a device may not delete; [`Error::Store`].
    pub async fn delete(&self, name: &str) -> Result<()> {
        if !self.may_delete(name) {
            return Err(Error::AppendOnly(format!(
                "{}/{name}: the vault is append-only, and deleting needs the admin credentials ({} and {})",
                self.url,
                crate::append_only::ADMIN_ACCESS_KEY_ENV,
                crate::append_only::ADMIN_SECRET_KEY_ENV
            )));
        }
        match self.store.delete(&self.path(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Self::err(name, e)),
        }
    }
}

/// An `aws-sdk-s3` client (for what object_store cannot: buckets, versioning, Object Lock)
/// from the same `AWS_*` variables as the object client, and its region.
pub(crate) fn admin_client() -> (aws_sdk_s3::Client, String) {
    let env = |k: &str| std::env::var(k).ok();
    let creds = aws_sdk_s3::config::Credentials::new(
        env("AWS_ACCESS_KEY_ID").unwrap_or_default(),
        env("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
        env("AWS_SESSION_TOKEN"),
        None,
        "zerok-env",
    );
    let region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into());
    let mut conf = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_s3::config::Region::new(region.clone()))
        .credentials_provider(creds);
    if let Some(endpoint) = env("AWS_ENDPOINT_URL") {
        conf = conf.endpoint_url(endpoint).force_path_style(true);
    }
    (aws_sdk_s3::Client::from_conf(conf.build()), region)
}

/// Creates the S3 bucket of `location` when it does not exist (object_store cannot), using
/// the same `AWS_*` variables as the client; with `object_lock`, a bucket that can hold
/// locked objects (which S3 turns versioning on for).
///
/// # Errors
/// [`Error::Invalid`] when the store refuses; a local folder needs nothing.
pub async fn create_bucket(location: &Location, object_lock: bool) -> Result<()> {
    let Location::S3 { bucket, .. } = location else {
        return Ok(());
    };
    let (client, region) = admin_client();
    if client.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(());
    }
    let mut req = client.create_bucket().bucket(bucket);
    if object_lock {
        req = req.object_lock_enabled_for_bucket(true);
    }
    if region != "us-east-1" {
        req = req.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    req.send().await.map_err(|e| {
        Error::Invalid(format!("creating bucket {bucket}: {}", aws_sdk_s3::error::DisplayErrorContext(e)))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(Location::parse("file:///srv/v").unwrap(), Location::Local("/srv/v".into()));
        assert_eq!(
            Location::parse("s3://b/some/prefix/").unwrap(),
            Location::S3 { bucket: "b".into(), prefix: "some/prefix".into() }
        );
        assert_eq!(Location::parse("memory://").unwrap(), Location::Memory);
        assert!(matches!(Location::parse("/abs").unwrap(), Location::Local(_)));
        for bad in ["ftp://x", "s3://", "file://relative", ""] {
            assert!(matches!(Location::parse(bad), Err(Error::InvalidUrl { .. })), "{bad}");
        }
    }

    #[tokio::test]
    async fn batch_members_are_readable_and_sync_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("vault").display().to_string();
        let backend = Location::parse(&url).unwrap().open(&url).unwrap();
        backend.put_unsynced("data/ab/pack", Bytes::from_static(b"pack bytes")).await.unwrap();
        backend.sync(vec!["data/ab/pack".into()]).await.unwrap();
        assert_eq!(&backend.get("data/ab/pack").await.unwrap()[..], b"pack bytes");
        let err = backend.sync(vec!["data/cd/gone".into()]).await.unwrap_err();
        assert!(matches!(&err, Error::Io { path, .. } if path.ends_with("data/cd/gone")), "{err}");
    }
}
