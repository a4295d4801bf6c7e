//! `Overloaded { retry_after }` says when a slot is expected to free: the
//! soonest any ready worker finishes a request, from its measured service
//! time (100 ms before anything is measured). Health reports the same
//! estimate.

mod common;

use std::time::Duration;

use corral::synthetic::{Item, SyntheticSpec};
use corral::Call;
use corral::{PoolConfig, PoolError};

const PER_ITEM: Duration = Duration::from_millis(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_the_measured_service_time() {
    common::within(Duration::from_secs(20), "retry_after", async {
        let cfg = PoolConfig {
            queue_capacity: 1,
            max_waiting: 1,
            ..common::config(1)
        };
        let pool = common::ready_pool(SyntheticSpec::with_per_item(PER_ITEM), cfg).await;
        // Nothing measured yet: the default.
        assert_eq!(
            pool.health().await.unwrap().retry_after,
            Duration::from_millis(100)
        );

        // Measure: a few requests of about 5 ms each.
        for id in 0..5u64 {
            assert_eq!(
                pool.call(Item::new(id)).await.map_err(PoolError::from),
                Ok(id)
            );
        }
        let (gate, held) = common::hold(&pool).await;
        let retry_after = match pool.try_call(Item::new(9)).await.map_err(PoolError::from) {
            Err(PoolError::Overloaded { retry_after }) => retry_after,
            r => panic!("expected Overloaded, got {r:?}"),
        };
        assert!(
            retry_after >= PER_ITEM && retry_after < 10 * PER_ITEM,
            "retry_after {retry_after:?} is not the measured ~{PER_ITEM:?}"
        );
        let health = pool.health().await.unwrap().retry_after;
        assert_eq!(health, retry_after, "health gives the same estimate");
        gate.open();
        held.await.unwrap().unwrap();
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
