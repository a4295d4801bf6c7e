//! If the supervisor itself dies — a panic in one of its handlers, after
//! which ractor stops it without `post_stop` — nothing it held is leaked:
//! every caller (running, queued in a mailbox, waiting in the line) gets an
//! answer (`WorkerLost` or `ShuttingDown`), and the compute threads exit.

mod common;

use std::time::Duration;

use corral::synthetic::{Item, SyntheticSpec};
use corral::Call;
use corral::{PoolConfig, PoolError, Refusal};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_panic_answers_every_caller_and_frees_the_threads() {
    common::within(Duration::from_secs(20), "test", async {
        let cfg = PoolConfig {
            name: "spx".into(),
            queue_capacity: 3,
            max_batch_requests: 1,
            ..common::config(2)
        };
        let pool = common::ready_pool(SyntheticSpec::default(), cfg).await;
        let threads = || {
            common::thread_names()
                .iter()
                .filter(|n| n.starts_with("spx-w"))
                .count()
        };
        assert_eq!(threads(), 2);
        common::warm_up(&pool).await;
        // Hold both workers, fill both mailboxes, and put two in the line.
        let (g1, h1) = common::hold(&pool).await;
        let (g2, h2) = common::hold(&pool).await;
        let mut calls = vec![h1, h2];
        for id in 1..=6u64 {
            let p = pool.clone();
            calls.push(tokio::spawn(async move {
                p.call_timeout(Item::new(id), Duration::from_secs(60))
                    .await
                    .map_err(PoolError::from)
            }));
        }
        common::eventually(
            Duration::from_secs(5),
            "mailboxes full, two waiting",
            || {
                let pool = pool.clone();
                async move {
                    let h = pool.health().await.unwrap();
                    (h.total_depth() == 6 && h.waiting == 2).then_some(())
                }
            },
        )
        .await;

        pool.inject_supervisor_panic();
        for call in calls {
            let r = common::within(Duration::from_secs(5), "answered after the panic", call)
                .await
                .unwrap();
            assert!(
                matches!(r, Err(PoolError::WorkerLost | PoolError::ShuttingDown)),
                "{r:?}"
            );
        }
        // The held threads finish their batch, find the mailbox closed, exit.
        g1.open();
        g2.open();
        common::eventually(Duration::from_secs(5), "compute threads exited", || async {
            (threads() == 0).then_some(())
        })
        .await;
        assert!(pool.health().await.is_err(), "the supervisor is gone");
        let e = pool.try_call(Item::new(99)).await.unwrap_err();
        assert_eq!(e.refusal(), Some(&Refusal::ShuttingDown), "{e:?}");
        assert_eq!(e.into_inputs().map(|i| i.id), Some(99), "it never ran");
    })
    .await;
}
