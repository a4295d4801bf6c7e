//! `Pool::spawn_with_router` routes with the policy it is given — and a
//! policy that picks a worker without room (or one that does not exist)
//! cannot break the bound: the request is refused instead.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral::synthetic::{Item, Synthetic, SyntheticSpec};
use corral::Call;
use corral::{Pool, PoolConfig, PoolError, Router, WorkerLoad};

/// Always the last worker, room or not; counts its calls.
struct Last(Arc<AtomicUsize>);

impl Router for Last {
    fn pick(&mut self, loads: &[WorkerLoad]) -> Option<usize> {
        self.0.fetch_add(1, Ordering::Relaxed);
        loads.len().checked_sub(1)
    }
}

/// A worker that does not exist.
struct OutOfRange;

impl Router for OutOfRange {
    fn pick(&mut self, loads: &[WorkerLoad]) -> Option<usize> {
        Some(loads.len() + 7)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_given_router_decides_and_cannot_break_the_bound() {
    common::within(Duration::from_secs(20), "custom router", async {
        let picks = Arc::new(AtomicUsize::new(0));
        let cfg = PoolConfig {
            queue_capacity: 1,
            ..common::config(2)
        };
        let pool = Pool::<Synthetic>::spawn_with_router(
            SyntheticSpec::default(),
            cfg,
            Last(picks.clone()),
        )
        .await
        .unwrap();
        pool.wait_ready(Duration::from_secs(10)).await.unwrap();
        for id in 0..10u64 {
            assert_eq!(
                pool.call(Item::new(id)).await.map_err(PoolError::from),
                Ok(id)
            );
        }
        let stats = pool.stats().await.unwrap();
        let processed: Vec<u64> = stats.workers.iter().map(|w| w.processed).collect();
        assert_eq!(processed, [0, 10], "every request went to the last worker");
        assert!(picks.load(Ordering::Relaxed) >= 10);

        // The last worker full, the first idle: the router insists on the
        // full one, and the pool refuses rather than overfill it.
        let (gate, held) = common::hold(&pool).await;
        let r = pool.try_call(Item::new(99)).await.map_err(PoolError::from);
        assert!(matches!(r, Err(PoolError::Overloaded { .. })), "{r:?}");
        let h = pool.health().await.unwrap();
        assert_eq!(
            h.workers.iter().map(|w| w.queue_depth).collect::<Vec<_>>(),
            [0, 1]
        );
        gate.open();
        assert_eq!(held.await.unwrap().unwrap(), 0);
        pool.shutdown(Duration::from_secs(5)).await.unwrap();

        // A router that names no real worker: refused, never a panic.
        let pool = Pool::<Synthetic>::spawn_with_router(
            SyntheticSpec::default(),
            common::config(1),
            OutOfRange,
        )
        .await
        .unwrap();
        pool.wait_ready(Duration::from_secs(10)).await.unwrap();
        let r = pool.try_call(Item::new(1)).await.map_err(PoolError::from);
        assert!(matches!(r, Err(PoolError::Overloaded { .. })), "{r:?}");
        assert_eq!(pool.stats().await.unwrap().admitted, 0);
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
