//! `corral node`: a ractor_cluster node that hosts a pool for the cluster
//! (the default model, a model directory, or — for tests and benches — the
//! synthetic backend) and keeps its peers connected, until SIGTERM or
//! Ctrl-C.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use corral_cluster::wire::Limits;
use corral_cluster::{group_name, Member, Node, NodeConfig, TlsConfig};
use corral_core::synthetic::{Synthetic, SyntheticSpec};
use corral_core::{Pool, PoolConfig};
use corral_embed::model_dir::DEFAULT_MODEL_NAME;
use corral_embed::EmbedInputBackend;

use crate::embed_cmd::ModelArgs;

/// Environment variable holding the cookie when `--cookie` is absent.
pub(crate) const COOKIE_ENV: &str = "CORRAL_COOKIE";

/// Options of `corral node`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// This node's name, unique in the cluster.
    #[arg(long)]
    pub(crate) name: String,
    /// Host name to listen on and be reached by.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 4697)]
    pub(crate) port: u16,
    /// The cluster's shared secret (default: $CORRAL_COOKIE; required).
    #[arg(long)]
    pub(crate) cookie: Option<String>,
    /// A peer to keep connected, `host:port` (repeatable).
    #[arg(long = "peer", value_name = "HOST:PORT")]
    pub(crate) peers: Vec<String>,
    /// Host no pool: only connect (a node that routes, from a host app).
    #[arg(long)]
    pub(crate) no_pool: bool,
    /// The model name the pool is found by. Default: the model directory's
    /// name (`all-MiniLM-L6-v2` for the default model); `default` for a
    /// synthetic pool.
    #[arg(long)]
    pub(crate) model_name: Option<String>,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// Host a synthetic pool that takes this many milliseconds per input
    /// instead of a model (group `corral/synthetic/<model name>`): for
    /// tests and benchmarks of the cluster layer.
    #[arg(long, value_name = "MS")]
    pub(crate) synthetic_ms: Option<f64>,
    /// This node's TLS certificate chain (PEM); with --tls-key and
    /// --tls-ca, nodes talk over mutual TLS.
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    pub(crate) tls_cert: Option<PathBuf>,
    /// This node's TLS private key (PEM).
    #[arg(long)]
    pub(crate) tls_key: Option<PathBuf>,
    /// The CA that signs the cluster's node certificates (PEM).
    #[arg(long)]
    pub(crate) tls_ca: Option<PathBuf>,
    /// The name peers' certificates carry.
    #[arg(long, default_value = "localhost")]
    pub(crate) tls_server_name: String,
}

impl Args {
    fn cookie(&self) -> anyhow::Result<String> {
        let cookie = self
            .cookie
            .clone()
            .or_else(|| std::env::var(COOKIE_ENV).ok())
            .unwrap_or_default();
        if cookie.is_empty() {
            bail!("a cookie is required: --cookie or {COOKIE_ENV}");
        }
        Ok(cookie)
    }

    fn tls(&self) -> anyhow::Result<Option<TlsConfig>> {
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (Some(c), Some(k), Some(ca)) => Ok(Some(TlsConfig::from_pem_files(
                c,
                k,
                ca,
                self.tls_server_name.clone(),
            )?)),
            (None, None, None) => Ok(None),
            _ => bail!("--tls-cert, --tls-key and --tls-ca go together"),
        }
    }

    fn peers(&self) -> anyhow::Result<Vec<SocketAddr>> {
        self.peers
            .iter()
            .map(|p| {
                p.to_socket_addrs()
                    .with_context(|| format!("--peer {p}"))?
                    .next()
                    .with_context(|| format!("--peer {p}: no address"))
            })
            .collect()
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let cookie = args.cookie()?;
    let tls = args.tls()?;
    let peers = args.peers()?;
    let node = Node::start(NodeConfig {
        name: args.name.clone(),
        host: args.host.clone(),
        port: args.port,
        cookie,
        tls,
    })
    .await?;
    // Host the pool before dialling out, so that peers find it in the
    // first group sync.
    let pool_config = PoolConfig {
        name: format!("corral-node-{}", args.name).into(),
        ..args.model.pool_config()
    };
    let load_timeout = pool_config.load_timeout;
    let (group, member) = if args.no_pool {
        (None, None)
    } else if let Some(ms) = args.synthetic_ms {
        if !(ms.is_finite() && ms >= 0.0) {
            bail!("--synthetic-ms must be a non-negative number");
        }
        let per_item = Duration::from_secs_f64(ms / 1000.0);
        let pool =
            Pool::<Synthetic>::spawn(SyntheticSpec::with_per_item(per_item), pool_config).await?;
        pool.wait_ready(load_timeout).await?;
        let name = args.model_name.clone().unwrap_or_else(|| "default".into());
        let group = group_name("synthetic", &name);
        let member = Member::spawn(pool.pool_ref(), group.clone(), Limits::default()).await?;
        (
            Some(group),
            Some((member.get_cell(), PoolKeep::Synthetic(pool))),
        )
    } else {
        let spec = args.model.spec()?;
        let name = args.model_name.clone().unwrap_or_else(|| {
            spec.model_dir
                .file_name()
                .map_or(DEFAULT_MODEL_NAME.to_owned(), |n| {
                    n.to_string_lossy().into_owned()
                })
        });
        let pool = Pool::<EmbedInputBackend>::spawn(spec, pool_config).await?;
        pool.wait_ready(load_timeout)
            .await
            .context("waiting for the embedding workers to load the model")?;
        let group = group_name("embed", &name);
        let member = Member::spawn(pool.pool_ref(), group.clone(), Limits::default()).await?;
        (
            Some(group),
            Some((member.get_cell(), PoolKeep::Embed(pool))),
        )
    };
    for peer in &peers {
        node.connect(*peer);
    }
    // One line on stdout when ready, for scripts and tests.
    println!(
        "corral node {} ready on {}:{}{}",
        args.name,
        args.host,
        node.port(),
        group.map_or(String::new(), |g| format!(" serving {g}"))
    );
    crate::serve_cmd::shutdown_signal().await;
    tracing::info!("stopping");
    if let Some((member, pool)) = member {
        member.stop(None);
        match pool {
            PoolKeep::Synthetic(p) => drop(p.shutdown(Duration::from_secs(10)).await),
            PoolKeep::Embed(p) => drop(p.shutdown(Duration::from_secs(10)).await),
        }
    }
    node.stop();
    Ok(())
}

/// The pool a node hosts, kept until shutdown.
enum PoolKeep {
    Synthetic(corral_core::PoolHandle<Synthetic>),
    Embed(corral_core::PoolHandle<EmbedInputBackend>),
}
