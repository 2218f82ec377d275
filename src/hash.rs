//! The only form in which a token is kept: its SHA-256. A leaf module: the
//! cache, the shared tier and the admin client all key by it.

use sha2::{Digest, Sha256};

/// SHA-256 of a token: the cache key, in memory and in a shared tier.
pub type TokenHash = [u8; 32];

/// SHA-256 of a token (a string, or its bytes).
///
/// ```
/// use actix_accountkit::hash::token_hash;
/// assert_eq!(hex::encode(&token_hash("abc")[..4]), "ba7816bf");
/// assert_eq!(token_hash(b"abc"), token_hash("abc"));
/// ```
pub fn token_hash(token: impl AsRef<[u8]>) -> TokenHash {
    Sha256::digest(token.as_ref()).into()
}
