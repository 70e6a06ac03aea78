//! The recovery key: 256 random bits a person writes down, with a 24-bit checksum so a typo
//! is caught before anything touches the network.
//!
//! Text form: the 32 key bytes followed by the first 3 bytes of
//! `BLAKE3-derive_key("zerok recovery key checksum v1", key)`, encoded in Crockford base32
//! (`0-9 A-Z` without `I L O U`), 56 characters in 14 groups of 4 joined by `-`. Parsing
//! ignores case, spaces and dashes, and reads `O` as `0` and `I`/`L` as `1`.

use data_encoding::{Encoding, Specification};
use std::sync::OnceLock;
use zeroize::Zeroize;

use crate::{Error, Key32, Result};

const CHECKSUM_CONTEXT: &str = "zerok recovery key checksum v1";
const ENCODED_CHARS: usize = 56;

/// Crockford base32 (`0-9 A-Z` without `I L O U`), case-insensitive, ignoring `-` and
/// spaces, reading `O` as `0` and `I`/`L` as `1`; shared with pairing codes.
pub fn crockford() -> &'static Encoding {
    static ENC: OnceLock<Encoding> = OnceLock::new();
    ENC.get_or_init(|| {
        let mut spec = Specification::new();
        spec.symbols.push_str("0123456789ABCDEFGHJKMNPQRSTVWXYZ");
        spec.translate.from.push_str("abcdefghjkmnpqrstvwxyzoOiIlL");
        spec.translate.to.push_str("ABCDEFGHJKMNPQRSTVWXYZ001111");
        spec.ignore.push_str("- ");
        spec.encoding().expect("valid base32 spec")
    })
}

fn checksum(key: &[u8; 32]) -> [u8; 3] {
    let full = blake3::derive_key(CHECKSUM_CONTEXT, key);
    [full[0], full[1], full[2]]
}

/// A recovery key. Zeroizes on drop; Debug is redacted; [`RecoveryKey::display`] is the
/// only way to get its text, so it is printed only where that is the point.
#[derive(Clone, Debug)]
pub struct RecoveryKey(Key32);

impl RecoveryKey {
    /// A fresh random recovery key.
    pub fn generate() -> Self {
        Self(Key32::generate())
    }

    /// The secret bytes, as the input of the slot KDF.
    pub fn secret(&self) -> &Key32 {
        &self.0
    }

    /// The text a person writes down: `XXXX-XXXX-…` (14 groups).
    pub fn display(&self) -> String {
        let mut raw = [0u8; 35];
        raw[..32].copy_from_slice(self.0.expose());
        raw[32..].copy_from_slice(&checksum(self.0.expose()));
        let mut text = crockford().encode(&raw);
        raw.zeroize();
        let grouped =
            text.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).expect("ascii")).collect::<Vec<_>>().join("-");
        text.zeroize();
        grouped
    }

    /// Parses the text form.
    ///
    /// # Errors
    /// [`Error::RecoveryKey`] when the text has the wrong length, a character outside the
    /// alphabet, or a checksum that does not match (a typo).
    pub fn parse(text: &str) -> Result<Self> {
        let cleaned: String = text.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
        if cleaned.len() != ENCODED_CHARS {
            return Err(Error::RecoveryKey("expected 56 characters (14 groups of 4)"));
        }
        let mut raw = crockford()
            .decode(cleaned.as_bytes())
            .map_err(|_| Error::RecoveryKey("character outside the recovery-key alphabet"))?;
        let key: [u8; 32] = raw[..32].try_into().expect("35 bytes decoded");
        let ok = checksum(&key) == raw[32..35];
        raw.zeroize();
        if !ok {
            return Err(Error::RecoveryKey("checksum mismatch: check for a typo"));
        }
        Ok(Self(Key32::from_bytes(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_parse_round_trip() {
        let key = RecoveryKey::generate();
        let text = key.display();
        assert_eq!(text.len(), 56 + 13);
        let back = RecoveryKey::parse(&text).unwrap();
        assert_eq!(back.secret(), key.secret());
        let sloppy = text.to_lowercase().replace('-', " ");
        assert_eq!(RecoveryKey::parse(&sloppy).unwrap().secret(), key.secret());
    }

    #[test]
    fn typo_is_caught() {
        let text = RecoveryKey::generate().display();
        let mut chars: Vec<char> = text.chars().collect();
        chars[5] = if chars[5] == 'A' { 'B' } else { 'A' };
        let typo: String = chars.into_iter().collect();
        assert!(matches!(RecoveryKey::parse(&typo), Err(Error::RecoveryKey(_))));
        assert!(RecoveryKey::parse("too-short").is_err());
    }

    #[test]
    fn golden_vector() {
        let key = RecoveryKey(Key32::from_bytes([0u8; 32]));
        assert_eq!(key.display(), GOLDEN);
    }

    const GOLDEN: &str = "0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0003-F3J6";
}
