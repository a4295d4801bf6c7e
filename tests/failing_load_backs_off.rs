//! A backend whose load always fails must not spin: past `max_restarts`
//! within `restart_window`, restarts back off exponentially (with jitter)
//! and health reports `Degraded`.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use corral::synthetic::{Item, Synthetic, SyntheticSpec};
use corral::Call;
use corral::{Health, Pool, PoolConfig, PoolError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_failing_load_backs_off_and_reports_degraded() {
    common::within(
        Duration::from_secs(30),
        "always_failing_load_backs_off_and_reports_degraded",
        always_failing_load_backs_off_and_reports_degraded_body(),
    )
    .await;
}

async fn always_failing_load_backs_off_and_reports_degraded_body() {
    let spec = SyntheticSpec::default();
    spec.failing_loads.store(usize::MAX, Ordering::Relaxed);
    let cfg = PoolConfig {
        max_restarts: 3,
        restart_window: Duration::from_secs(60),
        restart_backoff_base: Duration::from_millis(100),
        restart_backoff_max: Duration::from_millis(400),
        ..common::config(1)
    };
    let start = Instant::now();
    let pool = Pool::<Synthetic>::spawn(spec.clone(), cfg).await.unwrap();

    // 1 first load + 3 immediate restarts; then backoffs of about 100, 200,
    // 400, 400 ms (× 0.5–1.5 jitter).
    let loads = || spec.loads.load(Ordering::Relaxed);
    common::eventually(Duration::from_secs(5), "4 loads", || async {
        (loads() >= 4).then_some(())
    })
    .await;
    let t4 = Instant::now();
    let h = pool.health().await.unwrap();
    assert_eq!(h.health, Health::Degraded);
    assert!(matches!(
        pool.try_call(Item::new(1)).await.map_err(PoolError::from),
        Err(PoolError::Overloaded { .. })
    ));

    common::eventually(Duration::from_secs(5), "7 loads", || async {
        (loads() >= 7).then_some(())
    })
    .await;
    let backoff = t4.elapsed();
    // Three backed-off restarts: at least (100 + 200 + 400) × 0.5 ms.
    assert!(
        backoff >= Duration::from_millis(350),
        "no backoff: {backoff:?}"
    );
    // A busy loop would have made thousands of attempts by now.
    let elapsed = start.elapsed();
    let attempts = loads();
    assert!(
        attempts <= 4 + 1 + elapsed.as_millis() as usize / 50,
        "{attempts} loads in {elapsed:?}"
    );
    // The seventh failure is counted when the supervisor hears of it, a
    // moment after the load itself began: wait for it, with a deadline.
    common::eventually(Duration::from_secs(5), "7 load failures counted", || {
        let pool = pool.clone();
        async move { (pool.stats().await.unwrap().load_failures >= 7).then_some(()) }
    })
    .await;
    assert_eq!(pool.health().await.unwrap().health, Health::Degraded);

    // Once loads succeed again, the pool heals.
    spec.failing_loads.store(0, Ordering::Relaxed);
    pool.wait_ready(Duration::from_secs(5)).await.unwrap();
    assert_eq!(pool.health().await.unwrap().health, Health::Healthy);
    assert_eq!(
        pool.try_call(Item::new(2)).await.map_err(PoolError::from),
        Ok(2)
    );
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}
