//! Feeds relay address text (`ENDPOINT_ID@IP:PORT` or a bare id) to `RelayAddr::parse`, as
//! invites, the CLI and stored group state give it; an address that parses must print back
//! to itself and yield an iroh address to dial.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerok_wire::RelayAddr;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(addr) = RelayAddr::parse(text) {
        assert_eq!(RelayAddr::parse(&addr.to_string()).ok(), Some(addr.clone()));
        let _ = addr.endpoint_addr();
    }
});
