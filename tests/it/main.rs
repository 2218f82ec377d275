//! The integration tests, one binary (one link, one place for fixtures),
//! one module per capability. Everything runs over real HTTP against the
//! emulator on 127.0.0.1, port 0; the Redis tier's tests start their own
//! redis-server.
//!
//! Run one capability with `cargo test --all-features --test it redis_tier::`.

#[macro_use]
mod support;

mod abandoned_flights;
#[cfg(feature = "cli")]
mod cli;
mod client;
mod code2;
mod confused_deputy;
mod emulator;
mod emulator_control;
mod export;
mod fail_fast;
mod flood;
mod freshness;
mod hostile;
mod load;
#[cfg(feature = "prometheus")]
mod metrics;
mod nested_auth;
mod outage;
mod protect;
#[cfg(feature = "redis")]
mod redis_breaker;
#[cfg(feature = "redis")]
mod redis_cluster;
#[cfg(feature = "redis")]
mod redis_tier;
#[cfg(feature = "redis")]
mod redis_tls;
mod revocation;
mod secret_logs;
mod secrets;
mod tracing_spans;
