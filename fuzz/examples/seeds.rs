//! Writes the seed corpora under `fuzz/seeds/<target>/`: real objects made by the crates'
//! own encoders, sealed under the fixed keys of `zerok_fuzz`, plus the plaintext each
//! target's second layer takes (an envelope's flag ‖ body, a header, a config body).
//! Sealing uses random nonces, so re-running changes the sealed bytes, not what they hold.
//!
//! Run from `fuzz/`: `cargo run --example seeds`.

use std::{collections::BTreeMap, fs, path::Path};

use zerok_client::sync::{GroupState, Invite};
use zerok_core::{
    ChunkId, Kdf, PackId, SlotId, SnapshotId, SyncGroupId, VaultId, aead,
    keys::ARGON2_MIN_M_KIB,
    sync::{
        BlobId, DeviceId, GroupId, GroupSecret, Message, SigningKey, frame,
        message::*,
        roster::{self, Entry, EntryHash, InviteKey, Op, Roster, Rotation, SealedSecret, Ticket},
        seal,
    },
};
use zerok_fuzz::{ID, SLOT_SECRET, device, keys, master};
use zerok_vault::{
    SlotKind,
    format::{
        Kind, aad,
        config::{ChunkerParams, Config},
        envelope,
        index::{IndexFile, IndexPack},
        keyslot::KeySlot,
        pack::{self, PackWriter},
        seal_msgpack,
        snapshot::{Snapshot, SnapshotSummary},
        sync_group::SyncGroup,
        tree::{Node, NodeKind, Tree},
    },
};

/// Far in the future, Unix seconds.
const EXPIRES: u64 = 4_000_000_000;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        fs::create_dir_all(&dir).expect("seed folder");
        fs::write(dir.join(name), bytes).expect("seed written");
    };
    let creator = SigningKey::from_bytes(&[0xa1; 32]);
    let relay = relay_text(&SigningKey::from_bytes(&[0x4e; 32]));
    let log = roster_log(&creator);
    let tree = sample_tree(3);

    for (name, bytes) in packs(&tree) {
        put("pack_header", name, &bytes);
    }
    let (pack_id, _, entries) = sample_pack(&tree);
    let index = IndexFile::new(vec![IndexPack::new(pack_id, &entries)]);
    sealed_seeds(Kind::Index, &seal_msgpack(keys().metadata(), Kind::Index, &ID, &index), |n, b| put("index", n, b));
    for (name, t) in [("small", tree.clone()), ("large", sample_tree(40))] {
        let sealed = envelope::seal(keys().metadata(), Kind::Tree, &ID, &t.encode(), 3);
        sealed_seeds(Kind::Tree, &sealed, |n, b| put("tree", &format!("{name}_{n}"), b));
    }
    let snap = sample_snapshot(keys().chunk_id(&tree.encode()), &relay);
    sealed_seeds(Kind::Snapshot, &seal_msgpack(keys().metadata(), Kind::Snapshot, &ID, &snap), |n, b| {
        put("snapshot", n, b)
    });
    let group = SyncGroup {
        version: 1,
        secret: vec![0x6a; 32],
        relays: vec![relay.clone()],
        time_ns: 1_700_000_000_000_000_000,
        device_key: Some(device().to_bytes().to_vec()),
        roster: Some(rmp_serde::to_vec_named(&log).expect("log encodes")),
    };
    sealed_seeds(Kind::SyncGroup, &seal_msgpack(keys().metadata(), Kind::SyncGroup, &ID, &group), |n, b| {
        put("sync_group", n, b)
    });
    for (name, kind, kdf, secret) in [
        ("recovery", SlotKind::Recovery, Kdf::HkdfSha256, &SLOT_SECRET[..]),
        ("passphrase", SlotKind::Passphrase, Kdf::Argon2id { m_kib: ARGON2_MIN_M_KIB, t: 2, p: 1 }, b"hunter2"),
    ] {
        let slot = KeySlot::seal(&SlotId(ID), kind, kdf, secret, &master(), "laptop").expect("slot seals");
        put("keyslot", name, &slot.encode());
    }
    put("keyslot", "master_key", master().key().expose());
    let config = Config {
        vault_id: VaultId(ID),
        chunker: ChunkerParams::default(),
        compression_level: 3,
        pack_bytes: 16 << 20,
        created: 1_700_000_000,
    }
    .encode(keys());
    put("config", "config", &config);
    put("config", "body", &config[16..config.len() - 32]);
    for (i, msg) in messages(&log).iter().enumerate() {
        let bytes = frame::encode(msg);
        let debug = format!("{msg:?}");
        let variant = debug.split(['(', ' ']).next().unwrap_or_default().to_lowercase();
        put("frame", &format!("{i:02}_{variant}"), &bytes);
    }
    put("roster", "log", &rmp_serde::to_vec_named(&log).expect("log encodes"));
    for (i, entry) in log.iter().enumerate() {
        put("roster", &format!("entry_{}", i + 1), &entry.to_bytes());
    }
    let secret = GroupSecret::from_bytes([0x6a; 32]);
    let relay_addr = zerok_wire::RelayAddr::parse(&relay).expect("relay parses");
    let state = GroupState::new(&secret, &[relay_addr], "laptop", log[..1].to_vec()).expect("state");
    let invite = Invite::new(&state, &creator, EXPIRES);
    put("invite", "url", invite.to_url().as_bytes());
    put("invite", "msgpack", &rmp_serde::to_vec_named(&invite).expect("invite encodes"));
    put("invite", "code", b"ABCD-EFGH-JKMN-PQRS");
    let bare = relay.split_once('@').expect("id@addr").0;
    put("relay_addr", "id_at_ipv4", relay.as_bytes());
    put("relay_addr", "id_at_ipv6", format!("{bare}@[::1]:4433").as_bytes());
    put("relay_addr", "bare_id", bare.as_bytes());
    let golden = "0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0003-F3J6";
    put("recovery", "golden", golden.as_bytes());
    put("recovery", "sloppy", golden.to_lowercase().replace('-', " ").as_bytes());
}

/// Writes a sealed object and its envelope plaintext (flag ‖ body), and the body
/// uncompressed too when the envelope holds a zstd frame.
fn sealed_seeds(kind: Kind, sealed: &[u8], mut put: impl FnMut(&str, &[u8])) {
    put("sealed", sealed);
    let plain = aead::open(keys().metadata(), &aad(kind, &ID), sealed).expect("seed opens");
    put("plain", &plain);
    if plain[0] == envelope::ZSTD {
        let body = envelope::open(keys().metadata(), kind, &ID, sealed, usize::MAX).expect("seed opens");
        put("plain_raw", &[&[envelope::RAW][..], &body].concat());
    }
}

fn relay_text(key: &SigningKey) -> String {
    let hex: String = key.verifying_key().to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}@127.0.0.1:4433")
}

fn sample_tree(files: usize) -> Tree {
    let node = |name: &[u8], kind| Node {
        name: name.to_vec(),
        kind,
        mode: 0o644,
        mtime_ns: 1_700_000_000_000_000_000,
        ctime_ns: 1_700_000_000_000_000_000,
        inode: 42,
        uid: 1000,
        gid: 1000,
        size: 0,
        content: Vec::new(),
        subtree: None,
        target: None,
        links: None,
        xattrs: Vec::new(),
        sparse: false,
    };
    let mut nodes = vec![
        Node { subtree: Some(ChunkId([3; 32])), mode: 0o755, ..node(b"dir", NodeKind::Dir) },
        Node { target: Some(b"../elsewhere".to_vec()), ..node(b"link", NodeKind::Symlink) },
    ];
    nodes.extend((0..files).map(|i| Node {
        size: 2 << 20,
        content: vec![ChunkId([i as u8; 32]), ChunkId([0xff; 32])],
        ..node(format!("file{i:03}.txt").as_bytes(), NodeKind::File)
    }));
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Tree { version: 1, nodes }
}

/// A pack with a data chunk and a tree chunk, as the backup writes one.
fn sample_pack(tree: &Tree) -> (PackId, Vec<u8>, Vec<pack::BlobEntry>) {
    let mut w = PackWriter::default();
    let data = b"file content that compresses well. ".repeat(30);
    let id = keys().chunk_id(&data);
    w.add(Kind::Data, id, &envelope::seal(keys().data(), Kind::Data, &id.0, &data, 3), data.len() as u32);
    let (a, b) = (&b"a small file"[..], &b"and another"[..]);
    let sealed = envelope::seal(keys().data(), Kind::Bundle, &[0; 32], &[a, b].concat(), 3);
    w.add_bundle(&sealed, [(keys().chunk_id(a), a.len() as u32), (keys().chunk_id(b), b.len() as u32)]);
    let body = tree.encode();
    let id = keys().chunk_id(&body);
    w.add(Kind::Tree, id, &envelope::seal(keys().metadata(), Kind::Tree, &id.0, &body, 3), body.len() as u32);
    w.finish(keys().metadata())
}

/// A full pack (a bundle in it), an empty one, and the first one's header plaintext.
fn packs(tree: &Tree) -> Vec<(&'static str, Vec<u8>)> {
    let (_, full, _) = sample_pack(tree);
    let (_, empty, _) = PackWriter::default().finish(keys().metadata());
    let n = full.len();
    let header_len = pack::header_len(n as u64, &full[n - 4..]).expect("valid pack") as usize;
    let sealed = &full[n - 4 - header_len..n - 4];
    let header = aead::open(keys().metadata(), &aad(Kind::PackHeader, &[0; 32]), sealed).expect("header opens");
    vec![("pack", full), ("empty_pack", empty), ("header_plain", header)]
}

fn sample_snapshot(tree: ChunkId, relay: &str) -> Snapshot {
    Snapshot {
        version: 1,
        time_ns: 1_700_000_000_000_000_000,
        hostname: "laptop".into(),
        tags: vec!["daily".into()],
        paths: vec!["/home/me/app-state".into()],
        tree,
        parent: Some(SnapshotId([2; 32])),
        sync_cursors: BTreeMap::from([(relay.to_string(), 7)]),
        sync_group: Some(SyncGroupId([3; 32])),
        summary: SnapshotSummary { files: 3, dirs: 1, bytes: 6 << 20 },
        program: "zerok 0.1.0".into(),
        original: None,
    }
}

fn id_of(key: &SigningKey) -> DeviceId {
    DeviceId(key.verifying_key().to_bytes())
}

/// create → join (the fixed device) → join → remove the third with a rotation sealed to
/// the other two.
fn roster_log(creator: &SigningKey) -> Vec<Entry> {
    let group = GroupSecret::from_bytes([0x6a; 32]).derive().id();
    let third = SigningKey::from_bytes(&[0xc3; 32]);
    let mut log = vec![roster::create_entry(group, creator, "laptop")];
    let mut roster = Roster::genesis(&log[0]).expect("genesis").0;
    for (i, (joiner, name)) in [(device(), "phone"), (third.clone(), "tablet")].into_iter().enumerate() {
        let invite_secret = [0x70 + i as u8; 32];
        let ticket = Ticket::new(group, creator, &invite_secret, EXPIRES);
        log.push(roster::join_entry(&roster, &joiner, name, ticket, &invite_secret));
        roster.step(log.last().expect("pushed"), None).expect("join applies");
    }
    let next = GroupSecret::from_bytes([0x6b; 32]);
    let sealed = [id_of(creator), id_of(&device())]
        .map(|d| SealedSecret { device: d, sealed: seal::seal_to(&d, next.expose()).expect("valid id") });
    let rotation = Rotation { next: next.derive().id(), sealed: sealed.to_vec() };
    log.push(roster::next_entry(&roster, creator, Op::Remove { device: id_of(&third), rotation: Some(rotation) }));
    roster.step(log.last().expect("pushed"), None).expect("removal applies");
    log
}

/// One message of every kind.
fn messages(log: &[Entry]) -> Vec<Message> {
    let (blob_id, device_id, group_id) = (BlobId([0xb1; 16]), id_of(&device()), GroupId([0x9a; 32]));
    let invite_key = InviteKey([0x1c; 32]);
    vec![
        Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            device_name: "laptop".into(),
            group_id,
            last_cursor: 12,
            auth_key: [0x0a; 32],
            proof: [0x0b; 64],
        }),
        Message::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            relay_id: "ab".repeat(32),
            max_cursor: 40,
            pending_count: 3,
            roster_seq: 4,
            member: true,
            time: 1_700_000_000,
            vault: false,
        }),
        Message::Push(Push { blob_id, payload: vec![0x55; 100], ttl: 3600 }),
        Message::PushAck(PushAck { blob_id, cursor: 41, timestamp: 1_700_000_000 }),
        Message::Pull(Pull { after_cursor: 3, limit: 100 }),
        Message::PullResponse(PullResponse {
            blobs: vec![BlobEntry { blob_id, cursor: 4, sender_id: device_id, payload: vec![9; 50], timestamp: 7 }],
            has_more: true,
            max_cursor: 4,
        }),
        Message::Presence(Presence {
            devices: vec![DeviceInfo {
                device_id,
                name: "phone".into(),
                last_seen: 1_700_000_000,
                online: true,
                revoked: false,
            }],
        }),
        Message::Notify(Notify { blob_id, cursor: 5, sender_id: device_id, timestamp: 8, size: 100 }),
        Message::Delete(Delete { blob_id, force: false }),
        Message::RosterGet(RosterGet { after_seq: 1 }),
        Message::RosterEntries(RosterEntries {
            entries: log.to_vec(),
            has_more: false,
            seq: log.len() as u64,
            head: log.last().map(Entry::hash).unwrap_or(EntryHash::default()),
        }),
        Message::RosterAppend(RosterAppend { entries: log[1..2].to_vec() }),
        Message::RosterAppended(RosterAppended { seq: 2 }),
        Message::DeviceRevoked(DeviceRevoked { device_id, revoked_by: device_id, timestamp: 9 }),
        Message::RegisterPush(RegisterPush {
            token: "token".into(),
            platform: PushPlatform::Apns,
            app_id: Some("app.zerok".into()),
        }),
        Message::UnregisterPush(UnregisterPush { reason: "logout".into() }),
        Message::ContentRef(ContentRef {
            content_hash: [0xc0; 32],
            encrypted_size: (1 << 30) + 40,
        }),
        Message::ContentAck(ContentAck { content_hash: [0xc0; 32] }),
        Message::InvitePut(InvitePut { lookup: "beef".into(), invite_key, sealed: vec![0x5e; 300], expires: 600 }),
        Message::InviteGet(InviteGet { lookup: "beef".into() }),
        Message::InviteCancel(InviteCancel { lookup: "beef".into(), invite_key }),
        Message::InviteFound(InviteFound { sealed: vec![serde_bytes::ByteBuf::from(vec![0x5e; 300])] }),
        Message::Ok,
        ErrorCode::RosterConflict.message("another change came first"),
        Message::Bye(Bye { reason: Some("shutdown".into()) }),
    ]
}
