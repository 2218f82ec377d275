//! The shared entries: what is stored under a token's key, and the seal
//! that authenticates it.
//!
//! A stored value is `v1.{expiry ms}.{MAC hex}.{entry JSON}`, the MAC an
//! HMAC-SHA256 over the format version, the full Redis key (length-prefixed),
//! the expiry and the entry, keyed with a key derived from the app secret
//! ([`ENTRY_KEY_PURPOSE`]). A value is accepted only under the key it was
//! sealed for, unaltered, before its expiry, and written by an instance
//! with the same app secret and app id.

use std::sync::Arc;
use std::time::Duration;

use hmac::Mac;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::{hmac_sha256, Config, HmacSha256};
use crate::types::Account;
use crate::verify::{Refusal, Verification};

/// What the entry key is derived for ([`Config::derive_key`]); a new
/// version of the entry format gets a new label.
pub(super) const ENTRY_KEY_PURPOSE: &str = "actix-accountkit redis entry v1";
/// First field of every stored value: the entry format.
const ENTRY_VERSION: &str = "v1";

/// What is stored in Redis under a token hash, as JSON inside a sealed
/// value (see [`Sealer::seal`]).
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Entry {
    Account { account: Account },
    InvalidToken { subcode: Option<i64> },
    WrongApp,
}

impl Entry {
    /// The entry for an upstream answer; `None` for an answer that is not
    /// shared (Account Kit unavailable).
    pub(super) fn from_answer(answer: &Verification) -> Option<Self> {
        match answer {
            Ok(account) => Some(Entry::Account {
                account: Account::clone(account),
            }),
            Err(Refusal::InvalidToken { subcode }) => {
                Some(Entry::InvalidToken { subcode: *subcode })
            }
            Err(Refusal::WrongApp) => Some(Entry::WrongApp),
            Err(_) => None,
        }
    }

    pub(super) fn into_answer(self) -> Verification {
        match self {
            Entry::Account { account } => Ok(Arc::new(account)),
            Entry::InvalidToken { subcode } => Err(Refusal::InvalidToken { subcode }),
            Entry::WrongApp => Err(Refusal::WrongApp),
        }
    }

    /// The account whose index lists this entry.
    pub(super) fn account_id(&self) -> Option<&str> {
        match self {
            Entry::Account { account } => Some(&account.id),
            _ => None,
        }
    }
}

/// What a stored value turned out to be.
pub(super) enum Opened {
    /// Written by an instance of this app for this key, still valid: the
    /// entry and how long it remains valid by its own expiry.
    Valid(Entry, Duration),
    /// Written by an instance of this app for this key, but past its
    /// expiry (the Redis key outlived it: a clock step, or someone extended
    /// it). Not counted as forged.
    Stale,
    /// Not written for this key with this app's entry key: copied from
    /// another key, altered, truncated, of an earlier unsigned format, or
    /// written with another app secret.
    Forged,
}

/// Seals and opens entries with the entry key of one app.
pub(super) struct Sealer {
    /// HMAC-SHA256 keyed with the entry key (derived from the app secret):
    /// authenticates every stored value together with the key it is
    /// stored under. Cloned per use; never printed (no Debug).
    mac: HmacSha256,
}

impl Sealer {
    /// The sealer of `config`'s app: the entry key is derived from its app
    /// secret, bound to its app id, and zeroized once the MAC is keyed.
    pub(super) fn new(config: &Config) -> Self {
        let entry_key = config.derive_key(ENTRY_KEY_PURPOSE);
        Self {
            mac: hmac_sha256(entry_key.expose_secret()),
        }
    }

    /// The MAC of a stored value: the format version, the full Redis key
    /// it is stored under (length-prefixed), its expiry and the entry.
    fn mac(&self, redis_key: &str, expires_ms: u64, json: &str) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(ENTRY_VERSION.as_bytes());
        mac.update(&[0]);
        mac.update(&(redis_key.len() as u64).to_be_bytes());
        mac.update(redis_key.as_bytes());
        mac.update(&expires_ms.to_be_bytes());
        mac.update(json.as_bytes());
        mac
    }

    /// The value stored under `redis_key` for `entry`, valid for `ttl`:
    /// `v1.{expiry ms}.{MAC hex}.{entry JSON}`.
    pub(super) fn seal(
        &self,
        redis_key: &str,
        entry: &Entry,
        ttl: Duration,
    ) -> Result<String, serde_json::Error> {
        let json = serde_json::to_string(entry)?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let expires_ms = now_ms().saturating_add(ttl_ms);
        let tag = self
            .mac(redis_key, expires_ms, &json)
            .finalize()
            .into_bytes();
        Ok(format!(
            "{ENTRY_VERSION}.{expires_ms}.{}.{json}",
            hex::encode(tag)
        ))
    }

    /// Checks a value read from `redis_key` (in constant time) and reads
    /// its entry.
    pub(super) fn open(&self, redis_key: &str, value: &str) -> Opened {
        let mut parts = value.splitn(4, '.');
        let (Some(ENTRY_VERSION), Some(expires), Some(tag), Some(json)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Opened::Forged;
        };
        let (Ok(expires_ms), Ok(tag)) = (expires.parse::<u64>(), hex::decode(tag)) else {
            return Opened::Forged;
        };
        if self
            .mac(redis_key, expires_ms, json)
            .verify_slice(&tag)
            .is_err()
        {
            return Opened::Forged;
        }
        // Authentic from here on: written by an instance of this app.
        let Ok(entry) = serde_json::from_str::<Entry>(json) else {
            // Sealed but unreadable (another version's entry shape).
            return Opened::Forged;
        };
        match expires_ms.checked_sub(now_ms()) {
            Some(left) if left > 0 => Opened::Valid(entry, Duration::from_millis(left)),
            _ => Opened::Stale,
        }
    }
}

/// Milliseconds since the Unix epoch, by this machine's clock.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::builder("1234", "the-app-secret-0123456789")
            .build()
            .unwrap()
    }

    const KEY_A: &str = "accountkit:1234:t:aaaa";
    const KEY_B: &str = "accountkit:1234:t:bbbb";
    const MINUTE: Duration = Duration::from_secs(60);

    fn account() -> Entry {
        Entry::Account {
            account: Account::new("1000000000000001").with_application("1234"),
        }
    }

    #[test]
    fn entries_round_trip_and_hide_nothing_else() {
        let sealer = Sealer::new(&config());
        let account = Account::new("1000000000000001").with_application("1234");
        for answer in [
            Ok(Arc::new(account)),
            Err(Refusal::InvalidToken { subcode: Some(467) }),
            Err(Refusal::WrongApp),
        ] {
            let entry = Entry::from_answer(&answer).unwrap();
            let sealed = sealer.seal(KEY_A, &entry, MINUTE).unwrap();
            assert!(sealed.starts_with("v1."));
            assert!(!sealed.contains("the-app-secret"));
            let Opened::Valid(back, left) = sealer.open(KEY_A, &sealed) else {
                panic!("own entry refused");
            };
            assert!(left <= MINUTE && left > MINUTE - Duration::from_secs(5));
            assert_eq!(format!("{:?}", back.into_answer()), format!("{answer:?}"));
        }
        let unavailable: Verification = Err(Refusal::Unavailable(Arc::new(
            crate::Error::InvalidAccountId,
        )));
        assert!(Entry::from_answer(&unavailable).is_none());
    }

    #[test]
    fn an_entry_is_valid_only_under_its_key_unaltered_and_with_this_apps_key() {
        let sealer = Sealer::new(&config());
        let sealed = sealer.seal(KEY_A, &account(), MINUTE).unwrap();
        let forged = |value: &str, key: &str| matches!(sealer.open(key, value), Opened::Forged);
        assert!(!forged(&sealed, KEY_A));
        // Copied to another token's key.
        assert!(forged(&sealed, KEY_B));
        // Any one byte changed, anywhere (version, expiry, MAC, entry).
        for i in 0..sealed.len() {
            let mut bytes = sealed.clone().into_bytes();
            bytes[i] = if bytes[i] == b'1' { b'2' } else { b'1' };
            let garbled = String::from_utf8(bytes).unwrap();
            assert!(forged(&garbled, KEY_A), "byte {i} changed, accepted");
        }
        // A longer life, re-signed by nobody.
        let (_, rest) = sealed.split_once('.').unwrap();
        let (expires, rest) = rest.split_once('.').unwrap();
        let later = expires.parse::<u64>().unwrap() + 3_600_000;
        assert!(forged(&format!("v1.{later}.{rest}"), KEY_A));
        // Truncated; empty; the earlier unsigned format; a MAC-less entry.
        for n in [0, 1, 3, 20, 70, 90, sealed.len() - 1] {
            assert!(forged(&sealed[..n], KEY_A), "truncated to {n}");
        }
        let json = serde_json::to_string(&account()).unwrap();
        assert!(forged(&json, KEY_A));
        assert!(forged(&format!("v1.{later}..{json}"), KEY_A));
        assert!(forged("<list>", KEY_A));
        // Another app secret, or another app id: another key.
        let other_secret = Config::builder("1234", "another-secret-0123456789")
            .build()
            .unwrap();
        assert!(matches!(
            Sealer::new(&other_secret).open(KEY_A, &sealed),
            Opened::Forged
        ));
        let other_app = Config::builder("1235", "the-app-secret-0123456789")
            .build()
            .unwrap();
        assert!(matches!(
            Sealer::new(&other_app).open(KEY_A, &sealed),
            Opened::Forged
        ));
    }

    #[test]
    fn an_expired_entry_is_stale_not_forged() {
        let sealer = Sealer::new(&config());
        let sealed = sealer.seal(KEY_A, &account(), Duration::ZERO).unwrap();
        assert!(matches!(sealer.open(KEY_A, &sealed), Opened::Stale));
    }
}
