//! The emulator's own `appsecret_proof` check.
//!
//! Deliberately independent of the crate's client code: HMAC-SHA256 keyed
//! with the app secret over the user access token, as lowercase hex (the PHP
//! `hash_hmac('sha256', $access_token, $app_secret)` of the API document).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Whether a presented credential (app secret, client token) equals the
/// expected one, in time that depends on neither's content: both are hashed
/// to 32 bytes first (so lengths do not short-circuit the comparison), then
/// every byte is compared.
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    let (given, expected) = (Sha256::digest(given), Sha256::digest(expected));
    given
        .iter()
        .zip(expected.iter())
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

/// Whether `proof` is the appsecret_proof of `token` under `secret`.
///
/// Hex is accepted in either case; the comparison of the MAC is constant-time.
pub(crate) fn matches(secret: &str, token: &str, proof: &str) -> bool {
    let Ok(given) = hex::decode(proof) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(token.as_bytes());
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::{matches, same_secret};

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(SECRET, SECRET));
        assert!(!same_secret(SECRET, &SECRET[..31]));
        assert!(!same_secret(&SECRET[..31], SECRET));
        assert!(!same_secret("", SECRET));
        assert!(!same_secret(&SECRET.to_uppercase(), SECRET));
        assert!(same_secret("", ""));
    }

    const SECRET: &str = "9bdc9ae47c4211b9919a036c1e1bc477";

    #[test]
    fn published_vectors() {
        assert!(matches(
            SECRET,
            "invalid access token",
            "dcca0fde4790f53de526ea8d25c7f8ddbb2616f0d9cb03abc05ba4f144b2d665"
        ));
        assert!(matches(
            SECRET,
            "12345",
            "f33504f20f01865663144455838c35853730928cce84c16952da6a4e8ae3cde3"
        ));
        assert!(matches(
            SECRET,
            "12345",
            "F33504F20F01865663144455838C35853730928CCE84C16952DA6A4E8AE3CDE3"
        ));
    }

    #[test]
    fn rejects_wrong_or_malformed() {
        assert!(!matches(
            SECRET,
            "12345",
            "dcca0fde4790f53de526ea8d25c7f8ddbb2616f0d9cb03abc05ba4f144b2d665"
        ));
        assert!(!matches(SECRET, "12345", "zz"));
        assert!(!matches(SECRET, "12345", ""));
        assert!(!matches(SECRET, "12345", "f33504f2"));
    }
}
