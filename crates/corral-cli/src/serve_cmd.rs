//! `corral serve`: the HTTP front (`corral_server`) over one pool per model,
//! until SIGTERM or Ctrl-C, then a graceful drain. With `--cluster` it also
//! starts a cluster node (the flags of `corral node`, through
//! `corral_cluster::NodeFlags`) and serves each `--model NAME=DIR` through
//! the pools of its group across the cluster (`corral_server::ClusterModel`),
//! beside the local pool of `--model-dir`, if given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use corral_cluster::{shutdown_signal, Node, NodeArgs, NodeFlags, NODE_KEY};
use corral_embed::model_dir::DEFAULT_MODEL_NAME;
use corral_embed::{EmbedInputBackend, Engine, ModelKind, Pooling, Quantize, ScoreBackend};
use corral_server::{spawn_model, ClusterModel, ServedModel, Server, ServerConfig};

use crate::embed_cmd::{ModelArgs, PromptArgs};
use crate::node_cmd::Hosted;

/// Environment variable holding the API key when `--api-key` is absent.
pub(crate) const API_KEY_ENV: &str = "CORRAL_API_KEY";

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// Options of `corral serve`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Model directory. Default: $CORRAL_MODEL_DIR, else the fetched default
    /// model (all-MiniLM-L6-v2), fetched on first use.
    #[arg(long)]
    pub(crate) model_dir: Option<PathBuf>,
    /// Name clients use for that model. Default: the directory's name
    /// (`all-MiniLM-L6-v2` for the default model).
    #[arg(long)]
    pub(crate) model_name: Option<String>,
    /// Serve another model, `NAME=DIR` (repeatable; one pool per model).
    /// Without `--model-dir`, only these are served.
    #[arg(long = "model", value_name = "NAME=DIR")]
    pub(crate) models: Vec<String>,
    /// Workers per model (default: one per core when threads are automatic).
    #[arg(long)]
    pub(crate) workers: Option<usize>,
    /// Compute threads per worker (default: cores / workers, at least 1).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Forward pass: fast or candle.
    #[arg(long, default_value_t = Engine::Fast)]
    pub(crate) engine: Engine,
    /// Dense-layer arithmetic: none (fp32), int8 (fast engine, AVX2) or
    /// bf16 (fast engine, AVX-512 BF16); falls back to fp32 with a warning
    /// where the CPU lacks what it needs.
    #[arg(long, default_value_t = Quantize::None)]
    pub(crate) quantize: Quantize,
    /// Pooling for every embedding model served, instead of each one's
    /// own: mean, cls, lasttoken, or splade (sparse vectors on POST
    /// /embed_sparse, from a BertForMaskedLM). A mode that cannot apply to
    /// a model (splade without a masked-language head, a dense mode on a
    /// SPLADE model) stops the server at start, naming it.
    #[arg(long)]
    pub(crate) pooling: Option<Pooling>,
    /// The prompt every model puts before texts unless a request names
    /// one (`prompt_name` / `prompt`): the model's prompt of this name in
    /// its config_sentence_transformers.json, instead of its own
    /// `default_prompt_name`. Every embedding model served must have it.
    #[arg(long, value_name = "NAME")]
    pub(crate) default_prompt_name: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// Port (0 picks a free one; the address is printed either way).
    #[arg(long, default_value_t = 8080)]
    pub(crate) port: u16,
    /// Per-worker bound on single-input requests (queued plus running).
    #[arg(long, default_value_t = 100)]
    pub(crate) queue_capacity: usize,
    /// Per-worker bound on multi-input requests.
    #[arg(long, default_value_t = 50)]
    pub(crate) batch_queue_capacity: usize,
    /// Most inputs in one request.
    #[arg(long, default_value_t = 512)]
    pub(crate) max_batch_inputs: usize,
    /// Largest request body, bytes.
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    pub(crate) max_body: usize,
    /// Embedding requests held at once (reading, tokenising, waiting for
    /// the pool); past it, 429 at once, before the body is read.
    #[arg(long, default_value_t = 512)]
    pub(crate) max_concurrent_requests: usize,
    /// Requests tokenised at once off the async threads; tokenising holds
    /// up to ~170 bytes per byte of text, so this bounds that memory
    /// (default: the number of cores).
    #[arg(long)]
    pub(crate) tokenize_concurrency: Option<usize>,
    /// Require `Authorization: Bearer <key>` (default: $CORRAL_API_KEY).
    #[arg(long)]
    pub(crate) api_key: Option<String>,
    /// Seconds admitted requests get to finish after SIGTERM / Ctrl-C.
    #[arg(long, default_value_t = 30.0)]
    pub(crate) drain_timeout: f64,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
}

/// The cluster options of `corral serve`: `corral node`'s, the node's
/// address under `--cluster-host` / `--cluster-port` (`--host` and `--port`
/// are the HTTP front's). Those of [`NodeArgs`] are refused without
/// `--cluster`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ClusterArgs {
    /// Join the cluster as a node and serve every `--model NAME=DIR`
    /// through the pools of its group (`corral/<kind>/NAME`, the kind from
    /// DIR's config.json) on the cluster's nodes; DIR is read only for the
    /// tokenizer and the model's card. `--model-dir`, if given, is still
    /// served by a local pool.
    #[arg(long)]
    pub(crate) cluster: bool,
    /// This node's name, unique in the cluster (required with --cluster).
    #[arg(long, requires = "cluster")]
    pub(crate) name: Option<String>,
    /// Address the node listens on — only there —, also the name peers
    /// reach it by, unless --advertise.
    #[arg(long, default_value = "127.0.0.1", requires = "cluster")]
    pub(crate) cluster_host: String,
    /// Port the node listens on.
    #[arg(long, default_value_t = 4697, requires = "cluster")]
    pub(crate) cluster_port: u16,
    #[command(flatten)]
    pub(crate) node: NodeArgs,
    /// Also host, in this process, a pool of this many workers (of
    /// --threads threads) for every --model NAME=DIR, as a member of its
    /// group like any node's — routed to by the same rule, and preferred
    /// on ties (default 0: none).
    #[arg(long, default_value_t = 0, requires = "cluster")]
    pub(crate) member_workers: usize,
}

impl ClusterArgs {
    /// The flags that make the node, checked by corral-cluster.
    fn node_flags(&self) -> anyhow::Result<NodeFlags> {
        let Some(name) = self.name.clone().filter(|n| !n.is_empty()) else {
            bail!("--cluster needs --name: this node's name, unique in the cluster");
        };
        Ok(self
            .node
            .flags(name, self.cluster_host.clone(), self.cluster_port))
    }

    /// Refuses the node's flags without `--cluster`, naming them.
    fn check(&self) -> anyhow::Result<()> {
        let given = self.node.given();
        if !self.cluster && !given.is_empty() {
            bail!(
                "{} only make sense with --cluster (this process as a cluster node)",
                given.join(", ")
            );
        }
        Ok(())
    }
}

/// Where a model is served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    /// A pool in this process.
    Local,
    /// The pools of its group across the cluster.
    Cluster,
}

impl Args {
    /// The pool options of these arguments, as `corral embed` takes them.
    pub(crate) fn model_args(&self, dir: Option<PathBuf>) -> ModelArgs {
        ModelArgs {
            model_dir: dir,
            workers: self.workers,
            threads: self.threads,
            no_normalize: false,
            pooling: self.pooling,
            engine: self.engine,
            quantize: self.quantize,
            prompt: PromptArgs {
                prompt_name: self.default_prompt_name.clone(),
                ..PromptArgs::default()
            },
        }
    }

    /// (name, model options, where) for every model to serve.
    fn served(&self) -> anyhow::Result<Vec<(Option<String>, ModelArgs, Where)>> {
        let cluster = self.cluster.cluster;
        if cluster && self.models.is_empty() {
            bail!("--cluster serves the models of --model NAME=DIR through the cluster; give at least one");
        }
        let mut served = Vec::new();
        if self.model_dir.is_some() || self.models.is_empty() {
            served.push((
                self.model_name.clone(),
                self.model_args(self.model_dir.clone()),
                Where::Local,
            ));
        }
        for m in &self.models {
            let Some((name, dir)) = m.split_once('=') else {
                bail!("--model {m:?}: expected NAME=DIR");
            };
            if name.is_empty() || dir.is_empty() {
                bail!("--model {m:?}: expected NAME=DIR");
            }
            served.push((
                Some(name.to_owned()),
                self.model_args(Some(dir.into())),
                if cluster {
                    Where::Cluster
                } else {
                    Where::Local
                },
            ));
        }
        Ok(served)
    }
}

fn duration_secs(name: &str, secs: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(secs)
        .with_context(|| format!("{name} must be a non-negative number of seconds"))
}

/// Runs `corral serve`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let drain = duration_secs("--drain-timeout", args.drain_timeout)?;
    args.cluster.check()?;
    let metrics = corral_server::install_metrics().ok();
    let served = args.served()?;
    // The node starts before the models' routers, so that they see the
    // cluster's groups; peers are dialled once every router is up.
    let node = if args.cluster.cluster {
        let flags = args.cluster.node_flags()?;
        let peers = flags.peers()?;
        Some((Node::start(flags.config()?).await?, peers))
    } else {
        None
    };
    let mut models: Vec<Arc<dyn ServedModel>> = Vec::new();
    // `--member-workers`: this process's own members of the groups.
    let mut members: Vec<Hosted> = Vec::new();
    for (name, model, place) in served {
        let spec = model.spec()?;
        let name = name.unwrap_or_else(|| {
            if model.model_dir.is_none()
                && std::env::var_os(corral_embed::model_dir::MODEL_DIR_ENV).is_none()
            {
                DEFAULT_MODEL_NAME.to_owned()
            } else {
                spec.model_dir.file_name().map_or_else(
                    || DEFAULT_MODEL_NAME.to_owned(),
                    |n| n.to_string_lossy().into_owned(),
                )
            }
        });
        if models.iter().any(|m| m.card().name == name) {
            bail!("two models are named {name:?}; give each its own name");
        }
        if place == Where::Cluster {
            let served = ClusterModel::spawn(name.clone(), &spec)
                .await
                .map_err(|e| anyhow::anyhow!("model {name}: {e}"))?;
            tracing::info!(model = %name, kind = %served.card().kind, group = %served.group(), "serving through the cluster");
            if args.cluster.member_workers > 0 {
                members.push(
                    local_member(&args, &model, &name, served.group())
                        .await
                        .with_context(|| format!("model {name}: hosting its local member"))?,
                );
            }
            models.push(Arc::new(served));
            continue;
        }
        let mut config = model.pool_config();
        config.name = name.as_str().into();
        config.queue_capacity = args.queue_capacity;
        config.batch_queue_capacity = args.batch_queue_capacity;
        config.max_client_batch = config.max_client_batch.max(args.max_batch_inputs);
        config.validate()?;
        let load_timeout = config.load_timeout;
        tracing::info!(model = %name, dir = %spec.model_dir.display(), workers = config.workers, "starting pool");
        let served = spawn_model(name.clone(), spec, config, load_timeout)
            .await
            .map_err(|e| anyhow::anyhow!("model {name}: {e}"))?;
        tracing::info!(model = %name, kind = %served.card().kind, "serving");
        models.push(served);
    }
    if let Some((node, peers)) = &node {
        for peer in peers {
            node.connect(*peer);
        }
        // Scripts and tests read the node's port from this line.
        println!(
            "corral: cluster node {} on {}:{}",
            args.cluster.name.as_deref().unwrap_or_default(),
            args.cluster.cluster_host,
            node.port()
        );
    }
    let api_key = args
        .api_key
        .clone()
        .or_else(|| std::env::var(API_KEY_ENV).ok())
        .filter(|k| !k.is_empty());
    let config = ServerConfig {
        max_batch_inputs: args.max_batch_inputs.max(1),
        max_body: args.max_body,
        max_concurrent_requests: args.max_concurrent_requests,
        tokenize_concurrency: args
            .tokenize_concurrency
            .unwrap_or_else(corral_core::available_cores),
        api_key,
        metrics,
    };
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let addr: SocketAddr = listener.local_addr()?;
    // Scripts and tests read the port from this line.
    println!("corral: listening on http://{addr}");
    tracing::info!(%addr, models = models.len(), "serving");
    Server::new(models, config)
        .serve(listener, shutdown_signal(), drain)
        .await?;
    for hosted in members {
        hosted.member.get_cell().stop(None);
        hosted.stop_pool.await;
    }
    if let Some((node, _)) = node {
        node.stop();
    }
    tracing::info!("stopped");
    Ok(())
}

/// A pool of `--member-workers` workers for the cluster model `name`
/// (unnormalised: the front normalises), put in `group` with the promise
/// `corral node` would make, named after this node.
async fn local_member(
    args: &Args,
    model: &ModelArgs,
    name: &str,
    group: &str,
) -> anyhow::Result<Hosted> {
    let spec = model.spec()?.with_normalize(false);
    let mut config = model.pool_config();
    config.name = format!("{name}-member").into();
    config.workers = args.cluster.member_workers;
    config.queue_capacity = args.queue_capacity;
    config.batch_queue_capacity = args.batch_queue_capacity;
    config.max_client_batch = config.max_client_batch.max(args.max_batch_inputs);
    config.validate()?;
    let load_timeout = config.load_timeout;
    let node = args.cluster.name.clone().unwrap_or_default();
    let promise = corral_server::promise_of(name, &spec)?.with(NODE_KEY, node);
    Ok(match spec.model_kind()? {
        ModelKind::Embed => {
            Hosted::start::<EmbedInputBackend>(spec, config, load_timeout, group, promise).await?
        }
        _ => Hosted::start::<ScoreBackend>(spec, config, load_timeout, group, promise).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        Serve::try_parse_from(std::iter::once("serve").chain(argv.iter().copied())).map(|s| s.args)
    }

    #[test]
    fn the_node_flags_are_corral_nodes_and_need_cluster() {
        let a = parse(&["--peer", "127.0.0.1:1", "--cookie", "c"]).unwrap();
        let e = a.cluster.check().unwrap_err().to_string();
        assert!(
            e.starts_with("--cookie, --peer only make sense with --cluster"),
            "{e}"
        );
        let a = parse(&["--cluster", "--name", "f", "--peer", "127.0.0.1:1"]).unwrap();
        a.cluster.check().unwrap();
        let flags = a.cluster.node_flags().unwrap();
        assert_eq!(flags.peers, ["127.0.0.1:1"]);
        assert_eq!((flags.host.as_str(), flags.port), ("127.0.0.1", 4697));
        assert_eq!(flags.tls_server_name, "localhost");
        // The TLS files go together, as on `corral node`.
        assert!(parse(&["--cluster", "--name", "f", "--tls-cert", "a.pem"]).is_err());
    }
}
