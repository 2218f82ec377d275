//! Why a tier could not be built.

/// Why a [`RedisTier`](super::RedisTier) could not be built. No message
/// repeats the URL (it may hold a password) or anything of the app secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisTierError {
    /// The URL is not a Redis URL (its text is not repeated: it may hold a
    /// password).
    #[error(
        "invalid Redis URL (expected redis://[[user]:password@]host[:port][/db], \
         or rediss://… for TLS)"
    )]
    InvalidUrl,
    /// A CA or a client certificate was given for a plaintext `redis://`
    /// URL: TLS needs `rediss://` (nothing is sent in plaintext instead).
    #[error(
        "a CA or client certificate was given, but the Redis URL is redis:// (plaintext): \
         use rediss:// for TLS"
    )]
    TlsWithoutRediss,
    /// The CA certificate PEM holds no certificate, or one that cannot be
    /// read.
    #[error("the Redis CA certificate is not a readable PEM certificate")]
    InvalidCaCertificate,
    /// The client certificate or its key (PEM) cannot be read (neither is
    /// repeated).
    #[error("the Redis client certificate or its private key is not readable PEM")]
    InvalidClientCertificate,
    /// The app id is empty or not decimal.
    #[error("the app id must be the decimal Facebook app id")]
    InvalidAppId,
    /// The namespace is empty or holds whitespace (or, for a cluster,
    /// braces: the tier makes its hash tag of it).
    #[error(
        "the Redis namespace must be non-empty, without whitespace (nor braces, for a cluster)"
    )]
    InvalidNamespace,
    /// A cluster was given no node.
    #[error("a Redis Cluster needs at least one node URL")]
    NoClusterNodes,
    /// Some cluster nodes are `rediss://` and others `redis://`.
    #[error("the Redis Cluster node URLs must all be redis:// or all rediss://")]
    MixedClusterSchemes,
    /// Two variables read by [`RedisTier::from_env`](super::RedisTier::from_env)
    /// that exclude each other are both set.
    #[error("both {first} and {second} are set: a Redis is one server or a cluster; unset one")]
    ConflictingEnvVars {
        /// One of them.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
    /// A variable read by [`RedisTier::from_env`](super::RedisTier::from_env)
    /// needs another that is not set.
    #[error("{variable} is set, but neither ACCOUNTKIT_REDIS_URL nor ACCOUNTKIT_REDIS_CLUSTER is")]
    OrphanEnvVar {
        /// The variable set on its own.
        variable: &'static str,
    },
    /// The CA certificate file named by an environment variable could not
    /// be read.
    #[error("could not read the CA certificate file named by {variable}: {source}")]
    CaCertFile {
        /// The variable naming the file.
        variable: &'static str,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The background thread or its runtime could not be started.
    #[error("could not start the Redis background thread: {0}")]
    Thread(#[source] std::io::Error),
}
