//! The integration tests, one binary (one link, one place for fixtures),
//! one module per capability. Everything runs over real HTTP against the
//! emulator on 127.0.0.1, port 0; the Redis tier's tests start their own
//! redis-server.
//!
//! Run one capability with `cargo test --all-features --test it redis_tier::`.

#[macro_use]
mod support;

mod abandoned_flights;
mod client;
mod confused_deputy;
mod emulator;
mod export;
mod flood;
mod hostile;
mod load;
mod nested_auth;
mod outage;
mod protect;
#[cfg(feature = "redis")]
mod redis_tier;
mod revocation;
mod secret_logs;
mod secrets;
