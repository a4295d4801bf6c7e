//! 100,000 `try_call` calls at once against 2 workers (capacity 100 each,
//! 1 ms per item): every call gets exactly one answer, `Ok` or `Overloaded`;
//! no worker's depth ever exceeds its bound; memory stays bounded.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral::synthetic::{Item, SyntheticSpec};
use corral::PoolError;

const CALLS: u64 = 100_000;

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_try_call_is_answered_once_each_and_stays_bounded() {
    let spec = SyntheticSpec::with_per_item(Duration::from_millis(1));
    let cfg = common::config(2);
    let cap = cfg.queue_capacity;
    let pool = common::ready_pool(spec.clone(), cfg).await;
    let rss_before = rss_kib("VmRSS:");

    // Watch every worker's depth for the whole flood.
    let done = Arc::new(AtomicBool::new(false));
    let max_depth = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (pool, done, max_depth) = (pool.clone(), done.clone(), max_depth.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Acquire) {
                let h = pool.health().await.unwrap();
                for w in &h.workers {
                    max_depth.fetch_max(w.queue_depth, Ordering::Relaxed);
                }
                tokio::task::yield_now().await;
            }
        })
    };

    let mut set = tokio::task::JoinSet::new();
    for id in 0..CALLS {
        let pool = pool.clone();
        set.spawn(async move {
            (
                id,
                pool.try_call(Item::new(id)).await.map_err(PoolError::from),
            )
        });
    }
    let (mut ok, mut overloaded) = (0u64, 0u64);
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            (id, Ok(out)) => {
                assert_eq!(out, id, "answer reached the wrong caller");
                ok += 1;
            }
            (_, Err(PoolError::Overloaded { retry_after })) => {
                assert!(retry_after > Duration::ZERO);
                overloaded += 1;
            }
            (_, Err(e)) => panic!("unexpected error {e}"),
        }
    }
    done.store(true, Ordering::Release);
    watcher.await.unwrap();
    let rss_peak = rss_kib("VmHWM:");

    assert_eq!(ok + overloaded, CALLS, "every call answered exactly once");
    assert!(
        ok >= 2 * cap as u64,
        "at least the mailboxes' worth ran: {ok}"
    );
    assert!(overloaded > 0, "a flood this size must be refused in part");
    assert!(
        max_depth.load(Ordering::Relaxed) <= cap,
        "a worker's depth exceeded its bound: {}",
        max_depth.load(Ordering::Relaxed)
    );
    let stats = pool.stats().await.unwrap();
    assert_eq!(stats.admitted, ok, "admitted = answered Ok");
    assert_eq!(spec.items.load(Ordering::Relaxed), ok);
    // 100k tasks and their futures are the test's own; the pool adds at most
    // its bounded queues. 256 MiB is far above both and far below what an
    // unbounded queue of 100k requests plus their tasks would pin.
    let growth_mib = rss_peak.saturating_sub(rss_before) / 1024;
    assert!(growth_mib < 256, "peak RSS grew by {growth_mib} MiB");
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}
