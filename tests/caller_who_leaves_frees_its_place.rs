//! A caller who gives up while waiting for room frees its place in the
//! waiting line at once: it is neither counted against `max_waiting` nor as
//! a timeout. Measured from outside before the fix: 1 live caller plus
//! 1,023 gone, and 1,023 new live callers were refused for seconds.

mod common;

use std::time::Duration;

use corral::synthetic::{Item, SyntheticSpec};
use corral::Call;
use corral::{PoolConfig, PoolError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_waiters_make_room_for_live_ones_and_are_not_timeouts() {
    common::within(Duration::from_secs(30), "test", async {
        const LINE: usize = 64;
        let cfg = PoolConfig {
            queue_capacity: 1,
            max_batch_requests: 1,
            max_waiting: LINE,
            ..common::config(1)
        };
        let pool = common::ready_pool(SyntheticSpec::default(), cfg).await;
        let (gate, hold) = common::hold(&pool).await;

        // One live waiter, then LINE - 1 that will give up.
        let live = {
            let p = pool.clone();
            tokio::spawn(async move {
                p.call_timeout(Item::new(1), Duration::from_secs(60))
                    .await
                    .map_err(PoolError::from)
            })
        };
        let mut leavers = Vec::new();
        for id in 0..LINE as u64 - 1 {
            let p = pool.clone();
            leavers.push(tokio::spawn(async move {
                p.call_timeout(Item::new(1000 + id), Duration::from_secs(60))
                    .await
                    .map_err(PoolError::from)
            }));
        }
        common::eventually(Duration::from_secs(5), "line full", || {
            let pool = pool.clone();
            async move { (pool.health().await.unwrap().waiting == LINE).then_some(()) }
        })
        .await;
        for l in &leavers {
            l.abort();
        }
        for l in leavers {
            assert!(l.await.unwrap_err().is_cancelled());
        }

        // LINE - 1 new live callers all find a place (none refused).
        let mut fresh = Vec::new();
        for id in 0..LINE as u64 - 1 {
            let p = pool.clone();
            fresh.push(tokio::spawn(async move {
                p.call_timeout(Item::new(2000 + id), Duration::from_secs(60))
                    .await
                    .map_err(PoolError::from)
            }));
        }
        common::eventually(Duration::from_secs(5), "new callers waiting", || {
            let pool = pool.clone();
            async move { (pool.health().await.unwrap().waiting == LINE).then_some(()) }
        })
        .await;
        gate.open();
        hold.await.unwrap().unwrap();
        assert_eq!(live.await.unwrap(), Ok(1));
        for (i, f) in fresh.into_iter().enumerate() {
            let r = f.await.unwrap();
            assert_eq!(
                r,
                Ok(2000 + i as u64),
                "new live caller {i} was refused: {r:?}"
            );
        }
        let stats = pool.stats().await.unwrap();
        assert_eq!(stats.timed_out, 0, "callers who left are not timeouts");
        assert_eq!(stats.rejected_overloaded, 0);
        assert_eq!(stats.cancelled, LINE as u64 - 1);
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
        let _ = PoolError::TimedOut;
    })
    .await;
}
