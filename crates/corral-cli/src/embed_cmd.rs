//! `corral embed`: texts in (a file or stdin; one per line, or JSON Lines
//! with `--jsonl`), JSON Lines `{"text": …, "embedding": […]}` out, in input
//! order, through a pool of embedding workers — or, for a SPLADE model
//! (its `SpladePooling` module, or `--pooling splade` on a
//! `BertForMaskedLM`), `{"text": …, "indices": […], "values": […]}`: the
//! sparse vector's vocabulary ids, ascending, and their weights.
//!
//! Input is read as it streams: texts are grouped into requests of up to
//! `--request-size`, a bounded number of requests are in flight at once, and
//! each answer is written (and flushed) in input order as soon as it and
//! every answer before it exist. A text waits at most `--batch-wait-ms` for
//! companions to fill its request, so a slow stream (`tail -f log | corral
//! embed`) gets each answer about one model call after its line arrives.
//!
//! When stderr is a terminal (and without `--quiet`) a progress bar shows
//! texts done, texts/s and, for a file, the ETA; piped, it stays silent.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use corral_core::{Pool, PoolConfig, PoolHandle};
use corral_embed::model_dir::{self, FetchOptions, MODEL_DIR_ENV};
use corral_embed::{
    EmbedBackend, EmbedSpec, Engine, ModelKind, Pooling, Prompt, Quantize, SparseBackend,
    SparseInput,
};
use serde::Serialize;

use crate::lines::LineArgs;

/// Options of `corral embed`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) lines: LineArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

/// Model and pool options shared by `corral embed` and `corral bench embed`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ModelArgs {
    /// Model directory (config.json, tokenizer.json, model.safetensors).
    /// Default: $CORRAL_MODEL_DIR, else the fetched default model
    /// (all-MiniLM-L6-v2), fetched on first use.
    #[arg(long)]
    pub(crate) model_dir: Option<PathBuf>,
    /// Worker count (default: one per core when threads are automatic).
    #[arg(long)]
    pub(crate) workers: Option<usize>,
    /// Compute threads per worker (default: cores / workers, at least 1).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Do not L2-normalise the embeddings.
    #[arg(long)]
    pub(crate) no_normalize: bool,
    /// Pooling mode instead of the model's own: mean, cls, lasttoken, or
    /// splade (sparse vectors from a BertForMaskedLM's logits). A dense
    /// mode on a SPLADE model, or splade on a model without a
    /// masked-language head, is refused.
    #[arg(long)]
    pub(crate) pooling: Option<Pooling>,
    /// Forward pass: fast (Corral's own kernels) or candle.
    #[arg(long, default_value_t = Engine::Fast)]
    pub(crate) engine: Engine,
    /// Dense-layer arithmetic: none (fp32), int8 (fast engine, AVX2) or
    /// bf16 (fast engine, AVX-512 BF16); falls back to fp32 with a warning
    /// where the CPU lacks what it needs.
    #[arg(long, default_value_t = Quantize::None)]
    pub(crate) quantize: Quantize,
    #[command(flatten)]
    pub(crate) prompt: PromptArgs,
}

/// Which prompt the texts get and how long the vectors are.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct PromptArgs {
    /// Put the model's prompt of this name (`prompts` in its
    /// config_sentence_transformers.json) before every text, instead of
    /// its `default_prompt_name`.
    #[arg(long, conflicts_with = "no_prompt")]
    pub(crate) prompt_name: Option<String>,
    /// Put no prompt before the texts, not even the model's default.
    #[arg(long)]
    pub(crate) no_prompt: bool,
    /// Keep the first N dimensions of each embedding (Matryoshka), then
    /// re-normalise (default: the model's `truncate_dim`, else all).
    #[arg(long, value_name = "N")]
    pub(crate) truncate_dim: Option<usize>,
}

impl PromptArgs {
    /// The library's prompt choice for these flags.
    pub(crate) fn prompt(&self) -> Prompt {
        match (&self.prompt_name, self.no_prompt) {
            (Some(name), _) => Prompt::Named(name.clone()),
            (None, true) => Prompt::None,
            (None, false) => Prompt::ModelDefault,
        }
    }
}

impl ModelArgs {
    /// The model directory to use. Without `--model-dir` and
    /// `CORRAL_MODEL_DIR`, a missing default model is fetched first.
    pub(crate) fn resolve_dir(&self) -> anyhow::Result<PathBuf> {
        let explicit = self.model_dir.is_some()
            || std::env::var(MODEL_DIR_ENV).is_ok_and(|v| !v.trim().is_empty());
        let dir = self
            .model_dir
            .clone()
            .unwrap_or_else(model_dir::default_model_dir);
        if !explicit && model_dir::check_model_dir(&dir).is_err() {
            eprintln!(
                "corral: fetching the default model into {} (first use)",
                dir.display()
            );
            let fetched = model_dir::fetch_default_model(&dir, &FetchOptions::default())?;
            eprintln!("corral: model ready ({fetched:?})");
        }
        model_dir::check_model_dir(&dir)?;
        Ok(dir)
    }

    /// The spec for these options, validated (without loading weights).
    pub(crate) fn spec(&self) -> anyhow::Result<EmbedSpec> {
        let mut spec = EmbedSpec::new(self.resolve_dir()?).with_normalize(!self.no_normalize);
        spec.pooling = self.pooling;
        spec.engine = self.engine;
        spec.quantize = self.quantize;
        spec.prompt = self.prompt.prompt();
        spec.truncate_dim = self.prompt.truncate_dim;
        spec.validate()?;
        Ok(spec)
    }

    /// The pool configuration for these options.
    pub(crate) fn pool_config(&self) -> PoolConfig {
        let defaults = PoolConfig::default();
        let cores = corral_core::available_cores();
        let workers = match (self.workers, self.threads) {
            (Some(w), _) => w,
            (None, Some(t)) => (cores / t.max(1)).max(1),
            (None, None) => defaults.workers,
        };
        PoolConfig {
            name: "corral-embed".into(),
            workers,
            threads_per_worker: self.threads,
            ..defaults
        }
    }
}

/// Requests to keep in flight: eight per worker (about a full
/// `max_batch_tokens` batch of 32-text requests queued behind the running
/// one), within the workers' mailbox capacity.
pub(crate) fn requests_in_flight(config: &PoolConfig) -> usize {
    (config.workers * 8)
        .min(config.workers * config.batch_queue_capacity)
        .max(2)
}

/// Starts a pool for `spec` and waits until every worker has loaded.
pub(crate) async fn start_pool(
    spec: EmbedSpec,
    config: PoolConfig,
) -> anyhow::Result<PoolHandle<EmbedBackend>> {
    let workers = config.workers;
    let threads = config.resolved_threads();
    let load_timeout = config.load_timeout;
    let started = Instant::now();
    let handle = Pool::<EmbedBackend>::spawn(spec, config)
        .await
        .context("starting the embedding pool")?;
    handle
        .wait_ready(load_timeout)
        .await
        .context("waiting for the embedding workers to load the model")?;
    tracing::info!(
        workers,
        threads_per_worker = threads,
        "embedding pool ready in {:.2?}",
        started.elapsed()
    );
    Ok(handle)
}

#[derive(Serialize)]
struct JsonOutput<'a> {
    text: &'a str,
    embedding: &'a [f32],
}

#[derive(Serialize)]
struct SparseJsonOutput<'a> {
    text: &'a str,
    indices: &'a [u32],
    values: &'a [f32],
}

/// Runs `corral embed`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    args.lines.check()?;
    let spec = args.model.spec()?;
    let config = args.model.pool_config();
    let in_flight = requests_in_flight(&config);
    if spec.model_kind()? == ModelKind::SparseEmbed {
        return run_sparse(&args, spec, config, in_flight).await;
    }
    let handle = start_pool(spec, config).await?;
    let result = args
        .lines
        .stream(
            &handle,
            in_flight,
            str::to_owned,
            |out, _, texts, vectors| {
                for (text, embedding) in texts.iter().zip(&vectors) {
                    serde_json::to_writer(&mut *out, &JsonOutput { text, embedding })?;
                    out.write_all(b"\n")?;
                }
                Ok(())
            },
        )
        .await;
    let _ = handle.shutdown(Duration::from_secs(10)).await;
    tracing::info!("embedded {} texts", result?);
    Ok(())
}

/// `corral embed` for a SPLADE model: one sparse vector per text.
async fn run_sparse(
    args: &Args,
    spec: EmbedSpec,
    config: PoolConfig,
    in_flight: usize,
) -> anyhow::Result<()> {
    let load_timeout = config.load_timeout;
    let handle = Pool::<SparseBackend>::spawn(spec, config)
        .await
        .context("starting the SPLADE pool")?;
    handle
        .wait_ready(load_timeout)
        .await
        .context("waiting for the SPLADE workers to load the model")?;
    let result = args
        .lines
        .stream(
            &handle,
            in_flight,
            |text: &str| SparseInput::Text(text.to_owned()),
            |out, _, texts, outputs| {
                for (text, o) in texts.iter().zip(&outputs) {
                    let line = SparseJsonOutput {
                        text,
                        indices: &o.vector.indices,
                        values: &o.vector.values,
                    };
                    serde_json::to_writer(&mut *out, &line)?;
                    out.write_all(b"\n")?;
                }
                Ok(())
            },
        )
        .await;
    let _ = handle.shutdown(Duration::from_secs(10)).await;
    tracing::info!("embedded {} texts (sparse)", result?);
    Ok(())
}
