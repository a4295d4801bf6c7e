//! `corral node`: a ractor_cluster node that hosts a pool for the cluster
//! (the default model, or a model directory — an embedder, a reranker or a
//! classifier, as its `config.json` declares, in the group
//! `corral/<task>/<model>`) and keeps its peers connected,
//! until SIGTERM or Ctrl-C. It listens only on `--host`; `--advertise`
//! names it to peers when that differs. (A node hosting the synthetic
//! backend, for tests and benches, is `corral-bench node`.)

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use corral_cluster::wire::Limits;
use corral_cluster::wire::Wire;
use corral_cluster::{group_name, Member, MemberMsg, Node, NodeArgs, Promise, NODE_KEY};
use corral_core::{Backend, HealthReport, Pool, PoolConfig, PoolError, PoolHandle};
use corral_embed::model_dir::DEFAULT_MODEL_NAME;
use corral_embed::{EmbedInputBackend, EmbedSpec, ModelKind, ScoreBackend};
use corral_server::model::BoxFuture;
use ractor::ActorRef;

use crate::embed_cmd::ModelArgs;

/// Options of `corral node`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// This node's name, unique in the cluster.
    #[arg(long)]
    pub(crate) name: String,
    /// Address to listen on — only there — (an IP address, or a name that
    /// resolves to one); also the name peers reach it by, unless
    /// --advertise.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 4697)]
    pub(crate) port: u16,
    #[command(flatten)]
    pub(crate) node: NodeArgs,
    /// Host no pool: only connect (a node that routes, from a host app).
    #[arg(long)]
    pub(crate) no_pool: bool,
    /// The model name the pool is found by. Default: the model directory's
    /// name (`all-MiniLM-L6-v2` for the default model).
    #[arg(long)]
    pub(crate) model_name: Option<String>,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// Per-worker bound on single-input requests (queued plus running);
    /// default as `corral serve`'s (100).
    #[arg(long)]
    pub(crate) queue_capacity: Option<usize>,
    /// Per-worker bound on multi-input requests; default as `corral
    /// serve`'s (50).
    #[arg(long)]
    pub(crate) batch_queue_capacity: Option<usize>,
    /// Serve `GET /health` (200 while the pool has a ready worker, else
    /// 503 with the reason) and `GET /metrics` (Prometheus) on this port
    /// of --host (0 picks a free one; the address is printed).
    #[arg(long)]
    pub(crate) http_port: Option<u16>,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let flags = args
        .node
        .flags(args.name.clone(), args.host.clone(), args.port);
    let peers = flags.peers()?;
    let node = Node::start(flags.config()?).await?;
    // Host the pool before dialling out, so that peers find it in the
    // first group sync.
    let mut pool_config = PoolConfig {
        name: format!("corral-node-{}", args.name).into(),
        ..args.model.pool_config()
    };
    if let Some(q) = args.queue_capacity {
        pool_config.queue_capacity = q;
    }
    if let Some(q) = args.batch_queue_capacity {
        pool_config.batch_queue_capacity = q;
    }
    pool_config.validate()?;
    let load_timeout = pool_config.load_timeout;
    // Before the pool, so that its figures reach the recorder.
    let metrics = match args.http_port {
        Some(_) => corral_server::install_metrics().ok(),
        None => None,
    };
    let (group, member) = if args.no_pool {
        (None, None)
    } else {
        let spec = args.model.spec()?;
        let name = args.model_name.clone().unwrap_or_else(|| {
            spec.model_dir
                .file_name()
                .map_or(DEFAULT_MODEL_NAME.to_owned(), |n| {
                    n.to_string_lossy().into_owned()
                })
        });
        let kind = spec.model_kind()?;
        let group = group_name(kind.as_str(), &name);
        let promise = corral_server::promise_of(&name, &spec)?.with(NODE_KEY, &args.name);
        let hosted = match kind {
            ModelKind::Embed => {
                Hosted::start::<EmbedInputBackend>(spec, pool_config, load_timeout, &group, promise)
                    .await?
            }
            _ => {
                Hosted::start::<ScoreBackend>(spec, pool_config, load_timeout, &group, promise)
                    .await?
            }
        };
        (Some(group), Some(hosted))
    };
    for peer in &peers {
        node.connect(*peer);
    }
    let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
    let http = match args.http_port {
        None => None,
        Some(port) => {
            let listener = tokio::net::TcpListener::bind((args.host.as_str(), port))
                .await
                .with_context(|| format!("binding --http-port {port} on {}", args.host))?;
            let addr = listener.local_addr()?;
            let health = member.as_ref().map(|h| h.health.clone());
            let serve = corral_server::serve_node_status(
                listener,
                move || match &health {
                    Some(h) => h(),
                    None => Box::pin(async {
                        Err(PoolError::InvalidInput(
                            "this node hosts no pool (--no-pool)".into(),
                        ))
                    }),
                },
                metrics,
                async move {
                    let _ = stopped.await;
                },
            );
            // Scripts and tests read the address from this line.
            println!(
                "corral node {}: health and metrics on http://{addr}",
                args.name
            );
            Some(tokio::spawn(serve))
        }
    };
    // One line on stdout when ready, for scripts and tests.
    println!(
        "corral node {} ready on {}:{}{}",
        args.name,
        args.host,
        node.port(),
        group.map_or(String::new(), |g| format!(" serving {g}"))
    );
    corral_cluster::shutdown_signal().await;
    tracing::info!("stopping");
    if let Some(hosted) = member {
        hosted.member.get_cell().stop(None);
        hosted.stop_pool.await;
    }
    let _ = stop_http.send(());
    if let Some(http) = http {
        let _ = http.await;
    }
    node.stop();
    Ok(())
}

/// The pool a node hosts and the member that puts it in its group; the
/// pool's type depends on the model's kind, so it is kept as the future
/// that drains it.
pub(crate) struct Hosted {
    pub(crate) member: ActorRef<MemberMsg>,
    pub(crate) stop_pool: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    /// The pool's health report, for `--http-port`'s `/health`.
    health: HealthFn,
}

/// The pool's health, asked anew on each call.
type HealthFn = Arc<dyn Fn() -> BoxFuture<'static, Result<HealthReport, PoolError>> + Send + Sync>;

impl Hosted {
    /// Starts a pool of `B` for `spec`, waits for its workers, and puts it
    /// in `group`, promising `promise`.
    pub(crate) async fn start<B>(
        spec: EmbedSpec,
        config: PoolConfig,
        load_timeout: Duration,
        group: &str,
        promise: Promise,
    ) -> anyhow::Result<Self>
    where
        B: Backend<Spec = EmbedSpec>,
        B::Input: Wire,
        B::Output: Wire,
    {
        let pool: PoolHandle<B> = Pool::<B>::spawn(spec, config).await?;
        pool.wait_ready(load_timeout)
            .await
            .context("waiting for the workers to load the model")?;
        let member = Member::spawn_promising(
            pool.pool_ref(),
            group.to_owned(),
            Limits::default(),
            promise,
        )
        .await?;
        let for_health = pool.clone();
        let health: HealthFn = Arc::new(move || {
            let pool = for_health.clone();
            Box::pin(async move { pool.health().await })
        });
        Ok(Self {
            member,
            health,
            stop_pool: Box::pin(async move {
                drop(pool.shutdown(Duration::from_secs(10)).await);
            }),
        })
    }
}
