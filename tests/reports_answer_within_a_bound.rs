//! No call waits without limit, the reports included: `health()` and
//! `stats()` — on the handle and on a host actor's `PoolRef` — answer
//! `TimedOut` after `REPORT_TIMEOUT` when the supervisor does not answer,
//! and answer normally again once it does.

mod common;

use std::time::Duration;

use corral::synthetic::SyntheticSpec;
use corral::{PoolError, REPORT_TIMEOUT};

#[tokio::test]
async fn reports_time_out_when_the_supervisor_stops_answering() {
    let pool = common::ready_pool(SyntheticSpec::default(), common::config(1)).await;
    let host = pool.pool_ref();
    // From here on the clock moves only when every task is idle, so the
    // bound is met in virtual time and the test takes milliseconds.
    tokio::time::pause();
    let release = pool.inject_supervisor_stall();
    let start = tokio::time::Instant::now();
    let (h, s, hh, hs) = common::within(REPORT_TIMEOUT * 2, "the reports answer", async {
        tokio::join!(pool.health(), pool.stats(), host.health(), host.stats())
    })
    .await;
    let waited = start.elapsed();
    assert_eq!(h.map(|_| ()), Err(PoolError::TimedOut));
    assert_eq!(s.map(|_| ()), Err(PoolError::TimedOut));
    assert_eq!(hh.map(|_| ()), Err(PoolError::TimedOut));
    assert_eq!(hs.map(|_| ()), Err(PoolError::TimedOut));
    assert!(
        waited >= REPORT_TIMEOUT && waited < REPORT_TIMEOUT + Duration::from_secs(1),
        "answered after {waited:?}, bound {REPORT_TIMEOUT:?}"
    );

    // The supervisor answers again: so do the reports.
    drop(release);
    tokio::time::resume();
    assert_eq!(pool.health().await.unwrap().workers.len(), 1);
    pool.stats().await.unwrap();
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn shutdown_answers_timeout_when_the_drain_is_never_reported() {
    let pool = common::ready_pool(SyntheticSpec::default(), common::config(1)).await;
    tokio::time::pause();
    let release = pool.inject_supervisor_stall();
    let start = tokio::time::Instant::now();
    let deadline = Duration::from_secs(2);
    let report = common::within(
        deadline + REPORT_TIMEOUT * 2,
        "shutdown answers",
        pool.shutdown(deadline),
    )
    .await;
    assert_eq!(report.map(|_| ()), Err(PoolError::TimedOut));
    let waited = start.elapsed();
    assert!(
        waited >= deadline + REPORT_TIMEOUT && waited < deadline + REPORT_TIMEOUT * 2,
        "{waited:?}"
    );
    drop(release);
    tokio::time::resume();
    // The shutdown went on: the pool stops.
    common::eventually(Duration::from_secs(10), "the pool stops", || {
        let pool = pool.clone();
        async move { (pool.health().await == Err(PoolError::ShuttingDown)).then_some(()) }
    })
    .await;
}
