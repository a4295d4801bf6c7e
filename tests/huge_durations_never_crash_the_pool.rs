//! Every duration a caller or a configuration passes in is data: `Duration::MAX`
//! on every public method that takes one, and in the configuration's
//! budgets, never overflows an `Instant` inside the supervisor. The pool goes
//! on answering.

mod common;

use std::time::Duration;

use corral::synthetic::{Fault, FaultKind, Item, SyntheticSpec};
use corral::Call;
use corral::{Health, PoolConfig, PoolError, Submit};

const MAX: Duration = Duration::MAX;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_max_everywhere_under_load() {
    common::within(Duration::from_secs(30), "test", async {
        let cfg = PoolConfig {
            queue_capacity: 1,
            max_batch_requests: 1,
            reroute_wait: MAX,
            stuck_base: MAX,
            stuck_per_token: MAX,
            load_timeout: MAX,
            restart_window: MAX,
            restart_backoff_max: MAX,
            max_restarts: 0,
            ..common::config(1)
        };
        let pool = common::ready_pool(SyntheticSpec::default(), cfg).await;
        pool.wait_ready(MAX).await.unwrap();
        let (gate, hold) = common::hold(&pool).await;

        // Under load: the single-input calls wait in the line with deadlines
        // a century away; the batch is queued in the worker's batch class.
        let waiting = {
            let (a, b, c) = (pool.clone(), pool.clone(), pool.clone());
            [
                tokio::spawn(async move {
                    a.call_timeout(Item::new(1), MAX)
                        .await
                        .map_err(PoolError::from)
                }),
                tokio::spawn(async move {
                    b.call_batch_timeout(vec![Item::new(2), Item::new(3)], MAX)
                        .await
                        .map_err(PoolError::from)
                        .map(|v| v[0])
                }),
                tokio::spawn(async move {
                    c.submit(Submit::wait(vec![Item::new(4)], MAX).within(MAX))
                        .await
                        .map(|v| v[0])
                        .map_err(PoolError::from)
                }),
            ]
        };
        common::eventually(Duration::from_secs(5), "two waiting, one queued", || {
            let pool = pool.clone();
            async move {
                let h = pool.health().await.unwrap();
                (h.waiting == 2 && h.total_depth() == 2).then_some(())
            }
        })
        .await;
        // The supervisor is alive and answering.
        assert_eq!(pool.health().await.unwrap().health, Health::Healthy);
        gate.open();
        hold.await.unwrap().unwrap();
        for (w, want) in waiting.into_iter().zip([1, 2, 4]) {
            assert_eq!(w.await.unwrap(), Ok(want));
        }

        // A panic with `max_restarts: 0` backs off with a `MAX` cap (and
        // retries with a `MAX` reroute wait): clamped, not a crash.
        let r = pool
            .try_call(Item::faulty(9, Fault::once(FaultKind::Panic)))
            .await
            .map_err(PoolError::from);
        assert!(r.is_err() || r == Ok(9));
        assert!(pool.stats().await.is_ok(), "the supervisor survived");

        let report = pool.shutdown(MAX).await.unwrap();
        assert!(report.aborted <= 1);
    })
    .await;
}
