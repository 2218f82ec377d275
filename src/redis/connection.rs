//! The connection lifecycle, on a background thread with its own runtime:
//! connect (a command connection and a subscription), check for missed
//! revocations, apply the ones received, check liveness, and on any loss
//! back off and start over.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{PubSubSink, PubSubStream};
use ::redis::Value;
use futures::future::FutureExt;
use futures::StreamExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::messages::{Envelope, Message, Unreadable};
use super::state::{Failure, State};
use crate::shared::RevocationSink;

/// First wait before reconnecting (and the least
/// [`RedisTierBuilder::max_backoff`](super::RedisTierBuilder::max_backoff)).
pub(super) const MIN_BACKOFF: Duration = Duration::from_millis(50);

/// The background thread (`accountkit-redis`) and its runtime, where the
/// connections live. The thread stops when this is dropped.
pub(super) struct Background {
    runtime: tokio::runtime::Handle,
    /// Dropped with the tier: the background task then ends.
    _stop: oneshot::Sender<()>,
}

impl Background {
    /// Starts the thread, which connects (and reconnects) `state` on its
    /// own: this returns at once, even if Redis is unreachable.
    pub(super) fn start(state: Arc<State>) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel();
        std::thread::Builder::new()
            .name("accountkit-redis".into())
            .spawn(move || runtime.block_on(state.run(stopped)))?;
        Ok(Self {
            runtime: handle,
            _stop: stop,
        })
    }

    /// Runs `work` on the background runtime.
    pub(super) fn spawn<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> JoinHandle<T> {
        self.runtime.spawn(work)
    }
}

impl State {
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
                            self.counters.errors.fetch_add(1, Ordering::Relaxed);
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
            backoff = (backoff * 2).min(self.settings.max_backoff);
        }
        self.connected.store(false, Ordering::SeqCst);
        *self.conn.lock() = None;
    }

    /// Opens both connections, subscribes, checks for missed revocations
    /// and publishes the queued ones.
    async fn connect(&self, after_failures: bool) -> Result<(PubSubSink, PubSubStream), Failure> {
        let (client, mut conn) = self.open_home().await?;
        // On the same server as the counter: see `health_check`.
        let (mut sink, stream) = self.bounded(client.get_async_pubsub()).await?.split();
        self.bounded(sink.subscribe(self.keys.channel())).await?;
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
            self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(channel = %self.keys.channel(), "Redis connected");
        self.flush_pending().await;
        Ok((sink, stream))
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
        let mut health = tokio::time::interval(self.settings.health_interval);
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
                    if self.has_pending() && !self.flush_pending().await {
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
    ///
    /// Both connections are to the server that runs the revocation scripts
    /// (in a cluster, the master of the tier's slot: a node that no longer
    /// is answers the read with `MOVED`, and the tier reconnects). A
    /// subscription on another cluster node would get the messages later,
    /// over the cluster bus, and its `PING` would prove nothing.
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
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("Redis liveness check: unexpected answer to PING, reconnecting");
                false
            }
            Err(failure) => {
                self.failed("liveness check", &failure);
                false
            }
        }
    }

    /// A message on the revocation channel (see `messages` for the
    /// format).
    ///
    /// Anyone who can publish on the channel can send one: a message is
    /// only ever a reason to forget (evict a token hash or an account's
    /// tokens here; the next request asks Redis or Account Kit again).
    /// Nothing in it is trusted beyond that: not its sender, not its
    /// counter (missed revocations are found by comparing Redis's counter
    /// with the checkpoint on reconnection, see [`State::health_check`]),
    /// and a "refused" kind caches no refusal here.
    fn received_message(&self, payload: &[u8]) {
        let envelope = match Envelope::parse(payload) {
            Ok(envelope) => envelope,
            Err(Unreadable::Garbage) => {
                tracing::debug!("unreadable message on the revocation channel, ignored");
                return;
            }
            Err(Unreadable::Subject { sender }) => {
                // Counted like any message of another instance, as it
                // reached this one; nothing to apply.
                if sender != self.sender {
                    self.counters.received.fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!(
                    "revocation of an unknown kind or with an unreadable subject, ignored"
                );
                return;
            }
        };
        if envelope.sender == self.sender {
            // Ours. Applied locally already, but applied again: a queued
            // revocation published late (Redis was slow or away) must also
            // clear what this instance re-cached from the shared entries
            // meanwhile, its own refusal having been pushed out of the
            // negative LRU. Applying keeps any refusal still cached here.
            self.apply(&envelope.message);
            return;
        }
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(counter = envelope.counter, "revocation received");
        self.apply(&envelope.message);
    }

    fn apply(&self, message: &Message) {
        match message {
            Message::Token { hash, .. } => self.each_cache(|cache| cache.invalidate_hash(hash)),
            Message::Account { id } => self.each_cache(|cache| cache.invalidate_account(id)),
        }
    }

    /// Applies `f` to every live cache, forgetting the dead ones.
    fn each_cache(&self, f: impl Fn(&RevocationSink) -> bool) {
        self.sinks.lock().retain(|sink| f(sink));
    }

    /// Empties every local cache of its verified accounts (refusals stay):
    /// revocations may have been missed.
    fn resync(&self, why: &'static str) {
        self.counters.resyncs.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "{why}: revocations may have been missed, verified accounts dropped from the local cache"
        );
        self.each_cache(RevocationSink::invalidate_all);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
