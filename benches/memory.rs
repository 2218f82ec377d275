//! Memory: heap bytes per cached entry at 100,000 entries, measured by a
//! counting global allocator (`stats_alloc`), with the resident-set delta
//! (`/proc/self/statm`) beside it as a cross-check.
//!
//! ```text
//! cargo bench --bench memory
//! ```
//!
//! The cache is filled through its public API (`verify` on 100,000 distinct
//! cold tokens) with an in-memory verifier that returns a realistic account
//! (16-digit id, phone, application id), so the figure is what a server
//! holds per verified token: the policy's LRU node and map slot, the
//! account index entry, the frequency sketch (allocated up front, so it is
//! in "empty" and "total" but not in "filled minus empty"), and the shared
//! `Account` itself. The allocator counts
//! requested bytes; the RSS delta adds malloc's own per-block overhead and
//! rounding.

mod support;

use std::alloc::System;
use std::time::Duration;

use actix_accountkit::cache::{CacheConfig, CachedVerifier};
use actix_accountkit::verify::Verifier;
use futures::FutureExt;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

// The counting allocator lives in a dependency: the crate forbids
// `unsafe_code` in every target, this one included.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ENTRIES: usize = 100_000;

fn live(region: &Region<'_, System>) -> i64 {
    let c = region.change();
    // `realloc` is already folded into allocated/deallocated.
    c.bytes_allocated as i64 - c.bytes_deallocated as i64
}

fn rss_bytes() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn fill(cache: &CachedVerifier, n: usize) {
    for i in 0..n {
        let t = support::token(i as u64);
        cache
            .verify(&t)
            .now_or_never()
            .expect("ready at once")
            .expect("accepted");
    }
}

fn main() {
    // 10 % headroom: each of the 16 shards holds capacity / 16,
    // and tokens do not spread exactly evenly, so a cache of capacity
    // 100,000 filled with 100,000 tokens holds slightly fewer (some shards
    // evict while others have room).
    let config = CacheConfig::builder()
        .capacity(ENTRIES + ENTRIES / 10)
        .ttl(Duration::from_secs(3600))
        .build()
        .expect("cache settings");
    let region = Region::new(GLOBAL);
    let rss0 = rss_bytes();
    let cache = CachedVerifier::new(support::Counting::default(), config);
    let empty = live(&region);
    let rss_empty = rss_bytes();
    fill(&cache, ENTRIES);
    let full = live(&region);
    let rss_full = rss_bytes();
    let s = cache.stats();
    assert_eq!(s.entries as usize, ENTRIES);
    drop(cache);

    // The accounts alone (measured after the RSS figures, which it would
    // disturb), as the verifier hands them to the cache.
    let region = Region::new(GLOBAL);
    let accounts: Vec<_> = (0..ENTRIES as u64)
        .map(|i| std::sync::Arc::new(support::account(i)))
        .collect();
    let account_bytes = live(&region) - (accounts.capacity() * std::mem::size_of::<usize>()) as i64;
    drop(accounts);

    let per = |b: i64| b as f64 / ENTRIES as f64;
    println!(
        "memory at {ENTRIES} cached entries (capacity {}, default negative capacity 10,000, 16 shards)",
        ENTRIES + ENTRIES / 10
    );
    println!("  allocator, live heap bytes:");
    println!(
        "    empty cache (preallocated maps)        {:>12} B  ({:>6.1} B/entry)",
        empty,
        per(empty)
    );
    println!(
        "    filled cache, total                     {:>12} B  ({:>6.1} B/entry)",
        full,
        per(full)
    );
    println!(
        "    filled minus empty                      {:>12} B  ({:>6.1} B/entry)",
        full - empty,
        per(full - empty)
    );
    println!(
        "    of which the Arc<Account> (measured alone) {:>9} B  ({:>6.1} B/entry)",
        account_bytes,
        per(account_bytes)
    );
    println!(
        "    cache's own structures (total - accounts) {:>10} B  ({:>6.1} B/entry)",
        full - account_bytes,
        per(full - account_bytes)
    );
    println!("  RSS delta (statm, 4 KiB pages):");
    println!(
        "    empty cache                             {:>12} B",
        rss_empty - rss0
    );
    println!(
        "    filled cache                            {:>12} B  ({:>6.1} B/entry)",
        rss_full - rss0,
        per(rss_full - rss0)
    );

    // The same fill at capacity = entries: what the shard imbalance costs.
    let cache = CachedVerifier::new(
        support::Counting::default(),
        CacheConfig::builder()
            .capacity(ENTRIES)
            .ttl(Duration::from_secs(3600))
            .build()
            .expect("cache settings"),
    );
    fill(&cache, ENTRIES);
    println!(
        "  at capacity {ENTRIES}, {ENTRIES} distinct tokens leave {} entries (full shards evict while other shards have room)",
        cache.stats().entries
    );
}
