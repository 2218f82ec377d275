//! The tier configured from the environment: `ACCOUNTKIT_REDIS_URL` (one
//! server), `ACCOUNTKIT_REDIS_CLUSTER` (a cluster's nodes) and
//! `ACCOUNTKIT_REDIS_CA_CERT` (the CA of a TLS server).

use super::builder::RedisTierBuilder;
use super::error::RedisTierError;
use super::tier::RedisTier;
use crate::config::Config;

/// Environment variable of [`RedisTier::from_env`]: the URL of one Redis
/// server (`redis://…`, or `rediss://…` for TLS).
pub const ENV_REDIS_URL: &str = "ACCOUNTKIT_REDIS_URL";
/// Environment variable of [`RedisTier::from_env`]: a Redis Cluster's node
/// URLs, comma-separated (one is enough; see [`RedisTier::cluster_builder`]).
/// Exclusive with [`ENV_REDIS_URL`].
pub const ENV_REDIS_CLUSTER: &str = "ACCOUNTKIT_REDIS_CLUSTER";
/// Environment variable of [`RedisTier::from_env`]: the path of a PEM file
/// holding the CA certificate(s) the server's TLS certificate must chain to
/// (instead of the system's roots).
pub const ENV_REDIS_CA_CERT: &str = "ACCOUNTKIT_REDIS_CA_CERT";

impl RedisTier {
    /// A builder configured from the environment, as the demo does; `None`
    /// when no Redis is configured.
    ///
    /// | variable | |
    /// |---|---|
    /// | `ACCOUNTKIT_REDIS_URL` | one server: `redis://[[user]:password@]host[:port][/db]`, or `rediss://…` for TLS |
    /// | `ACCOUNTKIT_REDIS_CLUSTER` | or a cluster: node URLs, comma-separated ([`RedisTier::cluster_builder`]) |
    /// | `ACCOUNTKIT_REDIS_CA_CERT` | optional: path of a PEM file, the CA a `rediss://` server's certificate must chain to ([`RedisTierBuilder::ca_certificate_pem`]) |
    ///
    /// An empty variable counts as unset. Setting both
    /// `ACCOUNTKIT_REDIS_URL` and `ACCOUNTKIT_REDIS_CLUSTER` is refused
    /// ([`RedisTierError::ConflictingEnvVars`], naming both): which one
    /// wins would be a guess. The other settings keep their defaults;
    /// change them on the builder.
    ///
    /// # Errors
    ///
    /// Both a URL and a cluster, a CA file that cannot be read
    /// ([`RedisTierError::CaCertFile`]), or a CA without a server
    /// ([`RedisTierError::OrphanEnvVar`]); each names the variables. The URL and the PEM are checked by
    /// [`build`](RedisTierBuilder::build).
    pub fn from_env(config: &Config) -> Result<Option<RedisTierBuilder>, RedisTierError> {
        Self::from_env_with(|name| std::env::var(name).ok(), config)
    }

    /// [`from_env`](Self::from_env), reading each variable through `var`
    /// instead of the process environment: for tests, or another source.
    ///
    /// ```
    /// use actix_accountkit::{redis::RedisTier, Config};
    /// use std::collections::HashMap;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Config::builder("1234", "account-kit-app-secret").build()?;
    /// let env = HashMap::from([("ACCOUNTKIT_REDIS_URL", "redis://127.0.0.1:6379/")]);
    /// let builder = RedisTier::from_env_with(|name| env.get(name).map(|v| v.to_string()), &config)?;
    /// assert!(builder.is_some());
    /// assert!(RedisTier::from_env_with(|_| None, &config)?.is_none());
    /// # Ok(()) }
    /// ```
    pub fn from_env_with(
        mut var: impl FnMut(&str) -> Option<String>,
        config: &Config,
    ) -> Result<Option<RedisTierBuilder>, RedisTierError> {
        let mut get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let url = get(ENV_REDIS_URL);
        let cluster = get(ENV_REDIS_CLUSTER);
        let ca = get(ENV_REDIS_CA_CERT);
        let mut builder = match (url, cluster) {
            (Some(_), Some(_)) => {
                return Err(RedisTierError::ConflictingEnvVars {
                    first: ENV_REDIS_URL,
                    second: ENV_REDIS_CLUSTER,
                })
            }
            (Some(url), None) => RedisTier::builder(url.trim(), config),
            (None, Some(nodes)) => RedisTier::cluster_builder(
                nodes.split(',').map(str::trim).filter(|n| !n.is_empty()),
                config,
            ),
            (None, None) if ca.is_some() => {
                return Err(RedisTierError::OrphanEnvVar {
                    variable: ENV_REDIS_CA_CERT,
                })
            }
            (None, None) => return Ok(None),
        };
        if let Some(path) = ca {
            let pem = std::fs::read(path.trim()).map_err(|source| RedisTierError::CaCertFile {
                variable: ENV_REDIS_CA_CERT,
                source,
            })?;
            builder = builder.ca_certificate_pem(pem);
        }
        Ok(Some(builder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(env: &[(&str, &str)]) -> Result<Option<RedisTierBuilder>, RedisTierError> {
        let env: HashMap<&str, &str> = env.iter().copied().collect();
        let config = Config::builder("1234", "the-app-secret-0123456789")
            .build()
            .unwrap();
        RedisTier::from_env_with(|name| env.get(name).map(|v| v.to_string()), &config)
    }

    #[test]
    fn the_variables_and_their_errors() {
        assert!(from(&[]).unwrap().is_none());
        assert!(
            from(&[(ENV_REDIS_URL, "")]).unwrap().is_none(),
            "empty is unset"
        );
        assert!(from(&[(ENV_REDIS_URL, "redis://127.0.0.1/")])
            .unwrap()
            .is_some());
        let e = from(&[(ENV_REDIS_CA_CERT, "/some/ca.pem")]).unwrap_err();
        assert!(e.to_string().contains(ENV_REDIS_CA_CERT), "{e}");
        let e = from(&[
            (ENV_REDIS_URL, "rediss://:hunter2@127.0.0.1/"),
            (ENV_REDIS_CA_CERT, "/no/such/ca.pem"),
        ])
        .unwrap_err();
        assert!(matches!(e, RedisTierError::CaCertFile { .. }));
        assert!(e.to_string().contains(ENV_REDIS_CA_CERT), "{e}");
        assert!(!e.to_string().contains("hunter2"));
        let e = from(&[
            (ENV_REDIS_URL, "redis://:hunter2@127.0.0.1/"),
            (ENV_REDIS_CLUSTER, "redis://127.0.0.1:7001/"),
        ])
        .unwrap_err();
        assert!(matches!(e, RedisTierError::ConflictingEnvVars { .. }));
        let shown = e.to_string();
        assert!(
            shown.contains(ENV_REDIS_URL) && shown.contains(ENV_REDIS_CLUSTER),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"));
        let nodes = " redis://127.0.0.1:7001/, redis://127.0.0.1:7002/ ,";
        let b = from(&[(ENV_REDIS_CLUSTER, nodes)]).unwrap().unwrap();
        let shown = format!("{b:?}");
        assert!(
            shown.contains("cluster: true") && shown.contains("[2 redacted]"),
            "{shown}"
        );
        assert!(b.build().is_ok());
        let e = from(&[(ENV_REDIS_CLUSTER, ",")])
            .unwrap()
            .unwrap()
            .build()
            .unwrap_err();
        assert!(matches!(e, RedisTierError::NoClusterNodes), "{e}");
    }
}
