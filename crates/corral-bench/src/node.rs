//! `corral-bench node`: a cluster node that hosts a synthetic pool — the
//! synthetic `Item` backend (group `corral/synthetic/<model name>`), or
//! with `--input text` the [`TextLen`] backend (group
//! `corral/synthetic-text/<model name>`), whose requests can be as large
//! as the wire allows — and keeps its peers connected, until SIGTERM or
//! Ctrl-C. The cluster's multi-process tests and `corral-bench cluster` run
//! their nodes with it; `corral node` is the same node hosting a model.

use std::time::Duration;

use anyhow::bail;
use corral_cluster::wire::Limits;
use corral_cluster::{group_name, shutdown_signal, Member, Node, NodeArgs};
use corral_core::synthetic::{Synthetic, SyntheticSpec};
use corral_core::{Backend, Pool, PoolConfig, PoolHandle};

use crate::text::TextLen;

/// What the synthetic pool takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Input {
    /// The synthetic `Item` (id and cost).
    Item,
    /// Texts, answered with their length in bytes.
    Text,
}

/// Options of `corral-bench node`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// This node's name, unique in the cluster.
    #[arg(long)]
    name: String,
    /// Address to listen on (and to be reached at, unless --advertise).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 4697)]
    port: u16,
    #[command(flatten)]
    node: NodeArgs,
    /// The model name the pool is found by.
    #[arg(long, default_value = "default")]
    model_name: String,
    /// Milliseconds each input takes.
    #[arg(long, value_name = "MS")]
    synthetic_ms: f64,
    /// What the pool takes.
    #[arg(long, value_enum, default_value_t = Input::Item)]
    input: Input,
    /// Workers in the pool.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Threads per worker.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Spawns the pool and its member; the pool is kept until shutdown.
async fn host<B>(
    spec: B::Spec,
    config: PoolConfig,
    group: String,
) -> anyhow::Result<(PoolHandle<B>, ractor::ActorCell)>
where
    B: Backend,
    B::Input: corral_cluster::Wire,
    B::Output: corral_cluster::Wire,
{
    let load_timeout = config.load_timeout;
    let pool = Pool::<B>::spawn(spec, config).await?;
    pool.wait_ready(load_timeout).await?;
    let member = Member::spawn(pool.pool_ref(), group, Limits::default()).await?;
    Ok((pool, member.get_cell()))
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if !(args.synthetic_ms.is_finite() && args.synthetic_ms >= 0.0) {
        bail!("--synthetic-ms must be a non-negative number");
    }
    let per_item = Duration::from_secs_f64(args.synthetic_ms / 1000.0);
    let flags = args
        .node
        .flags(args.name.clone(), args.host.clone(), args.port);
    let peers = flags.peers()?;
    let node = Node::start(flags.config()?).await?;
    // Host the pool before dialling out, so that peers find it in the
    // first group sync.
    let pool_config = PoolConfig {
        name: format!("corral-bench-node-{}", args.name).into(),
        workers: args.workers,
        threads_per_worker: Some(args.threads),
        ..PoolConfig::default()
    };
    let group;
    let member;
    let stop: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;
    match args.input {
        Input::Item => {
            group = group_name("synthetic", &args.model_name);
            let (pool, m) = host::<Synthetic>(
                SyntheticSpec::with_per_item(per_item),
                pool_config,
                group.clone(),
            )
            .await?;
            member = m;
            stop = Box::pin(async move { drop(pool.shutdown(Duration::from_secs(10)).await) });
        }
        Input::Text => {
            group = group_name("synthetic-text", &args.model_name);
            let (pool, m) = host::<TextLen>(per_item, pool_config, group.clone()).await?;
            member = m;
            stop = Box::pin(async move { drop(pool.shutdown(Duration::from_secs(10)).await) });
        }
    }
    for peer in &peers {
        node.connect(*peer);
    }
    // One line on stdout when ready, for scripts and tests.
    println!(
        "corral-bench node {} ready on {}:{} serving {group}",
        args.name,
        args.host,
        node.port()
    );
    shutdown_signal().await;
    tracing::info!("stopping");
    member.stop(None);
    stop.await;
    node.stop();
    Ok(())
}
