//! Account Kit user-token verification for actix-web.
//!
//! Mobile and web apps log their users in with Account Kit (phone number or
//! email, no password) and send the resulting user access token with every
//! request. This crate sits in front of the routes: it validates each token
//! against the Account Kit Graph API (`GET /me` with `appsecret_proof`,
//! then the `application.id` check), caches what it learned, hands the
//! handler a [`VerifiedAccount`], and gives the
//! server an [`AdminClient`] for code exchange, logout,
//! logout-everywhere, account deletion and account export.
//!
//! ```no_run
//! use actix_accountkit::{AccountKit, Config, VerifiedAccount};
//! use actix_web::{web, App, HttpServer};
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let kit = AccountKit::new(Config::builder("1234", "account-kit-app-secret").build()?)?;
//!     HttpServer::new(move || {
//!         App::new()
//!             .app_data(web::Data::new(kit.admin().clone()))
//!             .wrap(kit.auth().clone())
//!             .route("/me", web::get().to(|a: VerifiedAccount| async move { a.id().to_owned() }))
//!     })
//!     .bind("127.0.0.1:8080")?
//!     .run()
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! # The model
//!
//! The types a server names are at the crate root: [`AccountKit`] (all of
//! it wired in one call), [`Config`], [`CacheConfig`], [`AccountKitAuth`],
//! [`VerifiedAccount`], [`MaybeAccount`], [`AdminClient`], [`Refusal`],
//! [`Error`]. Each is built the same way: `X::builder(…)` → `XBuilder` →
//! `build()` → `Result<X, _>`. The modules, from the bottom up (none uses a
//! module that uses it back):
//!
//! * [`config`]: app id, Account Kit app secret (held in a secret type),
//!   API version, endpoint, timeout, retries; [`error`]: every error.
//! * [`types`]: what Account Kit answers; [`token`]: where the token is
//!   found and its syntax; [`hash`]: the SHA-256 a token is kept as.
//! * [`client`]: one async method per Graph call.
//! * [`verify`]: the pluggable [`Verifier`](verify::Verifier) trait, the
//!   [`Verification`](verify::Verification) it returns, and the Graph
//!   verifier, which tells a foreign token (401) from a wrong secret (503,
//!   logged for the operator).
//! * [`shared`]: the hook for a second cache tier shared by several
//!   instances, which also carries revocations between them; `redis`
//!   (feature `redis`) implements it on Redis.
//! * [`cache`]: a sharded cache of verified accounts keyed by SHA-256 of the
//!   token, kept under W-TinyLFU (frequency-aware admission, an adaptive
//!   window and aging), with a separate LRU of definite refusals, jittered expiry,
//!   single-flight misses, and the revocation protocol.
//! * [`auth`]: [`AccountKitAuth`], the authentication step and the RFC 6750
//!   answers; [`middleware`] and [`extract`] run it as a `Transform` and as
//!   `FromRequest`.
//! * [`admin`]: revocations that keep the cache consistent, and the
//!   accounts listing; [`export`]: the listing as CSV (the documented export
//!   script, with real quoting, retries and resumable failures).
//! * `emulator` (feature `emulator`): an emulator of the Account Kit service,
//!   which was shut down, for your tests and ours.
//! * `metrics` (feature `prometheus`): the counters and Account Kit call
//!   durations for Prometheus. Verifications that leave the cache run in
//!   an `accountkit.verify` span, and the account id is recorded as
//!   `enduser.id` on the request's span (README, "Observability").
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admin;
pub mod auth;
pub mod cache;
pub mod client;
pub mod config;
pub mod error;
pub mod export;
pub mod extract;
pub mod hash;
mod kit;
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub mod metrics;
pub mod middleware;
mod observe;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
pub mod shared;
pub mod token;
pub mod types;
pub mod verify;

#[cfg(feature = "emulator")]
#[cfg_attr(docsrs, doc(cfg(feature = "emulator")))]
pub mod emulator;

pub use admin::AdminClient;
pub use auth::{AccountKitAuth, MaybeAccount, VerifiedAccount};
pub use cache::CacheConfig;
pub use config::Config;
pub use error::Error;
pub use kit::{AccountKit, AccountKitBuilder};
pub use verify::Refusal;

/// The README's Rust examples, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
