//! Instrumentation points: what the request path records for tracing and
//! for the metrics ([`crate::metrics`], feature `prometheus`), in one place.
//!
//! * **Spans.** A verification that leaves the cache (a miss, a joined
//!   flight, an answer from the shared tier) runs in an `accountkit.verify`
//!   span; a cached answer creates none. The account id of a verified
//!   request is recorded as `enduser.id` on the request's span, when that
//!   span declares the field and a subscriber listens.
//! * **Counters read at scrape time.** Refusals by reason
//!   ([`RefusalCounts`], on the refusal path) and Account Kit call
//!   durations by call ([`UpstreamTimings`], where requests are sent).
//!   Without the `prometheus` feature both are empty types whose methods do
//!   nothing and are inlined away: no clock read, no atomic.

use std::future::Future;
use std::time::Duration;

use tracing::field::Empty;
use tracing::Instrument;

use crate::token::Malformed;
use crate::verify::{Refusal, Verification};

pub(crate) mod upstream;

/// The span of a verification that left the cache.
pub(crate) const VERIFY_SPAN: &str = "accountkit.verify";

/// How a verification that left the cache was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// This request started the flight (and the upstream call).
    Miss,
    /// This request joined a flight already under way.
    Coalesced,
}

/// Where a flight's answer came from, as its waiters see it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Answered {
    /// Account Kit (the inner verifier), after this long.
    Upstream(Duration),
    /// The shared tier, with no upstream call.
    Shared,
    /// Nobody: the flight passed its deadline or was aborted.
    Nobody,
}

/// A flight's outcome and where it came from.
#[derive(Clone, Debug)]
pub(crate) struct Flown {
    pub(crate) outcome: Verification,
    pub(crate) answered: Answered,
}

/// Waits for a flight inside an `accountkit.verify` span, and records how
/// it went: `path` (miss, coalesced or shared), `outcome` (ok or the
/// refusal's reason) and, when Account Kit answered, `upstream_duration_ms`
/// (of the call that answered, also for the requests that joined it).
/// Nothing secret: no token, hash, code or proof.
pub(crate) fn wait_for<F>(flight: F, path: Path) -> impl Future<Output = Verification>
where
    F: Future<Output = Flown>,
{
    let span = tracing::info_span!(
        VERIFY_SPAN,
        path = Empty,
        outcome = Empty,
        upstream_duration_ms = Empty
    );
    let recorded = span.clone();
    async move {
        let flown = flight.await;
        let path = match (path, flown.answered) {
            (Path::Coalesced, _) => "coalesced",
            (Path::Miss, Answered::Shared) => "shared",
            (Path::Miss, _) => "miss",
        };
        recorded.record("path", path);
        recorded.record("outcome", outcome_name(&flown.outcome));
        if let Answered::Upstream(took) = flown.answered {
            recorded.record("upstream_duration_ms", took.as_secs_f64() * 1e3);
        }
        flown.outcome
    }
    .instrument(span)
}

/// A miss refused at once because too many verifications were in flight:
/// it left the cache and came back empty, so it gets its span too.
pub(crate) fn overloaded() {
    let span = tracing::info_span!(VERIFY_SPAN, path = "miss", outcome = "overloaded");
    drop(span);
}

fn outcome_name(outcome: &Verification) -> &'static str {
    match outcome {
        Ok(_) => "ok",
        Err(refusal) => Reason::of(refusal).as_str(),
    }
}

/// Records `account_id` as `enduser.id` on the current span (the request's
/// span, e.g. tracing-actix-web's root span), if it declares that field.
/// With no subscriber listening at any level, one atomic load.
#[inline]
pub(crate) fn enduser(account_id: &str) {
    if tracing::level_filters::LevelFilter::current() != tracing::level_filters::LevelFilter::OFF {
        tracing::Span::current().record("enduser.id", account_id);
    }
}

/// Why a request was refused, as `accountkit_refusals_total{reason}` and the
/// span's `outcome` name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    MissingToken,
    Ambiguous,
    Malformed,
    InvalidToken,
    WrongApp,
    Unavailable,
    Misconfigured,
    Overloaded,
}

impl Reason {
    /// Every reason, in the order the metrics list them.
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub(crate) const ALL: [Reason; 8] = [
        Reason::MissingToken,
        Reason::Ambiguous,
        Reason::Malformed,
        Reason::InvalidToken,
        Reason::WrongApp,
        Reason::Unavailable,
        Reason::Misconfigured,
        Reason::Overloaded,
    ];

    pub(crate) fn of(refusal: &Refusal) -> Self {
        match refusal {
            Refusal::MissingToken => Reason::MissingToken,
            Refusal::Malformed(Malformed::Ambiguous) => Reason::Ambiguous,
            Refusal::Malformed(_) => Reason::Malformed,
            Refusal::InvalidToken { .. } => Reason::InvalidToken,
            Refusal::WrongApp => Reason::WrongApp,
            Refusal::Unavailable(_) => Reason::Unavailable,
            Refusal::Misconfigured(_) => Reason::Misconfigured,
            Refusal::Overloaded => Reason::Overloaded,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::MissingToken => "missing_token",
            Reason::Ambiguous => "ambiguous",
            Reason::Malformed => "malformed",
            Reason::InvalidToken => "invalid_token",
            Reason::WrongApp => "wrong_app",
            Reason::Unavailable => "unavailable",
            Reason::Misconfigured => "misconfigured",
            Reason::Overloaded => "overloaded",
        }
    }
}

/// Refusals answered by the middleware and the extractors, by reason.
/// Counted on the refusal path only.
#[derive(Debug, Default)]
pub(crate) struct RefusalCounts {
    #[cfg(feature = "prometheus")]
    counts: [std::sync::atomic::AtomicU64; Reason::ALL.len()],
}

impl RefusalCounts {
    #[inline]
    pub(crate) fn count(&self, refusal: &Refusal) {
        #[cfg(feature = "prometheus")]
        self.counts[Reason::of(refusal) as usize]
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        #[cfg(not(feature = "prometheus"))]
        let _ = refusal;
    }

    /// The count of one reason.
    #[cfg(feature = "prometheus")]
    pub(crate) fn get(&self, reason: Reason) -> u64 {
        self.counts[reason as usize].load(std::sync::atomic::Ordering::Relaxed)
    }
}
