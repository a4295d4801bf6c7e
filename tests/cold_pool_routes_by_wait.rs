//! A cold pool routes by expected wait from its first request: before any
//! worker has finished a batch nothing is known about their speeds, so a
//! worker not measured yet takes one request at a time from callers who can
//! wait. A burst on a cold pool of one fast and one 20× slower worker then
//! queues nothing behind the slow worker's first item. (Counted as fast
//! until measured, the slow worker took half of the burst, and those
//! requests waited about 16 of its service times.) A caller who cannot wait
//! is still placed wherever there is room: probation never refuses.

mod common;

use std::time::{Duration, Instant};

use corral::synthetic::{Item, SyntheticSpec};
use corral::Call;
use corral::{PoolConfig, PoolError};

const FAST: Duration = Duration::from_millis(5);
/// Long enough that the whole burst is served by the fast worker while the
/// slow one runs its first item, even on a busy machine.
const SLOW: Duration = Duration::from_millis(2_000);
const BURST: u64 = 20;

fn cold(slow_slot: usize) -> (SyntheticSpec, PoolConfig) {
    let mut times = vec![FAST, FAST];
    times[slow_slot] = SLOW;
    let spec = SyntheticSpec {
        per_item_by_worker: times,
        ..SyntheticSpec::default()
    };
    let cfg = PoolConfig {
        max_batch_requests: 1,
        ..common::config(2)
    };
    (spec, cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_burst_queues_nothing_behind_the_slow_worker() {
    common::within(Duration::from_secs(60), "test", async {
        for slow_slot in [0, 1] {
            let (spec, cfg) = cold(slow_slot);
            let pool = common::ready_pool(spec, cfg).await;
            let start = Instant::now();
            let calls: Vec<_> = (0..BURST)
                .map(|id| {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        let r = pool.call(Item::new(id)).await.map_err(PoolError::from);
                        (r, start.elapsed())
                    })
                })
                .collect();
            // While the slow worker runs its first item, it holds nothing
            // else, and everyone but that item's caller is answered.
            let mut late = 0;
            for c in calls {
                let (r, took) = c.await.unwrap();
                assert!(r.is_ok(), "{r:?}");
                if took >= SLOW {
                    late += 1;
                }
            }
            let stats = pool.stats().await.unwrap();
            let processed: Vec<u64> = stats.workers.iter().map(|w| w.processed).collect();
            assert_eq!(
                processed[slow_slot], 1,
                "slow worker in slot {slow_slot} took more than its first item: {processed:?}"
            );
            assert_eq!(late, 1, "only the slow worker's own item takes its time");
            pool.shutdown(Duration::from_secs(5)).await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_cannot_wait_is_placed_on_a_cold_worker_with_room() {
    common::within(Duration::from_secs(30), "test", async {
        // Both workers busy with their first item, neither measured.
        let cfg = PoolConfig {
            max_batch_requests: 1,
            ..common::config(2)
        };
        let pool = common::ready_pool(SyntheticSpec::default(), cfg).await;
        let (gate_a, held_a) = common::hold(&pool).await;
        let (gate_b, held_b) = {
            use corral::synthetic::{Fault, FaultKind, Gate};
            let gate = Gate::new();
            let item = Item::faulty(100, Fault::once(FaultKind::Gate(gate.clone())));
            let p = pool.clone();
            let held = tokio::spawn(async move { p.try_call(item).await.map_err(PoolError::from) });
            common::arrived(&gate, 1).await;
            (gate, held)
        };
        let depths = pool.health().await.unwrap();
        assert_eq!(
            depths
                .workers
                .iter()
                .map(|w| w.queue_depth)
                .collect::<Vec<_>>(),
            [1, 1]
        );
        // Refuse-mode and zero-wait callers are placed, not refused.
        let t1 = {
            let p = pool.clone();
            tokio::spawn(async move { p.try_call(Item::new(1)).await.map_err(PoolError::from) })
        };
        let t2 = {
            let p = pool.clone();
            tokio::spawn(async move {
                p.call_timeout(Item::new(2), Duration::ZERO)
                    .await
                    .map_err(PoolError::from)
            })
        };
        common::eventually(Duration::from_secs(5), "both placed", || {
            let pool = pool.clone();
            async move { (pool.health().await.unwrap().total_depth() == 4).then_some(()) }
        })
        .await;
        // A caller who can wait, waits — and is admitted at the end of its
        // wait rather than timed out, since a worker had room all along.
        let t3 = {
            let p = pool.clone();
            tokio::spawn(async move {
                p.call_timeout(Item::new(3), Duration::from_millis(200))
                    .await
                    .map_err(PoolError::from)
            })
        };
        common::eventually(Duration::from_secs(5), "waiting, then placed", || {
            let pool = pool.clone();
            async move { (pool.health().await.unwrap().total_depth() == 5).then_some(()) }
        })
        .await;
        gate_a.open();
        gate_b.open();
        assert_eq!(held_a.await.unwrap(), Ok(0));
        assert_eq!(held_b.await.unwrap(), Ok(100));
        assert_eq!(t1.await.unwrap(), Ok(1));
        assert_eq!(t2.await.unwrap(), Ok(2));
        assert_eq!(t3.await.unwrap(), Ok(3));
        let stats = pool.stats().await.unwrap();
        assert_eq!(stats.rejected_overloaded + stats.timed_out, 0, "{stats:?}");
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_right_after_a_cold_burst_finishes_all_of_it() {
    common::within(Duration::from_secs(30), "test", async {
        let cfg = PoolConfig {
            max_batch_requests: 1,
            ..common::config(2)
        };
        let spec = SyntheticSpec::with_per_item(Duration::from_millis(50));
        let pool = common::ready_pool(spec, cfg).await;
        let calls: Vec<_> = (0..10u64)
            .map(|id| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.call(Item::new(id)).await.map_err(PoolError::from) })
            })
            .collect();
        // Two admitted, the rest waiting for the first measurement.
        common::eventually(Duration::from_secs(5), "all arrived", || {
            let pool = pool.clone();
            async move {
                let h = pool.health().await.unwrap();
                (h.total_depth() + h.waiting == 10).then_some(())
            }
        })
        .await;
        let report = pool.shutdown(Duration::from_secs(20)).await.unwrap();
        for (id, c) in calls.into_iter().enumerate() {
            assert_eq!(c.await.unwrap(), Ok(id as u64), "{report:?}");
        }
    })
    .await;
}
