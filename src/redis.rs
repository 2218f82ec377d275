//! Several instances as one cache, through Redis: a [`SharedTier`] that
//! shares verified tokens and broadcasts revocations.
//!
//! ```no_run
//! use actix_accountkit::{config::Config, redis::RedisTier, AccountKit};
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builder("1234", "account-kit-app-secret").build()?;
//! let redis = RedisTier::builder("redis://127.0.0.1:6379/", &config).build()?;
//! let kit = AccountKit::builder(config).shared_tier(redis.clone()).build()?;
//! // ... serve kit as usual; redis.stats() says whether Redis is reachable.
//! # let _ = kit; Ok(()) }
//! ```
//!
//! # What it does
//!
//! * **Shared second-level cache.** On a local miss, the cache asks Redis
//!   before Account Kit. Entries live under `{namespace}:{app_id}:t:{sha256
//!   hex}` (the token itself never leaves the process), as JSON, with the
//!   cache's TTL (`SET … PX`): the account for `ttl`, a definite refusal for
//!   `negative_ttl`. A copy taken from Redis lives locally no longer than it
//!   had left in Redis. An index `…:a:{account_id}` (a sorted set of hashes
//!   scored by their entry's expiry; expired members are dropped on each
//!   store and the index expires with its last entry) lets a revocation by
//!   account find them.
//! * **Authenticated entries.** Every stored value is
//!   `v1.{expiry ms}.{MAC}.{entry JSON}`, the MAC an HMAC-SHA256 over the
//!   format version, the full Redis key, the expiry and the entry, keyed
//!   with a key derived from the app secret
//!   ([`RedisTier::builder`] takes the [`Config`]). A value copied to
//!   another token's key, altered, truncated, past its expiry, in the older
//!   unsigned format or written with another app secret is a miss: the
//!   token is verified upstream, the answer replaces the value, and
//!   [`SharedStats::rejected_entries`] counts it (logged once per tier).
//! * **One upstream call per token for the fleet.** A miss in Redis takes a
//!   short claim on the token; the other instances missing it meanwhile
//!   poll Redis for the claimant's answer (up to
//!   [`RedisTierBuilder::claim_wait`]) instead of asking Account Kit too.
//! * **Revocation broadcast.** The admin client's logout, invalidate-all and
//!   delete run one Lua script: drop the shared entries (a logged-out token
//!   is replaced by a refusal for `negative_ttl`), bump a revocation counter
//!   (`…:gen`), and publish on `…:revocations`. Every instance subscribes on a
//!   dedicated connection and evicts locally; a verification in flight at
//!   that moment is kept out of the cache (the cache's epoch guard), and a
//!   shared entry is written only if the revocation counter did not move since
//!   the lookup that missed it (so a slow verification cannot resurrect a
//!   revoked token in Redis).
//!
//! # What it trusts Redis with
//!
//! Redis (and anyone who can write to it) cannot make a token pass as
//! another token's account, nor make a token refused that was not, nor
//! extend an entry's life: those are authenticated. It can still delete
//! entries (extra misses), delay or drop revocation messages (a revoked
//! token then passes on the other instances until it expires locally, at
//! most `ttl`; missed revocations are detected on reconnection, by the
//! revocation counter), and put back an earlier authentic entry of the
//! same token before its expiry (a token logged out within the last `ttl`
//! can pass again until that expiry). A message on the revocation channel
//! is never trusted beyond "forget this": a forged one costs extra misses
//! only.
//!
//! # When Redis is unreachable
//!
//! Every call is bounded by [`RedisTierBuilder::timeout`]. While Redis is
//! down (or slow), instances serve from their local caches and ask Account
//! Kit on a miss; [`SharedStats::connected`] is `false` and
//! [`SharedStats::errors`] counts the failures, logged with `tracing` (no
//! token, no URL). A background task reconnects with exponential backoff up to
//! [`RedisTierBuilder::max_backoff`] ([`SharedStats::reconnects`]).
//! Revocations made meanwhile are queued and published once Redis is back.
//! An instance that may have missed revocations (Redis's revocation counter
//! moved since the instance's last checkpoint, taken at each liveness check
//! once every revocation it counts has been received) empties its local
//! cache when it reconnects ([`SharedStats::resyncs`]).
//!
//! # Threads
//!
//! The Redis connections live on a small background thread with its own
//! Tokio runtime (`accountkit-redis`), so the tier works from any executor
//! and outlives any one actix worker; it stops when the last [`RedisTier`]
//! clone is dropped. Standalone Redis only (the scripts touch keys they
//! compute; not Redis Cluster).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use ::redis::{AsyncConnectionConfig, Client, RedisResult, Script, Value};
use futures::future::{BoxFuture, FutureExt};
use futures::StreamExt;
use hmac::Mac;
use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Notify};

use crate::config::{hmac_sha256, Config, HmacSha256};
use crate::hash::TokenHash;
use crate::shared::{Revocation, RevocationSink, SharedLookup, SharedStats, SharedTier};
use crate::types::Account;
use crate::verify::Refusal;
use crate::verify::Verification;

/// First part of every key and of the channel name. Default is
/// `accountkit`.
pub const DEFAULT_NAMESPACE: &str = "accountkit";
/// Bound of every Redis call. Default is 250 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);
/// Longest wait between two reconnection attempts. Default is 2 s.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Longest wait for another instance's verification of the same token.
/// Default is 2 s.
pub const DEFAULT_CLAIM_WAIT: Duration = Duration::from_secs(2);
/// Interval of the subscription's liveness check (`PING`). Default is 5 s.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// Revocations queued while Redis is unreachable. Default is 10,000.
pub const DEFAULT_MAX_PENDING: usize = 10_000;

/// First wait before reconnecting.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// What the entry key is derived for ([`Config::derive_key`]); a new
/// version of the entry format gets a new label.
const ENTRY_KEY_PURPOSE: &str = "actix-accountkit redis entry v1";
/// First field of every stored value: the entry format.
const ENTRY_VERSION: &str = "v1";
/// Interval between two looks at another instance's claim.
const CLAIM_POLL: Duration = Duration::from_millis(5);

/// Why a [`RedisTier`] could not be built. No message repeats the URL (it
/// may hold a password) or anything of the app secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisTierError {
    /// The URL is not a Redis URL (its text is not repeated: it may hold a
    /// password).
    #[error("invalid Redis URL (expected redis://[:password@]host[:port][/db])")]
    InvalidUrl,
    /// The app id is empty or not decimal.
    #[error("the app id must be the decimal Facebook app id")]
    InvalidAppId,
    /// The namespace is empty or holds whitespace.
    #[error("the Redis namespace must be non-empty and without whitespace")]
    InvalidNamespace,
    /// The background thread or its runtime could not be started.
    #[error("could not start the Redis background thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Builder of [`RedisTier`].
pub struct RedisTierBuilder {
    url: SecretString,
    app_id: String,
    /// Keyed with the entry key derived from the app secret.
    entry_mac: HmacSha256,
    namespace: String,
    timeout: Duration,
    max_backoff: Duration,
    claim_wait: Duration,
    health_interval: Duration,
    max_pending: usize,
}

impl fmt::Debug for RedisTierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTierBuilder")
            .field("url", &"[redacted]")
            .field("app_id", &self.app_id)
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisTierBuilder {
    /// First part of the keys and channel name; the app id follows it, so
    /// that two apps sharing a Redis never share entries. Default is
    /// [`DEFAULT_NAMESPACE`].
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Bound of every Redis call (a slower answer counts as a failure and
    /// the request falls through to the local cache or Account Kit).
    /// Default is [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Longest wait between two reconnection attempts (the wait starts at
    /// 50 ms and doubles). Default is [`DEFAULT_MAX_BACKOFF`].
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max.max(MIN_BACKOFF);
        self
    }

    /// Longest wait for another instance that is verifying the same token
    /// (then this instance asks Account Kit itself); zero turns the wait
    /// off; at most one minute (a claim is a Redis key with that expiry).
    /// Default is [`DEFAULT_CLAIM_WAIT`].
    pub fn claim_wait(mut self, wait: Duration) -> Self {
        self.claim_wait = wait.min(Duration::from_secs(60));
        self
    }

    /// Interval of the subscription's liveness check. Default is
    /// [`DEFAULT_HEALTH_INTERVAL`].
    pub fn health_interval(mut self, interval: Duration) -> Self {
        self.health_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Revocations kept for publication while Redis is unreachable (the
    /// oldest are dropped beyond it, with a warning). Default is
    /// [`DEFAULT_MAX_PENDING`].
    pub fn max_pending(mut self, n: usize) -> Self {
        self.max_pending = n.max(1);
        self
    }

    /// Checks the settings and starts the background thread, which
    /// connects (and reconnects) on its own: this returns at once, even if
    /// Redis is unreachable.
    pub fn build(self) -> Result<RedisTier, RedisTierError> {
        let client =
            Client::open(self.url.expose_secret()).map_err(|_| RedisTierError::InvalidUrl)?;
        if self.app_id.is_empty() || !self.app_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RedisTierError::InvalidAppId);
        }
        if self.namespace.is_empty() || self.namespace.chars().any(char::is_whitespace) {
            return Err(RedisTierError::InvalidNamespace);
        }
        let ns = format!("{}:{}", self.namespace, self.app_id);
        let state = Arc::new(State {
            client,
            app_id: self.app_id.clone(),
            entry_mac: self.entry_mac,
            prefix: ns.clone(),
            keys: Keys {
                gen: format!("{ns}:gen"),
                token: format!("{ns}:t:"),
                account: format!("{ns}:a:"),
                claim: format!("{ns}:c:"),
                channel: format!("{ns}:revocations"),
            },
            sender: instance_id(),
            timeout: self.timeout,
            max_backoff: self.max_backoff,
            claim_wait: self.claim_wait,
            health_interval: self.health_interval,
            max_pending: self.max_pending,
            scripts: Scripts::new(),
            conn: Mutex::new(None),
            sinks: Mutex::new(Vec::new()),
            pending: Mutex::new(VecDeque::new()),
            checkpoint: Mutex::new(None),
            kick: Notify::new(),
            connected: AtomicBool::new(false),
            ever_connected: AtomicBool::new(false),
            rejection_logged: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            published: AtomicU64::new(0),
            received: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(RedisTierError::Thread)?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel();
        let background = state.clone();
        std::thread::Builder::new()
            .name("accountkit-redis".into())
            .spawn(move || runtime.block_on(background.run(stopped)))
            .map_err(RedisTierError::Thread)?;
        Ok(RedisTier {
            inner: Arc::new(TierHandle {
                state,
                runtime: handle,
                _stop: stop,
            }),
        })
    }
}

/// The Redis [`SharedTier`]: shared verified tokens and revocation
/// broadcast. Cheap to clone; clones share the connections. See the
/// [module docs](self).
///
/// ```no_run
/// use actix_accountkit::{config::Config, redis::RedisTier};
/// use std::time::Duration;
///
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::builder("1234", "account-kit-app-secret").build()?;
/// let redis = RedisTier::builder("redis://:password@redis.internal:6379/0", &config)
///     .timeout(Duration::from_millis(100))
///     .build()?;
/// println!("{:?}", redis.stats()); // connected, errors, revocations_…
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisTier {
    inner: Arc<TierHandle>,
}

struct TierHandle {
    state: Arc<State>,
    runtime: tokio::runtime::Handle,
    /// Dropped with the last clone: the background thread then stops.
    _stop: oneshot::Sender<()>,
}

impl fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = &self.inner.state;
        f.debug_struct("RedisTier")
            .field("channel", &state.keys.channel)
            .field("connected", &state.connected.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RedisTier {
    /// A builder for the Redis at `url` (`redis://[:password@]host[:port][/db]`;
    /// kept secret), for the app of `config`.
    ///
    /// The tier takes the app id from `config`, and derives from its app
    /// secret the key that authenticates every entry it writes and reads
    /// (HKDF-SHA256, bound to the app id; neither the secret nor the
    /// derived key ever leaves the process or shows in `Debug` output, and
    /// the derived key is zeroized once the MAC is keyed with it). Every
    /// instance sharing the Redis must
    /// therefore use the same app secret: an entry written with another
    /// one is refused like a forged one (counted in
    /// [`SharedStats::rejected_entries`]) and verified again.
    pub fn builder(url: impl Into<String>, config: &Config) -> RedisTierBuilder {
        let entry_key = config.derive_key(ENTRY_KEY_PURPOSE);
        RedisTierBuilder {
            url: SecretString::from(url.into()),
            app_id: config.app_id().to_owned(),
            entry_mac: hmac_sha256(entry_key.expose_secret()),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            max_backoff: DEFAULT_MAX_BACKOFF,
            claim_wait: DEFAULT_CLAIM_WAIT,
            health_interval: DEFAULT_HEALTH_INTERVAL,
            max_pending: DEFAULT_MAX_PENDING,
        }
    }

    /// The counters (also in `CachedVerifier::stats().shared`).
    pub fn stats(&self) -> SharedStats {
        self.inner.state.stats()
    }

    /// Runs `work` on the background runtime (where the connections live);
    /// `None` if that runtime is gone.
    async fn on_background<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        // Bounded on this side too: the work's own timeouts start only when
        // the background thread gets to it.
        let limit =
            self.inner.state.timeout + self.inner.state.claim_wait + self.inner.state.timeout;
        let task = self.inner.runtime.spawn(work);
        match tokio::time::timeout(limit, task).await {
            Ok(done) => done.ok(),
            Err(_) => {
                tracing::warn!(
                    ?limit,
                    "Redis background work did not finish in time; skipped"
                );
                None
            }
        }
    }
}

impl SharedTier for RedisTier {
    fn app_id(&self) -> Option<&str> {
        Some(&self.inner.state.app_id)
    }

    fn attach(&self, sink: RevocationSink) {
        self.inner.state.sinks.lock().push(sink);
    }

    fn get<'a>(&'a self, key: &'a TokenHash) -> BoxFuture<'a, SharedLookup> {
        let state = self.inner.state.clone();
        let hex = hex::encode(key);
        async move {
            self.on_background(state.lookup(hex))
                .await
                .unwrap_or(SharedLookup::Unavailable)
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
        let state = self.inner.state.clone();
        let hex = hex::encode(key);
        let entry = answer.and_then(Entry::from_answer);
        async move {
            self.on_background(state.store(hex, ticket, entry, ttl))
                .await;
        }
        .boxed()
    }

    fn publish<'a>(&'a self, revocation: &'a Revocation) -> BoxFuture<'a, ()> {
        let state = self.inner.state.clone();
        let revocation = revocation.clone();
        async move {
            let background = state.clone();
            let queued = revocation.clone();
            let published = self
                .on_background(async move { background.publish(&revocation).await })
                .await
                .unwrap_or(false);
            if !published {
                state.enqueue(queued);
            }
        }
        .boxed()
    }

    fn stats(&self) -> SharedStats {
        self.inner.state.stats()
    }
}

struct Keys {
    gen: String,
    token: String,
    account: String,
    claim: String,
    channel: String,
}

struct Scripts {
    lookup: Script,
    store: Script,
    revoke_token: Script,
    revoke_account: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            // KEYS: gen, entry, claim. ARGV: claim ms, sender, the value to
            // look past ('' for none: one this instance refused).
            // → {gen, 'found', value, pttl} | {gen, 'claimed' | 'busy', '', 0}
            //
            // A key of another type than a string (not ours) comes back as
            // the value '<type>': it fails the entry check like any other
            // foreign value, and the store that follows replaces it.
            lookup: Script::new(
                r"
local g = redis.call('GET', KEYS[1]) or '0'
local t = redis.call('TYPE', KEYS[2]).ok
local v = false
if t == 'string' then v = redis.call('GET', KEYS[2]) elseif t ~= 'none' then v = '<' .. t .. '>' end
if v and v ~= ARGV[3] then return {g, 'found', v, redis.call('PTTL', KEYS[2])} end
if tonumber(ARGV[1]) > 0 and not redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[1]) then
  return {g, 'busy', '', 0}
end
return {g, 'claimed', '', 0}
",
            ),
            // KEYS: gen, entry, account index, claim.
            // ARGV: ticket, value or '', ttl ms, hash hex, '1' if indexed, sender.
            //
            // The index is a sorted set of hashes scored by their entry's
            // expiry (Redis time, ms): expired members are dropped on each
            // store, and the index expires with its last entry, so it holds
            // the account's live entries only, however long the account
            // stays active. (A set left by an earlier version is replaced:
            // its entries are unsigned, refused anyway.)
            store: Script::new(
                r"
if ARGV[2] ~= '' and (redis.call('GET', KEYS[1]) or '0') == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  if ARGV[5] == '1' then
    local now = redis.call('TIME')
    now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
    if redis.call('TYPE', KEYS[3]).ok ~= 'zset' then redis.call('DEL', KEYS[3]) end
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[4])
    local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
    redis.call('PEXPIRE', KEYS[3], math.max(1, tonumber(last[2]) - now))
  end
end
if redis.call('TYPE', KEYS[4]).ok == 'string' and redis.call('GET', KEYS[4]) == ARGV[6] then
  redis.call('DEL', KEYS[4])
end
return 1
",
            ),
            // KEYS: gen, entry. ARGV: channel, sender, hash hex, '1' if
            // refused, negative ttl ms, refusal value (sealed for this key).
            revoke_token: Script::new(
                r"
local g = redis.call('INCR', KEYS[1])
local kind = 't'
if ARGV[4] == '1' and tonumber(ARGV[5]) > 0 then
  redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[5])
  kind = 'r'
else
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' ' .. g .. ' ' .. kind .. ' ' .. ARGV[3])
return g
",
            ),
            // KEYS: gen, account index. ARGV: channel, sender, entry key
            // prefix, account id. Walks the live members only (a set left by
            // an earlier version: all of them).
            revoke_account: Script::new(
                r"
local g = redis.call('INCR', KEYS[1])
local t = redis.call('TYPE', KEYS[2]).ok
local members = {}
if t == 'zset' then
  local now = redis.call('TIME')
  now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  members = redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf')
elseif t == 'set' then
  members = redis.call('SMEMBERS', KEYS[2])
end
for _, h in ipairs(members) do
  redis.call('DEL', ARGV[3] .. h)
end
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' ' .. g .. ' a ' .. ARGV[4])
return g
",
            ),
        }
    }
}

/// What is stored in Redis under a token hash, as JSON inside a sealed
/// value (see [`State::seal`]).
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Entry {
    Account { account: Account },
    InvalidToken { subcode: Option<i64> },
    WrongApp,
}

impl Entry {
    fn from_answer(answer: &Verification) -> Option<Self> {
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

    fn into_answer(self) -> Verification {
        match self {
            Entry::Account { account } => Ok(Arc::new(account)),
            Entry::InvalidToken { subcode } => Err(Refusal::InvalidToken { subcode }),
            Entry::WrongApp => Err(Refusal::WrongApp),
        }
    }

    fn account_id(&self) -> Option<&str> {
        match self {
            Entry::Account { account } => Some(&account.id),
            _ => None,
        }
    }
}

/// What a stored value turned out to be.
enum Opened {
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

/// Milliseconds since the Unix epoch, by this machine's clock.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Everything the background thread and the callers share.
struct State {
    client: Client,
    /// The app whose entries the keys hold.
    app_id: String,
    /// HMAC-SHA256 keyed with the entry key (derived from the app secret):
    /// authenticates every stored value together with the key it is
    /// stored under. Cloned per use; never printed (`State` has no Debug).
    entry_mac: HmacSha256,
    /// `{namespace}:{app_id}`: names the tier in logs (nothing secret).
    prefix: String,
    keys: Keys,
    /// This instance's id in published messages (its own are not applied
    /// twice).
    sender: String,
    timeout: Duration,
    max_backoff: Duration,
    claim_wait: Duration,
    health_interval: Duration,
    max_pending: usize,
    scripts: Scripts,
    /// The command connection while the subscription is up; `None` while
    /// Redis is unreachable (calls then fail at once, without waiting).
    conn: Mutex<Option<MultiplexedConnection>>,
    sinks: Mutex<Vec<RevocationSink>>,
    pending: Mutex<VecDeque<Revocation>>,
    /// The revocation counter as last read from Redis, at a point where
    /// every revocation it counts had reached this instance (see
    /// [`State::session`]). Never taken from a message: anyone who can
    /// publish on the channel could write any number there.
    checkpoint: Mutex<Option<u64>>,
    /// A command found the connection broken: start over.
    kick: Notify,
    connected: AtomicBool,
    /// Whether a connection ever succeeded (the next one is a reconnect).
    ever_connected: AtomicBool,
    /// Whether the first refused entry was logged (later ones are counted).
    rejection_logged: AtomicBool,
    errors: AtomicU64,
    published: AtomicU64,
    received: AtomicU64,
    resyncs: AtomicU64,
    reconnects: AtomicU64,
    rejected: AtomicU64,
}

/// Why a call gave no answer.
enum Failure {
    NotConnected,
    Redis(::redis::RedisError),
    Timeout,
    Unreadable,
}

impl State {
    fn stats(&self) -> SharedStats {
        SharedStats {
            connected: self.connected.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            revocations_published: self.published.load(Ordering::Relaxed),
            revocations_received: self.received.load(Ordering::Relaxed),
            revocations_pending: self.pending.lock().len() as u64,
            resyncs: self.resyncs.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            rejected_entries: self.rejected.load(Ordering::Relaxed),
        }
    }

    /// The MAC of a stored value: the format version, the full Redis key
    /// it is stored under (length-prefixed), its expiry and the entry.
    fn entry_mac(&self, redis_key: &str, expires_ms: u64, json: &str) -> HmacSha256 {
        let mut mac = self.entry_mac.clone();
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
    fn seal(&self, redis_key: &str, entry: &Entry, ttl: Duration) -> Result<String, Failure> {
        let json = serde_json::to_string(entry).map_err(|_| Failure::Unreadable)?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let expires_ms = now_ms().saturating_add(ttl_ms);
        let tag = self
            .entry_mac(redis_key, expires_ms, &json)
            .finalize()
            .into_bytes();
        Ok(format!(
            "{ENTRY_VERSION}.{expires_ms}.{}.{json}",
            hex::encode(tag)
        ))
    }

    /// Checks a value read from `redis_key` (in constant time) and reads
    /// its entry.
    fn open(&self, redis_key: &str, value: &str) -> Opened {
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
            .entry_mac(redis_key, expires_ms, json)
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

    /// Counts a refused entry; logs the first one only (nothing of the
    /// token, the key or the URL).
    fn rejected_entry(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        if !self.rejection_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                tier = %self.prefix,
                "a shared Redis entry failed its authentication check (copied from another \
                 token's key, altered, or written with another app secret or by an older \
                 version): treated as a miss and verified upstream. Further ones are only \
                 counted (SharedStats::rejected_entries)"
            );
        } else {
            tracing::debug!(tier = %self.prefix, "shared Redis entry refused");
        }
    }

    fn conn(&self) -> Result<MultiplexedConnection, Failure> {
        self.conn.lock().clone().ok_or(Failure::NotConnected)
    }

    /// `work` bounded by the timeout.
    async fn bounded<T>(&self, work: impl Future<Output = RedisResult<T>>) -> Result<T, Failure> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Failure::Redis(e)),
            Err(_) => Err(Failure::Timeout),
        }
    }

    /// Counts and logs a failed call (not a missing connection: that is
    /// logged once, by the background task).
    fn failed(&self, what: &'static str, failure: &Failure) {
        match failure {
            Failure::NotConnected => {}
            Failure::Redis(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "Redis {what} failed");
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                    self.kick.notify_one();
                }
            }
            Failure::Timeout => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(timeout = ?self.timeout, "Redis {what} timed out");
            }
            Failure::Unreadable => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("Redis {what}: unreadable entry, ignored");
            }
        }
    }

    /// A shared answer, or a ticket to store one; waits (bounded) while
    /// another instance verifies the same token.
    ///
    /// A stored value that fails its check is a miss: this instance looks
    /// again past that value (so that it gets a ticket, and its upstream
    /// answer replaces the value), or, if the value keeps changing until
    /// the claim wait is over, verifies upstream and stores nothing.
    async fn lookup(self: Arc<Self>, hex: String) -> SharedLookup {
        let deadline = Instant::now() + self.claim_wait;
        let mut past: Option<String> = None;
        loop {
            match self.lookup_once(&hex, past.as_deref()).await {
                Ok(Looked::Found(answer, remaining)) => {
                    return SharedLookup::Found { answer, remaining }
                }
                Ok(Looked::Claimed(ticket)) => return SharedLookup::Missing { ticket },
                Ok(Looked::Busy(ticket)) if Instant::now() >= deadline => {
                    return SharedLookup::Missing { ticket }
                }
                Ok(Looked::Busy(_)) => tokio::time::sleep(CLAIM_POLL).await,
                Ok(Looked::Refused(value)) => {
                    if past.is_some() {
                        // Another refused value since the last look: not
                        // ours to wait for forever, nor to poll in a spin.
                        if Instant::now() >= deadline {
                            return SharedLookup::Unavailable;
                        }
                        tokio::time::sleep(CLAIM_POLL).await;
                    }
                    past = Some(value);
                }
                Err(failure) => {
                    self.failed("lookup", &failure);
                    return SharedLookup::Unavailable;
                }
            }
        }
    }

    async fn lookup_once(&self, hex: &str, past: Option<&str>) -> Result<Looked, Failure> {
        let mut conn = self.conn()?;
        let claim_ms = self.claim_wait.as_millis().min(u64::MAX as u128) as u64;
        let entry_key = format!("{}{hex}", self.keys.token);
        let mut call = self.scripts.lookup.prepare_invoke();
        call.key(&self.keys.gen)
            .key(&entry_key)
            .key(format!("{}{hex}", self.keys.claim))
            .arg(claim_ms)
            .arg(&self.sender)
            .arg(past.unwrap_or(""));
        let (gen, status, value, pttl): (String, String, String, i64) =
            self.bounded(call.invoke_async(&mut conn)).await?;
        let ticket = gen.parse::<u64>().map_err(|_| Failure::Unreadable)?;
        match status.as_str() {
            "claimed" => return Ok(Looked::Claimed(ticket)),
            "busy" => return Ok(Looked::Busy(ticket)),
            "found" => {}
            _ => return Err(Failure::Unreadable),
        }
        match self.open(&entry_key, &value) {
            Opened::Valid(entry, left) => {
                // The local copy lives no longer than the entry says, nor
                // than Redis keeps it (PTTL; -1, no expiry, is not ours:
                // the entry's own expiry then bounds it).
                let remaining = match u64::try_from(pttl) {
                    Ok(ms) => left.min(Duration::from_millis(ms)),
                    Err(_) => left,
                };
                if remaining.is_zero() {
                    return Ok(Looked::Refused(value));
                }
                Ok(Looked::Found(entry.into_answer(), remaining))
            }
            Opened::Stale => {
                tracing::debug!(tier = %self.prefix, "shared Redis entry past its expiry, ignored");
                Ok(Looked::Refused(value))
            }
            Opened::Forged => {
                self.rejected_entry();
                Ok(Looked::Refused(value))
            }
        }
    }

    async fn store(self: Arc<Self>, hex: String, ticket: u64, entry: Option<Entry>, ttl: Duration) {
        let result = async {
            let mut conn = self.conn()?;
            let entry_key = format!("{}{hex}", self.keys.token);
            let value = match &entry {
                Some(entry) => self.seal(&entry_key, entry, ttl)?,
                None => String::new(),
            };
            let account = entry.as_ref().and_then(Entry::account_id);
            let ttl_ms = ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
            let mut call = self.scripts.store.prepare_invoke();
            call.key(&self.keys.gen)
                .key(&entry_key)
                .key(format!("{}{}", self.keys.account, account.unwrap_or("")))
                .key(format!("{}{hex}", self.keys.claim))
                .arg(ticket.to_string())
                .arg(value)
                .arg(ttl_ms)
                .arg(&hex)
                .arg(if account.is_some() { "1" } else { "0" })
                .arg(&self.sender);
            self.bounded(call.invoke_async::<i64>(&mut conn)).await
        }
        .await;
        if let Err(failure) = result {
            self.failed("store", &failure);
        }
    }

    /// Publishes one revocation; `false` if it could not be (to be queued).
    async fn publish(&self, revocation: &Revocation) -> bool {
        let result = async {
            let mut conn = self.conn()?;
            let mut call;
            match revocation {
                Revocation::Token { hash, refused_for } => {
                    let hex = hex::encode(hash);
                    let negative_ttl = refused_for.unwrap_or(Duration::ZERO);
                    let entry_key = format!("{}{hex}", self.keys.token);
                    let tombstone = self.seal(
                        &entry_key,
                        &Entry::InvalidToken { subcode: None },
                        negative_ttl,
                    )?;
                    call = self.scripts.revoke_token.prepare_invoke();
                    call.key(&self.keys.gen)
                        .key(entry_key)
                        .arg(&self.keys.channel)
                        .arg(&self.sender)
                        .arg(hex)
                        .arg(if refused_for.is_some() { "1" } else { "0" })
                        .arg(negative_ttl.as_millis().min(u64::MAX as u128) as u64)
                        .arg(tombstone);
                }
                Revocation::Account { id } => {
                    call = self.scripts.revoke_account.prepare_invoke();
                    call.key(&self.keys.gen)
                        .key(format!("{}{id}", self.keys.account))
                        .arg(&self.keys.channel)
                        .arg(&self.sender)
                        .arg(&self.keys.token)
                        .arg(id);
                }
            }
            self.bounded(call.invoke_async::<u64>(&mut conn)).await
        }
        .await;
        match result {
            Ok(_) => {
                self.published.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(failure) => {
                self.failed("revocation publish", &failure);
                false
            }
        }
    }

    fn enqueue(&self, revocation: Revocation) {
        let mut pending = self.pending.lock();
        if pending.len() >= self.max_pending {
            pending.pop_front();
            tracing::warn!(
                max = self.max_pending,
                "Redis unreachable: too many revocations waiting, the oldest is dropped \
                 (other instances keep it until their TTL)"
            );
        }
        pending.push_back(revocation);
    }

    /// Publishes the queued revocations; `false` at the first failure.
    async fn flush_pending(&self) -> bool {
        loop {
            let Some(next) = self.pending.lock().pop_front() else {
                return true;
            };
            if !self.publish(&next).await {
                self.pending.lock().push_front(next);
                return false;
            }
        }
    }

    /// Applies `f` to every live cache, forgetting the dead ones.
    fn each_cache(&self, f: impl Fn(&RevocationSink) -> bool) {
        self.sinks.lock().retain(|sink| f(sink));
    }

    fn resync(&self, why: &'static str) {
        self.resyncs.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("{why}: revocations may have been missed, local cache emptied");
        self.each_cache(RevocationSink::invalidate_all);
    }

    /// The background task: connect, subscribe, apply revocations; on any
    /// loss, back off and start over. Ends when the tier is dropped.
    async fn run(self: Arc<Self>, mut stop: oneshot::Receiver<()>) {
        let mut backoff = MIN_BACKOFF;
        let mut failures = 0u64;
        loop {
            let session = async {
                match self.connect(failures > 0).await {
                    Ok((sink, stream)) => {
                        backoff = MIN_BACKOFF;
                        failures = 0;
                        self.session(sink, stream).await;
                    }
                    Err(failure) => {
                        failures += 1;
                        if failures == 1 {
                            self.failed("connection", &failure);
                        } else {
                            self.errors.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(attempt = failures, "Redis still unreachable");
                        }
                    }
                }
            };
            tokio::select! {
                _ = &mut stop => break,
                () = session => {}
            }
            if self.connected.swap(false, Ordering::SeqCst) {
                tracing::warn!("Redis connection lost: serving from the local cache, reconnecting");
            }
            *self.conn.lock() = None;
            tokio::select! {
                _ = &mut stop => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.max_backoff);
        }
        self.connected.store(false, Ordering::SeqCst);
        *self.conn.lock() = None;
    }

    /// Opens both connections, subscribes, checks for missed revocations
    /// and publishes the queued ones.
    async fn connect(&self, after_failures: bool) -> Result<(PubSubSink, PubSubStream), Failure> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let mut conn = self
            .bounded(
                self.client
                    .get_multiplexed_async_connection_with_config(&config),
            )
            .await?;
        let (mut sink, stream) = self.bounded(self.client.get_async_pubsub()).await?.split();
        self.bounded(sink.subscribe(&self.keys.channel)).await?;
        // Read after subscribing: a revocation published in between is
        // both counted here and received.
        let gen = self.read_gen(&mut conn).await?;
        let previous = self.checkpoint.lock().replace(gen);
        let missed = match previous {
            // Any revocation since the last checkpoint may have been missed
            // (the ones received since cannot be told from forged ones).
            Some(previous) => previous != gen,
            // Served without Redis before this first connection.
            None => after_failures,
        };
        if missed {
            self.resync("Redis reconnected");
        }
        // A kick left by a failure on the previous connection is stale.
        let _ = self.kick.notified().now_or_never();
        *self.conn.lock() = Some(conn);
        self.connected.store(true, Ordering::SeqCst);
        if self.ever_connected.swap(true, Ordering::SeqCst) {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(channel = %self.keys.channel, "Redis connected");
        self.flush_pending().await;
        Ok((sink, stream))
    }

    /// The revocation counter in Redis (0 if there is none yet).
    async fn read_gen(&self, conn: &mut MultiplexedConnection) -> Result<u64, Failure> {
        let gen: Option<u64> = self
            .bounded(::redis::cmd("GET").arg(&self.keys.gen).query_async(conn))
            .await?;
        Ok(gen.unwrap_or(0))
    }

    /// Applies revocations until the subscription ends or fails its
    /// liveness check; then applies what it had already received.
    async fn session(&self, mut sink: PubSubSink, mut stream: PubSubStream) {
        self.listen(&mut sink, &mut stream).await;
        // Messages already read from the socket (at least every one a
        // checkpoint counted) are applied before the stream is dropped.
        while let Some(Some(message)) = stream.next().now_or_never() {
            self.received_message(message.get_payload_bytes());
        }
    }

    async fn listen(&self, sink: &mut PubSubSink, stream: &mut PubSubStream) {
        let mut health = tokio::time::interval(self.health_interval);
        health.tick().await; // the first tick is immediate
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => self.received_message(message.get_payload_bytes()),
                    None => return,
                },
                _ = health.tick() => {
                    if !self.health_check(sink).await {
                        return;
                    }
                    if !self.pending.lock().is_empty() && !self.flush_pending().await {
                        return;
                    }
                }
                () = self.kick.notified() => return,
            }
        }
    }

    /// Reads the revocation counter, then pings the subscription. Redis
    /// answers the `PING` after it has written out every message published
    /// before it, and the client hands messages to the stream in the order
    /// they arrive: once the answer is here, every revocation the counter
    /// counts has reached this instance, and the counter becomes the
    /// checkpoint a reconnection compares with. `false` if either failed.
    async fn health_check(&self, sink: &mut PubSubSink) -> bool {
        let gen = match self.conn() {
            Ok(mut conn) => self.read_gen(&mut conn).await,
            Err(failure) => Err(failure),
        };
        let gen = match gen {
            Ok(gen) => gen,
            Err(failure) => {
                self.failed("liveness check", &failure);
                return false;
            }
        };
        match self.bounded(sink.ping::<Value>()).await {
            Ok(answer) if is_pong(&answer) => {
                *self.checkpoint.lock() = Some(gen);
                true
            }
            Ok(_) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("Redis liveness check: unexpected answer to PING, reconnecting");
                false
            }
            Err(failure) => {
                self.failed("liveness check", &failure);
                false
            }
        }
    }

    /// `"{sender} {gen} {t|r|a} {hash hex | account id}"`.
    ///
    /// Anyone who can publish on the channel can send one: a message is
    /// only ever a reason to forget (evict a token hash or an account's
    /// tokens here; the next request asks Redis or Account Kit again).
    /// Nothing in it is trusted beyond that: not its sender, not its
    /// counter (missed revocations are found by comparing Redis's counter
    /// with the checkpoint on reconnection, see [`State::health_check`]),
    /// and a "refused" kind caches no refusal here.
    fn received_message(&self, payload: &[u8]) {
        let Some((sender, _gen, kind, subject)) = parse_message(payload) else {
            tracing::debug!("unreadable message on the revocation channel, ignored");
            return;
        };
        if sender == self.sender {
            // Ours. Applied locally already, but applied again: a queued
            // revocation published late (Redis was slow or away) must also
            // clear what this instance re-cached from the shared entries
            // meanwhile. A token refusal is skipped: its local negative
            // entry says more than an eviction would.
            if kind != "r" {
                self.apply(kind, subject);
            }
            return;
        }
        self.received.fetch_add(1, Ordering::Relaxed);
        self.apply(kind, subject);
    }

    fn apply(&self, kind: &str, subject: &str) {
        match kind {
            "t" | "r" => {
                let mut hash: TokenHash = [0; 32];
                if hex::decode_to_slice(subject, &mut hash).is_err() {
                    tracing::debug!("unreadable token hash on the revocation channel");
                    return;
                }
                self.each_cache(|cache| cache.invalidate_hash(&hash));
            }
            "a" => self.each_cache(|cache| cache.invalidate_account(subject)),
            _ => tracing::debug!("unknown revocation kind, ignored"),
        }
    }
}

enum Looked {
    Found(Verification, Duration),
    /// Nothing stored; this instance holds the claim.
    Claimed(u64),
    /// Nothing stored; another instance is verifying it.
    Busy(u64),
    /// A value this instance does not accept (forged or stale): look again
    /// past it.
    Refused(String),
}

fn parse_message(payload: &[u8]) -> Option<(&str, u64, &str, &str)> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(4, ' ');
    let sender = parts.next()?;
    let gen = parts.next()?.parse().ok()?;
    let kind = parts.next()?;
    let subject = parts.next()?;
    Some((sender, gen, kind, subject))
}

/// Whether `answer` is Redis's answer to `PING`: `PONG`, or, on a RESP2
/// connection in subscribed mode, `["pong", ""]`.
fn is_pong(answer: &Value) -> bool {
    let pong = |bytes: &[u8]| bytes.eq_ignore_ascii_case(b"pong");
    match answer {
        Value::SimpleString(s) => pong(s.as_bytes()),
        Value::BulkString(b) => pong(b),
        Value::Array(items) => matches!(items.first(), Some(Value::BulkString(b)) if pong(b)),
        _ => false,
    }
}

/// A process-unique id, without a random-number dependency.
fn instance_id() -> String {
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

    fn config() -> Config {
        Config::builder("1234", "the-app-secret-0123456789")
            .build()
            .unwrap()
    }

    /// A tier's state without a thread or a connection.
    fn state_for(config: &Config) -> State {
        let b = RedisTier::builder("redis://127.0.0.1:1/", config);
        State {
            client: Client::open("redis://127.0.0.1:1/").unwrap(),
            app_id: b.app_id,
            entry_mac: b.entry_mac,
            prefix: "accountkit:1234".into(),
            keys: Keys {
                gen: "accountkit:1234:gen".into(),
                token: "accountkit:1234:t:".into(),
                account: "accountkit:1234:a:".into(),
                claim: "accountkit:1234:c:".into(),
                channel: "accountkit:1234:revocations".into(),
            },
            sender: instance_id(),
            timeout: DEFAULT_TIMEOUT,
            max_backoff: DEFAULT_MAX_BACKOFF,
            claim_wait: DEFAULT_CLAIM_WAIT,
            health_interval: DEFAULT_HEALTH_INTERVAL,
            max_pending: DEFAULT_MAX_PENDING,
            scripts: Scripts::new(),
            conn: Mutex::new(None),
            sinks: Mutex::new(Vec::new()),
            pending: Mutex::new(VecDeque::new()),
            checkpoint: Mutex::new(None),
            kick: Notify::new(),
            connected: AtomicBool::new(false),
            ever_connected: AtomicBool::new(false),
            rejection_logged: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            published: AtomicU64::new(0),
            received: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
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
        let config = config();
        let state = state_for(&config);
        let account = Account::new("1000000000000001").with_application("1234");
        for answer in [
            Ok(Arc::new(account)),
            Err(Refusal::InvalidToken { subcode: Some(467) }),
            Err(Refusal::WrongApp),
        ] {
            let entry = Entry::from_answer(&answer).unwrap();
            let sealed = state.seal(KEY_A, &entry, MINUTE).ok().unwrap();
            assert!(sealed.starts_with("v1."));
            assert!(!sealed.contains("the-app-secret"));
            let Opened::Valid(back, left) = state.open(KEY_A, &sealed) else {
                panic!("own entry refused");
            };
            assert!(left <= MINUTE && left > MINUTE - Duration::from_secs(5));
            assert_eq!(format!("{:?}", back.into_answer()), format!("{answer:?}"));
        }
        let unavailable: Verification = Err(Refusal::Unavailable(Arc::new(
            crate::Error::InvalidAccountId,
        )));
        assert!(Entry::from_answer(&unavailable).is_none());
        assert_eq!(state.rejected.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn an_entry_is_valid_only_under_its_key_unaltered_and_with_this_apps_key() {
        let config = config();
        let state = state_for(&config);
        let sealed = state.seal(KEY_A, &account(), MINUTE).ok().unwrap();
        let forged = |value: &str, key: &str| matches!(state.open(key, value), Opened::Forged);
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
            state_for(&other_secret).open(KEY_A, &sealed),
            Opened::Forged
        ));
        let other_app = Config::builder("1235", "the-app-secret-0123456789")
            .build()
            .unwrap();
        assert!(matches!(
            state_for(&other_app).open(KEY_A, &sealed),
            Opened::Forged
        ));
    }

    #[test]
    fn an_expired_entry_is_stale_not_forged() {
        let config = config();
        let state = state_for(&config);
        let sealed = state.seal(KEY_A, &account(), Duration::ZERO).ok().unwrap();
        assert!(matches!(state.open(KEY_A, &sealed), Opened::Stale));
    }

    #[test]
    fn the_first_refused_entry_is_logged_the_others_counted() {
        let config = config();
        let state = state_for(&config);
        for _ in 0..3 {
            state.rejected_entry();
        }
        assert_eq!(state.stats().rejected_entries, 3);
        assert!(state.rejection_logged.load(Ordering::Relaxed));
    }

    #[test]
    fn pong_in_every_form_redis_sends_it() {
        // RESP2 in subscribed mode (what the subscription gets).
        assert!(is_pong(&Value::Array(vec![
            Value::BulkString(b"pong".to_vec()),
            Value::BulkString(Vec::new()),
        ])));
        // RESP2 outside it, and RESP3.
        assert!(is_pong(&Value::SimpleString("PONG".into())));
        assert!(is_pong(&Value::BulkString(b"PONG".to_vec())));
        assert!(!is_pong(&Value::SimpleString("OK".into())));
        assert!(!is_pong(&Value::Okay));
        assert!(!is_pong(&Value::Nil));
        assert!(!is_pong(&Value::Array(vec![Value::BulkString(
            b"message".to_vec()
        )])));
    }

    #[test]
    fn bad_settings_are_refused_without_echoing_the_url_or_the_secret() {
        let config = config();
        let e = RedisTier::builder("http://:hunter2@x", &config)
            .build()
            .unwrap_err();
        assert!(matches!(e, RedisTierError::InvalidUrl));
        assert!(!e.to_string().contains("hunter2"));
        let e = RedisTier::builder("redis://127.0.0.1/", &config)
            .namespace("a b")
            .build()
            .unwrap_err();
        assert!(matches!(e, RedisTierError::InvalidNamespace));
        let b = RedisTier::builder("redis://:hunter2@127.0.0.1/", &config);
        let shown = format!("{b:?}");
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("the-app-secret"));
        let key = config.derive_key(ENTRY_KEY_PURPOSE);
        assert!(!shown.contains(&hex::encode(key.expose_secret())));
    }

    #[test]
    fn ids_differ() {
        assert_ne!(instance_id(), instance_id());
    }
}
