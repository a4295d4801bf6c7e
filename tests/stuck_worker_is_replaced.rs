//! A batch that hangs forever is detected within its budget + 100 ms; the
//! hung worker's queued requests are re-routed, its batch retried elsewhere,
//! the thread abandoned (and counted), a replacement started — and the
//! supervisor answers throughout.

mod common;

use std::time::{Duration, Instant};

use corral::synthetic::{Fault, FaultKind, Item, SyntheticSpec};
use corral::Call;
use corral::PoolError;
use corral::{Health, PoolConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_batch_is_detected_rerouted_and_retried() {
    common::within(
        Duration::from_secs(30),
        "hung_batch_is_detected_rerouted_and_retried",
        hung_batch_is_detected_rerouted_and_retried_body(),
    )
    .await;
}

async fn hung_batch_is_detected_rerouted_and_retried_body() {
    let spec = SyntheticSpec::with_per_item(Duration::from_millis(20));
    let cfg = PoolConfig {
        stuck_base: Duration::from_millis(300),
        stuck_per_token: Duration::ZERO,
        max_batch_requests: 1,
        ..common::config(2)
    };
    let pool = common::ready_pool(spec.clone(), cfg).await;

    let hang = {
        let pool = pool.clone();
        tokio::spawn(async move {
            pool.try_call(Item::faulty(0, Fault::once(FaultKind::Hang)))
                .await
                .map_err(PoolError::from)
        })
    };
    common::arrived(&spec.hang_release, 1).await;
    let hung_at = Instant::now();
    // More requests: least-depth routing puts some behind the hung batch.
    let mut rest = Vec::new();
    for id in 1..=20u64 {
        let pool = pool.clone();
        rest.push(tokio::spawn(async move {
            pool.try_call(Item::new(id)).await.map_err(PoolError::from)
        }));
    }
    // The supervisor keeps answering while a worker is hung.
    while hung_at.elapsed() < Duration::from_millis(250) {
        tokio::time::timeout(Duration::from_millis(100), pool.health())
            .await
            .expect("health answers while a worker hangs")
            .unwrap();
        tokio::time::timeout(Duration::from_millis(100), pool.stats())
            .await
            .expect("stats answer while a worker hangs")
            .unwrap();
    }

    // Every caller gets exactly one answer, and all succeed: the hung item
    // is retried on another worker (its fault fires once).
    assert_eq!(hang.await.unwrap().unwrap(), 0);
    let answered_at = hung_at.elapsed();
    for (i, r) in rest.into_iter().enumerate() {
        assert_eq!(r.await.unwrap().unwrap(), i as u64 + 1);
    }
    assert!(
        answered_at < Duration::from_millis(300 + 100 + 500),
        "hung request answered only after {answered_at:?}"
    );
    let stats = pool.stats().await.unwrap();
    assert_eq!(stats.stuck_detected, 1);
    assert_eq!(stats.retries, 1);
    assert!(stats.restarts >= 1);
    assert!(
        stats.detection_p99 <= Duration::from_millis(100),
        "detected {:?} past the budget",
        stats.detection_p99
    );
    assert_eq!(
        stats.abandoned_threads, 1,
        "the hung thread is abandoned, not joined"
    );

    // The replacement joins; once the hung thread returns it exits by itself.
    spec.hang_release.open();
    common::eventually(
        Duration::from_secs(5),
        "healthy, no abandoned threads",
        || {
            let pool = pool.clone();
            async move {
                let h = pool.health().await.unwrap();
                let s = pool.stats().await.unwrap();
                (h.health == Health::Healthy && s.abandoned_threads == 0).then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        pool.try_call(Item::new(77))
            .await
            .map_err(PoolError::from)
            .unwrap(),
        77
    );
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_spent_answers_worker_lost() {
    common::within(
        Duration::from_secs(30),
        "retry_budget_spent_answers_worker_lost",
        retry_budget_spent_answers_worker_lost_body(),
    )
    .await;
}

async fn retry_budget_spent_answers_worker_lost_body() {
    let spec = SyntheticSpec::default();
    let cfg = PoolConfig {
        stuck_base: Duration::from_millis(100),
        stuck_per_token: Duration::ZERO,
        max_retries: 1,
        ..common::config(2)
    };
    let pool = common::ready_pool(spec.clone(), cfg).await;
    // Hangs on the first worker and on the retry.
    let r = pool
        .try_call(Item::faulty(0, Fault::times(FaultKind::Hang, 2)))
        .await
        .map_err(PoolError::from);
    assert_eq!(r, Err(corral::PoolError::WorkerLost));
    let stats = pool.stats().await.unwrap();
    assert_eq!(stats.stuck_detected, 2);
    assert_eq!(stats.worker_lost, 1);
    spec.hang_release.open();
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}
