//! Shutdown stops admitting (`ShuttingDown`), finishes what was admitted,
//! then stops; past its deadline, what is left is answered `ShuttingDown`.
//! Callers still waiting for room when the drain begins are refused
//! `ShuttingDown` at once, and the report counts them.

mod common;

use std::time::Duration;

use corral::synthetic::{Fault, FaultKind, Gate, Item, SyntheticSpec};
use corral::Call;
use corral::{Health, PoolConfig, PoolError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_admitted_work_and_refuses_new_work() {
    common::within(
        Duration::from_secs(20),
        "drain finishes admitted work and refuses new work",
        drain_finishes_admitted_work_and_refuses_new_work_body(),
    )
    .await;
}

async fn drain_finishes_admitted_work_and_refuses_new_work_body() {
    let spec = SyntheticSpec::with_per_item(Duration::from_millis(10));
    let pool = common::ready_pool(spec, common::config(1)).await;
    let gate = Gate::new();
    let mut admitted = Vec::new();
    {
        let pool = pool.clone();
        let first = Item::faulty(0, Fault::once(FaultKind::Gate(gate.clone())));
        admitted.push(tokio::spawn(async move {
            pool.try_call(first).await.map_err(PoolError::from)
        }));
    }
    common::arrived(&gate, 1).await;
    for id in 1..10u64 {
        let pool = pool.clone();
        admitted.push(tokio::spawn(async move {
            pool.try_call(Item::new(id)).await.map_err(PoolError::from)
        }));
    }
    common::eventually(Duration::from_secs(5), "all admitted", || {
        let pool = pool.clone();
        async move { (pool.stats().await.unwrap().admitted == 10).then_some(()) }
    })
    .await;

    let shutdown = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.shutdown(Duration::from_secs(30)).await })
    };
    common::eventually(Duration::from_secs(5), "draining", || {
        let pool = pool.clone();
        async move { pool.health().await.ok().filter(|h| h.draining).map(|_| ()) }
    })
    .await;
    assert_eq!(pool.health().await.unwrap().health, Health::Unhealthy);
    assert_eq!(
        pool.try_call(Item::new(100)).await.map_err(PoolError::from),
        Err(PoolError::ShuttingDown)
    );
    assert_eq!(
        pool.call(Item::new(101)).await.map_err(PoolError::from),
        Err(PoolError::ShuttingDown)
    );

    gate.open();
    for (id, a) in admitted.into_iter().enumerate() {
        assert_eq!(
            a.await.unwrap().unwrap(),
            id as u64,
            "admitted work finishes"
        );
    }
    let report = shutdown.await.unwrap().unwrap();
    assert!(report.drained);
    assert_eq!(report.aborted, 0);
    // Stopped for good.
    assert_eq!(
        pool.try_call(Item::new(102)).await.map_err(PoolError::from),
        Err(PoolError::ShuttingDown)
    );
    assert!(pool.health().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_deadline_answers_what_is_left() {
    common::within(
        Duration::from_secs(20),
        "drain deadline answers what is left",
        drain_deadline_answers_what_is_left_body(),
    )
    .await;
}

async fn drain_deadline_answers_what_is_left_body() {
    let spec = SyntheticSpec::default();
    let pool = common::ready_pool(spec.clone(), common::config(1)).await;
    let (gate, stuck) = common::hold(&pool).await;
    let queued = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.try_call(Item::new(1)).await.map_err(PoolError::from) })
    };
    common::eventually(Duration::from_secs(5), "both admitted", || {
        let pool = pool.clone();
        async move { (pool.stats().await.unwrap().admitted == 2).then_some(()) }
    })
    .await;
    let report = pool.shutdown(Duration::from_millis(100)).await.unwrap();
    assert!(!report.drained);
    assert_eq!(report.aborted, 2);
    assert_eq!(stuck.await.unwrap(), Err(PoolError::ShuttingDown));
    assert_eq!(queued.await.unwrap(), Err(PoolError::ShuttingDown));
    gate.open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_refuses_waiting_callers_and_reports_them() {
    common::within(Duration::from_secs(20), "drain refuses waiters", async {
        let spec = SyntheticSpec::default();
        let cfg = PoolConfig {
            queue_capacity: 1,
            ..common::config(1)
        };
        let pool = common::ready_pool(spec.clone(), cfg).await;
        let (gate, held) = common::hold(&pool).await;
        let mut waiters = Vec::new();
        for id in 1..=3u64 {
            let p = pool.clone();
            waiters.push(tokio::spawn(async move {
                p.call_timeout(Item::new(id), Duration::from_secs(30))
                    .await
                    .map_err(PoolError::from)
            }));
        }
        common::eventually(Duration::from_secs(5), "three waiting", || {
            let pool = pool.clone();
            async move { (pool.health().await.unwrap().waiting == 3).then_some(()) }
        })
        .await;

        let shutdown = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.shutdown(Duration::from_secs(30)).await })
        };
        // Refused as the drain begins, long before their 30 s wait is up,
        // while the admitted request is still held.
        for w in waiters {
            let r = common::within(Duration::from_secs(5), "waiter refused", w)
                .await
                .unwrap();
            assert_eq!(r, Err(PoolError::ShuttingDown));
        }
        assert!(!gate.is_open());
        gate.open();
        assert_eq!(held.await.unwrap().unwrap(), 0, "admitted work finishes");
        let report = shutdown.await.unwrap().unwrap();
        assert_eq!(report.refused_waiting, 3);
        assert!(report.drained);
        assert_eq!(report.aborted, 0);
        assert_eq!(
            spec.items.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "no waiter ran"
        );
    })
    .await;
}
