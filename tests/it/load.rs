//! Under load: upstream amplification by a flood of bogus tokens, and
//! 100,000 requests over 10,000 tokens against a cache of 1,000, over real
//! HTTP. No deadlock, bounded memory, consistent counters. The figures are
//! printed (run with `--nocapture`) and recorded in the README; nothing here
//! asserts a timing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use actix_accountkit::cache::{CacheConfig, CachedVerifier};
use actix_accountkit::types::Account;
use actix_accountkit::verify::{Refusal, Verifier};
use actix_accountkit::AccountKit;
use actix_accountkit::AccountKitAuth;
use actix_accountkit::VerifiedAccount;
use actix_web::{web, App, HttpResponse};
use futures::future::{BoxFuture, FutureExt};
use futures::StreamExt;

async fn me(account: VerifiedAccount) -> HttpResponse {
    HttpResponse::Ok().body(account.id().to_owned())
}

/// Sends every request in `tokens` with `concurrency` in flight; returns the
/// statuses in order.
async fn blast(url: &str, tokens: Vec<String>, concurrency: usize) -> Vec<u16> {
    futures::stream::iter(tokens)
        .map(|t| {
            let url = url.to_owned();
            async move { get_with(&url, Some(&t)).await.status().as_u16() }
        })
        .buffered(concurrency)
        .collect()
        .await
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[actix_web::test]
async fn bogus_token_flood_amplification() {
    let emu = emulator();
    let bogus: Vec<String> = (0..10_000).map(|i| format!("EMAWbogus{i:08}")).collect();
    for (negative_capacity, label) in [
        (12_000, "negative LRU of 12,000"),
        (1_000, "negative LRU of 1,000"),
    ] {
        let kit = AccountKit::builder(config(&emu).build().unwrap())
            .cache(
                CacheConfig::builder()
                    .capacity(1_000)
                    .negative_capacity(negative_capacity)
                    // Longer than any run: on a loaded machine the first
                    // blast can outlast the default 60 s, and expiry is
                    // not what this test measures.
                    .negative_ttl(Duration::from_secs(3600))
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let k = kit.clone();
        let app = serve!(move || App::new()
            .wrap(k.auth().clone())
            .route("/me", web::get().to(me)));
        let url = app.url("/me");
        let before = calls(&emu, "me").await;

        let first = blast(&url, bogus.clone(), 32).await;
        assert!(first.iter().all(|s| *s == 401));
        let first_calls = calls(&emu, "me").await - before;
        // One upstream call per distinct token: amplification 1.0, never more.
        assert_eq!(first_calls, 10_000, "{label}");

        let again = blast(&url, bogus.clone(), 32).await;
        assert!(again.iter().all(|s| *s == 401));
        let second_calls = calls(&emu, "me").await - before - first_calls;
        // Sharding spreads 10,000 keys unevenly (±~4 % per shard), and an
        // LRU that is even slightly too small misses a replayed scan almost
        // completely: the headroom matters.
        if negative_capacity >= 12_000 {
            assert_eq!(
                second_calls, 0,
                "replayed bogus tokens are refused from the negative cache"
            );
        } else {
            assert!(second_calls > 0 && second_calls <= 10_000);
        }
        println!(
            "amplification ({label}): 10,000 distinct bogus tokens -> {first_calls} upstream calls; \
             the same 10,000 again -> {second_calls}"
        );
        app.handle.stop(true).await;
    }
}

/// Accepts `EMAWuser<n>` (account n % 5,000), refuses the rest; counts calls.
struct InMemory {
    calls: AtomicUsize,
}

impl Verifier for InMemory {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Arc<Account>, Refusal>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let outcome = match token
            .strip_prefix("EMAWuser")
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(n) => Ok(Arc::new(
                Account::new(format!("{}", 1_000_000_000_000_000 + n % 5_000))
                    .with_application("1"),
            )),
            None => Err(Refusal::InvalidToken { subcode: None }),
        };
        async move {
            tokio::task::yield_now().await;
            outcome
        }
        .boxed()
    }
}

/// A small deterministic PRNG (xorshift64*), so the workload repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[actix_web::test]
async fn hundred_thousand_requests_ten_thousand_tokens_capacity_thousand() {
    const REQUESTS: usize = 100_000;
    const TOKENS: u64 = 10_000;
    let upstream = Arc::new(InMemory {
        calls: AtomicUsize::new(0),
    });
    let cache = CachedVerifier::from_arc(
        upstream.clone(),
        CacheConfig::builder().capacity(1_000).build().unwrap(),
    );
    let auth = AccountKitAuth::new(cache.clone());
    let app = serve!(move || App::new()
        .wrap(auth.clone())
        .route("/me", web::get().to(me)));

    // Zipf-like (s = 1) over 10,000 tokens: rank = floor(N^u) - 1, with 5 %
    // bogus tokens mixed in.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let tokens: Vec<String> = (0..REQUESTS)
        .map(|_| {
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            if rng.next().is_multiple_of(20) {
                format!("EMAWbogus{}", rng.next() % 50_000)
            } else {
                let rank = ((TOKENS as f64).powf(u) as u64).clamp(1, TOKENS) - 1;
                format!("EMAWuser{rank}")
            }
        })
        .collect();
    let expected_ok = tokens.iter().filter(|t| t.starts_with("EMAWuser")).count();

    let started = Instant::now();
    let statuses =
        tokio::time::timeout(Duration::from_secs(900), blast(&app.url("/me"), tokens, 64))
            .await
            .expect("no deadlock: 100,000 requests finish");
    let took = started.elapsed();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), expected_ok);
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        REQUESTS - expected_ok
    );

    let s = cache.stats();
    assert_eq!(
        s.hits + s.misses + s.negative_hits,
        REQUESTS as u64,
        "every request reached the cache once"
    );
    assert_eq!(
        s.misses,
        s.upstream_calls + s.shared_hits + s.coalesced + s.overloaded
    );
    assert_eq!(
        s.upstream_calls,
        upstream.calls.load(Ordering::Relaxed) as u64
    );
    assert_eq!(s.overloaded, 0);
    assert!(s.entries <= 1_024, "bounded: {} entries", s.entries);
    let rss = peak_rss_kib().unwrap_or(0);
    println!(
        "load: {REQUESTS} requests over {TOKENS} tokens, capacity 1,000: {took:?} ({:.0} req/s, debug build, \
         client and server in one process), hit rate {:.3}, upstream calls {}, coalesced {}, \
         evictions {}, entries {}, peak RSS {} MiB",
        REQUESTS as f64 / took.as_secs_f64(),
        s.hit_rate(),
        s.upstream_calls,
        s.coalesced,
        s.evictions,
        s.entries,
        rss / 1024
    );
}
