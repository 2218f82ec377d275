//! Account Kit user-token verification for actix-web.
//!
//! Mobile and web apps log their users in with Account Kit (phone number or
//! email, no password) and send the resulting user access token with every
//! request. This crate sits in front of the routes: it validates each token
//! against the Account Kit Graph API (`GET /me` with `appsecret_proof`,
//! then the `application.id` check), caches what it learned, hands the
//! handler a [`VerifiedAccount`], and gives the
//! server an [`AdminClient`](admin::AdminClient) for code exchange, logout,
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
//! * [`config`]: app id, Account Kit app secret (held in a secret type),
//!   API version, endpoint, timeout, retries.
//! * [`client`]: one async method per Graph call; [`error`]: its errors.
//! * [`verify`]: the pluggable [`Verifier`](verify::Verifier) trait and the
//!   Graph verifier, which tells a foreign token (401) from a wrong secret
//!   (503, logged for the operator).
//! * [`cache`]: a sharded LRU of verified accounts keyed by SHA-256 of the
//!   token, with a separate LRU of definite refusals, jittered expiry and
//!   single-flight misses.
//! * [`middleware`] and [`extract`]: the actix-web side, answering refusals
//!   per RFC 6750; [`token`]: where the token is found.
//! * [`admin`]: revocations that keep the cache consistent, and the
//!   accounts listing; [`export`]: the listing as CSV (the documented export
//!   script, with real quoting, retries and resumable failures).
//! * [`shared`]: the hook for a second cache tier shared by several
//!   instances, which also carries revocations between them; `redis`
//!   (feature `redis`) implements it on Redis.
//! * `emulator` (feature `emulator`): an emulator of the Account Kit service,
//!   which was shut down, for your tests and ours.
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
pub mod middleware;
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
