//! Several instances as one cache, through Redis: a [`SharedTier`] that
//! shares verified tokens and broadcasts revocations.
//!
//! ```no_run
//! use actix_accountkit::{redis::RedisTier, AccountKit, Config};
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
//! only. In a cluster, the nodes' `MOVED` answers say where the tier
//! connects, with its credentials (over TLS, to a server whose
//! certificate must still check out).
//!
//! # When Redis is unreachable
//!
//! Every call is bounded by [`RedisTierBuilder::timeout`]. While Redis is
//! down (or slow), instances serve from their local caches and ask Account
//! Kit on a miss; [`SharedStats::connected`] is `false` and
//! [`SharedStats::errors`] counts the failures, logged with `tracing` (no
//! token, no URL). A background task reconnects with exponential backoff up to
//! [`RedisTierBuilder::max_backoff`] ([`SharedStats::reconnects`]).
//!
//! A Redis that hangs (stopped, overloaded, a connection that went silent)
//! refuses nothing: each call would wait out the timeout. The tier's
//! breaker ([`RedisTierBuilder::breaker`]) opens after two consecutive
//! timeouts ([`SharedStats::timeouts`]): requests then skip Redis at once
//! ([`SharedStats::skipped`]) and the connections are replaced; after a
//! back-off (500 ms, doubling up to 5 s while Redis stays hung) one request
//! probes Redis, and an answer closes the breaker. A hung Redis thus costs
//! two timeouts, then one per probe, not one per cache miss
//! ([`SharedStats::breaker`] says closed, open or half-open).
//!
//! A verification that claimed a token (the others wait for its answer)
//! and is then dropped before it stores anything (its flight deadline
//! passed) releases the claim at once ([`SharedTier::release`]).
//! Revocations made meanwhile are queued and published once Redis is back.
//! An instance that may have missed revocations (Redis's revocation counter
//! moved since the instance's last checkpoint, taken at each liveness check
//! once every revocation it counts has been received) empties its local
//! cache of verified accounts when it reconnects
//! ([`SharedStats::resyncs`]); refusals stay, since no revocation makes a
//! token valid. While revocations made on an instance wait to be
//! published, that instance reads no entry from Redis (those tokens' entries
//! may still be there): its misses go to Account Kit until the queue is out.
//!
//! # Threads
//!
//! The Redis connections live on a small background thread with its own
//! Tokio runtime (`accountkit-redis`), so the tier works from any executor
//! and outlives any one actix worker; it stops when the last [`RedisTier`]
//! clone is dropped.
//!
//! # TLS
//!
//! A `rediss://` URL connects over TLS (rustls; no system OpenSSL). The
//! server's certificate must name the URL's host and chain to Mozilla's
//! roots (compiled in), or to the CA given to
//! [`RedisTierBuilder::ca_certificate_pem`] (a private CA: then to it
//! only); [`RedisTierBuilder::client_certificate_pem`] adds a client
//! certificate for servers that ask for one. A server that cannot prove
//! itself gets no connection, and no plaintext: the handshake failure is
//! logged (rustls names the reason, `UnknownIssuer`…), the tier stays
//! disconnected and requests go to Account Kit. TLS settings on a
//! `redis://` URL, or a PEM without a certificate, are refused by
//! [`build`](RedisTierBuilder::build).
//!
//! # Redis Cluster
//!
//! [`RedisTier::cluster_builder`] takes a cluster's node URLs (one is
//! enough; give a few, so that one being down does not matter). Every key
//! of the tier shares one hash tag, `{namespace:app_id}` (so
//! `{accountkit:1234}:t:{hash}`…): each Lua script, whatever keys it
//! touches, runs in one slot, and the revocation counter, which every
//! store is checked against and every revocation moves, stays one key.
//! One master therefore holds the tier's keys: the cluster brings
//! failover, not sharding (the tier's load is a few commands per cache
//! miss, far from what one Redis node serves).
//!
//! The tier finds that master by reading the revocation counter on the
//! nodes it was given, in turn, following the `MOVED` answer of a node
//! that does not serve the slot; commands and the subscription both go to
//! the master. When it stops being the master (killed, failed over,
//! resharded) the next call or liveness check fails (a broken connection,
//! `MOVED`, `CLUSTERDOWN`, `READONLY`): the tier reconnects, finds the new
//! master the same way, compares its revocation counter with its
//! checkpoint (resync if it moved) and publishes what it queued
//! meanwhile.
//!
//! **Classic pub/sub, on the master of the slot, not sharded pub/sub.**
//! Classic `PUBLISH` reaches every node's subscribers, so nothing is lost
//! to a subscriber elsewhere; the tier subscribes on the master anyway,
//! because the liveness check that makes missed revocations detectable
//! (read the counter, then `PING` the subscription: every message the
//! counter counts was written out before the answer) is only sound on the
//! server that ran the scripts, a subscriber on another node gets the
//! messages later, over the cluster bus. Sharded pub/sub (`SPUBLISH`,
//! Redis 7) would spare the other nodes a copy of each message, which
//! revocations (logouts: rare, small) do not need; it would tie the tier
//! to Redis 7, and its subscribers are unsubscribed when the slot moves
//! (a notification the redis crate's `PubSub` does not surface: it has no
//! `SSUBSCRIBE`).
//!
//! The revocation counter moves by a random step (1 to 2^32 - 1), not by
//! one: a failover that lost the last writes rolls it back, and a counter
//! that moves again from there lands on an instance's checkpoint only by
//! chance (2^-32), so missed revocations are still detected.

//!
//! [`SharedTier`]: crate::shared::SharedTier
//! [`Config`]: crate::config::Config
//! [`SharedStats::rejected_entries`]: crate::shared::SharedStats::rejected_entries
//! [`SharedStats::connected`]: crate::shared::SharedStats::connected
//! [`SharedStats::errors`]: crate::shared::SharedStats::errors
//! [`SharedStats::reconnects`]: crate::shared::SharedStats::reconnects
//! [`SharedStats::resyncs`]: crate::shared::SharedStats::resyncs
//! [`SharedStats::timeouts`]: crate::shared::SharedStats::timeouts
//! [`SharedStats::skipped`]: crate::shared::SharedStats::skipped
//! [`SharedStats::breaker`]: crate::shared::SharedStats::breaker
//! [`SharedTier::release`]: crate::shared::SharedTier::release
//! [`RedisTier::cluster_builder`]: RedisTier::cluster_builder

// One concern a module, each using only the ones listed before it:
// error      why a tier cannot be built (the public error)
// keys       the key layout, in one place
// messages   the revocation messages' wire format, and the instance ids
// entry      the shared entries and their seal (`v1.{expiry}.{mac}.{json}`)
// scripts    the Lua scripts (`scripts/*.lua`) and the lookup's answer
// breaker    when calls made for requests skip Redis (after timeouts)
// state      what callers and the background thread share; bounds, failures
// home       where the keys live: the server, or the master of the slot
// calls      lookup (and claims), store, publish (and its queue)
// connection the background thread: connect, subscribe, liveness, resync
// tier       `RedisTier` and its `SharedTier` impl
// tls        `rediss://`: the CA and client certificate, checked
// builder    `RedisTier::builder` → `RedisTierBuilder` → `build()`
// env        `RedisTier::from_env`: the ACCOUNTKIT_REDIS_* variables
mod breaker;
mod builder;
mod calls;
mod connection;
mod entry;
mod env;
mod error;
mod home;
mod keys;
mod messages;
mod scripts;
mod state;
mod tier;
mod tls;

pub use builder::{
    RedisTierBuilder, DEFAULT_BREAKER_BACKOFF, DEFAULT_BREAKER_MAX_BACKOFF,
    DEFAULT_BREAKER_THRESHOLD, DEFAULT_CLAIM_WAIT, DEFAULT_HEALTH_INTERVAL, DEFAULT_MAX_BACKOFF,
    DEFAULT_MAX_PENDING, DEFAULT_NAMESPACE, DEFAULT_TIMEOUT, LONGEST_WAIT,
};
pub use env::{ENV_REDIS_CA_CERT, ENV_REDIS_CLUSTER, ENV_REDIS_URL};
pub use error::RedisTierError;
pub use tier::RedisTier;
