//! Least-loaded means least expected wait. With one worker much slower,
//! routing by depth alone keeps both mailboxes equally deep, and everything
//! sent to the slow worker waits ~20× longer (measured before: the slow
//! worker took 5% of requests and all of the slowest 1%). Routed by depth
//! weighted by service time, the whole run's p99 stays within 2× of what the
//! fast worker alone gives — whichever slot the slow worker is in. Each pair
//! of runs goes side by side, at the same time, so that a busy machine
//! slows both alike.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral::synthetic::{Item, Synthetic, SyntheticSpec};
use corral::{Call, PoolError};
use corral::{LeastDepth, Pool, PoolConfig, Router};
use parking_lot::Mutex;

const FAST: Duration = Duration::from_millis(2);
/// 50× FAST: on a busy machine a 2 ms sleep can take 5, and the slow worker
/// must still measure well over the 8 callers' depth times slower, or
/// routing by expected wait rightly sends it work.
const SLOW: Duration = Duration::from_millis(100);
const CALLERS: usize = 8;
const PER_CALLER: usize = 40;

/// Closed-loop callers; returns the p99 latency.
async fn p99_of(per_item_by_worker: Vec<Duration>, router: Option<LeastDepth>) -> Duration {
    let spec = SyntheticSpec {
        per_item: FAST,
        per_item_by_worker: per_item_by_worker.clone(),
        ..SyntheticSpec::default()
    };
    let cfg = PoolConfig {
        max_batch_requests: 1,
        ..common::config(per_item_by_worker.len())
    };
    let pool = match router {
        Some(r) => Pool::<Synthetic>::spawn_with_router(spec, cfg, r)
            .await
            .unwrap(),
        None => Pool::spawn(spec, cfg).await.unwrap(),
    };
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();
    // Warm-up, one call at a time: idle workers tie, so each one serves and
    // is measured before the timed run.
    for id in 0..10 {
        pool.call(Item::new(id))
            .await
            .map_err(PoolError::from)
            .unwrap();
    }
    let lat = Arc::new(Mutex::new(Vec::new()));
    let mut set = tokio::task::JoinSet::new();
    for c in 0..CALLERS {
        let (pool, lat) = (pool.clone(), lat.clone());
        set.spawn(async move {
            for k in 0..PER_CALLER {
                let t = Instant::now();
                let id = (c * PER_CALLER + k) as u64;
                assert_eq!(
                    pool.call(Item::new(id))
                        .await
                        .map_err(PoolError::from)
                        .unwrap(),
                    id
                );
                lat.lock().push(t.elapsed());
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
    let mut l = lat.lock().clone();
    l.sort();
    l[l.len() * 99 / 100]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_worker_in_either_slot_does_not_set_the_tail() {
    common::within(Duration::from_secs(60), "test", async {
        for slow_slot in [0, 1] {
            let mut times = vec![FAST, FAST];
            times[slow_slot] = SLOW;
            let (fast_alone, p99) = tokio::join!(p99_of(vec![FAST], None), p99_of(times, None));
            assert!(
                p99 <= fast_alone * 2,
                "slow worker in slot {slow_slot}: p99 {p99:?} vs the fast worker alone {fast_alone:?}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_alone_lets_the_slow_worker_set_the_tail() {
    // The same load under `LeastDepth`: the check above would fail. (This
    // pins that the test can tell the two policies apart.)
    common::within(Duration::from_secs(60), "test", async {
        let (fast_alone, p99) = tokio::join!(
            p99_of(vec![FAST], None),
            p99_of(vec![SLOW, FAST], Some(LeastDepth::default()))
        );
        assert!(p99 > fast_alone * 2, "{p99:?} vs {fast_alone:?}");
    })
    .await;
}

/// A router that records the loads the supervisor hands it.
#[derive(Clone, Default)]
struct Spy(Arc<Mutex<Vec<Vec<usize>>>>);

impl Router for Spy {
    fn pick(&mut self, loads: &[corral::WorkerLoad]) -> Option<usize> {
        self.0.lock().push(loads.iter().map(|l| l.depth).collect());
        // Always the first worker with room: depths must then differ.
        loads.iter().position(|l| l.has_room)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_sees_the_real_depths_of_a_live_pool() {
    common::within(Duration::from_secs(30), "test", async {
        let spy = Spy::default();
        let cfg = PoolConfig {
            queue_capacity: 3,
            max_batch_requests: 1,
            ..common::config(2)
        };
        let pool = Pool::<Synthetic>::spawn_with_router(SyntheticSpec::default(), cfg, spy.clone())
            .await
            .unwrap();
        pool.wait_ready(Duration::from_secs(10)).await.unwrap();
        let (gate, hold) = common::hold(&pool).await;
        let mut calls = Vec::new();
        for id in 1..=2u64 {
            let p = pool.clone();
            calls.push(tokio::spawn(async move {
                p.call(Item::new(id)).await.map_err(PoolError::from)
            }));
            common::eventually(Duration::from_secs(5), "admitted", || {
                let pool = pool.clone();
                async move {
                    (pool.health().await.unwrap().total_depth() == id as usize + 1).then_some(())
                }
            })
            .await;
        }
        // Worker 0 is full now: the next request goes to worker 1.
        assert_eq!(
            pool.call(Item::new(3))
                .await
                .map_err(PoolError::from)
                .unwrap(),
            3
        );
        let seen = spy.0.lock().clone();
        // The router saw worker 0 fill up (0, 1, 2, then 3 = full) while
        // worker 1 stayed empty. A supervisor that handed it made-up depths
        // would fail here.
        assert_eq!(seen, vec![vec![0, 0], vec![1, 0], vec![2, 0], vec![3, 0]]);
        gate.open();
        hold.await.unwrap().unwrap();
        for c in calls {
            c.await.unwrap().unwrap();
        }
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
