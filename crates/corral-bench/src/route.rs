//! `corral-bench route`: what the pool itself costs. A no-op backend, so
//! every microsecond measured is admission, routing, the hop to the compute
//! thread and the reply. Run side by side, in the same process and with the
//! same callers, with ractor's own `factory` (`QueuerRouting`) doing the
//! same work, and with the backend called directly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use corral_core::synthetic::{Item, Synthetic, SyntheticSpec};
use corral_core::{Backend, Call, LeastDepth, LeastWait, LoadContext, Pool, PoolConfig};
use parking_lot::Mutex;
use ractor::factory::queues::DefaultQueue;
use ractor::factory::routing::QueuerRouting;
use ractor::factory::{
    DiscardSettings, Factory, FactoryArguments, FactoryMessage, Job, JobOptions, Worker,
    WorkerBuilder, WorkerId,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// Options of `corral-bench route`.
#[derive(clap::Args, Debug, Clone, Copy)]
pub(crate) struct Args {
    /// Requests per system.
    #[arg(long, default_value_t = 400_000)]
    requests: usize,
    /// Concurrent callers, each in a closed loop.
    #[arg(long, default_value_t = 64)]
    callers: usize,
    /// Workers in the pool and in the factory.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Requests for the unloaded-latency run (one caller at a time).
    #[arg(long, default_value_t = 20_000)]
    latency_requests: usize,
    /// The pool's routing policy.
    #[arg(long, value_enum, default_value_t = RouterArg::Wait)]
    router: RouterArg,
}

/// Which routing policy the pool runs.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum RouterArg {
    /// `LeastWait` (the default): depth weighted by service time.
    Wait,
    /// `LeastDepth`: depth alone.
    Depth,
}

/// Latencies of one run, and its rate.
struct Run {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

fn summarize(mut lat: Vec<Duration>, wall: Duration) -> Run {
    lat.sort_unstable();
    let q = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    Run {
        per_second: lat.len() as f64 / wall.as_secs_f64(),
        p50: q(0.5),
        p99: q(0.99),
    }
}

/// Runs `requests` calls of `call` from `callers` closed-loop tasks.
async fn drive<F, Fut>(requests: usize, callers: usize, call: F) -> anyhow::Result<Run>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<u64>> + Send,
{
    let call = Arc::new(call);
    let per_caller = requests / callers;
    let all = Arc::new(Mutex::new(Vec::with_capacity(per_caller * callers)));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for c in 0..callers {
        let (call, all) = (call.clone(), all.clone());
        set.spawn(async move {
            let mut lat = Vec::with_capacity(per_caller);
            for i in 0..per_caller {
                let id = (c * per_caller + i) as u64;
                let t = Instant::now();
                let out = call(id).await?;
                lat.push(t.elapsed());
                anyhow::ensure!(out == id, "wrong answer: {out} for {id}");
            }
            all.lock().extend(lat);
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let wall = start.elapsed();
    let lat = std::mem::take(&mut *all.lock());
    Ok(summarize(lat, wall))
}

// ---- ractor factory doing the same work ----

struct Req(Item, RpcReplyPort<u64>);

// ractor's `cluster` feature (on in this workspace for corral-cluster)
// wants every message type to say it is one; neither crosses the wire.
impl ractor::Message for Req {}

/// The worker's start argument: the loaded backend.
struct Start(Synthetic);

impl ractor::Message for Start {}

struct NoopWorker;

impl Worker for NoopWorker {
    type Key = ();
    type Message = Req;
    type State = Synthetic;
    type Arguments = Start;

    async fn pre_start(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<(), Req>>,
        Start(backend): Start,
    ) -> Result<Synthetic, ActorProcessingErr> {
        Ok(backend)
    }

    async fn handle(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<(), Req>>,
        Job { msg, key, .. }: Job<(), Req>,
        backend: &mut Synthetic,
    ) -> Result<(), ActorProcessingErr> {
        let Req(item, reply) = msg;
        let out = backend.run(&[&item])?;
        let _ = reply.send(out[0]);
        Ok(key)
    }
}

struct NoopBuilder(SyntheticSpec);

impl WorkerBuilder<NoopWorker, Start> for NoopBuilder {
    fn build(&mut self, wid: usize) -> (NoopWorker, Start) {
        let ctx = load_ctx(wid as u64);
        (
            NoopWorker,
            Start(Synthetic::load(&self.0, &ctx).expect("synthetic load")),
        )
    }
}

fn load_ctx(worker_id: u64) -> LoadContext {
    LoadContext {
        pool: Arc::from("bench"),
        worker_id,
        threads: 1,
    }
}

type NoopFactory =
    Factory<(), Req, Start, NoopWorker, QueuerRouting<(), Req>, DefaultQueue<(), Req>>;

async fn run_factory(a: &Args) -> anyhow::Result<Run> {
    let args = FactoryArguments::builder()
        .worker_builder(Box::new(NoopBuilder(SyntheticSpec::default())))
        .queue(DefaultQueue::default())
        .router(QueuerRouting::default())
        .num_initial_workers(a.workers)
        .discard_settings(DiscardSettings::None)
        .build();
    let (factory, handle) = Actor::spawn(None, NoopFactory::default(), args)
        .await
        .context("spawn factory")?;
    let f = factory.clone();
    let run = drive(a.requests, a.callers, move |id| {
        let f = f.clone();
        async move {
            let r = f
                .call(
                    |tx| {
                        FactoryMessage::Dispatch(Job {
                            key: (),
                            msg: Req(Item::new(id), tx),
                            options: JobOptions::default(),
                            accepted: None,
                        })
                    },
                    None,
                )
                .await?;
            r.success_or_else(|| anyhow::anyhow!("factory call failed"))
        }
    })
    .await?;
    factory.stop(None);
    let _ = handle.await;
    Ok(run)
}

async fn run_pool(a: &Args) -> anyhow::Result<Run> {
    let cfg = PoolConfig {
        name: Arc::from("bench-route"),
        workers: a.workers,
        threads_per_worker: Some(1),
        ..PoolConfig::default()
    };
    let spec = SyntheticSpec::default();
    let pool = match a.router {
        RouterArg::Wait => {
            Pool::<Synthetic>::spawn_with_router(spec, cfg, LeastWait::default()).await?
        }
        RouterArg::Depth => {
            Pool::<Synthetic>::spawn_with_router(spec, cfg, LeastDepth::default()).await?
        }
    };
    pool.wait_ready(Duration::from_secs(10)).await?;
    let p = pool.clone();
    let run = drive(a.requests, a.callers, move |id| {
        let p = p.clone();
        async move { Ok(p.call(Item::new(id)).await?) }
    })
    .await?;
    pool.shutdown(Duration::from_secs(10)).await?;
    Ok(run)
}

fn run_direct(requests: usize) -> Run {
    let mut b = Synthetic::load(&SyntheticSpec::default(), &load_ctx(0)).expect("load");
    let mut lat = Vec::with_capacity(requests);
    let start = Instant::now();
    for id in 0..requests as u64 {
        let item = Item::new(id);
        let t = Instant::now();
        let out = b.run(&[&item]).expect("run");
        lat.push(t.elapsed());
        assert_eq!(out[0], id);
    }
    summarize(lat, start.elapsed())
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub(crate) async fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.callers > 0 && a.requests >= a.callers,
        "need requests >= callers > 0"
    );
    println!(
        "bench route: {} requests, {} callers, {} workers, no-op backend",
        a.requests, a.callers, a.workers
    );
    let direct = run_direct(a.requests);
    // Warm up both systems once, then measure.
    let warm = Args {
        requests: a.requests / 10,
        ..a
    };
    run_pool(&warm).await?;
    run_factory(&warm).await?;
    let pool = run_pool(&a).await?;
    let factory = run_factory(&a).await?;
    // Unloaded latency: one caller, so nothing queues behind anything.
    let single = Args {
        requests: a.latency_requests,
        callers: 1,
        ..a
    };
    let pool1 = run_pool(&single).await?;
    let factory1 = run_factory(&single).await?;
    println!("system            callers  per_second     p50_us     p99_us");
    let rows = [
        ("backend direct", 1, &direct),
        ("corral pool", a.callers, &pool),
        ("ractor factory", a.callers, &factory),
        ("corral pool", 1, &pool1),
        ("ractor factory", 1, &factory1),
    ];
    for (name, callers, r) in rows {
        println!(
            "{name:<16} {callers:>8} {:>11.0} {:>10.2} {:>10.2}",
            r.per_second,
            us(r.p50),
            us(r.p99)
        );
    }
    println!(
        "pool_added_p50_us: {:.2}",
        (us(pool1.p50) - us(direct.p50)).max(0.0)
    );
    println!(
        "pool_added_p99_us: {:.2}",
        (us(pool1.p99) - us(direct.p99)).max(0.0)
    );
    println!("routed_per_second: {:.0}", pool.per_second);
    println!("factory_ratio: {:.2}", pool.per_second / factory.per_second);
    Ok(())
}
