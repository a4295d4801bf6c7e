//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use corral::synthetic::{Synthetic, SyntheticSpec};
use corral::Call;
use corral::PoolError;
use corral::{Pool, PoolConfig, PoolHandle};

/// A small pool config with fast supervision, for tests.
pub fn config(workers: usize) -> PoolConfig {
    PoolConfig {
        workers,
        threads_per_worker: Some(1),
        ping_interval: Duration::from_millis(20),
        watchdog_interval: Duration::from_millis(10),
        ..PoolConfig::default()
    }
}

/// Spawns a synthetic pool and waits until every worker is ready.
pub async fn ready_pool(spec: SyntheticSpec, config: PoolConfig) -> PoolHandle<Synthetic> {
    let pool = Pool::<Synthetic>::spawn(spec, config).await.expect("spawn");
    pool.wait_ready(Duration::from_secs(10))
        .await
        .expect("workers ready");
    pool
}

/// Calls one item at a time until every worker has finished a request, so
/// that each is measured: a worker not measured yet takes one request at a
/// time from callers who can wait, which tests that fill mailboxes with
/// waiting callers must not run into.
pub async fn warm_up(pool: &PoolHandle<Synthetic>) {
    use corral::synthetic::Item;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = pool.stats().await.expect("stats");
        if stats.workers.iter().all(|w| w.processed > 0) {
            return;
        }
        assert!(Instant::now() < deadline, "workers never all measured");
        pool.call(Item::new(u64::MAX))
            .await
            .map_err(PoolError::from)
            .expect("warm-up call");
    }
}

/// Polls `check` until it returns `Some`, or panics after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Blocks (off the runtime) until `n` threads reached `gate`.
pub async fn arrived(gate: &std::sync::Arc<corral::synthetic::Gate>, n: usize) {
    let g = gate.clone();
    let ok = tokio::task::spawn_blocking(move || g.wait_arrived(n, Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(ok, "{n} batches never reached the gate");
}

/// Occupies a worker: submits item 0 with a gate fault and returns once its
/// batch is blocked at the gate (open the gate to let it finish).
pub async fn hold(
    pool: &PoolHandle<Synthetic>,
) -> (
    std::sync::Arc<corral::synthetic::Gate>,
    tokio::task::JoinHandle<Result<u64, corral::PoolError>>,
) {
    use corral::synthetic::{Fault, FaultKind, Gate, Item};
    let gate = Gate::new();
    let item = Item::faulty(0, Fault::once(FaultKind::Gate(gate.clone())));
    let p = pool.clone();
    let held = tokio::spawn(async move { p.try_call(item).await.map_err(PoolError::from) });
    arrived(&gate, 1).await;
    (gate, held)
}

/// Runs `fut` with a deadline of its own, so that a regression fails in
/// seconds with a message instead of hanging CI.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not done within {limit:?}"),
    }
}

/// Names of this process's threads (as the kernel keeps them: 15 bytes).
pub fn thread_names() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .map(|s| s.trim_end().to_owned())
        .collect()
}
