//! What the callers and the background thread share: the settings, the
//! connection of the moment, the queue of revocations, the counters; how a
//! call is bounded, and how its failure is counted and logged.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{Client, ConnectionInfo, ErrorKind, RedisResult, ServerErrorKind};
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::breaker::{Admission, Breaker, Outcome, Transition};
use super::entry::Sealer;
use super::keys::Keys;
use super::messages::instance_id;
use super::scripts::Scripts;
use crate::shared::{Revocation, RevocationSink, SharedStats};

/// The builder's settings (see its setters).
#[derive(Clone, Copy, Debug)]
pub(super) struct Settings {
    pub(super) timeout: Duration,
    pub(super) max_backoff: Duration,
    pub(super) claim_wait: Duration,
    pub(super) health_interval: Duration,
    pub(super) max_pending: usize,
    pub(super) breaker_threshold: u32,
    pub(super) breaker_backoff: Duration,
    pub(super) breaker_max_backoff: Duration,
}

/// The counters behind [`SharedStats`].
#[derive(Default)]
pub(super) struct Counters {
    pub(super) errors: AtomicU64,
    pub(super) published: AtomicU64,
    pub(super) received: AtomicU64,
    pub(super) resyncs: AtomicU64,
    pub(super) reconnects: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) timeouts: AtomicU64,
    pub(super) skipped: AtomicU64,
    pub(super) trips: AtomicU64,
}

/// Where the tier's keys live (see `home`).
pub(super) enum Target {
    /// One server (boxed: a client is far larger than a vector).
    Single(Box<Client>),
    /// A cluster, through these nodes (at least one): the keys live on
    /// the master of the tier's slot.
    Cluster(Vec<ConnectionInfo>),
}

/// Everything the background thread and the callers share.
pub(super) struct State {
    pub(super) target: Target,
    /// In a cluster: the node to ask first for the master (the last one
    /// that answered).
    pub(super) next_node: AtomicUsize,
    /// The app whose entries the keys hold.
    pub(super) app_id: String,
    pub(super) sealer: Sealer,
    pub(super) keys: Keys,
    /// This instance's id in published messages (its own are not applied
    /// twice) and in its claims.
    pub(super) sender: String,
    pub(super) settings: Settings,
    pub(super) scripts: Scripts,
    /// The command connection while the subscription is up; `None` while
    /// Redis is unreachable (calls then fail at once, without waiting).
    pub(super) conn: Mutex<Option<MultiplexedConnection>>,
    /// The caches revocations received are delivered to.
    pub(super) sinks: Mutex<Vec<RevocationSink>>,
    /// Revocations made while Redis was unreachable, to publish.
    pub(super) pending: Mutex<VecDeque<Revocation>>,
    /// The revocation counter as last read from Redis, at a point where
    /// every revocation it counts had reached this instance (see the
    /// connection's liveness check). Never taken from a message: anyone
    /// who can publish on the channel could write any number there.
    pub(super) checkpoint: Mutex<Option<u64>>,
    /// A command found the connection broken: start over.
    pub(super) kick: Notify,
    /// Skips Redis after consecutive timeouts (see `breaker`).
    pub(super) breaker: Breaker,
    pub(super) connected: AtomicBool,
    /// Whether a connection ever succeeded (the next one is a reconnect).
    pub(super) ever_connected: AtomicBool,
    /// Whether the first refused entry was logged (later ones are counted).
    rejection_logged: AtomicBool,
    pub(super) counters: Counters,
}

/// Why a call gave no answer.
pub(super) enum Failure {
    NotConnected,
    Redis(::redis::RedisError),
    Timeout,
    Unreadable,
}

impl Failure {
    /// What it says of Redis, for the breaker.
    pub(super) fn outcome(&self) -> Outcome {
        match self {
            Failure::Timeout => Outcome::TimedOut,
            Failure::NotConnected => Outcome::NoAnswer,
            Failure::Redis(e) if broken(e) => Outcome::NoAnswer,
            // An error reply, or a reply this tier cannot read: Redis
            // answered.
            Failure::Redis(_) | Failure::Unreadable => Outcome::Answered,
        }
    }
}

/// Whether `e` means the connection must be replaced: it broke, or (in a
/// cluster) the node no longer serves the tier's slot, or the cluster is
/// failing over: look for the master again.
fn broken(e: &::redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
}

impl State {
    /// A tier's state, not connected; the background task connects it.
    pub(super) fn new(
        target: Target,
        app_id: String,
        keys: Keys,
        sealer: Sealer,
        settings: Settings,
    ) -> Self {
        Self {
            target,
            next_node: AtomicUsize::new(0),
            app_id,
            sealer,
            keys,
            sender: instance_id(),
            settings,
            scripts: Scripts::new(),
            conn: Mutex::new(None),
            sinks: Mutex::new(Vec::new()),
            pending: Mutex::new(VecDeque::new()),
            checkpoint: Mutex::new(None),
            kick: Notify::new(),
            breaker: Breaker::new(
                settings.breaker_threshold,
                settings.breaker_backoff,
                settings.breaker_max_backoff,
            ),
            connected: AtomicBool::new(false),
            ever_connected: AtomicBool::new(false),
            rejection_logged: AtomicBool::new(false),
            counters: Counters::default(),
        }
    }

    pub(super) fn stats(&self) -> SharedStats {
        let c = &self.counters;
        SharedStats {
            connected: self.connected.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            revocations_published: c.published.load(Ordering::Relaxed),
            revocations_received: c.received.load(Ordering::Relaxed),
            revocations_pending: self.pending.lock().len() as u64,
            resyncs: c.resyncs.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            rejected_entries: c.rejected.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
            breaker_trips: c.trips.load(Ordering::Relaxed),
            breaker: self.breaker.state(),
        }
    }

    /// Whether a call made for a request may go to Redis (counted when
    /// skipped).
    pub(super) fn admit(&self) -> Option<Admission> {
        match self.breaker.admit() {
            Admission::Skip => {
                self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                None
            }
            admitted => Some(admitted),
        }
    }

    /// Records what became of an admitted call; opening the breaker
    /// replaces the connections (a command connection can hang while the
    /// subscription still passes its liveness checks).
    pub(super) fn settle(&self, admission: Admission, outcome: Outcome) {
        if outcome == Outcome::TimedOut {
            self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
        }
        match self.breaker.settle(admission, outcome) {
            Transition::Opened => {
                self.counters.trips.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    tier = %self.keys.prefix(),
                    "Redis timed out repeatedly: skipped (local cache and Account Kit only) \
                     until a probe finds it answering; reconnecting"
                );
                self.kick.notify_one();
            }
            Transition::Closed => {
                tracing::info!(tier = %self.keys.prefix(), "Redis answers again: breaker closed");
            }
            Transition::None => {}
        }
    }

    /// Counts a refused entry; logs the first one only (nothing of the
    /// token, the key or the URL).
    pub(super) fn rejected_entry(&self) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        if !self.rejection_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                tier = %self.keys.prefix(),
                "a shared Redis entry failed its authentication check (copied from another \
                 token's key, altered, or written with another app secret or by an older \
                 version): treated as a miss and verified upstream. Further ones are only \
                 counted (SharedStats::rejected_entries)"
            );
        } else {
            tracing::debug!(tier = %self.keys.prefix(), "shared Redis entry refused");
        }
    }

    pub(super) fn conn(&self) -> Result<MultiplexedConnection, Failure> {
        self.conn.lock().clone().ok_or(Failure::NotConnected)
    }

    /// `work` bounded by the timeout.
    pub(super) async fn bounded<T>(
        &self,
        work: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.settings.timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            // The client's own response timeout (set to the same bound).
            Ok(Err(e)) if e.is_timeout() => Err(Failure::Timeout),
            Ok(Err(e)) => Err(Failure::Redis(e)),
            Err(_) => Err(Failure::Timeout),
        }
    }

    /// Counts and logs a failed call (not a missing connection: that is
    /// logged once, by the background task).
    pub(super) fn failed(&self, what: &'static str, failure: &Failure) {
        match failure {
            Failure::NotConnected => {}
            Failure::Redis(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "Redis {what} failed");
                if broken(e) {
                    self.kick.notify_one();
                }
            }
            Failure::Timeout => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(timeout = ?self.settings.timeout, "Redis {what} timed out");
            }
            Failure::Unreadable => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("Redis {what}: unreadable entry, ignored");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::RedisTier;
    use crate::config::Config;

    #[test]
    fn the_first_refused_entry_is_logged_the_others_counted() {
        let config = Config::builder("1234", "the-app-secret-0123456789")
            .build()
            .unwrap();
        let state = RedisTier::builder("redis://127.0.0.1:1/", &config)
            .into_state()
            .unwrap();
        for _ in 0..3 {
            state.rejected_entry();
        }
        assert_eq!(state.stats().rejected_entries, 3);
        assert!(state
            .rejection_logged
            .load(std::sync::atomic::Ordering::Relaxed));
    }
}
