//! Reports: `health()`, `stats()`, the levels published to `metrics` at
//! each tick, and the pool's `retry_after` estimate (in refusals, in
//! `health()`, and at the door).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Slot, SupervisorState};
use crate::backend::Backend;
use crate::stats::{Health, HealthReport, PoolStats, WorkerHealth, WorkerState, WorkerStats};

impl<B: Backend> SupervisorState<B> {
    /// The pool's estimate of when a slot frees: the soonest any ready
    /// worker finishes a request, from its measured service time.
    pub(super) fn retry_after(&self) -> Duration {
        let soonest = self
            .slots
            .iter()
            .filter_map(|s| match s {
                Slot::Live(w) if w.is_ready() => Some(w.service_ns()),
                _ => None,
            })
            .filter(|&ns| ns > 0)
            .min();
        match soonest {
            Some(ns) => {
                Duration::from_nanos(ns).clamp(Duration::from_millis(1), Duration::from_secs(5))
            }
            None => Duration::from_millis(100),
        }
    }

    /// The pool's time between completions when every ready worker is busy:
    /// `1 / Σ 1/service_time` over the ready workers that have a measured
    /// service time (ns; 0 when none has).
    fn per_request_ns(&self) -> u64 {
        let rate: f64 = self
            .slots
            .iter()
            .filter_map(|s| match s {
                Slot::Live(w) if w.is_ready() && w.service_ns() > 0 => {
                    Some(1.0 / w.service_ns() as f64)
                }
                _ => None,
            })
            .sum();
        if rate > 0.0 {
            (1.0 / rate) as u64
        } else {
            0
        }
    }

    /// Publishes, at each tick: the levels (depths, line, abandoned
    /// threads), the requests processed since the last tick — read from the
    /// workers' own counters, so the compute threads never touch a shared
    /// cache line per batch — the door's `retry_after`, and the time per
    /// request ([`Self::per_request_ns`]) that `PoolHandle::load` reports.
    pub(super) fn publish_levels(&mut self) {
        let depths: Vec<usize> = self
            .slots
            .iter()
            .map(|s| match s {
                Slot::Live(w) => w.depth(),
                _ => 0,
            })
            .collect();
        let processed: u64 = self
            .slots
            .iter()
            .zip(&self.totals)
            .map(|(s, t)| {
                t.processed
                    + match s {
                        Slot::Live(w) => w.processed(),
                        _ => 0,
                    }
            })
            .sum();
        self.recorder
            .processed(processed.saturating_sub(self.processed_published));
        self.processed_published = self.processed_published.max(processed);
        let abandoned = self.shared.abandoned.load(Ordering::Relaxed);
        self.recorder.levels(&depths, self.line.len(), abandoned);
        self.shared.door.set_retry_after(self.retry_after());
        self.shared
            .per_request_ns
            .store(self.per_request_ns(), Ordering::Relaxed);
    }

    pub(crate) fn health(&self) -> HealthReport {
        let now = Instant::now();
        let workers: Vec<WorkerHealth> = self
            .slots
            .iter()
            .enumerate()
            .map(|(slot, s)| match s {
                Slot::Live(w) => WorkerHealth {
                    slot,
                    worker_id: Some(w.id()),
                    state: if w.is_ready() {
                        WorkerState::Ready
                    } else {
                        WorkerState::Loading
                    },
                    queue_depth: w.depth(),
                    running: w.running_inputs(),
                    last_pong_age: Some(now.saturating_duration_since(w.last_pong())),
                },
                Slot::Restarting { .. } | Slot::Disabled => WorkerHealth {
                    slot,
                    worker_id: None,
                    state: if matches!(s, Slot::Disabled) {
                        WorkerState::Disabled
                    } else {
                        WorkerState::Restarting
                    },
                    queue_depth: 0,
                    running: 0,
                    last_pong_age: None,
                },
            })
            .collect();
        let health = if self.stopped
            || self.drain.is_some()
            || workers.iter().any(|w| w.state == WorkerState::Disabled)
        {
            Health::Unhealthy
        } else if workers.iter().all(|w| w.state == WorkerState::Ready) {
            Health::Healthy
        } else {
            Health::Degraded
        };
        let retry_after = self.retry_after();
        self.shared.door.set_retry_after(retry_after);
        HealthReport {
            health,
            workers,
            waiting: self.line.len(),
            draining: self.drain.is_some(),
            retry_after,
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let mut s = PoolStats::default();
        self.recorder.fill(&mut s);
        s.workers = self
            .slots
            .iter()
            .enumerate()
            .map(|(slot, st)| {
                let past = self.totals[slot];
                match st {
                    Slot::Live(w) => WorkerStats {
                        slot,
                        worker_id: Some(w.id()),
                        depth: w.depth(),
                        in_flight: w.running_inputs(),
                        processed: past.processed + w.processed(),
                        batches: past.batches + w.batches(),
                    },
                    _ => WorkerStats {
                        slot,
                        worker_id: None,
                        depth: 0,
                        in_flight: 0,
                        processed: past.processed,
                        batches: past.batches,
                    },
                }
            })
            .collect();
        s.waiting = self.line.len();
        s.abandoned_threads = self.shared.abandoned.load(Ordering::Acquire);
        s
    }
}
