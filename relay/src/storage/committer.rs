//! Group commit for transit-mode pushes: one writer thread takes every push waiting at that
//! moment (up to [`MAX_BATCH`]) and stores them in one transaction with one durable
//! commit, then acknowledges each. A lone push costs one commit as before; eight devices
//! pushing at once share one `fsync` instead of queueing for eight.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use zerok_core::sync::{BlobId, DeviceId, GroupId};

use crate::{
    Error, Result,
    store::{Caps, NewBlob, Pushed, Store},
};

/// Most pushes in one transaction.
pub const MAX_BATCH: usize = 256;
/// Pushes waiting for the writer before new ones wait for room.
const QUEUE: usize = 4 * MAX_BATCH;

/// A push handed to the writer.
struct Job {
    group: GroupId,
    sender: DeviceId,
    blob_id: BlobId,
    payload: Vec<u8>,
    ttl_secs: u64,
    now: u64,
    reply: oneshot::Sender<Result<Pushed>>,
}

/// The handle sessions push through; [`Committer::stop`] ends the writer thread.
pub struct Committer {
    jobs: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Committer {
    /// Starts the writer thread over `store`, refusing pushes past `caps`.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn start(store: Arc<Store>, caps: Caps) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let writer =
            std::thread::Builder::new().name("relay-commit".into()).spawn(move || write_loop(&store, caps, rx))?;
        Ok(Self { jobs: Some(jobs).into(), writer: Some(writer).into() })
    }

    /// Refuses new pushes, lets the writer commit what it holds, and waits for it to end
    /// (after which it no longer holds the store).
    pub async fn stop(&self) {
        drop(self.jobs.lock().expect("jobs").take());
        let writer = self.writer.lock().expect("writer").take();
        if let Some(writer) = writer {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }

    /// Stores a push durably (sharing the commit with pushes that arrive meanwhile).
    ///
    /// # Errors
    /// As [`Store::push`].
    pub async fn push(&self, blob: &NewBlob<'_>) -> Result<Pushed> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            group: *blob.group,
            sender: *blob.sender,
            blob_id: *blob.blob_id,
            payload: blob.payload.to_vec(),
            ttl_secs: blob.ttl_secs,
            now: blob.now,
            reply,
        };
        let stopped = || Error::ShuttingDown;
        let jobs = self.jobs.lock().expect("jobs").clone().ok_or_else(stopped)?;
        jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn write_loop(store: &Store, caps: Caps, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let blobs: Vec<NewBlob<'_>> = batch
            .iter()
            .map(|j| NewBlob {
                group: &j.group,
                sender: &j.sender,
                blob_id: &j.blob_id,
                payload: &j.payload,
                ttl_secs: j.ttl_secs,
                now: j.now,
            })
            .collect();
        let results = store.push_many(&blobs, caps);
        drop(blobs);
        match results {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                let message = e.to_string();
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(Error::Db(message.clone())));
                }
            }
        }
    }
}
