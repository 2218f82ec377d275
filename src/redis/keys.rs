//! The key layout: every Redis key the tier touches, and its channel, under
//! `{namespace}:{app_id}` (two apps sharing a Redis never share anything).
//!
//! In a cluster the prefix is a hash tag, `{namespace:app_id}` (braces
//! included): every key of the tier hashes to one slot, so each script,
//! whatever keys it touches (the account revocation computes its entries'
//! keys from the index), runs on one node, and the revocation counter that
//! orders every store after every revocation stays one key. One master
//! holds the tier's keys: a cluster brings it failover, not sharding (an
//! auth tier's load is a few commands per cache miss).
//!
//! | key | type | holds |
//! |-----|------|-------|
//! | `…:t:{hash hex}` | string, `PX` = the entry's TTL | a token's sealed entry (`entry`) |
//! | `…:a:{account id}` | sorted set, expires with its last entry | the hashes of the account's live entries, scored by their expiry (Redis time, ms) |
//! | `…:c:{hash hex}` | string, `PX` = the claim wait | the id of the instance verifying the token |
//! | `…:gen` | integer | the revocation counter (`INCR` by every revocation) |
//! | `…:revocations` | pub/sub channel | the revocation messages (`messages`) |
//!
//! The hash is the SHA-256 of the token, lowercase hex: the token itself
//! never leaves the process.

/// The names of a tier's keys and channel.
pub(super) struct Keys {
    prefix: String,
    gen: String,
    token: String,
    account: String,
    claim: String,
    channel: String,
}

impl Keys {
    /// The layout of the tier of `app_id` under `namespace` (both
    /// validated by the builder: no whitespace, no empty part; in a
    /// `cluster`, no braces), as a hash tag in a cluster.
    pub(super) fn new(namespace: &str, app_id: &str, cluster: bool) -> Self {
        let prefix = if cluster {
            format!("{{{namespace}:{app_id}}}")
        } else {
            format!("{namespace}:{app_id}")
        };
        Self {
            gen: format!("{prefix}:gen"),
            token: format!("{prefix}:t:"),
            account: format!("{prefix}:a:"),
            claim: format!("{prefix}:c:"),
            channel: format!("{prefix}:revocations"),
            prefix,
        }
    }

    /// `{namespace}:{app_id}` (in a cluster, in braces): names the tier in
    /// logs (nothing secret).
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The revocation counter.
    pub(super) fn gen(&self) -> &str {
        &self.gen
    }

    /// The revocation channel.
    pub(super) fn channel(&self) -> &str {
        &self.channel
    }

    /// The entry of the token whose hash is `hex`.
    pub(super) fn token(&self, hex: &str) -> String {
        format!("{}{hex}", self.token)
    }

    /// What precedes the hash in an entry's key (the account revocation
    /// script builds the keys of the hashes it finds in the index).
    pub(super) fn token_prefix(&self) -> &str {
        &self.token
    }

    /// The index of `account_id`'s entries.
    pub(super) fn account(&self, account_id: &str) -> String {
        format!("{}{account_id}", self.account)
    }

    /// The claim on verifying the token whose hash is `hex`.
    pub(super) fn claim(&self, hex: &str) -> String {
        format!("{}{hex}", self.claim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout is shared by every instance of every version on the same
    /// Redis (and by the integration tests, which write there as an
    /// attacker would): it changes only on purpose.
    #[test]
    fn the_layout() {
        let keys = Keys::new("accountkit", "1234", false);
        assert_eq!(keys.prefix(), "accountkit:1234");
        assert_eq!(keys.gen(), "accountkit:1234:gen");
        assert_eq!(keys.channel(), "accountkit:1234:revocations");
        assert_eq!(keys.token("ab01"), "accountkit:1234:t:ab01");
        assert_eq!(keys.token_prefix(), "accountkit:1234:t:");
        assert_eq!(
            format!("{}{}", keys.token_prefix(), "ab01"),
            keys.token("ab01")
        );
        assert_eq!(
            keys.account("1000000000000001"),
            "accountkit:1234:a:1000000000000001"
        );
        assert_eq!(keys.claim("ab01"), "accountkit:1234:c:ab01");
        let other = Keys::new("forgery", "1235", false);
        assert_eq!(other.token("ab01"), "forgery:1235:t:ab01");
        assert_eq!(other.channel(), "forgery:1235:revocations");
    }

    /// In a cluster: one hash tag, the same for every key.
    #[test]
    fn the_cluster_layout() {
        let keys = Keys::new("accountkit", "1234", true);
        let tag = "{accountkit:1234}";
        assert_eq!(keys.prefix(), tag);
        for key in [
            keys.gen().to_owned(),
            keys.channel().to_owned(),
            keys.token("ab01"),
            format!("{}{}", keys.token_prefix(), "ab01"),
            keys.account("1000000000000001"),
            keys.claim("ab01"),
        ] {
            assert!(key.starts_with(tag), "{key}");
            assert_eq!(key.matches('{').count(), 1, "{key}");
        }
        assert_eq!(keys.token("ab01"), "{accountkit:1234}:t:ab01");
    }
}
