//! A second cache tier shared by several instances, and the revocations
//! they exchange: the hook the cache
//! ([`CachedVerifier`](crate::cache::CachedVerifier)) calls, whatever the
//! backend. This module knows nothing of the cache: the cache calls
//! [`SharedTier`], and the tier talks back through [`RevocationTarget`].
//!
//! The crate ships one implementation behind the `redis` feature
//! (`actix_accountkit::redis::RedisTier`); implement [`SharedTier`] to use
//! another store.
//!
//! # Where the cache calls it
//!
//! * On a local miss, inside the single flight, **before** the inner
//!   verifier: [`SharedTier::get`]. A [`SharedLookup::Found`] answer is
//!   stored locally (for no longer than it remains valid in the tier) and
//!   no upstream call is made.
//! * After an upstream answer, still inside the flight:
//!   [`SharedTier::store`], with the ticket of the lookup, the answer if the
//!   cache kept it (accounts for the positive TTL, definite refusals for the
//!   negative TTL) or `None` (nothing to share: release the ticket).
//! * A local hit ([`Verifier::recall`](crate::verify::Verifier::recall) on
//!   the middleware's path, [`Verifier::verify_now`](crate::verify::Verifier::verify_now))
//!   never calls the tier.
//!
//! # Revocations
//!
//! A revocation (`CachedVerifier::revoke`, which the admin client calls)
//! invalidates locally, then hands the [`Revocation`] to
//! [`SharedTier::publish`], which must drop the shared entries and tell the
//! other instances, then invalidates locally again. A tier hands what it
//! receives from the other instances to the [`RevocationSink`] it was given
//! in [`SharedTier::attach`]; the sink invalidates locally, and the cache's
//! epoch guard keeps any verification in flight at that moment out of the
//! cache.
//!
//! Every method must be bounded in time and must not fail: a tier that cannot
//! answer says [`SharedLookup::Unavailable`] and the cache asks upstream.

use std::fmt;
use std::sync::Weak;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::hash::TokenHash;
use crate::verify::Verification;

/// A second-level cache shared by several instances, which also carries
/// revocations between them.
///
/// Object-safe: the cache holds an `Arc<dyn SharedTier>`.
///
/// ```
/// use actix_accountkit::hash::TokenHash;
/// use actix_accountkit::shared::{Revocation, RevocationSink, SharedLookup, SharedStats, SharedTier};
/// use actix_accountkit::verify::Verification;
/// use futures::future::{BoxFuture, FutureExt};
/// use std::time::Duration;
///
/// /// A tier that knows nothing and tells no one (what the cache does without a tier).
/// #[derive(Debug)]
/// struct Nowhere;
///
/// impl SharedTier for Nowhere {
///     fn attach(&self, _sink: RevocationSink) {}
///     fn get<'a>(&'a self, _key: &'a TokenHash) -> BoxFuture<'a, SharedLookup> {
///         async { SharedLookup::Unavailable }.boxed()
///     }
///     fn store<'a>(&'a self, _key: &'a TokenHash, _ticket: u64, _answer: Option<&'a Verification>, _ttl: Duration) -> BoxFuture<'a, ()> {
///         async {}.boxed()
///     }
///     fn publish<'a>(&'a self, _revocation: &'a Revocation) -> BoxFuture<'a, ()> {
///         async {}.boxed()
///     }
///     fn stats(&self) -> SharedStats {
///         SharedStats::default()
///     }
/// }
/// ```
pub trait SharedTier: Send + Sync + fmt::Debug + 'static {
    /// Called by each cache the tier is attached to, once, when the cache is
    /// built: revocations received from other instances go to `sink`.
    fn attach(&self, sink: RevocationSink);

    /// The answer stored for a token hash, or a ticket for storing one.
    fn get<'a>(&'a self, key: &'a TokenHash) -> BoxFuture<'a, SharedLookup>;

    /// After an upstream answer to a [`SharedLookup::Missing`] lookup:
    /// stores `answer` for `ttl` (unless a revocation happened since the
    /// lookup that issued `ticket`), or, with `None`, only releases the
    /// ticket.
    fn store<'a>(
        &'a self,
        key: &'a TokenHash,
        ticket: u64,
        answer: Option<&'a Verification>,
        ttl: Duration,
    ) -> BoxFuture<'a, ()>;

    /// Drops the shared entries a revocation made here concerns and tells
    /// the other instances. Called after the local revocation.
    fn publish<'a>(&'a self, revocation: &'a Revocation) -> BoxFuture<'a, ()>;

    /// The tier's counters.
    fn stats(&self) -> SharedStats;

    /// A [`SharedLookup::Missing`] ticket whose flight was dropped before
    /// it could call [`store`](Self::store) (its deadline passed, its
    /// runtime shut down): give up what the ticket holds (for Redis, the
    /// claim other instances wait on) now, rather than when it expires.
    /// Called from a destructor: must not block (start the work and
    /// return). Default: nothing (whatever the ticket holds expires on its
    /// own).
    fn release(&self, key: &TokenHash, ticket: u64) {
        let _ = (key, ticket);
    }

    /// The app whose entries this tier holds, if it is bound to one. A
    /// cache of another app must not use it: its entries were verified
    /// against that app's id. [`AccountKit`](crate::AccountKit) refuses the
    /// mismatch. Default: `None` (not bound).
    fn app_id(&self) -> Option<&str> {
        None
    }
}

/// The result of [`SharedTier::get`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SharedLookup {
    /// Another instance verified (or refused) this token.
    Found {
        /// The stored answer.
        answer: Verification,
        /// How long it remains valid in the tier; the local copy lives no
        /// longer.
        remaining: Duration,
    },
    /// Nothing stored: verify upstream, then call [`SharedTier::store`]
    /// with this ticket.
    Missing {
        /// Opaque to the cache; handed back to [`SharedTier::store`].
        ticket: u64,
    },
    /// The tier could not answer (unreachable, timed out, unreadable
    /// entry): verify upstream and store nothing.
    Unavailable,
}

/// A revocation made on this instance, for the other instances.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revocation {
    /// One token (logout).
    Token {
        /// SHA-256 of the token ([`token_hash`](crate::hash::token_hash)).
        hash: TokenHash,
        /// `Some(how long)` when the token is known dead: remember it as
        /// refused that long (the revoking cache's negative TTL); `None` when
        /// it is only forgotten (the logout call failed).
        refused_for: Option<Duration>,
    },
    /// Every token of an account (invalidate-all, delete).
    Account {
        /// The account id.
        id: String,
    },
}

impl fmt::Debug for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A prefix of the hash is enough to correlate logs.
            Revocation::Token { hash, refused_for } => f
                .debug_struct("Token")
                .field("hash", &format_args!("{}…", hex::encode(&hash[..4])))
                .field("refused_for", refused_for)
                .finish(),
            Revocation::Account { id } => f.debug_struct("Account").field("id", id).finish(),
        }
    }
}

/// A shared tier's counters, part of [`CacheStats`](crate::cache::CacheStats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SharedStats {
    /// Whether the tier is reachable now (for Redis: the subscription is up).
    pub connected: bool,
    /// Calls that failed or timed out (each fell through to a local or
    /// upstream answer).
    pub errors: u64,
    /// Revocations made here and delivered to the other instances.
    pub revocations_published: u64,
    /// Revocations received from the other instances.
    pub revocations_received: u64,
    /// Revocations made here while the tier was unreachable, waiting to be
    /// published when it is back.
    pub revocations_pending: u64,
    /// Times the local cache was emptied of verified accounts (refusals
    /// stay) because revocations may have been missed (the tier reconnected
    /// and revocations happened meanwhile).
    pub resyncs: u64,
    /// Times the tier connected again after losing its connection (the
    /// first connection is not counted).
    pub reconnects: u64,
    /// Shared entries refused because they failed their authentication
    /// check (copied from another token's key, altered, truncated, written
    /// with another app secret or in an older unsigned format): each was
    /// treated as a miss and verified upstream.
    pub rejected_entries: u64,
    /// Calls made for requests (lookups, stores, publications) that ran
    /// into the tier's timeout: each cost its request that long. A hung
    /// tier costs a few of them, then the breaker opens (see
    /// [`breaker`](Self::breaker)).
    pub timeouts: u64,
    /// Calls not made because the breaker was open: each request went to
    /// the local cache and upstream at once (a revocation was queued).
    pub skipped: u64,
    /// Times the breaker opened (after consecutive timeouts, or a probe
    /// that timed out).
    pub breaker_trips: u64,
    /// The breaker's state now.
    pub breaker: BreakerState,
}

/// The state of a shared tier's breaker, part of [`SharedStats`]: whether
/// calls made for requests go to the tier.
///
/// Serialized as `"closed"`, `"open"`, `"half_open"` ([`as_str`](Self::as_str)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go to the tier (also: a tier without a breaker).
    #[default]
    Closed,
    /// The tier timed out repeatedly: calls skip it until the next probe.
    Open,
    /// One call (the probe) is trying the tier; the others skip it.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// What revocations received from the other instances act on: a cache,
/// seen through these three methods only.
pub trait RevocationTarget: Send + Sync + 'static {
    /// Forgets the account a token (by its hash) was verified as; a refusal
    /// cached for it stays: a revocation never makes a token valid.
    fn invalidate_hash(&self, hash: &TokenHash);
    /// Forgets every cached token of an account.
    fn invalidate_account(&self, account_id: &str);
    /// Forgets every verified account (revocations may have been missed);
    /// cached refusals stay.
    fn invalidate_all(&self);
}

/// Where a tier delivers the revocations it receives: a weak handle on one
/// cache (it does not keep the cache alive).
#[derive(Clone)]
pub struct RevocationSink {
    target: Weak<dyn RevocationTarget>,
}

impl RevocationSink {
    /// A sink delivering to `target`.
    pub fn new(target: Weak<dyn RevocationTarget>) -> Self {
        Self { target }
    }

    fn deliver(&self, f: impl FnOnce(&dyn RevocationTarget)) -> bool {
        match self.target.upgrade() {
            Some(target) => {
                f(target.as_ref());
                true
            }
            None => false,
        }
    }

    /// Forgets a token by its hash; `false` if the cache is gone.
    pub fn invalidate_hash(&self, hash: &TokenHash) -> bool {
        self.deliver(|t| t.invalidate_hash(hash))
    }

    /// Forgets every cached token of an account; `false` if the cache is
    /// gone.
    pub fn invalidate_account(&self, account_id: &str) -> bool {
        self.deliver(|t| t.invalidate_account(account_id))
    }

    /// Empties the cache (after revocations may have been missed); `false`
    /// if the cache is gone.
    pub fn invalidate_all(&self) -> bool {
        self.deliver(|t| t.invalidate_all())
    }

    /// Whether the cache still exists.
    pub fn is_alive(&self) -> bool {
        self.target.strong_count() > 0
    }
}

impl fmt::Debug for RevocationSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationSink")
            .field("alive", &self.is_alive())
            .finish()
    }
}
