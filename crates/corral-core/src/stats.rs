//! What the pool reports about itself: [`HealthReport`] (is it serving, how
//! deep is each worker right now) and [`PoolStats`] (counters since start),
//! plus the small latency histogram behind the backpressure-wait
//! percentiles. All plain serde data, so they can cross the wire.
//!
//! The same figures go to the `metrics` facade (see [`metric_names`]), labelled
//! with the pool's name so that two pools in one process never share a
//! series.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Overall condition of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    /// Every worker slot has a ready worker.
    Healthy,
    /// Serving with fewer workers than configured: some are loading,
    /// restarting, or waiting out a restart backoff.
    Degraded,
    /// Not serving and not going to recover by itself: no ready worker and
    /// none coming (the abandoned-thread cap is reached), or shut down.
    Unhealthy,
}

/// Where one worker slot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerState {
    /// Its compute thread is loading the model.
    Loading,
    /// Taking requests.
    Ready,
    /// Empty, waiting for a restart (possibly backing off).
    Restarting,
    /// Empty for good: the abandoned-thread cap is reached.
    Disabled,
}

/// One worker slot in a [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerHealth {
    /// Slot index (stable across restarts).
    pub slot: usize,
    /// Id of the current worker incarnation (changes on restart); `None`
    /// while the slot is empty.
    pub worker_id: Option<u64>,
    /// Its state.
    pub state: WorkerState,
    /// Requests admitted and not yet answered (queued plus running), read at
    /// the moment of the report.
    pub queue_depth: usize,
    /// Inputs in the batch running now (0 when idle).
    pub running: usize,
    /// Time since the worker last answered a ping.
    pub last_pong_age: Option<Duration>,
}

/// Answer to a health request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Overall condition.
    pub health: Health,
    /// Per worker slot.
    pub workers: Vec<WorkerHealth>,
    /// Requests in the supervisor's waiting line (callers waiting for room).
    pub waiting: usize,
    /// Whether the pool is draining for shutdown.
    pub draining: bool,
}

impl HealthReport {
    /// Sum of all workers' queue depths.
    pub fn total_depth(&self) -> usize {
        self.workers.iter().map(|w| w.queue_depth).sum()
    }
}

/// Per-worker figures in [`PoolStats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStats {
    /// Slot index.
    pub slot: usize,
    /// Current incarnation, if any.
    pub worker_id: Option<u64>,
    /// Queued plus running requests now.
    pub depth: usize,
    /// Inputs in the batch running now.
    pub in_flight: usize,
    /// Requests this slot answered, across incarnations.
    pub processed: u64,
    /// Batches this slot ran, across incarnations.
    pub batches: u64,
}

/// Counters since the pool started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PoolStats {
    /// Per worker slot.
    pub workers: Vec<WorkerStats>,
    /// Requests accepted into a worker mailbox.
    pub admitted: u64,
    /// Requests refused with `Overloaded` (mailboxes and waiting line full).
    pub rejected_overloaded: u64,
    /// Waiting callers whose deadline passed (`Timeout`).
    pub timed_out: u64,
    /// Requests whose caller went away before compute; skipped.
    pub cancelled: u64,
    /// Callers in the waiting line now.
    pub waiting: usize,
    /// Median time a waiting caller waited for room (callers admitted at once
    /// are not counted).
    pub wait_p50: Duration,
    /// 99th percentile of the same.
    pub wait_p99: Duration,
    /// Callers that waited for room and were then admitted.
    pub waited: u64,
    /// Workers replaced or restarted after a failure.
    pub restarts: u64,
    /// Batches that ran past their budget.
    pub stuck_detected: u64,
    /// Worker actors that stopped answering pings.
    pub deadlocks_detected: u64,
    /// Backend panics caught.
    pub panics: u64,
    /// Model loads that failed.
    pub load_failures: u64,
    /// Requests taken back from a failed worker's running batch and tried
    /// again elsewhere.
    pub retries: u64,
    /// Requests taken back from a failed worker's queue and re-routed
    /// (they had not run yet).
    pub rerouted: u64,
    /// Requests answered `WorkerLost` (retry budget spent).
    pub worker_lost: u64,
    /// Compute threads given up on that have not exited (yet).
    pub abandoned_threads: usize,
    /// Time between a failure starting (a batch's start, a ping sent) and its
    /// detection, median and 99th percentile, over all detections.
    pub detection_p50: Duration,
    /// See `detection_p50`.
    pub detection_p99: Duration,
}

/// Metric names published through the `metrics` facade. Every series has a
/// `pool` label; per-worker series also have `slot`.
pub mod metric_names {
    /// Gauge: queued plus running requests of one worker.
    pub const WORKER_DEPTH: &str = "corral_worker_depth";
    /// Gauge: callers in the waiting line.
    pub const WAITING: &str = "corral_waiting";
    /// Counter: requests admitted to a worker.
    pub const ADMITTED: &str = "corral_admitted_total";
    /// Counter: requests refused, label `reason` = `overloaded` | `timeout` | `shutting_down`.
    pub const REJECTED: &str = "corral_rejected_total";
    /// Histogram (seconds): how long waiting callers waited for room.
    pub const WAIT_SECONDS: &str = "corral_backpressure_wait_seconds";
    /// Counter: worker restarts.
    pub const RESTARTS: &str = "corral_worker_restarts_total";
    /// Counter: failures detected, label `kind` = `stuck` | `deadlock` | `panic` | `load`.
    pub const FAILURES: &str = "corral_worker_failures_total";
    /// Counter: requests retried after their worker failed mid-batch.
    pub const RETRIES: &str = "corral_retries_total";
    /// Counter: requests answered `WorkerLost`.
    pub const WORKER_LOST: &str = "corral_worker_lost_total";
    /// Gauge: compute threads abandoned and still alive.
    pub const ABANDONED: &str = "corral_abandoned_threads";
    /// Counter: requests answered by workers.
    pub const PROCESSED: &str = "corral_processed_total";
}

/// A fixed-memory latency histogram: log-linear buckets (8 per power of two)
/// from 1 µs to about 17 minutes, so percentiles are within ~9%.
#[derive(Debug, Clone)]
pub(crate) struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
}

const SUB: u32 = 8;
const OCTAVES: u32 = 30;

impl LatencyHistogram {
    pub(crate) fn new() -> Self {
        Self {
            counts: vec![0; (SUB * (OCTAVES + 1)) as usize],
            total: 0,
        }
    }

    fn bucket(micros: u64) -> usize {
        if micros < u64::from(SUB) {
            return micros as usize;
        }
        let octave = 63 - micros.leading_zeros(); // >= 3
        let sub = (micros >> (octave - 3)) & u64::from(SUB - 1);
        let idx = (octave - 2) * SUB + sub as u32;
        (idx as usize).min((SUB * (OCTAVES + 1)) as usize - 1)
    }

    fn lower_bound(idx: usize) -> u64 {
        let idx = idx as u32;
        if idx < SUB {
            return u64::from(idx);
        }
        let octave = idx / SUB + 2;
        let sub = u64::from(idx % SUB);
        (u64::from(SUB) | sub) << (octave - 3)
    }

    pub(crate) fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.counts[Self::bucket(us)] += 1;
        self.total += 1;
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0..=1), as the lower bound of its bucket.
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((self.total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Duration::from_micros(Self::lower_bound(i));
            }
        }
        Duration::from_micros(Self::lower_bound(self.counts.len() - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = LatencyHistogram::new();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5).as_micros() as f64;
        let p99 = h.quantile(0.99).as_micros() as f64;
        assert!((p50 / 5000.0 - 1.0).abs() < 0.13, "p50 {p50}");
        assert!((p99 / 9900.0 - 1.0).abs() < 0.13, "p99 {p99}");
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn histogram_buckets_are_monotonic() {
        let mut last = 0;
        for us in 0..100_000u64 {
            let b = LatencyHistogram::bucket(us);
            assert!(b >= last);
            assert!(LatencyHistogram::lower_bound(b) <= us);
            last = b;
        }
    }

    #[test]
    fn empty_histogram_reports_zero() {
        assert_eq!(LatencyHistogram::new().quantile(0.99), Duration::ZERO);
    }
}
