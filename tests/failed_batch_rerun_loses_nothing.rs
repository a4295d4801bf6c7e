//! A batch that fails with an error is rerun one request at a time. If one
//! of those reruns then hangs or panics, the requests not yet rerun are not
//! stranded on the compute thread: they wait in the worker's mailbox, where
//! the supervisor takes them back and re-routes them. Every request of the
//! batch gets exactly one answer, in bounded time, and the stats count it.

mod common;

use std::time::Duration;

use corral::synthetic::{Fault, FaultKind, Item, SyntheticSpec};
use corral::{PoolConfig, PoolError};

const STUCK: Duration = Duration::from_millis(200);

/// One worker held at a gate; four requests queued behind it, which will
/// run as one batch: item 1 errors (once), then item 2's fault fires when it
/// is rerun alone.
async fn batch_error_then(second: FaultKind) {
    let spec = SyntheticSpec::default();
    let cfg = PoolConfig {
        stuck_base: STUCK,
        stuck_per_token: Duration::ZERO,
        ..common::config(1)
    };
    let pool = common::ready_pool(spec.clone(), cfg).await;
    let (gate, hold) = common::hold(&pool).await;

    let items = [
        Item::faulty(1, Fault::once(FaultKind::Error)),
        Item::new(2),
        Item::new(3),
        Item::new(4),
    ];
    // Item 2 runs fine inside the failing batch (item 1 errors first), and
    // its fault fires on its first run alone.
    let mut items = items.to_vec();
    items[1].fault = Some(Fault::once(second));
    // Queued one at a time, so that the batch runs them in this order
    // (item 1's error must fire before item 2's fault).
    let mut calls = Vec::new();
    for (k, item) in items.into_iter().enumerate() {
        let p = pool.clone();
        calls.push(tokio::spawn(async move {
            p.try_call(item).await.map_err(PoolError::from)
        }));
        common::eventually(Duration::from_secs(5), "queued in order", || {
            let pool = pool.clone();
            async move { (pool.health().await.unwrap().total_depth() == k + 2).then_some(()) }
        })
        .await;
    }
    gate.open();
    assert_eq!(hold.await.unwrap().unwrap(), 0);

    for (i, call) in calls.into_iter().enumerate() {
        let r = common::within(Duration::from_secs(5), "every request answered", call)
            .await
            .unwrap();
        // Item 2's retry (on the replacement worker) succeeds: its fault
        // fired once. Items 1, 3 and 4 succeed too.
        assert_eq!(r, Ok(i as u64 + 1), "item {}", i + 1);
    }
    let stats = pool.stats().await.unwrap();
    assert_eq!(
        stats.isolated, 4,
        "the failed batch's requests were rerun alone"
    );
    assert_eq!(stats.retries, 1, "the hung/panicked rerun was retried once");
    assert_eq!(stats.worker_lost, 0);
    spec.hang_release.open();
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_rerun_that_hangs_strands_nothing() {
    common::within(
        Duration::from_secs(20),
        "test",
        batch_error_then(FaultKind::Hang),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_rerun_that_panics_strands_nothing() {
    common::within(
        Duration::from_secs(20),
        "test",
        batch_error_then(FaultKind::Panic),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_too_few_outputs_fails_only_the_request_that_causes_it() {
    common::within(Duration::from_secs(20), "test", async {
        let pool = common::ready_pool(SyntheticSpec::default(), common::config(1)).await;
        let (gate, hold) = common::hold(&pool).await;
        let mut calls = Vec::new();
        for id in 1..=4u64 {
            let item = if id == 3 {
                Item::faulty(id, Fault::always(FaultKind::WrongCount))
            } else {
                Item::new(id)
            };
            let p = pool.clone();
            calls.push(tokio::spawn(async move {
                p.try_call(item).await.map_err(PoolError::from)
            }));
        }
        common::eventually(Duration::from_secs(5), "queued", || {
            let pool = pool.clone();
            async move { (pool.health().await.unwrap().total_depth() == 5).then_some(()) }
        })
        .await;
        gate.open();
        hold.await.unwrap().unwrap();
        for (i, call) in calls.into_iter().enumerate() {
            let id = i as u64 + 1;
            let r = call.await.unwrap();
            if id == 3 {
                assert!(
                    matches!(&r, Err(PoolError::Backend(m)) if m.contains("outputs")),
                    "{r:?}"
                );
            } else {
                assert_eq!(r, Ok(id));
            }
        }
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
