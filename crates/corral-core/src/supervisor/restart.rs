//! When a failed worker's replacement starts: an Erlang-style restart
//! intensity limit, then exponential backoff with jitter.
//!
//! Up to `max_restarts` restarts within `restart_window` happen at once.
//! Past that, each restart waits `base × 2^level` (capped at `max`), times a
//! jitter in `[0.5, 1.5)` so that pools restarting together spread out; the
//! level resets once the window holds fewer than `max_restarts` restarts
//! again. A pure policy: it reads no clock of its own and spawns nothing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::rng::Rng;
use crate::time;

/// See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct RestartPolicy {
    max_restarts: usize,
    window: Duration,
    base: Duration,
    max: Duration,
    /// When recent restarts were due, oldest first (at most `max_restarts`
    /// plus the ones being backed off).
    log: VecDeque<Instant>,
    level: u32,
    rng: Rng,
}

/// When the next restart happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Restart {
    pub(crate) due: Instant,
    /// Whether this restart was delayed by the intensity limit.
    pub(crate) backing_off: bool,
}

impl RestartPolicy {
    pub(crate) fn new(
        max_restarts: usize,
        window: Duration,
        base: Duration,
        max: Duration,
        seed: u64,
    ) -> Self {
        Self {
            max_restarts,
            window,
            base,
            max: max.max(base),
            log: VecDeque::new(),
            level: 0,
            rng: Rng::new(seed),
        }
    }

    /// Schedules one restart asked for at `now`.
    pub(crate) fn next(&mut self, now: Instant) -> Restart {
        while self
            .log
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > self.window)
        {
            self.log.pop_front();
        }
        let restart = if self.log.len() < self.max_restarts {
            self.level = 0;
            Restart {
                due: now,
                backing_off: false,
            }
        } else {
            let exp = self.base.saturating_mul(1u32 << self.level.min(20));
            let capped = exp.min(self.max);
            self.level = self.level.saturating_add(1);
            let jitter = 0.5 + self.rng.unit();
            Restart {
                due: time::after(now, capped.mul_f64(jitter)),
                backing_off: true,
            }
        };
        self.log.push_back(restart.due);
        // Keep the log bounded whatever happens: only the newest
        // `max_restarts` entries can ever decide anything.
        while self.log.len() > self.max_restarts.max(1) {
            self.log.pop_front();
        }
        restart
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy() -> RestartPolicy {
        RestartPolicy::new(3, 1000 * MS, 100 * MS, 800 * MS, 42)
    }

    #[test]
    fn restarts_within_the_intensity_are_immediate() {
        let mut p = policy();
        let t0 = Instant::now();
        for k in 0..3 {
            let r = p.next(t0 + k * MS);
            assert_eq!(r.due, t0 + k * MS);
            assert!(!r.backing_off);
        }
    }

    #[test]
    fn past_the_intensity_backoff_doubles_with_jitter_up_to_the_cap() {
        let mut p = policy();
        let t0 = Instant::now();
        for _ in 0..3 {
            p.next(t0);
        }
        let mut last_nominal = Duration::ZERO;
        for level in 0..6u32 {
            let r = p.next(t0);
            assert!(r.backing_off);
            let delay = r.due - t0;
            let nominal = (100 * MS * (1 << level)).min(800 * MS);
            assert!(
                delay >= nominal / 2 && delay < nominal * 3 / 2,
                "level {level}: {delay:?} vs nominal {nominal:?}"
            );
            assert!(nominal >= last_nominal);
            last_nominal = nominal;
        }
    }

    #[test]
    fn the_window_forgets_old_restarts_and_resets_the_backoff() {
        let mut p = policy();
        let t0 = Instant::now();
        for _ in 0..5 {
            p.next(t0);
        }
        // Long after the window: immediate again, and the level is reset.
        let later = t0 + 10_000 * MS;
        let r = p.next(later);
        assert_eq!(r.due, later);
        assert!(!r.backing_off);
    }

    #[test]
    fn jitter_comes_from_the_seed() {
        let run = |seed| {
            let mut p = RestartPolicy::new(0, 1000 * MS, 100 * MS, 800 * MS, seed);
            let t0 = Instant::now();
            (0..4).map(|_| p.next(t0).due - t0).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn huge_configured_durations_do_not_overflow() {
        let mut p = RestartPolicy::new(0, Duration::MAX, Duration::MAX, Duration::MAX, 1);
        let t0 = Instant::now();
        let r = p.next(t0);
        assert!(r.due > t0);
    }

    #[test]
    fn a_restart_exactly_one_window_old_still_counts() {
        let mut p = RestartPolicy::new(1, 1000 * MS, 100 * MS, 800 * MS, 42);
        let t0 = Instant::now();
        assert!(!p.next(t0).backing_off);
        assert!(p.next(t0 + 1000 * MS).backing_off, "inside the window");
        let mut p = RestartPolicy::new(1, 1000 * MS, 100 * MS, 800 * MS, 42);
        p.next(t0);
        assert!(!p.next(t0 + 1001 * MS).backing_off, "past the window");
    }

    #[test]
    fn after_the_window_resets_the_backoff_starts_again_from_the_base() {
        let mut p = RestartPolicy::new(1, 1000 * MS, 100 * MS, 800 * MS, 42);
        let t0 = Instant::now();
        p.next(t0);
        for _ in 0..4 {
            assert!(p.next(t0).backing_off);
        }
        // Long after: immediate, and the next backoff is the base again.
        let later = t0 + 100_000 * MS;
        assert!(!p.next(later).backing_off);
        let r = p.next(later);
        assert!(r.backing_off);
        let delay = r.due - later;
        assert!(
            delay >= 50 * MS && delay < 150 * MS,
            "level not reset: {delay:?}"
        );
    }

    #[test]
    fn the_backoff_cap_holds_at_high_levels_and_a_small_max_is_raised_to_the_base() {
        let mut p = RestartPolicy::new(0, 1000 * MS, 100 * MS, 300 * MS, 3);
        let t0 = Instant::now();
        for _ in 0..40 {
            let d = p.next(t0).due - t0;
            assert!(d < 450 * MS, "{d:?} past 1.5 × the cap");
        }
        // A cap below the base: the base wins.
        let mut p = RestartPolicy::new(0, 1000 * MS, 100 * MS, 10 * MS, 3);
        for _ in 0..5 {
            let d = p.next(t0).due - t0;
            assert!(d >= 50 * MS && d < 150 * MS, "{d:?}");
        }
    }
}
