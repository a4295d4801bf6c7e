//! With one worker made slow, the others take proportionally more, and no
//! request queues behind the slow one while another has room.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral::synthetic::{Item, SyntheticSpec};
use corral::Call;
use corral::PoolError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_worker_gets_less_and_nobody_waits_behind_it() {
    common::within(
        Duration::from_secs(30),
        "slow worker",
        slow_worker_gets_less(),
    )
    .await;
}

async fn slow_worker_gets_less() {
    let slow = Duration::from_millis(150);
    let spec = SyntheticSpec {
        per_item: Duration::from_millis(1),
        per_item_by_load: vec![slow],
        ..SyntheticSpec::default()
    };
    let pool = common::ready_pool(spec, common::config(2)).await;

    // Two callers in closed loops: there is always room at the fast worker.
    let worst = Arc::new(parking_lot::Mutex::new(Duration::ZERO));
    let mut set = tokio::task::JoinSet::new();
    for c in 0..2u64 {
        let (pool, worst) = (pool.clone(), worst.clone());
        set.spawn(async move {
            for i in 0..150u64 {
                let t = Instant::now();
                let id = c * 1000 + i;
                assert_eq!(
                    pool.try_call(Item::new(id))
                        .await
                        .map_err(PoolError::from)
                        .unwrap(),
                    id
                );
                let took = t.elapsed();
                let mut w = worst.lock();
                *w = (*w).max(took);
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let stats = pool.stats().await.unwrap();
    let mut processed: Vec<u64> = stats.workers.iter().map(|w| w.processed).collect();
    processed.sort();
    assert_eq!(processed.iter().sum::<u64>(), 300);
    assert!(
        processed[1] >= 10 * processed[0].max(1),
        "the fast worker should take far more: {processed:?}"
    );
    // A request queued behind the slow worker's running item would take at
    // least two slow items' time.
    let worst = *worst.lock();
    assert!(
        worst < slow * 2,
        "a request waited behind the slow worker: {worst:?}"
    );
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Fewer requests than one worker's bound, so that a router which fills
/// one worker up to its bound before using the next (which would still
/// split a flood of twice the bound evenly) puts them all on one worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_workers_share_evenly() {
    common::within(Duration::from_secs(20), "equal split", async {
        // A cold pool: neither worker is measured when the burst comes.
        // 20 ms per item, so that a busy machine's scheduling delays (a few
        // ms) cannot make one equal worker measure twice as slow as the
        // other.
        let spec = SyntheticSpec::with_per_item(Duration::from_millis(20));
        let cfg = common::config(2);
        let n = 120u64;
        assert!(n < 2 * cfg.queue_capacity as u64 && n > cfg.queue_capacity as u64);
        let pool = common::ready_pool(spec, cfg).await;
        let mut set = tokio::task::JoinSet::new();
        for id in 0..n {
            let pool = pool.clone();
            set.spawn(async move {
                assert_eq!(
                    pool.call(Item::new(id))
                        .await
                        .map_err(PoolError::from)
                        .unwrap(),
                    id
                )
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
        let stats = pool.stats().await.unwrap();
        for w in &stats.workers {
            assert!(
                (40..=80).contains(&w.processed),
                "uneven split of {n}: {:?}",
                stats.workers
            );
        }
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
