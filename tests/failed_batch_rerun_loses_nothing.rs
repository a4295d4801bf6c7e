//! A batch that fails with an error is rerun one request at a time. If one
//! of those reruns then hangs or panics, the requests not yet rerun are not
//! stranded on the compute thread: they wait in the worker's mailbox, where
//! the supervisor takes them back and re-routes them. Every request of the
//! batch gets exactly one answer, in bounded time, and the stats count it.

mod common;

use std::time::Duration;

use corral::synthetic::{Fault, FaultKind, Gate, Item, Synthetic, SyntheticSpec};
use corral::Call as _;
use corral::{PoolConfig, PoolError, PoolHandle};

const STUCK: Duration = Duration::from_millis(200);

type Call = tokio::task::JoinHandle<Result<u64, PoolError>>;

/// Submits `items` one at a time, each once the one before is queued (the
/// pool already holds `held`), so that they batch in this order.
async fn queue_in_order(pool: &PoolHandle<Synthetic>, items: Vec<Item>, held: usize) -> Vec<Call> {
    let mut calls = Vec::new();
    for (k, item) in items.into_iter().enumerate() {
        let p = pool.clone();
        calls.push(tokio::spawn(async move {
            p.try_call(item).await.map_err(PoolError::from)
        }));
        common::eventually(Duration::from_secs(5), "queued", || {
            let pool = pool.clone();
            async move {
                (pool.health().await.unwrap().total_depth() == held + k + 1).then_some(())
            }
        })
        .await;
    }
    calls
}

/// One worker held at a gate; four requests queued behind it, which will
/// run as one batch: item 1 errors (once), then item 2's fault fires when it
/// is rerun alone.
async fn batch_error_then(second: FaultKind) {
    let spec = SyntheticSpec::default();
    let cfg = PoolConfig {
        stuck_base: STUCK,
        stuck_per_token: Duration::from_millis(10),
        ..common::config(1)
    };
    let pool = common::ready_pool(spec.clone(), cfg).await;
    // The held batch costs 1,000 tokens: a budget of 10 s, so that a busy
    // machine cannot make it look stuck while the test sets up. The hung
    // rerun (1 token) is found after 210 ms.
    let gate = Gate::new();
    let held = Item {
        cost: 1000,
        ..Item::faulty(0, Fault::once(FaultKind::Gate(gate.clone())))
    };
    let p = pool.clone();
    let hold = tokio::spawn(async move { p.try_call(held).await.map_err(PoolError::from) });
    common::arrived(&gate, 1).await;

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
    let calls = queue_in_order(&pool, items, 1).await;
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
        let items = (1..=4u64)
            .map(|id| match id {
                3 => Item::faulty(id, Fault::always(FaultKind::WrongCount)),
                _ => Item::new(id),
            })
            .collect();
        let calls = queue_in_order(&pool, items, 1).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_whose_cost_panics_still_answers_and_keeps_serving() {
    common::within(Duration::from_secs(20), "test", async {
        let pool = common::ready_pool(SyntheticSpec::default(), common::config(1)).await;
        let (gate, hold) = common::hold(&pool).await;
        let items = (1..=3u64)
            .map(|id| match id {
                2 => Item::faulty(id, Fault::always(FaultKind::PanicInCost)),
                _ => Item::new(id),
            })
            .collect();
        let calls = queue_in_order(&pool, items, 1).await;
        gate.open();
        hold.await.unwrap().unwrap();
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap(), Ok(i as u64 + 1));
        }
        assert_eq!(
            pool.call(Item::new(9)).await.map_err(PoolError::from),
            Ok(9),
            "the worker still serves"
        );
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
