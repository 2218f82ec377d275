//! The frequency sketch's aging period, chosen by a trial run across the
//! cache's shards.
//!
//! No aging period suits every traffic (BENCHMARKS.md): stationary Zipf
//! wants a long memory (5 × to 10 × capacity), popularity that shifts and
//! a loop larger than the cache want a short one (2.5 × and less). One
//! policy alone can only try periods one after the other, so each judgment
//! compares two different stretches of traffic: a change in the traffic,
//! or the churn that follows an aging, reads as the period's doing, and a
//! dip between two good periods cannot be crossed (a loop at 20 % of its
//! length lost 3 points that way).
//!
//! The shards of a cache see the same traffic at the same time, split by
//! token hash. So the cache runs periods side by side:
//!
//! * Most shards run the current period (the **control**); up to a quarter
//!   of them at a time run a neighbouring one (the **probe**) for one
//!   climbing sample, then go back.
//! * Each shard's hit rate is compared with its own previous sample, and
//!   the probe's change with the control's change over the same stretch (a
//!   difference of differences): what the traffic did cancels out, and so
//!   does what one shard holds (a shard with the hottest token has a higher
//!   hit rate at every period). A shard's return from the probe counts too,
//!   with its sign turned.
//! * After 8 such probe changes, if the probe's gain over the control
//!   exceeds its standard error, every shard moves to it and the next trial
//!   probes further the same way; if not, the next trial probes the other
//!   way, after a pause that doubles with each trial that moved nothing
//!   (one sample per shard at first, at most eight) so that a settled
//!   cache spends little on probes.
//! * The periods are a ladder of doublings, 1.25 × to 10 × capacity, so a
//!   probe reaches past a dip that a small step would have to cross.
//!
//! A shard reports once per climbing sample (5 × its capacity in
//! requests), under its own lock; the trial's lock is taken then, never on
//! the hit path, and never while the trial waits on anything.

use parking_lot::Mutex;

/// The aging periods tried, in sightings per cached entry.
const LEVELS: [f64; 4] = [1.25, 2.5, 5.0, 10.0];
/// Where every shard starts: 5 ×, which alone met the most rows of the
/// simulator's table (48 of 50, against 43 for 2.5 × and 41 for 10 ×).
const START: usize = 2;
/// Probe changes per trial.
const EVIDENCE: u32 = 8;
/// The smallest gain of hit rate worth a move (0.1 point): below it, a
/// move costs more in transients than it brings.
const MIN_GAIN: f64 = 0.001;
/// The longest pause between trials, in samples per shard.
const MAX_PAUSE: u64 = 8;

/// What the trial keeps of one shard.
#[derive(Clone, Copy, Debug)]
struct ShardRecord {
    /// The hit rate of the shard's last sample, if it had one.
    last_rate: Option<f64>,
    /// The period (index into [`LEVELS`]) the shard ran that sample at.
    last_level: usize,
    /// The period it runs now.
    level: usize,
}

/// A running mean and variance (Welford's).
#[derive(Clone, Copy, Debug, Default)]
struct Moments {
    n: u32,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn add(&mut self, x: f64) {
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

#[derive(Debug)]
struct State {
    shards: Vec<ShardRecord>,
    /// The control's period (index into [`LEVELS`]).
    current: usize,
    /// The probe's period.
    probe: usize,
    /// The most shards at the probe at once.
    max_probing: usize,
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

/// The aging period's trial for one cache; see the module documentation.
#[derive(Debug)]
pub(crate) struct AgingTrial {
    state: Mutex<State>,
}

impl AgingTrial {
    /// A trial over `shards` shards (at least 2: one probes, one is the
    /// control).
    pub(crate) fn new(shards: usize) -> Self {
        let shards = shards.max(2);
        let record = ShardRecord {
            last_rate: None,
            last_level: START,
            level: START,
        };
        Self {
            state: Mutex::new(State {
                shards: vec![record; shards],
                current: START,
                probe: START - 1,
                max_probing: (shards / 4).max(1),
                gains: Moments::default(),
                control: Moments::default(),
                pause: 0,
                next_pause: 0,
            }),
        }
    }

    /// The period every shard starts at, in sightings per cached entry.
    pub(crate) fn start(&self) -> f64 {
        LEVELS[START]
    }

    /// The period every shard not probing runs now, in sightings per
    /// cached entry.
    #[cfg(test)]
    pub(crate) fn current(&self) -> f64 {
        LEVELS[self.state.lock().current]
    }

    /// Shard `shard` closed a climbing sample with hit rate `rate`: records
    /// it, and returns the period (sightings per cached entry) the shard
    /// runs its next sample at.
    pub(crate) fn report(&self, shard: usize, rate: f64) -> f64 {
        let mut state = self.state.lock();
        let s = &mut *state;
        let Some(&rec) = s.shards.get(shard) else {
            return LEVELS[s.current];
        };
        let ran = rec.level;
        if let Some(last) = rec.last_rate {
            let change = rate - last;
            if rec.last_level == s.current && ran == s.current {
                s.control.add(change);
            } else if rec.last_level == s.current && ran == s.probe {
                s.gains.add(change);
            } else if rec.last_level == s.probe && ran == s.current {
                // Back from the probe: what it loses, the probe gained.
                s.gains.add(-change);
            }
        }
        if s.gains.n >= EVIDENCE && s.control.n >= 2 {
            s.conclude();
        }
        // A shard whose last two samples ran the control (or whose first
        // did) probes, if there is room and no pause; one back from the
        // probe runs the control.
        let pausing = s.pause > 0;
        s.pause = s.pause.saturating_sub(1);
        let others_probing = s
            .shards
            .iter()
            .enumerate()
            .filter(|&(i, r)| i != shard && r.level == s.probe)
            .count();
        let next = if !pausing
            && ran == s.current
            && rec.last_level == s.current
            && others_probing < s.max_probing
        {
            s.probe
        } else {
            s.current
        };
        s.shards[shard] = ShardRecord {
            last_rate: Some(rate),
            last_level: ran,
            level: next,
        };
        LEVELS[next]
    }
}

impl State {
    /// Ends a trial: adopts the probe if its gain over the control exceeds
    /// its standard error (and 0.1 point), and picks the next probe.
    fn conclude(&mut self) {
        // The control's change is subtracted from both kinds of gain,
        // although a shard coming back from the probe sees the traffic's
        // change too, with the sign turned: the bar rises while the whole
        // cache's hit rate rises (a cache warming up holds still) and falls
        // while it falls. The unbiased estimate, measured on the
        // simulator's table, did worse (BENCHMARKS.md): one probe sample
        // shows a period's transient more than its lasting effect.
        let gain = self.gains.mean - self.control.mean;
        let error = (self.gains.variance_of_mean() + self.control.variance_of_mean()).sqrt();
        let up = self.probe > self.current;
        if gain > error.max(MIN_GAIN) {
            self.current = self.probe;
            self.probe = neighbour(self.current, up);
            self.next_pause = 0;
        } else {
            self.probe = neighbour(self.current, !up);
            let shards = self.shards.len() as u64;
            self.next_pause = (self.next_pause * 2).clamp(shards, MAX_PAUSE * shards);
            self.pause = self.next_pause;
        }
        self.gains = Moments::default();
        self.control = Moments::default();
    }
}

/// The period next to `level` on the ladder: above it (`up`) or below, or
/// the only one there is at an end.
fn neighbour(level: usize, up: bool) -> usize {
    if (up && level + 1 < LEVELS.len()) || level == 0 {
        level + 1
    } else {
        level - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `rounds` samples on every shard of `trial`, each shard's hit
    /// rate given by `rate(shard, period, round)`; returns the control's
    /// period after each round.
    fn run(
        trial: &AgingTrial,
        shards: usize,
        rounds: usize,
        rate: impl Fn(usize, f64, usize) -> f64,
    ) -> Vec<f64> {
        let mut period = vec![trial.start(); shards];
        let mut currents = Vec::new();
        for round in 0..rounds {
            for (shard, p) in period.iter_mut().enumerate() {
                *p = trial.report(shard, rate(shard, *p, round));
            }
            currents.push(trial.current());
        }
        currents
    }

    #[test]
    fn the_ladder_ends_turn_back() {
        assert_eq!(neighbour(0, false), 1);
        assert_eq!(neighbour(0, true), 1);
        assert_eq!(neighbour(2, true), 3);
        assert_eq!(neighbour(2, false), 1);
        assert_eq!(neighbour(3, true), 2);
    }

    /// The trial climbs to the best period at either end of the ladder,
    /// and what each shard holds (a hit rate of its own, the same at every
    /// period) does not mislead it.
    #[test]
    fn climbs_to_the_best_period_at_either_end() {
        for best in [1.25_f64, 10.0] {
            let trial = AgingTrial::new(16);
            let score = |p: f64| 0.8 - 0.01 * (p.log2() - best.log2()).abs();
            let currents = run(&trial, 16, 60, |shard, p, _| score(p) + shard as f64 * 0.01);
            assert_eq!(currents.last(), Some(&best), "{currents:?}");
        }
    }

    /// While the whole cache's hit rate rises (a cache warming up), a
    /// probe no better than the control moves nothing; one clearly better
    /// still wins (2.5 ×), and the next one down, no better again, does
    /// not.
    #[test]
    fn a_warming_cache_holds_still_unless_a_probe_wins_clearly() {
        let trial = AgingTrial::new(16);
        let rising = |_: usize, _: f64, round: usize| 0.5 + round as f64 * 0.005;
        let currents = run(&trial, 16, 60, rising);
        assert!(currents.iter().all(|&c| c == 5.0), "{currents:?}");

        let trial = AgingTrial::new(16);
        let currents = run(&trial, 16, 60, |shard, p, round| {
            rising(shard, p, round) + if p < 5.0 { 0.05 } else { 0.0 }
        });
        assert_eq!(currents.last(), Some(&2.5), "{currents:?}");
    }

    /// Probes stay a minority, and a settled trial pauses between them.
    #[test]
    fn probes_stay_few_and_pause_once_settled() {
        let trial = AgingTrial::new(16);
        let mut period = [trial.start(); 16];
        let mut probing_per_round = Vec::new();
        for _ in 0..80 {
            for (shard, p) in period.iter_mut().enumerate() {
                // 5 × is best: no probe ever wins.
                let rate = if *p == 5.0 { 0.8 } else { 0.7 };
                *p = trial.report(shard, rate);
            }
            probing_per_round.push(period.iter().filter(|&&p| p != 5.0).count());
        }
        assert!(
            probing_per_round.iter().all(|&n| n <= 4),
            "{probing_per_round:?}"
        );
        let early: usize = probing_per_round[..20].iter().sum();
        let late: usize = probing_per_round[60..].iter().sum();
        assert!(early > 0 && late < early, "{probing_per_round:?}");
        assert_eq!(trial.current(), 5.0);
    }

    #[test]
    fn an_unknown_shard_gets_the_current_period() {
        let trial = AgingTrial::new(4);
        assert_eq!(trial.report(99, 0.5), trial.start());
    }
}
