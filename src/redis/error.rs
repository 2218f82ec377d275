//! Why a tier could not be built.

/// Why a [`RedisTier`](super::RedisTier) could not be built. No message
/// repeats the URL (it may hold a password) or anything of the app secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisTierError {
    /// The URL is not a Redis URL (its text is not repeated: it may hold a
    /// password).
    #[error("invalid Redis URL (expected redis://[:password@]host[:port][/db])")]
    InvalidUrl,
    /// The app id is empty or not decimal.
    #[error("the app id must be the decimal Facebook app id")]
    InvalidAppId,
    /// The namespace is empty or holds whitespace.
    #[error("the Redis namespace must be non-empty and without whitespace")]
    InvalidNamespace,
    /// The background thread or its runtime could not be started.
    #[error("could not start the Redis background thread: {0}")]
    Thread(#[source] std::io::Error),
}
