//! The pool's figures reach the `metrics` facade, labelled by pool name (and
//! the configuration's extra labels), so two pools in one process keep
//! separate series; the wait histogram, the
//! restart counter and the failure counters (by kind) move when their
//! events happen.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use corral::synthetic::{Fault, FaultKind, Item, SyntheticSpec};
use corral::Call;
use corral::PoolConfig;
use corral::PoolError;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use parking_lot::Mutex;

/// A recorder that keeps the last value of every series, keyed by name and
/// sorted labels.
#[derive(Default)]
struct Capture {
    series: Mutex<HashMap<String, Arc<Cell>>>,
}

#[derive(Default)]
struct Cell(AtomicU64);

impl CounterFn for Cell {
    fn increment(&self, v: u64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }
    fn absolute(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
}
impl GaugeFn for Cell {
    fn increment(&self, v: f64) {
        self.set(f64::from_bits(self.0.load(Ordering::Relaxed)) + v);
    }
    fn decrement(&self, v: f64) {
        self.set(f64::from_bits(self.0.load(Ordering::Relaxed)) - v);
    }
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
}
impl HistogramFn for Cell {
    fn record(&self, _v: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn key_string(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Capture {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        self.series
            .lock()
            .entry(key_string(key))
            .or_default()
            .clone()
    }
    fn counter(&self, k: &str) -> u64 {
        self.series
            .lock()
            .get(k)
            .map_or(0, |c| c.0.load(Ordering::Relaxed))
    }
    fn gauge(&self, k: &str) -> f64 {
        self.series
            .lock()
            .get(k)
            .map_or(f64::NAN, |c| f64::from_bits(c.0.load(Ordering::Relaxed)))
    }
}

struct Shared(&'static Capture);

impl Recorder for Shared {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.0.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.0.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.0.cell(key))
    }
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let c: &'static Capture = Box::leak(Box::default());
        metrics::set_global_recorder(Shared(c)).expect("install recorder");
        c
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_publish_separate_series() {
    common::within(Duration::from_secs(20), "two pools", two_pools()).await;
}

async fn two_pools() {
    let cap = capture();
    let cfg = |name: &str| PoolConfig {
        name: name.into(),
        queue_capacity: 1,
        max_batch_requests: 1,
        ..common::config(1)
    };
    let a = common::ready_pool(SyntheticSpec::default(), cfg("a")).await;
    let b = common::ready_pool(
        SyntheticSpec::default(),
        PoolConfig {
            metric_labels: vec![("model".into(), "m-b".into())],
            ..cfg("b")
        },
    )
    .await;

    for id in 0..5 {
        a.call(Item::new(id))
            .await
            .map_err(PoolError::from)
            .unwrap();
    }
    // Fill b and get one refusal there.
    let (gate, hold) = common::hold(&b).await;
    assert!(b
        .try_call(Item::new(1))
        .await
        .map_err(PoolError::from)
        .is_err());
    common::eventually(Duration::from_secs(5), "depth gauge of b is 1", || async {
        (cap.gauge("corral_worker_depth{model=m-b,pool=b,slot=0}") == 1.0).then_some(())
    })
    .await;
    gate.open();
    hold.await.unwrap().unwrap();

    assert_eq!(cap.counter("corral_admitted_total{pool=a}"), 5);
    assert_eq!(cap.counter("corral_admitted_total{model=m-b,pool=b}"), 1);
    assert_eq!(
        cap.counter("corral_rejected_total{model=m-b,pool=b,reason=overloaded}"),
        1
    );
    assert_eq!(
        cap.counter("corral_rejected_total{pool=a,reason=overloaded}"),
        0
    );
    common::eventually(Duration::from_secs(5), "processed counters", || async {
        (cap.counter("corral_processed_total{pool=a}") == 5
            && cap.counter("corral_processed_total{model=m-b,pool=b}") == 1)
            .then_some(())
    })
    .await;
    a.shutdown(Duration::from_secs(5)).await.unwrap();
    b.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_restarts_and_failures_are_published() {
    common::within(Duration::from_secs(20), "event series", async {
        let cap = capture();
        let cfg = PoolConfig {
            name: "events".into(),
            queue_capacity: 1,
            max_batch_requests: 1,
            ping_timeout: Duration::from_millis(100),
            max_retries: 0,
            ..common::config(1)
        };
        let spec = SyntheticSpec::default();
        let pool = common::ready_pool(spec.clone(), cfg).await;

        // Two callers wait for room: two samples in the wait histogram.
        let (gate, held) = common::hold(&pool).await;
        let mut waiters = Vec::new();
        for id in 1..=2u64 {
            let p = pool.clone();
            waiters.push(tokio::spawn(async move {
                p.call_timeout(Item::new(id), Duration::from_secs(10))
                    .await
                    .map_err(PoolError::from)
            }));
        }
        common::eventually(Duration::from_secs(5), "two waiting", || {
            let pool = pool.clone();
            async move { (pool.health().await.unwrap().waiting == 2).then_some(()) }
        })
        .await;
        assert_eq!(
            cap.counter("corral_backpressure_wait_seconds{pool=events}"),
            0
        );
        gate.open();
        held.await.unwrap().unwrap();
        for w in waiters {
            w.await.unwrap().unwrap();
        }
        assert_eq!(
            cap.counter("corral_backpressure_wait_seconds{pool=events}"),
            2,
            "one wait sample per admitted waiter"
        );

        // A panic, then a deadlocked worker actor: one failure of each kind,
        // two restarts.
        assert_eq!(cap.counter("corral_worker_restarts_total{pool=events}"), 0);
        let r = pool
            .try_call(Item::faulty(3, Fault::once(FaultKind::Panic)))
            .await
            .map_err(PoolError::from);
        assert!(matches!(r, Err(PoolError::Backend(_))), "{r:?}");
        pool.wait_ready(Duration::from_secs(5)).await.unwrap();
        pool.inject_actor_freeze(0);
        common::eventually(Duration::from_secs(5), "deadlock detected", || {
            let pool = pool.clone();
            async move { (pool.stats().await.unwrap().deadlocks_detected == 1).then_some(()) }
        })
        .await;
        pool.wait_ready(Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            cap.counter("corral_worker_failures_total{kind=panic,pool=events}"),
            1
        );
        assert_eq!(
            cap.counter("corral_worker_failures_total{kind=deadlock,pool=events}"),
            1
        );
        assert_eq!(
            cap.counter("corral_worker_failures_total{kind=stuck,pool=events}"),
            0
        );
        assert_eq!(cap.counter("corral_worker_restarts_total{pool=events}"), 2);
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
