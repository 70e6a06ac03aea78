//! Feeds sync-protocol frames as a peer sends them (`length ‖ MessagePack body`): the
//! header through `frame::body_len` with the default maximum, then as much of the body as
//! the input holds (up to the declared length) through `frame::decode`; a message that
//! decodes must encode back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerok_core::sync::frame::{self, HEADER_BYTES, MAX_FRAME_BYTES};

fuzz_target!(|data: &[u8]| {
    let Some((header, rest)) = data.split_first_chunk::<HEADER_BYTES>() else { return };
    let Ok(len) = frame::body_len(*header, MAX_FRAME_BYTES) else { return };
    if let Ok(msg) = frame::decode(&rest[..len.min(rest.len())]) {
        assert_eq!(frame::decode(&frame::encode(&msg)[HEADER_BYTES..]), Ok(msg));
    }
});
