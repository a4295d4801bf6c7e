//! `corral embed`: texts in (a file or stdin; one per line, or JSON Lines
//! with `--jsonl`), JSON Lines `{"text": …, "embedding": […]}` out, in input
//! order, through a pool of embedding workers.
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

use std::collections::VecDeque;
use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use corral_core::{Call, Pool, PoolConfig, PoolHandle};
use corral_embed::model_dir::{self, FetchOptions, MODEL_DIR_ENV};
use corral_embed::{EmbedBackend, EmbedSpec, Engine, Pooling, Quantize};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

/// Options of `corral embed`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// File of texts; stdin when absent or `-`.
    pub(crate) input: Option<PathBuf>,
    /// Read JSON Lines, one `{"text": "…"}` object per line (texts may then
    /// hold newlines), instead of one text per line.
    #[arg(long)]
    pub(crate) jsonl: bool,
    /// Write here instead of stdout.
    #[arg(long, short)]
    pub(crate) output: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// Texts per request sent to the pool.
    #[arg(long, default_value_t = 32)]
    pub(crate) request_size: usize,
    /// The longest a text waits, in milliseconds, for companions to fill its
    /// request before the request is sent without them (at most 60000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(..=60_000))]
    pub(crate) batch_wait_ms: u64,
    /// No progress bar, even on a terminal.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

/// A progress bar on stderr when it is a terminal and not `quiet`; a hidden
/// one otherwise. With a known total it shows the ETA.
fn progress_bar(quiet: bool, total: Option<u64>) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(n) => (
            ProgressBar::new(n),
            "{bar:30} {pos}/{len} texts, {per_sec}, ETA {eta}",
        ),
        None => (ProgressBar::no_length(), "{spinner} {pos} texts, {per_sec}"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Texts in `path` (its lines; non-blank lines for JSON Lines), for the ETA.
fn count_texts(path: &std::path::Path, jsonl: bool) -> Option<u64> {
    let file = std::fs::File::open(path).ok()?;
    let lines = std::io::BufReader::new(file).lines();
    let mut n = 0u64;
    for line in lines {
        let line = line.ok()?;
        if !jsonl || !line.trim().is_empty() {
            n += 1;
        }
    }
    Some(n)
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
    /// Pooling mode instead of the model's own: mean or cls.
    #[arg(long)]
    pub(crate) pooling: Option<Pooling>,
    /// Forward pass: fast (Corral's own kernels) or candle.
    #[arg(long, default_value_t = Engine::Fast)]
    pub(crate) engine: Engine,
    /// Dense-layer arithmetic: none (fp32) or int8 (fast engine, AVX2;
    /// falls back to fp32 with a warning elsewhere).
    #[arg(long, default_value_t = Quantize::None)]
    pub(crate) quantize: Quantize,
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

#[derive(Deserialize)]
struct JsonInput {
    text: String,
}

#[derive(Serialize)]
struct JsonOutput<'a> {
    text: &'a str,
    embedding: &'a [f32],
}

/// One request's texts and what the pool answered for them.
type Answer = (Vec<String>, anyhow::Result<Vec<Vec<f32>>>);

type Pending = JoinHandle<Answer>;

/// Runs `corral embed`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if args.request_size == 0 {
        bail!("--request-size must be at least 1");
    }
    let spec = args.model.spec()?;
    let config = args.model.pool_config();
    let in_flight = requests_in_flight(&config);
    let handle = start_pool(spec, config).await?;

    let reader: Box<dyn BufRead + Send> = match &args.input {
        Some(p) if p.as_os_str() != "-" => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
        )),
        _ => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };

    let total = match &args.input {
        Some(p) if p.as_os_str() != "-" && !args.quiet && std::io::stderr().is_terminal() => {
            count_texts(p, args.jsonl)
        }
        _ => None,
    };
    let progress = progress_bar(args.quiet, total);
    let result = pump(
        reader,
        &mut out,
        &handle,
        Batching {
            jsonl: args.jsonl,
            request_size: args.request_size,
            in_flight,
            batch_wait: Duration::from_millis(args.batch_wait_ms),
        },
        &progress,
    )
    .await;
    progress.finish_and_clear();
    let _ = handle.shutdown(Duration::from_secs(10)).await;
    let count = result?;
    out.flush()?;
    tracing::info!("embedded {count} texts");
    Ok(())
}

/// Reads texts on a blocking thread (stdin may be slow) into a bounded
/// channel.
fn spawn_reader(
    reader: Box<dyn BufRead + Send>,
    jsonl: bool,
) -> tokio::sync::mpsc::Receiver<anyhow::Result<String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tokio::task::spawn_blocking(move || {
        for (n, line) in reader.lines().enumerate() {
            let text = line
                .with_context(|| format!("reading input line {}", n + 1))
                .and_then(|line| {
                    if !jsonl {
                        return Ok(Some(line));
                    }
                    if line.trim().is_empty() {
                        return Ok(None);
                    }
                    serde_json::from_str::<JsonInput>(&line)
                        .map(|j| Some(j.text))
                        .with_context(|| {
                            format!("input line {}: expected {{\"text\": \"…\"}}", n + 1)
                        })
                });
            let stop = text.is_err();
            match text.transpose() {
                None => continue,
                Some(item) => {
                    if tx.blocking_send(item).is_err() || stop {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// How input is read and grouped into requests.
struct Batching {
    jsonl: bool,
    /// Most texts in one request.
    request_size: usize,
    /// Most requests in flight at once.
    in_flight: usize,
    /// Longest a text waits for companions before its request is sent.
    batch_wait: Duration,
}

/// Keeps up to `in_flight` requests running and writes answers in input
/// order, each as soon as it and every earlier one are there. A request is
/// sent when it is full, when its first text has waited `batch_wait`, or at
/// the end of input — whichever comes first — and a slot is free. Returns
/// how many texts were embedded.
async fn pump(
    reader: Box<dyn BufRead + Send>,
    out: &mut dyn Write,
    handle: &PoolHandle<EmbedBackend>,
    batching: Batching,
    progress: &ProgressBar,
) -> anyhow::Result<usize> {
    let Batching {
        jsonl,
        request_size,
        in_flight,
        batch_wait,
    } = batching;
    let mut texts = spawn_reader(reader, jsonl);
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut batch: Vec<String> = Vec::with_capacity(request_size);
    // When the oldest text in `batch` stops waiting for companions.
    let mut send_by: Option<tokio::time::Instant> = None;
    let mut input_done = false;
    let mut count = 0usize;
    loop {
        let now = tokio::time::Instant::now();
        let due = batch.len() >= request_size || input_done || send_by.is_some_and(|t| t <= now);
        if !batch.is_empty() && due && pending.len() < in_flight {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(request_size));
            pending.push_back(send(handle, full));
            send_by = None;
        }
        if input_done && batch.is_empty() && pending.is_empty() {
            return Ok(count);
        }
        // A timer only while it can still fire in the future: a passed one
        // waits for a free slot (an answer) instead.
        let wait = send_by.filter(|t| *t > now && pending.len() < in_flight);
        tokio::select! {
            biased;
            answer = async { pending.front_mut().expect("checked non-empty").await },
                if !pending.is_empty() =>
            {
                pending.pop_front();
                count += write_answer(answer, out, progress)?;
            }
            text = texts.recv(), if !input_done && batch.len() < request_size => match text {
                Some(text) => {
                    batch.push(text?);
                    if send_by.is_none() {
                        send_by = Some(tokio::time::Instant::now() + batch_wait);
                    }
                }
                None => input_done = true,
            },
            () = tokio::time::sleep_until(wait.unwrap_or(now)), if wait.is_some() => {}
        }
    }
}

fn send(handle: &PoolHandle<EmbedBackend>, texts: Vec<String>) -> Pending {
    let handle = handle.clone();
    tokio::spawn(async move {
        let result = handle
            .call_batch(texts.clone())
            .await
            .map_err(anyhow::Error::from);
        (texts, result)
    })
}

/// Writes one request's answers and flushes them, so that a reader of a
/// pipe sees them now. Returns how many texts they were.
fn write_answer(
    answer: Result<Answer, tokio::task::JoinError>,
    out: &mut dyn Write,
    progress: &ProgressBar,
) -> anyhow::Result<usize> {
    let (texts, result) = answer.context("an embedding task panicked")?;
    let vectors = result.context("embedding failed")?;
    for (text, embedding) in texts.iter().zip(&vectors) {
        serde_json::to_writer(&mut *out, &JsonOutput { text, embedding })?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    progress.inc(texts.len() as u64);
    Ok(texts.len())
}
