//! The one place every event of a pool is counted: each method bumps the
//! [`PoolStats`] figure and the `metrics` series for the same event, so the
//! two can never disagree. Shared (`Arc`) by the supervisor and the handles'
//! door, which counts the refusals it makes without a supervisor hop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Label};
use parking_lot::Mutex;

use super::{metric_names as m, LatencyHistogram, PoolStats};

/// Why a worker was taken out of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// A batch ran past `stuck_base + stuck_per_token × cost`.
    Stuck,
    /// The worker actor left a ping unanswered past `ping_timeout`.
    Deadlock,
    /// The backend panicked.
    Panic,
    /// The model failed to load (an error or a panic).
    LoadFailed,
    /// The model load ran past `load_timeout`.
    LoadHung,
    /// The worker actor stopped.
    ActorDied,
}

impl Failure {
    /// The `kind` label of `corral_worker_failures_total`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Failure::Stuck => "stuck",
            Failure::Deadlock => "deadlock",
            Failure::Panic => "panic",
            Failure::LoadFailed | Failure::LoadHung => "load",
            Failure::ActorDied => "actor_died",
        }
    }
}

/// A counter kept twice: an atomic for [`PoolStats`], a `metrics` handle.
struct Count {
    value: AtomicU64,
    series: Counter,
}

impl Count {
    fn new(series: Counter) -> Self {
        Self {
            value: AtomicU64::new(0),
            series,
        }
    }

    fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
        self.series.increment(n);
    }

    fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// See the module docs.
pub(crate) struct Recorder {
    /// `pool`, then the configuration's extra labels: on every series.
    labels: Vec<Label>,
    admitted: Count,
    overloaded: Count,
    timed_out: Count,
    deadline: Count,
    shutting_down: Count,
    cancelled: Count,
    waited: AtomicU64,
    wait: Mutex<LatencyHistogram>,
    wait_series: Histogram,
    restarts: Count,
    retries: Count,
    rerouted: AtomicU64,
    isolated: AtomicU64,
    worker_lost: Count,
    processed: Count,
    failures: [AtomicU64; 5],
    detection: Mutex<LatencyHistogram>,
    detection_series: Histogram,
    depth: Vec<Gauge>,
    waiting: Gauge,
    abandoned: Gauge,
}

impl Recorder {
    /// Handles on every series of the pool `pool` with `slots` workers,
    /// each labelled `pool` and then `extra` (`PoolConfig::metric_labels`).
    pub(crate) fn new(pool: &str, slots: usize, extra: &[(String, String)]) -> Self {
        let labels: Vec<Label> = std::iter::once(Label::new("pool", pool.to_owned()))
            .chain(extra.iter().map(|(k, v)| Label::new(k.clone(), v.clone())))
            .collect();
        // The pool's labels plus `more`.
        let with = |more: &[(&'static str, String)]| -> Vec<Label> {
            let mut l = labels.clone();
            l.extend(more.iter().map(|(k, v)| Label::new(*k, v.clone())));
            l
        };
        let rejected = |reason: &'static str| {
            Count::new(metrics::counter!(
                m::REJECTED,
                with(&[("reason", reason.into())])
            ))
        };
        let count = |name: &'static str| Count::new(metrics::counter!(name, with(&[])));
        Self {
            admitted: count(m::ADMITTED),
            overloaded: rejected("overloaded"),
            timed_out: rejected("timeout"),
            deadline: rejected("deadline"),
            shutting_down: rejected("shutting_down"),
            cancelled: count(m::CANCELLED),
            waited: AtomicU64::new(0),
            wait: Mutex::new(LatencyHistogram::new()),
            wait_series: metrics::histogram!(m::WAIT_SECONDS, with(&[])),
            restarts: count(m::RESTARTS),
            retries: count(m::RETRIES),
            rerouted: AtomicU64::new(0),
            isolated: AtomicU64::new(0),
            worker_lost: count(m::WORKER_LOST),
            processed: count(m::PROCESSED),
            failures: Default::default(),
            detection: Mutex::new(LatencyHistogram::new()),
            detection_series: metrics::histogram!(m::DETECTION_SECONDS, with(&[])),
            depth: (0..slots)
                .map(|s| metrics::gauge!(m::WORKER_DEPTH, with(&[("slot", s.to_string())])))
                .collect(),
            waiting: metrics::gauge!(m::WAITING, with(&[])),
            abandoned: metrics::gauge!(m::ABANDONED, with(&[])),
            labels,
        }
    }

    pub(crate) fn admitted(&self) {
        self.admitted.add(1);
    }

    /// A request refused `Overloaded`, at the door or in the supervisor.
    pub(crate) fn overloaded(&self) {
        self.overloaded.add(1);
    }

    /// A waiting caller whose wait for room ran out.
    pub(crate) fn timed_out(&self) {
        self.timed_out.add(1);
    }

    /// `n` admitted requests whose end-to-end deadline passed.
    pub(crate) fn deadline_exceeded(&self, n: u64) {
        if n > 0 {
            self.deadline.add(n);
        }
    }

    pub(crate) fn shutting_down(&self, n: u64) {
        if n > 0 {
            self.shutting_down.add(n);
        }
    }

    /// `n` requests skipped because their caller went away.
    pub(crate) fn cancelled(&self, n: u64) {
        if n > 0 {
            self.cancelled.add(n);
        }
    }

    /// A waiting caller admitted after waiting `d`.
    pub(crate) fn waited(&self, d: Duration) {
        self.waited.fetch_add(1, Ordering::Relaxed);
        self.wait.lock().record(d);
        self.wait_series.record(d.as_secs_f64());
    }

    pub(crate) fn restarted(&self) {
        self.restarts.add(1);
    }

    pub(crate) fn retried(&self) {
        self.retries.add(1);
    }

    pub(crate) fn rerouted(&self, n: u64) {
        self.rerouted.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn isolated(&self, n: u64) {
        self.isolated.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn worker_lost(&self) {
        self.worker_lost.add(1);
    }

    pub(crate) fn processed(&self, n: u64) {
        if n > 0 {
            self.processed.add(n);
        }
    }

    /// A worker failure, detected `late` after it became detectable (`None`
    /// for failures reported by the worker itself).
    pub(crate) fn failure(&self, f: Failure, late: Option<Duration>) {
        let ix = match f {
            Failure::Stuck => 0,
            Failure::Deadlock => 1,
            Failure::Panic => 2,
            Failure::LoadFailed | Failure::LoadHung => 3,
            Failure::ActorDied => 4,
        };
        self.failures[ix].fetch_add(1, Ordering::Relaxed);
        let mut labels = self.labels.clone();
        labels.push(Label::new("kind", f.label()));
        metrics::counter!(m::FAILURES, labels).increment(1);
        if let Some(late) = late {
            self.detection.lock().record(late);
            self.detection_series.record(late.as_secs_f64());
        }
    }

    /// Publishes the levels: each slot's depth, the waiting line's length,
    /// the abandoned threads still alive.
    pub(crate) fn levels(&self, depths: &[usize], waiting: usize, abandoned: usize) {
        for (gauge, d) in self.depth.iter().zip(depths) {
            gauge.set(*d as f64);
        }
        self.waiting.set(waiting as f64);
        self.abandoned.set(abandoned as f64);
    }

    /// Copies every counter into `s` (the per-worker and gauge fields are
    /// the supervisor's to fill).
    pub(crate) fn fill(&self, s: &mut PoolStats) {
        let f = |i: usize| self.failures[i].load(Ordering::Relaxed);
        s.admitted = self.admitted.get();
        s.rejected_overloaded = self.overloaded.get();
        s.timed_out = self.timed_out.get();
        s.deadline_exceeded = self.deadline.get();
        s.rejected_shutting_down = self.shutting_down.get();
        s.cancelled = self.cancelled.get();
        s.waited = self.waited.load(Ordering::Relaxed);
        {
            let wait = self.wait.lock();
            s.wait_p50 = wait.quantile(0.5);
            s.wait_p99 = wait.quantile(0.99);
        }
        s.restarts = self.restarts.get();
        s.retries = self.retries.get();
        s.rerouted = self.rerouted.load(Ordering::Relaxed);
        s.isolated = self.isolated.load(Ordering::Relaxed);
        s.worker_lost = self.worker_lost.get();
        s.stuck_detected = f(0);
        s.deadlocks_detected = f(1);
        s.panics = f(2);
        s.load_failures = f(3);
        let detection = self.detection.lock();
        s.detection_p50 = detection.quantile(0.5);
        s.detection_p99 = detection.quantile(0.99);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_lands_in_its_own_field() {
        let r = Recorder::new("t", 1, &[]);
        r.admitted();
        r.overloaded();
        r.overloaded();
        r.timed_out();
        r.deadline_exceeded(3);
        r.shutting_down(4);
        r.cancelled(5);
        r.waited(Duration::from_millis(2));
        r.restarted();
        r.retried();
        r.rerouted(6);
        r.isolated(7);
        r.worker_lost();
        r.failure(Failure::Stuck, Some(Duration::from_millis(3)));
        r.failure(Failure::LoadHung, None);
        let mut s = PoolStats::default();
        r.fill(&mut s);
        assert_eq!(
            (
                s.admitted,
                s.rejected_overloaded,
                s.timed_out,
                s.deadline_exceeded
            ),
            (1, 2, 1, 3)
        );
        assert_eq!((s.rejected_shutting_down, s.cancelled, s.waited), (4, 5, 1));
        assert_eq!(
            (s.restarts, s.retries, s.rerouted, s.isolated),
            (1, 1, 6, 7)
        );
        assert_eq!(
            (s.worker_lost, s.stuck_detected, s.load_failures),
            (1, 1, 1)
        );
        assert_eq!((s.deadlocks_detected, s.panics), (0, 0));
        assert!(s.wait_p50 > Duration::ZERO && s.detection_p50 > Duration::ZERO);
    }
}
