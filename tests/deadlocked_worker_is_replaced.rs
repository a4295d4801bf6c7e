//! A worker actor whose handler never returns (deadlocked) stops answering
//! pings; it is detected within `ping_timeout` + 100 ms and replaced, and
//! every request still gets exactly one answer.

mod common;

use std::time::{Duration, Instant};

use corral::synthetic::{Item, SyntheticSpec};
use corral::{Call, PoolError};
use corral::{Health, PoolConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlocked_actor_is_detected_and_replaced() {
    common::within(
        Duration::from_secs(30),
        "deadlocked_actor_is_detected_and_replaced",
        deadlocked_actor_is_detected_and_replaced_body(),
    )
    .await;
}

async fn deadlocked_actor_is_detected_and_replaced_body() {
    let spec = SyntheticSpec::with_per_item(Duration::from_millis(5));
    let cfg = PoolConfig {
        ping_timeout: Duration::from_millis(200),
        ..common::config(2)
    };
    let pool = common::ready_pool(spec.clone(), cfg).await;
    let first_id = pool.health().await.unwrap().workers[0].worker_id;

    let frozen_at = Instant::now();
    pool.inject_actor_freeze(0);
    let mut calls = Vec::new();
    for id in 0..100u64 {
        let pool = pool.clone();
        calls.push(tokio::spawn(async move {
            pool.call(Item::new(id)).await.map_err(PoolError::from)
        }));
    }
    let detected = common::eventually(Duration::from_secs(5), "deadlock detected", || {
        let pool = pool.clone();
        async move { (pool.stats().await.unwrap().deadlocks_detected == 1).then(Instant::now) }
    })
    .await;
    let took = detected.duration_since(frozen_at);
    // ping_timeout + one ping interval (the first unanswered ping may be
    // sent up to one interval after the freeze) + 100 ms.
    assert!(
        took < Duration::from_millis(200 + 20 + 100 + 100),
        "detected after {took:?}"
    );
    let stats = pool.stats().await.unwrap();
    assert!(
        stats.detection_p99 <= Duration::from_millis(100),
        "{:?}",
        stats.detection_p99
    );

    for (id, c) in calls.into_iter().enumerate() {
        assert_eq!(
            c.await.unwrap().unwrap(),
            id as u64,
            "every request answered once"
        );
    }
    let h = common::eventually(Duration::from_secs(5), "replacement ready", || {
        let pool = pool.clone();
        async move {
            pool.health()
                .await
                .ok()
                .filter(|h| h.health == Health::Healthy)
        }
    })
    .await;
    assert_ne!(h.workers[0].worker_id, first_id, "slot 0 runs a new worker");
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}
