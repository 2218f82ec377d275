//! Issue 12: a flood of bogus tokens (30 % of the requests) neither evicts
//! verified accounts nor skews their frequency estimates: the verified
//! tokens' hit rate stays within 1 point of the same requests without the
//! flood, through the real `CachedVerifier` (sharded W-TinyLFU policy,
//! negative LRU).
//!
//! Unlike the other modules, this one does not go over HTTP: a hit rate
//! needs about 10^5 requests, and what is under test is the cache, not the
//! upstream. The verifier is an in-process one that answers at once, so
//! the replay is deterministic (a seeded trace, no clock: the TTLs are a
//! day long).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_accountkit::cache::{CacheConfig, CacheStats, CachedVerifier};
use actix_accountkit::types::Account;
use actix_accountkit::verify::{Refusal, Verification, Verifier};
use futures::future::{BoxFuture, FutureExt};

/// Tokens in use.
const POPULATION: u32 = 10_000;
/// 10 % of the population, the default capacity's share in BENCHMARKS.md.
const CAPACITY: usize = 1_000;
const WARMUP: usize = 20_000;
const MEASURED: usize = 60_000;

/// Accepts `tok<n>` as account `<n>`, refuses anything else as an invalid
/// token (code 190); counts its calls.
#[derive(Default)]
struct Upstream {
    calls: AtomicU64,
}

impl Verifier for Upstream {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Verification> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let outcome = match token.strip_prefix("tok") {
            Some(id) => Ok(Arc::new(Account::new(id))),
            None => Err(Refusal::InvalidToken { subcode: None }),
        };
        futures::future::ready(outcome).boxed()
    }
}

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The verified requests: Zipf(1.0) over the population, by inverse CDF.
fn zipf_trace(rng: &mut Rng, n: usize) -> Vec<u32> {
    let mut acc = 0.0;
    let mut cdf: Vec<f64> = (1..=POPULATION)
        .map(|k| {
            acc += 1.0 / f64::from(k);
            acc
        })
        .collect();
    for c in &mut cdf {
        *c /= acc;
    }
    (0..n)
        .map(|_| {
            let u = rng.unit();
            cdf.partition_point(|&c| c <= u).min(cdf.len() - 1) as u32
        })
        .collect()
}

struct Outcome {
    /// Hits among the measured verified requests.
    hits: u64,
    stats: CacheStats,
    /// Whether each of the 100 hottest tokens is cached at the end.
    hot_kept: usize,
}

/// Replays the verified requests as the middleware drives the cache
/// (`verify_now`, then `verify` on a miss). With `flood = (num, den)`,
/// never-repeated bogus tokens come before each verified request, each
/// followed by another with probability `num / den`: 3/10 makes them 30 %
/// of all requests.
async fn replay(trace: &[u32], flood: Option<(u64, u64)>) -> Outcome {
    let cache = CachedVerifier::new(
        Upstream::default(),
        CacheConfig::builder()
            .capacity(CAPACITY)
            .negative_capacity(1_000)
            .ttl(Duration::from_secs(24 * 3600))
            .negative_ttl(Duration::from_secs(24 * 3600))
            .build()
            .expect("cache settings"),
    );
    let mut rng = Rng(99);
    let (mut hits, mut bogus) = (0u64, 0u64);
    for (i, &user) in trace.iter().enumerate() {
        if let Some((num, den)) = flood {
            // Geometric: another bogus token with probability num / den.
            while rng.next() % den < num {
                bogus += 1;
                let token = format!("bad{bogus}");
                assert!(cache.verify_now(&token).is_none(), "never seen before");
                assert!(matches!(
                    cache.verify(&token).await,
                    Err(Refusal::InvalidToken { .. })
                ));
            }
        }
        let token = format!("tok{user}");
        let hit = cache.verify_now(&token).is_some();
        if !hit {
            let account = cache.verify(&token).await.expect("a valid token");
            assert_eq!(account.id, user.to_string());
        }
        if i >= WARMUP && hit {
            hits += 1;
        }
    }
    if flood.is_some() {
        let share = bogus as f64 / (bogus + trace.len() as u64) as f64;
        assert!((0.28..0.32).contains(&share), "bogus share {share}");
    }
    let hot_kept = (0..100)
        .filter(|u| cache.verify_now(&format!("tok{u}")).is_some())
        .count();
    Outcome {
        hits,
        stats: cache.stats(),
        hot_kept,
    }
}

#[actix_web::test]
async fn a_bogus_token_flood_keeps_the_verified_hit_rate() {
    let trace = zipf_trace(&mut Rng(12), WARMUP + MEASURED);
    let calm = replay(&trace, None).await;
    // 30 % of all requests bogus: 3 bogus for 7 verified, on average.
    let flooded = replay(&trace, Some((3, 10))).await;

    let rate = |o: &Outcome| 100.0 * o.hits as f64 / MEASURED as f64;
    let (calm_rate, flooded_rate) = (rate(&calm), rate(&flooded));
    eprintln!(
        "verified hit rate: {calm_rate:.2} % without the flood, {flooded_rate:.2} % with it; {:?}",
        flooded.stats
    );
    // The cache at work (73.5 % when this was written).
    assert!(
        calm_rate > 65.0,
        "hit rate without the flood {calm_rate:.2}"
    );
    assert!(
        (calm_rate - flooded_rate).abs() <= 1.0,
        "verified hit rate {flooded_rate:.2} % with the flood, {calm_rate:.2} % without"
    );

    // The flood went through the cache: refused upstream, kept on the
    // negative side (full, and turning over)...
    let (c, f) = (&calm.stats, &flooded.stats);
    assert_eq!(c.negative_entries, 0);
    assert_eq!(f.negative_entries, 1_000);
    assert!(f.evictions > c.evictions + 20_000, "{f:?}");
    // ...and never reached the verified accounts' policy: the same
    // admissions, rejections, window and entries, hit for hit.
    assert_eq!(flooded.hits, calm.hits);
    assert_eq!(
        (f.hits, f.admitted, f.rejected, f.window_size, f.entries),
        (c.hits, c.admitted, c.rejected, c.window_size, c.entries)
    );
    assert!(c.rejected > 0 && c.admitted > 0, "{c:?}");
    assert_eq!(calm.hot_kept, 100);
    assert_eq!(flooded.hot_kept, 100);
}
