//! Hit-rate simulator: replays workloads through the real `CachedVerifier`
//! (an in-memory verifier counts the upstream calls) and beside each result
//! computes Belady's optimal hit rate (OPT) for the same trace and capacity.
//!
//! ```text
//! cargo run --release --example hitrate [-- --requests 1000000 --warmup 200000 --out docs/bench]
//! ```
//!
//! Prints a table, writes `hitrate.csv` and draws `hitrate.svg` in `--out`.
//!
//! * Population: 100,000 valid tokens. Requests follow Zipf(s) over them,
//!   s ∈ {0.6, 0.8, 1.0, 1.2} (rank 1 is the most requested), or uniform.
//! * `scan`: Zipf(1.0) with, every 50,000 requests, a scan of 10,000
//!   consecutive tokens of the population (a batch job walking the users).
//! * `churn`: Zipf(1.0); after each request, with probability 1/500, that
//!   user logs out (`invalidate_as_refused`, the local part of `AdminClient::logout`) and comes
//!   back with a new token.
//! * `flood`: Zipf(1.0) with 30 % of the requests carrying a never-seen
//!   bogus token (refused upstream with code 190, cached negatively).
//! * Capacities 1 % to 50 % of the population. The cache runs with its
//!   default shard policy (up to 16 shards, each at least 64 entries, each
//!   its own LRU), and again with one shard (a global LRU) to show what
//!   sharding costs. TTLs are one day and jitter 0: nothing expires during a
//!   run, so only capacity decides.
//! * Hit rates count the requests after the warm-up only (same window for
//!   the cache and for OPT). OPT is Belady's MIN with bypass: on a miss it
//!   may decline to cache the token (when its next use is the farthest);
//!   a bogus token, never requested again, is never cached by OPT.
//! * Zipf sampling is a seeded splitmix64 PRNG and an inverse-CDF table:
//!   every run replays the same traces.

use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_accountkit::cache::{CacheConfig, CachedVerifier};
use actix_accountkit::types::Account;
use actix_accountkit::verify::{Refusal, Verifier};
use clap::Parser;
use futures::future::{BoxFuture, FutureExt};

const POPULATION: u32 = 100_000;
const CAPACITY_PERCENT: [f64; 6] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0];
/// Keys at or above this are bogus tokens.
const BOGUS: u32 = 1 << 31;

#[derive(Parser, Debug)]
#[command(about = "Cache hit rates of CachedVerifier against Belady's optimum")]
struct Args {
    /// Requests measured per workload (after the warm-up).
    #[arg(long, default_value_t = 1_000_000)]
    requests: usize,
    /// Requests replayed first, not measured.
    #[arg(long, default_value_t = 200_000)]
    warmup: usize,
    /// Where to write hitrate.csv and hitrate.svg.
    #[arg(long, default_value = "docs/bench")]
    out: PathBuf,
    /// PRNG seed.
    #[arg(long, default_value_t = 4)]
    seed: u64,
}

/// splitmix64: small, seeded, good enough for sampling.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }
}

/// Zipf(s) over ranks 0..n by inverse CDF: P(rank k) ∝ 1 / (k + 1)^s.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u32, s: f64) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / f64::from(k).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Self { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> u32 {
        let u = rng.unit();
        let i = self.cdf.partition_point(|&c| c <= u);
        i.min(self.cdf.len() - 1) as u32
    }
}

#[derive(Clone, Copy)]
enum Event {
    /// A request carrying the token of this key.
    Get(u32),
    /// The holder of this key logs out.
    Logout(u32),
}

struct Workload {
    name: String,
    events: Vec<Event>,
}

fn zipf_trace(rng: &mut Rng, s: f64, n: usize) -> Vec<Event> {
    let z = Zipf::new(POPULATION, s);
    (0..n).map(|_| Event::Get(z.sample(rng))).collect()
}

fn workloads(requests: usize, seed: u64) -> Vec<Workload> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for s in [0.6, 0.8, 1.0, 1.2] {
        out.push(Workload {
            name: format!("zipf-{s:.1}"),
            events: zipf_trace(&mut rng, s, requests),
        });
    }
    out.push(Workload {
        name: "uniform".into(),
        events: (0..requests)
            .map(|_| Event::Get(rng.below(POPULATION)))
            .collect(),
    });

    let z = Zipf::new(POPULATION, 1.0);
    // A scan of 10,000 consecutive users every 50,000 requests.
    let mut events = Vec::with_capacity(requests);
    let mut cursor = 0u32;
    while events.len() < requests {
        if events.len() % 60_000 == 50_000 {
            for _ in 0..10_000 {
                events.push(Event::Get(cursor));
                cursor = (cursor + 1) % POPULATION;
            }
        } else {
            events.push(Event::Get(z.sample(&mut rng)));
        }
    }
    events.truncate(requests);
    out.push(Workload {
        name: "zipf-1.0+scan".into(),
        events,
    });

    // Login/logout churn: user `rank` holds token `current[rank]`.
    let mut current: Vec<u32> = (0..POPULATION).collect();
    let mut next_key = POPULATION;
    let mut events = Vec::with_capacity(requests + requests / 400);
    let mut gets = 0;
    while gets < requests {
        let rank = z.sample(&mut rng) as usize;
        events.push(Event::Get(current[rank]));
        gets += 1;
        if rng.below(500) == 0 {
            events.push(Event::Logout(current[rank]));
            current[rank] = next_key;
            next_key += 1;
        }
    }
    out.push(Workload {
        name: "zipf-1.0+churn".into(),
        events,
    });

    // 30 % never-seen bogus tokens.
    let mut bogus = BOGUS;
    let events = (0..requests)
        .map(|_| {
            if rng.below(10) < 3 {
                bogus += 1;
                Event::Get(bogus)
            } else {
                Event::Get(z.sample(&mut rng))
            }
        })
        .collect();
    out.push(Workload {
        name: "zipf-1.0+flood".into(),
        events,
    });
    out
}

fn token_of(buf: &mut String, key: u32) {
    buf.clear();
    if key >= BOGUS {
        let _ = write!(buf, "bad{}", key - BOGUS);
    } else {
        let _ = write!(buf, "tok{key}");
    }
}

/// Accepts `tok…`, refuses `bad…` with 190; answers at once; counts calls.
#[derive(Default)]
struct Counting {
    calls: AtomicU64,
}

impl Verifier for Counting {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Arc<Account>, Refusal>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let outcome = if token.starts_with("bad") {
            Err(Refusal::InvalidToken { subcode: None })
        } else {
            Ok(Arc::new(Account::new(token)))
        };
        futures::future::ready(outcome).boxed()
    }
}

struct Measured {
    hits: u64,
    requests: u64,
    upstream: u64,
    shards: usize,
}

/// Replays `events` through a real `CachedVerifier` as the middleware
/// drives it: `verify_now` (the synchronous hit path), then `verify` on a
/// miss; logouts call `invalidate_as_refused`.
fn replay(events: &[Event], capacity: usize, max_shards: usize, warmup: usize) -> Measured {
    let upstream = Arc::new(Counting::default());
    let day = Duration::from_secs(24 * 3600);
    let cache = CachedVerifier::from_arc(
        upstream.clone(),
        CacheConfig::builder()
            .capacity(capacity)
            .shards(max_shards)
            .ttl(day)
            .negative_ttl(day)
            .ttl_jitter(0.0)
            .build()
            .expect("cache settings"),
    );
    let mut buf = String::new();
    let (mut seen, mut hits, mut calls_at_warmup) = (0usize, 0u64, 0u64);
    for event in events {
        match *event {
            Event::Get(key) => {
                if seen == warmup {
                    calls_at_warmup = upstream.calls.load(Ordering::Relaxed);
                }
                token_of(&mut buf, key);
                let hit = match cache.verify_now(&buf) {
                    Some(_) => true,
                    None => {
                        let _ = cache.verify(&buf).now_or_never();
                        false
                    }
                };
                if seen >= warmup && hit {
                    hits += 1;
                }
                seen += 1;
            }
            Event::Logout(key) => {
                token_of(&mut buf, key);
                cache.invalidate_as_refused(&buf);
            }
        }
    }
    let stats = cache.stats();
    assert_eq!(
        stats.upstream_calls,
        upstream.calls.load(Ordering::Relaxed),
        "the cache counts what the verifier saw"
    );
    Measured {
        hits,
        requests: (seen - warmup) as u64,
        upstream: upstream.calls.load(Ordering::Relaxed) - calls_at_warmup,
        shards: format!("{cache:?}")
            .split("shards: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    }
}

/// Belady's MIN with bypass over the requests of `events`; returns the hits
/// after the warm-up.
fn belady(keys: &[u32], next: &[usize], capacity: usize, warmup: usize) -> u64 {
    const NEVER: usize = usize::MAX - 1;
    const ABSENT: usize = usize::MAX;
    let max_key = keys
        .iter()
        .filter(|&&k| k < BOGUS)
        .max()
        .copied()
        .unwrap_or(0) as usize;
    // cached[k] = the next use the cache holds key k for, or ABSENT.
    let mut cached = vec![ABSENT; max_key + 1];
    let mut heap: BinaryHeap<(usize, u32)> = BinaryHeap::new();
    let (mut size, mut hits) = (0usize, 0u64);
    for (i, (&k, &nu)) in keys.iter().zip(next).enumerate() {
        if k >= BOGUS {
            continue; // never requested again: a miss, never cached
        }
        let slot = k as usize;
        if cached[slot] != ABSENT {
            if i >= warmup {
                hits += 1;
            }
            if nu == NEVER {
                cached[slot] = ABSENT;
                size -= 1;
            } else {
                cached[slot] = nu;
                heap.push((nu, k));
            }
            continue;
        }
        if nu == NEVER {
            continue;
        }
        if size < capacity {
            cached[slot] = nu;
            heap.push((nu, k));
            size += 1;
            continue;
        }
        // The farthest next use in the cache (skipping stale heap entries).
        while let Some(&(n, kk)) = heap.peek() {
            if cached[kk as usize] == n {
                break;
            }
            heap.pop();
        }
        if let Some(&(far, kk)) = heap.peek() {
            if far > nu {
                heap.pop();
                cached[kk as usize] = ABSENT;
                cached[slot] = nu;
                heap.push((nu, k));
            }
        }
    }
    hits
}

/// For each request, the index of the next request with the same key.
fn next_uses(keys: &[u32]) -> Vec<usize> {
    const NEVER: usize = usize::MAX - 1;
    let max_key = keys
        .iter()
        .filter(|&&k| k < BOGUS)
        .max()
        .copied()
        .unwrap_or(0) as usize;
    let mut last = vec![NEVER; max_key + 1];
    let mut next = vec![NEVER; keys.len()];
    for i in (0..keys.len()).rev() {
        let k = keys[i];
        if k < BOGUS {
            next[i] = last[k as usize];
            last[k as usize] = i;
        }
    }
    next
}

struct Row {
    workload: String,
    percent: f64,
    capacity: usize,
    sharded: Measured,
    one_shard: Measured,
    opt_hits: u64,
}

impl Row {
    fn rate(&self, hits: u64) -> f64 {
        hits as f64 / self.sharded.requests as f64
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let total = args.warmup + args.requests;
    let started = Instant::now();
    let mut rows = Vec::new();
    println!(
        "population {POPULATION} tokens, {} measured requests after {} warm-up, seed {}",
        args.requests, args.warmup, args.seed
    );
    println!(
        "{:<16} {:>5} {:>6} {:>6} {:>9} {:>12} {:>10} {:>8} {:>8}",
        "workload", "cap%", "cap", "shards", "hit rate", "upstream/1k", "1 shard", "OPT", "LRU/OPT"
    );
    for w in workloads(total, args.seed) {
        let keys: Vec<u32> = w
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Get(k) => Some(*k),
                Event::Logout(_) => None,
            })
            .collect();
        let next = next_uses(&keys);
        for percent in CAPACITY_PERCENT {
            let capacity = (f64::from(POPULATION) * percent / 100.0) as usize;
            let row = Row {
                workload: w.name.clone(),
                percent,
                capacity,
                sharded: replay(&w.events, capacity, 16, args.warmup),
                one_shard: replay(&w.events, capacity, 1, args.warmup),
                opt_hits: belady(&keys, &next, capacity, args.warmup),
            };
            let (lru, opt) = (row.rate(row.sharded.hits), row.rate(row.opt_hits));
            println!(
                "{:<16} {:>4}% {:>6} {:>6} {:>8.2}% {:>12.1} {:>9.2}% {:>7.2}% {:>8.3}",
                row.workload,
                row.percent,
                row.capacity,
                row.sharded.shards,
                100.0 * lru,
                1000.0 * row.sharded.upstream as f64 / row.sharded.requests as f64,
                100.0 * row.rate(row.one_shard.hits),
                100.0 * opt,
                if opt > 0.0 { lru / opt } else { 0.0 },
            );
            rows.push(row);
        }
    }
    std::fs::create_dir_all(&args.out)?;
    let csv = args.out.join("hitrate.csv");
    let mut out = String::from(
        "workload,capacity_percent,capacity,shards,hit_rate,upstream_per_1000,hit_rate_one_shard,upstream_per_1000_one_shard,opt_hit_rate,requests\n",
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{:.6},{:.3},{:.6},{:.3},{:.6},{}",
            r.workload,
            r.percent,
            r.capacity,
            r.sharded.shards,
            r.rate(r.sharded.hits),
            1000.0 * r.sharded.upstream as f64 / r.sharded.requests as f64,
            r.rate(r.one_shard.hits),
            1000.0 * r.one_shard.upstream as f64 / r.one_shard.requests as f64,
            r.rate(r.opt_hits),
            r.sharded.requests,
        );
    }
    std::fs::write(&csv, out)?;
    let svg = args.out.join("hitrate.svg");
    plot(&rows, &svg)?;
    println!(
        "wrote {} and {} in {:.1} s",
        csv.display(),
        svg.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn plot(rows: &[Row], path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;

    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        if !names.contains(&r.workload.as_str()) {
            names.push(&r.workload);
        }
    }
    let root = SVGBackend::new(path, (1600, 860)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(50);
    title.draw(&Text::new(
        "Hit rate against capacity (% of 100,000 tokens): CachedVerifier (sharded LRU), one-shard LRU, Belady OPT",
        (20, 15),
        ("sans-serif", 20).into_font(),
    ))?;
    let panels = body.split_evenly((2, names.len().div_ceil(2)));
    for (name, panel) in names.iter().zip(panels.iter()) {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.workload == *name).collect();
        let mut chart = ChartBuilder::on(panel)
            .caption(*name, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d((1f64..50f64).log_scale(), 0f64..100f64)?;
        chart
            .configure_mesh()
            .x_desc("capacity %")
            .y_desc("hit rate %")
            .x_labels(6)
            .y_labels(6)
            .draw()?;
        let series = |f: &dyn Fn(&Row) -> u64| -> Vec<(f64, f64)> {
            mine.iter()
                .map(|r| (r.percent, 100.0 * r.rate(f(r))))
                .collect()
        };
        chart
            .draw_series(LineSeries::new(
                series(&|r| r.opt_hits),
                RED.stroke_width(2),
            ))?
            .label("OPT")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(
                series(&|r| r.sharded.hits),
                BLUE.stroke_width(2),
            ))?
            .label("CachedVerifier")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        chart
            .draw_series(DashedLineSeries::new(
                series(&|r| r.one_shard.hits),
                6,
                4,
                BLACK.stroke_width(1),
            ))?
            .label("1-shard LRU")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
