//! At the cap on abandoned threads the pool stops spawning replacements and
//! reports `Unhealthy` instead of leaking threads without bound; when the
//! abandoned threads finally exit, it recovers.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use corral::synthetic::{Fault, FaultKind, Item, SyntheticSpec};
use corral::Call;
use corral::{Health, PoolConfig, PoolError, WorkerState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_reached_means_unhealthy_and_no_new_threads() {
    common::within(
        Duration::from_secs(30),
        "cap_reached_means_unhealthy_and_no_new_threads",
        cap_reached_means_unhealthy_and_no_new_threads_body(),
    )
    .await;
}

async fn cap_reached_means_unhealthy_and_no_new_threads_body() {
    let spec = SyntheticSpec::default();
    let cfg = PoolConfig {
        stuck_base: Duration::from_millis(100),
        stuck_per_token: Duration::ZERO,
        max_abandoned_threads: 1,
        reroute_wait: Duration::from_millis(200),
        ..common::config(1)
    };
    let pool = common::ready_pool(spec.clone(), cfg).await;
    let r = pool
        .try_call(Item::faulty(0, Fault::once(FaultKind::Hang)))
        .await
        .map_err(PoolError::from);
    // No worker left to retry on within reroute_wait.
    assert_eq!(r, Err(PoolError::WorkerLost));

    let h = pool.health().await.unwrap();
    assert_eq!(h.health, Health::Unhealthy);
    assert_eq!(h.workers[0].state, WorkerState::Disabled);
    let stats = pool.stats().await.unwrap();
    assert_eq!(stats.abandoned_threads, 1);
    assert_eq!(
        spec.loads.load(Ordering::Relaxed),
        1,
        "no replacement was spawned"
    );
    assert!(matches!(
        pool.try_call(Item::new(1)).await.map_err(PoolError::from),
        Err(PoolError::Overloaded { .. })
    ));
    let h = pool.health().await.unwrap();
    assert_eq!(h.health, Health::Unhealthy);

    // The hung thread returns, exits, and uncounts itself; the slot heals.
    spec.hang_release.open();
    pool.wait_ready(Duration::from_secs(5)).await.unwrap();
    assert_eq!(pool.stats().await.unwrap().abandoned_threads, 0);
    assert_eq!(spec.loads.load(Ordering::Relaxed), 2);
    assert_eq!(
        pool.try_call(Item::new(2)).await.map_err(PoolError::from),
        Ok(2)
    );
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}
