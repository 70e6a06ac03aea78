//! The sync protocol's pure parts: group keys and the group proof, the signed roster,
//! payload encryption and sender signatures, wire messages and framing, reconnect
//! backoff, and a redacting wrapper for logging identifiers.
//!
//! This page is the protocol document (protocol version 2, [`message::PROTOCOL_VERSION`]);
//! `vault/FORMAT.md` is its counterpart for the vault. MUST and SHOULD are as in RFC 2119.
//!
//! # 1. Keys
//!
//! ```text
//! group secret S (32 random bytes, shared by the group's current devices, never sent to a relay)
//!   prk = HKDF-SHA256-extract(salt = "zerok-group-v1", S)
//!   sync key  = expand(prk, "sync")      XChaCha20-Poly1305 key of message payloads
//!   auth seed = expand(prk, "auth")      Ed25519 signing key of the group ("group auth key")
//!   group_id  = SHA-256("zerok-group-id-v1" ‖ group auth public key)
//! device key D (Ed25519, 32 random bytes, per device, never leaves it but into its own
//!   vault): the device id is its public key, which is also the device's iroh endpoint id.
//! ```
//!
//! # 2. Sessions and the group proof
//!
//! HELLO carries the group's auth public key and a signature over `"zerok-hello-v1" ‖
//! group_id ‖ client endpoint id ‖ relay endpoint id`. The relay checks the key hashes to the
//! group id and the signature verifies for *this* connection's two endpoint ids (iroh
//! authenticates both), so a proof copied from another connection is useless. The proof
//! says only "knows S"; *membership* is the roster's (§3): the relay serves a device as a
//! member only when the device id is a current member of its copy of the roster. Anyone else
//! who proves S (a device not yet joined, one whose relay lost its state, or a removed device
//! under a fresh key) is a *guest*: it may read the roster (ROSTER_GET) and append to it
//! (ROSTER_APPEND: a join, or a log the relay lacks) and nothing else (`NOT_MEMBER`). A
//! removed device is refused at HELLO (`DEVICE_REVOKED`).
//!
//! # 3. The roster: membership decided by the devices
//!
//! The roster is a log of entries, each signed by a device key, each naming the hash of the
//! one before (a hash chain, as Keybase's sigchains; each rotation is an epoch, as in MLS,
//! RFC 9420). Encoding, signatures and hashes are in [`roster`]; golden vectors in its tests.
//! Every device and every relay verifies every entry with the same rules
//! ([`roster::Roster::apply`]) and refuses, never applies, one that fails; a device reports
//! it as [`message::ErrorCode::RosterRefused`] from the relay or as an event of its own.
//!
//! - `create` (seq 1, prev = 0): the author is the first member; `group` is the group's id.
//! - `join {name, ticket, invite_proof}`: the author becomes a member if the ticket is signed
//!   by a *current* member for this very group, its invite key was never used in this log,
//!   `invite_proof` is the invite key's signature over `group ‖ author` (so only a holder
//!   of the invite secret can join, and only as itself), and — at relays, by the relay's
//!   clock — the ticket has not expired. A device that is or was a member cannot join again
//!   under the same key.
//! - `remove {device, rotation}`: by a current member (itself included); the last member
//!   cannot be removed. `rotation = {next, sealed}` moves the group to a new secret S′:
//!   `next` MUST differ from the current group, `sealed` MUST name exactly the remaining
//!   members, once each, and give each `seal::seal_to(device, S′)`. A device that opens its
//!   copy MUST check S′ derives `next`. Later entries are appended in group `next`; the
//!   seq and the chain continue (one log per *lineage*, named by the genesis group).
//!
//! Order and concurrency: entries are linear. A relay appends an entry only when it extends
//! its head (`seq = head + 1`, `prev = hash(head)`) and answers `ROSTER_CONFLICT`
//! otherwise; the primary relay (the first of a group's relays) is where changes are made
//! first, so two devices revoking at once are ordered there: the loser fetches the winner's
//! entry, follows its rotation, and retries on the new head (or finds its work done).
//! Devices then send every other relay what it lacks (its head is behind theirs, or it lost
//! its state: then the whole log from the genesis, which it verifies from the start).
//!
//! Following: on every connect and pull a device fetches the entries after its own head
//! from each relay, verifies them, and, when the roster's group is no longer its own, opens
//! the rotation sealed to it and moves on, however long it was away (the roster has no TTL).
//! The group it leaves is *drained*: read to its end (relays refuse pushes into a rotated
//! group with `GROUP_ROTATED`; a device pushing into it follows the rotation and re-sends the
//! push, re-sealed, in the new group), so every message pushed before the rotation is
//! delivered before those after it. Queued pushes are re-sealed for the new group.
//!
//! # 4. Messages
//!
//! ```text
//! payload = XChaCha20-Poly1305(sync key, nonce 24 random, aad = "zerok-sync-v2" ‖ group_id ‖ blob_id ‖ sender,
//!                              sig (64) ‖ kind (1) ‖ data)
//! kind 0: app data; 1: MessagePack content::Attached (app data and an attachment's reference);
//!      2: MessagePack content::Ack (an attachment fetched; §9)
//! sig     = Ed25519(sender's device key, "zerok-message-v2" ‖ group_id ‖ blob_id ‖ sender ‖ kind ‖ data)
//! ```
//! `sender` is the device id the relay reports in PULL_RESPONSE. A receiver MUST refuse a
//! payload whose AEAD fails (`DecryptFailed`), whose signature does not verify for that
//! sender, or whose sender was never in the roster (`Forged`), and MUST drop a blob id it has
//! already delivered (`Duplicate`; the client remembers the last 2^20 ids).
//!
//! # 5. Pairing
//!
//! An invite (URL or short code; see `zerok_client::sync::Invite`) carries S, the relays, a
//! one-time invite key pair's secret, a ticket for it signed by the inviter, and the roster
//! position `(seq, hash)` it was made at. The joiner fetches the whole log from a relay,
//! MUST check it contains that entry (the anchor: everything before is the inviter's view,
//! everything after is verified by members' signatures), and appends its join. The relay
//! accepts one join per invite key, before the ticket's expiry by the relay's clock (an
//! inviting device computes expiry from the relay's clock, given in WELCOME, so its own clock
//! may be wrong). A short code's sealed invite sits in a relay bucket named by 16 bits of
//! the code's hash; the code has 80 secret bits, so the relay learns 16 and must try 2^64
//! codes, one Argon2id (19 MiB, 2 passes) each, to open a sealed invite it keeps.
//!
//! # 6. Threat model
//!
//! **A revoked device** (keeps all its files and keys, can mint new keys): after a rotating
//! removal it holds no key of the new group, so it can read nothing pushed there, cannot say
//! HELLO there, and cannot push, delete or revoke there. In the old group relays refuse its
//! own key at HELLO, and any fresh key too once they know of the rotation (before that, a
//! fresh key is a guest: no pulls, no pushes); its roster entries are refused everywhere
//! (not a member). A second key it used before the removal
//! was never in the roster, so it got nothing sealed. What it can still do: keep the
//! messages it had, and read the old group's roster at a relay that has not learnt of the
//! rotation (one that has refuses any new key in a rotated group). A device it *admitted*
//! with a proper invite is a member in its own right (listed with `added_by`): the CLI warns
//! when revoking a device that admitted others. With `--no-rotate` it still holds S, so a
//! relay that helps it (or one that lost its state, until a member has caught it up) could
//! show it later messages; that mode is for lost devices only.
//!
//! **A malicious member** can do what members do: push junk (bounded by quota and rate
//! limits), admit devices (visible in the roster), remove others (visible, signed, and
//! itself removable). It cannot forge another member's messages or entries, re-attribute
//! a message, or seal a rotation that leaves out a remaining member.
//!
//! **A malicious relay** sees ids, sizes, timing and the roster (device ids, names, who
//! admitted whom); it cannot read payloads or secrets, invent a member (entries need members'
//! signatures), get a device it invents sealed a new secret, or re-attribute or replay
//! messages undetected. It can withhold or delay anything (denial of service), show
//! different devices different *prefixes* of the log, and — since devices take roster news
//! from the group's *primary* relay only, the one place where changes are ordered — a
//! malicious primary can keep a device in a group the others left (it cannot forge the
//! rotation, only hide it; a device that sees a secondary ahead of the primary reports
//! it). A relay that missed a rotation (or hides it) still takes pushes in the old group
//! from devices that have not learnt of the rotation, and a removed device that is still
//! a member there can read them until a member catches that relay up; a removed device can
//! also make such a relay useless to the group by appending a fork there (devices refuse
//! it). A relay that lost its state learns the log from the first member
//! who connects. Each relay's copy of the roster is a second line of defence, never the only
//! one: devices verify everything themselves.
//!
//! **A device's clock** is never trusted for security: ticket expiry is judged by relays.
//!
//! # 7. Relay limits, deletion and close codes
//!
//! A relay serves strangers on the open internet, so every resource a peer can make it
//! hold is bounded in time and memory, and none of the bounds can be spent by one peer on
//! behalf of everyone (defaults in `relay/relay.example.toml`):
//!
//! - **Before HELLO.** A connection has `hello-timeout-secs` (10) to complete HELLO, the
//!   first frame's bytes included. At most `max-pending-per-ip` (32) such connections per
//!   IP address (an IPv6 /64); more are refused before the QUIC handshake. At most
//!   `max-pending` (2,048) in all; when full, the oldest is closed to make room, so a flood
//!   from many addresses costs each of its connections its place instead of locking
//!   members out; once half full, a peer must prove its address (a QUIC retry) first.
//!   Before HELLO a peer may open two requests and have 64 KiB in flight. Sessions
//!   (`max-sessions`, `max-sessions-per-ip` 256) are counted only after HELLO, and a guest's
//!   (in no roster) ends after `guest-session-secs` (60); a guest is refused in a group
//!   that rotated away (`GROUP_ROTATED`). HELLO spends the rate limits like any request.
//! - **Streams.** A peer may have `max-streams-per-connection` (16) requests open at once
//!   (QUIC stream credit: the peer cannot open more) and no unidirectional stream. Each
//!   request's frame must arrive within `request-timeout-secs` (10). A frame's buffer grows
//!   with the bytes that arrived, never to the length its header declares up front.
//! - **Rate.** Every request after HELLO spends one token of its device
//!   (`messages-per-minute`), of its group (`group-per-second`) and of the relay
//!   (`global-per-second`): `RATE_LIMITED` (2000).
//! - **Storage.** A payload must not be empty. Each stored message counts its payload plus
//!   256 bytes against its group's quota (`GROUP_QUOTA_EXCEEDED`, 2002). The relay refuses
//!   pushes with `RELAY_OVERLOADED` (3000) once all groups together hold `max-total-bytes`
//!   or its data folder's file system has less than `min-free-bytes` free. A failing
//!   database or object store answers `STORAGE_UNAVAILABLE` (3002): try again later.
//! - **Devices.** A roster of a group holds at most `max-group-devices` (500) members; a
//!   join beyond is refused (`ROSTER_REFUSED`). With names cut to `max-device-name-chars`,
//!   the whole device list fits one PRESENCE frame (the relay checks this at start).
//! - **Notices.** One NOTIFY and one ROSTER_APPENDED wait per connection at most (a newer
//!   one replaces the older: each names the latest position), and one DEVICE_REVOKED per
//!   revoked device; none is ever dropped otherwise.
//!
//! **DELETE** is the sender's only (`NOT_BLOB_OWNER` for anyone else: in vault mode the
//! history is the group's). Without `force` it marks the message; the relay removes it as
//! soon as every current member has pulled past it, and answers `DELETED {blob_id,
//! removed}`: `removed` says whether it is gone already or marked. With `force` it is gone
//! at once. In vault mode a removal replaces the archived payload by a tombstone. A PUSH
//! under a blob id another device stored is refused (`INVALID_MESSAGE`): a retry is the
//! same sender's.
//!
//! **Close codes** (QUIC application codes, `zerok_wire::CloseCode`): 0 end of session, 1
//! too many unauthenticated connections from this address, 2 too many sessions, 3 bad
//! frame, 4 refused (no or bad HELLO, revoked), 3001 relay shutting down.
//!
//! **Threat: a hostile client** (any number of connections and endpoint keys, from a few
//! addresses; a member of a group of its own) can fill its own group's quota and rate, and
//! keep up to the pending caps of connections waiting for HELLO until the timeout. It
//! cannot make the relay allocate for bytes it has not sent, hold a stream past its
//! deadline, or spend another group's quota or rate; members of other groups keep being
//! served (the relay bench measures a member's push latency under such a flood).
//!
//! # 8. Versioning
//!
//! HELLO and WELCOME carry the protocol version; a relay refuses another with
//! `VERSION_MISMATCH` (1006). Version 1 (no roster; rotations as messages) is not spoken by
//! this code: groups made by version 1 must be made anew. Entries carry their own version
//! (`v`, [`roster::ROSTER_VERSION`]); invites theirs (`v = 2`).
//!
//! # 9. Attachments
//!
//! Photos, scans and documents (up to 100 MiB by default) do not go through relays: the
//! sender encrypts them ([`content`]: per-attachment key by HKDF from S, 1 MiB segments,
//! encrypt-then-hash) into its own iroh-blobs store and pushes a message of kind 1 holding
//! the reference (hash, key, nonce, size, type, name, the sender's addresses). Members
//! fetch the ciphertext from the sender's endpoint (ALPN `/iroh-bytes/4`), verified chunk
//! by chunk against the hash as it streams, resuming what an earlier fetch left, then
//! decrypt it and push an acknowledgement (kind 2). The sender keeps its copy until every
//! other current member acknowledged it and every vault relay of the group archived it,
//! or 30 days passed. A device serves only the roster's members and its group's relays.
//!
//! **Vault relays** (WELCOME `vault`) also archive attachments: a member sends
//! `CONTENT_REF {content_hash, encrypted_size}`; the relay fetches the ciphertext from that
//! member (so only a holder can have it archived), keeps it in its object store, answers
//! `CONTENT_ACK` once it holds it (`OK` meanwhile) and serves it to members of the groups
//! that archived it. A member fetches from the sender first, then from vault relays.
//! CONTENT_REF is sent to vault relays only: a transit relay never learns a hash or size.
//!
//! **Reaching the sender.** The reference names where the sender was when it pushed: its
//! endpoint's `IP:PORT`s (at most 16, each up to 64 bytes), never an iroh relay URL, which
//! would have fetchers open HTTPS connections to a host a member chose. A device whose
//! network options turn on mDNS (service `_zerok._udp.local`) also finds the sender where it
//! is now on the same LAN, and one with DNS discovery anywhere; all are off by default. On
//! the LAN anyone sees the endpoint ids announced (they are device ids, so a device can be
//! followed there) and anyone can announce false addresses for an id: that costs a failed
//! dial, as QUIC's handshake proves the key; with iroh relays on as well, a LAN host can
//! announce a relay URL for an id, and the device then dials that host. A member chose the
//! addresses in its reference: a fetcher sends those hosts QUIC handshakes and nothing more.
//!
//! **Threat.** A relay learns nothing of an attachment but, at a vault relay, its hash,
//! ciphertext size and group; it cannot open it. A provider that serves altered bytes is
//! caught at the first altered 16 KiB chunk group (nothing is written to the destination
//! until the whole ciphertext verified and every segment opened); a member that sends a
//! reference whose key does not fit its hash is caught when the first segment does not
//! open. A revoked device keeps the references it had (and can fetch those attachments
//! while a provider still serves it as a member: not after its removal, as providers check
//! the roster); anything attached after a rotating removal is beyond it. A stranger who
//! learns a hash cannot fetch: providers serve members only.

pub mod backoff;
pub mod content;
pub mod frame;
pub mod group;
pub mod message;
pub mod redact;
pub mod roster;
pub mod seal;

pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use group::{BlobId, DeviceId, GroupId, GroupKeys, GroupSecret};
pub use message::{ErrorCode, Message};
pub use redact::Redacted;
