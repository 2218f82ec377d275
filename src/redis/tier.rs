//! [`RedisTier`]: the handle the cache holds, and its [`SharedTier`] impl,
//! which runs every call on the background runtime, bounded.
//! (`RedisTier::builder` is in `builder`.)

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};

use super::breaker::{Admission, Outcome};
use super::connection::Background;
use super::entry::Entry;
use super::state::State;
use crate::hash::TokenHash;
use crate::shared::{Revocation, RevocationSink, SharedLookup, SharedStats, SharedTier};
use crate::verify::Verification;

/// The Redis [`SharedTier`]: shared verified tokens and revocation
/// broadcast. Cheap to clone; clones share the connections. See the
/// [module docs](super).
///
/// ```no_run
/// use actix_accountkit::{redis::RedisTier, Config};
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
    /// Dropped with the last clone: the background thread then stops.
    background: Background,
}

impl fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = &self.inner.state;
        f.debug_struct("RedisTier")
            .field("channel", &state.keys.channel())
            .field("connected", &state.connected.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RedisTier {
    /// The tier of `state`, whose connections `background` runs.
    pub(super) fn new(state: Arc<State>, background: Background) -> Self {
        Self {
            inner: Arc::new(TierHandle { state, background }),
        }
    }

    /// The counters (also in `CachedVerifier::stats().shared`).
    pub fn stats(&self) -> SharedStats {
        self.inner.state.stats()
    }

    /// A call made for a request, if the breaker admits it (`None` at
    /// once if not): `work` runs on the background runtime, where its
    /// outcome is settled with the breaker even if the caller stops
    /// waiting.
    async fn call<T: Send + 'static>(
        &self,
        work: impl Future<Output = (T, Outcome)> + Send + 'static,
    ) -> Option<T> {
        let settle = self.settler()?;
        self.on_background(async move {
            let (value, outcome) = work.await;
            settle.settle(outcome);
            value
        })
        .await
    }

    /// An admission by the breaker, settled once (`None`: skip Redis).
    fn settler(&self) -> Option<Settle> {
        let state = self.inner.state.clone();
        let admission = state.admit()?;
        Some(Settle {
            state,
            admission,
            settled: false,
        })
    }

    /// Runs `work` on the background runtime (where the connections live);
    /// `None` if that runtime is gone.
    async fn on_background<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        // Bounded on this side too: the work's own timeouts start only when
        // the background thread gets to it.
        let settings = &self.inner.state.settings;
        let limit = settings.timeout + settings.claim_wait + settings.timeout;
        let task = self.inner.background.spawn(work);
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
            // Revocations made here that Redis has not been told of yet: its
            // entries may still hold those tokens, so none is read until
            // they are out (Account Kit answers meanwhile).
            if state.has_pending() {
                return SharedLookup::Unavailable;
            }
            self.call(state.lookup(hex))
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
            let work = async move { ((), state.store(hex, ticket, entry, ttl).await) };
            self.call(work).await;
        }
        .boxed()
    }

    fn publish<'a>(&'a self, revocation: &'a Revocation) -> BoxFuture<'a, ()> {
        let state = self.inner.state.clone();
        let revocation = revocation.clone();
        async move {
            let background = state.clone();
            let queued = revocation.clone();
            let work = async move {
                match background.publish(&revocation).await {
                    Ok(()) => (true, Outcome::Answered),
                    Err(failure) => (false, failure.outcome()),
                }
            };
            if !self.call(work).await.unwrap_or(false) {
                state.enqueue(queued);
            }
        }
        .boxed()
    }

    fn stats(&self) -> SharedStats {
        self.inner.state.stats()
    }

    /// Releases the claim at once, on the background runtime (unless the
    /// breaker skips Redis: the claim then expires on its own).
    fn release(&self, key: &TokenHash, ticket: u64) {
        let Some(settle) = self.settler() else {
            return;
        };
        let state = self.inner.state.clone();
        let hex = hex::encode(key);
        drop(self.inner.background.spawn(async move {
            let outcome = state.store(hex, ticket, None, Duration::ZERO).await;
            settle.settle(outcome);
        }));
    }
}

/// A breaker admission to settle once; dropped unsettled (its work never
/// ran: the runtime is gone), it counts as no answer, so that a probe
/// never leaves the breaker half-open for good.
struct Settle {
    state: Arc<State>,
    admission: Admission,
    settled: bool,
}

impl Settle {
    fn settle(mut self, outcome: Outcome) {
        self.settled = true;
        self.state.settle(self.admission, outcome);
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        if !self.settled {
            self.state.settle(self.admission, Outcome::NoAnswer);
        }
    }
}
