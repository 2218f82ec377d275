//! The verification cache: a sharded, frequency-aware cache in front of
//! any [`Verifier`].
//!
//! # What is cached
//!
//! * Verified accounts, keyed by the SHA-256 of the token (the raw token is
//!   never stored), for [`CacheConfigBuilder::ttl`].
//! * Definite refusals only ([`Refusal::InvalidToken`], [`Refusal::WrongApp`])
//!   in their own, separately bounded LRU, for [`CacheConfigBuilder::negative_ttl`]:
//!   a flood of bogus tokens can fill that LRU but can neither evict a
//!   verified account nor skew the frequency estimates that decide which
//!   accounts stay (a lookup that misses records nothing). "Unavailable"
//!   and "misconfigured" are never cached.
//!
//! # Which verified accounts stay
//!
//! Each shard keeps its verified accounts under W-TinyLFU with an adaptive
//! window, the policy of Caffeine (Java): a new entry goes into a small
//! LRU *window*; when it leaves the window it is admitted into the *main*
//! space (a segmented LRU) only if a compact frequency sketch says it was
//! seen more often lately than the entry it would replace, so that a scan
//! or a burst of one-time tokens cannot wash out the accounts in steady
//! use. The window's share of the capacity (more recency when popularity
//! shifts, more frequency when it holds) and how long the sketch
//! remembers are chosen by a trial run across the shards: most run the
//! current settings, a few a neighbouring one, and the cache moves when
//! the neighbour does measurably better (`cache/trial.rs`; a cache of
//! fewer than four shards climbs them in each shard). On the simulator's
//! traces this gets up to 11 points more hits than the plain LRU the cache
//! had before, and no fewer than a hand-built
//! [moka](https://crates.io/crates/moka) cache (within half a point) on
//! all 50 of its workload and capacity pairs, against moka's best run
//! seen on each; see BENCHMARKS.md. [`CacheStats`] counts
//! the policy's decisions (`admitted`, `rejected`) and its current
//! `window_size`.
//!
//! A hit records itself (recency, frequency) inside the shard lock the
//! lookup already holds: no extra lock round-trip, no buffer to drain.
//!
//! # Expiry
//!
//! Each entry's lifetime is shortened by a per-token fraction of up to
//! [`CacheConfigBuilder::ttl_jitter`] of the TTL (derived from the token's hash), so
//! entries cached in the same instant do not all expire in the same instant
//! and stampede Account Kit.
//!
//! # Concurrent misses
//!
//! Concurrent misses on one token make one upstream call (single flight):
//! the first request starts it, the others wait for its result. An error is
//! shared with that flight's waiters but never stored. A revocation
//! ([`CachedVerifier::invalidate_token`], [`CachedVerifier::invalidate_account`]) that
//! happens while a flight is under way keeps that flight's result out of the
//! cache, and a request that comes after it starts a flight of its own
//! instead of joining the old one.
//!
//! Under a Tokio runtime (actix-web's), a flight runs as a task of its own:
//! it completes, stores its answer and gives its
//! [`max_in_flight`](CacheConfigBuilder::max_in_flight) slot back even when every
//! request waiting for it was dropped (a timeout middleware, a `select!`),
//! and it ends by [`CacheConfigBuilder::flight_deadline`] whatever the verifier
//! does.
//!
//! # Freshness per route
//!
//! [`Verifier::verify_within`] (what a route with
//! [`max_age`](crate::auth::AccountKitAuthBuilder::max_age) asks) is
//! answered from the cache only by an account verified upstream less than
//! `max_age` ago; an older one is verified again, in a flight that goes to
//! the inner verifier (never to the shared tier, whose entries are of
//! unknown age) and that requests with the same or a looser max age join.
//! Its answer then serves every route. Each entry remembers when the
//! upstream call that made it started: answers are taken as made when the
//! inner verifier was asked, so put the cache in front of a verifier that
//! asks Account Kit every time, not in front of another cache.
//!
//! # A shared tier
//!
//! Built with [`CachedVerifier::with_shared_tier`], the cache consults a
//! [`SharedTier`] (e.g. Redis, feature `redis`) on a local miss, inside the
//! single flight and before the inner verifier, and shares what the inner
//! verifier answered; see [`crate::shared`]. A local hit never touches it.
//!
//! # Locks
//!
//! The cache is split in shards by token hash, each behind a
//! `parking_lot::Mutex` held only for a lookup or an insertion and the
//! policy's O(1) bookkeeping, never across an `.await`. Counters live inside the shards, so counting costs no extra
//! atomic on the hot path.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures::future::{self, BoxFuture, FutureExt, Shared, WeakShared};
use lru::LruCache;
use parking_lot::{Mutex, MutexGuard};

use crate::error::{ConfigError, Error};
use crate::hash::{token_hash, TokenHash};
use crate::observe::{self, Answered, Flown, Path};
use crate::shared::{
    Revocation, RevocationSink, RevocationTarget, SharedLookup, SharedStats, SharedTier,
};
use crate::token::check_token;
use crate::types::Account;
use crate::verify::{Refusal, Verification, Verifier};

use index::AccountIndex;
use policy::{Evicted, Policy};

mod index;
#[doc(hidden)]
pub mod policy;
mod sketch;
mod trial;

/// Verified accounts kept. Default is 10,000.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// How long a verified account is trusted. Default is 5 minutes: a token
/// revoked elsewhere than through this process's admin client can pass for
/// up to that long.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Refusals kept. Default is 10,000.
pub const DEFAULT_NEGATIVE_CAPACITY: usize = 10_000;
/// How long a definite refusal is remembered. Default is 60 seconds.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(60);
/// The longest lifetime of a cached answer (a TTL, a negative TTL, a
/// logout's refusal): 365 days.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Largest fraction of the TTL taken off an entry's lifetime. Default is 0.2.
pub const DEFAULT_TTL_JITTER: f64 = 0.2;
/// Upper bound of the shard count. Default is 16.
pub const DEFAULT_SHARDS: usize = 16;
/// Upstream verifications allowed at once. Default is 256.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// Hard deadline of one flight (shared-tier lookup, upstream verification
/// with its retries, shared-tier store). Default is 30 s, beyond the
/// client's default timeout and retries.
pub const DEFAULT_FLIGHT_DEADLINE: Duration = Duration::from_secs(30);
/// The fewest entries per shard: with fewer, per-shard LRU strays too far
/// from a global LRU.
const MIN_ENTRIES_PER_SHARD: usize = 64;

/// Cache sizes and lifetimes. [`CacheConfig::default`] is a good start;
/// [`CacheConfig::builder`] changes it.
///
/// ```
/// use actix_accountkit::CacheConfig;
/// use std::time::Duration;
///
/// # fn main() -> Result<(), actix_accountkit::error::ConfigError> {
/// let config = CacheConfig::builder()
///     .capacity(50_000)
///     .ttl(Duration::from_secs(60))
///     .negative_ttl(Duration::from_secs(300))
///     .build()?;
/// # let _ = config; Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CacheConfig {
    capacity: usize,
    ttl: Duration,
    negative_capacity: usize,
    negative_ttl: Duration,
    ttl_jitter: f64,
    shards: usize,
    max_in_flight: usize,
    flight_deadline: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            ttl: DEFAULT_TTL,
            negative_capacity: DEFAULT_NEGATIVE_CAPACITY,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            ttl_jitter: DEFAULT_TTL_JITTER,
            shards: DEFAULT_SHARDS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            flight_deadline: DEFAULT_FLIGHT_DEADLINE,
        }
    }
}

/// Builder of [`CacheConfig`]; every setting is checked by
/// [`build`](Self::build).
#[derive(Clone, Debug)]
pub struct CacheConfigBuilder {
    config: CacheConfig,
}

impl CacheConfigBuilder {
    /// Verified accounts kept (at least 1). Default is [`DEFAULT_CAPACITY`].
    pub fn capacity(mut self, n: usize) -> Self {
        self.config.capacity = n;
        self
    }

    /// Lifetime of a verified account, at most [`MAX_TTL`]; zero disables
    /// positive caching. Default is [`DEFAULT_TTL`].
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl;
        self
    }

    /// Refusals kept (at least 1). Default is [`DEFAULT_NEGATIVE_CAPACITY`].
    pub fn negative_capacity(mut self, n: usize) -> Self {
        self.config.negative_capacity = n;
        self
    }

    /// Lifetime of a definite refusal, at most [`MAX_TTL`]; zero disables
    /// negative caching. Default is [`DEFAULT_NEGATIVE_TTL`].
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.config.negative_ttl = ttl;
        self
    }

    /// Largest fraction (0.0 to 0.9) of a TTL taken off an entry's
    /// lifetime, so that entries cached together expire apart. Default is
    /// [`DEFAULT_TTL_JITTER`].
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        self.config.ttl_jitter = fraction;
        self
    }

    /// Upper bound of the shard count, at least 1 (rounded down to a power
    /// of two, and lowered so that each shard holds at least 64 entries).
    /// Default is [`DEFAULT_SHARDS`].
    pub fn shards(mut self, n: usize) -> Self {
        self.config.shards = n;
        self
    }

    /// Upstream verifications allowed at once (at least 1): the bound on
    /// what a flood of distinct bogus tokens can make this process send to
    /// Account Kit at any moment. A miss beyond it is refused at once as
    /// [`Refusal::Overloaded`] (a 503) instead of queueing. Concurrent misses
    /// on one token share one slot. Default is [`DEFAULT_MAX_IN_FLIGHT`].
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.config.max_in_flight = n;
        self
    }

    /// Hard deadline of one flight (more than zero): past it, the flight
    /// ends as [`Refusal::Unavailable`] (a 503, nothing cached) and gives its
    /// [`max_in_flight`](Self::max_in_flight) slot back, whatever became of
    /// its waiters. Default is [`DEFAULT_FLIGHT_DEADLINE`].
    pub fn flight_deadline(mut self, deadline: Duration) -> Self {
        self.config.flight_deadline = deadline;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidCacheSetting`] naming the first setting out of
    /// range.
    pub fn build(self) -> Result<CacheConfig, ConfigError> {
        let c = &self.config;
        let invalid = |setting: &'static str, expected: &'static str| {
            Err(ConfigError::InvalidCacheSetting { setting, expected })
        };
        if c.capacity == 0 {
            return invalid("capacity", "at least 1");
        }
        if c.negative_capacity == 0 {
            return invalid("negative_capacity", "at least 1");
        }
        if c.ttl > MAX_TTL {
            return invalid("ttl", "at most MAX_TTL (365 days)");
        }
        if c.negative_ttl > MAX_TTL {
            return invalid("negative_ttl", "at most MAX_TTL (365 days)");
        }
        if !(0.0..=0.9).contains(&c.ttl_jitter) {
            return invalid("ttl_jitter", "a fraction from 0.0 to 0.9");
        }
        if c.shards == 0 {
            return invalid("shards", "at least 1");
        }
        if c.max_in_flight == 0 {
            return invalid("max_in_flight", "at least 1");
        }
        if c.flight_deadline.is_zero() {
            return invalid("flight_deadline", "more than zero");
        }
        Ok(self.config)
    }
}

impl CacheConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> CacheConfigBuilder {
        CacheConfigBuilder {
            config: CacheConfig::default(),
        }
    }

    /// Brings every setting into its range (the nearest allowed value), as
    /// the setters below did before [`CacheConfig::builder`] refused them.
    fn clamped(mut self) -> Self {
        self.capacity = self.capacity.max(1);
        self.ttl = self.ttl.min(MAX_TTL);
        self.negative_ttl = self.negative_ttl.min(MAX_TTL);
        self.negative_capacity = self.negative_capacity.max(1);
        self.ttl_jitter = if self.ttl_jitter.is_finite() {
            self.ttl_jitter.clamp(0.0, 0.9)
        } else {
            0.0
        };
        self.shards = self.shards.max(1);
        self.max_in_flight = self.max_in_flight.max(1);
        self.flight_deadline = self.flight_deadline.max(Duration::from_millis(1));
        self
    }

    fn shard_count(&self) -> usize {
        let by_size = (self.capacity / MIN_ENTRIES_PER_SHARD).max(1);
        let n = self.shards.min(by_size).max(1);
        // Largest power of two <= n.
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

/// The setters of `CacheConfig` itself, from before the builder: code
/// written against them (`CacheConfig::default().capacity(n).ttl(t)`) still
/// builds, with a deprecation warning. Unlike
/// [`CacheConfigBuilder::build`], which refuses a value out of range, they
/// bring it to the nearest allowed one, as they always did.
macro_rules! deprecated_setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        impl CacheConfig {
            $(
                $(#[$doc])*
                #[deprecated(
                    since = "0.1.0",
                    note = "use `CacheConfig::builder()`, whose `build()` refuses a value out of range"
                )]
                pub fn $name(self, value: $ty) -> Self {
                    CacheConfigBuilder { config: self }.$name(value).config.clamped()
                }
            )*
        }
    };
}

deprecated_setters! {
    /// [`CacheConfigBuilder::capacity`], at least 1.
    capacity: usize;
    /// [`CacheConfigBuilder::ttl`], at most [`MAX_TTL`].
    ttl: Duration;
    /// [`CacheConfigBuilder::negative_capacity`], at least 1.
    negative_capacity: usize;
    /// [`CacheConfigBuilder::negative_ttl`], at most [`MAX_TTL`].
    negative_ttl: Duration;
    /// [`CacheConfigBuilder::ttl_jitter`], clamped to 0.0..=0.9 (0.0 if not finite).
    ttl_jitter: f64;
    /// [`CacheConfigBuilder::shards`], at least 1.
    shards: usize;
    /// [`CacheConfigBuilder::max_in_flight`], at least 1.
    max_in_flight: usize;
    /// [`CacheConfigBuilder::flight_deadline`], at least 1 ms.
    flight_deadline: Duration;
}

/// A snapshot of the cache counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered with a cached account.
    pub hits: u64,
    /// Lookups answered with a cached refusal.
    pub negative_hits: u64,
    /// Lookups not answered from the cache (each started a flight, joined
    /// one, or was refused as overloaded: once the flights are over,
    /// `misses = upstream_calls + shared_hits + unanswered + coalesced +
    /// overloaded`).
    pub misses: u64,
    /// Misses that waited for a flight already under way.
    pub coalesced: u64,
    /// Upstream verifications made (counted when they answer).
    pub upstream_calls: u64,
    /// Flights answered by the shared tier, with no upstream call.
    pub shared_hits: u64,
    /// Entries pushed out by the capacity bound (positive and negative;
    /// on the positive side, `rejected` candidates included).
    pub evictions: u64,
    /// Entries removed because they had expired.
    pub expirations: u64,
    /// Entries removed by a revocation (logout, invalidate-all, delete).
    pub invalidations: u64,
    /// Misses refused because [`CacheConfigBuilder::max_in_flight`] upstream
    /// verifications were already under way (counted in `misses` too).
    pub overloaded: u64,
    /// Flights that ended without an answer: past their
    /// [`CacheConfigBuilder::flight_deadline`], cancelled, or (outside a
    /// Tokio runtime) dropped with their last waiter. Each was a miss and
    /// a 503 for its waiters; nothing was cached.
    pub unanswered: u64,
    /// Lookups of a route with a max age
    /// ([`AccountKitAuthBuilder::max_age`](crate::auth::AccountKitAuthBuilder::max_age))
    /// that found an account verified longer ago than that, and verified
    /// it again (counted in `misses` too).
    pub too_old: u64,
    /// Verified accounts held now (expired ones included until touched).
    pub entries: u64,
    /// Refusals held now.
    pub negative_entries: u64,
    /// Upstream verifications under way now (at most
    /// [`CacheConfigBuilder::max_in_flight`]).
    pub in_flight: u64,
    /// Verified accounts moved from the admission window into the main
    /// space (by winning the admission contest, or while there was room).
    pub admitted: u64,
    /// Verified accounts that lost the admission contest on leaving the
    /// window (seen less often lately than the entry they would have
    /// replaced) and left the cache (counted in `evictions` too).
    pub rejected: u64,
    /// The admission window's current size (entries, all shards): the
    /// share of the capacity run as a plain LRU for new entries. The cache's
    /// trial across its shards (or, with fewer than four shards, each
    /// shard's climber) moves it: larger when recency pays, smaller when
    /// frequency does.
    pub window_size: u64,
    /// How long the frequency sketch remembers now: the sightings between
    /// two of its agings (counters halved), all shards summed. Between
    /// 1.25 × and 10 × the capacity, as the cache's trial (or, with fewer
    /// than four shards, each shard's climber) chose: short
    /// when popularity shifts or a loop runs, long when it holds.
    pub aging_period: u64,
    /// Changes of the admission window's size so far, each shard's
    /// counted: how often the trial (or the climbers) moved it. A count
    /// that keeps rising with a steady `window_size` means the traffic
    /// keeps changing what pays.
    pub window_adjustments: u64,
    /// Agings of the frequency sketch so far (all shards): each halved
    /// every count, so that old popularity fades.
    pub sketch_agings: u64,
    /// The shared tier's counters, when there is one.
    pub shared: Option<SharedStats>,
}

impl CacheStats {
    /// Share of lookups answered from the cache (accounts and refusals):
    /// `(hits + negative_hits) / (hits + negative_hits + misses)`; 0 when
    /// there were none.
    pub fn hit_rate(&self) -> f64 {
        let answered = self.hits + self.negative_hits;
        let total = answered + self.misses;
        if total == 0 {
            0.0
        } else {
            answered as f64 / total as f64
        }
    }

    /// Lookups counted: `hits + negative_hits + misses`.
    pub fn lookups(&self) -> u64 {
        self.hits + self.negative_hits + self.misses
    }
}

/// A flight's future: its outcome, and where the outcome came from (for
/// its waiters' spans).
type FlightFuture = BoxFuture<'static, Flown>;
type Flight = Shared<FlightFuture>;

/// A flight as the shard holds it: weakly, so that the shard never keeps a
/// flight alive (its waiters and, under Tokio, its own task do).
struct FlightEntry {
    id: u64,
    /// When it started, if it goes straight to the inner verifier (a
    /// fresh flight): a request with a max age joins only such a flight,
    /// started recently enough.
    fresh_since: Option<Instant>,
    /// The account-wide revocation epoch it started in: a flight from before
    /// an invalidate-all or a delete cannot be joined after it.
    account_epoch: u64,
    flight: WeakShared<FlightFuture>,
}

/// A verifier that caches what another verifier learned. Cheap to clone;
/// clones share the cache.
///
/// It refuses a token that fails the syntax check
/// ([`check_token`](crate::token::check_token)) as
/// [`Refusal::Malformed`] without asking the inner verifier, whoever calls
/// it: nothing malformed is ever stored, so that an account found for a
/// token's bytes proves them well-formed ([`Verifier::recall`], the
/// middleware's hot path, skips the check on a hit).
///
/// ```
/// use actix_accountkit::cache::{CacheConfig, CachedVerifier};
/// use actix_accountkit::verify::{Refusal, Verification, Verifier};
/// use actix_accountkit::types::Account;
/// use futures::future::{BoxFuture, FutureExt};
/// use std::sync::Arc;
///
/// struct Echo;
/// impl Verifier for Echo {
///     fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Verification> {
///         let account = Arc::new(Account::new(token.len().to_string()));
///         async move { Ok(account) }.boxed()
///     }
/// }
///
/// # futures::executor::block_on(async {
/// let cache = CachedVerifier::new(Echo, CacheConfig::default());
/// cache.verify("token").await.unwrap();
/// cache.verify("token").await.unwrap();
/// let stats = cache.stats();
/// assert_eq!((stats.hits, stats.misses, stats.upstream_calls), (1, 1, 1));
/// # });
/// ```
#[derive(Clone)]
pub struct CachedVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    verifier: Arc<dyn Verifier>,
    shared: Option<Arc<dyn SharedTier>>,
    shards: Box<[Padded<Mutex<Shard>>]>,
    shard_mask: u64,
    ttl: Duration,
    negative_ttl: Duration,
    ttl_jitter: f64,
    /// Bumped by every revocation; a flight that started before a bump does
    /// not store its result.
    epoch: AtomicU64,
    /// Bumped by every account-wide revocation (invalidate-all, delete,
    /// clear): flights started before it are no longer joined.
    account_epoch: AtomicU64,
    next_flight: AtomicU64,
    /// Upstream verifications under way, bounded by `max_in_flight`.
    in_flight: Arc<AtomicUsize>,
    max_in_flight: usize,
    flight_deadline: Duration,
}

/// Keeps each shard's lock and counters on their own cache lines.
#[repr(align(128))]
struct Padded<T>(T);

struct Shard {
    /// Verified accounts, under the W-TinyLFU policy (see [`policy`]).
    positive: Policy<Positive>,
    negative: LruCache<TokenHash, Negative>,
    /// account id → keys of its cached tokens, for revocation by account.
    by_account: AccountIndex,
    flights: HashMap<TokenHash, FlightEntry>,
    counters: Counters,
}

struct Positive {
    account: Arc<Account>,
    expires_at: Instant,
    /// When the upstream verification that made it started; `None` for an
    /// entry copied from the shared tier (of unknown age).
    verified_at: Option<Instant>,
}

struct Negative {
    refusal: Refusal,
    expires_at: Instant,
}

#[derive(Default)]
struct Counters {
    hits: u64,
    negative_hits: u64,
    misses: u64,
    coalesced: u64,
    upstream_calls: u64,
    shared_hits: u64,
    evictions: u64,
    expirations: u64,
    invalidations: u64,
    overloaded: u64,
    unanswered: u64,
    too_old: u64,
}

/// Where a flight's answer came from.
enum Source {
    /// The inner verifier, asked at this instant.
    Upstream(Instant),
    /// The shared tier, with the entry's remaining lifetime there.
    Shared(Duration),
}

enum Step {
    Done(Verification),
    /// A flight to wait for: started by this lookup, or joined.
    Wait(Flight, Path),
}

impl CachedVerifier {
    /// Wraps `verifier` with a cache.
    pub fn new(verifier: impl Verifier, config: CacheConfig) -> Self {
        Self::from_arc(Arc::new(verifier), config)
    }

    /// Wraps a shared verifier with a cache.
    pub fn from_arc(verifier: Arc<dyn Verifier>, config: CacheConfig) -> Self {
        Self::build(verifier, config, None)
    }

    /// Wraps a shared verifier with a cache backed by a [`SharedTier`]
    /// (consulted on local misses, told about upstream answers), and
    /// attaches the tier to it (revocations it receives evict here).
    ///
    /// A tier bound to one app ([`SharedTier::app_id`]) holds accounts
    /// verified for that app: it is refused for a verifier of another app
    /// ([`Verifier::app_id`]), whose routes it would open to the first app's
    /// tokens.
    pub fn with_shared_tier(
        verifier: Arc<dyn Verifier>,
        config: CacheConfig,
        tier: Arc<dyn SharedTier>,
    ) -> Result<Self, Error> {
        if let (Some(bound), Some(app)) = (tier.app_id(), verifier.app_id()) {
            if bound != app {
                return Err(ConfigError::Other(
                    "the shared tier was built for another app id than the verifier's",
                )
                .into());
            }
        }
        let cache = Self::build(verifier, config, Some(tier.clone()));
        let target: Weak<dyn RevocationTarget> = Arc::downgrade(&cache.inner) as Weak<Inner>;
        tier.attach(RevocationSink::new(target));
        Ok(cache)
    }

    fn build(
        verifier: Arc<dyn Verifier>,
        config: CacheConfig,
        shared: Option<Arc<dyn SharedTier>>,
    ) -> Self {
        let shards = config.shard_count();
        // The shards' capacities add up to the total (at least 1 each).
        let per_shard = |total: usize, i: usize| {
            let n = total / shards + usize::from(i < total % shards);
            NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
        };
        // With too few shards for a control group, each climbs alone.
        // The last shard is the smallest: its capacity bounds the windows.
        let smallest = per_shard(config.capacity, shards - 1).get();
        let trial = (shards >= 4).then(|| Arc::new(trial::Trial::new(shards, smallest)));
        let shards_vec = (0..shards)
            .map(|i| {
                let capacity = per_shard(config.capacity, i).get();
                let positive = match &trial {
                    Some(t) => Policy::with_trial(capacity, Arc::clone(t), i),
                    None => Policy::new(capacity),
                };
                Padded(Mutex::new(Shard {
                    positive,
                    negative: LruCache::new(per_shard(config.negative_capacity, i)),
                    by_account: AccountIndex::default(),
                    flights: HashMap::new(),
                    counters: Counters::default(),
                }))
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                verifier,
                shared,
                shards: shards_vec,
                shard_mask: shards as u64 - 1,
                ttl: config.ttl,
                negative_ttl: config.negative_ttl,
                ttl_jitter: config.ttl_jitter,
                epoch: AtomicU64::new(0),
                account_epoch: AtomicU64::new(0),
                next_flight: AtomicU64::new(0),
                in_flight: Arc::new(AtomicUsize::new(0)),
                max_in_flight: config.max_in_flight,
                flight_deadline: config.flight_deadline,
            }),
        }
    }

    /// The shared tier, if the cache has one. The admin client publishes
    /// its revocations there.
    pub fn shared_tier(&self) -> Option<&Arc<dyn SharedTier>> {
        self.inner.shared.as_ref()
    }

    /// Forgets one token, e.g. after a logout through another path. The
    /// next request with it is verified again.
    ///
    /// Local only (*invalidate*): with a shared tier, the shared entry still
    /// holds the token and would answer that next request;
    /// [`revoke`](Self::revoke) also clears the shared tier and tells the other
    /// instances.
    pub fn invalidate_token(&self, token: &str) {
        self.inner.invalidate_key(&token_hash(token), None);
    }

    /// Forgets a token and remembers it as refused (logged out) for the
    /// negative TTL: the next request with it is refused without an upstream
    /// call. Local only, like [`invalidate_token`](Self::invalidate_token).
    pub fn invalidate_as_refused(&self, token: &str) {
        let ttl = self.inner.negative_ttl;
        self.inner.invalidate_key(&token_hash(token), Some(ttl));
    }

    /// Forgets every cached token of an account (invalidate-all, delete).
    /// Local only, like [`invalidate_token`](Self::invalidate_token).
    pub fn invalidate_account(&self, account_id: &str) {
        self.inner.invalidate_account(account_id);
    }

    /// Forgets a token by its hash. Local only.
    pub fn invalidate_hash(&self, hash: &TokenHash) {
        self.inner.invalidate_key(hash, None);
    }

    /// Empties the cache (counters are kept). Local only.
    pub fn invalidate_all(&self) {
        self.inner.invalidate_all(false);
    }

    /// Revokes across the fleet (*revoke*), as the
    /// [`AdminClient`](crate::admin::AdminClient) does after a logout, an
    /// invalidate-all or a delete: invalidates here; with a shared tier,
    /// has it drop its entries and tell the other instances, then
    /// invalidates here again (a request between the first invalidation and
    /// the tier's deletion may have copied the entry back from the tier).
    pub async fn revoke(&self, revocation: &Revocation) {
        self.inner.invalidate(revocation);
        if let Some(tier) = &self.inner.shared {
            tier.publish(revocation).await;
            self.inner.invalidate(revocation);
        }
    }

    /// How long a refusal is remembered: what a logout's
    /// [`Revocation::Token::refused_for`] should say.
    pub fn negative_ttl(&self) -> Duration {
        self.inner.negative_ttl
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> CacheStats {
        let mut s = CacheStats::default();
        for shard in self.inner.shards.iter() {
            let shard = shard.0.lock();
            let c = &shard.counters;
            s.hits += c.hits;
            s.negative_hits += c.negative_hits;
            s.misses += c.misses;
            s.coalesced += c.coalesced;
            s.upstream_calls += c.upstream_calls;
            s.shared_hits += c.shared_hits;
            s.evictions += c.evictions;
            s.expirations += c.expirations;
            s.invalidations += c.invalidations;
            s.overloaded += c.overloaded;
            s.unanswered += c.unanswered;
            s.too_old += c.too_old;
            s.entries += shard.positive.len() as u64;
            let p = shard.positive.stats();
            s.admitted += p.admitted;
            s.rejected += p.rejected;
            s.window_size += p.window_max as u64;
            s.aging_period += p.aging_period;
            s.window_adjustments += p.window_adjustments;
            s.sketch_agings += p.sketch_resets;
            s.negative_entries += shard.negative.len() as u64;
        }
        s.in_flight = self.inner.in_flight.load(Ordering::Acquire) as u64;
        s.shared = self.inner.shared.as_ref().map(|t| t.stats());
        s
    }

    /// The verifier behind the cache.
    pub fn inner_verifier(&self) -> &Arc<dyn Verifier> {
        &self.inner.verifier
    }

    fn verify_with(&self, token: &str, max_age: Option<Duration>) -> BoxFuture<'_, Verification> {
        // No answer is stored for a malformed token, so that an account
        // recalled for a token's bytes proves the token well-formed
        // (`recall`, the middleware's hot path, relies on it).
        if let Err(malformed) = check_token(token) {
            return future::ready(Err(Refusal::Malformed(malformed))).boxed();
        }
        match self.inner.lookup_or_fly(token_hash(token), token, max_age) {
            // A cached answer: no span (the hot path).
            Step::Done(outcome) => {
                if matches!(outcome, Err(Refusal::Overloaded)) {
                    observe::overloaded();
                }
                future::ready(outcome).boxed()
            }
            Step::Wait(flight, path) => observe::wait_for(flight, path).boxed(),
        }
    }
}

impl fmt::Debug for CachedVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedVerifier")
            .field("shards", &self.inner.shards.len())
            .field("ttl", &self.inner.ttl)
            .field("negative_ttl", &self.inner.negative_ttl)
            .field("shared_tier", &self.inner.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn shard(&self, key: &TokenHash) -> &Mutex<Shard> {
        let bits = u64::from_le_bytes([
            key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
        ]);
        // The mask keeps the index below the shard count.
        &self.shards[(bits & self.shard_mask) as usize].0
    }

    /// A stored answer, if there is a live one (for a route with a max
    /// age, an account verified within it). Counts it.
    fn stored(
        shard: &mut Shard,
        key: &TokenHash,
        now: Instant,
        max_age: Option<Duration>,
    ) -> Option<Verification> {
        if let Some(entry) = shard.positive.get(key) {
            if entry.expires_at > now {
                if let Some(max_age) = max_age {
                    let fresh = entry
                        .verified_at
                        .is_some_and(|at| now.saturating_duration_since(at) <= max_age);
                    if !fresh {
                        return None; // counted by `lookup_or_fly`
                    }
                }
                let account = entry.account.clone();
                shard.counters.hits += 1;
                return Some(Ok(account));
            }
            if let Some(entry) = shard.positive.remove(key) {
                shard.by_account.remove(&entry.account.id, key);
                shard.counters.expirations += 1;
            }
        }
        if let Some(entry) = shard.negative.get(key) {
            if entry.expires_at > now {
                let refusal = entry.refusal.clone();
                shard.counters.negative_hits += 1;
                return Some(Err(refusal));
            }
            shard.negative.pop(key);
            shard.counters.expirations += 1;
        }
        None
    }

    /// The synchronous path: a stored answer or nothing.
    fn lookup(&self, key: &TokenHash, max_age: Option<Duration>) -> Option<Verification> {
        let now = Instant::now();
        Self::stored(&mut self.shard(key).lock(), key, now, max_age)
    }

    /// A stored answer, or a flight to wait for (joined or started). With a
    /// max age, only a fresh flight started within it is joined, and a
    /// flight started here is fresh.
    fn lookup_or_fly(
        self: &Arc<Self>,
        key: TokenHash,
        token: &str,
        max_age: Option<Duration>,
    ) -> Step {
        let now = Instant::now();
        let mut shard = self.shard(&key).lock();
        if let Some(outcome) = Self::stored(&mut shard, &key, now, max_age) {
            return Step::Done(outcome);
        }
        shard.counters.misses += 1;
        if max_age.is_some() && shard.positive.peek(&key).is_some() {
            shard.counters.too_old += 1;
        }
        let account_epoch = self.account_epoch.load(Ordering::SeqCst);
        let fresh_enough = |entry: &FlightEntry| match max_age {
            None => true,
            Some(max_age) => entry
                .fresh_since
                .is_some_and(|since| now.saturating_duration_since(since) <= max_age),
        };
        let joinable = shard
            .flights
            .get(&key)
            .filter(|entry| entry.account_epoch == account_epoch && fresh_enough(entry))
            .and_then(|entry| entry.flight.upgrade());
        if let Some(flight) = joinable {
            shard.counters.coalesced += 1;
            return Step::Wait(flight, Path::Coalesced);
        }
        let Some(slot) = FlightSlot::take(self) else {
            shard.counters.overloaded += 1;
            return Step::Done(Err(Refusal::Overloaded));
        };
        let id = self.next_flight.fetch_add(1, Ordering::Relaxed);
        let fresh = max_age.is_some();
        let flight = self.start_flight(key, id, token, slot, fresh);
        if let Some(weak) = flight.downgrade() {
            // A fresh flight takes the place of a looser one: later
            // requests, with a max age or not, join it.
            shard.flights.insert(
                key,
                FlightEntry {
                    id,
                    fresh_since: fresh.then_some(now),
                    account_epoch,
                    flight: weak,
                },
            );
        }
        Step::Wait(flight, Path::Miss)
    }

    /// Forgets flight `id` of `key`, if the shard still lists it, and
    /// counts it as unanswered if its work did not run to the end.
    fn forget_flight(&self, key: &TokenHash, id: u64, answered: bool) {
        let mut shard = self.shard(key).lock();
        if shard.flights.get(key).is_some_and(|entry| entry.id == id) {
            shard.flights.remove(key);
        }
        if !answered {
            shard.counters.unanswered += 1;
        }
    }

    /// Starts a flight. Under a Tokio runtime it runs as a task of its own,
    /// so it completes (and stores its answer, and gives its slot back)
    /// even if every waiter is dropped: a timeout middleware, a `select!`.
    /// Every flight ends by [`CacheConfigBuilder::flight_deadline`]. Outside a
    /// runtime it runs inline with its waiters and ends when the last one
    /// is dropped.
    fn start_flight(
        self: &Arc<Self>,
        key: TokenHash,
        id: u64,
        token: &str,
        slot: FlightSlot,
        fresh: bool,
    ) -> Flight {
        let guard = FlightGuard {
            cache: Arc::downgrade(self),
            key,
            id,
            answered: false,
            _slot: slot,
        };
        let work = self.flight_work(key, id, token, fresh);
        let deadline = self.flight_deadline;
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let task = runtime.spawn(async move {
                    // Moved in whole (not just the field set below), so that
                    // it lives as long as the flight.
                    let mut guard = guard;
                    match tokio::time::timeout(deadline, work).await {
                        Ok(flown) => {
                            guard.answered = true;
                            flown
                        }
                        Err(_) => unanswered(deadline_passed(deadline)),
                    }
                });
                async move {
                    task.await.unwrap_or_else(|_| {
                        unanswered(Refusal::Unavailable(Arc::new(Error::Aborted)))
                    })
                }
                .boxed()
                .shared()
            }
            Err(_) => async move {
                let mut guard = guard;
                let flown = work.await;
                guard.answered = true;
                flown
            }
            .boxed()
            .shared(),
        }
    }

    /// What a flight does: the shared tier, then the inner verifier. A
    /// fresh flight skips the shared tier (its entries are of unknown age)
    /// and asks the inner verifier for an answer made now.
    fn flight_work(
        self: &Arc<Self>,
        key: TokenHash,
        id: u64,
        token: &str,
        fresh: bool,
    ) -> impl Future<Output = Flown> + Send + 'static {
        let verifier = self.verifier.clone();
        let tier = self.shared.clone();
        // A weak handle: an abandoned flight must not keep the cache alive.
        let cache: Weak<Self> = Arc::downgrade(self);
        let token: Box<str> = token.into();
        // Read before the shared lookup, so that a revocation received
        // while it is under way keeps its answer out of the cache too.
        let epoch = self.epoch.load(Ordering::SeqCst);
        async move {
            let mut ticket = None;
            let tier = if fresh { None } else { tier };
            if let Some(tier) = &tier {
                match tier.get(&key).await {
                    SharedLookup::Found { answer, .. } if foreign(tier.as_ref(), &answer) => {
                        // A second line behind AccountKit's check of the
                        // tier's app: never trust another app's entry.
                        tracing::warn!("shared entry for another app ignored");
                    }
                    SharedLookup::Found { answer, remaining } => {
                        if let Some(cache) = cache.upgrade() {
                            cache.complete(key, id, epoch, &answer, Source::Shared(remaining));
                        }
                        return Flown {
                            outcome: answer,
                            answered: Answered::Shared,
                        };
                    }
                    SharedLookup::Missing { ticket: t } => {
                        ticket = Some(HeldTicket {
                            tier: tier.clone(),
                            key,
                            ticket: t,
                            armed: true,
                        });
                    }
                    SharedLookup::Unavailable => {}
                }
            }
            let asked_at = Instant::now();
            let outcome = if fresh {
                verifier.verify_within(&token, Duration::ZERO).await
            } else {
                verifier.verify(&token).await
            };
            let answered = Answered::Upstream(asked_at.elapsed());
            let kept = cache.upgrade().and_then(|cache| {
                cache.complete(key, id, epoch, &outcome, Source::Upstream(asked_at))
            });
            if let (Some(tier), Some(ticket)) = (&tier, ticket) {
                let (answer, ttl) = match kept {
                    Some(ttl) => (Some(&outcome), ttl),
                    None => (None, Duration::ZERO),
                };
                tier.store(&key, ticket.hand_back(), answer, ttl).await;
            }
            Flown { outcome, answered }
        }
    }

    /// Ends a flight: stores its answer unless a revocation happened since
    /// it started. Returns the lifetime given to the stored entry, if any.
    fn complete(
        &self,
        key: TokenHash,
        id: u64,
        epoch: u64,
        outcome: &Verification,
        source: Source,
    ) -> Option<Duration> {
        let now = Instant::now();
        let mut shard = self.shard(&key).lock();
        if shard.flights.get(&key).is_some_and(|entry| entry.id == id) {
            shard.flights.remove(&key);
        }
        let (cap, verified_at) = match source {
            Source::Upstream(asked_at) => {
                shard.counters.upstream_calls += 1;
                (Duration::MAX, Some(asked_at))
            }
            Source::Shared(remaining) => {
                shard.counters.shared_hits += 1;
                (remaining, None)
            }
        };
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return None; // a revocation happened meanwhile
        }
        match outcome {
            Ok(account) if !self.ttl.is_zero() => {
                let lifetime = self.lifetime(self.ttl, &key).min(cap);
                let expires_at = now + lifetime;
                let evicted = shard.positive.insert(
                    key,
                    Positive {
                        account: account.clone(),
                        expires_at,
                        verified_at,
                    },
                );
                let shard = &mut *shard;
                if let Evicted::Replaced(old) = &evicted {
                    shard.by_account.remove(&old.account.id, &key);
                }
                // A token verified now is no longer refused.
                shard.negative.pop(&key);
                shard.by_account.insert(&account.id, key);
                // The policy pushed an entry out (a candidate that lost the
                // admission contest, or main's victim): it leaves the
                // account index too.
                if let Some((old_key, old)) = evicted.into_entry() {
                    shard.by_account.remove(&old.account.id, &old_key);
                    shard.counters.evictions += 1;
                }
                Some(lifetime)
            }
            Err(refusal) if refusal.is_definite() => {
                // What was just learned wins over an older verification:
                // a token found logged out (by a route with a max age) is
                // refused on every route.
                if let Some(old) = shard.positive.remove(&key) {
                    shard.by_account.remove(&old.account.id, &key);
                    shard.counters.invalidations += 1;
                }
                if self.negative_ttl.is_zero() {
                    return None;
                }
                let lifetime = self.lifetime(self.negative_ttl, &key).min(cap);
                let expires_at = now + lifetime;
                let evicted = shard.negative.push(
                    key,
                    Negative {
                        refusal: refusal.clone(),
                        expires_at,
                    },
                );
                if matches!(evicted, Some((old_key, _)) if old_key != key) {
                    shard.counters.evictions += 1;
                }
                Some(lifetime)
            }
            _ => None,
        }
    }

    /// `ttl` shortened by a per-key fraction of up to `ttl_jitter`.
    fn lifetime(&self, ttl: Duration, key: &TokenHash) -> Duration {
        let bits = u64::from_le_bytes([
            key[8], key[9], key[10], key[11], key[12], key[13], key[14], key[15],
        ]);
        let unit = (bits >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        ttl.mul_f64(1.0 - self.ttl_jitter * unit)
    }

    /// Invalidates one key; with `refused_for`, remembers it as refused
    /// (logged out) that long.
    fn invalidate_key(&self, key: &TokenHash, refused_for: Option<Duration>) {
        let mut shard = self.evict_key(key);
        match refused_for {
            Some(ttl) if !ttl.is_zero() => {
                let expires_at = Instant::now() + ttl.min(MAX_TTL);
                shard.negative.push(
                    *key,
                    Negative {
                        refusal: Refusal::InvalidToken { subcode: None },
                        expires_at,
                    },
                );
            }
            _ => {
                shard.negative.pop(key);
            }
        }
    }

    /// Evicts one key's verified account (and its flight, whose answer may
    /// predate the revocation), keeping any refusal cached for it; returns
    /// its shard, still locked.
    fn evict_key(&self, key: &TokenHash) -> MutexGuard<'_, Shard> {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let mut shard = self.shard(key).lock();
        shard.flights.remove(key);
        if let Some(old) = shard.positive.remove(key) {
            shard.by_account.remove(&old.account.id, key);
            shard.counters.invalidations += 1;
        }
        shard
    }

    fn invalidate_account(&self, account_id: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.account_epoch.fetch_add(1, Ordering::SeqCst);
        for shard in self.shards.iter() {
            let mut shard = shard.0.lock();
            let Some(tokens) = shard.by_account.take(account_id) else {
                continue;
            };
            for key in tokens.keys() {
                match shard.positive.peek(key).map(|e| e.account.clone()) {
                    Some(account) if account.id == account_id => {
                        shard.positive.remove(key);
                        shard.counters.invalidations += 1;
                    }
                    // Another account whose id shares the index's hash.
                    Some(other) => shard.by_account.insert(&other.id, *key),
                    None => {}
                }
            }
        }
    }

    /// Empties the cache; with `keep_refusals`, only of its verified
    /// accounts.
    fn invalidate_all(&self, keep_refusals: bool) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.account_epoch.fetch_add(1, Ordering::SeqCst);
        for shard in self.shards.iter() {
            let mut shard = shard.0.lock();
            let removed = shard.positive.len() as u64;
            shard.positive.clear();
            if !keep_refusals {
                shard.negative.clear();
            }
            shard.by_account.clear();
            shard.counters.invalidations += removed;
        }
    }

    /// The local part of a revocation.
    fn invalidate(&self, revocation: &Revocation) {
        match revocation {
            Revocation::Token { hash, refused_for } => self.invalidate_key(hash, *refused_for),
            Revocation::Account { id } => self.invalidate_account(id),
        }
    }
}

/// A shared-tier ticket its flight has not handed back to
/// [`SharedTier::store`] yet: released if the flight is dropped first (its
/// deadline passed), so that the other instances waiting on it need not
/// wait for it to expire.
struct HeldTicket {
    tier: Arc<dyn SharedTier>,
    key: TokenHash,
    ticket: u64,
    armed: bool,
}

impl HeldTicket {
    /// The ticket, for `store` (which releases it).
    fn hand_back(mut self) -> u64 {
        self.armed = false;
        self.ticket
    }
}

impl Drop for HeldTicket {
    fn drop(&mut self) {
        if self.armed {
            self.tier.release(&self.key, self.ticket);
        }
    }
}

/// What the shared tier's received revocations do to this cache.
impl RevocationTarget for Inner {
    /// A received revocation says the token no longer lets anyone in: its
    /// account goes, a refusal held for it stays (a logout made here, whose
    /// message comes back late, must not lift this instance's own refusal).
    fn invalidate_hash(&self, hash: &TokenHash) {
        drop(self.evict_key(hash));
    }

    fn invalidate_account(&self, account_id: &str) {
        Inner::invalidate_account(self, account_id);
    }

    /// Revocations may have been missed: every verified account goes. The
    /// refusals stay, as for one revocation (a logout made here, not yet
    /// published, is held by its refusal alone).
    fn invalidate_all(&self) {
        Inner::invalidate_all(self, true);
    }
}

/// Whether a shared answer names another app than the one the tier is
/// bound to.
fn foreign(tier: &dyn SharedTier, answer: &Verification) -> bool {
    match (tier.app_id(), answer) {
        (Some(bound), Ok(account)) => account.application_id().is_some_and(|app| app != bound),
        _ => false,
    }
}

/// The end of a flight that nobody answered.
fn unanswered(refusal: Refusal) -> Flown {
    Flown {
        outcome: Err(refusal),
        answered: Answered::Nobody,
    }
}

fn deadline_passed(deadline: Duration) -> Refusal {
    tracing::warn!(
        ?deadline,
        "an Account Kit verification passed its deadline (CacheConfigBuilder::flight_deadline)"
    );
    Refusal::Unavailable(Arc::new(Error::Timeout { after: deadline }))
}

/// Held by a flight for its whole life: when the flight ends, however it
/// ends (answered, past its deadline, dropped with its last waiter, its task
/// cancelled), the shard forgets it and its slot is given back.
struct FlightGuard {
    cache: Weak<Inner>,
    key: TokenHash,
    id: u64,
    /// Whether the flight's work ran to its end (and so was counted by
    /// `complete`); if not, it is counted as unanswered.
    answered: bool,
    _slot: FlightSlot,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if let Some(cache) = self.cache.upgrade() {
            cache.forget_flight(&self.key, self.id, self.answered);
        }
    }
}

/// One of the [`CacheConfigBuilder::max_in_flight`] upstream slots, given back
/// when the flight ends or is dropped.
struct FlightSlot(Arc<AtomicUsize>);

impl FlightSlot {
    fn take(inner: &Inner) -> Option<Self> {
        let taken = inner
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < inner.max_in_flight).then_some(n + 1)
            })
            .is_ok();
        taken.then(|| FlightSlot(inner.in_flight.clone()))
    }
}

impl Drop for FlightSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Verifier for CachedVerifier {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Verification> {
        self.verify_with(token, None)
    }

    fn verify_now(&self, token: &str) -> Option<Verification> {
        self.inner.lookup(&token_hash(token), None)
    }

    fn verify_within<'a>(
        &'a self,
        token: &'a str,
        max_age: Duration,
    ) -> BoxFuture<'a, Verification> {
        self.verify_with(token, Some(max_age))
    }

    fn verify_now_within(&self, token: &str, max_age: Duration) -> Option<Verification> {
        self.inner.lookup(&token_hash(token), Some(max_age))
    }

    /// Every answer stored here came from a flight, and every flight from
    /// `verify_with`, which checks the token first: an
    /// account found for these bytes was verified for a well-formed token.
    fn recall(&self, token: &[u8], max_age: Option<Duration>) -> Option<Verification> {
        self.inner.lookup(&token_hash(token), max_age)
    }

    fn app_id(&self) -> Option<&str> {
        self.inner.verifier.app_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::Revocation;
    use crate::token::Malformed;
    use std::sync::atomic::AtomicUsize;

    /// Accepts tokens starting with "ok", refuses "bad…" with 190, fails
    /// "down…" as unavailable; counts calls.
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
    }

    impl Verifier for Counting {
        fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Verification> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::task::yield_now().await;
                if let Some(id) = token.strip_prefix("ok") {
                    Ok(Arc::new(Account::new(format!("acct{}", &id[..1]))))
                } else if token.starts_with("bad") {
                    Err(Refusal::InvalidToken { subcode: None })
                } else {
                    Err(Refusal::Unavailable(Arc::new(crate::Error::Timeout {
                        after: Duration::from_secs(1),
                    })))
                }
            }
            .boxed()
        }
    }

    #[test]
    #[allow(deprecated)]
    fn the_old_setters_still_work_and_bring_values_into_range() {
        let ms = Duration::from_millis;
        // One chain, a distinct value per setting, on either receiver.
        macro_rules! in_range {
            ($start:expr) => {
                $start
                    .capacity(500)
                    .ttl(ms(7_000))
                    .negative_capacity(9)
                    .negative_ttl(ms(11_000))
                    .ttl_jitter(0.3)
                    .shards(4)
                    .max_in_flight(3)
                    .flight_deadline(ms(250))
            };
        }
        let old = in_range!(CacheConfig::default());
        assert_eq!(Ok(old), in_range!(CacheConfig::builder()).build());

        let out_of_range = CacheConfig::default()
            .capacity(0)
            .negative_capacity(0)
            .ttl_jitter(2.0)
            .shards(0)
            .max_in_flight(0)
            .flight_deadline(Duration::ZERO)
            .ttl(Duration::MAX)
            .negative_ttl(Duration::MAX);
        let nearest = CacheConfig::builder()
            .capacity(1)
            .negative_capacity(1)
            .ttl_jitter(0.9)
            .shards(1)
            .max_in_flight(1)
            .flight_deadline(ms(1))
            .ttl(MAX_TTL)
            .negative_ttl(MAX_TTL)
            .build();
        assert_eq!(Ok(out_of_range), nearest);
        assert_eq!(CacheConfig::default().ttl_jitter(f64::NAN).ttl_jitter, 0.0);
    }

    fn cache(config: CacheConfig) -> (CachedVerifier, Arc<Counting>) {
        let counting = Arc::new(Counting::default());
        (CachedVerifier::from_arc(counting.clone(), config), counting)
    }

    #[tokio::test]
    async fn hits_misses_and_negative_hits() {
        let (c, upstream) = cache(CacheConfig::default());
        assert!(c.verify("ok1").await.is_ok());
        assert!(c.verify("ok1").await.is_ok());
        assert!(c.verify_now("ok1").is_some());
        assert!(c.verify("bad").await.is_err());
        assert!(matches!(
            c.verify_now("bad"),
            Some(Err(Refusal::InvalidToken { .. }))
        ));
        assert!(c.verify("down").await.is_err());
        assert!(
            c.verify_now("down").is_none(),
            "unavailable is never cached"
        );
        assert!(c.verify("down").await.is_err());
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 4);
        let s = c.stats();
        assert_eq!((s.hits, s.negative_hits, s.misses), (2, 1, 4));
        assert_eq!((s.entries, s.negative_entries), (1, 1));
        assert_eq!(s.lookups(), 7);
    }

    #[tokio::test]
    async fn single_flight() {
        let (c, upstream) = cache(CacheConfig::default());
        let all = futures::future::join_all((0..100).map(|_| c.verify("ok1"))).await;
        assert!(all.iter().all(Result::is_ok));
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 1);
        let s = c.stats();
        assert_eq!((s.misses, s.coalesced, s.upstream_calls), (100, 99, 1));
        // Errors are shared with the flight's waiters, not stored.
        let all = futures::future::join_all((0..10).map(|_| c.verify("down"))).await;
        assert!(all.iter().all(Result::is_err));
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 2);
        assert!(c.verify_now("down").is_none());
    }

    #[tokio::test]
    async fn bogus_flood_does_not_evict_accounts() {
        let (c, _) = cache(
            CacheConfig::builder()
                .capacity(64)
                .negative_capacity(64)
                .build()
                .unwrap(),
        );
        c.verify("ok1").await.unwrap();
        for i in 0..5_000 {
            let _ = c.verify(&format!("bad{i}")).await;
        }
        assert!(matches!(c.verify_now("ok1"), Some(Ok(_))));
        let s = c.stats();
        assert_eq!(s.negative_entries, 64);
        assert!(s.evictions >= 5_000 - 64);
    }

    #[tokio::test]
    async fn only_checked_tokens_are_remembered_so_a_recall_proves_the_syntax() {
        let (c, upstream) = cache(CacheConfig::default());
        // The upstream would accept it, but it cannot be a token.
        let outcome = c.verify("ok#1").await;
        assert!(
            matches!(outcome, Err(Refusal::Malformed(Malformed::BadCharacter))),
            "{outcome:?}"
        );
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 0);
        assert!(c.recall(b"ok#1", None).is_none());
        assert_eq!(c.stats().misses, 0, "refused before the cache");

        c.verify("ok1").await.unwrap();
        let recalled = c.recall(b"ok1", None).and_then(Result::ok);
        assert_eq!(recalled.map(|a| a.id.clone()).as_deref(), Some("acct1"));
    }

    #[tokio::test]
    async fn revocation_by_token_and_account() {
        let (c, upstream) = cache(CacheConfig::default());
        for t in ["ok1a", "ok1b", "ok2a"] {
            c.verify(t).await.unwrap();
        }
        c.invalidate_account("acct1");
        assert!(c.verify_now("ok1a").is_none() && c.verify_now("ok1b").is_none());
        assert!(c.verify_now("ok2a").is_some());
        c.invalidate_as_refused("ok2a");
        assert!(matches!(c.verify_now("ok2a"), Some(Err(_))));
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 3);
        assert_eq!(c.stats().invalidations, 3);
    }

    #[tokio::test]
    async fn index_follows_lru_eviction() {
        let (c, _) = cache(
            CacheConfig::builder()
                .capacity(1)
                .shards(1)
                .build()
                .unwrap(),
        );
        c.verify("ok1").await.unwrap();
        c.verify("ok2").await.unwrap(); // evicts ok1
        let shard = c.inner.shards[0].0.lock();
        assert_eq!(shard.by_account.accounts(), 1);
        assert!(shard.by_account.contains("acct2"));
    }

    #[tokio::test]
    async fn revocation_during_flight_is_not_overwritten() {
        let (c, _) = cache(CacheConfig::default());
        let flight = c.verify("ok1");
        c.invalidate_account("acct1"); // before the flight completes
        flight.await.unwrap();
        assert!(c.verify_now("ok1").is_none());
    }

    /// A shared tier in memory: what a second instance would see.
    #[derive(Debug, Default)]
    struct MemoryTier {
        entries: Mutex<HashMap<TokenHash, (Verification, Duration)>>,
        sinks: Mutex<Vec<RevocationSink>>,
        /// The app it is bound to, if any.
        app: Option<&'static str>,
        /// Tickets released by dropped flights.
        released: Mutex<Vec<u64>>,
    }

    impl SharedTier for MemoryTier {
        fn attach(&self, sink: RevocationSink) {
            self.sinks.lock().push(sink);
        }
        fn get<'a>(&'a self, key: &'a TokenHash) -> BoxFuture<'a, SharedLookup> {
            let found = self.entries.lock().get(key).cloned();
            async move {
                match found {
                    Some((answer, remaining)) => SharedLookup::Found { answer, remaining },
                    None => SharedLookup::Missing { ticket: 7 },
                }
            }
            .boxed()
        }
        fn store<'a>(
            &'a self,
            key: &'a TokenHash,
            ticket: u64,
            answer: Option<&'a Verification>,
            ttl: Duration,
        ) -> BoxFuture<'a, ()> {
            assert_eq!(ticket, 7);
            if let Some(answer) = answer {
                self.entries.lock().insert(*key, (answer.clone(), ttl));
            }
            async {}.boxed()
        }
        fn publish<'a>(&'a self, revocation: &'a Revocation) -> BoxFuture<'a, ()> {
            if let Revocation::Token { hash, .. } = revocation {
                self.entries.lock().remove(hash);
                for sink in self.sinks.lock().iter() {
                    sink.invalidate_hash(hash);
                }
            }
            async {}.boxed()
        }
        fn stats(&self) -> SharedStats {
            SharedStats::default()
        }
        fn app_id(&self) -> Option<&str> {
            self.app
        }
        fn release(&self, _key: &TokenHash, ticket: u64) {
            self.released.lock().push(ticket);
        }
    }

    #[tokio::test]
    async fn a_dropped_flight_releases_its_ticket_a_finished_one_hands_it_back() {
        struct Never;
        impl Verifier for Never {
            fn verify<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Verification> {
                future::pending().boxed()
            }
        }
        let tier = Arc::new(MemoryTier::default());
        let config = || {
            CacheConfig::builder()
                .flight_deadline(Duration::from_millis(20))
                .build()
                .unwrap()
        };
        let c = CachedVerifier::with_shared_tier(Arc::new(Never), config(), tier.clone()).unwrap();
        assert!(c.verify("t1").await.is_err(), "past its deadline");
        flights_over(&c).await;
        assert_eq!(*tier.released.lock(), [7], "released once");

        let up = Arc::new(Counting::default());
        let c = CachedVerifier::with_shared_tier(up, config(), tier.clone()).unwrap();
        c.verify("ok1").await.unwrap();
        flights_over(&c).await;
        assert_eq!(*tier.released.lock(), [7], "handed back to store instead");
        assert_eq!(tier.entries.lock().len(), 1);
    }

    #[tokio::test]
    async fn received_revocations_evict_accounts_and_keep_refusals() {
        let tier = Arc::new(MemoryTier::default());
        let up = Arc::new(Counting::default());
        let c = CachedVerifier::with_shared_tier(up.clone(), CacheConfig::default(), tier.clone())
            .unwrap();
        c.verify("ok1").await.unwrap();
        c.verify("bad1").await.unwrap_err();
        // A logout made here: refused locally, as its message comes back.
        c.verify("ok2").await.unwrap();
        let logout = Revocation::Token {
            hash: token_hash("ok2"),
            refused_for: Some(Duration::from_secs(60)),
        };
        c.revoke(&logout).await;
        let calls = up.calls.load(Ordering::SeqCst);
        // The messages again (late, or another instance's).
        let sink = tier.sinks.lock()[0].clone();
        for token in ["ok1", "bad1", "ok2"] {
            assert!(sink.invalidate_hash(&token_hash(token)));
        }
        let before = c.stats();
        c.verify("bad1").await.unwrap_err();
        c.verify("ok2").await.unwrap_err();
        let after = c.stats();
        assert_eq!(
            after.negative_hits - before.negative_hits,
            2,
            "the refusals stayed"
        );
        assert_eq!(after.misses, before.misses);
        assert_eq!(up.calls.load(Ordering::SeqCst), calls);
        c.verify("ok1").await.unwrap();
        assert_eq!(c.stats().misses - after.misses, 1, "the account went");

        // A resync (revocations may have been missed) likewise.
        assert!(sink.invalidate_all());
        let before = c.stats();
        c.verify("ok2").await.unwrap_err();
        c.verify("ok1").await.unwrap();
        let after = c.stats();
        assert_eq!(
            after.negative_hits - before.negative_hits,
            1,
            "the refusal stayed"
        );
        assert_eq!(after.misses - before.misses, 1, "the account went");
    }

    #[tokio::test]
    async fn shared_tier_answers_the_second_instance() {
        let tier = Arc::new(MemoryTier::default());
        let (up1, up2) = (Arc::new(Counting::default()), Arc::new(Counting::default()));
        let c1 =
            CachedVerifier::with_shared_tier(up1.clone(), CacheConfig::default(), tier.clone())
                .unwrap();
        let c2 =
            CachedVerifier::with_shared_tier(up2.clone(), CacheConfig::default(), tier.clone())
                .unwrap();
        c1.verify("ok1").await.unwrap();
        assert!(c1.verify("bad").await.is_err());
        assert!(c1.verify("down").await.is_err());
        assert_eq!(
            tier.entries.lock().len(),
            2,
            "accounts and definite refusals only"
        );
        c2.verify("ok1").await.unwrap();
        assert!(matches!(
            c2.verify("bad").await,
            Err(Refusal::InvalidToken { .. })
        ));
        assert_eq!(up2.calls.load(Ordering::SeqCst), 0);
        let s = c2.stats();
        assert_eq!((s.shared_hits, s.upstream_calls, s.misses), (2, 0, 2));
        assert!(s.shared.is_some());
        assert!(c2.verify_now("ok1").is_some(), "kept locally");
        // A revocation published by one instance evicts on the other.
        tier.publish(&Revocation::Token {
            hash: token_hash("ok1"),
            refused_for: Some(Duration::from_secs(60)),
        })
        .await;
        assert!(c2.verify_now("ok1").is_none());
    }

    #[tokio::test]
    async fn shared_copy_lives_no_longer_than_in_the_tier() {
        let tier = Arc::new(MemoryTier::default());
        let account: Verification = Ok(Arc::new(Account::new("acct1")));
        tier.entries
            .lock()
            .insert(token_hash("ok1"), (account, Duration::from_millis(30)));
        let (c, upstream) = {
            let counting = Arc::new(Counting::default());
            let c =
                CachedVerifier::with_shared_tier(counting.clone(), CacheConfig::default(), tier)
                    .unwrap();
            (c, counting)
        };
        c.verify("ok1").await.unwrap();
        assert!(c.verify_now("ok1").is_some());
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(
            c.verify_now("ok1").is_none(),
            "expired with the tier's copy"
        );
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn revocation_during_shared_lookup_is_not_stored() {
        let tier = Arc::new(MemoryTier::default());
        let account: Verification = Ok(Arc::new(Account::new("acct1")));
        tier.entries
            .lock()
            .insert(token_hash("ok1"), (account, Duration::from_secs(60)));
        let c = CachedVerifier::with_shared_tier(
            Arc::new(Counting::default()),
            CacheConfig::default(),
            tier,
        )
        .unwrap();
        let flight = c.verify("ok1");
        c.invalidate_hash(&token_hash("ok1")); // received from another instance
        flight.await.unwrap();
        assert!(c.verify_now("ok1").is_none());
    }

    #[test]
    fn expiry_is_spread() {
        let (c, _) = cache(
            CacheConfig::builder()
                .ttl(Duration::from_secs(100))
                .build()
                .unwrap(),
        );
        let lifetimes: Vec<Duration> = (0..1000)
            .map(|i| {
                c.inner
                    .lifetime(Duration::from_secs(100), &token_hash(format!("t{i}")))
            })
            .collect();
        let min = lifetimes.iter().min().unwrap();
        let max = lifetimes.iter().max().unwrap();
        assert!(*min >= Duration::from_secs(80) && *max <= Duration::from_secs(100));
        assert!(*max - *min > Duration::from_secs(15), "{min:?}..{max:?}");
    }

    /// Waits until released, then gives its answer; counts calls.
    struct Gate(tokio::sync::Semaphore, AtomicUsize, Verification);

    impl Gate {
        /// Refuses every token once released.
        fn refusing() -> Self {
            Self::answering(Err(Refusal::InvalidToken { subcode: None }))
        }

        fn answering(answer: Verification) -> Self {
            Gate(tokio::sync::Semaphore::new(0), AtomicUsize::new(0), answer)
        }
    }

    impl Verifier for Gate {
        fn verify<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Verification> {
            self.1.fetch_add(1, Ordering::SeqCst);
            async move {
                let _permit = self.0.acquire().await;
                self.2.clone()
            }
            .boxed()
        }
    }

    #[tokio::test]
    async fn in_flight_upstream_calls_are_bounded() {
        let gate = Arc::new(Gate::refusing());
        let c = CachedVerifier::from_arc(
            gate.clone(),
            CacheConfig::builder().max_in_flight(3).build().unwrap(),
        );
        let tokens: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
        let pending: Vec<_> = tokens.iter().map(|t| c.verify(t)).collect();
        // Three flights started; the seven others were refused at once.
        let s = c.stats();
        assert_eq!((s.overloaded, s.misses), (7, 10));
        gate.0.add_permits(10);
        let outcomes = futures::future::join_all(pending).await;
        let overloaded = outcomes
            .iter()
            .filter(|o| matches!(o, Err(Refusal::Overloaded)))
            .count();
        assert_eq!(overloaded, 7);
        assert_eq!(gate.1.load(Ordering::SeqCst), 3);
        assert_eq!(c.stats().upstream_calls, 3);
        // Slots are given back.
        assert!(c.verify("again").await.is_err());
        assert_eq!(c.stats().overloaded, 7);
    }

    /// Answers `acct1` after `delay`; counts calls.
    struct Slow(Duration, AtomicUsize);

    impl Verifier for Slow {
        fn verify<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Verification> {
            self.1.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(self.0).await;
                Ok(Arc::new(Account::new("acct1")))
            }
            .boxed()
        }
    }

    /// Waits for `in_flight` to drop to zero (the flights' tasks finishing).
    async fn flights_over(c: &CachedVerifier) {
        for _ in 0..500 {
            if c.stats().in_flight == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("flights still in flight: {:?}", c.stats());
    }

    // Issue 10 §3: every waiter gone must not leak the flight and its slot.
    #[tokio::test]
    async fn abandoned_flights_complete_and_give_their_slots_back() {
        let slow = Arc::new(Slow(Duration::from_millis(200), AtomicUsize::new(0)));
        let c = CachedVerifier::from_arc(
            slow.clone(),
            CacheConfig::builder().max_in_flight(4).build().unwrap(),
        );
        for i in 0..4 {
            let token = format!("t{i}");
            let waited = tokio::time::timeout(Duration::from_millis(10), c.verify(&token));
            assert!(waited.await.is_err(), "the waiter gave up");
        }
        flights_over(&c).await;
        // The abandoned flights completed and stored what they learned...
        assert_eq!(c.stats().entries, 4);
        assert!(c.verify_now("t0").is_some());
        // ...and a new token gets a slot.
        assert!(c.verify("fresh").await.is_ok());
        let s = c.stats();
        assert_eq!((s.overloaded, s.upstream_calls), (0, 5));
    }

    #[tokio::test]
    async fn a_flight_ends_by_its_deadline() {
        struct Never;
        impl Verifier for Never {
            fn verify<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Verification> {
                future::pending().boxed()
            }
        }
        let c = CachedVerifier::new(
            Never,
            CacheConfig::builder()
                .max_in_flight(1)
                .flight_deadline(Duration::from_millis(50))
                .build()
                .unwrap(),
        );
        // Abandoned at once, and its verifier never answers.
        drop(tokio::time::timeout(Duration::from_millis(1), c.verify("t1")).await);
        flights_over(&c).await;
        let outcome = c.verify("t2").await;
        assert!(
            matches!(&outcome, Err(Refusal::Unavailable(e)) if e.is_timeout()),
            "{outcome:?}"
        );
        flights_over(&c).await;
        let s = c.stats();
        assert_eq!((s.overloaded, s.unanswered, s.upstream_calls), (0, 2, 0));
        assert_identity(&s);
        assert!(
            c.verify_now("t2").is_none(),
            "a missed deadline is not cached"
        );
    }

    /// Once the flights are over, every miss is accounted for.
    fn assert_identity(s: &CacheStats) {
        let accounted =
            s.upstream_calls + s.shared_hits + s.unanswered + s.coalesced + s.overloaded;
        assert_eq!(s.misses, accounted, "{s:?}");
    }

    #[test]
    fn without_a_runtime_a_dropped_flight_gives_its_slot_back() {
        let gate = Arc::new(Gate::refusing());
        let c = CachedVerifier::from_arc(
            gate.clone(),
            CacheConfig::builder().max_in_flight(1).build().unwrap(),
        );
        let mut pending = c.verify("t1");
        assert!((&mut pending).now_or_never().is_none());
        assert_eq!(c.stats().in_flight, 1);
        drop(pending);
        assert_eq!(c.stats().in_flight, 0);
        gate.0.add_permits(1);
        let outcome = futures::executor::block_on(c.verify("t2"));
        assert!(matches!(outcome, Err(Refusal::InvalidToken { .. })));
        let s = c.stats();
        assert_eq!(
            (s.unanswered, s.upstream_calls),
            (1, 1),
            "t1 dropped, t2 answered"
        );
        assert_identity(&s);
    }

    // Issue 10 §5: a flight from before an account-wide revocation must not
    // answer a request made after it.
    #[tokio::test]
    async fn a_max_age_verifies_older_entries_again() {
        let (c, upstream) = cache(CacheConfig::default());
        let calls = || upstream.calls.load(Ordering::SeqCst);
        c.verify("ok1").await.unwrap();
        // Verified just now: fresh enough for an hour, for the sync path too.
        assert!(c
            .verify_now_within("ok1", Duration::from_secs(3600))
            .is_some());
        c.verify_within("ok1", Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(calls(), 1);
        // Not for a max age of zero: verified again, and counted.
        assert!(c.verify_now_within("ok1", Duration::ZERO).is_none());
        c.verify_within("ok1", Duration::ZERO).await.unwrap();
        assert_eq!(calls(), 2);
        let s = c.stats();
        assert_eq!((s.too_old, s.upstream_calls, s.hits), (1, 2, 2));
        // The fresh answer serves every route.
        c.verify("ok1").await.unwrap();
        assert_eq!(calls(), 2);
        // Refusals are trusted whatever their age: a refused token stays refused.
        assert!(c.verify("bad").await.is_err());
        assert!(c.verify_within("bad", Duration::ZERO).await.is_err());
        assert_eq!(calls(), 3);
    }

    #[tokio::test]
    async fn a_fresh_flight_skips_the_shared_tier_and_coalesces() {
        let tier = Arc::new(MemoryTier::default());
        let up1 = Arc::new(Counting::default());
        let c1 =
            CachedVerifier::with_shared_tier(up1, CacheConfig::default(), tier.clone()).unwrap();
        c1.verify("ok1").await.unwrap();
        // The second instance's shared copy is of unknown age: a route with
        // a max age does not take it, however generous.
        let held = Arc::new(Gate::answering(Ok(Arc::new(Account::new("acct1")))));
        let c2 =
            CachedVerifier::with_shared_tier(held.clone(), CacheConfig::default(), tier).unwrap();
        c2.verify("ok1").await.unwrap();
        assert_eq!(held.1.load(Ordering::SeqCst), 0, "answered by the tier");
        let hour = Duration::from_secs(3600);
        let fresh = futures::future::join_all((0..5).map(|_| c2.verify_within("ok1", hour)));
        // A request without a max age, and one with a looser one, join the
        // fresh flight; none of them waits for a flight of its own.
        let loose = c2.verify_within("ok1", 2 * hour);
        held.0.add_permits(10);
        let (fresh, loose) = futures::join!(fresh, loose);
        assert!(fresh.iter().all(Result::is_ok) && loose.is_ok());
        assert_eq!(held.1.load(Ordering::SeqCst), 1, "one upstream call");
        let s = c2.stats();
        assert_eq!((s.shared_hits, s.upstream_calls, s.coalesced), (1, 1, 5));
        // Its answer is now as old as that call: a hit for the max age.
        assert!(c2.verify_now_within("ok1", hour).is_some());
    }

    #[tokio::test]
    async fn a_fresh_request_does_not_join_a_looser_flight() {
        let held = Arc::new(Gate::answering(Ok(Arc::new(Account::new("acct1")))));
        let c = CachedVerifier::from_arc(held.clone(), CacheConfig::default());
        // A plain flight may answer from the shared tier (of unknown age):
        // a request with a max age starts a fresh one beside it, which
        // later plain requests join.
        let plain = c.verify("ok1");
        let fresh = c.verify_within("ok1", Duration::from_secs(3600));
        let later = c.verify("ok1");
        held.0.add_permits(10);
        let (a, b, d) = futures::join!(plain, fresh, later);
        assert!(a.is_ok() && b.is_ok() && d.is_ok());
        assert_eq!(held.1.load(Ordering::SeqCst), 2);
        let s = c.stats();
        assert_eq!((s.misses, s.coalesced, s.upstream_calls), (3, 1, 2));
    }

    #[tokio::test]
    async fn no_joining_a_flight_from_before_an_account_revocation() {
        for revoke in [
            (|c: &CachedVerifier| c.invalidate_account("acct1")) as fn(&CachedVerifier),
            |c: &CachedVerifier| c.invalidate_all(),
        ] {
            let held = Arc::new(Gate::answering(Ok(Arc::new(Account::new("acct1")))));
            let c = CachedVerifier::from_arc(held.clone(), CacheConfig::default());
            let before = c.verify("ok1");
            let joined = c.verify("ok1");
            revoke(&c);
            let after = c.verify("ok1");
            held.0.add_permits(10);
            let (a, b, c2) = futures::join!(before, joined, after);
            assert!(a.is_ok() && b.is_ok() && c2.is_ok());
            assert_eq!(
                held.1.load(Ordering::SeqCst),
                2,
                "the late request flew on its own"
            );
            let s = c.stats();
            assert_eq!((s.misses, s.coalesced), (3, 1));
            // The late flight started after the revocation: its answer is kept.
            assert!(c.verify_now("ok1").is_some());
        }
    }

    #[test]
    fn a_tier_of_another_app_is_refused() {
        struct OfApp(&'static str);
        impl Verifier for OfApp {
            fn verify<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Verification> {
                future::ready(Err(Refusal::WrongApp)).boxed()
            }
            fn app_id(&self) -> Option<&str> {
                Some(self.0)
            }
        }
        let tier: Arc<dyn SharedTier> = Arc::new(MemoryTier {
            app: Some("1111"),
            ..MemoryTier::default()
        });
        let other = CachedVerifier::with_shared_tier(
            Arc::new(OfApp("2222")),
            CacheConfig::default(),
            tier.clone(),
        );
        assert!(matches!(other, Err(crate::Error::Config(_))));
        let same =
            CachedVerifier::with_shared_tier(Arc::new(OfApp("1111")), CacheConfig::default(), tier);
        assert_eq!(
            same.map(|c| c.app_id().map(str::to_owned)).ok(),
            Some(Some("1111".into()))
        );
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        use crate::error::ConfigError;
        let refused = |b: CacheConfigBuilder| match b.build() {
            Err(ConfigError::InvalidCacheSetting { setting, .. }) => setting,
            other => panic!("accepted: {other:?}"),
        };
        assert_eq!(refused(CacheConfig::builder().capacity(0)), "capacity");
        assert_eq!(
            refused(CacheConfig::builder().negative_capacity(0)),
            "negative_capacity"
        );
        assert_eq!(
            refused(CacheConfig::builder().ttl_jitter(f64::NAN)),
            "ttl_jitter"
        );
        assert_eq!(
            refused(CacheConfig::builder().ttl_jitter(0.95)),
            "ttl_jitter"
        );
        assert_eq!(refused(CacheConfig::builder().shards(0)), "shards");
        assert_eq!(
            refused(CacheConfig::builder().max_in_flight(0)),
            "max_in_flight"
        );
        assert_eq!(
            refused(CacheConfig::builder().flight_deadline(Duration::ZERO)),
            "flight_deadline"
        );
        let past_max = MAX_TTL + Duration::from_secs(1);
        assert_eq!(refused(CacheConfig::builder().ttl(past_max)), "ttl");
        assert_eq!(
            refused(CacheConfig::builder().negative_ttl(Duration::MAX)),
            "negative_ttl"
        );
        assert!(CacheConfig::builder().ttl(MAX_TTL).build().is_ok());
        assert_eq!(
            CacheConfig::builder().build().unwrap(),
            CacheConfig::default()
        );
    }

    #[test]
    fn shard_counts() {
        assert_eq!(CacheConfig::default().shard_count(), 16);
        assert_eq!(
            CacheConfig::builder()
                .capacity(100)
                .build()
                .unwrap()
                .shard_count(),
            1
        );
        assert_eq!(
            CacheConfig::builder()
                .capacity(1000)
                .build()
                .unwrap()
                .shard_count(),
            8
        );
        assert_eq!(
            CacheConfig::builder()
                .shards(5)
                .build()
                .unwrap()
                .shard_count(),
            4
        );
    }

    /// The shards of a cache run the settings the trial across them
    /// chooses: on a loop larger than the cache (which wants a short
    /// memory) they leave the 5 × start for a shorter aging period
    /// together, and every shard's period and window stay on the trial's
    /// ladders.
    #[tokio::test]
    async fn the_shards_run_the_settings_their_trial_chooses() {
        let config = CacheConfig::builder()
            .capacity(1600)
            .shards(16)
            .ttl(Duration::from_secs(24 * 3600))
            .ttl_jitter(0.0)
            .build()
            .unwrap();
        let (c, _) = cache(config);
        let shard_stats = |c: &CachedVerifier| -> Vec<policy::PolicyStats> {
            c.inner
                .shards
                .iter()
                .map(|s| s.0.lock().positive.stats())
                .collect()
        };
        let periods = |c: &CachedVerifier| -> Vec<f64> {
            shard_stats(c)
                .iter()
                .map(|p| p.aging_period as f64)
                .collect()
        };
        let before = periods(&c);
        let tokens: Vec<String> = (0..2000).map(|i| format!("ok{i}")).collect();
        for _ in 0..60 {
            for t in &tokens {
                if c.verify_now(t).is_none() {
                    let _ = c.verify(t).await;
                }
            }
        }
        let after = periods(&c);
        assert_eq!(c.stats().aging_period as f64, after.iter().sum::<f64>());
        assert!(before.iter().all(|&p| p == 500.0), "{before:?}");
        let ladder = [125.0, 250.0, 500.0, 1000.0];
        assert!(after.iter().all(|p| ladder.contains(p)), "{after:?}");
        // All but the probing shards (at most a quarter) run the control.
        let shorter = after.iter().filter(|&&p| p < 500.0).count();
        assert!(shorter >= 12, "{after:?}");
        // Shards of 100 entries try windows of 1 to 16 entries (16 %); the
        // loop keeps the smallest (the policy's own test shows a shard
        // following the trial to a larger one).
        let sizes: Vec<usize> = shard_stats(&c).iter().map(|p| p.window_max).collect();
        assert!(
            sizes.iter().all(|w| [1, 2, 4, 8, 16].contains(w)),
            "{sizes:?}"
        );
        assert_eq!(c.stats().window_size, sizes.iter().sum::<usize>() as u64);
        // The trial's moves and the sketch's agings are counted, every
        // shard's: all started at 8 entries, and most left it.
        let stats = c.stats();
        let shards = shard_stats(&c);
        let moved = sizes.iter().filter(|&&w| w != 8).count() as u64;
        assert!(stats.window_adjustments >= moved && moved > 0, "{stats:?}");
        assert_eq!(
            stats.window_adjustments,
            shards.iter().map(|p| p.window_adjustments).sum::<u64>()
        );
        assert!(stats.sketch_agings > 0, "{stats:?}");
        assert_eq!(
            stats.sketch_agings,
            shards.iter().map(|p| p.sketch_resets).sum::<u64>()
        );
    }
}
