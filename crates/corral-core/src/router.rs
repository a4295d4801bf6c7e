//! Choosing a worker for a request from a load snapshot.
//!
//! The load metric (a worker's depth against its bound) is measured by the
//! supervisor and handed in as a slice of [`WorkerLoad`]; the routing
//! decision is a [`Router`]. The default, [`LeastDepth`], picks the worker
//! with the fewest requests admitted and not yet answered. Among workers of
//! equal depth it prefers the ones that are not markedly slower (measured
//! service time per request within 2× of the fastest), and rotates among
//! those, so that equal workers share evenly and an idle slow worker does
//! not win a tie against an idle fast one. Other policies
//! (power of two choices, weights by measured speed) implement the same trait.

/// One routable worker as the router sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerLoad {
    /// Requests admitted to the worker and not yet answered (queued plus
    /// running, both request classes).
    pub depth: usize,
    /// Whether the worker's bound for this request's class has room left.
    pub has_room: bool,
    /// Recent service time per request, in microseconds (0: not measured
    /// yet).
    pub service_us: u64,
}

/// A routing policy. Called by the supervisor once per admission, so it must
/// be cheap and must not block.
pub trait Router: Send + 'static {
    /// Returns the index (into `loads`) of the worker to send to: one with
    /// `has_room`, or `None` if none has.
    fn pick(&mut self, loads: &[WorkerLoad]) -> Option<usize>;
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
            .map(|l| l.service_us)
            .min()
            .unwrap_or(0);
        let fast_enough = |l: &WorkerLoad| l.service_us <= fastest.saturating_mul(2);
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

    fn load(depth: usize) -> WorkerLoad {
        WorkerLoad {
            depth,
            has_room: true,
            service_us: 100,
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
            service_us: 0,
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
            service_us: 10_000,
        };
        for _ in 0..10 {
            assert_eq!(r.pick(&[slow(0), load(0)]), Some(1));
        }
        assert_eq!(r.pick(&[slow(0), load(1)]), Some(0));
    }
}
