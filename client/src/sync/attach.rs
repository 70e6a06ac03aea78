//! Attachments on the sync client: pushing a message with one, fetching one (from its
//! sender while it is online, else from a vault relay), acknowledging it, having vault
//! relays archive it, and releasing this device's copy once everyone has it.

use std::{path::Path, time::Duration};

use iroh::{EndpointAddr, PublicKey, TransportAddr};
use zerok_core::sync::{
    BlobId, Message,
    content::{Ack, Attached, ContentHash, ContentRef, MAX_ADDRS},
    message,
};

use super::{
    KIND_ACK, KIND_CONTENT, SyncClient, SyncEvent,
    content::{ContentSource, ContentStore, Fetched, GRACE_SECS, Record, Sent},
    invite::now,
};
use crate::Error;

/// A message pushed with an attachment.
#[derive(Clone, Debug)]
pub struct AttachedPush {
    /// The message's id.
    pub blob_id: BlobId,
    /// Its cursor at the first relay that took it.
    pub cursor: u64,
    /// The attachment.
    pub content: ContentRef,
}

/// How often a vault relay is asked whether it holds an attachment yet.
const ARCHIVE_POLL: Duration = Duration::from_millis(200);

impl SyncClient {
    /// The attachment store, opened (and served on the endpoint) on first use.
    pub(super) async fn blobs(&mut self) -> Result<ContentStore, Error> {
        if let Some((store, _)) = &self.blobs {
            return Ok(store.clone());
        }
        let store = ContentStore::open(&self.home.content_dir(), self.members.clone(), self.served.clone()).await?;
        let router =
            iroh::protocol::Router::builder(self.endpoint.clone()).accept(iroh_blobs::ALPN, store.protocol()).spawn();
        self.blobs = Some((store.clone(), router));
        Ok(store)
    }

    /// Sets the largest attachment this client pushes (default
    /// [`super::DEFAULT_MAX_CONTENT_BYTES`]).
    pub fn set_max_content_bytes(&mut self, max: u64) {
        self.max_content = max;
    }

    /// Encrypts `source` as an attachment, keeps it here for the group's members to fetch,
    /// and pushes a message carrying only its reference (sealed like any message, so relays
    /// learn neither its hash nor its size). Vault relays are asked to archive it.
    ///
    /// # Errors
    /// As [`SyncClient::push`], and [`Error::Content`] for a source that cannot be read
    /// or is over the limit.
    pub async fn push_content(&mut self, source: impl Into<ContentSource>, mime: &str) -> Result<ContentRef, Error> {
        Ok(self.push_attached(&[], source.into(), mime).await?.content)
    }

    /// [`SyncClient::push_content`] with an app message (`data`) going with it.
    ///
    /// # Errors
    /// As [`SyncClient::push_content`].
    pub async fn push_attached(
        &mut self,
        data: &[u8],
        source: ContentSource,
        mime: &str,
    ) -> Result<AttachedPush, Error> {
        // Who may fetch it: the roster as it is now.
        self.sync_rosters().await?;
        let mut content = self.blobs().await?.add(&self.state.secret(), source, mime, self.max_content).await?;
        // IP addresses only: a relay URL from a member's reference would have fetchers dial
        // a host of that member's choosing (with DNS discovery on they find the sender's).
        content.addrs = self.endpoint.addr().ip_addrs().map(|a| a.to_string()).take(MAX_ADDRS).collect();
        let body = rmp_serde::to_vec_named(&Attached { content: content.clone(), data: data.to_vec() })
            .map_err(|e| Error::State(e.to_string()))?;
        let (blob_id, cursor) = self.push_plain(&[&[KIND_CONTENT][..], &body].concat()).await?;
        let record = Record {
            content: content.clone(),
            group: self.keys.id(),
            blob_id,
            sender: self.device_id(),
            since: now(),
            sent: Some(Sent {
                vaults: self.vaults().into_iter().map(|i| self.conns[i].0.to_string()).collect(),
                ..Sent::default()
            }),
            fetched: true,
        };
        self.refs.put_record(&record)?;
        self.archive(&content.hash).await?;
        Ok(AttachedPush { blob_id, cursor, content })
    }

    /// Vault relays connected now.
    fn vaults(&self) -> Vec<usize> {
        (0..self.conns.len()).filter(|&i| self.conns[i].1.welcome.vault).collect()
    }

    /// Asks each vault relay that does not hold `hash` yet to archive it (it fetches it from
    /// this device); returns how many hold it now.
    async fn archive(&mut self, hash: &ContentHash) -> Result<usize, Error> {
        let Some(mut record) = self.refs.record(hash) else { return Ok(0) };
        let Some(sent) = record.sent.as_mut() else { return Ok(0) };
        let msg = Message::ContentRef(message::ContentRef {
            content_hash: hash.0,
            encrypted_size: record.content.encrypted_size(),
        });
        let mut held = 0;
        for i in self.vaults() {
            let relay = self.conns[i].0.to_string();
            if sent.archived.contains(&relay) {
                held += 1;
                continue;
            }
            match self.request(i, &msg).await? {
                Message::ContentAck(ack) if ack.content_hash == hash.0 => {
                    sent.archived.insert(relay);
                    held += 1;
                }
                Message::Ok => {}
                other => return Err(Error::unexpected(&other)),
            }
        }
        self.refs.put_record(&record)?;
        Ok(held)
    }

    /// Waits until every vault relay connected holds the attachment this device sent (so
    /// the device may go offline), at most `timeout`. Returns how many hold it.
    ///
    /// # Errors
    /// A vault relay refused it (too large, quota), or connection failures.
    pub async fn wait_archived(&mut self, hash: &ContentHash, timeout: Duration) -> Result<usize, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let wanted = self.vaults().len();
        loop {
            let held = self.archive(hash).await?;
            if held >= wanted || tokio::time::Instant::now() >= deadline {
                return Ok(held);
            }
            tokio::time::sleep(ARCHIVE_POLL).await;
        }
    }

    /// The attachment with this hash, if a message pulled here referenced it.
    pub fn content(&self, hash: &ContentHash) -> Option<ContentRef> {
        self.refs.record(hash).map(|r| r.content)
    }

    /// Whether this device let its copy of an attachment it sent go (every member and
    /// vault relay has it, or the grace period ended).
    pub fn content_released(&self, hash: &ContentHash) -> bool {
        self.refs.record(hash).and_then(|r| r.sent).is_some_and(|s| s.released)
    }

    /// Payload bytes this device's attachment store has served to others.
    pub fn content_bytes_served(&self) -> u64 {
        self.served.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Fetches an attachment into `dest` (a new file): from its sender while that device
    /// serves it, else from the group's vault relays; verified while it streams, resumed
    /// where an earlier fetch stopped, then decrypted. Progress comes as
    /// [`SyncEvent::ContentProgress`]. The sender is told it arrived (so it can release its
    /// copy once every member has it).
    ///
    /// # Errors
    /// [`Error::Content`]: no provider has it, it does not verify or open (named), or
    /// `dest` exists.
    pub async fn fetch_content(&mut self, content: &ContentRef, dest: &Path) -> Result<Fetched, Error> {
        let record = self.refs.record(&content.hash);
        let sender = record.as_ref().map(|r| r.sender);
        let mut providers = Vec::new();
        if let Some(key) = sender.filter(|s| *s != self.device_id()).and_then(|s| PublicKey::from_bytes(&s.0).ok()) {
            // Its addresses then; with mDNS or discovery on, also wherever it is now.
            let addrs = content.addrs.iter().filter_map(|a| a.parse().ok());
            providers.push(EndpointAddr::new(key).with_addrs(addrs.map(TransportAddr::Ip)));
        }
        for i in self.vaults() {
            let relay = &self.conns[i].0;
            // A relay known by its id alone is found by mDNS or discovery.
            if let Ok(key) = PublicKey::from_bytes(&relay.id) {
                providers.push(EndpointAddr::new(key).with_addrs(relay.addr.map(TransportAddr::Ip)));
            }
        }
        let events = self.events.clone();
        let hash = content.hash;
        let fetched = self
            .blobs()
            .await?
            .fetch(&self.endpoint, content, &providers, dest, |received, total| {
                let _ = events.send(SyncEvent::ContentProgress { hash, received, total });
            })
            .await?;
        if let Some(mut record) = record {
            record.fetched = true;
            self.refs.put_record(&record)?;
            if sender != Some(self.device_id()) {
                self.acknowledge(&hash).await?;
            }
        }
        Ok(fetched)
    }

    async fn acknowledge(&mut self, hash: &ContentHash) -> Result<(), Error> {
        let body = rmp_serde::to_vec_named(&Ack { hash: *hash }).map_err(|e| Error::State(e.to_string()))?;
        self.push_plain(&[&[KIND_ACK][..], &body].concat()).await?;
        Ok(())
    }

    /// Records the attachments and acknowledgements a read delivered, then releases
    /// this device's copies that every member (and every vault relay) now holds, or that
    /// waited out the grace period.
    pub(super) async fn note_content(&mut self, delivered: &super::Delivered) -> Result<(), Error> {
        for m in &delivered.messages {
            let Some(content) = &m.content else { continue };
            if self.refs.record(&content.hash).is_none() {
                let record = Record {
                    content: content.clone(),
                    group: m.group,
                    blob_id: m.blob_id,
                    sender: m.sender,
                    since: now(),
                    sent: None,
                    fetched: false,
                };
                self.refs.put_record(&record)?;
            }
        }
        for (_, from, hash) in &delivered.acks {
            let Some(mut record) = self.refs.record(hash) else { continue };
            if record.sent.as_mut().is_some_and(|s| s.acked.insert(*from)) {
                self.refs.put_record(&record)?;
            }
        }
        // Reads every record: only when an acknowledgement came (and once per connect,
        // for the grace period), not on every pull.
        if delivered.acks.is_empty() { Ok(()) } else { self.release_held().await }
    }

    pub(super) async fn release_held(&mut self) -> Result<(), Error> {
        let me = self.device_id();
        let members: Vec<_> = self.state.roster().members().keys().filter(|d| **d != me).copied().collect();
        for mut record in self.refs.records() {
            let Some(sent) = record.sent.as_mut().filter(|s| !s.released) else { continue };
            let everyone = members.iter().all(|m| sent.acked.contains(m)) && sent.vaults.is_subset(&sent.archived);
            if everyone || now() > record.since + GRACE_SECS {
                self.blobs().await?.release(&record.content.hash).await?;
                sent.released = true;
                self.refs.put_record(&record)?;
            }
        }
        Ok(())
    }

    /// Brings the roster up to date with the relays (following a rotation), and with it who
    /// may fetch this device's attachments. A device that only serves calls it when a
    /// relay says the roster changed ([`SyncEvent::RosterChanged`]).
    ///
    /// # Errors
    /// As [`SyncClient::pull`].
    pub async fn refresh_roster(&mut self) -> Result<(), Error> {
        self.sync_rosters().await.map(|_| ())
    }

    /// Who may fetch this device's attachments: the roster's members and the group's relays.
    pub(super) fn refresh_members(&self) -> Result<(), Error> {
        let relays = self.state.relays()?.into_iter().map(|r| r.id);
        self.members.set(self.state.roster().members().keys().map(|d| d.0).chain(relays));
        Ok(())
    }
}
