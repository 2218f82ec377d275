//! A frequency sketch for TinyLFU admission: how often was a token seen
//! lately, in a few bits per cached entry.
//!
//! * A count-min sketch of 4-bit counters packed sixteen to a `u64`, in
//!   64-byte blocks: a key's four counters (depth 4) all live in one block,
//!   so an increment or an estimate touches one cache line.
//! * A doorkeeper in front of it: a small Bloom filter (two bits in one
//!   word) that absorbs a key's first sighting, so that the many tokens seen
//!   once (one-hit wonders) never reach the counters. A key's estimate is
//!   its counters' minimum plus one if the doorkeeper has it.
//! * Aging: after a sample of sightings, every counter is halved and the
//!   doorkeeper cleared, so that yesterday's popularity fades and the
//!   sketch keeps following the traffic. The sample starts at 4 ×
//!   capacity and the policy's hill climber moves it between 1.25 × and
//!   10 × (Caffeine fixes it at 10 ×); in a sharded cache, a trial across
//!   the shards chooses it among 1.25 ×, 2.5 ×, 5 × and 10 × (`trial.rs`). No fixed period suits every
//!   traffic: on our traces, stationary Zipf gains up to 0.8 point of hit
//!   rate from 10 × over 2.5 ×, while shifting popularity and a loop larger
//!   than the cache lose 2 to 5 points (BENCHMARKS.md).
//! * A victim that wins an admission contest outright pays one sighting
//!   ([`FrequencySketch::decrement`]), so that a token that was hot and is
//!   no longer used cannot hold its place on stale counts until the next
//!   aging.
//!
//! The keys are SHA-256 outputs, uniform already: the block, the counters
//! and the doorkeeper bits are read straight from the key's bytes, with no
//! further hashing. Bytes 0 to 7 choose the cache's shard, so they are left
//! alone (every key of one shard shares their low bits); the sketch reads
//! bytes 8 to 23.

/// Sightings between two agings at first, per cached entry; the policy's
/// climber moves it to follow the traffic (`FrequencySketch::set_sample_size`).
pub(crate) const SAMPLE_PER_ENTRY: u64 = 4;
/// 4-bit counters per cached entry (7 bytes per entry; with the
/// doorkeeper's 4 bytes, 11). With four counters per key in 64-byte blocks
/// of 128, about 9 keys share a block.
const COUNTERS_PER_ENTRY: usize = 14;
/// Doorkeeper bits per cached entry. Between two agings up to 2.5 distinct
/// keys per entry reach it, 2 bits each: at 8 bits per entry about one key
/// in five seemed seen before (a false positive) and reached the counters,
/// enough noise to decide admission contests between keys never seen
/// twice (a loop larger than the cache: 2.3 % hits at 1 % capacity, 3.6 %
/// with 32 bits, where OPT gets 4 %); at 32 bits, about one in fifty.
const DOORKEEPER_BITS_PER_ENTRY: usize = 32;
/// The largest value of a 4-bit counter.
const COUNTER_MAX: u64 = 15;
/// Keeps the low three bits of every nibble: `(word >> 1) & RESET_MASK`
/// halves sixteen counters at once.
const RESET_MASK: u64 = 0x7777_7777_7777_7777;

/// Eight words of sixteen counters: one cache line.
#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct Block([u64; 8]);

/// A count-min sketch with a doorkeeper and periodic aging; see the module
/// documentation.
#[derive(Clone)]
pub(crate) struct FrequencySketch {
    blocks: Box<[Block]>,
    doorkeeper: Bloom,
    /// Sightings recorded since the last aging (halved by it).
    additions: u64,
    /// Sightings between two agings.
    sample_size: u64,
    /// Agings so far.
    resets: u64,
}

impl std::fmt::Debug for FrequencySketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrequencySketch")
            .field("blocks", &self.blocks.len())
            .field("doorkeeper_bits_set", &self.doorkeeper.ones)
            .field("additions", &self.additions)
            .field("sample_size", &self.sample_size)
            .field("resets", &self.resets)
            .finish()
    }
}

/// `x` scaled into `0..n` (Lemire's multiply-shift): uniform for a uniform
/// `x`, with no division and no power-of-two rounding of `n`.
#[inline]
fn reduce(x: u64, n: usize) -> usize {
    ((u128::from(x) * n as u128) >> 64) as usize
}

/// The smallest of a key's four counters in its block (`slots` as
/// [`FrequencySketch::counters`] gives them): the count-min estimate.
#[inline]
fn least(words: &[u64; 8], slots: &[(usize, u32); 4]) -> u64 {
    slots
        .iter()
        .map(|&(w, shift)| (words[w] >> shift) & COUNTER_MAX)
        .min()
        .unwrap_or(0)
}

#[inline]
fn word(key: &[u8; 32], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[at..at + 8]);
    u64::from_le_bytes(b)
}

/// A Bloom filter whose two bits for a key share one word (one memory
/// access), read from 8 bytes of the key starting at `at`.
#[derive(Clone)]
pub(crate) struct Bloom {
    words: Box<[u64]>,
    /// Bits set.
    ones: usize,
    at: usize,
}

impl Bloom {
    /// A filter of at least `bits` bits reading key bytes `at..at + 8`.
    pub(crate) fn new(bits: usize, at: usize) -> Self {
        Self {
            words: vec![0; bits.div_ceil(64).max(1)].into_boxed_slice(),
            ones: 0,
            at,
        }
    }

    #[inline]
    fn slot(&self, key: &[u8; 32]) -> (usize, u64) {
        let h = word(key, self.at);
        let i = reduce(h, self.words.len());
        // The low bits of `h` are independent of the word chosen (which
        // depends on its high bits).
        (i, (1u64 << (h & 63)) | (1u64 << ((h >> 6) & 63)))
    }

    /// Whether `key` may have been inserted (false positives possible).
    #[inline]
    pub(crate) fn contains(&self, key: &[u8; 32]) -> bool {
        let (i, bits) = self.slot(key);
        self.words[i] & bits == bits
    }

    /// Inserts `key`; false if it was (or seemed) there already.
    #[inline]
    pub(crate) fn insert(&mut self, key: &[u8; 32]) -> bool {
        let (i, bits) = self.slot(key);
        let new = bits & !self.words[i];
        self.words[i] |= bits;
        self.ones += new.count_ones() as usize;
        new != 0
    }

    /// Empties the filter.
    pub(crate) fn clear(&mut self) {
        self.words.fill(0);
        self.ones = 0;
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.words)
    }
}

impl FrequencySketch {
    /// A sketch sized for `capacity` cached entries (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        // At least 16: a tiny sketch would age before it counted anything.
        let sample_size = (capacity as u64).saturating_mul(SAMPLE_PER_ENTRY).max(16);
        let blocks = (capacity * COUNTERS_PER_ENTRY).div_ceil(128).max(1);
        Self {
            blocks: vec![Block::default(); blocks].into_boxed_slice(),
            doorkeeper: Bloom::new(capacity * DOORKEEPER_BITS_PER_ENTRY, 16),
            additions: 0,
            sample_size: sample_size.max(1),
            resets: 0,
        }
    }

    /// Heap bytes held (the counters and the doorkeeper).
    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.blocks) + self.doorkeeper.heap_bytes()
    }

    /// Sightings between two agings.
    pub(crate) fn sample_size(&self) -> u64 {
        self.sample_size
    }

    /// Sets the sightings between two agings (at least 16).
    pub(crate) fn set_sample_size(&mut self, n: u64) {
        self.sample_size = n.max(16);
    }

    /// Agings so far.
    pub(crate) fn resets(&self) -> u64 {
        self.resets
    }

    /// The block of `key` and, per depth, the word in it and the shift of
    /// the counter in that word.
    #[inline]
    fn counters(&self, key: &[u8; 32]) -> (usize, [(usize, u32); 4]) {
        let h = word(key, 8);
        let block = reduce(h, self.blocks.len());
        // Depth `i` uses words 2i and 2i + 1 of the block: one bit picks the
        // word, four bits pick the nibble. The low 20 bits of `h` are
        // independent of the block (chosen by its high bits).
        let mut slots = [(0usize, 0u32); 4];
        for (i, slot) in slots.iter_mut().enumerate() {
            let s = (h >> (5 * i)) as u32;
            *slot = (2 * i + (s & 1) as usize, ((s >> 1) & 15) * 4);
        }
        (block, slots)
    }

    /// The counters' estimate alone (0 to 15): the sightings after the
    /// first in the current sample.
    #[inline]
    pub(crate) fn count(&self, key: &[u8; 32]) -> u64 {
        let (block, slots) = self.counters(key);
        least(&self.blocks[block].0, &slots)
    }

    /// How often `key` was seen lately: 0 to 16.
    #[inline]
    pub(crate) fn frequency(&self, key: &[u8; 32]) -> u8 {
        let door = u64::from(self.doorkeeper.contains(key));
        (self.count(key) + door) as u8
    }

    /// Records one sighting of `key`: into the doorkeeper the first time,
    /// into the counters after (conservative update: only the counters at
    /// the minimum grow). Ages the sketch every `sample_size` sightings.
    #[inline]
    pub(crate) fn increment(&mut self, key: &[u8; 32]) {
        if !self.doorkeeper.insert(key) {
            let (block, slots) = self.counters(key);
            let words = &mut self.blocks[block].0;
            let min = least(words, &slots);
            if min < COUNTER_MAX {
                for &(w, shift) in &slots {
                    if (words[w] >> shift) & COUNTER_MAX == min {
                        words[w] += 1 << shift;
                    }
                }
            }
        }
        self.additions += 1;
        if self.additions >= self.sample_size {
            self.age();
        }
    }

    /// Lowers `key`'s counters at their minimum by one (the reverse of the
    /// conservative update in [`FrequencySketch::increment`]).
    pub(crate) fn decrement(&mut self, key: &[u8; 32]) {
        let (block, slots) = self.counters(key);
        let words = &mut self.blocks[block].0;
        let min = least(words, &slots);
        if min > 0 {
            for &(w, shift) in &slots {
                if (words[w] >> shift) & COUNTER_MAX == min {
                    words[w] -= 1 << shift;
                }
            }
        }
    }

    /// Halves every counter and clears the doorkeeper.
    fn age(&mut self) {
        for block in self.blocks.iter_mut() {
            for w in block.0.iter_mut() {
                *w = (*w >> 1) & RESET_MASK;
            }
        }
        self.doorkeeper.clear();
        self.additions /= 2;
        self.resets += 1;
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.blocks.fill(Block::default());
        self.doorkeeper.clear();
        self.additions = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn key(i: u64) -> [u8; 32] {
        Sha256::digest(format!("tok{i}").as_bytes()).into()
    }

    #[test]
    fn counts_up_to_sixteen() {
        let mut s = FrequencySketch::new(1000);
        let k = key(1);
        assert_eq!(s.frequency(&k), 0);
        for n in 1..=20u8 {
            s.increment(&k);
            assert_eq!(s.frequency(&k), n.min(16));
        }
    }

    #[test]
    fn first_sighting_stays_in_the_doorkeeper() {
        let mut s = FrequencySketch::new(1000);
        for i in 0..500 {
            s.increment(&key(i));
        }
        // Only keys seen twice reach the counters; the doorkeeper's false
        // positives (a few percent at this load) let a few through.
        let leaked = (0..500).filter(|&i| s.count(&key(i)) > 0).count();
        assert!(leaked <= 25, "{leaked} of 500");
        assert_eq!(s.frequency(&key(3)), 1);
    }

    #[test]
    fn aging_halves_and_clears_the_doorkeeper() {
        let mut s = FrequencySketch::new(10);
        let hot = key(0);
        // 40 sightings (4 × capacity, the first period) make one aging.
        for _ in 0..39 {
            s.increment(&hot);
        }
        assert_eq!((s.frequency(&hot), s.resets()), (16, 0));
        s.increment(&hot);
        assert_eq!(s.resets(), 1);
        // Counters 15 → 7, the doorkeeper's one gone.
        assert_eq!(s.frequency(&hot), 7);
    }

    #[test]
    fn a_shorter_period_ages_sooner() {
        let mut s = FrequencySketch::new(10);
        s.set_sample_size(20);
        let hot = key(0);
        for _ in 0..20 {
            s.increment(&hot);
        }
        assert_eq!(s.resets(), 1);
        // Never below 16 sightings.
        s.set_sample_size(1);
        assert_eq!(s.sample_size(), 16);
    }

    #[test]
    fn decrement_undoes_an_increment_and_stops_at_zero() {
        let mut s = FrequencySketch::new(1000);
        let k = key(9);
        for _ in 0..4 {
            s.increment(&k);
        }
        assert_eq!(s.count(&k), 3);
        s.decrement(&k);
        assert_eq!(s.count(&k), 2);
        for _ in 0..5 {
            s.decrement(&k);
        }
        assert_eq!(s.count(&k), 0);
        // The doorkeeper's sighting is not a counter's.
        assert_eq!(s.frequency(&k), 1);
    }

    #[test]
    fn estimates_are_never_below_the_truth_before_aging() {
        let mut s = FrequencySketch::new(10_000);
        let mut truth = std::collections::HashMap::new();
        let mut x = 7u64;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let i = (x >> 33) % 3_000;
            s.increment(&key(i));
            *truth.entry(i).or_insert(0u64) += 1;
        }
        assert_eq!(s.resets(), 0);
        let mut exact = 0;
        for (&i, &n) in &truth {
            let f = u64::from(s.frequency(&key(i)));
            assert!(f >= n.min(16), "key {i}: {f} < {n}");
            if f == n.min(16) {
                exact += 1;
            }
        }
        // Few overestimates at this load (3,000 keys, sized for 10,000).
        assert!(
            exact * 100 >= truth.len() * 95,
            "{exact} of {}",
            truth.len()
        );
    }

    #[test]
    fn tiny_capacity_works() {
        let mut s = FrequencySketch::new(0);
        s.increment(&key(1));
        s.increment(&key(1));
        assert!(s.frequency(&key(1)) >= 1);
        assert!(s.heap_bytes() >= 64);
    }
}
