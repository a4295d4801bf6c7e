//! A panic inside the backend is caught on the compute thread: the batch is
//! retried elsewhere (or answered with a `Backend` error once retries are
//! spent) and the worker is replaced. A backend *error* fails only the
//! request that caused it.

mod common;

use std::time::Duration;

use corral::synthetic::{Fault, FaultKind, Item, SyntheticSpec};
use corral::Call;
use corral::{Health, PoolConfig, PoolError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_once_is_retried_and_worker_replaced() {
    common::within(
        Duration::from_secs(30),
        "panic_once_is_retried_and_worker_replaced",
        panic_once_is_retried_and_worker_replaced_body(),
    )
    .await;
}

async fn panic_once_is_retried_and_worker_replaced_body() {
    let spec = SyntheticSpec::default();
    let pool = common::ready_pool(spec.clone(), common::config(2)).await;
    let r = pool
        .try_call(Item::faulty(7, Fault::once(FaultKind::Panic)))
        .await
        .map_err(PoolError::from);
    assert_eq!(r, Ok(7));
    let stats = pool.stats().await.unwrap();
    assert_eq!(stats.panics, 1);
    assert_eq!(stats.retries, 1);
    common::eventually(Duration::from_secs(5), "replaced", || {
        let pool = pool.clone();
        async move {
            pool.health()
                .await
                .ok()
                .filter(|h| h.health == Health::Healthy)
        }
    })
    .await;
    assert_eq!(spec.loads.load(std::sync::atomic::Ordering::Relaxed), 3);
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_every_time_is_a_backend_error() {
    common::within(
        Duration::from_secs(30),
        "panic_every_time_is_a_backend_error",
        panic_every_time_is_a_backend_error_body(),
    )
    .await;
}

async fn panic_every_time_is_a_backend_error_body() {
    let cfg = PoolConfig {
        max_retries: 1,
        ..common::config(2)
    };
    let pool = common::ready_pool(SyntheticSpec::default(), cfg).await;
    let r = pool
        .try_call(Item::faulty(7, Fault::always(FaultKind::Panic)))
        .await
        .map_err(PoolError::from);
    assert!(
        matches!(&r, Err(PoolError::Backend(m)) if m.contains("panic")),
        "{r:?}"
    );
    assert_eq!(pool.stats().await.unwrap().panics, 2);
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_error_fails_only_its_own_request() {
    common::within(
        Duration::from_secs(30),
        "backend_error_fails_only_its_own_request",
        backend_error_fails_only_its_own_request_body(),
    )
    .await;
}

async fn backend_error_fails_only_its_own_request_body() {
    let cfg = PoolConfig {
        queue_capacity: 10,
        ..common::config(1)
    };
    let spec = SyntheticSpec::default();
    let pool = common::ready_pool(spec, cfg).await;
    // Hold the worker so the next requests share one batch.
    let (gate, hold) = common::hold(&pool).await;
    let mut calls = Vec::new();
    for id in 1..=4u64 {
        let pool = pool.clone();
        let item = if id == 2 {
            Item::faulty(id, Fault::always(FaultKind::Error))
        } else {
            Item::new(id)
        };
        calls.push(tokio::spawn(async move {
            pool.try_call(item).await.map_err(PoolError::from)
        }));
    }
    common::eventually(Duration::from_secs(5), "queued", || {
        let pool = pool.clone();
        async move { (pool.health().await.unwrap().total_depth() == 5).then_some(()) }
    })
    .await;
    gate.open();
    hold.await.unwrap().unwrap();
    for (i, c) in calls.into_iter().enumerate() {
        let id = i as u64 + 1;
        let r = c.await.unwrap();
        if id == 2 {
            assert!(matches!(r, Err(PoolError::Backend(_))), "{r:?}");
        } else {
            assert_eq!(r, Ok(id));
        }
    }
    assert_eq!(
        pool.stats().await.unwrap().restarts,
        0,
        "an error is not a crash"
    );
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}
