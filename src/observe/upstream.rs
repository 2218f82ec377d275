//! How long each Account Kit call took, by call: timed where the client
//! sends its requests. Apart from the rest of [`observe`](super), which
//! knows the verifier's types, so that the client can use it without a
//! module cycle (client → observe → verify → client).

use std::future::Future;

/// A Graph API call, as `accountkit_upstream_duration_seconds{call}` names
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    Me,
    AccessToken,
    Logout,
    InvalidateAllTokens,
    Delete,
    Accounts,
    CredentialsCheck,
}

impl Call {
    /// Every call, in the order the metrics list them.
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub(crate) const ALL: [Call; 7] = [
        Call::Me,
        Call::AccessToken,
        Call::Logout,
        Call::InvalidateAllTokens,
        Call::Delete,
        Call::Accounts,
        Call::CredentialsCheck,
    ];

    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Call::Me => "me",
            Call::AccessToken => "access_token",
            Call::Logout => "logout",
            Call::InvalidateAllTokens => "invalidate_all_tokens",
            Call::Delete => "delete",
            Call::Accounts => "accounts",
            Call::CredentialsCheck => "credentials_check",
        }
    }
}

#[cfg(feature = "prometheus")]
tokio::task_local! {
    /// Set while the app-credential self-check runs: its accounts-listing
    /// request is timed as `credentials_check`, not as `accounts`, and so is
    /// the credential-free `/me` probe (`GraphClient::check_service`).
    static CREDENTIALS_CHECK: ();
}

/// Runs `check` as the credential self-check (see [`Call::CredentialsCheck`]).
#[cfg(feature = "prometheus")]
pub(crate) fn credentials_check<F: Future>(check: F) -> impl Future<Output = F::Output> {
    CREDENTIALS_CHECK.scope((), check)
}

/// Without the feature: `check` itself.
#[cfg(not(feature = "prometheus"))]
#[inline(always)]
pub(crate) fn credentials_check<F: Future>(check: F) -> F {
    check
}

/// Bucket bounds of the upstream duration histogram, in seconds: from a
/// fast local emulator (1 ms) to the client's longest timeouts.
#[cfg(feature = "prometheus")]
pub(crate) const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How long each Graph API request took, by call (every HTTP request sent,
/// retries included, whatever its answer).
#[derive(Debug, Default)]
pub(crate) struct UpstreamTimings {
    #[cfg(feature = "prometheus")]
    histograms: Histograms,
}

/// One histogram per [`Call`].
#[cfg(feature = "prometheus")]
#[derive(Debug)]
struct Histograms([prometheus_client::metrics::histogram::Histogram; Call::ALL.len()]);

#[cfg(feature = "prometheus")]
impl Default for Histograms {
    fn default() -> Self {
        Self(std::array::from_fn(|_| {
            prometheus_client::metrics::histogram::Histogram::new(DURATION_BUCKETS)
        }))
    }
}

impl UpstreamTimings {
    /// Times `request` as one call of the kind `call` names.
    #[cfg(feature = "prometheus")]
    pub(crate) async fn time<F: Future>(
        &self,
        call: impl FnOnce() -> Call,
        request: F,
    ) -> F::Output {
        let kind = match CREDENTIALS_CHECK.try_with(|_| ()) {
            Ok(()) => Call::CredentialsCheck,
            Err(_) => call(),
        };
        let started = std::time::Instant::now();
        let output = request.await;
        self.histograms.0[kind as usize].observe(started.elapsed().as_secs_f64());
        output
    }

    /// Without the feature: `request` itself, untimed.
    #[cfg(not(feature = "prometheus"))]
    #[inline(always)]
    pub(crate) fn time<F: Future>(&self, _call: impl FnOnce() -> Call, request: F) -> F {
        request
    }

    /// The histogram of one call.
    #[cfg(feature = "prometheus")]
    pub(crate) fn histogram(
        &self,
        call: Call,
    ) -> &prometheus_client::metrics::histogram::Histogram {
        &self.histograms.0[call as usize]
    }
}
