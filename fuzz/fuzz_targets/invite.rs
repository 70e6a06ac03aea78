//! Feeds pairing invites: the input as text (`Invite::from_url`, and `InviteCode::parse`
//! for short codes), and as the MessagePack invite inside a URL (base64url-encoded here), so
//! the decoder `Invite::from_url` and `InviteCode::open` share is reached; an invite that
//! parses must survive `to_url` → `from_url`, and a code its `Display` → `parse`.
#![no_main]

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use zerok_client::sync::{Invite, InviteCode};
use zerok_fuzz::assert_stable;

const URL_PREFIX: &str = "zerok://pair?invite=";
/// Longest URL payload `Invite::from_url` accepts.
const MAX_PAYLOAD: usize = 8192;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(invite) = Invite::from_url(text) {
            check(&invite);
        }
        if let Ok(code) = InviteCode::parse(text) {
            let again = InviteCode::parse(&code.to_string()).expect("a displayed code parses");
            assert_eq!((again.to_string(), again.lookup()), (code.to_string(), code.lookup()));
        }
    }
    let url = format!("{URL_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data));
    if let Ok(invite) = Invite::from_url(&url) {
        check(&invite);
    }
});

/// An invite's own URL parses back to it, unless re-encoding made it longer than accepted
/// (a crafted invite may use MessagePack's compact array form for its fields).
fn check(invite: &Invite) {
    assert_stable(invite);
    let url = invite.to_url();
    if url.len() - URL_PREFIX.len() <= MAX_PAYLOAD {
        let again = Invite::from_url(&url).expect("an invite's own URL parses");
        assert_eq!(again.to_url(), url);
    }
}
