//! Identifiers in logs: a stable pseudonym (first 4 bytes of a BLAKE3 hash under a fixed
//! context), so log lines can be correlated without showing group, device or blob ids.

/// Displays an id as `~` and 8 hex digits of its hash, never the id itself.
pub struct Redacted<'a, T: AsRef<[u8]>>(pub &'a T);

impl<T: AsRef<[u8]>> std::fmt::Display for Redacted<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = blake3::derive_key("zerok log pseudonym v1", self.0.as_ref());
        write!(f, "~{}", hex::encode(&h[..4]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::GroupId;

    #[test]
    fn never_shows_the_id() {
        let id = GroupId([0xAB; 32]);
        let shown = format!("{} {:?}", Redacted(&id), id);
        assert!(!shown.contains("abab"), "{shown}");
        assert_eq!(format!("{}", Redacted(&id)), format!("{}", Redacted(&id)));
    }
}
