//! Framing: `length (u32 big-endian) ‖ MessagePack body`. The length is checked against the
//! maximum before anything is allocated; decoding never trusts inner lengths beyond the
//! frame (MessagePack strings and bins cannot exceed the body they sit in).

use super::Message;

/// Default largest frame body, in bytes.
pub const MAX_FRAME_BYTES: usize = 1 << 20;
/// Bytes of the length header.
pub const HEADER_BYTES: usize = 4;

/// Why a frame was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header declares more than allowed; nothing was allocated.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Declared length.
        len: usize,
        /// Allowed maximum.
        max: usize,
    },
    /// The body is not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Encodes a message with its header.
pub fn encode(msg: &Message) -> Vec<u8> {
    let body = rmp_serde::to_vec_named(msg).expect("messages encode");
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// The body length a header declares, refused when over `max` (or zero).
///
/// # Errors
/// [`FrameError::TooLarge`] or, for an empty body, [`FrameError::Malformed`].
pub fn body_len(header: [u8; HEADER_BYTES], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    if len == 0 {
        return Err(FrameError::Malformed("empty frame".into()));
    }
    Ok(len)
}

/// Decodes a body.
///
/// # Errors
/// [`FrameError::Malformed`] for anything that is not exactly one message.
pub fn decode(body: &[u8]) -> Result<Message, FrameError> {
    let mut de = rmp_serde::Deserializer::new(body);
    let msg: Message = serde::Deserialize::deserialize(&mut de).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if de.get_ref().is_empty() {
        Ok(msg)
    } else {
        Err(FrameError::Malformed("trailing bytes after the message".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::{
        BlobId, DeviceId,
        message::{BlobEntry, Pull, PullResponse, Push},
    };

    #[test]
    fn round_trip_and_golden_pull() {
        let msg = Message::Pull(Pull { after_cursor: 3, limit: 100 });
        let bytes = encode(&msg);
        assert_eq!(hex::encode(&bytes), GOLDEN_PULL);
        let len = body_len(bytes[..4].try_into().unwrap(), MAX_FRAME_BYTES).unwrap();
        assert_eq!(decode(&bytes[4..4 + len]).unwrap(), msg);
        let resp = Message::PullResponse(PullResponse {
            blobs: vec![BlobEntry {
                blob_id: BlobId([2; 16]),
                cursor: 4,
                sender_id: DeviceId([1; 32]),
                payload: vec![9; 5],
                timestamp: 7,
            }],
            has_more: false,
            max_cursor: 4,
        });
        assert_eq!(decode(&encode(&resp)[4..]).unwrap(), resp);
    }

    const GOLDEN_PULL: &str = "0000001c81a450554c4c82ac61667465725f637572736f7203a56c696d697464";

    #[test]
    fn golden_deleted() {
        let msg = Message::Deleted(crate::sync::message::Deleted { blob_id: BlobId([2; 16]), removed: false });
        assert_eq!(hex::encode(encode(&msg)), GOLDEN_DELETED);
        assert_eq!(decode(&encode(&msg)[4..]).unwrap(), msg);
    }

    const GOLDEN_DELETED: &str =
        "0000002d81a744454c4554454482a7626c6f625f6964c41002020202020202020202020202020202a772656d6f766564c2";

    #[test]
    fn golden_content_ref() {
        let msg = Message::ContentRef(crate::sync::message::ContentRef {
            content_hash: [0x11; 32],
            encrypted_size: 1_048_592,
        });
        assert_eq!(hex::encode(encode(&msg)), GOLDEN_CONTENT_REF);
        assert_eq!(decode(&encode(&msg)[4..]).unwrap(), msg);
    }

    // Cross-checked with Python's msgpack (use_bin_type).
    const GOLDEN_CONTENT_REF: &str = "0000005181ab434f4e54454e545f52454682ac636f6e74656e745f68617368c420111111111111\
        1111111111111111111111111111111111111111111111111111ae656e637279707465645f73697a65ce00100010";

    #[test]
    fn oversized_frames_are_refused_from_the_header() {
        assert_eq!(
            body_len((MAX_FRAME_BYTES as u32 + 1).to_be_bytes(), MAX_FRAME_BYTES),
            Err(FrameError::TooLarge { len: MAX_FRAME_BYTES + 1, max: MAX_FRAME_BYTES })
        );
        assert!(body_len([0; 4], MAX_FRAME_BYTES).is_err());
        assert!(body_len([0xFF; 4], MAX_FRAME_BYTES).is_err());
    }

    #[test]
    fn garbage_and_trailing_bytes_are_malformed() {
        for junk in [&b"\xc1"[..], b"\x81\xa4PUSH\xc0", b"hello world", &[0x91; 64]] {
            assert!(decode(junk).is_err(), "{junk:?}");
        }
        let mut bytes = encode(&Message::Push(Push { blob_id: BlobId([0; 16]), payload: vec![], ttl: 0 }));
        bytes.push(0);
        assert!(decode(&bytes[4..]).is_err());
    }
}
