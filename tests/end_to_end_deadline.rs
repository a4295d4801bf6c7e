//! An optional end-to-end deadline covers the whole request — the wait for
//! room, the queue and the compute — as gRPC deadlines do. A request whose
//! deadline passes before it starts is skipped and refused `DeadlinePassed`,
//! its inputs handed back; one that is running fails `DeadlinePassed` at its
//! deadline, its result discarded. The admission-only timeout keeps meaning
//! only the wait for room (`TimedOut`, inputs handed back).

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use corral::synthetic::{Fault, FaultKind, Item, SyntheticSpec};
use corral::{Call, CallError, Failure, PoolConfig, PoolError, Refusal, Submit};

/// The ids of handed-back inputs.
fn ids(inputs: Option<Vec<Item>>) -> Option<Vec<u64>> {
    inputs.map(|v| v.iter().map(|i| i.id).collect())
}

const DEADLINE: Duration = Duration::from_millis(150);
/// Watchdog interval (10 ms in tests) plus scheduling slack.
const LATE: Duration = Duration::from_millis(400);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_past_its_deadline_is_refused_with_its_inputs_and_never_runs() {
    common::within(Duration::from_secs(20), "test", async {
        let spec = SyntheticSpec::default();
        let pool = common::ready_pool(spec.clone(), common::config(1)).await;
        let (gate, hold) = common::hold(&pool).await;
        let t = Instant::now();
        let r = pool
            .submit(Submit::reject(vec![Item::new(1)]).within(DEADLINE))
            .await;
        let took = t.elapsed();
        let e = r.unwrap_err();
        assert_eq!(e.refusal(), Some(&Refusal::DeadlinePassed), "{e:?}");
        assert_eq!(ids(e.into_inputs()), Some(vec![1]), "it never ran");
        assert!(took >= DEADLINE && took < DEADLINE + LATE, "{took:?}");
        gate.open();
        hold.await.unwrap().unwrap();
        // Only the held item ran.
        common::eventually(Duration::from_secs(5), "idle", || {
            let pool = pool.clone();
            async move { (pool.health().await.unwrap().total_depth() == 0).then_some(()) }
        })
        .await;
        assert_eq!(spec.items.load(Ordering::Relaxed), 1);
        let stats = pool.stats().await.unwrap();
        assert_eq!(stats.deadline_exceeded, 1);
        assert_eq!(stats.timed_out, 0, "not an admission timeout");
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_past_its_deadline_is_answered_at_the_deadline() {
    common::within(Duration::from_secs(20), "test", async {
        let pool = common::ready_pool(SyntheticSpec::default(), common::config(1)).await;
        let slow = Item::faulty(1, Fault::once(FaultKind::Delay(Duration::from_secs(2))));
        let t = Instant::now();
        let r = pool
            .submit(Submit::reject(vec![slow]).within(DEADLINE))
            .await;
        let took = t.elapsed();
        assert!(
            matches!(r, Err(CallError::Failed(Failure::DeadlinePassed))),
            "it ran: nothing comes back ({r:?})"
        );
        assert!(
            took >= DEADLINE && took < DEADLINE + LATE,
            "answered after {took:?}"
        );
        // The slot frees when the batch really ends; the pool then serves.
        assert_eq!(
            pool.call(Item::new(2)).await.map_err(PoolError::from),
            Ok(2)
        );
        assert_eq!(pool.stats().await.unwrap().deadline_exceeded, 1);
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_room_past_the_deadline_is_a_deadline_not_a_wait_timeout() {
    common::within(Duration::from_secs(20), "test", async {
        let cfg = PoolConfig {
            queue_capacity: 1,
            ..common::config(1)
        };
        let pool = common::ready_pool(SyntheticSpec::default(), cfg).await;
        let (gate, hold) = common::hold(&pool).await;
        let t = Instant::now();
        let r = pool
            .submit(Submit::wait(vec![Item::new(1)], Duration::from_secs(30)).within(DEADLINE))
            .await;
        let e = r.unwrap_err();
        assert_eq!(e.refusal(), Some(&Refusal::DeadlinePassed), "{e:?}");
        assert_eq!(ids(e.into_inputs()), Some(vec![1]), "it never ran");
        assert!(t.elapsed() < DEADLINE + LATE);
        // Without a deadline, the admission timeout alone decides.
        let t = Instant::now();
        let e = pool.call_timeout(Item::new(2), DEADLINE).await.unwrap_err();
        assert_eq!(PoolError::from(e.clone()), PoolError::TimedOut);
        assert_eq!(e.into_inputs().map(|i| i.id), Some(2), "it never ran");
        assert!(t.elapsed() >= DEADLINE);
        let stats = pool.stats().await.unwrap();
        assert_eq!((stats.deadline_exceeded, stats.timed_out), (1, 1));
        gate.open();
        hold.await.unwrap().unwrap();
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
