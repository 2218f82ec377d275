//! The policy's two settings, the frequency sketch's aging period and the
//! admission window's size, chosen by a trial run across the cache's
//! shards.
//!
//! No setting suits every traffic (BENCHMARKS.md). Stationary Zipf wants a
//! long memory (5 × to 10 × capacity) and a small window; popularity that
//! shifts wants a short memory and a window of 1 % to 8 % (the smaller the
//! cache, the larger); a loop larger than the cache wants a short memory
//! and the smallest window. One policy alone can only try settings one
//! after the other, so each judgment compares two different stretches of
//! traffic: a change in the traffic, or the churn that follows a move,
//! reads as the setting's doing, and a dip between two good settings
//! cannot be crossed. A window climbed that way by each shard ended at
//! 2.3 % on shifting popularity at 20 %, where 1 % for every shard gets
//! 1.2 points more.
//!
//! The shards of a cache see the same traffic at the same time, split by
//! token hash. So the cache runs settings side by side:
//!
//! * Each setting has a ladder of values and a current one. Most shards run
//!   both current values (the **control**); up to a quarter of them at a
//!   time run a neighbouring value of the aging period (its **probe**), and
//!   up to a quarter a neighbouring window, for one climbing sample each,
//!   then go back. A shard probes one setting at a time, the aging period
//!   when it has room (sharing probes evenly did worse).
//! * Each shard's hit rate is compared with its own previous sample, and
//!   the probe's change with the control's change over the same stretch (a
//!   difference of differences): what the traffic did cancels out, and so
//!   does what one shard holds (a shard with the hottest token has a higher
//!   hit rate at every setting). A shard's return from the probe counts
//!   too, with its sign turned.
//! * After 8 such probe changes for a setting, if its probe's gain over
//!   the control exceeds its standard error (or sooner, from the 4th
//!   change on, if it exceeds three standard errors and every one of its
//!   changes so far beat the control's mean change), every shard moves to
//!   it and
//!   that setting's next trial probes further the same way (the other
//!   setting's evidence, gathered at the old value, is dropped); if not,
//!   its next trial probes the other way, after a pause that doubles with
//!   each trial that moved nothing (one sample per shard at first, at most
//!   eight) so that a settled cache spends little on probes.
//! * The ladders are doublings, so a probe reaches past a dip that a small
//!   step would have to cross: the aging period 1.25 × to 10 × capacity
//!   (from 5 ×), the window the powers of two in entries from one to 16 %
//!   of a shard's capacity (from the largest not above 1 %).
//!
//! * The window also shrinks without a probe when it is idle: after a
//!   round of samples in a row (as many as there are shards) at the
//!   current window with no hit in it, and no window that size or smaller
//!   got a hit since, its entries were never asked for again while there,
//!   and a smaller window, an LRU of the same insertions, would hold a
//!   subset of them: its slots are pure cost, so the current window steps
//!   down at once (the shards count as the control at the new value, so
//!   no sample reads as a probe's). A loop larger than the cache is the
//!   traffic that shows it: each entry of the window costs a hit per pass,
//!   and a probe of one step gains less than the trial's noise.
//! * When a window the idle rule shrank by two steps or more gets a hit
//!   again, the traffic that made it idle has passed (a loop or a scan
//!   gave way to shifting popularity): the window goes back at once to
//!   where the rule found it, and the ladder's next probe goes up, with no
//!   pause. Climbing back a step per trial took longer than the new phase
//!   lasted: on the simulator's `loop->shift` at 20 %, the window stayed at
//!   one entry per shard for 500,000 requests, 2.9 points behind the old
//!   LRU; undone, 0.35 (BENCHMARKS.md, "Phase changes"). A single step is
//!   not undone: small windows go idle for a round and then get hit on
//!   ordinary traffic, and undoing those made the window bounce.
//!
//! A shard reports once per climbing sample (5 × its capacity in
//! requests), under its own lock; the trial's lock is taken then, never on
//! the hit path, and never while the trial waits on anything.

use parking_lot::Mutex;

/// The aging periods tried, in sightings per cached entry.
const AGING: [f64; 4] = [1.25, 2.5, 5.0, 10.0];
/// Where every shard starts: 5 ×, which alone met the most rows of the
/// simulator's table (48 of 50 with each shard's window climbed, against
/// 43 for 2.5 × and 41 for 10 ×).
const AGING_START: usize = 2;
/// The window sizes tried are the powers of two, in entries, from one
/// entry up to this share of a shard's capacity (at least two sizes).
const WINDOW_MAX_SHARE: f64 = 0.16;
/// Where every shard's window starts: the largest size not above this
/// share of its capacity (Caffeine's start, rounded down).
const WINDOW_START_SHARE: f64 = 0.01;
/// Probe changes per trial.
const EVIDENCE: u32 = 8;
/// A probe this many standard errors ahead from half the evidence on, each
/// of its changes ahead of the control's mean, wins at once: a trial's
/// probes cost while they last, and a setting far off the traffic's best
/// (a long memory on a loop larger than the cache) is paid for on every
/// shard until the trial ends.
const EARLY_ERRORS: f64 = 3.0;
/// The smallest gain of hit rate worth a move (0.1 point): below it, a
/// move costs more in transients than it brings.
const MIN_GAIN: f64 = 0.001;
/// The longest pause between trials, in samples per shard.
const MAX_PAUSE: u64 = 8;

/// What a shard runs: the aging period in sightings per cached entry, and
/// the window's size in entries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Settings {
    pub(crate) aging: f64,
    pub(crate) window: usize,
}

/// A shard's place on the two ladders: an index into [`AGING`], and the
/// window's size as a power of two.
type Levels = [usize; 2];

/// What the trial keeps of one shard.
#[derive(Clone, Copy, Debug)]
struct ShardRecord {
    /// The hit rate of the shard's last sample, if it had one.
    last_rate: Option<f64>,
    /// The settings the shard ran that sample at.
    last: Levels,
    /// The settings it runs now.
    now: Levels,
}

/// A running mean and variance (Welford's).
#[derive(Clone, Copy, Debug, Default)]
struct Moments {
    n: u32,
    /// The smallest value (0 before the first).
    min: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn add(&mut self, x: f64) {
        if self.n == 0 || x < self.min {
            self.min = x;
        }
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / f64::from(self.n);
        self.m2 += d * (x - self.mean);
    }

    /// The variance of the mean (0 with fewer than two values).
    fn variance_of_mean(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            self.m2 / f64::from(self.n - 1) / f64::from(self.n)
        }
    }
}

/// One setting's ladder, current value, probe and evidence.
#[derive(Debug)]
struct Ladder {
    len: usize,
    /// The control's value (index into the ladder).
    current: usize,
    /// The probe's value.
    probe: usize,
    /// This trial's evidence: the probe's gains (a shard's change going to
    /// the probe, and its change coming back with the sign turned) and the
    /// control's changes.
    gains: Moments,
    control: Moments,
    /// Reports to let pass before the next probe starts, and the pause
    /// after the next trial that moves nothing.
    pause: u64,
    next_pause: u64,
}

impl Ladder {
    /// A ladder of `len` values starting at `start`, probing down first.
    fn new(len: usize, start: usize) -> Self {
        let mut ladder = Self {
            len,
            current: start,
            probe: start,
            gains: Moments::default(),
            control: Moments::default(),
            pause: 0,
            next_pause: 0,
        };
        ladder.probe = ladder.neighbour(start, false);
        ladder
    }

    /// Ends a trial when it has its evidence: adopts the probe if its gain
    /// over the control exceeds its standard error (and 0.1 point), and
    /// picks the next probe. From half the evidence on, it ends as soon as
    /// the probe is clearly ahead (a sequential test's interim looks).
    /// Returns whether the current value moved.
    fn conclude(&mut self, shards: usize) -> bool {
        if self.gains.n < EVIDENCE / 2 || self.control.n < 2 {
            return false;
        }
        // The control's change is subtracted from both kinds of gain,
        // although a shard coming back from the probe sees the traffic's
        // change too, with the sign turned: the bar rises while the whole
        // cache's hit rate rises (a cache warming up holds still) and falls
        // while it falls. The unbiased estimate, measured on the
        // simulator's table, did worse (BENCHMARKS.md): one probe sample
        // shows a setting's transient more than its lasting effect.
        let gain = self.gains.mean - self.control.mean;
        let error = (self.gains.variance_of_mean() + self.control.variance_of_mean()).sqrt();
        // The interim looks: a standard error from four to seven values is
        // itself uncertain (and a transient's changes are far from normal), so
        // the probe must also have beaten the control on every change.
        if self.gains.n < EVIDENCE
            && !(gain > EARLY_ERRORS * error.max(MIN_GAIN) && self.gains.min > self.control.mean)
        {
            return false;
        }
        let up = self.probe > self.current;
        let moved = gain > error.max(MIN_GAIN);
        if moved {
            self.current = self.probe;
            self.probe = self.neighbour(self.current, up);
            self.next_pause = 0;
        } else {
            self.probe = self.neighbour(self.current, !up);
            let shards = shards as u64;
            self.next_pause = (self.next_pause * 2).clamp(shards, MAX_PAUSE * shards);
            self.pause = self.next_pause;
        }
        self.forget();
        moved
    }

    fn forget(&mut self) {
        self.gains = Moments::default();
        self.control = Moments::default();
    }

    /// The value next to `level` on the ladder: above it (`up`) or below,
    /// or the only one there is at an end.
    fn neighbour(&self, level: usize, up: bool) -> usize {
        if (up && level + 1 < self.len) || level == 0 {
            level + 1
        } else {
            level - 1
        }
    }
}

#[derive(Debug)]
struct State {
    shards: Vec<ShardRecord>,
    /// The aging period's ladder and the window's, in [`Levels`] order.
    ladders: [Ladder; 2],
    /// The most shards probing one setting at once.
    max_probing: usize,
    /// Samples in a row at the current window in which the window got no
    /// hit (since a window that size or smaller last got one).
    idle_window: usize,
    /// The largest window the idle window's rule stepped down from since
    /// the window last got a hit: where the traffic that made it idle
    /// found it.
    came_from: Option<usize>,
}

impl State {
    fn currents(&self) -> Levels {
        [self.ladders[0].current, self.ladders[1].current]
    }

    fn forget_idle(&mut self) {
        self.idle_window = 0;
    }

    /// A silent move of the window from `from` to `to`: the shards at the
    /// old window count as at the new one.
    fn relabel(&mut self, from: usize, to: usize) {
        for r in &mut self.shards {
            for levels in [&mut r.last, &mut r.now] {
                if levels[1] == from {
                    levels[1] = to;
                }
            }
        }
    }
}

/// The trial of the policy's settings for one cache; see the module
/// documentation.
#[derive(Debug)]
pub(crate) struct Trial {
    /// Where every shard starts.
    start: Levels,
    state: Mutex<State>,
}

/// The settings at `levels`.
fn settings(levels: Levels) -> Settings {
    Settings {
        aging: AGING[levels[0]],
        window: 1 << levels[1],
    }
}

/// The one setting `levels` differ in from `currents` and where it is, if
/// they differ in exactly one.
fn probing(levels: Levels, currents: Levels) -> Option<(usize, usize)> {
    match (levels[0] == currents[0], levels[1] == currents[1]) {
        (false, true) => Some((0, levels[0])),
        (true, false) => Some((1, levels[1])),
        _ => None,
    }
}

impl Trial {
    /// A trial over `shards` shards (at least 2: one probes, one is the
    /// control) of `capacity` entries each (the smallest, if they differ).
    pub(crate) fn new(shards: usize, capacity: usize) -> Self {
        let shards = shards.max(2);
        let log2 = |share: f64| (share * capacity as f64).max(1.0).log2();
        let window_len = (log2(WINDOW_MAX_SHARE) as usize + 1).max(2);
        let window_start = (log2(WINDOW_START_SHARE) as usize).min(window_len - 1);
        let start = [AGING_START, window_start];
        let record = ShardRecord {
            last_rate: None,
            last: start,
            now: start,
        };
        Self {
            start,
            state: Mutex::new(State {
                shards: vec![record; shards],
                ladders: [
                    Ladder::new(AGING.len(), AGING_START),
                    Ladder::new(window_len, window_start),
                ],
                max_probing: (shards / 4).max(1),
                idle_window: 0,
                came_from: None,
            }),
        }
    }

    /// The settings every shard starts at.
    pub(crate) fn start(&self) -> Settings {
        settings(self.start)
    }

    /// The settings every shard not probing runs now.
    #[cfg(test)]
    pub(crate) fn current(&self) -> Settings {
        settings(self.state.lock().currents())
    }

    /// Shard `shard` closed a climbing sample with hit rate `rate`, in which
    /// its window got `window_hits` hits: records it, and returns the
    /// settings the shard runs its next sample at.
    ///
    /// After a round of samples in a row (as many as there are shards) at
    /// the current window without a hit in it, and no window that small or
    /// smaller got one since, the window only holds entries the traffic
    /// does not ask for again while there, so it shrinks a step at once,
    /// without a probe.
    pub(crate) fn report(&self, shard: usize, rate: f64, window_hits: u64) -> Settings {
        let mut state = self.state.lock();
        let s = &mut *state;
        let currents = s.currents();
        let Some(&rec) = s.shards.get(shard) else {
            return settings(currents);
        };
        // A window holds what a smaller one would have held and more (an
        // LRU of the same insertions): a hit in a window no larger than
        // the current one means the current one gets hits too.
        if window_hits > 0 && rec.now[1] <= currents[1] {
            s.forget_idle();
            // The window the idle rule shrank gets hits again: the traffic
            // that made it idle has changed, and the premise of its silent
            // moves with it. If they were two steps or more (a phase, not
            // a quiet round of a small window), they are undone, silently
            // too: the window goes back to where the rule found it, the
            // ladder's pause (earned under the old traffic) is cleared and
            // its next probe goes up. If the new traffic leaves that window
            // idle, the rule shrinks it again, a step a round.
            if let Some(back) = s.came_from.take().filter(|&b| b > currents[1] + 1) {
                let w = &mut s.ladders[1];
                w.current = back;
                w.probe = w.neighbour(back, true);
                w.pause = 0;
                w.next_pause = 0;
                w.forget();
                s.relabel(currents[1], back);
            }
        } else if window_hits == 0 && rec.now[1] == currents[1] {
            s.idle_window += 1;
            if s.idle_window >= s.shards.len() && currents[1] > 0 {
                let (from, to) = (currents[1], currents[1] - 1);
                s.came_from = Some(s.came_from.map_or(from, |c| c.max(from)));
                let w = &mut s.ladders[1];
                w.current = to;
                w.probe = w.neighbour(to, false);
                w.forget();
                s.forget_idle();
                // A silent move: the shards at the old window count as the
                // control at the new one (a smaller idle window holds
                // nothing the traffic asked for either), so no shard's
                // next sample reads as a return from a probe.
                s.relabel(from, to);
            }
        }
        let rec = s.shards[shard];
        let currents = s.currents();
        if let Some(last) = rec.last_rate {
            let change = rate - last;
            match (rec.last == currents, rec.now == currents) {
                (true, true) => s.ladders.iter_mut().for_each(|l| l.control.add(change)),
                (true, false) => {
                    if let Some((i, level)) = probing(rec.now, currents) {
                        if level == s.ladders[i].probe {
                            s.ladders[i].gains.add(change);
                        }
                    }
                }
                (false, true) => {
                    // Back from the probe: what it loses, the probe gained.
                    if let Some((i, level)) = probing(rec.last, currents) {
                        if level == s.ladders[i].probe {
                            s.ladders[i].gains.add(-change);
                        }
                    }
                }
                (false, false) => {}
            }
        }
        let shard_count = s.shards.len();
        for i in 0..2 {
            if s.ladders[i].conclude(shard_count) {
                // The other setting's evidence was gathered at the old
                // value.
                s.ladders[1 - i].forget();
                if i == 1 {
                    s.forget_idle();
                }
            }
        }
        let currents = s.currents();
        // A shard whose last two samples ran the control (or whose first
        // did) probes the aging period if there is room and no pause, else
        // the window likewise; one back from a probe runs the control. The
        // aging period goes first: probes shared out evenly between the
        // two did worse on the simulator's table, on every seed tried
        // (BENCHMARKS.md).
        let mut probing_now = [0; 2];
        for (i, r) in s.shards.iter().enumerate() {
            if let Some((l, level)) = probing(r.now, currents).filter(|_| i != shard) {
                if level == s.ladders[l].probe {
                    probing_now[l] += 1;
                }
            }
        }
        let rested = rec.now == currents && rec.last == currents;
        let mut next = currents;
        if rested {
            if let Some(l) =
                (0..2).find(|&l| s.ladders[l].pause == 0 && probing_now[l] < s.max_probing)
            {
                next[l] = s.ladders[l].probe;
            }
        }
        for ladder in &mut s.ladders {
            ladder.pause = ladder.pause.saturating_sub(1);
        }
        s.shards[shard] = ShardRecord {
            last_rate: Some(rate),
            last: rec.now,
            now: next,
        };
        settings(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shards of 1,250 entries: windows of 1 to 128 entries, starting at 8.
    const CAPACITY: usize = 1250;

    /// A window hit in every sample: the idle window's rule stays out of
    /// the tests of the probes.
    const WINDOW_BUSY: u64 = 1;

    /// Runs `rounds` samples on every shard of `trial`, each shard's hit
    /// rate given by `rate(shard, settings, round)`; returns the control's
    /// settings after each round.
    fn run(
        trial: &Trial,
        shards: usize,
        rounds: usize,
        rate: impl Fn(usize, Settings, usize) -> f64,
    ) -> Vec<Settings> {
        let mut settings = vec![trial.start(); shards];
        let mut currents = Vec::new();
        for round in 0..rounds {
            for (shard, s) in settings.iter_mut().enumerate() {
                *s = trial.report(shard, rate(shard, *s, round), WINDOW_BUSY);
            }
            currents.push(trial.current());
        }
        currents
    }

    /// Distance from `best` on a ladder of doublings.
    fn off(value: f64, best: f64) -> f64 {
        (value.log2() - best.log2()).abs()
    }

    #[test]
    fn the_ladders_follow_the_capacity_and_turn_back_at_their_ends() {
        let trial = Trial::new(16, CAPACITY);
        assert_eq!(
            trial.start(),
            Settings {
                aging: 5.0,
                window: 8
            }
        );
        let state = trial.state.lock();
        // 16 % of 1,250 is 200: the largest window is 128 entries.
        assert_eq!(state.ladders[1].len, 8);
        let aging = &state.ladders[0];
        assert_eq!(aging.neighbour(0, false), 1);
        assert_eq!(aging.neighbour(0, true), 1);
        assert_eq!(aging.neighbour(2, true), 3);
        assert_eq!(aging.neighbour(2, false), 1);
        assert_eq!(aging.neighbour(3, true), 2);
        drop(state);
        // A shard too small for 1 % starts at one entry and still has a
        // second size to try.
        let small = Trial::new(16, 3);
        assert_eq!(small.start().window, 1);
        assert_eq!(small.state.lock().ladders[1].len, 2);
    }

    /// The trial climbs both ladders to the best settings at either end,
    /// and what each shard holds (a hit rate of its own, the same at every
    /// setting) does not mislead it.
    #[test]
    fn climbs_to_the_best_settings_at_either_end() {
        for (aging, window) in [(1.25_f64, 128.0_f64), (10.0, 1.0)] {
            let trial = Trial::new(16, CAPACITY);
            let score = |s: Settings| {
                0.8 - 0.01 * off(s.aging, aging) - 0.005 * off(s.window as f64, window)
            };
            let currents = run(&trial, 16, 200, |shard, s, _| {
                score(s) + shard as f64 * 0.01
            });
            let want = Settings {
                aging,
                window: window as usize,
            };
            assert_eq!(currents.last(), Some(&want), "{currents:?}");
        }
    }

    /// While the whole cache's hit rate rises (a cache warming up), a
    /// probe no better than the control moves nothing; one clearly better
    /// still wins (2.5 ×, a 4-entry window), and the next one down, no
    /// better again, does not.
    #[test]
    fn a_warming_cache_holds_still_unless_a_probe_wins_clearly() {
        let trial = Trial::new(16, CAPACITY);
        let start = trial.start();
        let rising = |_: usize, _: Settings, round: usize| 0.5 + round as f64 * 0.005;
        let currents = run(&trial, 16, 60, rising);
        assert!(currents.iter().all(|&c| c == start), "{currents:?}");

        let trial = Trial::new(16, CAPACITY);
        let currents = run(&trial, 16, 60, |shard, s, round| {
            let better =
                if s.aging < 5.0 { 0.05 } else { 0.0 } + if s.window < 8 { 0.05 } else { 0.0 };
            rising(shard, s, round) + better
        });
        let want = Settings {
            aging: 2.5,
            window: 4,
        };
        assert_eq!(currents.last(), Some(&want), "{currents:?}");
    }

    /// Probes stay a minority (a quarter of the shards per setting), and a
    /// settled trial pauses between them.
    #[test]
    fn probes_stay_few_and_pause_once_settled() {
        let trial = Trial::new(16, CAPACITY);
        let start = trial.start();
        let mut settings = [start; 16];
        let mut probing_per_round = Vec::new();
        for _ in 0..80 {
            for (shard, s) in settings.iter_mut().enumerate() {
                // The start is best: no probe ever wins.
                let rate = if *s == start { 0.8 } else { 0.7 };
                *s = trial.report(shard, rate, WINDOW_BUSY);
            }
            let aging = settings.iter().filter(|s| s.aging != start.aging).count();
            let window = settings.iter().filter(|s| s.window != start.window).count();
            assert!(aging <= 4 && window <= 4, "{settings:?}");
            assert!(settings
                .iter()
                .all(|s| s.aging == start.aging || s.window == start.window));
            probing_per_round.push(aging + window);
        }
        let early: usize = probing_per_round[..20].iter().sum();
        let late: usize = probing_per_round[60..].iter().sum();
        assert!(early > 0 && late < early, "{probing_per_round:?}");
        assert_eq!(trial.current(), start);
    }

    /// A probe far ahead of the control on every change wins after half
    /// the evidence; one as far ahead on average but behind it once, or
    /// ahead by too little, waits for the rest.
    #[test]
    fn a_clear_winner_moves_after_half_the_evidence() {
        let ladder = |gains: &[f64]| {
            let mut l = Ladder::new(AGING.len(), AGING_START);
            for x in [0.0, 0.001, -0.001] {
                l.control.add(x);
            }
            for &x in gains {
                l.gains.add(x);
            }
            l
        };
        let mut clear = ladder(&[0.05, 0.06, 0.055, 0.05]);
        assert!(clear.conclude(16));
        assert_eq!(clear.current, AGING_START - 1);

        let mut close = ladder(&[0.01, 0.002, 0.008, 0.001]);
        assert!(!close.conclude(16));
        assert_eq!(close.current, AGING_START);

        let mut once_behind = ladder(&[0.05, 0.05, 0.05, 0.05, 0.05, 0.05, -0.001]);
        assert!(!once_behind.conclude(16));
        once_behind.gains.add(0.05);
        assert!(once_behind.conclude(16));
        assert_eq!(once_behind.current, AGING_START - 1);
    }

    /// A window that gets no hit for a round of samples (as many as there
    /// are shards) shrinks a step a round, without a probe, down to one
    /// entry. One that gets a hit now and then holds: a hit on one shard,
    /// at the current window or a smaller one, every half round.
    #[test]
    fn an_idle_window_shrinks_without_a_probe() {
        let run = |busy: bool| {
            let trial = Trial::new(16, CAPACITY);
            let mut settings = [trial.start(); 16];
            let mut windows = Vec::new();
            for _ in 0..6 {
                for (shard, s) in settings.iter_mut().enumerate() {
                    let hits = u64::from(busy && shard % 8 == 0 && s.window <= 8);
                    *s = trial.report(shard, 0.8, hits);
                }
                windows.push(trial.current().window);
            }
            windows
        };
        assert_eq!(Trial::new(16, CAPACITY).start().window, 8);
        // A step at the first round; a shard probing the next step down
        // (not the current window) may hold the next step back a round.
        let idle = run(false);
        assert_eq!(idle[0], 4, "{idle:?}");
        assert!(
            idle.windows(2).all(|p| p[1] == p[0] || p[1] * 2 == p[0]),
            "{idle:?}"
        );
        assert_eq!(idle.last(), Some(&1), "{idle:?}");
        assert_eq!(run(true), [8; 6]);
    }

    /// A window the idle rule shrank goes back to where the rule found it
    /// at its next hit (the traffic changed: after a loop, a shift), and
    /// its next probe goes up; a hit in a probe's larger window does not
    /// count.
    #[test]
    fn a_window_shrunk_idle_goes_back_at_its_next_hit() {
        let trial = Trial::new(16, CAPACITY);
        let mut settings = [trial.start(); 16];
        for _ in 0..8 {
            for (shard, s) in settings.iter_mut().enumerate() {
                *s = trial.report(shard, 0.8, 0);
            }
        }
        assert_eq!(trial.current().window, 1);
        // Still idle, until a shard probes the next window up (its pause
        // over): a hit there says nothing of the current window.
        let mut probe = None;
        for _ in 0..32 {
            probe = settings.iter().position(|s| s.window > 1);
            if probe.is_some() {
                break;
            }
            for (shard, s) in settings.iter_mut().enumerate() {
                *s = trial.report(shard, 0.8, 0);
            }
        }
        let probe = probe.expect("at one entry, a shard probes the next window up");
        assert_eq!(settings[probe].window, 2);
        settings[probe] = trial.report(probe, 0.8, 1);
        assert_eq!(trial.current().window, 1);
        let shard = settings.iter().position(|s| s.window == 1).unwrap();
        settings[shard] = trial.report(shard, 0.8, 1);
        assert_eq!(trial.current().window, 8);
        assert_eq!(trial.state.lock().ladders[1].probe, 4);
        // Idle again, it shrinks again.
        for _ in 0..8 {
            for (shard, s) in settings.iter_mut().enumerate() {
                *s = trial.report(shard, 0.8, 0);
            }
        }
        assert_eq!(trial.current().window, 1);
    }

    /// A window the idle rule shrank by one rung only stays where it is at
    /// its next hit: a small window idle for a round, then hit, is
    /// ordinary traffic, not a phase that passed.
    #[test]
    fn a_window_shrunk_one_rung_stays_at_its_next_hit() {
        let trial = Trial::new(16, CAPACITY);
        let mut settings = [trial.start(); 16];
        assert_eq!(trial.current().window, 8);
        for (shard, s) in settings.iter_mut().enumerate() {
            *s = trial.report(shard, 0.8, 0);
        }
        assert_eq!(trial.current().window, 4);
        let shard = settings.iter().position(|s| s.window == 4);
        let shard = shard.expect("a shard runs the current window");
        trial.report(shard, 0.8, 1);
        assert_eq!(trial.current().window, 4);
    }

    #[test]
    fn an_unknown_shard_gets_the_current_settings() {
        let trial = Trial::new(4, CAPACITY);
        assert_eq!(trial.report(99, 0.5, WINDOW_BUSY), trial.start());
    }
}
