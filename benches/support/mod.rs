//! Shared by the bench binaries (`mod support;`) and `examples/hitrate.rs`
//! (`--hit-path`): a realistic token and account, an in-memory verifier
//! that counts its calls, and a warm cache over it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_accountkit::cache::{CacheConfig, CachedVerifier};
use actix_accountkit::types::{Account, Phone};
use actix_accountkit::verify::{Refusal, Verifier};
use futures::future::{BoxFuture, FutureExt};

/// A token shaped like the emulator's (and Account Kit's): `EMAW` + 180
/// alphanumerics, 184 bytes.
pub fn token(i: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut t = String::with_capacity(184);
    t.push_str("EMAW");
    for _ in 0..180 {
        state = splitmix(&mut state);
        t.push(ALPHABET[(state % ALPHABET.len() as u64) as usize] as char);
    }
    t
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An account as the Graph verifier caches it: 16-digit id, a phone, the
/// application id.
pub fn account(i: u64) -> Account {
    Account::new(format!("{:016}", 1_000_000_000_000_000 + i))
        .with_phone(Phone {
            number: format!("+1555{:07}", i % 10_000_000),
            country_prefix: "1".into(),
            national_number: format!("555{:07}", i % 10_000_000),
        })
        .with_application("390265671523337")
}

/// Accepts every token (tokens starting with `bad` are refused with 190),
/// answers at once, and counts calls.
#[derive(Default)]
pub struct Counting {
    pub calls: AtomicU64,
}

impl Verifier for Counting {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Arc<Account>, Refusal>> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let outcome = if token.starts_with("bad") {
            Err(Refusal::InvalidToken { subcode: None })
        } else {
            Ok(Arc::new(account(n)))
        };
        futures::future::ready(outcome).boxed()
    }
}

/// A cache with the default capacity over a [`Counting`] verifier, with a
/// TTL of a day, so that nothing expires during a measurement.
pub fn day_cache() -> CachedVerifier {
    CachedVerifier::new(
        Counting::default(),
        CacheConfig::builder()
            .ttl(Duration::from_secs(24 * 3600))
            .build()
            .expect("cache settings"),
    )
}

/// A [`day_cache`] holding 10,000 verified tokens (the default capacity),
/// all warm, and those tokens.
pub fn warm_cache() -> (CachedVerifier, Vec<String>) {
    let cache = day_cache();
    let tokens: Vec<String> = (0..10_000).map(token).collect();
    for t in &tokens {
        cache
            .verify(t)
            .now_or_never()
            .expect("the counting verifier is ready at once")
            .expect("accepted");
    }
    (cache, tokens)
}
