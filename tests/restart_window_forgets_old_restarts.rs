//! Restart intensity is counted within `restart_window`: with one restart
//! allowed per window, a second failure inside the window backs off, but a
//! second failure after the window has passed is replaced at once.

mod common;

use std::time::{Duration, Instant};

use corral::synthetic::{Fault, FaultKind, Item, SyntheticSpec};
use corral::Call;
use corral::{Health, PoolConfig, PoolError, PoolHandle};

const WINDOW: Duration = Duration::from_millis(300);
/// Far longer than an immediate restart takes: a backed-off restart waits
/// at least half of it.
const BACKOFF: Duration = Duration::from_secs(2);

fn cfg() -> PoolConfig {
    PoolConfig {
        max_restarts: 1,
        restart_window: WINDOW,
        restart_backoff_base: BACKOFF,
        restart_backoff_max: BACKOFF,
        max_retries: 0,
        ..common::config(1)
    }
}

/// Crashes the worker and returns how long its replacement took to be
/// ready.
async fn crash_and_time_replacement(pool: &PoolHandle<corral::synthetic::Synthetic>) -> Duration {
    let r = pool
        .try_call(Item::faulty(1, Fault::once(FaultKind::Panic)))
        .await
        .map_err(PoolError::from);
    assert!(matches!(r, Err(PoolError::Backend(_))), "{r:?}");
    let t = Instant::now();
    pool.wait_ready(Duration::from_secs(5)).await.unwrap();
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_are_immediate_again_once_the_window_has_passed() {
    common::within(Duration::from_secs(20), "window reset", async {
        let pool = common::ready_pool(SyntheticSpec::default(), cfg()).await;
        let first = crash_and_time_replacement(&pool).await;
        assert!(
            first < BACKOFF / 4,
            "the first restart is immediate: {first:?}"
        );
        // Let the window pass: the first restart no longer counts.
        tokio::time::sleep(WINDOW + WINDOW / 2).await;
        let second = crash_and_time_replacement(&pool).await;
        assert!(
            second < BACKOFF / 4,
            "a restart after the window waited as if backing off: {second:?}"
        );
        assert_eq!(pool.stats().await.unwrap().restarts, 2);
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_restart_inside_the_window_backs_off() {
    common::within(Duration::from_secs(20), "backoff inside window", async {
        let pool = common::ready_pool(SyntheticSpec::default(), cfg()).await;
        crash_and_time_replacement(&pool).await;
        let r = pool
            .try_call(Item::faulty(2, Fault::once(FaultKind::Panic)))
            .await
            .map_err(PoolError::from);
        assert!(matches!(r, Err(PoolError::Backend(_))), "{r:?}");
        // Backing off (at least BACKOFF / 2): not ready for a good while.
        let h = pool.health().await.unwrap();
        assert_eq!(h.health, Health::Degraded);
        assert_eq!(
            pool.wait_ready(BACKOFF / 4).await,
            Err(PoolError::TimedOut),
            "replaced at once inside the window"
        );
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
