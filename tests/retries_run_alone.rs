//! Requests retried after their worker failed mid-batch run alone, so a
//! poisonous input — one that crashes every batch it is in — fails only its
//! own request: the others in its batch succeed on their retry. A pool that
//! retried the whole batch together would crash again and fail them all.

mod common;

use std::sync::Arc;
use std::time::Duration;

use corral::synthetic::{Fault, FaultKind, Item, SyntheticSpec};
use corral::Call;
use corral::{PoolConfig, PoolError};
use parking_lot::Mutex;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisonous_input_retried_after_a_crash_fails_only_itself() {
    common::within(Duration::from_secs(20), "retries run alone", async {
        let run_log = Arc::new(Mutex::new(Vec::new()));
        let spec = SyntheticSpec {
            run_log: Some(run_log.clone()),
            ..SyntheticSpec::default()
        };
        let cfg = PoolConfig {
            max_retries: 1,
            ..common::config(1)
        };
        let pool = common::ready_pool(spec, cfg).await;
        // Queue three requests behind a held one, so that they run as one
        // batch; request 2 panics every time it runs.
        let (gate, held) = common::hold(&pool).await;
        let mut calls = Vec::new();
        for id in 1..=3u64 {
            let item = if id == 2 {
                Item::faulty(id, Fault::always(FaultKind::Panic))
            } else {
                Item::new(id)
            };
            let p = pool.clone();
            calls.push(tokio::spawn(async move {
                p.try_call(item).await.map_err(PoolError::from)
            }));
        }
        common::eventually(Duration::from_secs(5), "three queued", || {
            let pool = pool.clone();
            async move { (pool.health().await.unwrap().total_depth() == 4).then_some(()) }
        })
        .await;
        gate.open();
        assert_eq!(held.await.unwrap().unwrap(), 0);

        let mut answers = Vec::new();
        for c in calls {
            answers.push(c.await.unwrap());
        }
        assert_eq!(
            answers[0],
            Ok(1),
            "an innocent request failed with the poisonous one"
        );
        assert_eq!(
            answers[2],
            Ok(3),
            "an innocent request failed with the poisonous one"
        );
        assert!(
            matches!(&answers[1], Err(PoolError::Backend(m)) if m.contains("panic")),
            "the poisonous request gets its own panic: {:?}",
            answers[1]
        );

        // The held request, then 1, 2, 3 together (in whatever order they
        // arrived), then each retried once.
        let log = run_log.lock().clone();
        assert_eq!(log.len(), 7, "{log:?}");
        assert_eq!(log[0], 0);
        for run in [&log[1..4], &log[4..]] {
            let mut ids = run.to_vec();
            ids.sort_unstable();
            assert_eq!(ids, [1, 2, 3], "{log:?}");
        }
        let stats = pool.stats().await.unwrap();
        assert_eq!(stats.panics, 2, "the first batch, then request 2 alone");
        assert_eq!(stats.retries, 3);
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
