//! Requests taken back from a failed worker keep their place: when no other
//! worker has room they wait at the head of the waiting line — in the order
//! they had, the running batch first — ahead of every caller who was
//! already waiting, and they run first once a worker has room.

mod common;

use std::sync::Arc;
use std::time::Duration;

use corral::synthetic::{Item, SyntheticSpec};
use corral::PoolConfig;
use corral::{Call, PoolError};
use parking_lot::Mutex;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerouted_requests_run_before_earlier_waiters() {
    common::within(Duration::from_secs(30), "test", async {
        let log = Arc::new(Mutex::new(Vec::new()));
        let spec = SyntheticSpec {
            run_log: Some(log.clone()),
            ..SyntheticSpec::default()
        };
        let cfg = PoolConfig {
            queue_capacity: 3,
            max_batch_requests: 1,
            // Long enough to queue everything below before the held batch
            // is found stuck, on a busy machine too.
            stuck_base: Duration::from_millis(1500),
            stuck_per_token: Duration::ZERO,
            ..common::config(1)
        };
        let pool = common::ready_pool(spec, cfg).await;
        // Item 0 hangs in its first run (it succeeds when retried); 1 and 2
        // queue behind it (the mailbox is then full); 3 and 4 wait in line.
        let (gate, hold) = common::hold(&pool).await;
        let mut calls = Vec::new();
        for id in 1..=4u64 {
            let p = pool.clone();
            calls.push(tokio::spawn(async move {
                p.call(Item::new(id)).await.map_err(PoolError::from)
            }));
            common::eventually(Duration::from_secs(5), "in order", || {
                let pool = pool.clone();
                async move {
                    let h = pool.health().await.unwrap();
                    (h.total_depth() + h.waiting == id as usize + 1).then_some(())
                }
            })
            .await;
        }
        let h = pool.health().await.unwrap();
        assert_eq!((h.total_depth(), h.waiting), (3, 2), "{h:?}");
        // The watchdog retires the worker; its replacement serves the line.
        assert_eq!(hold.await.unwrap(), Ok(0));
        for (k, c) in calls.into_iter().enumerate() {
            assert_eq!(c.await.unwrap(), Ok(k as u64 + 1));
        }
        assert_eq!(
            *log.lock(),
            [0, 0, 1, 2, 3, 4],
            "item 0's hung run, then the taken-back requests in their order, then the waiters"
        );
        let stats = pool.stats().await.unwrap();
        assert_eq!(
            (stats.stuck_detected, stats.retries, stats.rerouted),
            (1, 1, 2)
        );
        gate.open();
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
