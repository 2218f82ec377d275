//! The messages on the revocation channel, and the instance ids that sign
//! them as their sender: the wire format has one owner, this module.
//!
//! A message is `{sender} {counter} {kind} {subject}`, one space between
//! fields (the subject, last, is the rest of the message):
//!
//! | kind | subject | meaning |
//! |------|---------|---------|
//! | `t` | token hash, hex | forget this token |
//! | `r` | token hash, hex | forget this token; the sender keeps it as refused |
//! | `a` | account id | forget every token of this account |
//!
//! The counter is Redis's revocation counter after this revocation; the
//! revocation scripts take it (`INCR`) and publish the message in one
//! step, so they receive the message from [`Message::encode`] in two
//! parts, before and after the counter.
//!
//! Anyone who can publish on the channel can send one: a message is only
//! ever a reason to forget. Nothing in it is trusted beyond that, not its
//! sender, not its counter, not its kind (an `r` caches no refusal on the
//! instances that receive it).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::hash::TokenHash;

/// The kinds, as written on the wire.
const TOKEN: &str = "t";
const REFUSED: &str = "r";
const ACCOUNT: &str = "a";

/// What a revocation message asks its receivers to forget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Message {
    /// A token, by its hash; `refused` if the sender keeps it as refused
    /// (a logout Account Kit confirmed).
    Token { hash: TokenHash, refused: bool },
    /// Every token of an account.
    Account { id: String },
}

/// A message as received: who sent it, and Redis's revocation counter as
/// the sender's script read it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Envelope {
    /// The instance id of the sender (see [`instance_id`]).
    pub(super) sender: String,
    /// Carried for the logs only: never a checkpoint (anyone could write
    /// any number here).
    pub(super) counter: u64,
    pub(super) message: Message,
}

/// A message encoded for publication by one instance, but for the counter,
/// which the revocation script puts between the two parts.
#[derive(Debug)]
pub(super) struct Encoded {
    /// `{sender} `
    pub(super) head: String,
    /// ` {kind} {subject}`
    pub(super) tail: String,
}

impl Encoded {
    /// What the script publishes once it has the counter.
    #[cfg(test)]
    fn with_counter(&self, counter: u64) -> String {
        format!("{}{counter}{}", self.head, self.tail)
    }
}

/// Why a payload on the channel is not a message to apply.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unreadable<'a> {
    /// Not in the message format: not UTF-8, fewer than four fields, or a
    /// counter that is not a number.
    Garbage,
    /// In the format, from `sender`, but of a kind this version does not
    /// know or with a subject it cannot read (a token hash that is not 32
    /// bytes of hex): another version's message, or a forged one.
    Subject { sender: &'a str },
}

impl Message {
    /// The message `sender` publishes, in two parts around the counter.
    pub(super) fn encode(&self, sender: &str) -> Encoded {
        let (kind, subject) = match self {
            Message::Token { hash, refused } => {
                (if *refused { REFUSED } else { TOKEN }, hex::encode(hash))
            }
            Message::Account { id } => (ACCOUNT, id.clone()),
        };
        Encoded {
            head: format!("{sender} "),
            tail: format!(" {kind} {subject}"),
        }
    }
}

impl Envelope {
    /// Reads a payload received on the channel. Never panics, whatever the
    /// bytes.
    pub(super) fn parse(payload: &[u8]) -> Result<Envelope, Unreadable<'_>> {
        let text = std::str::from_utf8(payload).map_err(|_| Unreadable::Garbage)?;
        let mut parts = text.splitn(4, ' ');
        let (Some(sender), Some(counter), Some(kind), Some(subject)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Unreadable::Garbage);
        };
        let counter = counter.parse().map_err(|_| Unreadable::Garbage)?;
        let unreadable = Unreadable::Subject { sender };
        let message = match kind {
            TOKEN | REFUSED => {
                let mut hash: TokenHash = [0; 32];
                hex::decode_to_slice(subject, &mut hash).map_err(|_| unreadable)?;
                Message::Token {
                    hash,
                    refused: kind == REFUSED,
                }
            }
            ACCOUNT => Message::Account {
                id: subject.to_owned(),
            },
            _ => return Err(unreadable),
        };
        Ok(Envelope {
            sender: sender.to_owned(),
            counter,
            message,
        })
    }
}

/// A process-unique id, without a random-number dependency: the sender of
/// this instance's messages (its own are told from the others'), and the
/// value of its claims.
pub(super) fn instance_id() -> String {
    format!("{:016x}", unpredictable())
}

/// How far a revocation moves the revocation counter: 1 to 2^32 - 1, at
/// random (see `scripts/revoke_token.lua`).
pub(super) fn counter_step() -> u64 {
    unpredictable() % 0xffff_ffff + 1
}

/// 64 bits no other call (in this process or another) returns: SipHash,
/// keyed from the OS's randomness, of the process, a counter and the time.
fn unpredictable() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(now.as_nanos());
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: TokenHash = [0xab; 32];

    fn parse(payload: &str) -> Result<Envelope, Unreadable<'_>> {
        Envelope::parse(payload.as_bytes())
    }

    #[test]
    fn messages_round_trip() {
        for message in [
            Message::Token {
                hash: HASH,
                refused: false,
            },
            Message::Token {
                hash: HASH,
                refused: true,
            },
            Message::Account {
                id: "1000000000000001".into(),
            },
            // The subject is the rest of the message, spaces included.
            Message::Account {
                id: "an id with spaces".into(),
            },
        ] {
            for counter in [0, 12, u64::MAX] {
                let sender = instance_id();
                let wire = message.encode(&sender).with_counter(counter);
                assert_eq!(
                    Envelope::parse(wire.as_bytes()),
                    Ok(Envelope {
                        sender,
                        counter,
                        message: message.clone()
                    }),
                    "{wire}"
                );
            }
        }
    }

    /// The wire format, pinned: instances of different versions share the
    /// channel (and the integration tests forge messages in it).
    #[test]
    fn the_wire_format() {
        let hex = "ab".repeat(32);
        let token = |refused| Message::Token {
            hash: HASH,
            refused,
        };
        assert_eq!(
            token(false).encode("me").with_counter(7),
            format!("me 7 t {hex}")
        );
        assert_eq!(
            token(true).encode("me").with_counter(7),
            format!("me 7 r {hex}")
        );
        let account = Message::Account { id: "42".into() };
        assert_eq!(account.encode("me").with_counter(7), "me 7 a 42");
        assert_eq!(
            parse("abc 12 a 1234567890"),
            Ok(Envelope {
                sender: "abc".into(),
                counter: 12,
                message: Message::Account {
                    id: "1234567890".into()
                },
            })
        );
    }

    #[test]
    fn garbage_is_not_a_message() {
        for garbage in [
            "",
            "garbage",
            "abc x a 1",
            "abc 1 a",
            "abc -1 a 1",
            "abc 18446744073709551616 a 1",
        ] {
            assert_eq!(parse(garbage), Err(Unreadable::Garbage), "{garbage:?}");
        }
        assert_eq!(Envelope::parse(&[0xff, 0x20]), Err(Unreadable::Garbage));
    }

    #[test]
    fn a_forged_subject_is_unreadable_with_its_sender() {
        let short = "ab".repeat(31);
        let long = "ab".repeat(33);
        let odd = format!("{}a", "ab".repeat(31));
        for forged in [
            "someone 2 t not-a-hash".to_owned(),
            format!("someone 2 t {short}"),
            format!("someone 2 r {long}"),
            format!("someone 2 r {odd}"),
            format!("someone 2 t {} ", "ab".repeat(32)),
            format!("someone 2 x {}", "ab".repeat(32)),
            "someone 2 T 1".to_owned(),
        ] {
            assert_eq!(
                parse(&forged),
                Err(Unreadable::Subject { sender: "someone" }),
                "{forged:?}"
            );
        }
    }

    proptest::proptest! {
        /// Any bytes, and anything framed like a message: an answer, never
        /// a panic; what parses, encoded again, parses to the same message.
        #[test]
        fn no_payload_panics(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
            framed in "[a-z0-9]{0,3} [0-9]{0,3} [tra ]{0,2} [0-9a-fA-F ]{0,70}",
        ) {
            let _ = Envelope::parse(&bytes);
            if let Ok(envelope) = parse(&framed) {
                let wire = envelope.message.encode(&envelope.sender).with_counter(envelope.counter);
                proptest::prop_assert_eq!(parse(&wire), Ok(envelope));
            }
        }
    }

    #[test]
    fn ids_differ() {
        assert_ne!(instance_id(), instance_id());
    }
}
