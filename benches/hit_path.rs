//! The cache hit path against its floor, and under contention.
//!
//! ```text
//! cargo bench --bench hit_path
//! ```
//!
//! * `hit_path/floor`: SHA-256 of the token + `HashMap<[u8; 32], Arc<Account>>::get`.
//! * `hit_path/verify_now`: the middleware's synchronous hit path (SHA-256,
//!   shard lock, LRU get, expiry check, `Arc` clone out, counter).
//! * `hit_path/locate_bearer`: the step before the cache in the middleware
//!   (finding the token in the header; on a hit, its syntax check is
//!   skipped, see `Verifier::recall`), for scale.
//! * `hit_path/parse_bearer`: the same with the syntax check, which a miss
//!   adds.
//! * `hit_path/verify`: the async trait method on a hit (adds boxing a ready
//!   future and polling it).
//! * `contention/*`: the same hit from 2 OS threads at once (the machine has
//!   2 cores), on one shard and on two shards; and 8 tasks on 2 actix
//!   runtimes (as 2 actix-web workers would run them).
//!
//! Criterion's time per iteration is per lookup for the single-threaded
//! rows; for the 2-thread rows one iteration is one lookup on *each* thread
//! (so equal time means no slowdown from contention); for the task rows it
//! is one lookup, aggregated over all tasks.

mod support;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use actix_accountkit::cache::CachedVerifier;
use actix_accountkit::hash::token_hash;
use actix_accountkit::verify::Verifier;
use criterion::{criterion_group, criterion_main, Criterion};
use futures::FutureExt;

use support::{account, warm_cache};

fn hit_path(c: &mut Criterion) {
    let (cache, tokens) = warm_cache();
    let t = tokens[4_242].clone();
    let floor: HashMap<[u8; 32], Arc<_>> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (token_hash(t), Arc::new(account(i as u64))))
        .collect();

    let mut g = c.benchmark_group("hit_path");
    g.bench_function("sha256", |b| b.iter(|| token_hash(black_box(&t))));
    g.bench_function("floor", |b| {
        b.iter(|| black_box(floor.get(&token_hash(black_box(&t)))).is_some())
    });
    g.bench_function("floor_with_arc_clone", |b| {
        b.iter(|| floor.get(&token_hash(black_box(&t))).cloned())
    });
    // Not part of the cache, but on the middleware's hit path before it:
    // finding the token in `Authorization: Bearer …` (and, on a miss,
    // checking its syntax).
    let header = actix_web::http::header::HeaderValue::from_str(&format!("Bearer {t}"))
        .expect("a valid header");
    g.bench_function("locate_bearer", |b| {
        b.iter(|| {
            actix_accountkit::token::locate_bearer(black_box(&header))
                .is_some_and(|l| l.unchecked_bytes().is_some())
        })
    });
    g.bench_function("parse_bearer", |b| {
        b.iter(|| actix_accountkit::token::parse_bearer(black_box(&header)).is_some())
    });
    g.bench_function("verify_now", |b| b.iter(|| cache.verify_now(black_box(&t))));
    g.bench_function("verify", |b| {
        b.iter(|| cache.verify(black_box(&t)).now_or_never())
    });
    g.finish();
}

/// Two threads, each doing `iters` hits after a common start.
fn two_threads(cache: &CachedVerifier, a: &str, b: &str, iters: u64) -> Duration {
    let barrier = Arc::new(Barrier::new(3));
    let handles: Vec<_> = [a.to_owned(), b.to_owned()]
        .into_iter()
        .map(|t| {
            let cache = cache.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..iters {
                    black_box(cache.verify_now(black_box(&t)));
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().expect("bench thread");
    }
    start.elapsed()
}

/// `tasks` tasks spread over `runtimes` actix runtimes (one OS thread each,
/// like actix-web workers), `iters` hits in all; tasks yield every 64 hits
/// so that they interleave.
fn actix_tasks(
    cache: &CachedVerifier,
    tokens: &[String],
    runtimes: usize,
    tasks: usize,
    iters: u64,
) -> Duration {
    let per_task = iters / tasks as u64;
    let barrier = Arc::new(Barrier::new(runtimes + 1));
    let handles: Vec<_> = (0..runtimes)
        .map(|r| {
            let cache = cache.clone();
            let barrier = barrier.clone();
            let mine: Vec<String> = (0..tasks / runtimes)
                .map(|k| tokens[(r * tasks + k) % tokens.len()].clone())
                .collect();
            std::thread::spawn(move || {
                actix_rt::System::new().block_on(async move {
                    barrier.wait();
                    let joins: Vec<_> = mine
                        .into_iter()
                        .map(|t| {
                            let cache = cache.clone();
                            actix_rt::spawn(async move {
                                for i in 0..per_task {
                                    black_box(cache.verify(black_box(&t)).await.is_ok());
                                    if i % 64 == 63 {
                                        actix_rt::task::yield_now().await;
                                    }
                                }
                            })
                        })
                        .collect();
                    for j in joins {
                        j.await.expect("bench task");
                    }
                })
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().expect("bench runtime");
    }
    start.elapsed()
}

fn contention(c: &mut Criterion) {
    let (cache, tokens) = warm_cache();
    // Two tokens on different shards (16 shards: the low 4 bits of the hash).
    let shard = |t: &String| token_hash(t)[0] & 15;
    let a = tokens[0].clone();
    let b = tokens
        .iter()
        .find(|t| shard(t) != shard(&a))
        .expect("another shard")
        .clone();

    let mut g = c.benchmark_group("contention");
    g.bench_function("1_thread", |bn| bn.iter(|| cache.verify_now(black_box(&a))));
    g.bench_function("2_threads_same_token", |bn| {
        bn.iter_custom(|iters| two_threads(&cache, &a, &a, iters))
    });
    g.bench_function("2_threads_two_shards", |bn| {
        bn.iter_custom(|iters| two_threads(&cache, &a, &b, iters))
    });
    g.bench_function("1_task_1_runtime", |bn| {
        bn.iter_custom(|iters| actix_tasks(&cache, &tokens, 1, 1, iters))
    });
    g.bench_function("8_tasks_1_runtime", |bn| {
        bn.iter_custom(|iters| actix_tasks(&cache, &tokens, 1, 8, iters.max(8)))
    });
    g.bench_function("8_tasks_2_runtimes", |bn| {
        bn.iter_custom(|iters| actix_tasks(&cache, &tokens, 2, 8, iters.max(8)))
    });
    g.finish();
}

criterion_group!(benches, hit_path, contention);
criterion_main!(benches);
