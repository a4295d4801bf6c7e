//! A caller that goes away (its future dropped, so its reply port closes)
//! before its request runs is skipped before compute, and its slot freed.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use corral::synthetic::{Item, SyntheticSpec};
use corral::Call;
use corral::PoolConfig;
use corral::PoolError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_caller_is_not_computed() {
    common::within(
        Duration::from_secs(30),
        "dropped_caller_is_not_computed",
        dropped_caller_is_not_computed_body(),
    )
    .await;
}

async fn dropped_caller_is_not_computed_body() {
    let cfg = PoolConfig {
        max_batch_requests: 1,
        ..common::config(1)
    };
    let spec = SyntheticSpec::default();
    let pool = common::ready_pool(spec.clone(), cfg).await;
    let (gate, hold) = common::hold(&pool).await;
    let doomed = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.try_call(Item::new(1)).await.map_err(PoolError::from) })
    };
    common::eventually(Duration::from_secs(5), "queued", || {
        let pool = pool.clone();
        async move { (pool.health().await.unwrap().total_depth() == 2).then_some(()) }
    })
    .await;
    doomed.abort();
    assert!(doomed.await.unwrap_err().is_cancelled());
    gate.open();
    hold.await.unwrap().unwrap();
    common::eventually(Duration::from_secs(5), "cancelled counted", || {
        let pool = pool.clone();
        async move { (pool.stats().await.unwrap().cancelled == 1).then_some(()) }
    })
    .await;
    assert_eq!(
        spec.items.load(Ordering::Relaxed),
        1,
        "the cancelled request never ran"
    );
    assert_eq!(
        pool.health().await.unwrap().total_depth(),
        0,
        "its slot was freed"
    );
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}
