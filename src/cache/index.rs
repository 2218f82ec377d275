//! The account index of a cache shard: account → the keys of its cached
//! tokens, so that a revocation by account (invalidate-all, delete) finds
//! them.
//!
//! Sized for the common case, one token per account, at ~50 bytes per
//! cached token: an account is keyed by a keyed 64-bit hash of its id (no
//! copy of the id per entry), and its keys are held inline while there is
//! one. Two ids that share a hash share a list; [`AccountIndex::take`]
//! hands the whole list back, and the caller removes only the entries
//! whose account is the one revoked (and re-indexes the others), so a
//! collision can never revoke another account's tokens.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;

use crate::hash::TokenHash;

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct AccountIndex {
    /// Keys the account-id hash (per shard, random).
    ids: RandomState,
    map: HashMap<u64, Tokens>,
}

/// The keys of one account's cached tokens (or of several accounts whose
/// ids share a hash).
#[derive(Debug)]
pub(crate) enum Tokens {
    One(TokenHash),
    Many(Vec<TokenHash>),
}

impl Tokens {
    /// Every key.
    pub(crate) fn keys(&self) -> &[TokenHash] {
        match self {
            Tokens::One(key) => std::slice::from_ref(key),
            Tokens::Many(keys) => keys,
        }
    }
}

impl AccountIndex {
    fn slot(&self, account_id: &str) -> u64 {
        self.ids.hash_one(account_id)
    }

    /// Records that `key` is a cached token of `account_id`.
    pub(crate) fn insert(&mut self, account_id: &str, key: TokenHash) {
        let slot = self.slot(account_id);
        match self.map.get_mut(&slot) {
            None => {
                self.map.insert(slot, Tokens::One(key));
            }
            Some(tokens) => match tokens {
                Tokens::One(first) => *tokens = Tokens::Many(vec![*first, key]),
                Tokens::Many(keys) => keys.push(key),
            },
        }
    }

    /// Forgets `key` as a token of `account_id`.
    pub(crate) fn remove(&mut self, account_id: &str, key: &TokenHash) {
        let slot = self.slot(account_id);
        let now_empty = match self.map.get_mut(&slot) {
            None => false,
            Some(Tokens::One(only)) => only == key,
            Some(Tokens::Many(keys)) => {
                keys.retain(|k| k != key);
                keys.is_empty()
            }
        };
        if now_empty {
            self.map.remove(&slot);
        }
    }

    /// Removes and returns the keys of `account_id` (and of any account
    /// whose id shares its hash: see the module documentation).
    pub(crate) fn take(&mut self, account_id: &str) -> Option<Tokens> {
        let slot = self.slot(account_id);
        self.map.remove(&slot)
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.map.clear();
    }

    /// Accounts (id hashes) indexed.
    #[cfg(test)]
    pub(crate) fn accounts(&self) -> usize {
        self.map.len()
    }

    /// Whether `account_id` has a token indexed.
    #[cfg(test)]
    pub(crate) fn contains(&self, account_id: &str) -> bool {
        self.map.contains_key(&self.slot(account_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_inline_then_many_then_none() {
        let mut index = AccountIndex::default();
        index.insert("a", [1; 32]);
        assert!(matches!(index.map.values().next(), Some(Tokens::One(_))));
        index.insert("a", [2; 32]);
        index.insert("b", [3; 32]);
        assert_eq!(index.accounts(), 2);
        index.remove("a", &[1; 32]);
        index.remove("a", &[9; 32]);
        assert!(index.contains("a"));
        index.remove("a", &[2; 32]);
        assert!(!index.contains("a"));
        index.remove("b", &[9; 32]);
        assert!(index.contains("b"));
        let taken = index.take("b").map(|t| t.keys().to_vec());
        assert_eq!(taken, Some(vec![[3; 32]]));
        assert_eq!(index.accounts(), 0);
        index.insert("c", [4; 32]);
        index.clear();
        assert!(index.take("c").is_none());
    }
}
