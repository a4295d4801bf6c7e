//! When every mailbox is full, `call` waits for room (served in arrival
//! order as room frees, each request class on its own) until its deadline,
//! then gets `TimedOut`; `try_call` is refused at once with `Overloaded`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral::synthetic::{Fault, FaultKind, Gate, Item, SyntheticSpec};
use corral::Call;
use corral::{PoolConfig, PoolError};
use parking_lot::Mutex;

/// How long the first test keeps its waiters waiting after the last one
/// queued.
const HOLD: Duration = Duration::from_millis(30);

fn one_slot() -> PoolConfig {
    PoolConfig {
        queue_capacity: 1,
        max_batch_requests: 1,
        ..common::config(1)
    }
}

/// Five callers wait, one at a time, for a pool with room for one request:
/// they are run in the order they arrived (the backend's own log, not the
/// order their answers happen to be read), and the wait histogram reports
/// waits as long as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_served_in_arrival_order() {
    common::within(Duration::from_secs(20), "waiters served", async {
        let run_log = Arc::new(Mutex::new(Vec::new()));
        let spec = SyntheticSpec {
            run_log: Some(run_log.clone()),
            ..SyntheticSpec::default()
        };
        let pool = common::ready_pool(spec, one_slot()).await;
        let (gate, blocker) = common::hold(&pool).await;

        // Full now: try_call is refused at once.
        let t = Instant::now();
        let refused = pool.try_call(Item::new(99)).await.map_err(PoolError::from);
        assert!(
            matches!(refused, Err(PoolError::Overloaded { .. })),
            "{refused:?}"
        );
        assert!(t.elapsed() < Duration::from_millis(500));

        let first_queued = Instant::now();
        let mut waiters = Vec::new();
        for id in 1..=5u64 {
            let p = pool.clone();
            waiters.push(tokio::spawn(async move {
                p.call_timeout(Item::new(id), Duration::from_secs(20))
                    .await
                    .map_err(PoolError::from)
            }));
            // Queue them in a known order.
            common::eventually(Duration::from_secs(5), "waiter queued", || {
                let pool = pool.clone();
                async move { (pool.health().await.unwrap().waiting == id as usize).then_some(()) }
            })
            .await;
        }
        let last_queued = Instant::now();
        // Keep the gate shut a while, so that every wait is long enough for
        // the histogram to tell from zero.
        tokio::time::sleep(HOLD).await;
        let opened = Instant::now();
        gate.open();
        assert_eq!(blocker.await.unwrap().unwrap(), 0);
        for (i, w) in waiters.into_iter().enumerate() {
            assert_eq!(w.await.unwrap().unwrap(), i as u64 + 1);
        }
        let all_done = first_queued.elapsed();
        assert_eq!(
            *run_log.lock(),
            [0, 1, 2, 3, 4, 5],
            "waiters ran out of arrival order"
        );

        let stats = pool.stats().await.unwrap();
        assert_eq!(stats.waited, 5);
        // Percentiles are bucket lower bounds, within ~9% below the truth.
        let shortest = opened - last_queued;
        let longest = opened - first_queued;
        assert!(
            stats.wait_p50 >= shortest.mul_f64(0.9),
            "p50 {:?} below the shortest wait {shortest:?}",
            stats.wait_p50
        );
        assert!(
            stats.wait_p99 >= longest.mul_f64(0.9) && stats.wait_p99 <= all_done,
            "p99 {:?}: the longest wait was {longest:?}..{all_done:?}",
            stats.wait_p99
        );
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}

/// The waiting line serves each request class in order, but a class whose
/// bound is full does not hold up waiters of the other class: a single
/// request waiting behind a batch request that has no room is admitted as
/// soon as a single slot frees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_class_does_not_block_the_other_class_waiters() {
    common::within(Duration::from_secs(20), "classes", async {
        let cfg = PoolConfig {
            batch_queue_capacity: 1,
            ..one_slot()
        };
        let pool = common::ready_pool(SyntheticSpec::default(), cfg).await;
        // The single slot: held at a gate.
        let (single_gate, held) = common::hold(&pool).await;
        // The batch slot: a batch request queued behind it, which will hold
        // its own gate once it runs.
        let batch_gate = Gate::new();
        let batch = {
            let p = pool.clone();
            let items = vec![
                Item::faulty(10, Fault::once(FaultKind::Gate(batch_gate.clone()))),
                Item::new(11),
            ];
            tokio::spawn(async move { p.try_call_batch(items).await.map_err(PoolError::from) })
        };
        common::eventually(Duration::from_secs(5), "batch admitted", || {
            let pool = pool.clone();
            async move { (pool.health().await.unwrap().total_depth() == 2).then_some(()) }
        })
        .await;
        // Waiting: a batch request first, then a single one.
        let batch_waiter = {
            let p = pool.clone();
            tokio::spawn(async move {
                p.call_batch_timeout(vec![Item::new(20), Item::new(21)], Duration::from_secs(20))
                    .await
                    .map_err(PoolError::from)
            })
        };
        common::eventually(Duration::from_secs(5), "batch waiter queued", || {
            let pool = pool.clone();
            async move { (pool.health().await.unwrap().waiting == 1).then_some(()) }
        })
        .await;
        let single_waiter = {
            let p = pool.clone();
            tokio::spawn(async move {
                p.call_timeout(Item::new(30), Duration::from_secs(20))
                    .await
                    .map_err(PoolError::from)
            })
        };
        common::eventually(Duration::from_secs(5), "single waiter queued", || {
            let pool = pool.clone();
            async move { (pool.health().await.unwrap().waiting == 2).then_some(()) }
        })
        .await;

        // Free the single slot only: the batch request starts running and
        // keeps the batch slot.
        single_gate.open();
        assert_eq!(held.await.unwrap().unwrap(), 0);
        common::arrived(&batch_gate, 1).await;
        // The single waiter is admitted past the blocked batch waiter.
        common::eventually(
            Duration::from_secs(5),
            "the single waiter admitted while the batch waiter still waits",
            || {
                let pool = pool.clone();
                async move {
                    let h = pool.health().await.unwrap();
                    (h.waiting == 1 && h.total_depth() == 2).then_some(())
                }
            },
        )
        .await;

        batch_gate.open();
        assert_eq!(batch.await.unwrap().unwrap(), [10, 11]);
        assert_eq!(single_waiter.await.unwrap().unwrap(), 30);
        assert_eq!(batch_waiter.await.unwrap().unwrap(), [20, 21]);
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiter_past_its_deadline_gets_timeout_and_never_runs() {
    common::within(
        Duration::from_secs(20),
        "waiter past its deadline gets timeout and never runs",
        waiter_past_its_deadline_gets_timeout_and_never_runs_body(),
    )
    .await;
}

async fn waiter_past_its_deadline_gets_timeout_and_never_runs_body() {
    let spec = SyntheticSpec::default();
    let pool = common::ready_pool(spec.clone(), one_slot()).await;
    let (gate, blocker) = common::hold(&pool).await;

    let t = Instant::now();
    let r = pool
        .call_timeout(Item::new(1), Duration::from_millis(150))
        .await
        .map_err(PoolError::from);
    let took = t.elapsed();
    assert_eq!(r, Err(PoolError::TimedOut));
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
    common::within(
        Duration::from_secs(20),
        "full waiting line refuses even waiters",
        full_waiting_line_refuses_even_waiters_body(),
    )
    .await;
}

async fn full_waiting_line_refuses_even_waiters_body() {
    let cfg = PoolConfig {
        max_waiting: 2,
        ..one_slot()
    };
    let pool = common::ready_pool(SyntheticSpec::default(), cfg).await;
    let (gate, blocker) = common::hold(&pool).await;
    let mut waiters = Vec::new();
    for id in 1..=2u64 {
        let pool2 = pool.clone();
        waiters.push(tokio::spawn(async move {
            pool2.call(Item::new(id)).await.map_err(PoolError::from)
        }));
    }
    common::eventually(Duration::from_secs(5), "two waiting", || {
        let pool = pool.clone();
        async move { (pool.health().await.unwrap().waiting == 2).then_some(()) }
    })
    .await;
    let r = pool.call(Item::new(3)).await.map_err(PoolError::from);
    assert!(matches!(r, Err(PoolError::Overloaded { .. })), "{r:?}");
    gate.open();
    blocker.await.unwrap().unwrap();
    for w in waiters {
        w.await.unwrap().unwrap();
    }
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}
