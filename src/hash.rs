//! The only form in which a token is kept: its SHA-256. A leaf module: the
//! cache, the shared tier and the admin client all key by it.

use sha2::{Digest, Sha256};

/// SHA-256 of a token: the cache key, in memory and in a shared tier.
pub type TokenHash = [u8; 32];

/// SHA-256 of a token.
///
/// ```
/// use actix_accountkit::hash::token_hash;
/// assert_eq!(hex::encode(&token_hash("abc")[..4]), "ba7816bf");
/// ```
pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}
