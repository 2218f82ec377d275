//! The calls the [`SharedTier`](crate::shared::SharedTier) methods make,
//! on the background runtime: the lookup (and its claims), the store, the
//! publication of a revocation and the queue of those that could not be.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::breaker::Outcome;
use super::entry::{Entry, Opened};
use super::messages::{counter_step, Message};
use super::scripts::LookupStatus;
use super::state::{Failure, State};
use crate::cache::MAX_TTL;
use crate::shared::{Revocation, SharedLookup};
use crate::verify::Verification;

/// Interval between two looks at another instance's claim.
const CLAIM_POLL: Duration = Duration::from_millis(5);

/// A lookup's result, one look.
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

/// `d` in whole milliseconds, saturated.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl State {
    /// A shared answer, or a ticket to store one; waits (bounded) while
    /// another instance verifies the same token.
    ///
    /// A stored value that fails its check is a miss: this instance looks
    /// again past that value (so that it gets a ticket, and its upstream
    /// answer replaces the value), or, if the value keeps changing until
    /// the claim wait is over, verifies upstream and stores nothing.
    ///
    /// With what the lookup says of Redis, for the breaker.
    pub(super) async fn lookup(self: Arc<Self>, hex: String) -> (SharedLookup, Outcome) {
        let deadline = Instant::now() + self.settings.claim_wait;
        let mut past: Option<String> = None;
        let answered = |lookup| (lookup, Outcome::Answered);
        loop {
            match self.lookup_once(&hex, past.as_deref()).await {
                Ok(Looked::Found(answer, remaining)) => {
                    return answered(SharedLookup::Found { answer, remaining })
                }
                Ok(Looked::Claimed(ticket)) => return answered(SharedLookup::Missing { ticket }),
                Ok(Looked::Busy(ticket)) if Instant::now() >= deadline => {
                    return answered(SharedLookup::Missing { ticket })
                }
                Ok(Looked::Busy(_)) => tokio::time::sleep(CLAIM_POLL).await,
                Ok(Looked::Refused(value)) => {
                    if past.is_some() {
                        // Another refused value since the last look: not
                        // ours to wait for forever, nor to poll in a spin.
                        if Instant::now() >= deadline {
                            return answered(SharedLookup::Unavailable);
                        }
                        tokio::time::sleep(CLAIM_POLL).await;
                    }
                    past = Some(value);
                }
                Err(failure) => {
                    self.failed("lookup", &failure);
                    return (SharedLookup::Unavailable, failure.outcome());
                }
            }
        }
    }

    async fn lookup_once(&self, hex: &str, past: Option<&str>) -> Result<Looked, Failure> {
        let mut conn = self.conn()?;
        let entry_key = self.keys.token(hex);
        let mut call = self.scripts.lookup.prepare_invoke();
        call.key(self.keys.gen())
            .key(&entry_key)
            .key(self.keys.claim(hex))
            .arg(millis(self.settings.claim_wait))
            .arg(&self.sender)
            .arg(past.unwrap_or(""));
        let (gen, status, value, pttl): (String, String, String, i64) =
            self.bounded(call.invoke_async(&mut conn)).await?;
        let ticket = gen.parse::<u64>().map_err(|_| Failure::Unreadable)?;
        match LookupStatus::parse(&status) {
            Some(LookupStatus::Claimed) => return Ok(Looked::Claimed(ticket)),
            Some(LookupStatus::Busy) => return Ok(Looked::Busy(ticket)),
            Some(LookupStatus::Found) => {}
            None => return Err(Failure::Unreadable),
        }
        match self.sealer.open(&entry_key, &value) {
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
                tracing::debug!(
                    tier = %self.keys.prefix(),
                    "shared Redis entry past its expiry, ignored"
                );
                Ok(Looked::Refused(value))
            }
            Opened::Forged => {
                self.rejected_entry();
                Ok(Looked::Refused(value))
            }
        }
    }

    /// Stores an upstream answer (`None`: releases the claim only), with
    /// what the call says of Redis.
    pub(super) async fn store(
        self: Arc<Self>,
        hex: String,
        ticket: u64,
        entry: Option<Entry>,
        ttl: Duration,
    ) -> Outcome {
        let result = async {
            let mut conn = self.conn()?;
            let entry_key = self.keys.token(&hex);
            let value = match &entry {
                Some(entry) => self
                    .sealer
                    .seal(&entry_key, entry, ttl)
                    .map_err(|_| Failure::Unreadable)?,
                None => String::new(),
            };
            let account = entry.as_ref().and_then(Entry::account_id);
            let mut call = self.scripts.store.prepare_invoke();
            call.key(self.keys.gen())
                .key(&entry_key)
                .key(self.keys.account(account.unwrap_or("")))
                .key(self.keys.claim(&hex))
                .arg(ticket.to_string())
                .arg(value)
                .arg(millis(ttl).max(1))
                .arg(&hex)
                .arg(if account.is_some() { "1" } else { "0" })
                .arg(&self.sender);
            self.bounded(call.invoke_async::<i64>(&mut conn)).await
        }
        .await;
        match result {
            Ok(_) => Outcome::Answered,
            Err(failure) => {
                self.failed("store", &failure);
                failure.outcome()
            }
        }
    }

    /// Publishes one revocation; an error if it could not be (to be
    /// queued).
    pub(super) async fn publish(&self, revocation: &Revocation) -> Result<(), Failure> {
        let result = async {
            let mut conn = self.conn()?;
            let mut call;
            match revocation {
                Revocation::Token { hash, refused_for } => {
                    // As long as the local refusal at most: a longer one
                    // is refused by Redis, and would stay queued forever.
                    let refused_for = refused_for.map(|ttl| ttl.min(MAX_TTL));
                    let entry_key = self.keys.token(&hex::encode(hash));
                    // How long every instance reading the entry keeps the
                    // token as refused; 0: the entry is only dropped.
                    let refused_ms = refused_for.map_or(0, millis);
                    let refusal = match refused_for {
                        Some(ttl) if refused_ms > 0 => self
                            .sealer
                            .seal(&entry_key, &Entry::InvalidToken { subcode: None }, ttl)
                            .map_err(|_| Failure::Unreadable)?,
                        _ => String::new(),
                    };
                    let message = Message::Token {
                        hash: *hash,
                        refused: refused_ms > 0,
                    }
                    .encode(&self.sender);
                    call = self.scripts.revoke_token.prepare_invoke();
                    call.key(self.keys.gen())
                        .key(entry_key)
                        .arg(self.keys.channel())
                        .arg(message.head)
                        .arg(message.tail)
                        .arg(refused_ms)
                        .arg(refusal)
                        .arg(counter_step());
                }
                Revocation::Account { id } => {
                    let message = Message::Account { id: id.clone() }.encode(&self.sender);
                    call = self.scripts.revoke_account.prepare_invoke();
                    call.key(self.keys.gen())
                        .key(self.keys.account(id))
                        .arg(self.keys.channel())
                        .arg(message.head)
                        .arg(message.tail)
                        .arg(self.keys.token_prefix())
                        .arg(counter_step());
                }
            }
            self.bounded(call.invoke_async::<u64>(&mut conn)).await
        }
        .await;
        match result {
            Ok(_) => {
                self.counters.published.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(failure) => {
                self.failed("revocation publish", &failure);
                Err(failure)
            }
        }
    }

    /// Keeps a revocation that could not be published for later (the
    /// oldest goes beyond [`Settings::max_pending`]).
    pub(super) fn enqueue(&self, revocation: Revocation) {
        let max = self.settings.max_pending;
        let mut pending = self.pending.lock();
        if pending.len() >= max {
            pending.pop_front();
            tracing::warn!(
                max,
                "Redis unreachable: too many revocations waiting, the oldest is dropped \
                 (other instances keep it until their TTL)"
            );
        }
        pending.push_back(revocation);
    }

    /// Whether revocations wait for publication.
    pub(super) fn has_pending(&self) -> bool {
        !self.pending.lock().is_empty()
    }

    /// Publishes the queued revocations; `false` at the first failure.
    /// Each stays queued until Redis has it, so that [`has_pending`]
    /// holds while it is being published.
    ///
    /// [`has_pending`]: Self::has_pending
    pub(super) async fn flush_pending(&self) -> bool {
        loop {
            let Some(next) = self.pending.lock().front().cloned() else {
                return true;
            };
            if self.publish(&next).await.is_err() {
                return false;
            }
            let mut pending = self.pending.lock();
            // Unless the queue overflowed meanwhile and dropped it.
            if pending.front() == Some(&next) {
                pending.pop_front();
            }
        }
    }
}
