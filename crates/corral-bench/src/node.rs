//! `corral-bench node`: a cluster node that hosts a synthetic pool — the
//! synthetic `Item` backend (group `corral/synthetic/<model name>`), or
//! with `--input text` the [`TextLen`] backend (group
//! `corral/synthetic-text/<model name>`), whose requests can be as large
//! as the wire allows — and keeps its peers connected, until SIGTERM or
//! Ctrl-C. The cluster's multi-process tests and `corral-bench cluster` run
//! their nodes with it; `corral node` is the same node hosting a model.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use corral_cluster::wire::Limits;
use corral_cluster::{group_name, Member, Node, NodeFlags};
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
    /// Host name peers reach this node by, when it is not --host.
    #[arg(long)]
    advertise: Option<String>,
    /// Port to listen on.
    #[arg(long, default_value_t = 4697)]
    port: u16,
    /// The cluster's shared secret (default: $CORRAL_COOKIE; required).
    #[arg(long)]
    cookie: Option<String>,
    /// A peer to keep connected, `host:port` (repeatable).
    #[arg(long = "peer", value_name = "HOST:PORT")]
    peers: Vec<String>,
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
    /// This node's TLS certificate chain (PEM); with --tls-key and
    /// --tls-ca, nodes talk over mutual TLS.
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    /// This node's TLS private key (PEM).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// The CA that signs the cluster's node certificates (PEM).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// The name peers' certificates carry.
    #[arg(long, default_value = "localhost")]
    tls_server_name: String,
}

impl Args {
    /// The flags that make the node, checked by corral-cluster.
    fn node_flags(&self) -> NodeFlags {
        NodeFlags {
            name: self.name.clone(),
            host: self.host.clone(),
            advertise: self.advertise.clone(),
            port: self.port,
            cookie: self.cookie.clone(),
            peers: self.peers.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_server_name: self.tls_server_name.clone(),
        }
    }
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
    let flags = args.node_flags();
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

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
