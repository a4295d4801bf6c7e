//! A model load that runs past `load_timeout` is given up on: its thread is
//! abandoned (and counted), the load is retried on a fresh thread, and the
//! pool becomes ready without waiting for the hung one.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use corral::synthetic::{Item, Synthetic, SyntheticSpec};
use corral::Call;
use corral::{Health, Pool, PoolConfig, PoolError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_past_its_timeout_is_abandoned_and_retried() {
    common::within(Duration::from_secs(20), "hung load", async {
        let spec = SyntheticSpec::default();
        spec.hanging_loads.store(1, Ordering::Relaxed);
        let load_timeout = Duration::from_millis(200);
        let cfg = PoolConfig {
            load_timeout,
            ..common::config(1)
        };
        let start = Instant::now();
        let pool = Pool::<Synthetic>::spawn(spec.clone(), cfg).await.unwrap();
        common::arrived(&spec.hang_release, 1).await;
        pool.wait_ready(Duration::from_secs(5)).await.unwrap();
        let ready_after = start.elapsed();
        assert!(
            ready_after >= load_timeout,
            "ready before the hung load's timeout: {ready_after:?}"
        );
        assert!(!spec.hang_release.is_open(), "the hung load is still hung");
        assert_eq!(spec.loads.load(Ordering::Relaxed), 2);
        let stats = pool.stats().await.unwrap();
        assert_eq!(stats.load_failures, 1);
        assert_eq!(stats.abandoned_threads, 1, "the hung load's thread");
        assert_eq!(
            pool.try_call(Item::new(1)).await.map_err(PoolError::from),
            Ok(1)
        );

        // Once the hung load returns, its thread exits by itself.
        spec.hang_release.open();
        common::eventually(Duration::from_secs(5), "no abandoned threads", || {
            let pool = pool.clone();
            async move { (pool.stats().await.unwrap().abandoned_threads == 0).then_some(()) }
        })
        .await;
        assert_eq!(pool.health().await.unwrap().health, Health::Healthy);
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
