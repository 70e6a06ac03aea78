//! Golden vectors: fixed inputs whose encodings are pinned byte for byte, so a change to the
//! format (FORMAT.md) cannot slip in unnoticed.

use zerok_core::{ChunkId, Key32, MasterKey, PackId, aead};
use zerok_vault::format::{
    Kind, aad, envelope,
    index::{IndexFile, IndexPack},
    names,
    pack::{BlobEntry, Layout, decode_header},
    tree::{HardLink, Node, NodeKind, Tree, Xattr},
};

fn master() -> MasterKey {
    MasterKey::from_key(Key32::from_bytes(std::array::from_fn(|i| i as u8)))
}

#[test]
fn associated_data_layout() {
    let a = aad(Kind::Tree, &[0xAB; 32]);
    assert_eq!(&a[..7], b"zerok1\x02");
    assert_eq!(a[7..], [0xAB; 32]);
}

#[test]
fn object_names() {
    let id = PackId([0x5A; 32]);
    assert_eq!(names::pack(&id), format!("data/5a/{}", "5a".repeat(32)));
}

#[test]
fn sealed_chunk_vector_opens_to_known_plaintext() {
    let keys = master().derive();
    let id = keys.chunk_id(b"hello");
    assert_eq!(id.to_string(), "20640219af1fafd11b05ddcbe0d0f548cd28649277002bc9dea7ef7f813f8793");
    // flag RAW ‖ "hello", nonce 00..17, under the data key with aad(Data, id).
    let sealed =
        aead::seal_with_nonce(keys.data(), std::array::from_fn(|i| i as u8), &aad(Kind::Data, &id.0), b"\x00hello");
    assert_eq!(hex::encode(&sealed), GOLDEN_SEALED_CHUNK);
    let opened = envelope::open(keys.data(), Kind::Data, &id.0, &hex::decode(GOLDEN_SEALED_CHUNK).unwrap(), 5).unwrap();
    assert_eq!(opened, b"hello");
}

// Cross-checked with libsodium (PyNaCl crypto_aead_xchacha20poly1305_ietf_encrypt).
const GOLDEN_SEALED_CHUNK: &str =
    "000102030405060708090a0b0c0d0e0f10111213141516175de1ee95c4cfc454087a76fa5ce74d77e75c059aee39";

#[test]
fn pack_header_vector() {
    let keys = master().derive();
    let entry = BlobEntry { kind: Kind::Data, id: ChunkId([1; 32]), offset: 0, length: 46, raw_len: 5, within: None };
    let mut header = vec![1u8, 1, 0, 0, 0, 1];
    header.extend_from_slice(&[1; 32]);
    header.extend_from_slice(&[0, 0, 0, 0, 46, 0, 0, 0, 5, 0, 0, 0]);
    let sealed = aead::seal_with_nonce(keys.metadata(), [7; 24], &aad(Kind::PackHeader, &[0; 32]), &header);
    assert_eq!(decode_header(keys.metadata(), &sealed, 46).unwrap().entries, vec![entry]);
}

#[test]
fn version_2_pack_header_vector() {
    let keys = master().derive();
    // A lone chunk at 0 (within 0xFFFFFFFF), then a bundle of two 5-byte chunks at 46.
    let mut header = vec![2u8, 3, 0, 0, 0];
    let rows: [(u8, u32, u32, u32); 3] = [(1, 0, 46, u32::MAX), (2, 46, 60, 0), (3, 46, 60, 5)];
    for (id, offset, length, within) in rows {
        header.push(1);
        header.extend_from_slice(&[id; 32]);
        for n in [offset, length, 5, within] {
            header.extend_from_slice(&n.to_le_bytes());
        }
    }
    assert_eq!(header.len(), 5 + 3 * 49);
    let sealed = aead::seal_with_nonce(keys.metadata(), [7; 24], &aad(Kind::PackHeader, &[0; 32]), &header);
    let entry = |id, offset, length, within| BlobEntry {
        kind: Kind::Data,
        id: ChunkId([id; 32]),
        offset,
        length,
        raw_len: 5,
        within,
    };
    let expected = vec![entry(1, 0, 46, None), entry(2, 46, 60, Some(0)), entry(3, 46, 60, Some(5))];
    assert_eq!(decode_header(keys.metadata(), &sealed, 106).unwrap().entries, expected);

    // Members of one bundle out of order, or a bundle body past 4 MiB, are refused.
    for (bad_at, value) in [(5 + 2 * 49 + 45, 0u32), (5 + 2 * 49 + 45, 4 << 20)] {
        let mut bad = header.clone();
        bad[bad_at..bad_at + 4].copy_from_slice(&value.to_le_bytes());
        let sealed = aead::seal_with_nonce(keys.metadata(), [7; 24], &aad(Kind::PackHeader, &[0; 32]), &bad);
        assert!(decode_header(keys.metadata(), &sealed, 106).is_err(), "within {value} accepted");
    }
}

#[test]
fn version_3_pack_header_vector() {
    let keys = master().derive();
    // A lone chunk at 0, then the golden bundle ("hello" ‖ "world") at 46, listed once by
    // its members' lengths.
    let mut header = vec![3u8, 2, 0, 0, 0, 1];
    header.extend_from_slice(&[1; 32]);
    for n in [0u32, 46, 5] {
        header.extend_from_slice(&n.to_le_bytes());
    }
    header.push(10);
    for n in [46u32, 51, 2, 5, 5] {
        header.extend_from_slice(&n.to_le_bytes());
    }
    assert_eq!(header.len(), 5 + 45 + 13 + 2 * 4);
    let sealed = aead::seal_with_nonce(keys.metadata(), [7; 24], &aad(Kind::PackHeader, &[0; 32]), &header);
    assert_eq!(hex::encode(&sealed), GOLDEN_V3_HEADER);
    let parsed = decode_header(keys.metadata(), &hex::decode(GOLDEN_V3_HEADER).unwrap(), 97).unwrap();
    let lone = BlobEntry { kind: Kind::Data, id: ChunkId([1; 32]), offset: 0, length: 46, raw_len: 5, within: None };
    assert_eq!(parsed.entries, [lone]);
    assert_eq!(parsed.bundles, [Layout { offset: 46, length: 51, lens: vec![5, 5] }]);
    // The members are named by opening the bundle and hashing its pieces.
    let body = envelope::open(keys.data(), Kind::Bundle, &[0; 32], &hex::decode(GOLDEN_SEALED_BUNDLE).unwrap(), 10);
    let members = parsed.bundles[0].name(&body.unwrap(), |b| keys.chunk_id(b)).unwrap();
    let ids: Vec<String> = members.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(ids[0], "20640219af1fafd11b05ddcbe0d0f548cd28649277002bc9dea7ef7f813f8793");
    assert_eq!(ids[1], keys.chunk_id(b"world").to_string());
    assert_eq!(members.iter().map(|m| (m.within, m.raw_len)).collect::<Vec<_>>(), [(Some(0), 5), (Some(5), 5)]);
}

// Cross-checked with libsodium (PyNaCl crypto_aead_xchacha20poly1305_ietf_encrypt).
const GOLDEN_V3_HEADER: &str = concat!(
    "0707070707070707070707070707070707070707070707073ca3d168f52c39b0139ae5e0bf7413c8678d317f29063d4cdc3aa061f25a7b6",
    "e6b0dda6ef45eadf29ea7e8a2c7c66207f63c9788b73ad8d7960c88988b8bc22603651fa3ce0df36c7feab5f1d96d2758494716854d11f7",
);

#[test]
fn sealed_bundle_vector_opens_to_its_members() {
    let keys = master().derive();
    // flag RAW ‖ "hello" ‖ "world", nonce 00..17, under the data key with aad(Bundle, zeros).
    let sealed = aead::seal_with_nonce(
        keys.data(),
        std::array::from_fn(|i| i as u8),
        &aad(Kind::Bundle, &[0; 32]),
        b"\x00helloworld",
    );
    assert_eq!(hex::encode(&sealed), GOLDEN_SEALED_BUNDLE);
    let body = envelope::open(keys.data(), Kind::Bundle, &[0; 32], &sealed, 10).unwrap();
    assert_eq!(body, b"helloworld");
    // The same bytes do not open as a lone chunk: a bundle cannot pass for one of its members.
    let id = keys.chunk_id(b"hello");
    assert!(envelope::open(keys.data(), Kind::Data, &id.0, &sealed, 10).is_err());
}

// Cross-checked with libsodium (PyNaCl crypto_aead_xchacha20poly1305_ietf_encrypt).
const GOLDEN_SEALED_BUNDLE: &str =
    "000102030405060708090a0b0c0d0e0f10111213141516175de1ee95c4cf469f5b9763247eeaa5c8f5f84cc3c36e51ddd98591";

#[test]
fn tree_and_index_bodies() {
    let file = Node {
        name: b"a".to_vec(),
        kind: NodeKind::File,
        mode: 0o644,
        mtime_ns: 1,
        ctime_ns: 2,
        inode: 3,
        uid: 4,
        gid: 5,
        size: 6,
        content: vec![ChunkId([9; 32])],
        subtree: None,
        target: None,
        links: None,
        xattrs: Vec::new(),
        sparse: false,
    };
    let tree = Tree::new(vec![file.clone()]);
    assert_eq!(tree.version, 1, "nothing in it needs version 2");
    assert_eq!(hex::encode(tree.encode()), GOLDEN_TREE);
    // Version 2 (FORMAT.md §4.6): a hard-linked sparse file with an attribute, and a fifo;
    // cross-checked with msgpack-python 1.1 (`packb(…, use_bin_type=True)`).
    let linked = Node {
        links: Some(HardLink { dev: 7, count: 2 }),
        xattrs: vec![Xattr { name: b"user.k".to_vec(), value: b"v".to_vec() }],
        sparse: true,
        ..file.clone()
    };
    let fifo =
        Node { name: b"p".to_vec(), kind: NodeKind::Fifo, mode: 0o600, inode: 8, size: 0, content: vec![], ..file };
    let v2 = Tree::new(vec![linked, fifo]);
    assert_eq!(v2.version, 2);
    assert_eq!(hex::encode(v2.encode()), GOLDEN_TREE_V2);
    let alone = IndexPack { id: PackId([2; 32]), blobs: vec![(1, ChunkId([3; 32]), 0, 46, 5)], bundled: vec![] };
    let index = IndexFile::new(vec![alone.clone()]);
    assert_eq!(hex::encode(rmp_serde::to_vec_named(&index).unwrap()), GOLDEN_INDEX);

    let with_bundle =
        IndexPack { bundled: vec![(1, ChunkId([4; 32]), 46, 60, 5, 0), (1, ChunkId([5; 32]), 46, 60, 5, 5)], ..alone };
    let index = IndexFile::new(vec![with_bundle]);
    assert_eq!(index.version, 2);
    let bytes = rmp_serde::to_vec_named(&index).unwrap();
    assert_eq!(hex::encode(&bytes), GOLDEN_INDEX_V2);
    let back: IndexFile = rmp_serde::from_slice(&bytes).unwrap();
    let entries = back.packs[0].entries().unwrap();
    assert_eq!(
        entries.iter().map(|e| (e.offset, e.within)).collect::<Vec<_>>(),
        [(0, None), (46, Some(0)), (46, Some(5))]
    );
}

const GOLDEN_TREE_V2: &str = "82a776657273696f6e02a56e6f646573928da46e616d65c40161a46b696e64a466696c65a46d6f6465cd01a4a86d74696d655f6e7301a86374696d655f6e7302a5696e6f646503a375696404a367696405a473697a6506a7636f6e74656e7491c4200909090909090909090909090909090909090909090909090909090909090909a56c696e6b7382a364657607a5636f756e7402a67861747472739182a46e616d65c406757365722e6ba576616c7565c40176a6737061727365c389a46e616d65c40170a46b696e64a46669666fa46d6f6465cd0180a86d74696d655f6e7301a86374696d655f6e7302a5696e6f646508a375696404a367696405a473697a6500";
const GOLDEN_TREE: &str = "82a776657273696f6e01a56e6f646573918aa46e616d65c40161a46b696e64a466696c65a46d6f6465cd01a4a86d74696d655f6e7301a86374696d655f6e7302a5696e6f646503a375696404a367696405a473697a6506a7636f6e74656e7491c4200909090909090909090909090909090909090909090909090909090909090909";
// Cross-checked with Python's msgpack.
const GOLDEN_INDEX_V2: &str = "82a776657273696f6e02a57061636b739183a26964c4200202020202020202020202020202020202020202020202020202020202020202a5626c6f6273919501c4200303030303030303030303030303030303030303030303030303030303030303002e05a762756e646c6564929601c42004040404040404040404040404040404040404040404040404040404040404042e3c05009601c42005050505050505050505050505050505050505050505050505050505050505052e3c0505";
const GOLDEN_INDEX: &str = "82a776657273696f6e01a57061636b739182a26964c4200202020202020202020202020202020202020202020202020202020202020202a5626c6f6273919501c4200303030303030303030303030303030303030303030303030303030303030303002e05";
