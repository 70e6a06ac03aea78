//! Secret key material: 32-byte keys that zeroize on drop and print as `[REDACTED]`.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A 32-byte secret key. Cloning copies the secret; every copy is wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Key32([u8; 32]);

impl Key32 {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh key from the OS random generator.
    pub fn generate() -> Self {
        Self(random_bytes())
    }

    /// The raw key bytes; keep the borrow short.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key32([REDACTED])")
    }
}

/// N bytes from the operating system's random generator.
///
/// # Panics
/// If the OS generator is unavailable, which leaves no safe way to make keys or nonces.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("OS random generator unavailable");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let key = Key32::from_bytes([0xAB; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        assert!(shown.contains("REDACTED"));
    }
}
