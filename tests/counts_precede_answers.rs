//! A caller that has its answer and then asks for `stats()` finds its
//! request counted: a batch is counted before anyone in it is answered.
//! (Counted after the answers, the first caller of a large batch — who
//! hears back while the rest are still being answered — saw its own request
//! missing; with busy loops beside them, routing tests that summed
//! `processed` after every call had returned failed 9 runs in 40.)

mod common;

use std::time::Duration;

use corral::synthetic::{Item, SyntheticSpec};
use corral::PoolConfig;
use corral::{Call, PoolError};

const BATCH: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_answered_caller_of_a_batch_finds_the_batch_counted() {
    common::within(Duration::from_secs(30), "test", async {
        let cfg = PoolConfig {
            queue_capacity: BATCH + 1,
            max_batch_requests: BATCH,
            max_batch_tokens: BATCH,
            ..common::config(1)
        };
        let pool = common::ready_pool(SyntheticSpec::default(), cfg).await;
        for round in 0..20u64 {
            let (gate, hold) = common::hold(&pool).await;
            // The probe is queued first, so it is answered first in the
            // batch of BATCH that runs once the gate opens.
            let probe = {
                let pool = pool.clone();
                tokio::spawn(async move {
                    pool.call(Item::new(1))
                        .await
                        .map_err(PoolError::from)
                        .unwrap();
                    pool.stats().await.unwrap()
                })
            };
            common::eventually(Duration::from_secs(5), "probe queued", || {
                let pool = pool.clone();
                async move { (pool.health().await.unwrap().total_depth() == 2).then_some(()) }
            })
            .await;
            let rest: Vec<_> = (2..=BATCH as u64)
                .map(|id| {
                    let pool = pool.clone();
                    tokio::spawn(
                        async move { pool.call(Item::new(id)).await.map_err(PoolError::from) },
                    )
                })
                .collect();
            common::eventually(Duration::from_secs(5), "batch queued", || {
                let pool = pool.clone();
                async move {
                    (pool.health().await.unwrap().total_depth() == BATCH + 1).then_some(())
                }
            })
            .await;
            gate.open();
            hold.await.unwrap().unwrap();
            let seen = probe.await.unwrap();
            // Earlier rounds, the hold, and the whole batch the probe was in.
            let want = round * (BATCH as u64 + 1) + 1 + BATCH as u64;
            let counted: u64 = seen.workers.iter().map(|w| w.processed).sum();
            assert!(
                counted >= want,
                "round {round}: the probe had its answer, stats counted {counted} of {want}"
            );
            for r in rest {
                r.await.unwrap().unwrap();
            }
        }
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
