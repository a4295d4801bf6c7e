//! The stuck-batch budget is `stuck_base + stuck_per_token × cost`: a
//! costly batch may run longer than the base before its worker is deemed
//! stuck, and a cheap one may not.

mod common;

use std::time::Duration;

use corral::synthetic::{Fault, FaultKind, Item, SyntheticSpec};
use corral::Call;
use corral::{PoolConfig, PoolError};

const BASE: Duration = Duration::from_millis(100);
const PER_TOKEN: Duration = Duration::from_millis(50);

fn cfg() -> PoolConfig {
    PoolConfig {
        stuck_base: BASE,
        stuck_per_token: PER_TOKEN,
        max_retries: 0,
        ..common::config(1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_costly_batch_runs_past_the_base_budget_without_being_stuck() {
    common::within(Duration::from_secs(20), "costly batch", async {
        let pool = common::ready_pool(SyntheticSpec::default(), cfg()).await;
        // Cost 10: a budget of 100 ms + 10 × 50 ms = 600 ms; it takes 300.
        let item = Item::faulty(1, Fault::once(FaultKind::Delay(BASE * 3))).costing(10);
        assert_eq!(pool.try_call(item).await.map_err(PoolError::from), Ok(1));
        let stats = pool.stats().await.unwrap();
        assert_eq!(stats.stuck_detected, 0, "detected inside its budget");
        assert_eq!(stats.restarts, 0);
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheap_batch_past_its_budget_is_stuck() {
    common::within(Duration::from_secs(20), "cheap batch", async {
        let spec = SyntheticSpec::default();
        let pool = common::ready_pool(spec.clone(), cfg()).await;
        // Cost 1: a budget of 150 ms; it hangs.
        let item = Item::faulty(1, Fault::once(FaultKind::Hang));
        assert_eq!(
            pool.try_call(item).await.map_err(PoolError::from),
            Err(PoolError::WorkerLost)
        );
        let stats = pool.stats().await.unwrap();
        assert_eq!(stats.stuck_detected, 1);
        spec.hang_release.open();
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
