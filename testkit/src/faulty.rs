//! A fault-injecting [`ObjectStore`] wrapper: transient errors, timeouts, short reads,
//! listings that drop entries, writes and deletes that land but report failure, and a gate
//! that holds every write (a paused process, as the store sees it). Faults come from a
//! seeded generator, so a failing run repeats, and every one is counted.

use std::{
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, path::Path,
};

/// How often each fault strikes, per call (or per listed entry for `list_drop`), 0.0–1.0.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// The call fails and does nothing.
    pub error: f64,
    /// The call waits [`Faults::delay`], then fails and does nothing.
    pub timeout: f64,
    /// A write or delete is carried out, then reported as failed.
    pub lost_reply: f64,
    /// A read returns fewer bytes than the object holds.
    pub short_read: f64,
    /// A listing leaves out an entry.
    pub list_drop: f64,
    /// How long a timeout waits.
    pub delay: Duration,
}

/// Counts of injected faults.
#[derive(Debug, Default)]
pub struct Injected {
    /// Calls failed before they ran.
    pub errors: AtomicU64,
    /// Calls that timed out.
    pub timeouts: AtomicU64,
    /// Writes and deletes carried out but reported failed.
    pub lost_replies: AtomicU64,
    /// Reads cut short.
    pub short_reads: AtomicU64,
    /// Entries left out of listings.
    pub list_drops: AtomicU64,
}

impl Injected {
    /// All faults so far.
    pub fn total(&self) -> u64 {
        [&self.errors, &self.timeouts, &self.lost_replies, &self.short_reads, &self.list_drops]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

struct Shared {
    faults: Mutex<Faults>,
    rng: Mutex<u64>,
    injected: Injected,
    held: tokio::sync::watch::Sender<bool>,
    /// Listings of paths containing `.0` leave out objects whose name contains `.1`, for
    /// `.2` more listings.
    hidden: Mutex<Option<(String, String, usize)>>,
    /// Objects read (GET, whole or ranged; not HEAD), in order, since
    /// [`FaultyStore::take_reads`].
    reads: Mutex<Vec<String>>,
}

impl Shared {
    fn roll(&self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        let mut x = self.rng.lock().expect("rng");
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn faults(&self) -> Faults {
        *self.faults.lock().expect("faults")
    }

    /// A fault before the call: an error, or a timeout after the delay.
    async fn before(&self, op: &str, location: &Path) -> Result<()> {
        let f = self.faults();
        if self.roll(f.error) {
            self.injected.errors.fetch_add(1, Ordering::Relaxed);
            return Err(fault(op, location, "injected error"));
        }
        if self.roll(f.timeout) {
            self.injected.timeouts.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(f.delay).await;
            return Err(fault(op, location, "injected timeout"));
        }
        Ok(())
    }

    /// A fault after a write or delete that was carried out.
    fn after(&self, op: &str, location: &Path) -> Result<()> {
        if self.roll(self.faults().lost_reply) {
            self.injected.lost_replies.fetch_add(1, Ordering::Relaxed);
            return Err(fault(op, location, "injected lost reply (the call did land)"));
        }
        Ok(())
    }

    async fn writes_allowed(&self) {
        let mut rx = self.held.subscribe();
        let _ = rx.wait_for(|held| !held).await;
    }
}

fn fault(op: &str, location: &Path, what: &str) -> object_store::Error {
    object_store::Error::Generic { store: "faulty", source: format!("{op} {location}: {what}").into() }
}

/// Wraps a store with faults; cloning shares the faults and counts.
#[derive(Clone)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    shared: Arc<Shared>,
}

impl FaultyStore {
    /// No faults until [`FaultyStore::set`]; `seed` fixes the sequence.
    pub fn new(inner: Arc<dyn ObjectStore>, seed: u64) -> Self {
        let shared = Shared {
            faults: Mutex::new(Faults::default()),
            rng: Mutex::new(seed | 1),
            injected: Injected::default(),
            held: tokio::sync::watch::channel(false).0,
            hidden: Mutex::new(None),
            reads: Mutex::new(Vec::new()),
        };
        Self { inner, shared: Arc::new(shared) }
    }

    /// Sets the fault rates (all zero: a faithful store).
    pub fn set(&self, faults: Faults) {
        *self.shared.faults.lock().expect("faults") = faults;
    }

    /// Holds every write and delete until [`FaultyStore::release`] (reads go on).
    pub fn hold_writes(&self) {
        self.shared.held.send_replace(true);
    }

    /// Lets held writes go on.
    pub fn release(&self) {
        self.shared.held.send_replace(false);
    }

    /// The next `listings` listings under `folder` leave out every object whose name
    /// contains `name` (a lagging replica, or a provider hiding it); reads still find it.
    pub fn hide(&self, folder: &str, name: &str, listings: usize) {
        *self.shared.hidden.lock().expect("hidden") = Some((folder.into(), name.into(), listings));
    }

    /// The objects read since the last call (each GET, whole or ranged, by name; HEADs are
    /// not reads), which
    /// tells a test what a reader fetched from the store and what it had already.
    pub fn take_reads(&self) -> Vec<String> {
        std::mem::take(&mut *self.shared.reads.lock().expect("reads"))
    }

    /// The faults injected so far.
    pub fn injected(&self) -> &Injected {
        &self.shared.injected
    }
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.shared.writes_allowed().await;
        self.shared.before("put", location).await?;
        let done = self.inner.put_opts(location, payload, opts).await?;
        self.shared.after("put", location)?;
        Ok(done)
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.shared.writes_allowed().await;
        self.shared.before("put", location).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if !options.head {
            self.shared.reads.lock().expect("reads").push(location.to_string());
        }
        self.shared.before("get", location).await?;
        let head = options.head;
        let got = self.inner.get_opts(location, options).await?;
        if head || !self.shared.roll(self.shared.faults().short_read) {
            return Ok(got);
        }
        self.shared.injected.short_reads.fetch_add(1, Ordering::Relaxed);
        let (meta, range, attributes, extensions) =
            (got.meta.clone(), got.range.clone(), got.attributes.clone(), got.extensions.clone());
        let bytes = got.bytes().await?;
        let cut = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
        let payload = GetResultPayload::Stream(futures::stream::once(async move { Ok(cut) }).boxed());
        // The range still claims the whole read: the bytes fall short of it, as a cut
        // connection's do.
        Ok(GetResult { payload, meta, range, attributes, extensions })
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let (inner, shared) = (self.inner.clone(), self.shared.clone());
        locations
            .then(move |location| {
                let (inner, shared) = (inner.clone(), shared.clone());
                async move {
                    let location = location?;
                    shared.writes_allowed().await;
                    shared.before("delete", &location).await?;
                    inner.delete(&location).await?;
                    shared.after("delete", &location)?;
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let shared = self.shared.clone();
        let faults = shared.faults();
        if shared.roll(faults.error) {
            shared.injected.errors.fetch_add(1, Ordering::Relaxed);
            let err = fault("list", prefix.unwrap_or(&Path::from("")), "injected error");
            return futures::stream::once(async move { Err(err) }).boxed();
        }
        let hide = {
            let mut hidden = shared.hidden.lock().expect("hidden");
            match hidden.as_mut() {
                Some((folder, name, left))
                    if *left > 0 && prefix.is_some_and(|p| p.as_ref().contains(folder.as_str())) =>
                {
                    *left -= 1;
                    Some(name.clone())
                }
                _ => None,
            }
        };
        self.inner
            .list(prefix)
            .filter(move |entry| {
                let hidden = match (&hide, entry) {
                    (Some(name), Ok(meta)) => meta.location.as_ref().contains(name.as_str()),
                    _ => false,
                };
                let dropped = !hidden && entry.is_ok() && shared.roll(faults.list_drop);
                if dropped {
                    shared.injected.list_drops.fetch_add(1, Ordering::Relaxed);
                }
                futures::future::ready(!(hidden || dropped))
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.shared.writes_allowed().await;
        self.shared.before("copy", to).await?;
        self.inner.copy_opts(from, to, options).await
    }
}
