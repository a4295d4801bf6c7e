//! When every mailbox is full, `embed` waits for room (served in order as
//! room frees) until its deadline, then gets `Timeout`; `try_call` is
//! refused at once with `Overloaded`.

mod common;

use std::time::{Duration, Instant};

use corral::synthetic::{Item, SyntheticSpec};
use corral::{PoolConfig, PoolError};

fn one_slot() -> PoolConfig {
    PoolConfig {
        queue_capacity: 1,
        max_batch_requests: 1,
        ..common::config(1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_served_as_room_frees() {
    let pool = common::ready_pool(SyntheticSpec::default(), one_slot()).await;
    let (gate, blocker) = common::hold(&pool).await;

    // Full now: try_call is refused at once.
    let t = Instant::now();
    let refused = pool.try_call(Item::new(99)).await.map_err(PoolError::from);
    assert!(
        matches!(refused, Err(PoolError::Overloaded { .. })),
        "{refused:?}"
    );
    assert!(t.elapsed() < Duration::from_millis(500));

    let mut waiters = Vec::new();
    for id in 1..=5u64 {
        let p = pool.clone();
        waiters.push(tokio::spawn(async move {
            p.call_timeout(Item::new(id), Duration::from_secs(20)).await
        }));
        // Queue them in a known order.
        common::eventually(Duration::from_secs(5), "waiter queued", || {
            let pool = pool.clone();
            async move { (pool.health().await.unwrap().waiting == id as usize).then_some(()) }
        })
        .await;
    }
    gate.open();
    assert_eq!(blocker.await.unwrap().unwrap(), 0);
    for (i, w) in waiters.into_iter().enumerate() {
        assert_eq!(w.await.unwrap().unwrap(), i as u64 + 1);
    }
    let stats = pool.stats().await.unwrap();
    assert_eq!(stats.waited, 5);
    assert!(stats.wait_p99 >= stats.wait_p50 && stats.wait_p50 > Duration::ZERO);
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiter_past_its_deadline_gets_timeout_and_never_runs() {
    let spec = SyntheticSpec::default();
    let pool = common::ready_pool(spec.clone(), one_slot()).await;
    let (gate, blocker) = common::hold(&pool).await;

    let t = Instant::now();
    let r = pool
        .call_timeout(Item::new(1), Duration::from_millis(150))
        .await;
    let took = t.elapsed();
    assert_eq!(r, Err(PoolError::Timeout));
    assert!(
        took >= Duration::from_millis(150),
        "timed out early: {took:?}"
    );
    assert!(took < Duration::from_secs(2), "timed out late: {took:?}");

    gate.open();
    blocker.await.unwrap().unwrap();
    let stats = pool.stats().await.unwrap();
    assert_eq!(stats.timed_out, 1);
    assert_eq!(
        spec.items.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the timed-out request never ran"
    );
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_waiting_line_refuses_even_waiters() {
    let cfg = PoolConfig {
        max_waiting: 2,
        ..one_slot()
    };
    let pool = common::ready_pool(SyntheticSpec::default(), cfg).await;
    let (gate, blocker) = common::hold(&pool).await;
    let mut waiters = Vec::new();
    for id in 1..=2u64 {
        let pool2 = pool.clone();
        waiters.push(tokio::spawn(async move { pool2.call(Item::new(id)).await }));
    }
    common::eventually(Duration::from_secs(5), "two waiting", || {
        let pool = pool.clone();
        async move { (pool.health().await.unwrap().waiting == 2).then_some(()) }
    })
    .await;
    let r = pool.call(Item::new(3)).await;
    assert!(matches!(r, Err(PoolError::Overloaded { .. })), "{r:?}");
    gate.open();
    blocker.await.unwrap().unwrap();
    for w in waiters {
        w.await.unwrap().unwrap();
    }
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}
