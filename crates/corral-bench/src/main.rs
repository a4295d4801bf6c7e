//! `corral-bench`: the benchmarks and the test node that run on the
//! synthetic backend and the runtime's fault-injection hooks (corral-core's
//! and corral-cluster's `testing` feature). They live in a binary of their
//! own so that the `corral` binary people install is built without those
//! hooks; the benchmarks of real models (`corral bench embed`, `corral bench
//! serve`) stay in `corral`.
//!
//! - `route` ([`route`]): what the pool itself costs, beside ractor's factory;
//! - `chaos` ([`chaos`]): load at ~80% of capacity with random faults;
//! - `cluster` ([`cluster`]): what the cluster layer costs on loopback;
//! - `node` ([`node`]): a cluster node hosting a synthetic pool, for the
//!   cluster's multi-process tests and `cluster`.

mod chaos;
mod cluster;
mod node;
mod route;
mod text;

use clap::{Parser, Subcommand};

/// Corral's synthetic benchmarks and test nodes.
#[derive(Parser)]
#[command(name = "corral-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Requests routed per second through the pool (no-op backend), beside
    /// ractor's factory.
    Route(route::Args),
    /// Load at ~80% of capacity with random faults; nothing may be lost.
    Chaos(chaos::Args),
    /// What the cluster layer costs on loopback: remote vs local latency,
    /// routed vs raw ractor_cluster throughput to two remote pools.
    Cluster(cluster::Args),
    /// Run a cluster node hosting a synthetic pool (for tests and
    /// `cluster`), until SIGTERM or Ctrl-C.
    Node(Box<node::Args>),
}

/// The median of alternating rounds' ratios, with their range (lowest,
/// highest), as every side-by-side bench quotes them.
pub(crate) fn median_range(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    // Only the commands with sockets need tokio's I/O driver; the others
    // run without it, so that a task woken by a compute thread unparks a
    // runtime thread with a futex, not an eventfd write.
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    match &cli.command {
        Command::Cluster(_) | Command::Node(_) => runtime.enable_all(),
        Command::Route(_) | Command::Chaos(_) => runtime.enable_time(),
    };
    let runtime = runtime.build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Route(args) => route::run(args).await,
            Command::Chaos(args) => chaos::run(args).await,
            Command::Cluster(args) => cluster::run(args).await,
            Command::Node(args) => node::run(*args).await,
        }
    })
}
