//! Multi-input requests count against `batch_queue_capacity`, not the
//! single-input bound: with every single slot taken, batch requests are
//! still admitted up to their own bound, then `try_call_batch` is refused
//! at once with its inputs handed back and `call_batch_timeout` waits for
//! room up to its timeout. Outputs come back in input order.

mod common;

use std::time::{Duration, Instant};

use corral::synthetic::{Item, SyntheticSpec};
use corral::{Call, PoolConfig, PoolError, Refusal};

fn items(ids: &[u64]) -> Vec<Item> {
    ids.iter().map(|&id| Item::new(id)).collect()
}

fn ids(items: Option<Vec<Item>>) -> Option<Vec<u64>> {
    items.map(|v| v.iter().map(|i| i.id).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_requests_fill_their_own_bound_then_are_refused_or_wait() {
    common::within(Duration::from_secs(20), "batch bound", async {
        let cfg = PoolConfig {
            queue_capacity: 1,
            batch_queue_capacity: 2,
            max_batch_requests: 1,
            max_client_batch: 4,
            ..common::config(1)
        };
        let pool = common::ready_pool(SyntheticSpec::default(), cfg).await;
        // The one single slot is taken.
        let (gate, held) = common::hold(&pool).await;
        assert!(matches!(
            pool.try_call(Item::new(50)).await.map_err(PoolError::from),
            Err(PoolError::Overloaded { .. })
        ));

        // Two batch requests still fit: their bound is their own.
        let mut admitted = Vec::new();
        for first in [1u64, 3] {
            let p = pool.clone();
            admitted.push(tokio::spawn(async move {
                p.try_call_batch(items(&[first, first + 1]))
                    .await
                    .map_err(PoolError::from)
            }));
            common::eventually(Duration::from_secs(5), "batch admitted", || {
                let pool = pool.clone();
                let want = first as usize / 2 + 2;
                async move { (pool.health().await.unwrap().total_depth() == want).then_some(()) }
            })
            .await;
        }

        // The batch bound is full: refused at once, inputs handed back...
        let refused = pool.try_call_batch(items(&[5, 6])).await.unwrap_err();
        assert!(
            matches!(refused.refusal(), Some(Refusal::Overloaded { .. })),
            "{refused:?}"
        );
        assert_eq!(ids(refused.into_inputs()), Some(vec![5, 6]));
        // ...or a wait for room up to the timeout, then refused `TimedOut`:
        // nothing ran, so the inputs come back too.
        let t = Instant::now();
        let waited = pool
            .call_batch_timeout(items(&[7, 8]), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(waited.refusal(), Some(&Refusal::TimedOut), "{waited:?}");
        assert_eq!(ids(waited.into_inputs()), Some(vec![7, 8]));
        assert!(
            t.elapsed() >= Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(pool.health().await.unwrap().total_depth(), 3);

        gate.open();
        assert_eq!(held.await.unwrap().unwrap(), 0);
        assert_eq!(admitted.remove(0).await.unwrap().unwrap(), [1, 2]);
        assert_eq!(admitted.remove(0).await.unwrap().unwrap(), [3, 4]);

        // With room, call_batch_timeout runs at once; outputs in order.
        assert_eq!(
            pool.call_batch_timeout(items(&[9, 10, 11]), Duration::from_secs(5))
                .await
                .map_err(PoolError::from)
                .unwrap(),
            [9, 10, 11]
        );
        // Requests that cannot run are refused, inputs back.
        let empty = pool.try_call_batch(Vec::new()).await.unwrap_err();
        assert!(matches!(empty.refusal(), Some(Refusal::InvalidInput(_))));
        let big = pool
            .try_call_batch(items(&[1, 2, 3, 4, 5]))
            .await
            .unwrap_err();
        assert!(matches!(big.refusal(), Some(Refusal::InvalidInput(_))));
        assert_eq!(ids(big.into_inputs()), Some(vec![1, 2, 3, 4, 5]));

        let stats = pool.stats().await.unwrap();
        assert_eq!(stats.admitted, 4);
        assert_eq!(stats.rejected_overloaded, 2);
        assert_eq!(stats.timed_out, 1);
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
