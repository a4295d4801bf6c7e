//! `PoolHandle::load` (what a cluster router reads per request) tells the
//! truth: permits in flight against the pool's whole capacity, ready
//! workers, the measured time between completions, and draining.

mod common;

use std::time::Duration;

use corral::synthetic::{Item, SyntheticSpec};
use corral::PoolConfig;
use corral::{Call, PoolError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_counts_what_is_in_flight_and_learns_the_service_rate() {
    common::within(Duration::from_secs(30), "test", async {
        let cfg = PoolConfig {
            queue_capacity: 2,
            batch_queue_capacity: 1,
            max_waiting: 3,
            max_batch_requests: 1,
            ..common::config(2)
        };
        let per_item = Duration::from_millis(20);
        let pool = common::ready_pool(SyntheticSpec::with_per_item(per_item), cfg.clone()).await;
        let idle = pool.load();
        assert_eq!(idle.capacity, cfg.door_limit());
        assert_eq!(idle.in_flight, 0);
        assert_eq!(idle.ready_workers, 2);
        assert!(!idle.draining);

        // Two workers of 20 ms each finish a request every ~10 ms between
        // them once both are busy.
        let mut calls = vec![];
        for id in 0..6 {
            let p = pool.clone();
            calls.push(tokio::spawn(async move {
                p.call(Item::new(id)).await.map_err(PoolError::from)
            }));
        }
        for c in calls {
            c.await.unwrap().unwrap();
        }
        common::eventually(Duration::from_secs(5), "service rate measured", || {
            let pool = pool.clone();
            async move {
                let l = pool.load();
                (l.per_request >= per_item / 4 && l.per_request <= per_item).then_some(())
            }
        })
        .await;

        // Held requests are in flight, and leave when answered.
        let (gate, hold) = common::hold(&pool).await;
        assert_eq!(pool.load().in_flight, 1);
        gate.open();
        hold.await.unwrap().unwrap();
        common::eventually(Duration::from_secs(5), "permit released", || {
            let pool = pool.clone();
            async move { (pool.load().in_flight == 0).then_some(()) }
        })
        .await;

        let p = pool.clone();
        let (gate, hold) = common::hold(&pool).await;
        let shut = tokio::spawn(async move { p.shutdown(Duration::from_secs(5)).await });
        common::eventually(Duration::from_secs(5), "draining published", || {
            let pool = pool.clone();
            async move { pool.load().draining.then_some(()) }
        })
        .await;
        gate.open();
        hold.await.unwrap().unwrap();
        shut.await.unwrap().unwrap();
    })
    .await;
}
