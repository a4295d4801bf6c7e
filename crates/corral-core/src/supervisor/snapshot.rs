//! [`Snapshot`]: the pool's figures at one moment, taken from the slots in
//! one pass ([`super::slots::Slots::snapshot`]), and everything the pool
//! reports computed from it — `health()`, `stats()`, the levels published
//! to `metrics` each tick, the `retry_after` a refusal carries, and the time
//! per request behind `PoolRef::load`. Pure functions of plain data, so
//! each figure is defined once and unit-tested without actors or a clock.
//!
//! One name per figure: a worker's `depth` is the requests it holds
//! (queued plus running); `running` is the inputs in the batch it is
//! running now.

use std::time::Duration;

use crate::stats::{Health, HealthReport, PoolStats, WorkerHealth, WorkerState, WorkerStats};

/// `retry_after` when no ready worker has a measured service time yet.
pub(super) const UNMEASURED_RETRY: Duration = Duration::from_millis(100);
/// The bounds of a measured `retry_after`.
const RETRY_MIN: Duration = Duration::from_millis(1);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// One slot's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SlotView {
    pub(super) slot: usize,
    /// The live worker's id; `None` while the slot is empty.
    pub(super) worker_id: Option<u64>,
    pub(super) state: WorkerState,
    /// Requests held: queued plus running.
    pub(super) depth: usize,
    /// Inputs in the batch running now.
    pub(super) running: usize,
    /// Measured time per request (ns; 0 until measured, or empty).
    pub(super) service_ns: u64,
    /// Requests answered, across the slot's incarnations.
    pub(super) processed: u64,
    /// Batches run, across the slot's incarnations.
    pub(super) batches: u64,
    /// Since the live worker last answered a ping.
    pub(super) last_pong_age: Option<Duration>,
}

/// See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Snapshot {
    pub(super) slots: Vec<SlotView>,
    /// Callers in the waiting line.
    pub(super) waiting: usize,
    /// Abandoned compute threads still alive.
    pub(super) abandoned: usize,
    /// The pool is draining for shutdown.
    pub(super) draining: bool,
    /// The pool has stopped.
    pub(super) stopped: bool,
}

impl Snapshot {
    fn ready_service_times(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots
            .iter()
            .filter(|s| s.state == WorkerState::Ready && s.service_ns > 0)
            .map(|s| s.service_ns)
    }

    /// The pool's estimate of when a mailbox slot frees: the soonest any
    /// ready worker finishes a request, from its measured service time,
    /// within 1 ms..5 s; 100 ms while none is measured.
    pub(super) fn retry_after(&self) -> Duration {
        match self.ready_service_times().min() {
            Some(ns) => Duration::from_nanos(ns).clamp(RETRY_MIN, RETRY_MAX),
            None => UNMEASURED_RETRY,
        }
    }

    /// The pool's time between completions with every ready worker busy:
    /// `1 / Σ 1/service_time` over the measured ready workers (ns; 0 while
    /// none is measured).
    pub(super) fn per_request_ns(&self) -> u64 {
        // A fold from +0.0, not `sum()`: an empty `f64` sum is -0.0.
        let rate = self
            .ready_service_times()
            .fold(0.0, |rate, ns| rate + 1.0 / ns as f64);
        if rate > 0.0 {
            (1.0 / rate) as u64
        } else {
            0
        }
    }

    /// Requests answered by the pool's workers since it started.
    pub(super) fn processed(&self) -> u64 {
        self.slots.iter().map(|s| s.processed).sum()
    }

    /// Each slot's depth, in slot order.
    pub(super) fn depths(&self) -> Vec<usize> {
        self.slots.iter().map(|s| s.depth).collect()
    }

    /// The health report: `Unhealthy` once draining or stopped or with a
    /// disabled slot, `Healthy` with every slot ready, `Degraded` between.
    pub(super) fn health(&self) -> HealthReport {
        let workers: Vec<WorkerHealth> = self
            .slots
            .iter()
            .map(|s| WorkerHealth {
                slot: s.slot,
                worker_id: s.worker_id,
                state: s.state,
                queue_depth: s.depth,
                running: s.running,
                last_pong_age: s.last_pong_age,
            })
            .collect();
        let health = if self.stopped || self.draining || self.has(WorkerState::Disabled) {
            Health::Unhealthy
        } else if self.slots.iter().all(|s| s.state == WorkerState::Ready) {
            Health::Healthy
        } else {
            Health::Degraded
        };
        HealthReport {
            health,
            workers,
            waiting: self.waiting,
            draining: self.draining,
            retry_after: self.retry_after(),
        }
    }

    fn has(&self, state: WorkerState) -> bool {
        self.slots.iter().any(|s| s.state == state)
    }

    /// The per-slot and level figures of [`PoolStats`]; the counters come
    /// from the recorder.
    pub(super) fn fill_stats(&self, stats: &mut PoolStats) {
        stats.workers = self
            .slots
            .iter()
            .map(|s| WorkerStats {
                slot: s.slot,
                worker_id: s.worker_id,
                depth: s.depth,
                running: s.running,
                processed: s.processed,
                batches: s.batches,
            })
            .collect();
        stats.waiting = self.waiting;
        stats.abandoned_threads = self.abandoned;
    }
}

#[cfg(test)]
mod tests;
