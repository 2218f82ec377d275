//! Account Kit user-token verification for actix-web.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cache;
pub mod client;
pub mod config;
pub mod error;
pub mod token;
pub mod types;
pub mod verify;

#[cfg(feature = "emulator")]
#[cfg_attr(docsrs, doc(cfg(feature = "emulator")))]
pub mod testkit;

pub use error::Error;
