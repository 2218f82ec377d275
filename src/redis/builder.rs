//! [`RedisTierBuilder`]: the settings, their defaults, their validation,
//! and the start of the background thread.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::{Client, ConnectionAddr, ConnectionInfo};
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use super::connection::{Background, MIN_BACKOFF};
use super::entry::Sealer;
use super::error::RedisTierError;
use super::keys::Keys;
use super::state::{Settings, State, Target};
use super::tier::RedisTier;
use super::tls::TlsSettings;
use crate::config::Config;

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
/// Consecutive timeouts that open the breaker. Default is 2.
pub const DEFAULT_BREAKER_THRESHOLD: u32 = 2;
/// How long the breaker stays open before its first probe. Default is
/// 500 ms.
pub const DEFAULT_BREAKER_BACKOFF: Duration = Duration::from_millis(500);
/// Longest the breaker stays open between two probes (the wait doubles
/// while probes time out). Default is 5 s.
pub const DEFAULT_BREAKER_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The longest of the tier's waits (reconnection and breaker backoffs, the
/// liveness check's interval): one hour.
pub const LONGEST_WAIT: Duration = Duration::from_secs(3600);

/// Builder of [`RedisTier`], from [`RedisTier::builder`] (one server) or
/// [`RedisTier::cluster_builder`].
pub struct RedisTierBuilder {
    /// The server's URL, or the cluster nodes'.
    urls: Vec<SecretString>,
    cluster: bool,
    app_id: String,
    /// Keyed with the entry key derived from the app secret.
    sealer: Sealer,
    namespace: String,
    settings: Settings,
    tls: TlsSettings,
}

impl fmt::Debug for RedisTierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTierBuilder")
            .field("urls", &format_args!("[{} redacted]", self.urls.len()))
            .field("cluster", &self.cluster)
            .field("app_id", &self.app_id)
            .field("namespace", &self.namespace)
            .field("ca_certificate", &self.tls.ca.is_some())
            .field("client_certificate", &self.tls.identity.is_some())
            .field("timeout", &self.settings.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisTier {
    /// A builder for the Redis at `url` (`redis://[[user]:password@]host[:port][/db]`,
    /// or `rediss://…` for TLS; kept secret), for the app of `config`.
    ///
    /// The tier takes the app id from `config`, and derives from its app
    /// secret the key that authenticates every entry it writes and reads
    /// (HKDF-SHA256, bound to the app id; neither the secret nor the
    /// derived key ever leaves the process or shows in `Debug` output, and
    /// the derived key is zeroized once the MAC is keyed with it). Every
    /// instance sharing the Redis must
    /// therefore use the same app secret: an entry written with another
    /// one is refused like a forged one (counted in
    /// [`SharedStats::rejected_entries`](crate::shared::SharedStats::rejected_entries))
    /// and verified again.
    pub fn builder(url: impl Into<String>, config: &Config) -> RedisTierBuilder {
        RedisTierBuilder::new(vec![SecretString::from(url.into())], false, config)
    }

    /// A builder for a Redis Cluster, reached through `nodes` (URLs as for
    /// [`builder`](Self::builder), kept secret; one is enough, a few
    /// survive a node being down), for the app of `config`.
    ///
    /// Every key of the tier shares one hash tag (`{namespace:app_id}`),
    /// so the tier talks to one node, the master of that slot, which it
    /// finds through the nodes given and finds again after a failover.
    /// Revocations are published there with classic pub/sub. See the
    /// [module docs](super#redis-cluster). The cluster's own nodes may be
    /// announced by IP: over TLS, their certificates must name the address
    /// the cluster announces.
    ///
    /// ```no_run
    /// use actix_accountkit::{redis::RedisTier, Config};
    ///
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Config::builder("1234", "account-kit-app-secret").build()?;
    /// let redis = RedisTier::cluster_builder(
    ///     ["redis://10.0.0.1:6379/", "redis://10.0.0.2:6379/", "redis://10.0.0.3:6379/"],
    ///     &config,
    /// )
    /// .build()?;
    /// # let _ = redis; Ok(()) }
    /// ```
    pub fn cluster_builder(
        nodes: impl IntoIterator<Item = impl Into<String>>,
        config: &Config,
    ) -> RedisTierBuilder {
        let urls = nodes
            .into_iter()
            .map(|url| SecretString::from(url.into()))
            .collect();
        RedisTierBuilder::new(urls, true, config)
    }
}

impl RedisTierBuilder {
    fn new(urls: Vec<SecretString>, cluster: bool, config: &Config) -> Self {
        Self {
            urls,
            cluster,
            app_id: config.app_id().to_owned(),
            sealer: Sealer::new(config),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            settings: Settings {
                timeout: DEFAULT_TIMEOUT,
                max_backoff: DEFAULT_MAX_BACKOFF,
                claim_wait: DEFAULT_CLAIM_WAIT,
                health_interval: DEFAULT_HEALTH_INTERVAL,
                max_pending: DEFAULT_MAX_PENDING,
                breaker_threshold: DEFAULT_BREAKER_THRESHOLD,
                breaker_backoff: DEFAULT_BREAKER_BACKOFF,
                breaker_max_backoff: DEFAULT_BREAKER_MAX_BACKOFF,
            },
            tls: TlsSettings::default(),
        }
    }

    /// First part of the keys and channel name; the app id follows it, so
    /// that two apps sharing a Redis never share entries. Default is
    /// [`DEFAULT_NAMESPACE`].
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Bound of every Redis call (a slower answer counts as a failure and
    /// the request falls through to the local cache or Account Kit), from
    /// 1 ms to one minute. Default is [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout.clamp(Duration::from_millis(1), Duration::from_secs(60));
        self
    }

    /// Longest wait between two reconnection attempts (the wait starts at
    /// 50 ms and doubles), at most [`LONGEST_WAIT`]. Default is
    /// [`DEFAULT_MAX_BACKOFF`].
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.settings.max_backoff = max.clamp(MIN_BACKOFF, LONGEST_WAIT);
        self
    }

    /// Longest wait for another instance that is verifying the same token
    /// (then this instance asks Account Kit itself); zero turns the wait
    /// off; at most one minute (a claim is a Redis key with that expiry).
    /// Default is [`DEFAULT_CLAIM_WAIT`].
    pub fn claim_wait(mut self, wait: Duration) -> Self {
        self.settings.claim_wait = wait.min(Duration::from_secs(60));
        self
    }

    /// Interval of the subscription's liveness check, from 10 ms to
    /// [`LONGEST_WAIT`]. Default is [`DEFAULT_HEALTH_INTERVAL`].
    pub fn health_interval(mut self, interval: Duration) -> Self {
        self.settings.health_interval = interval.clamp(Duration::from_millis(10), LONGEST_WAIT);
        self
    }

    /// Revocations kept for publication while Redis is unreachable (the
    /// oldest are dropped beyond it, with a warning). Default is
    /// [`DEFAULT_MAX_PENDING`].
    pub fn max_pending(mut self, n: usize) -> Self {
        self.settings.max_pending = n.max(1);
        self
    }

    /// The breaker: after `threshold` consecutive timeouts (at least 1) of
    /// calls made for requests, Redis is skipped (the local cache and
    /// Account Kit answer at once) and the connections are replaced; after
    /// `backoff`, one request probes Redis again: an answer closes the
    /// breaker, a timeout opens it for twice as long, up to `max_backoff`.
    /// A hung Redis thus costs `threshold` timeouts, then at most one per
    /// probe. Both waits are at most [`LONGEST_WAIT`]. Defaults are
    /// [`DEFAULT_BREAKER_THRESHOLD`],
    /// [`DEFAULT_BREAKER_BACKOFF`] and [`DEFAULT_BREAKER_MAX_BACKOFF`];
    /// [`SharedStats::breaker`](crate::shared::SharedStats::breaker) says
    /// its state.
    pub fn breaker(mut self, threshold: u32, backoff: Duration, max_backoff: Duration) -> Self {
        self.settings.breaker_threshold = threshold.max(1);
        self.settings.breaker_backoff = backoff.clamp(Duration::from_millis(1), LONGEST_WAIT);
        self.settings.breaker_max_backoff =
            max_backoff.clamp(self.settings.breaker_backoff, LONGEST_WAIT);
        self
    }

    /// TLS: trust only the CA certificate(s) in `pem` (PEM, one or more)
    /// for the server's certificate, instead of the system's roots (a
    /// managed Redis with a private CA, a self-signed server). The URL
    /// must be `rediss://`; the certificate must still name its host.
    /// Checked by [`build`](Self::build): a PEM without a readable
    /// certificate is refused there.
    ///
    /// ```no_run
    /// use actix_accountkit::{redis::RedisTier, Config};
    ///
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Config::builder("1234", "account-kit-app-secret").build()?;
    /// let ca = std::fs::read("/etc/redis/ca.pem")?;
    /// let redis = RedisTier::builder("rediss://:password@redis.internal:6380/", &config)
    ///     .ca_certificate_pem(&ca)
    ///     .build()?;
    /// # let _ = redis; Ok(()) }
    /// ```
    ///
    /// A server whose certificate does not chain to the CA (or does not
    /// name the host) gets no connection: the handshake failure is logged,
    /// [`SharedStats::connected`](crate::shared::SharedStats::connected)
    /// stays `false`, and requests go to Account Kit.
    pub fn ca_certificate_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.tls.ca = Some(pem.as_ref().to_vec());
        self
    }

    /// Mutual TLS: present this client certificate (PEM, the chain) and
    /// its private key (PEM; kept secret, never shown) to a server that
    /// asks for one (`tls-auth-clients yes`). The URL must be `rediss://`.
    pub fn client_certificate_pem(
        mut self,
        certificate: impl AsRef<[u8]>,
        private_key: impl AsRef<[u8]>,
    ) -> Self {
        self.tls.identity = Some((
            certificate.as_ref().to_vec(),
            SecretSlice::from(private_key.as_ref().to_vec()),
        ));
        self
    }

    /// Checks the settings and starts the background thread, which
    /// connects (and reconnects) on its own: this returns at once, even if
    /// Redis is unreachable.
    pub fn build(self) -> Result<RedisTier, RedisTierError> {
        let state = Arc::new(self.into_state()?);
        let background = Background::start(state.clone()).map_err(RedisTierError::Thread)?;
        Ok(RedisTier::new(state, background))
    }

    /// The tier's state, checked, without a thread or a connection.
    pub(super) fn into_state(self) -> Result<State, RedisTierError> {
        let mut nodes = Vec::with_capacity(self.urls.len());
        for url in &self.urls {
            nodes.push(self.tls.connection_info(url.expose_secret())?);
        }
        let target = if self.cluster {
            let tls = |info: &ConnectionInfo| matches!(info.addr(), ConnectionAddr::TcpTls { .. });
            match nodes.first() {
                None => return Err(RedisTierError::NoClusterNodes),
                Some(first) if nodes.iter().any(|n| tls(n) != tls(first)) => {
                    return Err(RedisTierError::MixedClusterSchemes)
                }
                Some(_) => Target::Cluster(nodes),
            }
        } else {
            let info = nodes.pop().ok_or(RedisTierError::InvalidUrl)?;
            let client = Client::open(info).map_err(|_| RedisTierError::InvalidUrl)?;
            Target::Single(Box::new(client))
        };
        if self.app_id.is_empty() || !self.app_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RedisTierError::InvalidAppId);
        }
        let braces = self.cluster && self.namespace.contains(['{', '}']);
        if self.namespace.is_empty() || self.namespace.chars().any(char::is_whitespace) || braces {
            return Err(RedisTierError::InvalidNamespace);
        }
        let keys = Keys::new(&self.namespace, &self.app_id, self.cluster);
        Ok(State::new(
            target,
            self.app_id,
            keys,
            self.sealer,
            self.settings,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::entry::ENTRY_KEY_PURPOSE;
    use super::*;

    fn config() -> Config {
        Config::builder("1234", "the-app-secret-0123456789")
            .build()
            .unwrap()
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
    fn waits_are_kept_within_their_bounds() {
        let config = config();
        let long = RedisTier::builder("redis://127.0.0.1/", &config)
            .timeout(Duration::MAX)
            .max_backoff(Duration::MAX)
            .health_interval(Duration::MAX)
            .breaker(1, Duration::MAX, Duration::MAX);
        let s = &long.settings;
        assert_eq!(s.timeout, Duration::from_secs(60));
        for wait in [
            s.max_backoff,
            s.health_interval,
            s.breaker_backoff,
            s.breaker_max_backoff,
        ] {
            assert_eq!(wait, LONGEST_WAIT);
        }
        let short = RedisTier::builder("redis://127.0.0.1/", &config)
            .timeout(Duration::ZERO)
            .breaker(0, Duration::ZERO, Duration::ZERO);
        let s = &short.settings;
        assert_eq!(s.timeout, Duration::from_millis(1));
        assert_eq!(s.breaker_threshold, 1);
        assert_eq!(s.breaker_max_backoff, s.breaker_backoff);
    }
}
