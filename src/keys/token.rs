//! Vault-key tokens: 192 random bits, `vk_` prefix, stored only as SHA-256,
//! compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of every vault-key token.
pub const TOKEN_PREFIX: &str = "vk_";

fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf)?;
    Ok(hex::encode(buf))
}

/// A new token (`vk_` + 48 hex chars = 192 bits).
///
/// # Errors
/// When the OS random source fails.
pub fn new_token() -> Result<String, getrandom::Error> {
    Ok(format!("{TOKEN_PREFIX}{}", random_hex(24)?))
}

/// A new public key id (`key_` + 64 random bits).
///
/// # Errors
/// When the OS random source fails.
pub fn new_key_id() -> Result<String, getrandom::Error> {
    Ok(format!("key_{}", random_hex(8)?))
}

/// A new admin token (`cga_` + 256 bits).
///
/// # Errors
/// When the OS random source fails.
pub fn new_admin_token() -> Result<String, getrandom::Error> {
    Ok(format!("cga_{}", random_hex(32)?))
}

/// SHA-256 of a token.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Constant-time equality of two hashes.
pub fn hashes_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// Lower-case hex of a hash.
pub fn hash_to_hex(h: &[u8; 32]) -> String {
    hex::encode(h)
}

/// Parses 64 hex chars into a hash.
pub fn hash_from_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hash_round_trips() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert!(a.starts_with("vk_") && a.len() == 51);
        assert_ne!(a, b);
        let h = hash(&a);
        assert_eq!(hash_from_hex(&hash_to_hex(&h)), Some(h));
        assert!(hashes_equal(&h, &hash(&a)));
        assert!(!hashes_equal(&h, &hash(&b)));
    }
}
