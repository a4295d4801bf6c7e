//! `corral serve`: the HTTP front (`corral_server`) over one pool per model,
//! until SIGTERM or Ctrl-C, then a graceful drain.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use corral_embed::model_dir::DEFAULT_MODEL_NAME;
use corral_embed::{Engine, Quantize};
use corral_server::{spawn_model, ServedModel, Server, ServerConfig};

use crate::embed_cmd::{ModelArgs, PromptArgs};

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
    /// Dense-layer arithmetic: none (fp32) or int8 (fast engine, AVX2;
    /// falls back to fp32 with a warning elsewhere).
    #[arg(long, default_value_t = Quantize::None)]
    pub(crate) quantize: Quantize,
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
}

impl Args {
    /// The pool options of these arguments, as `corral embed` takes them.
    pub(crate) fn model_args(&self, dir: Option<PathBuf>) -> ModelArgs {
        ModelArgs {
            model_dir: dir,
            workers: self.workers,
            threads: self.threads,
            no_normalize: false,
            pooling: None,
            engine: self.engine,
            quantize: self.quantize,
            prompt: PromptArgs {
                prompt_name: self.default_prompt_name.clone(),
                ..PromptArgs::default()
            },
        }
    }

    /// (name, model options) for every model to serve.
    fn served(&self) -> anyhow::Result<Vec<(Option<String>, ModelArgs)>> {
        let mut served = Vec::new();
        if self.model_dir.is_some() || self.models.is_empty() {
            served.push((
                self.model_name.clone(),
                self.model_args(self.model_dir.clone()),
            ));
        }
        for m in &self.models {
            let Some((name, dir)) = m.split_once('=') else {
                bail!("--model {m:?}: expected NAME=DIR");
            };
            if name.is_empty() || dir.is_empty() {
                bail!("--model {m:?}: expected NAME=DIR");
            }
            served.push((Some(name.to_owned()), self.model_args(Some(dir.into()))));
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
    let metrics = corral_server::install_metrics().ok();
    let mut models: Vec<Arc<dyn ServedModel>> = Vec::new();
    for (name, model) in args.served()? {
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
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
pub(crate) async fn shutdown_signal() {
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
        () = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        () = term => tracing::info!("SIGTERM: shutting down"),
    }
}
