//! [`PoolConfig`]: every bound, deadline and limit of a pool in one plain
//! struct with documented defaults, and its validation.

use std::sync::Arc;
use std::time::Duration;

use crate::error::ConfigError;

/// How a pool is sized and supervised. Start from [`PoolConfig::default`] and
/// override fields; [`PoolConfig::validate`] (called by `Pool::spawn`) rejects
/// combinations that cannot work.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Name used in logs, thread names and the `pool` metrics label.
    /// Default `"corral"`. Give each pool in a process its own.
    pub name: Arc<str>,
    /// Worker count. Default: the number of cores.
    pub workers: usize,
    /// Compute threads per worker. `None` (default): cores / workers, at
    /// least 1, so that workers × threads ≤ cores.
    pub threads_per_worker: Option<usize>,
    /// Per-worker bound on single-input requests (queued plus running).
    /// Default 100.
    pub queue_capacity: usize,
    /// Per-worker bound on multi-input requests. Default 50.
    pub batch_queue_capacity: usize,
    /// Bound on callers waiting for room in the supervisor's waiting line;
    /// past it even waiting callers are refused with `Overloaded`. Default 1024.
    pub max_waiting: usize,
    /// How long `call`/`call_batch` ([`crate::Admission::Default`]) wait for
    /// room in a mailbox before `TimedOut` (the admission timeout: it does not cover the compute; see
    /// `Submit::within` for an end-to-end deadline). Default 30 s.
    pub admission_timeout: Duration,
    /// Token budget of one batch, costed by the backend's rule
    /// (`Backend::batching`: the sum of `Backend::cost` when packed, inputs
    /// × the costliest when padded; the backend's own limit on one forward
    /// pass applies too); a single request over budget still runs, alone.
    /// Default 8192.
    pub max_batch_tokens: usize,
    /// At most this many requests in one batch. Default 64.
    pub max_batch_requests: usize,
    /// At most this many inputs in one request, else `InvalidInput`.
    /// Default 1024.
    pub max_client_batch: usize,
    /// Stuck-batch budget: a batch running longer than
    /// `stuck_base + stuck_per_token × cost` (the batch's cost by the
    /// backend's rule) marks its worker stuck.
    /// Default 10 s.
    pub stuck_base: Duration,
    /// See `stuck_base`. Default 5 ms per token.
    pub stuck_per_token: Duration,
    /// How long a worker actor may leave a ping unanswered before it is
    /// deemed deadlocked. Default 1 s.
    pub ping_timeout: Duration,
    /// How often workers are pinged. Default 50 ms.
    pub ping_interval: Duration,
    /// How often the supervisor checks heartbeats, pings and waiting
    /// deadlines. Detection latency is at most this much past a budget.
    /// Default 20 ms.
    pub watchdog_interval: Duration,
    /// How long a model load may take before the loading thread is abandoned
    /// and the load retried. Default 300 s.
    pub load_timeout: Duration,
    /// How many times a request whose worker failed mid-batch is tried again
    /// on another worker before it is answered `WorkerLost`. Default 1.
    pub max_retries: u32,
    /// Restart intensity: at most `max_restarts` restarts within
    /// `restart_window` happen at once; past that each restart waits an
    /// exponential backoff with jitter, and health reports `Degraded`.
    /// Default 5.
    pub max_restarts: usize,
    /// See `max_restarts`. Default 10 s.
    pub restart_window: Duration,
    /// First backoff past the restart intensity. Default 100 ms.
    pub restart_backoff_base: Duration,
    /// Longest backoff. Default 10 s.
    pub restart_backoff_max: Duration,
    /// Cap on compute threads given up on and still alive (a forward pass
    /// that never returns cannot be killed, only abandoned). At the cap the
    /// pool stops replacing workers and reports `Unhealthy`. Default 4.
    pub max_abandoned_threads: usize,
    /// How long requests taken back from a failed worker wait for room
    /// elsewhere before they are answered `WorkerLost`. Default 30 s.
    pub reroute_wait: Duration,
    /// Labels added, after `pool`, to every `metrics` series this pool
    /// publishes, for example `("model", "all-MiniLM-L6-v2")` as `corral
    /// serve` sets. Default none. Keys must not be `pool`, `reason`, `slot`
    /// or `kind`, which the series already carry.
    pub metric_labels: Vec<(String, String)>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            name: Arc::from("corral"),
            workers: available_cores(),
            threads_per_worker: None,
            queue_capacity: 100,
            batch_queue_capacity: 50,
            max_waiting: 1024,
            admission_timeout: Duration::from_secs(30),
            max_batch_tokens: 8192,
            max_batch_requests: 64,
            max_client_batch: 1024,
            stuck_base: Duration::from_secs(10),
            stuck_per_token: Duration::from_millis(5),
            ping_timeout: Duration::from_secs(1),
            ping_interval: Duration::from_millis(50),
            watchdog_interval: Duration::from_millis(20),
            load_timeout: Duration::from_secs(300),
            max_retries: 1,
            max_restarts: 5,
            restart_window: Duration::from_secs(10),
            restart_backoff_base: Duration::from_millis(100),
            restart_backoff_max: Duration::from_secs(10),
            max_abandoned_threads: 4,
            reroute_wait: Duration::from_secs(30),
            metric_labels: Vec::new(),
        }
    }
}

/// Cores available to this process (at least 1).
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl PoolConfig {
    /// Checks that the configuration can work.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first field that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let nonzero = [
            ("workers", self.workers),
            ("queue_capacity", self.queue_capacity),
            ("batch_queue_capacity", self.batch_queue_capacity),
            ("max_batch_tokens", self.max_batch_tokens),
            ("max_batch_requests", self.max_batch_requests),
            ("max_client_batch", self.max_client_batch),
        ];
        for (name, v) in nonzero {
            if v == 0 {
                return Err(ConfigError(format!("{name} must be at least 1")));
            }
        }
        if self.threads_per_worker == Some(0) {
            return Err(ConfigError("threads_per_worker must be at least 1".into()));
        }
        let nonzero_time = [
            ("ping_timeout", self.ping_timeout),
            ("ping_interval", self.ping_interval),
            ("watchdog_interval", self.watchdog_interval),
            ("restart_backoff_base", self.restart_backoff_base),
        ];
        for (name, v) in nonzero_time {
            if v.is_zero() {
                return Err(ConfigError(format!("{name} must be longer than zero")));
            }
        }
        if self.restart_backoff_max < self.restart_backoff_base {
            return Err(ConfigError(
                "restart_backoff_max must be at least restart_backoff_base".into(),
            ));
        }
        if self.name.is_empty() {
            return Err(ConfigError("name must not be empty".into()));
        }
        if let Some((k, _)) = self
            .metric_labels
            .iter()
            .find(|(k, _)| k.is_empty() || ["pool", "reason", "slot", "kind"].contains(&k.as_str()))
        {
            return Err(ConfigError(format!(
                "metric_labels: {k:?} is empty or a label the pool's series already carry"
            )));
        }
        Ok(())
    }

    /// Compute threads each worker gets: the configured value, or cores /
    /// workers (at least 1).
    pub fn resolved_threads(&self) -> usize {
        self.threads_per_worker
            .unwrap_or_else(|| (available_cores() / self.workers.max(1)).max(1))
    }

    /// How many requests may be in flight through the pool's door at once:
    /// [`PoolConfig::total_capacity`] plus `max_waiting` again, for waiters
    /// whose caller left and whose place the supervisor has freed but not
    /// yet swept out. Past it the door refuses before anything reaches the
    /// supervisor's mailbox, so that mailbox never holds more than this.
    pub fn door_limit(&self) -> usize {
        self.total_capacity().saturating_add(self.max_waiting)
    }

    /// The most live requests the pool holds at once: every mailbox full
    /// plus a full waiting line. Memory under any load is bounded by this
    /// (and by [`PoolConfig::door_limit`] for requests in transit).
    pub fn total_capacity(&self) -> usize {
        self.workers
            .saturating_mul(
                self.queue_capacity
                    .saturating_add(self.batch_queue_capacity),
            )
            .saturating_add(self.max_waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        PoolConfig::default().validate().unwrap();
    }

    #[test]
    fn zero_capacity_is_rejected_with_its_name() {
        let c = PoolConfig {
            queue_capacity: 0,
            ..PoolConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert!(e.0.contains("queue_capacity"), "{e}");
    }

    #[test]
    fn metric_labels_may_not_shadow_the_pools_own() {
        let with = |k: &str| PoolConfig {
            metric_labels: vec![(k.into(), "x".into())],
            ..PoolConfig::default()
        };
        with("model").validate().unwrap();
        for k in ["pool", "reason", "slot", "kind", ""] {
            let e = with(k).validate().unwrap_err();
            assert!(e.0.contains("metric_labels"), "{k}: {e}");
        }
    }

    #[test]
    fn threads_split_cores_between_workers() {
        let c = PoolConfig {
            workers: 1,
            ..PoolConfig::default()
        };
        assert_eq!(c.resolved_threads(), available_cores());
        let c = PoolConfig {
            workers: available_cores() * 4,
            ..PoolConfig::default()
        };
        assert_eq!(c.resolved_threads(), 1);
        let c = PoolConfig {
            threads_per_worker: Some(3),
            ..PoolConfig::default()
        };
        assert_eq!(c.resolved_threads(), 3);
    }
}
