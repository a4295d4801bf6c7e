//! `corral-bench cluster`: what the cluster layer costs, on loopback.
//!
//! Two `corral-bench node` processes (this binary) host synthetic pools that take
//! no time per input, so every microsecond measured is the network hop,
//! the wire encoding, the member and the router. It reports:
//! - unloaded latency (one caller at a time, p50/p99) of a call to the
//!   local pool directly, through a cluster handle to a member in this
//!   process, and through a cluster handle to the remote members — the
//!   added latency of a remote call;
//! - throughput with `callers` closed-loop callers through the cluster
//!   handle (routing by load), and the same load sent as raw ractor_cluster
//!   calls to the same two remote members, round-robin, with the requests
//!   encoded beforehand — in alternating rounds, and
//!   `cluster_overhead_ratio` = raw requests/s ÷ routed requests/s (median
//!   of the rounds, with its range; 1.0 means routing costs nothing).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use corral_cluster::wire::{self, Limits, WireReply};
use corral_cluster::{
    group_name, ClusterConfig, ClusterHandle, Member, MemberMsg, Node, NodeConfig,
};
use corral_core::synthetic::{Item, Synthetic, SyntheticSpec};
use corral_core::{Call, Pool, PoolConfig, Submit};
use ractor::ActorRef;

/// Options of `corral-bench cluster`.
#[derive(clap::Args, Debug, Clone, Copy)]
pub(crate) struct Args {
    /// Seconds per throughput run.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Rounds of (raw, routed) throughput runs, alternating.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent closed-loop callers in the throughput runs.
    #[arg(long, default_value_t = 64)]
    callers: usize,
    /// Requests per unloaded-latency run.
    #[arg(long, default_value_t = 3000)]
    latency_requests: usize,
    /// Workers in each remote pool.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

struct NodeChild(Child);

impl Drop for NodeChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start_node(name: &str, port: u16, cookie: &str, workers: usize) -> anyhow::Result<NodeChild> {
    let exe = std::env::current_exe().context("this binary's path")?;
    let mut child = Command::new(exe)
        .args([
            "node",
            "--name",
            name,
            "--port",
            &port.to_string(),
            "--cookie",
            cookie,
        ])
        .args(["--model-name", "bench", "--synthetic-ms", "0"])
        .args(["--workers", &workers.to_string(), "--threads", "1"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting a node")?;
    let stdout = child.stdout.take().context("node stdout")?;
    let child = NodeChild(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(" ready on ") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        bail!("node {name} did not report ready");
    }
    Ok(child)
}

fn quantiles(mut lat: Vec<Duration>) -> (Duration, Duration) {
    lat.sort_unstable();
    let q = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    (q(0.50), q(0.99))
}

async fn latency<F, Fut>(n: usize, mut call: F) -> anyhow::Result<(Duration, Duration)>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for i in 0..(n / 10).max(10) {
        call(i as u64).await?;
    }
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        call(i as u64).await?;
        lat.push(t.elapsed());
    }
    Ok(quantiles(lat))
}

/// Requests per second with `callers` closed-loop callers for `secs`.
async fn throughput<F, Fut>(callers: usize, secs: f64, call: F) -> anyhow::Result<f64>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = vec![];
    for c in 0..callers {
        let (stop, done, call) = (stop.clone(), done.clone(), call.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = c as u64;
            while !stop.load(Ordering::Relaxed) {
                call(i).await?;
                done.fetch_add(1, Ordering::Relaxed);
                i += callers as u64;
            }
            anyhow::Ok(())
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let n = done.load(Ordering::Relaxed);
    let wall = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / wall.as_secs_f64())
}

/// One raw ractor_cluster call of a pre-encoded request to `member`.
async fn raw_call(member: &ActorRef<MemberMsg>, bytes: Vec<u8>) -> anyhow::Result<()> {
    let reply = member
        .call(
            |port| MemberMsg::Call(bytes, port),
            Some(Duration::from_secs(10)),
        )
        .await
        .map_err(|e| anyhow::anyhow!("raw call: {e}"))?;
    let ractor::rpc::CallResult::Success(reply) = reply else {
        bail!("raw call: no answer");
    };
    match wire::decode_reply::<u64>(&reply, &Limits::default())? {
        (_, WireReply::Done(_)) => Ok(()),
        (_, WireReply::Failed { error, .. }) => bail!("raw call: {error}"),
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let cookie = format!("corral-bench-{}", std::process::id());
    let (pa, pb) = (free_port()?, free_port()?);
    let _a = start_node("bench-a", pa, &cookie, args.workers)?;
    let _b = start_node("bench-b", pb, &cookie, args.workers)?;
    let node = Node::start(NodeConfig::new(
        "bench-router",
        "127.0.0.1",
        free_port()?,
        cookie.clone(),
    ))
    .await?;
    let remote_group = group_name("synthetic", "bench");
    let remote =
        ClusterHandle::<Item, u64>::spawn(ClusterConfig::new(remote_group.clone())).await?;
    for p in [pa, pb] {
        node.connect(SocketAddr::from(([127, 0, 0, 1], p)));
    }
    remote
        .wait_members(2, Duration::from_secs(15))
        .await
        .context("the two remote pools did not join")?;
    let raw_members: Vec<ActorRef<MemberMsg>> = ractor::pg::get_members(&remote_group)
        .into_iter()
        .filter(|c| !c.get_id().is_local())
        .map(ActorRef::from)
        .collect();
    if raw_members.len() != 2 {
        bail!("expected 2 remote members, found {}", raw_members.len());
    }

    // A local pool like the remote ones, and a member for it in a group of
    // its own.
    let local_pool = Pool::<Synthetic>::spawn(
        SyntheticSpec::with_per_item(Duration::ZERO),
        PoolConfig {
            workers: args.workers,
            threads_per_worker: Some(1),
            ..PoolConfig::default()
        },
    )
    .await?;
    local_pool.wait_ready(Duration::from_secs(10)).await?;
    let local_group = group_name("synthetic", "bench-local");
    let _member = Member::spawn(
        local_pool.pool_ref(),
        local_group.clone(),
        Limits::default(),
    )
    .await?;
    let local = ClusterHandle::<Item, u64>::spawn(ClusterConfig::new(local_group)).await?;
    local.wait_members(1, Duration::from_secs(5)).await?;

    println!(
        "unloaded latency, one caller, {} requests each:",
        args.latency_requests
    );
    let n = args.latency_requests;
    let (p50, p99) = latency(n, |i| {
        let p = local_pool.clone();
        async move { Ok(p.call(Item::new(i)).await.map(drop)?) }
    })
    .await?;
    println!("  local pool handle        p50 {p50:>10.2?}  p99 {p99:>10.2?}");
    let (lp50, lp99) = latency(n, |i| {
        let h = local.clone();
        async move { Ok(h.call(Item::new(i)).await.map(drop)?) }
    })
    .await?;
    println!("  cluster handle, local    p50 {lp50:>10.2?}  p99 {lp99:>10.2?}");
    let (rp50, rp99) = latency(n, |i| {
        let h = remote.clone();
        async move { Ok(h.call(Item::new(i)).await.map(drop)?) }
    })
    .await?;
    println!("  cluster handle, remote   p50 {rp50:>10.2?}  p99 {rp99:>10.2?}");
    println!(
        "  added by the network: p50 {:.2?}, p99 {:.2?} (remote − local, through the cluster handle)",
        rp50.saturating_sub(lp50),
        rp99.saturating_sub(lp99)
    );

    println!(
        "throughput, {} callers, {:.1} s per run, raw ractor_cluster calls vs routed, alternating:",
        args.callers, args.seconds
    );
    let members = Arc::new(raw_members);
    let mut ratios = vec![];
    for round in 0..args.rounds {
        let m = members.clone();
        let raw = throughput(args.callers, args.seconds, move |i| {
            let m = m.clone();
            async move {
                let bytes = wire::encode_request(&Submit::wait(
                    vec![Item::new(i)],
                    Duration::from_secs(10),
                ));
                raw_call(&m[(i % 2) as usize], bytes).await
            }
        })
        .await?;
        let h = remote.clone();
        let routed = throughput(args.callers, args.seconds, move |i| {
            let h = h.clone();
            async move { Ok(h.call(Item::new(i)).await.map(drop)?) }
        })
        .await?;
        let ratio = raw / routed;
        println!("  round {round}: raw {raw:>9.0}/s  routed {routed:>9.0}/s  ratio {ratio:.3}");
        ratios.push(ratio);
    }
    let (med, lo, hi) = crate::median_range(ratios);
    println!(
        "cluster_overhead_ratio: {med:.3} (range {lo:.3}–{hi:.3}; raw ÷ routed, target ≤ 1.10)"
    );
    let s = remote.stats();
    println!(
        "routed: answered {}, refused {}, failed over {}, lost {}",
        s.answered, s.rejected_overloaded, s.failed_over, s.worker_lost
    );
    local_pool.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}
