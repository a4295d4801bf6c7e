//! Every way a request can be refused before it runs hands its inputs back,
//! exactly as they went in (same items, same order), as
//! `CallError::Refused`: `try_call` on a full pool (`Overloaded`), a wait
//! for room that runs out (`TimedOut`: `call_timeout`, `call` with the
//! pool's own admission timeout, `call_batch_timeout`), an end-to-end
//! deadline that passes in the waiting line (`DeadlinePassed`), a request
//! of the wrong size (`InvalidInput`), and a pool that is shutting down
//! (`ShuttingDown`, for a caller in the line and for one that comes after).
//! A request that ran and failed hands nothing back (`Failed`).

mod common;

use std::time::Duration;

use corral::synthetic::{Fault, FaultKind, Item, SyntheticSpec};
use corral::{Call, CallError, Failure, PoolConfig, PoolError, Refusal, Submit};

/// What identifies an item: its id and its cost.
fn keys(items: &[Item]) -> Vec<(u64, usize)> {
    items.iter().map(|i| (i.id, i.cost)).collect()
}

/// Distinct items, each with a cost of its own.
fn items(ids: &[u64]) -> Vec<Item> {
    ids.iter()
        .map(|&id| Item::new(id).costing(id as usize + 1))
        .collect()
}

/// The refusal's reason and the handed-back inputs' keys; panics on
/// anything but a refusal.
fn refused(e: CallError<Vec<Item>>) -> (Refusal, Vec<(u64, usize)>) {
    match e {
        CallError::Refused { reason, inputs } => (reason, keys(&inputs)),
        CallError::Failed(f) => panic!("failed, not refused: {f:?}"),
    }
}

/// As [`refused`], for a single-input call.
fn refused_one(e: CallError<Item>) -> (Refusal, (u64, usize)) {
    match e {
        CallError::Refused { reason, inputs } => (reason, (inputs.id, inputs.cost)),
        CallError::Failed(f) => panic!("failed, not refused: {f:?}"),
    }
}

/// One worker with one single-request slot and one batch slot, a waiting
/// line of one, and a short admission timeout of its own.
fn small(admission_timeout: Duration) -> PoolConfig {
    PoolConfig {
        queue_capacity: 1,
        batch_queue_capacity: 1,
        max_batch_requests: 1,
        max_waiting: 1,
        max_client_batch: 3,
        admission_timeout,
        ..common::config(1)
    }
}

const WAIT: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_before_running_hands_the_inputs_back() {
    common::within(Duration::from_secs(20), "refusals", async {
        let pool = common::ready_pool(SyntheticSpec::default(), small(WAIT)).await;
        let (gate, held) = common::hold(&pool).await;
        // The single slot is the held one; fill the batch slot too.
        let p = pool.clone();
        let batch = tokio::spawn(async move { p.try_call_batch(items(&[1, 2])).await });
        common::eventually(Duration::from_secs(5), "batch queued", || {
            let pool = pool.clone();
            async move { (pool.health().await.unwrap().total_depth() == 2).then_some(()) }
        })
        .await;

        // Full, and the caller will not wait: Overloaded.
        let one = Item::new(10).costing(7);
        let (reason, back) = refused_one(pool.try_call(one).await.unwrap_err());
        assert!(matches!(reason, Refusal::Overloaded { .. }), "{reason:?}");
        assert_eq!(back, (10, 7));
        let (reason, back) = refused(pool.try_call_batch(items(&[11, 12])).await.unwrap_err());
        assert!(matches!(reason, Refusal::Overloaded { .. }), "{reason:?}");
        assert_eq!(back, [(11, 12), (12, 13)]);

        // A wait for room that runs out: TimedOut, with the given wait...
        let (reason, back) = refused_one(
            pool.call_timeout(Item::new(20).costing(3), WAIT)
                .await
                .unwrap_err(),
        );
        assert_eq!((reason, back), (Refusal::TimedOut, (20, 3)));
        // ...with the pool's own admission timeout...
        let (reason, back) = refused_one(pool.call(Item::new(21).costing(4)).await.unwrap_err());
        assert_eq!((reason, back), (Refusal::TimedOut, (21, 4)));
        // ...and for a batch, in order.
        let (reason, back) = refused(
            pool.call_batch_timeout(items(&[23, 22]), WAIT)
                .await
                .unwrap_err(),
        );
        assert_eq!(
            (reason, back),
            (Refusal::TimedOut, vec![(23, 24), (22, 23)])
        );
        let (reason, back) = refused(pool.call_batch(items(&[24, 25])).await.unwrap_err());
        assert_eq!(
            (reason, back),
            (Refusal::TimedOut, vec![(24, 25), (25, 26)])
        );

        // The end-to-end deadline passes while it waits in the line.
        let request = Submit::wait(items(&[30, 31]), Duration::from_secs(60)).within(WAIT);
        let (reason, back) = refused(pool.submit(request).await.unwrap_err());
        assert_eq!(
            (reason, back),
            (Refusal::DeadlinePassed, vec![(30, 31), (31, 32)])
        );

        // The wrong size: empty, or over max_client_batch (3).
        let (reason, back) = refused(pool.call_batch(Vec::new()).await.unwrap_err());
        assert!(matches!(reason, Refusal::InvalidInput(_)), "{reason:?}");
        assert!(back.is_empty());
        let (reason, back) = refused(pool.call_batch(items(&[40, 41, 42, 43])).await.unwrap_err());
        assert!(matches!(reason, Refusal::InvalidInput(_)), "{reason:?}");
        assert_eq!(back, [(40, 41), (41, 42), (42, 43), (43, 44)]);

        let stats = pool.stats().await.unwrap();
        assert_eq!(stats.timed_out, 4, "{stats:?}");
        assert_eq!(stats.deadline_exceeded, 1, "{stats:?}");
        gate.open();
        assert_eq!(held.await.unwrap(), Ok(0));
        assert_eq!(
            batch.await.unwrap().map_err(PoolError::from),
            Ok(vec![1, 2])
        );
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_hands_back_what_never_ran_and_nothing_else() {
    common::within(Duration::from_secs(20), "shutdown", async {
        let pool =
            common::ready_pool(SyntheticSpec::default(), small(Duration::from_secs(60))).await;
        let (gate, held) = common::hold(&pool).await;
        // A second single request waits in the line (the slot is held).
        let p = pool.clone();
        let waiter = tokio::spawn(async move { p.call(Item::new(50).costing(9)).await });
        common::eventually(Duration::from_secs(5), "waiting", || {
            let pool = pool.clone();
            async move { (pool.health().await.unwrap().waiting == 1).then_some(()) }
        })
        .await;
        // The drain refuses the line at once; the held request runs past
        // the drain deadline and is failed, not refused.
        let p = pool.clone();
        let shutdown = tokio::spawn(async move { p.shutdown(Duration::from_millis(50)).await });
        let (reason, back) = refused_one(waiter.await.unwrap().unwrap_err());
        assert_eq!((reason, back), (Refusal::ShuttingDown, (50, 9)));
        assert_eq!(held.await.unwrap(), Err(PoolError::ShuttingDown));
        gate.open();
        let report = shutdown.await.unwrap().unwrap();
        assert_eq!(
            (report.refused_waiting, report.aborted),
            (1, 1),
            "{report:?}"
        );

        // After it stopped: refused, the inputs back.
        let (reason, back) = refused_one(pool.call(Item::new(60).costing(2)).await.unwrap_err());
        assert_eq!((reason, back), (Refusal::ShuttingDown, (60, 2)));
        let (reason, back) = refused(pool.try_call_batch(items(&[61, 62])).await.unwrap_err());
        assert_eq!(
            (reason, back),
            (Refusal::ShuttingDown, vec![(61, 62), (62, 63)])
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_ran_and_failed_hands_nothing_back() {
    common::within(Duration::from_secs(20), "failed", async {
        let pool = common::ready_pool(
            SyntheticSpec::default(),
            PoolConfig {
                max_retries: 0,
                ..common::config(1)
            },
        )
        .await;
        let r = pool
            .try_call(Item::faulty(1, Fault::once(FaultKind::Error)))
            .await;
        assert!(
            matches!(r, Err(CallError::Failed(Failure::Backend(_)))),
            "{r:?}"
        );
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
