//! The Lua scripts the tier runs (each one atomic, by `EVALSHA`), one
//! `.lua` file each under `scripts/`, whose opening comment documents its
//! KEYS, ARGV and answer; and the words of the lookup's answer.

use ::redis::Script;

/// The tier's scripts, hashed once.
pub(super) struct Scripts {
    /// `scripts/lookup.lua`: the shared answer, or a claim.
    pub(super) lookup: Script,
    /// `scripts/store.lua`: the conditional write, and the claim's release.
    pub(super) store: Script,
    /// `scripts/revoke_token.lua`: a logout, published.
    pub(super) revoke_token: Script,
    /// `scripts/revoke_account.lua`: an account's tokens, published.
    pub(super) revoke_account: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            lookup: Script::new(LOOKUP),
            store: Script::new(STORE),
            revoke_token: Script::new(REVOKE_TOKEN),
            revoke_account: Script::new(REVOKE_ACCOUNT),
        }
    }
}

const LOOKUP: &str = include_str!("scripts/lookup.lua");
const STORE: &str = include_str!("scripts/store.lua");
const REVOKE_TOKEN: &str = include_str!("scripts/revoke_token.lua");
const REVOKE_ACCOUNT: &str = include_str!("scripts/revoke_account.lua");

/// The second field of `lookup.lua`'s answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LookupStatus {
    /// A value is stored (the answer's third field).
    Found,
    /// Nothing stored; this instance holds the claim.
    Claimed,
    /// Nothing stored; another instance holds the claim.
    Busy,
}

impl LookupStatus {
    pub(super) fn parse(word: &str) -> Option<Self> {
        match word {
            "found" => Some(Self::Found),
            "claimed" => Some(Self::Claimed),
            "busy" => Some(Self::Busy),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_documents_its_keys_and_argv() {
        for (name, source) in [
            ("lookup", LOOKUP),
            ("store", STORE),
            ("revoke_token", REVOKE_TOKEN),
            ("revoke_account", REVOKE_ACCOUNT),
        ] {
            assert!(source.starts_with(&format!("-- {name}: ")), "{name}");
            let header: Vec<&str> = source.lines().take_while(|l| l.starts_with("--")).collect();
            for table in ["KEYS", "ARGV"] {
                for n in 1..=9 {
                    let item = format!("{table}[{n}]");
                    if source.contains(&item) {
                        assert!(
                            header.iter().any(|l| l.starts_with(&format!("-- {item} "))),
                            "{name}: {item} undocumented"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_word_of_the_lookup_answer_is_read() {
        for word in ["found", "claimed", "busy"] {
            assert!(LOOKUP.contains(&format!("'{word}'")), "{word}");
            assert!(LookupStatus::parse(word).is_some(), "{word}");
        }
        assert_eq!(LookupStatus::parse("FOUND"), None);
    }
}
