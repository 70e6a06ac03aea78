//! Feeds roster logs and entries: the input as a stored log (MessagePack list of entries,
//! as `GroupState` and `vault_sync` read it) replayed with `Roster::replay`, and as one
//! entry (`Entry::from_bytes`, as relays store them) started as a genesis; every entry's
//! body is decoded and each rotation's sealed secret opened as the fixed device.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerok_core::sync::{
    roster::{Entry, Op, Roster},
    seal,
};
use zerok_fuzz::{DEVICE_SECRET, assert_stable};

fuzz_target!(|data: &[u8]| {
    if let Ok(log) = rmp_serde::from_slice::<Vec<Entry>>(data) {
        log.iter().for_each(open_body);
        if let Ok(roster) = Roster::replay(&log) {
            assert_eq!(roster.seq(), log.len() as u64);
            assert_eq!(roster.head(), log.last().expect("replayed a log").hash());
        }
    }
    if let Ok(entry) = Entry::from_bytes(data) {
        open_body(&entry);
        let _ = Roster::genesis(&entry);
    }
});

fn open_body(entry: &Entry) {
    let Ok(body) = entry.body() else { return };
    if let Op::Remove { rotation: Some(rotation), .. } = &body.op {
        for s in &rotation.sealed {
            let _ = seal::open_as(&DEVICE_SECRET, &s.sealed);
        }
    }
    assert_stable(&body);
}
