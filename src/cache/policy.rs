//! The admission and eviction policy of the verified-account cache:
//! W-TinyLFU with an adaptive window, the design of Caffeine (Java) and,
//! without the window, of moka.
//!
//! # The model
//!
//! ```text
//!            insert                   candidate              victim
//!   new ───► window (LRU) ───────────► contest ◄──────── probation (LRU) ◄─┐
//!            ~1 % at first     loser leaves │ winner ──► probation      demoted
//!                                                           │ hit          │
//!                                                           ▼              │
//!                                                  protected (LRU, ~80 % of main)
//! ```
//!
//! * Every new entry goes into the **window**, a plain LRU, so that a token
//!   used in a burst gets its hits even before it has a history.
//! * The entry pushed out of the window (the **candidate**) contests a
//!   place in the **main** space with main's least recently used entry
//!   (the **victim**): the one seen more often lately, by the frequency
//!   sketch's counters, stays; the other leaves. Ties go to the victim, so
//!   that a scan or a loop of tokens seen once each cannot wash out the
//!   tokens in steady use; an outright win costs the victim one sighting
//!   in the sketch, so a token hot once and idle since cannot hold its
//!   place on stale counts until the next aging. A warm candidate (seen 6
//!   times or more) that loses is still admitted one time in 128, so that
//!   no victim can be made unbeatable by inflated counters.
//! * Main is a segmented LRU: admitted entries start in **probation**; a hit
//!   there promotes them to **protected** (at most 80 % of main), whose
//!   least recently used entry is demoted back to probation when it
//!   overflows. Victims come from probation first.
//! * The **frequency sketch** (count-min, 4-bit counters, a doorkeeper for
//!   one-hit wonders, halved every 1.25 × to 10 × capacity sightings)
//!   records a hit and an insertion; see `sketch.rs`. A lookup that misses
//!   records nothing, so a flood of bogus tokens, which the cache never
//!   inserts here, neither evicts nor skews anything.
//! * The **window size and the aging period adapt** to the traffic. A
//!   bigger window favours recency, a smaller one frequency; a long aging
//!   period remembers stationary popularity better (Zipf traces gain up to
//!   0.8 point at 10 ×), a short one forgets a ranking that moved
//!   (shifting popularity loses 2 to 5 points at 10 ×) and keeps a loop
//!   larger than the cache in place. Every 5 × capacity requests (hits and
//!   insertions, once the cache was full) closes a sample, and:
//!   * in a cache of four shards or more, the cache's **trial across its
//!     shards** chooses both (`trial.rs`): most shards run the current
//!     settings, a few a neighbouring aging period (1.25 ×, 2.5 ×, 5 ×,
//!     10 × capacity) or window (powers of two, one entry to 16 % of the
//!     capacity), and every shard moves when a neighbour does measurably
//!     better, or, for the window, at once when a round of samples in a
//!     row (as many as there are shards) at the current window or a
//!     smaller one got no hit in it (its entries are pure cost);
//!   * a policy alone **climbs** them itself, as Caffeine climbs the
//!     window, on alternate samples (each sample judges the one move made
//!     before it): it moves the window by a step in the direction that
//!     improved the hit rate, the step decaying by 2 % a sample and
//!     starting again at 1.5 % of the capacity when the hit rate moves by
//!     5 points or more (the traffic changed); it multiplies or divides the
//!     aging period by 1.25, from 4 × capacity, between 1.25 × and 10 ×.
//!
//!   Entries move between the window and main a few per insertion, never
//!   more, so every operation stays O(1).
//!
//! Where this departs from Caffeine, the simulator (`examples/hitrate.rs`,
//! BENCHMARKS.md) decided: an adapted aging period instead of a fixed 10 ×
//! and the victim's cost of a win (the shifting-popularity trace), samples
//! of 5 × capacity and steps of 1.5 % instead of 10 × and 6.25 % (the climb must settle within a few hundred
//! thousand requests, and smaller steps wander less on noise), and the
//! admission comparing the counters without the doorkeeper (the loop).
//!
//! # Invariants
//!
//! * `len() <= capacity()` after every call.
//! * A key is in at most one segment.
//! * Every entry that leaves other than by [`Policy::remove`] or
//!   [`Policy::clear`] is handed back by the [`Policy::insert`] that pushed
//!   it out ([`Evicted`]), so a caller can keep an index of the keys in step.
//!
//! The segments are [`lru::LruCache`]s, unbounded: the policy keeps the
//! sizes itself.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;

use super::sketch::{FrequencySketch, SAMPLE_PER_ENTRY};
use super::trial::Trial;

/// A key: the SHA-256 of a token (`crate::cache::TokenHash`).
pub type Key = [u8; 32];

/// A segment: an LRU map of keys hashed by [`KeyBits`].
type SegmentMap<V> = LruCache<Key, V, KeyBits>;

/// Hashes a [`Key`] by reading 8 of its bytes (24 to 31): a SHA-256 output
/// is uniform already, so the segments' maps need no hashing work of their
/// own, on the hit path or elsewhere. (Bytes 0 to 7 choose the cache's
/// shard and 8 to 23 the sketch's counters.)
///
/// Not keyed, and safe for this use only: an attacker who grinds tokens
/// for colliding hashes cannot put them in a segment, since only accounts
/// the upstream verified are inserted (bogus tokens live in the cache's
/// negative LRU, whose map keeps the default, keyed hasher).
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyBits;

impl BuildHasher for KeyBits {
    type Hasher = KeyBitsHasher;

    fn build_hasher(&self) -> KeyBitsHasher {
        KeyBitsHasher(0)
    }
}

/// The [`Hasher`] of [`KeyBits`].
#[derive(Debug)]
pub struct KeyBitsHasher(u64);

impl Hasher for KeyBitsHasher {
    /// A `[u8; 32]` hashes as its length (see `write_usize`) then its
    /// bytes, in one call.
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        if let Some(tail) = bytes.get(24..32) {
            let mut b = [0u8; 8];
            b.copy_from_slice(tail);
            self.0 ^= u64::from_le_bytes(b);
        } else {
            // Not a key: FNV-1a, for completeness.
            for &byte in bytes {
                self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
            }
        }
    }

    /// The length prefix: the same for every key.
    #[inline]
    fn write_usize(&mut self, _: usize) {}

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The window's share of the capacity at the start.
const INITIAL_WINDOW: f64 = 0.01;
/// Protected's share of the main space.
const PROTECTED_SHARE: f64 = 0.8;
/// Requests per climbing sample, per cached entry.
const CLIMB_FACTOR: u64 = 5;
/// A full climbing step, as a share of the capacity.
const STEP_PERCENT: f64 = 0.015;
/// Each sample, the step shrinks by this factor.
const STEP_DECAY: f64 = 0.98;
/// A hit-rate change this large (in a sample) starts the steps again.
const RESTART_THRESHOLD: f64 = 0.05;
/// The shortest aging period, in sightings per entry.
const AGING_MIN: f64 = 1.25;
/// The longest aging period, in sightings per entry (Caffeine's).
const AGING_MAX: f64 = 10.0;
/// A move of the aging period multiplies or divides it by this.
const AGING_STEP: f64 = 1.25;

/// Entries moved between segments to follow a new window size, at most,
/// per insertion.
const MOVES_PER_INSERT: usize = 2;
/// A losing candidate with this many sightings after its first (in the
/// sketch's counters) is still admitted one time in 128.
const ADMIT_WARM: u64 = 5;

/// What an [`Policy::insert`] pushed out of the policy: at most one entry.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "an entry that left the cache may need unindexing"]
pub enum Evicted<V> {
    /// Nothing: there was room.
    None,
    /// The key was present already: its previous value (the new one
    /// replaced it in place).
    Replaced(V),
    /// A candidate leaving the window lost the admission contest (seen
    /// less often than main's victim) and left the cache.
    Rejected(Key, V),
    /// Main's victim lost the contest to a candidate (or main was over its
    /// share while the window grew) and left the cache.
    Victim(Key, V),
}

impl<V> Evicted<V> {
    /// The entry that left the cache, if one did (a rejected candidate or
    /// a victim); `None` for [`Evicted::None`] and [`Evicted::Replaced`].
    pub fn into_entry(self) -> Option<(Key, V)> {
        match self {
            Self::Rejected(k, v) | Self::Victim(k, v) => Some((k, v)),
            Self::None | Self::Replaced(_) => None,
        }
    }
}

/// The policy's counters and current sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyStats {
    /// Entries moved from the window into main (by winning the contest, or
    /// with room to spare).
    pub admitted: u64,
    /// Candidates that lost the admission contest and left.
    pub rejected: u64,
    /// Entries the policy pushed out: rejected candidates and victims
    /// (`evictions - rejected` victims).
    pub evictions: u64,
    /// The window's current target size (entries).
    pub window_max: usize,
    /// Entries in the window now.
    pub window_len: usize,
    /// Entries in probation now.
    pub probation_len: usize,
    /// Entries in protected now.
    pub protected_len: usize,
    /// Window size changes (made by the hill climber, or the cache's trial).
    pub window_adjustments: u64,
    /// Times the frequency sketch was aged (counters halved).
    pub sketch_resets: u64,
    /// Sightings between two agings of the sketch now (between 1.25 × and
    /// 10 × the capacity, as the climber or the cache's trial chose).
    pub aging_period: u64,
    /// Heap bytes of the frequency sketch (counters and doorkeeper).
    pub sketch_bytes: usize,
}

/// The policy's hit rate, sampled to judge its window and aging period.
#[derive(Clone, Debug)]
struct Sample {
    /// Requests per sample.
    period: u64,
    hits: u64,
    misses: u64,
    /// Hits in the window.
    window_hits: u64,
    /// Sampling starts once the cache was full.
    started: bool,
}

/// Who chooses the window's size and the aging period.
#[derive(Debug)]
enum Tuner {
    /// The policy itself, by hill climbing.
    Climb(Climber),
    /// The cache's trial across its shards, in which this policy is the
    /// shard with this index.
    Trial(Arc<Trial>, usize),
}

/// What one closed sample changes: the aging period (sightings per cached
/// entry), the window's size (entries, unrounded), or both.
#[derive(Clone, Copy, Debug, Default)]
struct Moves {
    aging: Option<f64>,
    window: Option<f64>,
}

/// Hill climbing of the window size and the aging period by a policy
/// alone; see the module documentation.
#[derive(Clone, Debug)]
struct Climber {
    /// The previous sample's hit rate.
    previous: f64,
    /// The next move of the window, in entries (signed).
    step: f64,
    /// The window size, unrounded.
    window: f64,
    /// Whose move the next sample judges: the aging period's (true) or
    /// the window's.
    aging_turn: bool,
    /// The sketch's aging period, in sightings per cached entry.
    aging: f64,
    /// The direction of the aging period's next move (+1 longer, -1 shorter).
    aging_dir: f64,
}

impl Climber {
    /// Judges the move made before a sample with hit rate `rate` (keep its
    /// direction if the hit rate rose, else turn), and makes the next one,
    /// the window's and the aging period's in turn, in a policy of
    /// `capacity` entries.
    fn climb(&mut self, rate: f64, capacity: f64) -> Moves {
        let change = rate - self.previous;
        self.previous = rate;
        if self.aging_turn {
            // The sample judged the aging period's last move; the window
            // moves.
            if change < 0.0 {
                self.aging_dir = -self.aging_dir;
            }
            self.aging_turn = false;
            self.window = (self.window + self.step).clamp(1.0, capacity);
            self.step *= STEP_DECAY;
            Moves {
                window: Some(self.window),
                ..Moves::default()
            }
        } else {
            // The sample judged the window's last move: the step decays, or
            // starts again if the traffic changed; the aging period moves.
            let judged = if change >= 0.0 { self.step } else { -self.step };
            self.step = if change.abs() >= RESTART_THRESHOLD {
                (STEP_PERCENT * capacity).copysign(judged)
            } else {
                STEP_DECAY * judged
            };
            self.aging_turn = true;
            let aging = if self.aging_dir > 0.0 {
                self.aging * AGING_STEP
            } else {
                self.aging / AGING_STEP
            };
            self.aging = aging.clamp(AGING_MIN, AGING_MAX);
            Moves {
                aging: Some(self.aging),
                ..Moves::default()
            }
        }
    }
}

/// W-TinyLFU over [`Key`]s with values `V`; see the module documentation.
///
/// ```
/// use actix_accountkit::cache::policy::{Evicted, Policy};
///
/// let mut policy = Policy::new(2);
/// assert_eq!(policy.insert([1; 32], "a"), Evicted::None);
/// assert_eq!(policy.get(&[1; 32]), Some(&"a"));
/// assert_eq!(policy.insert([2; 32], "b"), Evicted::None);
/// // Full: one entry leaves, and the caller learns which.
/// let left = policy.insert([3; 32], "c").into_entry();
/// assert!(left.is_some());
/// assert_eq!(policy.len(), 2);
/// ```
pub struct Policy<V> {
    capacity: usize,
    window: SegmentMap<V>,
    probation: SegmentMap<V>,
    protected: SegmentMap<V>,
    window_max: usize,
    protected_max: usize,
    sketch: FrequencySketch,
    sample: Sample,
    tuner: Tuner,
    /// Window size changes made.
    window_adjustments: u64,
    /// xorshift state for the warm candidates' admission lottery.
    rng: u64,
    admitted: u64,
    rejected: u64,
    evictions: u64,
    /// The largest length of each segment (window, probation, protected)
    /// since its map was last trimmed.
    peaks: [usize; 3],
}

impl<V> fmt::Debug for Policy<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("capacity", &self.capacity)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Which segment a hit was found in.
enum Segment {
    Window,
    Probation,
    Protected,
}

impl<V> Policy<V> {
    /// An empty policy holding at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let window = (capacity as f64 * INITIAL_WINDOW).max(1.0);
        let mut policy = Self {
            capacity,
            window: LruCache::unbounded_with_hasher(KeyBits),
            probation: LruCache::unbounded_with_hasher(KeyBits),
            protected: LruCache::unbounded_with_hasher(KeyBits),
            window_max: 1,
            protected_max: 0,
            sketch: FrequencySketch::new(capacity),
            sample: Sample {
                period: CLIMB_FACTOR.saturating_mul(capacity as u64),
                hits: 0,
                misses: 0,
                window_hits: 0,
                started: false,
            },
            tuner: Tuner::Climb(Climber {
                previous: 0.0,
                // Caffeine's start: toward a smaller window.
                step: -STEP_PERCENT * capacity as f64,
                window,
                aging_turn: false,
                aging: SAMPLE_PER_ENTRY as f64,
                aging_dir: 1.0,
            }),
            window_adjustments: 0,
            rng: 0x9E37_79B9_7F4A_7C15 ^ capacity as u64,
            admitted: 0,
            rejected: 0,
            evictions: 0,
            peaks: [0; 3],
        };
        policy.set_window(window);
        policy
    }

    /// A policy for shard `shard` of a cache whose shards run `trial`,
    /// which chooses the window and the aging period instead of the
    /// climber.
    pub(crate) fn with_trial(capacity: usize, trial: Arc<Trial>, shard: usize) -> Self {
        let mut policy = Self::new(capacity);
        let start = trial.start();
        policy.set_aging(start.aging);
        policy.set_window(start.window as f64);
        policy.tuner = Tuner::Trial(trial, shard);
        policy
    }

    /// The most entries held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.window.len() + self.probation.len() + self.protected.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `key`, recording the hit (frequency sketch, recency,
    /// the sample that judges the settings). A miss records nothing: the
    /// caller calls [`Policy::insert`] once it has a value worth keeping,
    /// and that records the sighting.
    pub fn get(&mut self, key: &Key) -> Option<&V> {
        let segment = self.hit(key)?;
        self.mru(segment)
    }

    /// Like [`Policy::get`], with the value mutable.
    pub fn get_mut(&mut self, key: &Key) -> Option<&mut V> {
        let segment = self.hit(key)?;
        let cache = match segment {
            Segment::Window => &mut self.window,
            Segment::Probation => &mut self.probation,
            Segment::Protected => &mut self.protected,
        };
        // `touch` left the key at the front of its segment.
        cache.iter_mut().next().map(|(_, v)| v)
    }

    /// Records a hit on `key` (recency, frequency, the sample), if it is
    /// held: the segment it is now at the front of.
    #[inline]
    fn hit(&mut self, key: &Key) -> Option<Segment> {
        let segment = self.touch(key)?;
        self.sketch.increment(key);
        self.sample.hits += 1;
        self.sample.window_hits += u64::from(matches!(segment, Segment::Window));
        self.close_sample();
        Some(segment)
    }

    /// The value of `key`, recording nothing.
    pub fn peek(&self, key: &Key) -> Option<&V> {
        self.protected
            .peek(key)
            .or_else(|| self.window.peek(key))
            .or_else(|| self.probation.peek(key))
    }

    /// The value of `key`, mutable, recording nothing.
    pub fn peek_mut(&mut self, key: &Key) -> Option<&mut V> {
        if self.protected.contains(key) {
            self.protected.peek_mut(key)
        } else if self.window.contains(key) {
            self.window.peek_mut(key)
        } else {
            self.probation.peek_mut(key)
        }
    }

    /// Whether `key` is held (records nothing).
    pub fn contains(&self, key: &Key) -> bool {
        self.protected.contains(key) || self.window.contains(key) || self.probation.contains(key)
    }

    /// Records a sighting of `key` in the frequency sketch, as a hit does,
    /// without looking it up (for a caller that buffers its hits).
    pub fn record_access(&mut self, key: &Key) {
        self.sketch.increment(key);
    }

    /// How often `key` was seen lately, by the sketch (0 to 16).
    pub fn frequency(&self, key: &Key) -> u8 {
        self.sketch.frequency(key)
    }

    /// Adds `key` (or replaces its value), recording the sighting and a
    /// miss in the sample that judges the settings. The new entry goes into
    /// the window; if the policy was full, one entry leaves, and is
    /// returned.
    pub fn insert(&mut self, key: Key, value: V) -> Evicted<V> {
        self.sketch.increment(&key);
        self.sample.misses += 1;
        self.close_sample();
        let value = match self.replace(&key, value) {
            Ok(old) => return Evicted::Replaced(old),
            Err(value) => value,
        };

        self.window.push(key, value);
        let evicted = if self.len() > self.capacity {
            self.evict_one()
        } else {
            Evicted::None
        };
        self.rebalance();
        if !self.sample.started && self.len() >= self.capacity {
            // Sample only a full cache: a filling one gains hits whatever
            // the window does.
            self.sample.started = true;
            self.sample.hits = 0;
            self.sample.misses = 0;
            self.sample.window_hits = 0;
        }
        evicted
    }

    /// Removes `key` (an invalidation, not an eviction).
    pub fn remove(&mut self, key: &Key) -> Option<V> {
        self.protected
            .pop(key)
            .or_else(|| self.window.pop(key))
            .or_else(|| self.probation.pop(key))
    }

    /// Removes every entry; the frequency history is forgotten too.
    pub fn clear(&mut self) {
        self.window.clear();
        self.probation.clear();
        self.protected.clear();
        self.sketch.clear();
    }

    /// Every entry, window first, then protected, then probation (each most
    /// recently used first). Records nothing.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &V)> {
        self.window
            .iter()
            .chain(self.protected.iter())
            .chain(self.probation.iter())
    }

    /// The counters and the current sizes.
    pub fn stats(&self) -> PolicyStats {
        PolicyStats {
            admitted: self.admitted,
            rejected: self.rejected,
            evictions: self.evictions,
            window_max: self.window_max,
            window_len: self.window.len(),
            probation_len: self.probation.len(),
            protected_len: self.protected.len(),
            window_adjustments: self.window_adjustments,
            sketch_resets: self.sketch.resets(),
            aging_period: self.sketch.sample_size(),
            sketch_bytes: self.sketch.heap_bytes(),
        }
    }

    /// Replaces the value of a present `key` in place (it counts as a use:
    /// the entry moves to the front of its segment); hands `value` back if
    /// the key is absent.
    fn replace(&mut self, key: &Key, value: V) -> Result<V, V> {
        let cache = if self.protected.contains(key) {
            &mut self.protected
        } else if self.window.contains(key) {
            &mut self.window
        } else if self.probation.contains(key) {
            &mut self.probation
        } else {
            return Err(value);
        };
        cache.promote(key);
        match cache.peek_mut(key) {
            Some(slot) => Ok(std::mem::replace(slot, value)),
            None => Err(value),
        }
    }

    /// Finds `key` and moves it as a hit does: to the front of the window or
    /// of protected; from probation into protected (demoting protected's
    /// least recently used entry if protected overflows).
    fn touch(&mut self, key: &Key) -> Option<Segment> {
        if self.protected.promote(key) {
            return Some(Segment::Protected);
        }
        if self.window.promote(key) {
            return Some(Segment::Window);
        }
        if self.protected_max == 0 {
            // Main too small for a protected segment (capacity < 3 or so).
            return self.probation.promote(key).then_some(Segment::Probation);
        }
        let (k, v) = self.probation.pop_entry(key)?;
        self.protected.push(k, v);
        if self.protected.len() > self.protected_max {
            // The promoted entry is at the front: the back is another one.
            if let Some((k, v)) = self.protected.pop_lru() {
                self.probation.push(k, v);
            }
        }
        Some(Segment::Protected)
    }

    /// The front (most recently used) value of a segment.
    fn mru(&self, segment: Segment) -> Option<&V> {
        let cache = match segment {
            Segment::Window => &self.window,
            Segment::Probation => &self.probation,
            Segment::Protected => &self.protected,
        };
        cache.peek_mru().map(|(_, v)| v)
    }

    fn main_len(&self) -> usize {
        self.probation.len() + self.protected.len()
    }

    /// Sets the window's target size (clamped to 1..=capacity) and
    /// protected's share of what is left.
    fn set_window(&mut self, window: f64) {
        let window = window.clamp(1.0, self.capacity as f64);
        self.window_max = (window.round() as usize).clamp(1, self.capacity);
        let main = self.capacity - self.window_max;
        self.protected_max = (main as f64 * PROTECTED_SHARE) as usize;
    }

    /// Sets the window's target size, counting the change if there is one.
    fn move_window(&mut self, window: f64) {
        let before = self.window_max;
        self.set_window(window);
        if self.window_max != before {
            self.window_adjustments += 1;
        }
    }

    /// Closes the sample when it is complete: the climber or the cache's
    /// trial moves the window and the aging period toward a better hit
    /// rate.
    fn close_sample(&mut self) {
        let sample = &mut self.sample;
        let requests = sample.hits + sample.misses;
        if !sample.started || requests < sample.period {
            return;
        }
        let rate = sample.hits as f64 / requests as f64;
        let window_hits = sample.window_hits;
        sample.hits = 0;
        sample.misses = 0;
        sample.window_hits = 0;
        let moves = match &mut self.tuner {
            Tuner::Climb(climber) => climber.climb(rate, self.capacity as f64),
            Tuner::Trial(trial, shard) => {
                let next = trial.report(*shard, rate, window_hits);
                Moves {
                    aging: Some(next.aging),
                    window: Some(next.window as f64),
                }
            }
        };
        if let Some(aging) = moves.aging {
            self.set_aging(aging);
        }
        if let Some(window) = moves.window {
            self.move_window(window);
        }
    }

    /// Sets the sketch's aging period, in sightings per cached entry.
    fn set_aging(&mut self, aging: f64) {
        self.sketch
            .set_sample_size((aging * self.capacity as f64) as u64);
    }

    /// Pushes one entry out of a policy holding one more than its
    /// capacity: the window's candidate or main's victim, by frequency.
    fn evict_one(&mut self) -> Evicted<V> {
        if self.window.len() <= self.window_max && self.main_len() > 0 {
            // Main holds more than its share (the window is growing): its
            // victim leaves without a contest.
            return match self.pop_victim() {
                Some((k, v)) => {
                    self.evictions += 1;
                    Evicted::Victim(k, v)
                }
                None => Evicted::None,
            };
        }
        let Some((candidate, value)) = self.window.pop_lru() else {
            return Evicted::None;
        };
        let victim = self
            .probation
            .peek_lru()
            .or_else(|| self.protected.peek_lru())
            .map(|(k, _)| *k);
        self.evictions += 1;
        match victim {
            Some(victim) if self.admit(&candidate, &victim) => {
                self.admitted += 1;
                let out = self.pop_victim();
                self.probation.push(candidate, value);
                match out {
                    Some((k, v)) => Evicted::Victim(k, v),
                    None => Evicted::None,
                }
            }
            _ => {
                self.rejected += 1;
                Evicted::Rejected(candidate, value)
            }
        }
    }

    /// Main's least recently used entry, probation first.
    fn pop_victim(&mut self) -> Option<(Key, V)> {
        self.probation
            .pop_lru()
            .or_else(|| self.protected.pop_lru())
    }

    /// TinyLFU: admit the candidate if it was seen more often than the
    /// victim; a warm candidate that loses still gets in one time in 128.
    ///
    /// The comparison reads the sketch's counters alone, without the
    /// doorkeeper: a first sighting in the current sample is no evidence
    /// of popularity, and counting it would let a candidate seen once
    /// (now) beat a victim seen once (before the last aging cleared the
    /// doorkeeper), which turns main into a FIFO on a loop larger than the
    /// cache.
    fn admit(&mut self, candidate: &Key, victim: &Key) -> bool {
        let (c, v) = (self.sketch.count(candidate), self.sketch.count(victim));
        if c > v {
            return true;
        }
        if v > c {
            // An outright win costs the victim a sighting (a tie costs
            // nothing, so a loop's resident set stays put): a token hot once
            // and idle since loses its place after a few contests instead
            // of at the next aging.
            self.sketch.decrement(victim);
        }
        if c >= ADMIT_WARM {
            // xorshift64
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            return self.rng & 127 == 0;
        }
        false
    }

    /// Moves a few entries toward the current window size and protected
    /// bound (after a climbing step), keeping the total unchanged.
    fn rebalance(&mut self) {
        for _ in 0..MOVES_PER_INSERT {
            if self.window.len() > self.window_max {
                if let Some((k, v)) = self.window.pop_lru() {
                    self.probation.push(k, v);
                    self.admitted += 1;
                }
            } else if self.window.len() < self.window_max
                && self.main_len() > self.capacity - self.window_max
            {
                if let Some((k, v)) = self.pop_victim() {
                    self.window.push(k, v);
                }
            } else {
                break;
            }
        }
        for _ in 0..MOVES_PER_INSERT {
            if self.protected.len() <= self.protected_max {
                break;
            }
            if let Some((k, v)) = self.protected.pop_lru() {
                self.probation.push(k, v);
            }
        }
        trim(&mut self.window, &mut self.peaks[0]);
        trim(&mut self.probation, &mut self.peaks[1]);
        trim(&mut self.protected, &mut self.peaks[2]);
    }
}

/// Gives back a segment's map memory once the segment holds less than a
/// quarter of its peak (probation holds nearly everything while the cache
/// fills, then ~20 %; the window grows and shrinks with the climber): a
/// hash map never shrinks by itself. The rehash is O(len), at most once
/// per quartering, so O(1) amortized.
fn trim<V>(cache: &mut SegmentMap<V>, peak: &mut usize) {
    let len = cache.len();
    if len > *peak {
        *peak = len;
    } else if *peak >= 256 && len * 4 < *peak {
        // `resize` shrinks the map to fit when the bound changes; the two
        // bounds are both far above any real length, so nothing is evicted.
        let bound = if cache.cap() == NonZeroUsize::MAX {
            usize::MAX - 1
        } else {
            usize::MAX
        };
        if let Some(bound) = NonZeroUsize::new(bound) {
            cache.resize(bound);
        }
        *peak = len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};
    use std::collections::HashSet;

    fn key(i: u64) -> Key {
        Sha256::digest(format!("tok{i}").as_bytes()).into()
    }

    /// A request as the cache makes it: a lookup, an insertion on a miss.
    /// Returns whether it hit.
    fn request(p: &mut Policy<u64>, i: u64) -> bool {
        if p.get(&key(i)).is_some() {
            return true;
        }
        let _ = p.insert(key(i), i);
        false
    }

    #[test]
    fn a_key_hashes_as_its_last_eight_bytes() {
        let k = key(1);
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&k[24..]);
        assert_eq!(KeyBits.hash_one(k), u64::from_le_bytes(tail));
        assert_ne!(KeyBits.hash_one(key(2)), KeyBits.hash_one(k));
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        for capacity in [1, 2, 3, 10, 100] {
            let mut p = Policy::new(capacity);
            for i in 0..5_000u64 {
                request(&mut p, i % 7 + (i * 31) % 300);
                assert!(p.len() <= capacity, "capacity {capacity}: {}", p.len());
            }
        }
    }

    #[test]
    fn a_hit_returns_the_value_wherever_the_entry_is() {
        let mut p = Policy::new(100);
        for i in 0..100 {
            assert_eq!(p.insert(key(i), i), Evicted::None);
        }
        // Window, probation, and (after a hit) protected.
        for _ in 0..3 {
            for i in 0..100 {
                assert_eq!(p.get(&key(i)), Some(&i));
                assert_eq!(p.peek(&key(i)), Some(&i));
            }
        }
        let s = p.stats();
        assert!(s.protected_len > 0);
        assert_eq!(s.window_len + s.probation_len + s.protected_len, 100);
        if let Some(v) = p.get_mut(&key(7)) {
            *v = 700;
        }
        assert_eq!(p.peek(&key(7)), Some(&700));
        if let Some(v) = p.peek_mut(&key(8)) {
            *v = 800;
        }
        assert_eq!(p.get(&key(8)), Some(&800));
    }

    #[test]
    fn segment_maps_are_trimmed_without_losing_entries() {
        let mut p = Policy::new(4_000);
        // Fill: probation holds nearly everything.
        for i in 0..4_000 {
            let _ = p.insert(key(i), i);
        }
        let peak = p.stats().probation_len;
        // Hits move most of it to protected.
        for _ in 0..3 {
            for i in 0..4_000 {
                assert_eq!(p.get(&key(i)), Some(&i));
            }
        }
        for i in 4_000..6_000 {
            let _ = request(&mut p, i);
        }
        let s = p.stats();
        assert!(s.probation_len * 4 < peak, "{} vs {peak}", s.probation_len);
        assert_eq!(p.len(), 4_000);
        assert_eq!(p.iter().count(), 4_000);
        assert!(p.peaks[1] < peak);
    }

    #[test]
    fn insert_of_a_present_key_replaces_its_value() {
        let mut p = Policy::new(10);
        let _ = p.insert(key(1), 1);
        assert_eq!(p.insert(key(1), 2), Evicted::Replaced(1));
        assert_eq!(p.len(), 1);
        assert_eq!(p.peek(&key(1)), Some(&2));
    }

    #[test]
    fn remove_and_clear() {
        let mut p = Policy::new(10);
        for i in 0..10 {
            let _ = p.insert(key(i), i);
        }
        let _ = p.get(&key(3));
        assert_eq!(p.remove(&key(3)), Some(3));
        assert_eq!(p.remove(&key(3)), None);
        assert!(!p.contains(&key(3)));
        assert_eq!(p.len(), 9);
        p.clear();
        assert!(p.is_empty());
        assert_eq!(p.iter().count(), 0);
    }

    #[test]
    fn a_miss_records_nothing() {
        let mut p: Policy<u64> = Policy::new(10);
        for _ in 0..5 {
            assert_eq!(p.get(&key(1)), None);
        }
        assert_eq!(p.frequency(&key(1)), 0);
    }

    #[test]
    fn frequency_estimates_grow_until_aging() {
        let mut p = Policy::new(1_000);
        let mut last = 0;
        for i in 0..16 {
            let _ = request(&mut p, 42);
            let f = p.frequency(&key(42));
            assert!(f >= last, "sighting {i}: {f} < {last}");
            last = f;
            // Other traffic in between.
            let _ = request(&mut p, 10_000 + i);
        }
        assert_eq!(p.stats().sketch_resets, 0);
        assert_eq!(last, 16);
    }

    /// A hot set in steady use, with 30 % of the requests carrying a token
    /// never seen before (inserted: the worst case, as if they were valid
    /// one-time tokens), keeps its entries.
    #[test]
    fn a_flood_of_one_time_keys_does_not_push_out_the_hot_set() {
        let mut p = Policy::new(200);
        let mut x = 1u64;
        let mut next_once = 1_000_000u64;
        let (mut hot, mut hot_hits) = (0u64, 0u64);
        for n in 0..200_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if (x >> 33) % 10 < 3 {
                next_once += 1;
                let _ = request(&mut p, next_once);
            } else {
                let hit = request(&mut p, (x >> 40) % 150);
                if n >= 100_000 {
                    hot += 1;
                    hot_hits += u64::from(hit);
                }
            }
        }
        for i in 0..150 {
            assert!(p.contains(&key(i)), "hot key {i} pushed out");
        }
        assert!(hot_hits * 1000 >= hot * 999, "{hot_hits} / {hot}");
        let s = p.stats();
        assert!(s.rejected > 0 && s.rejected <= s.evictions);
    }

    /// The same flood never inserted (as the cache does with bogus tokens)
    /// but recorded in the sketch, as if lookups counted: the hot keys'
    /// hit rate stays within a point of the same requests with no flood.
    /// Averaged over six seeds: at this capacity a climbing sample is 500
    /// requests, and one run's hit rate moves by about a point either way
    /// with the climbers' path, flood or not.
    #[test]
    fn recorded_bogus_sightings_do_not_skew_the_hot_set() {
        let run = |flood: bool, seed: u64| {
            let mut p = Policy::new(100);
            let mut x = seed;
            let (mut hot, mut hot_hits) = (0u64, 0u64);
            for n in 0..100_000u64 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if (x >> 33) % 10 < 3 {
                    if flood {
                        p.record_access(&key(5_000_000 + n));
                    }
                } else {
                    // 300 keys, skewed: the low ones are the hot ones.
                    let r = (x >> 40) % 300;
                    let i = r * r / 300;
                    let hit = request(&mut p, i);
                    if n >= 50_000 && i < 20 {
                        hot += 1;
                        hot_hits += u64::from(hit);
                    }
                }
            }
            hot_hits as f64 / hot as f64
        };
        let seeds = 7..13u64;
        let mean = |flood| seeds.clone().map(|s| run(flood, s)).sum::<f64>() / 6.0;
        let (calm, flooded) = (mean(false), mean(true));
        assert!(calm > 0.9, "{calm}");
        assert!((calm - flooded).abs() < 0.01, "{calm} vs {flooded}");
    }

    /// A key hot once and idle since holds its place only for as long as
    /// its stale counts win contests: each outright win costs it one, so
    /// newcomers seen a few times beat it well before the sketch's next
    /// aging; a tie costs nothing.
    #[test]
    fn a_victim_pays_for_each_outright_win() {
        let mut p = Policy::<u64>::new(1000);
        let (stale, newcomer) = (key(1), key(2));
        for _ in 0..13 {
            p.record_access(&stale); // counters at 12
        }
        for _ in 0..4 {
            p.record_access(&newcomer); // counters at 3
        }
        // Nine outright wins, each costing the victim one: 12 → 3.
        for _ in 0..9 {
            assert!(!p.admit(&newcomer, &stale));
        }
        assert_eq!(p.sketch.count(&stale), 3);
        // A tie goes to the victim and costs it nothing.
        assert!(!p.admit(&newcomer, &stale));
        assert_eq!(p.sketch.count(&stale), 3);
        // One more sighting of the newcomer, and it wins; no aging needed.
        p.record_access(&newcomer);
        assert!(p.admit(&newcomer, &stale));
        assert_eq!(p.stats().sketch_resets, 0);
    }

    /// The aging period moves with the traffic, within its bounds.
    #[test]
    fn the_aging_period_is_climbed_within_its_bounds() {
        let mut p = Policy::new(100);
        assert_eq!(p.stats().aging_period, 400);
        let mut x = 3u64;
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..200_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // A ranking that drifts: the hot keys change over time.
            let r = (x >> 40) % 400;
            let _ = request(&mut p, r * r / 400 + n / 50);
            seen.insert(p.stats().aging_period);
        }
        assert!(seen.len() > 2, "never moved: {seen:?}");
        assert!(seen.iter().all(|&a| (125..=1000).contains(&a)), "{seen:?}");
    }

    /// Under a cache's trial, a shard's policy runs the settings the trial
    /// hands it at each sample: here the other 15 shards find a larger
    /// window and a shorter aging period better, and the policy follows.
    #[test]
    fn under_a_trial_the_policy_runs_the_trials_settings() {
        let trial = Arc::new(Trial::new(16, 100));
        let mut p = Policy::with_trial(100, Arc::clone(&trial), 0);
        let start = trial.start();
        assert_eq!(p.stats().window_max, start.window);
        assert_eq!(p.stats().aging_period, (start.aging * 100.0) as u64);
        let mut others = [start; 16];
        let mut x = 7u64;
        for _ in 0..300 {
            for (shard, s) in others.iter_mut().enumerate().skip(1) {
                let rate = 0.5 + 0.01 * (s.window as f64).log2() - 0.01 * s.aging.log2();
                // A window hit each sample: only the probes move the settings.
                *s = trial.report(shard, rate, 1);
            }
            // One climbing sample of shard 0: 5 × its capacity in requests.
            for _ in 0..500 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let _ = request(&mut p, (x >> 40) % 300);
            }
        }
        let current = trial.current();
        assert_eq!(current.aging, 1.25);
        assert!(current.window >= 8, "{current:?}");
        // Shard 0 runs the control or a probe one step from it.
        let stats = p.stats();
        let window = stats.window_max;
        assert!(
            window == current.window
                || window * 2 == current.window
                || window == current.window * 2,
            "{stats:?} {current:?}"
        );
        let aging = stats.aging_period as f64 / 100.0;
        assert!([1.25, 2.5].contains(&aging), "{stats:?}");
    }

    #[test]
    fn a_scan_does_not_wash_out_the_hot_set() {
        let mut p = Policy::new(100);
        for _ in 0..20 {
            for i in 0..80 {
                let _ = request(&mut p, i);
            }
        }
        for i in 1_000..11_000 {
            let _ = request(&mut p, i);
        }
        let kept = (0..80).filter(|&i| p.contains(&key(i))).count();
        assert!(kept >= 75, "{kept} of 80 hot keys kept");
    }

    #[derive(Clone, Debug)]
    enum Op {
        Request(u8),
        Insert(u8),
        Remove(u8),
        Peek(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => any::<u8>().prop_map(Op::Request),
            2 => any::<u8>().prop_map(Op::Insert),
            1 => any::<u8>().prop_map(Op::Remove),
            1 => any::<u8>().prop_map(Op::Peek),
        ]
    }

    proptest! {
        /// Against a model set: every inserted key is held until it is
        /// reported out (rejected or evicted) or removed; nothing else
        /// leaves; the capacity is never exceeded.
        #[test]
        fn every_key_is_held_or_reported(
            capacity in 1usize..40,
            ops in proptest::collection::vec(op(), 1..600),
        ) {
            let mut p: Policy<u64> = Policy::new(capacity);
            let mut model: HashSet<Key> = HashSet::new();
            for op in ops {
                match op {
                    Op::Request(i) | Op::Insert(i) => {
                        let k = key(u64::from(i));
                        if matches!(op, Op::Request(_)) && p.get(&k).is_some() {
                            prop_assert!(model.contains(&k));
                            continue;
                        }
                        match p.insert(k, u64::from(i)) {
                            Evicted::None => {
                                prop_assert!(model.insert(k));
                            }
                            Evicted::Replaced(old) => {
                                prop_assert!(model.contains(&k));
                                prop_assert_eq!(old, u64::from(i));
                            }
                            Evicted::Rejected(out, _) | Evicted::Victim(out, _) => {
                                model.insert(k);
                                prop_assert!(model.remove(&out), "reported a key not held");
                            }
                        }
                    }
                    Op::Remove(i) => {
                        let k = key(u64::from(i));
                        prop_assert_eq!(p.remove(&k).is_some(), model.remove(&k));
                    }
                    Op::Peek(i) => {
                        let k = key(u64::from(i));
                        prop_assert_eq!(p.peek(&k).is_some(), model.contains(&k));
                    }
                }
                prop_assert!(p.len() <= capacity);
                prop_assert_eq!(p.len(), model.len());
            }
            for k in &model {
                prop_assert!(p.contains(k));
            }
            let held: HashSet<Key> = p.iter().map(|(k, _)| *k).collect();
            prop_assert_eq!(held, model);
        }
    }
}
