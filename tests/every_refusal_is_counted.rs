//! Every refusal is counted wherever it happens — at the door (the pool's
//! whole capacity in flight) or in the supervisor — and carries a
//! `retry_after` from the pool's own estimate of its service time.

mod common;

use std::time::Duration;

use corral::synthetic::{Item, SyntheticSpec};
use corral::Call;
use corral::{PoolConfig, PoolError, Refusal};

/// Waits until the pool holds `depth` admitted requests and `waiting` in line.
async fn settle(
    pool: &corral::PoolHandle<corral::synthetic::Synthetic>,
    depth: usize,
    waiting: usize,
) {
    common::eventually(Duration::from_secs(5), "requests in place", || {
        let pool = pool.clone();
        async move {
            let h = pool.health().await.unwrap();
            (h.total_depth() == depth && h.waiting == waiting).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_more_calls_on_a_full_pool_raise_the_refusal_count_by_n() {
    common::within(Duration::from_secs(30), "test", async {
        // Total capacity: 1 worker × (2 single + 1 batch) + 2 waiting = 5.
        let cfg = PoolConfig {
            queue_capacity: 2,
            batch_queue_capacity: 1,
            max_waiting: 2,
            max_batch_requests: 1,
            ..common::config(1)
        };
        assert_eq!(cfg.total_capacity(), 5);
        let per_item = Duration::from_millis(30);
        let pool = common::ready_pool(SyntheticSpec::with_per_item(per_item), cfg).await;
        // Teach the pool its service time.
        for id in 0..4 {
            pool.call(Item::new(id))
                .await
                .map_err(PoolError::from)
                .unwrap();
        }
        // The estimate health reports is the one the door hands out.
        common::eventually(Duration::from_secs(5), "service time measured", || {
            let pool = pool.clone();
            async move {
                let ra = pool.health().await.unwrap().retry_after;
                (ra >= per_item / 2 && ra <= per_item * 3).then_some(())
            }
        })
        .await;

        // Fill it: one running, one queued single, one queued batch, two
        // waiting.
        let (gate, hold) = common::hold(&pool).await;
        let mut held = vec![];
        let p = pool.clone();
        held.push(tokio::spawn(async move {
            p.try_call(Item::new(10)).await.map_err(PoolError::from)
        }));
        settle(&pool, 2, 0).await;
        let p = pool.clone();
        held.push(tokio::spawn(async move {
            p.try_call_batch(vec![Item::new(11), Item::new(12)])
                .await
                .map(|v| v[0])
                .map_err(PoolError::from)
        }));
        settle(&pool, 3, 0).await;
        for id in 13..=14 {
            let p = pool.clone();
            held.push(tokio::spawn(async move {
                p.call_timeout(Item::new(id), Duration::from_secs(60))
                    .await
                    .map_err(PoolError::from)
            }));
            settle(&pool, 3, id as usize - 12).await;
        }

        let before = pool.stats().await.unwrap().rejected_overloaded;
        const N: u64 = 25;
        for id in 0..N {
            // Alternate the door's refusal paths: single and batch.
            let r = if id % 2 == 0 {
                pool.try_call(Item::new(100 + id)).await.unwrap_err()
            } else {
                pool.try_call_batch(vec![Item::new(100 + id); 2])
                    .await
                    .unwrap_err()
                    .map_inputs(|v| v[0].clone())
            };
            let Some(&Refusal::Overloaded { retry_after }) = r.refusal() else {
                panic!("{r:?}")
            };
            assert!(
                r.inputs().is_some(),
                "a refused request hands its inputs back"
            );
            assert!(
                retry_after >= per_item / 2 && retry_after <= per_item * 3,
                "retry_after {retry_after:?} is not the pool's own estimate (~{per_item:?})"
            );
        }
        // Waiting callers are refused too once the line is full.
        let r = pool
            .call_timeout(Item::new(200), Duration::from_secs(5))
            .await
            .map_err(PoolError::from);
        assert!(matches!(r, Err(PoolError::Overloaded { .. })), "{r:?}");
        let after = pool.stats().await.unwrap().rejected_overloaded;
        assert_eq!(after - before, N + 1, "every refusal counted exactly once");

        gate.open();
        hold.await.unwrap().unwrap();
        for h in held {
            h.await.unwrap().unwrap();
        }
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
