//! `corral-bench chaos`: open-loop load at about 80% of the pool's capacity
//! (synthetic backend) with random faults — hangs, panics, slow batches, and
//! batch errors whose isolated rerun then hangs or panics — in
//! 1% of batches, for N seconds. Every request must get exactly one
//! answer: `lost` counts the ones that did not (it must be 0).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_core::synthetic::{Chaos, Item, Synthetic, SyntheticSpec};
use corral_core::{Call, Pool, PoolConfig, PoolError};

/// Options of `corral-bench chaos`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// How long to offer load.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Workers.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Synthetic cost of one request, in milliseconds.
    #[arg(long, default_value_t = 2.0)]
    per_item_ms: f64,
    /// Offered load as a fraction of capacity (workers / per-item time).
    #[arg(long, default_value_t = 0.8)]
    load: f64,
    /// Fraction of batches that carry a fault (a hang of 2 s, a panic, or
    /// 50 ms of extra time, in equal shares).
    #[arg(long, default_value_t = 0.01)]
    fault_rate: f64,
    /// Stuck-batch budget base, in milliseconds (plus 2× the per-request
    /// cost for each request in the batch).
    #[arg(long, default_value_t = 200)]
    stuck_ms: u64,
    /// Seed for the fault draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    wrong: AtomicU64,
    overloaded: AtomicU64,
    timeout: AtomicU64,
    worker_lost: AtomicU64,
    backend: AtomicU64,
    other: AtomicU64,
}

pub(crate) async fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.per_item_ms > 0.0 && a.workers > 0,
        "per-item time and workers must be positive"
    );
    let per_item = Duration::from_secs_f64(a.per_item_ms / 1000.0);
    let capacity = a.workers as f64 / per_item.as_secs_f64();
    let rate = capacity * a.load;
    let chaos = Chaos::new(
        a.fault_rate,
        Duration::from_secs(2),
        Duration::from_millis(50),
        a.seed,
    );
    let spec = SyntheticSpec {
        chaos: Some(chaos.clone()),
        ..SyntheticSpec::with_per_item(per_item)
    };
    let cfg = PoolConfig {
        name: Arc::from("chaos"),
        workers: a.workers,
        threads_per_worker: Some(1),
        // The budget grows with the batch: twice the synthetic cost per
        // request on top of the base.
        stuck_base: Duration::from_millis(a.stuck_ms),
        stuck_per_token: per_item * 2,
        // Faults here are independent events, not a crash loop.
        max_restarts: 1_000_000,
        max_abandoned_threads: 256,
        admission_timeout: Duration::from_secs(10),
        ..PoolConfig::default()
    };
    let pool = Pool::<Synthetic>::spawn(spec.clone(), cfg).await?;
    pool.wait_ready(Duration::from_secs(10)).await?;
    println!(
        "bench chaos: {} s, {} workers, {:.1} ms/request, capacity {:.0}/s, offered {:.0}/s, faults in {:.1}% of batches",
        a.seconds,
        a.workers,
        a.per_item_ms,
        capacity,
        rate,
        a.fault_rate * 100.0
    );

    let tally = Arc::new(Tally::default());
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = 0u64;
    let tick = Duration::from_millis(10);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let end = start + Duration::from_secs(a.seconds);
    let mut owed = 0.0f64;
    while Instant::now() < end {
        interval.tick().await;
        owed += rate * tick.as_secs_f64();
        while owed >= 1.0 {
            owed -= 1.0;
            let id = sent;
            sent += 1;
            let (pool, tally) = (pool.clone(), tally.clone());
            tasks.spawn(async move {
                let counter = match pool.call(Item::new(id)).await.map_err(PoolError::from) {
                    Ok(out) if out == id => &tally.ok,
                    Ok(_) => &tally.wrong,
                    Err(PoolError::Overloaded { .. }) => &tally.overloaded,
                    Err(PoolError::TimedOut | PoolError::DeadlinePassed) => &tally.timeout,
                    Err(PoolError::WorkerLost) => &tally.worker_lost,
                    Err(PoolError::Backend(_)) => &tally.backend,
                    Err(_) => &tally.other,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            });
        }
        // Reap finished callers as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    let offered_for = start.elapsed();
    // Every request must be answered; give stragglers a deadline.
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    let unanswered = tasks.len() as u64;
    tasks.abort_all();

    let stats = pool.stats().await?;
    let t = &*tally;
    let ok = t.ok.load(Ordering::Relaxed);
    let errors = [
        &t.overloaded,
        &t.timeout,
        &t.worker_lost,
        &t.backend,
        &t.other,
    ]
    .iter()
    .map(|c| c.load(Ordering::Relaxed))
    .sum::<u64>();
    let wrong = t.wrong.load(Ordering::Relaxed);
    // Unanswered callers and answers that reached the wrong caller.
    let lost = sent - ok - errors;
    debug_assert_eq!(lost, wrong + unanswered);
    println!(
        "offered for {:.1} s; {} batches; faults injected: {} hang, {} panic, {} slow, {} error (each arming a hang or panic for the next batch, usually an isolated rerun)",
        offered_for.as_secs_f64(),
        spec.batches.load(Ordering::Relaxed),
        chaos.injected[0].load(Ordering::Relaxed),
        chaos.injected[1].load(Ordering::Relaxed),
        chaos.injected[2].load(Ordering::Relaxed),
        chaos.injected[3].load(Ordering::Relaxed),
    );
    println!(
        "errors by kind: overloaded {}, timeout {}, worker_lost {}, backend {}, other {}; wrong answers {}",
        t.overloaded.load(Ordering::Relaxed),
        t.timeout.load(Ordering::Relaxed),
        t.worker_lost.load(Ordering::Relaxed),
        t.backend.load(Ordering::Relaxed),
        t.other.load(Ordering::Relaxed),
        wrong
    );
    println!(
        "stuck {} · panics {} · retries {} · rerouted {} · isolated {} · abandoned now {}",
        stats.stuck_detected,
        stats.panics,
        stats.retries,
        stats.rerouted,
        stats.isolated,
        stats.abandoned_threads
    );
    println!("sent: {sent}");
    println!("ok: {ok}");
    println!("errors: {errors}");
    println!("lost: {lost}");
    println!("restarts: {}", stats.restarts);
    println!(
        "detection_ms_p50: {:.1}",
        stats.detection_p50.as_secs_f64() * 1e3
    );
    println!(
        "detection_ms_p99: {:.1}",
        stats.detection_p99.as_secs_f64() * 1e3
    );
    pool.shutdown(Duration::from_secs(10)).await?;
    anyhow::ensure!(lost == 0, "{lost} requests were lost");
    Ok(())
}
