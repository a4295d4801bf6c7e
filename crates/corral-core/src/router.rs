//! Choosing a worker for a request from a load snapshot.
//!
//! The load metric (a worker's depth against its bound, its measured service
//! time) is measured by the supervisor and handed in as a slice of
//! [`WorkerLoad`]; the routing decision is a [`Router`].
//!
//! The default, [`LeastWait`], sends each request where it expects to wait
//! least: depth (queued + running) weighted by the worker's service time,
//! counted in whole multiples of the fastest worker's, rounded down — so
//! identical workers (whose measured times differ by noise, less than 2×)
//! split evenly by depth, and a worker 20× slower is chosen only once the
//! others are 20 deep; service times under 100 µs count as equal. A worker
//! not measured yet takes one request at a time from callers who can wait,
//! so that a cold pool's first burst does not queue behind a worker that
//! turns out to be slow. [`LeastDepth`] (depth alone, with slow workers
//! losing ties) stays available for [`crate::Pool::spawn_with_router`].
//! Ties rotate.
//!
//! A router answers two questions: [`Router::pick`] for a request that can
//! wait (it may keep it waiting while workers have room, for a better one),
//! and [`Router::pick_now`] for one that cannot (its caller asked to be
//! refused rather than wait, or its wait is over), which must pick a worker
//! whenever one has room.

use std::time::Duration;

/// One routable worker as the router sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerLoad {
    /// Requests admitted to the worker and not yet answered (queued plus
    /// running, both request classes).
    pub depth: usize,
    /// Whether the worker's bound for this request's class has room left.
    pub has_room: bool,
    /// Recent service time per request, in nanoseconds (0: not measured
    /// yet).
    pub service_ns: u64,
    /// How long the batch running now has been running, in nanoseconds
    /// (0: idle).
    pub running_ns: u64,
}

/// A routing policy. Called by the supervisor once per admission attempt,
/// so it must be cheap and must not block.
pub trait Router: Send + 'static {
    /// The worker (an index into `loads`) for a request whose caller can
    /// wait: one with `has_room`, or `None` to keep the request waiting —
    /// because no worker has room, or because the policy would rather wait
    /// for a better worker than queue behind a worse one.
    fn pick(&mut self, loads: &[WorkerLoad]) -> Option<usize>;

    /// The worker for a request that cannot wait: its caller asked to be
    /// refused rather than wait, or its wait is over. `None` here means the
    /// request is refused (or times out), so a policy should answer `None`
    /// only when no worker has room. The default asks [`Router::pick`].
    fn pick_now(&mut self, loads: &[WorkerLoad]) -> Option<usize> {
        self.pick(loads)
    }
}

/// Least expected wait first: `(depth + 1) × speed`, where `speed` is the
/// worker's measured service time in whole multiples of the fastest
/// worker's, rounded down (at least 1; unmeasured workers count as the
/// fastest, so that they get work and are measured). Ties rotate.
///
/// A worker not measured yet is on probation: while it runs its first
/// request, [`Router::pick`] sends it no more, unless it is the only
/// worker. Before any batch has finished nothing is known about speeds, and
/// a burst split evenly would leave half of it queued behind a worker that
/// may be 20× slower. Its running request tells a little: it has taken at
/// least as long as it has been running, so a request queued behind it
/// would wait at least `(depth + 1) ×` that. A waiting caller goes to a
/// measured worker only while that worker's expected wait is no longer than
/// this; otherwise it keeps waiting — for the measured worker to free up,
/// or for the worker on probation to finish and be measured — so that two
/// equal workers, one measured a moment before the other, still split a
/// cold burst evenly. [`Router::pick_now`] places a caller who cannot wait
/// on a worker on probation too, counting that lower bound as its expected
/// wait: such a caller is never refused while a worker has room.
///
/// Service times under a floor (100 µs by default) count as equal: a wait
/// that short cannot matter, and per-request times that small are mostly a
/// batch's fixed overhead split over its requests — a worker that happens
/// to run small batches would look slower, get less work, run smaller
/// batches still, and starve.
#[derive(Debug, Clone)]
pub struct LeastWait {
    cursor: usize,
    floor_ns: u64,
}

impl Default for LeastWait {
    fn default() -> Self {
        Self::with_floor(Duration::from_micros(100))
    }
}

impl LeastWait {
    /// A `LeastWait` that counts service times under `floor` as equal.
    pub fn with_floor(floor: Duration) -> Self {
        Self {
            cursor: 0,
            floor_ns: u64::try_from(floor.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// The expected wait of a new request at each worker, in units of the
    /// fastest worker's service time (`None` for a worker without room).
    fn score(load: &WorkerLoad, fastest: u64) -> Option<u64> {
        if !load.has_room {
            return None;
        }
        let speed = if load.service_ns == 0 || fastest == 0 {
            1
        } else {
            // Whole multiples, rounded down: noise never splits equals.
            (load.service_ns / fastest).max(1)
        };
        Some((load.depth as u64 + 1).saturating_mul(speed))
    }

    /// Whether a worker is on probation: not measured yet and already busy.
    fn on_probation(load: &WorkerLoad) -> bool {
        load.service_ns == 0 && load.depth > 0
    }

    /// The least a request queued behind a worker on probation would wait,
    /// in the same units as [`LeastWait::score`]: its running batch has
    /// taken at least as long as it has been running.
    fn probation_wait(load: &WorkerLoad, fastest: u64) -> u64 {
        let speed = load.running_ns.checked_div(fastest).unwrap_or(1).max(1);
        (load.depth as u64 + 1).saturating_mul(speed)
    }

    /// The fastest measured service time, raised to the floor (0: none
    /// measured).
    fn fastest(&self, loads: &[WorkerLoad]) -> u64 {
        loads
            .iter()
            .map(|l| l.service_ns)
            .filter(|&ns| ns > 0)
            .min()
            .map_or(0, |ns| ns.max(self.floor_ns))
    }

    /// The least expected wait among the workers `eligible` lets through,
    /// if it is at most `limit`; ties rotate. A worker on probation counts
    /// at least what waiting behind its running batch would cost.
    fn least_wait(
        &mut self,
        loads: &[WorkerLoad],
        fastest: u64,
        limit: u64,
        eligible: impl Fn(&WorkerLoad) -> bool,
    ) -> Option<usize> {
        let n = loads.len();
        let score = |l: &WorkerLoad| {
            let s = Self::score(l, fastest).filter(|_| eligible(l))?;
            Some(if Self::on_probation(l) {
                s.max(Self::probation_wait(l, fastest))
            } else {
                s
            })
        };
        let best = loads.iter().filter_map(score).min()?;
        if best > limit {
            return None;
        }
        let i = (0..n)
            .map(|k| (self.cursor + k) % n)
            .find(|&i| score(&loads[i]) == Some(best))?;
        self.cursor = (i + 1) % n;
        Some(i)
    }
}

impl Router for LeastWait {
    fn pick(&mut self, loads: &[WorkerLoad]) -> Option<usize> {
        let fastest = self.fastest(loads);
        if loads.len() == 1 {
            // The only worker: waiting for another gains nothing.
            return self.least_wait(loads, fastest, u64::MAX, |_| true);
        }
        let limit = loads
            .iter()
            .filter(|l| Self::on_probation(l))
            .map(|l| Self::probation_wait(l, fastest))
            .min()
            .unwrap_or(u64::MAX);
        self.least_wait(loads, fastest, limit, |l| !Self::on_probation(l))
    }

    fn pick_now(&mut self, loads: &[WorkerLoad]) -> Option<usize> {
        let fastest = self.fastest(loads);
        self.least_wait(loads, fastest, u64::MAX, |_| true)
    }
}

/// Least depth first; ties go to the workers within 2× of the fastest
/// measured service time, round-robin.
#[derive(Debug, Default, Clone)]
pub struct LeastDepth {
    cursor: usize,
}

impl Router for LeastDepth {
    fn pick(&mut self, loads: &[WorkerLoad]) -> Option<usize> {
        let n = loads.len();
        let min_depth = loads.iter().filter(|l| l.has_room).map(|l| l.depth).min()?;
        let tied = |l: &&WorkerLoad| l.has_room && l.depth == min_depth;
        // Unmeasured workers count as fast: they must get work to be measured.
        let fastest = loads
            .iter()
            .filter(tied)
            .map(|l| l.service_ns)
            .min()
            .unwrap_or(0);
        let fast_enough = |l: &WorkerLoad| l.service_ns <= fastest.saturating_mul(2);
        // Start the scan at the cursor so that, among equals, the winner
        // moves on by one each time.
        let i = (0..n)
            .map(|k| (self.cursor + k) % n)
            .find(|&i| tied(&&loads[i]) && fast_enough(&loads[i]))?;
        self.cursor = (i + 1) % n;
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(depth: usize, service_ns: u64) -> WorkerLoad {
        WorkerLoad {
            depth,
            has_room: true,
            service_ns,
            running_ns: 0,
        }
    }

    /// A worker not measured yet whose running batch has run `running_ns`.
    fn cold(depth: usize, running_ns: u64) -> WorkerLoad {
        WorkerLoad {
            running_ns,
            ..timed(depth, 0)
        }
    }

    #[test]
    fn least_wait_counts_service_times_under_its_floor_as_equal() {
        // 2 µs against 40 µs: both under the default 100 µs floor, so depth
        // alone decides (a no-op backend's batch overhead is not speed).
        let mut r = LeastWait::default();
        let mut depth = [0usize; 2];
        for _ in 0..10 {
            let i = r
                .pick(&[timed(depth[0], 2_000), timed(depth[1], 40_000)])
                .unwrap();
            depth[i] += 1;
        }
        assert_eq!(depth, [5, 5]);
        // 2 ms against 40 ms: 20× slower, as measured.
        assert_eq!(
            r.pick(&[timed(0, 40_000_000), timed(18, 2_000_000)]),
            Some(1)
        );
        assert_eq!(
            r.pick(&[timed(0, 40_000_000), timed(20, 2_000_000)]),
            Some(0)
        );
    }

    #[test]
    fn least_wait_splits_equal_workers_evenly_despite_noise() {
        let mut r = LeastWait::with_floor(Duration::ZERO);
        let mut depth = [0usize; 2];
        // Service times that differ by noise only; depths build up as a
        // closed loop would.
        for _ in 0..100 {
            let i = r
                .pick(&[timed(depth[0], 100), timed(depth[1], 130)])
                .unwrap();
            depth[i] += 1;
        }
        assert_eq!(depth, [50, 50]);
    }

    #[test]
    fn least_wait_sends_to_a_slow_worker_only_when_its_wait_is_shortest() {
        let mut r = LeastWait::with_floor(Duration::ZERO);
        // Slow worker in slot 0, then in slot 1: the answer must not depend
        // on the slot.
        for (slow, fast) in [(0usize, 1usize), (1, 0)] {
            let at = |slow_depth: usize, fast_depth: usize| {
                let mut l = [timed(0, 0); 2];
                l[slow] = timed(slow_depth, 2000);
                l[fast] = timed(fast_depth, 100);
                l
            };
            // Idle slow vs fast with 18 queued: (0+1)×20 = 20 > (18+1)×1 = 19.
            assert_eq!(r.pick(&at(0, 18)), Some(fast));
            // 20 queued on the fast one: 21 > 20, the slow one wins.
            assert_eq!(r.pick(&at(0, 20)), Some(slow));
            // Full fast worker: the slow one, whatever its depth.
            let mut l = at(5, 0);
            l[fast].has_room = false;
            assert_eq!(r.pick(&l), Some(slow));
        }
    }

    #[test]
    fn least_wait_gives_unmeasured_workers_work_and_refuses_when_all_full() {
        let mut r = LeastWait::with_floor(Duration::ZERO);
        assert_eq!(r.pick(&[timed(1, 100), timed(0, 0)]), Some(1));
        let full = WorkerLoad {
            depth: 0,
            has_room: false,
            service_ns: 1,
            running_ns: 0,
        };
        assert_eq!(r.pick(&[full, full]), None);
        assert_eq!(r.pick(&[]), None);
    }

    #[test]
    fn least_wait_sends_a_waiting_caller_past_a_busy_unmeasured_worker() {
        let mut r = LeastWait::with_floor(Duration::ZERO);
        // A cold pool: each idle worker takes one request, then the caller
        // waits rather than queue behind a worker of unknown speed…
        assert_eq!(r.pick(&[timed(0, 0), timed(0, 0)]), Some(0));
        assert_eq!(r.pick(&[cold(1, 0), timed(0, 0)]), Some(1));
        assert_eq!(r.pick(&[cold(1, 10), cold(1, 10)]), None);
        // …until one is measured (1 ms). The other has run 1.5 ms: it may
        // be as fast, so the measured one takes requests only up to what
        // waiting behind the other would cost at least, (1 + 1) × 1 ms.
        let ms = 1_000_000;
        assert_eq!(r.pick(&[cold(1, 3 * ms / 2), timed(0, ms)]), Some(1));
        assert_eq!(r.pick(&[cold(1, 3 * ms / 2), timed(1, ms)]), Some(1));
        assert_eq!(r.pick(&[cold(1, 3 * ms / 2), timed(2, ms)]), None);
        // The longer the cold worker runs, the deeper the measured one may
        // go: at 20 ms, up to (1 + 1) × 20 deep.
        assert_eq!(r.pick(&[cold(1, 20 * ms), timed(39, ms)]), Some(1));
        assert_eq!(r.pick(&[cold(1, 20 * ms), timed(40, ms)]), None);
        // A caller who cannot wait is placed anyway, by expected wait —
        // behind a worker on probation, at least (depth + 1) × its running
        // time — and refused only when no worker has room.
        assert_eq!(r.pick_now(&[cold(2, 0), cold(1, 0)]), Some(1));
        assert_eq!(r.pick_now(&[cold(1, 20 * ms), timed(38, ms)]), Some(1));
        assert_eq!(r.pick_now(&[cold(1, 20 * ms), timed(41, ms)]), Some(0));
        assert_eq!(r.pick_now(&[cold(1, 5 * ms), timed(1, ms)]), Some(1));
        let full = WorkerLoad {
            has_room: false,
            ..timed(0, 0)
        };
        assert_eq!(r.pick_now(&[full, full]), None);
        // The only worker is never on probation: waiting would gain nothing.
        assert_eq!(r.pick(&[cold(3, 0)]), Some(0));
        // An idle worker is not on probation, measured or not.
        assert_eq!(r.pick(&[cold(1, 10), timed(0, 0)]), Some(1));
        // Measured, it is an ordinary worker: 20× slower, it loses to 3 deep.
        assert_eq!(r.pick(&[timed(3, 500), timed(1, 10_000)]), Some(0));
    }

    #[test]
    fn the_default_pick_now_asks_pick() {
        let mut r = LeastDepth::default();
        assert_eq!(r.pick_now(&[load(3), load(1)]), Some(1));
    }

    fn load(depth: usize) -> WorkerLoad {
        WorkerLoad {
            depth,
            has_room: true,
            service_ns: 100,
            running_ns: 0,
        }
    }

    #[test]
    fn picks_the_least_deep() {
        let mut r = LeastDepth::default();
        assert_eq!(r.pick(&[load(3), load(1), load(2)]), Some(1));
    }

    #[test]
    fn skips_full_workers_even_if_shallow() {
        let mut r = LeastDepth::default();
        let full = WorkerLoad {
            depth: 0,
            has_room: false,
            service_ns: 0,
            running_ns: 0,
        };
        assert_eq!(r.pick(&[full, load(5)]), Some(1));
        assert_eq!(r.pick(&[full, full]), None);
        assert_eq!(r.pick(&[]), None);
    }

    #[test]
    fn ties_are_shared_evenly() {
        let mut r = LeastDepth::default();
        let mut hits = [0usize; 3];
        for _ in 0..300 {
            hits[r.pick(&[load(0), load(0), load(0)]).unwrap()] += 1;
        }
        assert_eq!(hits, [100, 100, 100]);
    }

    #[test]
    fn a_much_slower_worker_loses_ties_but_not_depth() {
        let mut r = LeastDepth::default();
        let slow = |depth| WorkerLoad {
            depth,
            has_room: true,
            service_ns: 10_000,
            running_ns: 0,
        };
        for _ in 0..10 {
            assert_eq!(r.pick(&[slow(0), load(0)]), Some(1));
        }
        assert_eq!(r.pick(&[slow(0), load(1)]), Some(0));
    }

    #[test]
    fn least_wait_rotates_ties_between_identical_workers() {
        let mut r = LeastWait::with_floor(Duration::ZERO);
        let picks: Vec<usize> = (0..6)
            .map(|_| {
                r.pick(&[timed(2, 100), timed(2, 100), timed(2, 100)])
                    .unwrap()
            })
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        // A full worker is skipped by the rotation, not stalled on.
        let mut l = [timed(0, 100); 3];
        l[1].has_room = false;
        let picks: Vec<usize> = (0..4).map(|_| r.pick(&l).unwrap()).collect();
        assert_eq!(picks, [0, 2, 0, 2]);
    }

    #[test]
    fn least_wait_rounds_speed_down_to_a_whole_multiple_of_the_fastest() {
        // Below 2× the fastest counts as 1×, from 2× as 2×, 3.5× as 3×.
        assert_eq!(LeastWait::score(&timed(0, 199), 100), Some(1));
        assert_eq!(LeastWait::score(&timed(0, 200), 100), Some(2));
        assert_eq!(LeastWait::score(&timed(2, 350), 100), Some(9));
        assert_eq!(LeastWait::score(&timed(4, 0), 100), Some(5), "unmeasured");
        assert_eq!(
            LeastWait::score(&timed(4, 700), 0),
            Some(5),
            "nothing measured"
        );
        assert_eq!(LeastWait::score(&timed(0, 10), 100), Some(1), "at least 1×");
        let full = WorkerLoad {
            has_room: false,
            ..timed(0, 100)
        };
        assert_eq!(LeastWait::score(&full, 100), None);
        // Through pick: a worker at 2.1× loses a tie in depth; one at 1.6×
        // (noise) shares it.
        let mut r = LeastWait::with_floor(Duration::ZERO);
        for _ in 0..3 {
            assert_eq!(r.pick(&[timed(0, 210), timed(0, 100)]), Some(1));
        }
        let picks: Vec<usize> = (0..4)
            .map(|_| r.pick(&[timed(0, 160), timed(0, 100)]).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 0, 1]);
    }

    #[test]
    fn least_depth_counts_a_worker_at_exactly_twice_the_fastest_as_fast() {
        let mut r = LeastDepth::default();
        let picks: Vec<usize> = (0..4)
            .map(|_| r.pick(&[load(0), timed(0, 200), timed(0, 201)]).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 0, 1]);
    }

    #[test]
    fn least_wait_measures_speed_against_the_fastest_measured_worker() {
        // An unmeasured worker does not make the slow one look fast.
        let mut r = LeastWait::with_floor(Duration::ZERO);
        for _ in 0..3 {
            assert_eq!(
                r.pick(&[timed(0, 2000), timed(1, 0), timed(0, 100)]),
                Some(2)
            );
        }
    }

    #[test]
    fn least_depth_never_picks_a_full_worker_at_the_least_depth() {
        let mut r = LeastDepth::default();
        let full = WorkerLoad {
            depth: 2,
            has_room: false,
            service_ns: 100,
            running_ns: 0,
        };
        for _ in 0..3 {
            assert_eq!(r.pick(&[full, load(2)]), Some(1));
        }
    }
}
