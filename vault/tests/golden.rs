//! Golden vectors: fixed inputs whose encodings are pinned byte for byte, so a change to the
//! format (FORMAT.md) cannot slip in unnoticed.

use zerok_core::{ChunkId, Key32, MasterKey, PackId, aead};
use zerok_vault::format::{
    Kind, aad, envelope,
    index::{IndexFile, IndexPack},
    names,
    pack::{BlobEntry, decode_header},
    tree::{Node, NodeKind, Tree},
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
    let entry = BlobEntry { kind: Kind::Data, id: ChunkId([1; 32]), offset: 0, length: 46, raw_len: 5 };
    let mut header = vec![1u8, 1, 0, 0, 0, 1];
    header.extend_from_slice(&[1; 32]);
    header.extend_from_slice(&[0, 0, 0, 0, 46, 0, 0, 0, 5, 0, 0, 0]);
    let sealed = aead::seal_with_nonce(keys.metadata(), [7; 24], &aad(Kind::PackHeader, &[0; 32]), &header);
    assert_eq!(decode_header(keys.metadata(), &sealed, 46).unwrap(), vec![entry]);
}

#[test]
fn tree_and_index_bodies() {
    let tree = Tree {
        version: 1,
        nodes: vec![Node {
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
        }],
    };
    assert_eq!(hex::encode(tree.encode()), GOLDEN_TREE);
    let index = IndexFile {
        version: 1,
        packs: vec![IndexPack { id: PackId([2; 32]), blobs: vec![(1, ChunkId([3; 32]), 0, 46, 5)] }],
    };
    assert_eq!(hex::encode(rmp_serde::to_vec_named(&index).unwrap()), GOLDEN_INDEX);
}

const GOLDEN_TREE: &str = "82a776657273696f6e01a56e6f646573918aa46e616d65c40161a46b696e64a466696c65a46d6f6465cd01a4a86d74696d655f6e7301a86374696d655f6e7302a5696e6f646503a375696404a367696405a473697a6506a7636f6e74656e7491c4200909090909090909090909090909090909090909090909090909090909090909";
const GOLDEN_INDEX: &str = "82a776657273696f6e01a57061636b739182a26964c4200202020202020202020202020202020202020202020202020202020202020202a5626c6f6273919501c4200303030303030303030303030303030303030303030303030303030303030303002e05";
