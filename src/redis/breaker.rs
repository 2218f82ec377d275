//! The breaker: after consecutive timeouts, calls made for requests skip
//! Redis (local cache and Account Kit only) until a probe, after a
//! back-off, finds it answering again.
//!
//! A hung Redis (stopped, overloaded, a half-open connection) answers
//! nothing: without the breaker, every cache miss would wait the full
//! timeout. With it, a hung Redis costs [`threshold`](Breaker::new)
//! timeouts, then one timeout per probe (the probe's back-off doubles, up
//! to its maximum, while Redis stays hung).
//!
//! * **Closed**: calls go through. A call that times out counts; a call
//!   that gets any answer from Redis (an error reply too) resets the
//!   count. At `threshold` consecutive timeouts the breaker opens, and the
//!   connections are replaced (the caller kicks the background task: a
//!   command connection that hangs while the subscription still answers
//!   its liveness checks would otherwise be kept).
//! * **Open**: calls are skipped at once, until the back-off is over.
//! * **Half-open**: the first call after the back-off is the probe; the
//!   others are still skipped. An answer closes the breaker (the back-off
//!   starts over); a timeout, or no connection to try on, opens it again
//!   (after a timeout, for twice as long).
//!
//! Only the calls made for requests (lookups, stores, publications) count
//! and are skipped: the background task's own calls (connecting, liveness
//! checks) have their own bounds and back-off.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::shared::BreakerState;

/// What became of one call, as far as the breaker is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Redis answered (a value or an error reply): it is not hung.
    Answered,
    /// The call hit the timeout.
    TimedOut,
    /// No answer and no timeout: no connection, a connection that broke.
    /// Says nothing about a hang.
    NoAnswer,
}

/// Whether a call may go to Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// Closed: go.
    Pass,
    /// The probe of a half-open breaker: go, and report.
    Probe,
    /// Open (or a probe is already out): skip Redis.
    Skip,
}

/// What [`Breaker::settle`] did, for the caller to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Transition {
    /// Nothing changed.
    None,
    /// The breaker (re)opened: replace the connections.
    Opened,
    /// A probe got an answer: closed again.
    Closed,
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// Consecutive timeouts while closed.
    consecutive: u32,
    /// The next open period.
    backoff: Duration,
}

/// See the [module docs](self).
#[derive(Debug)]
pub(super) struct Breaker {
    inner: Mutex<Inner>,
    threshold: u32,
    first_backoff: Duration,
    max_backoff: Duration,
}

impl Breaker {
    /// Opens after `threshold` consecutive timeouts (at least 1), for
    /// `first_backoff`, doubling up to `max_backoff` while probes time out.
    pub(super) fn new(threshold: u32, first_backoff: Duration, max_backoff: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner {
                phase: Phase::Closed,
                consecutive: 0,
                backoff: first_backoff,
            }),
            threshold: threshold.max(1),
            first_backoff,
            max_backoff: max_backoff.max(first_backoff),
        }
    }

    /// Whether a call may go to Redis now; a half-open breaker lets one
    /// probe through.
    pub(super) fn admit(&self) -> Admission {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Admission {
        let mut inner = self.inner.lock();
        match inner.phase {
            Phase::Closed => Admission::Pass,
            Phase::Open { until } if now >= until => {
                inner.phase = Phase::HalfOpen;
                Admission::Probe
            }
            Phase::Open { .. } | Phase::HalfOpen => Admission::Skip,
        }
    }

    /// Records the outcome of an admitted call.
    pub(super) fn settle(&self, admission: Admission, outcome: Outcome) -> Transition {
        self.settle_at(admission, outcome, Instant::now())
    }

    fn settle_at(&self, admission: Admission, outcome: Outcome, now: Instant) -> Transition {
        let mut inner = self.inner.lock();
        match (admission, inner.phase) {
            (Admission::Probe, _) => match outcome {
                Outcome::Answered => {
                    inner.phase = Phase::Closed;
                    inner.consecutive = 0;
                    inner.backoff = self.first_backoff;
                    Transition::Closed
                }
                Outcome::TimedOut => {
                    inner.backoff = (inner.backoff * 2).min(self.max_backoff);
                    inner.phase = Phase::Open {
                        until: now + inner.backoff,
                    };
                    Transition::Opened
                }
                Outcome::NoAnswer => {
                    inner.phase = Phase::Open {
                        until: now + inner.backoff,
                    };
                    Transition::None
                }
            },
            (Admission::Pass, Phase::Closed) => match outcome {
                Outcome::Answered => {
                    inner.consecutive = 0;
                    Transition::None
                }
                Outcome::TimedOut => {
                    inner.consecutive += 1;
                    if inner.consecutive < self.threshold {
                        return Transition::None;
                    }
                    inner.consecutive = 0;
                    inner.backoff = self.first_backoff;
                    inner.phase = Phase::Open {
                        until: now + inner.backoff,
                    };
                    Transition::Opened
                }
                Outcome::NoAnswer => Transition::None,
            },
            // A call let through before the breaker opened, ending late:
            // the probe decides.
            (Admission::Pass, _) | (Admission::Skip, _) => Transition::None,
        }
    }

    /// The state, for the stats.
    pub(super) fn state(&self) -> BreakerState {
        match self.inner.lock().phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_millis(20);
    const MAX: Duration = Duration::from_millis(60);

    /// A breaker and a clock the test moves by hand.
    struct Clocked {
        b: Breaker,
        now: Instant,
    }

    impl Clocked {
        fn new() -> Self {
            Self {
                b: Breaker::new(2, FIRST, MAX),
                now: Instant::now(),
            }
        }
        fn wait(&mut self, d: Duration) {
            self.now += d;
        }
        fn admit(&self) -> Admission {
            self.b.admit_at(self.now)
        }
        fn settle(&self, admission: Admission, outcome: Outcome) -> Transition {
            self.b.settle_at(admission, outcome, self.now)
        }
        fn trip(&self) {
            self.settle(Admission::Pass, Outcome::TimedOut);
            assert_eq!(
                self.settle(Admission::Pass, Outcome::TimedOut),
                Transition::Opened
            );
        }
    }

    #[test]
    fn opens_after_consecutive_timeouts_only() {
        let c = Clocked::new();
        let pass = |outcome| c.settle(Admission::Pass, outcome);
        assert_eq!(pass(Outcome::TimedOut), Transition::None);
        assert_eq!(pass(Outcome::Answered), Transition::None, "count reset");
        assert_eq!(pass(Outcome::TimedOut), Transition::None);
        assert_eq!(pass(Outcome::NoAnswer), Transition::None, "neither");
        assert_eq!(c.b.state(), BreakerState::Closed);
        assert_eq!(c.admit(), Admission::Pass);
        assert_eq!(pass(Outcome::TimedOut), Transition::Opened);
        assert_eq!(c.b.state(), BreakerState::Open);
        assert_eq!(c.admit(), Admission::Skip);
        // A late timeout of a call admitted before: nothing more.
        assert_eq!(pass(Outcome::TimedOut), Transition::None);
        assert_eq!(
            pass(Outcome::Answered),
            Transition::None,
            "only a probe closes"
        );
        assert_eq!(c.b.state(), BreakerState::Open);
    }

    #[test]
    fn one_probe_after_the_backoff_which_closes_or_reopens() {
        let mut c = Clocked::new();
        c.trip();
        c.wait(FIRST - Duration::from_millis(1));
        assert_eq!(c.admit(), Admission::Skip);
        c.wait(Duration::from_millis(1));
        assert_eq!(c.admit(), Admission::Probe);
        assert_eq!(c.b.state(), BreakerState::HalfOpen);
        assert_eq!(c.admit(), Admission::Skip, "one probe at a time");
        // The probe times out: open for twice as long.
        assert_eq!(
            c.settle(Admission::Probe, Outcome::TimedOut),
            Transition::Opened
        );
        c.wait(FIRST);
        assert_eq!(c.admit(), Admission::Skip, "the back-off doubled");
        c.wait(FIRST);
        assert_eq!(c.admit(), Admission::Probe);
        // No connection to probe on: open again, same back-off.
        assert_eq!(
            c.settle(Admission::Probe, Outcome::NoAnswer),
            Transition::None
        );
        assert_eq!(c.b.state(), BreakerState::Open);
        c.wait(2 * FIRST - Duration::from_millis(1));
        assert_eq!(c.admit(), Admission::Skip);
        c.wait(Duration::from_millis(1));
        assert_eq!(c.admit(), Admission::Probe);
        assert_eq!(
            c.settle(Admission::Probe, Outcome::Answered),
            Transition::Closed
        );
        assert_eq!(c.b.state(), BreakerState::Closed);
        assert_eq!(c.admit(), Admission::Pass);
        // And the back-off started over.
        c.trip();
        c.wait(FIRST);
        assert_eq!(c.admit(), Admission::Probe);
    }

    #[test]
    fn the_backoff_stops_doubling_at_its_maximum() {
        let mut c = Clocked::new();
        c.trip();
        for _ in 0..4 {
            c.wait(MAX);
            assert_eq!(c.admit(), Admission::Probe);
            c.settle(Admission::Probe, Outcome::TimedOut);
        }
        c.wait(MAX - Duration::from_millis(1));
        assert_eq!(c.admit(), Admission::Skip);
        c.wait(Duration::from_millis(1));
        assert_eq!(c.admit(), Admission::Probe, "never longer than the maximum");
    }
}
