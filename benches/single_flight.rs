//! Single flight: 1,000 concurrent requests on one cold token make one
//! upstream call; their wall time against one request alone.
//!
//! ```text
//! cargo bench --bench single_flight
//! ```
//!
//! The upstream is an in-memory verifier that answers after 20 ms (a
//! round trip to Account Kit) and counts its calls. Each round uses a new
//! cold token: first one request alone, then 1,000 tasks spawned at once on
//! the actix runtime. The median of the rounds is printed.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_accountkit::cache::{CacheConfig, CachedVerifier};
use actix_accountkit::types::Account;
use actix_accountkit::verify::{Refusal, Verifier};
use futures::future::{BoxFuture, FutureExt};

const LATENCY: Duration = Duration::from_millis(20);
const CONCURRENT: usize = 1_000;
const ROUNDS: usize = 11;

#[derive(Default)]
struct Slow {
    calls: AtomicU64,
}

impl Verifier for Slow {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Arc<Account>, Refusal>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let account = Arc::new(support::account(token.len() as u64));
        async move {
            actix_rt::time::sleep(LATENCY).await;
            Ok(account)
        }
        .boxed()
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then
    // only check that it runs.
    let rounds = if std::env::args().any(|a| a == "--bench") {
        ROUNDS
    } else {
        1
    };
    actix_rt::System::new().block_on(async move {
        let slow = Arc::new(Slow::default());
        let cache = CachedVerifier::from_arc(
            slow.clone(),
            CacheConfig::builder().ttl(Duration::from_secs(3600)).build().expect("cache settings"),
        );
        let (mut alone, mut together) = (Vec::new(), Vec::new());
        let mut max_calls = 0;
        for round in 0..rounds {
            let one = support::token(2 * round as u64);
            let start = Instant::now();
            cache.verify(&one).await.expect("accepted");
            alone.push(start.elapsed());

            let cold = support::token(2 * round as u64 + 1);
            let before = slow.calls.load(Ordering::SeqCst);
            let start = Instant::now();
            let tasks: Vec<_> = (0..CONCURRENT)
                .map(|_| {
                    let cache = cache.clone();
                    let cold = cold.clone();
                    actix_rt::spawn(async move { cache.verify(&cold).await.is_ok() })
                })
                .collect();
            let mut ok = 0;
            for t in tasks {
                ok += usize::from(t.await.expect("task"));
            }
            together.push(start.elapsed());
            let calls = slow.calls.load(Ordering::SeqCst) - before;
            assert_eq!(ok, CONCURRENT);
            max_calls = max_calls.max(calls);
        }
        let s = cache.stats();
        let (alone, together) = (median(alone), median(together));
        println!("single flight: {CONCURRENT} concurrent requests on one cold token, upstream latency {LATENCY:?}, {rounds} rounds (median)");
        println!("  upstream calls per cold token (max over rounds): {max_calls}");
        println!("  one request alone:         {:>9.3} ms", alone.as_secs_f64() * 1e3);
        println!("  {CONCURRENT} requests together:  {:>9.3} ms", together.as_secs_f64() * 1e3);
        println!("  ratio:                     {:>9.3}x", together.as_secs_f64() / alone.as_secs_f64());
        println!("  cache: misses {} = upstream {} + coalesced {}", s.misses, s.upstream_calls, s.coalesced);
        assert_eq!(max_calls, 1, "single flight");
    });
}
