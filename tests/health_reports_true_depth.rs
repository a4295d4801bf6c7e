//! While a worker is inside a long batch, health still answers, and reports
//! the worker's real queue depth (queued plus running).

mod common;

use std::time::Duration;

use corral::synthetic::{Fault, FaultKind, Gate, Item, SyntheticSpec};
use corral::Call;
use corral::PoolError;
use corral::{Health, PoolConfig, WorkerState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_during_a_long_batch_reports_the_true_depth() {
    common::within(
        Duration::from_secs(30),
        "health_during_a_long_batch_reports_the_true_depth",
        health_during_a_long_batch_reports_the_true_depth_body(),
    )
    .await;
}

async fn health_during_a_long_batch_reports_the_true_depth_body() {
    let cfg = PoolConfig {
        max_batch_requests: 1,
        ..common::config(1)
    };
    let pool = common::ready_pool(SyntheticSpec::default(), cfg).await;
    let h = pool.health().await.unwrap();
    assert_eq!(h.health, Health::Healthy);
    assert_eq!(h.total_depth(), 0);

    let gate = Gate::new();
    let mut calls = Vec::new();
    let first = Item::faulty(0, Fault::once(FaultKind::Gate(gate.clone())));
    {
        let pool = pool.clone();
        calls.push(tokio::spawn(async move {
            pool.try_call(first).await.map_err(PoolError::from)
        }));
    }
    common::arrived(&gate, 1).await;
    for id in 1..5u64 {
        let pool = pool.clone();
        calls.push(tokio::spawn(async move {
            pool.try_call(Item::new(id)).await.map_err(PoolError::from)
        }));
    }
    // The batch is blocked in the backend; health answers regardless.
    let h = common::eventually(Duration::from_secs(5), "depth 5", || {
        let pool = pool.clone();
        async move {
            let h = tokio::time::timeout(Duration::from_millis(500), pool.health())
                .await
                .expect("health answers during a long batch")
                .unwrap();
            (h.total_depth() == 5).then_some(h)
        }
    })
    .await;
    assert_eq!(h.workers[0].queue_depth, 5);
    assert_eq!(h.workers[0].running, 1);
    assert_eq!(h.workers[0].state, WorkerState::Ready);
    let stats = pool.stats().await.unwrap();
    assert_eq!(stats.workers[0].depth, 5);
    assert_eq!(stats.workers[0].running, 1);

    gate.open();
    for (id, c) in calls.into_iter().enumerate() {
        assert_eq!(c.await.unwrap().unwrap(), id as u64);
    }
    let h = pool.health().await.unwrap();
    assert_eq!(h.total_depth(), 0);
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}
