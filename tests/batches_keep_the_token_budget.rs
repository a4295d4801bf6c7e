//! A batch never goes over `max_batch_tokens` (the sum of its requests'
//! costs), except a single request that is over budget by itself, which
//! runs alone; and requests queued together are batched up to the budget.

mod common;

use std::sync::Arc;
use std::time::Duration;

use corral::synthetic::{Item, SyntheticSpec};
use corral::PoolConfig;
use corral::{Call, PoolError};
use parking_lot::Mutex;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_cut_at_the_token_budget() {
    common::within(Duration::from_secs(30), "test", async {
        let log = Arc::new(Mutex::new(Vec::new()));
        let spec = SyntheticSpec {
            run_log: Some(log.clone()),
            ..SyntheticSpec::default()
        };
        let cfg = PoolConfig {
            max_batch_tokens: 10,
            ..common::config(1)
        };
        let pool = common::ready_pool(spec.clone(), cfg).await;
        let (gate, hold) = common::hold(&pool).await;
        // Queued while the worker is held, in this order: six of cost 4,
        // one of cost 25 (over budget alone), two of cost 5.
        let costs = [4, 4, 4, 4, 4, 4, 25, 5, 5];
        let mut calls = Vec::new();
        for (k, &cost) in costs.iter().enumerate() {
            let p = pool.clone();
            let id = k as u64 + 1;
            calls.push(tokio::spawn(async move {
                p.call(Item::new(id).costing(cost))
                    .await
                    .map_err(PoolError::from)
            }));
            common::eventually(Duration::from_secs(5), "queued in order", || {
                let pool = pool.clone();
                async move { (pool.health().await.unwrap().total_depth() == k + 2).then_some(()) }
            })
            .await;
        }
        let before = spec.batches.load(std::sync::atomic::Ordering::Relaxed);
        gate.open();
        hold.await.unwrap().unwrap();
        for (k, c) in calls.into_iter().enumerate() {
            assert_eq!(c.await.unwrap(), Ok(k as u64 + 1));
        }
        let batches = spec.batches.load(std::sync::atomic::Ordering::Relaxed) - before;
        // After the hold (counted in `before`): [1,2] [3,4] [5,6] (8 ≤ 10, a third would be
        // 12), [7] alone (25 > 10), [8,9] (10 ≤ 10).
        assert_eq!(batches, 5, "run log {:?}", log.lock());
        assert_eq!(*log.lock(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(spec.max_batch.load(std::sync::atomic::Ordering::Relaxed), 2);
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
