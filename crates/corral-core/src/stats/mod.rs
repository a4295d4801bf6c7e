//! What the pool reports about itself: [`HealthReport`] (is it serving, how
//! deep is each worker right now) and [`PoolStats`] (counters since start).
//! All plain serde data, so they can cross the wire.
//!
//! Every event is counted in one place, the `recorder` (for both
//! [`PoolStats`] and the `metrics` facade, see [`metric_names`]), labelled
//! with the pool's name so that two pools in one process never share a
//! series. `histogram` is the small fixed-memory histogram behind the
//! percentiles.

mod histogram;
pub(crate) mod recorder;

pub(crate) use histogram::LatencyHistogram;

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
    /// The pool's estimate of when a mailbox slot frees (the soonest a ready
    /// worker finishes a request, from its measured service time): the
    /// `retry_after` every `Overloaded` refusal carries now.
    pub retry_after: Duration,
}

impl HealthReport {
    /// Sum of all workers' queue depths.
    pub fn total_depth(&self) -> usize {
        self.workers.iter().map(|w| w.queue_depth).sum()
    }
}

/// A pool's load at a moment, read from shared counters without a message
/// to the supervisor ([`crate::PoolRef::load`]): what a router in front of
/// many pools needs to pick one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PoolLoad {
    /// Requests holding one of the pool's admission permits now: queued,
    /// running or waiting for room.
    pub in_flight: usize,
    /// The most permits out at once (worker capacity plus the waiting line);
    /// at `in_flight == capacity` the pool refuses with `Overloaded`.
    pub capacity: usize,
    /// Workers loaded and serving.
    pub ready_workers: usize,
    /// Time between completions with every ready worker busy (the pool's
    /// measured service rate, inverted); zero until measured. A new request
    /// waits about `in_flight × per_request` before it finishes.
    pub per_request: Duration,
    /// The `retry_after` a refusal would carry now.
    pub retry_after: Duration,
    /// The pool is draining for shutdown and admits nothing new.
    pub draining: bool,
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
    /// Inputs in the batch running now (as [`WorkerHealth::running`]).
    pub running: usize,
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
    /// Requests refused with `Overloaded`, wherever the refusal happened:
    /// at a handle's door (the pool's whole capacity in flight) or in the
    /// supervisor (mailboxes, and the waiting line if the caller chose to
    /// wait, full).
    pub rejected_overloaded: u64,
    /// Waiting callers whose wait for room ran out (`TimedOut`; nothing ran).
    pub timed_out: u64,
    /// Admitted requests whose end-to-end deadline passed before they were
    /// answered (`DeadlinePassed`: refused, inputs handed back, before
    /// compute; failed, the result discarded, while running).
    pub deadline_exceeded: u64,
    /// Requests refused with `ShuttingDown`.
    pub rejected_shutting_down: u64,
    /// Requests whose caller went away before compute; skipped (in a worker
    /// mailbox or in the waiting line).
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
    /// Requests of a batch that failed with an error (or the wrong number of
    /// outputs) put back at the head of their mailbox to run alone, so that
    /// one bad input fails only its own request.
    pub isolated: u64,
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
    /// Counter: requests refused, label `reason` = `overloaded` | `timeout` |
    /// `deadline` | `shutting_down`.
    pub const REJECTED: &str = "corral_rejected_total";
    /// Histogram (seconds): how long waiting callers waited for room.
    pub const WAIT_SECONDS: &str = "corral_backpressure_wait_seconds";
    /// Counter: worker restarts.
    pub const RESTARTS: &str = "corral_worker_restarts_total";
    /// Counter: failures detected, label `kind` = `stuck` | `deadlock` |
    /// `panic` | `load` | `actor_died`.
    pub const FAILURES: &str = "corral_worker_failures_total";
    /// Counter: requests retried after their worker failed mid-batch.
    pub const RETRIES: &str = "corral_retries_total";
    /// Counter: requests answered `WorkerLost`.
    pub const WORKER_LOST: &str = "corral_worker_lost_total";
    /// Gauge: compute threads abandoned and still alive.
    pub const ABANDONED: &str = "corral_abandoned_threads";
    /// Counter: requests answered by workers.
    pub const PROCESSED: &str = "corral_processed_total";
    /// Counter: requests whose caller went away before compute.
    pub const CANCELLED: &str = "corral_cancelled_total";
    /// Histogram (seconds): how long after a failure became detectable the
    /// supervisor acted on it.
    pub const DETECTION_SECONDS: &str = "corral_detection_seconds";
}
