//! The messages on the revocation channel, and the instance ids that sign
//! them as their sender.
//!
//! A message is `{sender} {counter} {kind} {subject}`: kind `t` (forget a
//! token; subject: its hash, hex), `r` (the same, and the sender keeps the
//! token as refused) or `a` (forget an account's tokens; subject: its id).
//! The revocation scripts compose them as they publish.

use std::sync::atomic::{AtomicU64, Ordering};

/// `(sender, counter, kind, subject)`, if `payload` has that shape.
pub(super) fn parse_message(payload: &[u8]) -> Option<(&str, u64, &str, &str)> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(4, ' ');
    let sender = parts.next()?;
    let gen = parts.next()?.parse().ok()?;
    let kind = parts.next()?;
    let subject = parts.next()?;
    Some((sender, gen, kind, subject))
}

/// A process-unique id, without a random-number dependency: the sender of
/// this instance's messages (its own are told from the others'), and the
/// value of its claims.
pub(super) fn instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(now.as_nanos());
    }
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse() {
        assert_eq!(
            parse_message(b"abc 12 a 1234567890"),
            Some(("abc", 12, "a", "1234567890"))
        );
        assert_eq!(parse_message(b"abc x a 1"), None);
        assert_eq!(parse_message(b"abc 1 a"), None);
        assert_eq!(parse_message(&[0xff, 0x20]), None);
    }

    #[test]
    fn ids_differ() {
        assert_ne!(instance_id(), instance_id());
    }
}
