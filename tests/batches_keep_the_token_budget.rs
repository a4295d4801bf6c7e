//! A batch never goes over `max_batch_tokens` (costed by the backend's
//! rule: the sum of its inputs' costs when packed, inputs × the costliest
//! when padded), except a single request that is over budget by itself,
//! which runs alone; requests queued together are batched up to the budget;
//! and the batch a backend runs keeps its own limits on one forward pass —
//! a request over them by itself runs as several forwards, answered once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use corral::synthetic::{Item, SyntheticSpec};
use corral::{Batching, Call, PoolConfig, PoolError};
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

/// Queues requests behind a held worker, one per entry of `requests` with
/// one item per cost (ids 1, 2, … across them), releases it, and returns
/// the ids each `run` got (after the hold), checking every request is
/// answered with its own ids.
async fn forwards_of(spec: SyntheticSpec, cfg: PoolConfig, requests: &[&[usize]]) -> Vec<Vec<u64>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let spec = SyntheticSpec {
        forward_log: Some(log.clone()),
        ..spec
    };
    let pool = common::ready_pool(spec, cfg).await;
    let (gate, hold) = common::hold(&pool).await;
    let (mut calls, mut next) = (Vec::new(), 1u64);
    for (k, costs) in requests.iter().enumerate() {
        let items: Vec<Item> = costs
            .iter()
            .zip(next..)
            .map(|(&c, id)| Item::new(id).costing(c))
            .collect();
        let ids: Vec<u64> = (next..next + costs.len() as u64).collect();
        next += costs.len() as u64;
        let p = pool.clone();
        calls.push((
            ids,
            tokio::spawn(async move { p.call_batch(items).await.map_err(PoolError::from) }),
        ));
        common::eventually(Duration::from_secs(5), "queued in order", || {
            let pool = pool.clone();
            async move { (pool.health().await.unwrap().total_depth() == k + 2).then_some(()) }
        })
        .await;
    }
    gate.open();
    hold.await.unwrap().unwrap();
    for (ids, c) in calls {
        assert_eq!(c.await.unwrap(), Ok(ids));
    }
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
    let mut log = log.lock().clone();
    assert_eq!(log.remove(0), [0], "the hold ran first");
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_padded_backend_is_batched_by_rows_times_the_longest() {
    common::within(Duration::from_secs(30), "test", async {
        let cfg = PoolConfig {
            max_batch_tokens: 10,
            ..common::config(1)
        };
        let costs: [&[usize]; 5] = [&[2], &[2], &[2], &[6], &[1]];
        // Packed: [2,2,2] (a 6 would make 12), then [6,1] (7).
        let packed = forwards_of(SyntheticSpec::default(), cfg.clone(), &costs).await;
        assert_eq!(packed, [vec![1, 2, 3], vec![4, 5]]);
        // Padded: [2,2,2] (3 × 2; with the 6, 4 × 6), [6] (with the 1,
        // 2 × 6 = 12 > 10), [1].
        let spec = SyntheticSpec {
            batching: Batching::PADDED,
            ..SyntheticSpec::default()
        };
        let padded = forwards_of(spec, cfg, &costs).await;
        assert_eq!(padded, [vec![1, 2, 3], vec![4], vec![5]]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_join_a_batch_only_within_the_backends_limits() {
    common::within(Duration::from_secs(30), "test", async {
        // The pool's budget (100 tokens) would take all five at once; the
        // backend's forward takes at most 7 tokens and 2 inputs.
        let cfg = PoolConfig {
            max_batch_tokens: 100,
            ..common::config(1)
        };
        let spec = SyntheticSpec {
            batching: Batching::PACKED.with_max_cost(7).with_max_inputs(2),
            ..SyntheticSpec::default()
        };
        let forwards = forwards_of(spec, cfg, &[&[3, 3], &[3], &[1, 1]]).await;
        // Whole requests, each alone: [3,3] (with the next 3, 9 > 7), [3]
        // (with the two 1s, three inputs), [1,1] — not the inputs cut
        // anywhere ([3,3], [3,1], [1]).
        assert_eq!(forwards, [vec![1, 2], vec![3], vec![4, 5]]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_backends_limits_runs_as_several_forwards() {
    common::within(Duration::from_secs(30), "test", async {
        let log = Arc::new(Mutex::new(Vec::new()));
        let spec = SyntheticSpec {
            batching: Batching::PADDED.with_max_cost(12).with_max_inputs(3),
            forward_log: Some(log.clone()),
            ..SyntheticSpec::default()
        };
        let cfg = PoolConfig {
            max_batch_tokens: 1000,
            ..common::config(1)
        };
        let pool = common::ready_pool(spec, cfg).await;
        let costs = [1, 1, 1, 1, 5, 5, 20, 2];
        let items: Vec<Item> = costs
            .iter()
            .enumerate()
            .map(|(k, &c)| Item::new(k as u64 + 1).costing(c))
            .collect();
        let out = pool.call_batch(items).await.unwrap();
        assert_eq!(
            out,
            (1..=8).collect::<Vec<u64>>(),
            "answered once, in order"
        );
        // Padded within 12 and 3 rows: [1,1,1] (a fourth row is over 3),
        // [1,5] (a third row makes 3 × 5 = 15; packed it would be 11), [5],
        // [20] alone (over 12 by itself), [2].
        assert_eq!(
            *log.lock(),
            [vec![1, 2, 3], vec![4, 5], vec![6], vec![7], vec![8]]
        );
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
