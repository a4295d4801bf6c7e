//! `corral bench serve`: a closed-loop load client of the project's own,
//! on loopback, against `corral serve` started as a child process — 1, 16
//! and 64 clients sending single sentences from the corpus and 4 clients
//! sending batches of 32 — then `corral embed`'s in-process throughput with
//! the same batches, for the server's cost. infinity-emb runs side by side
//! when `infinity_emb` is installed and starts; otherwise its figures are
//! quoted from `BASELINE.md` (and the report says which of the two it was).
//!
//! Each `--quantize` mode (default `none,int8`) is its own `corral serve`
//! (`--quantize int8` for int8), run in turn within each round, so fp32 and
//! int8 are measured side by side. At one client the report also says where
//! a lone request's time goes: the client's latency against the server's own
//! handler time, the pool's queue time and the engine's compute time, read
//! from the server's `/metrics` before and after the point.
//!
//! With `--task rerank` (and a cross-encoder's `--model-dir`) the clients
//! send a query with `--documents` documents (20) per request, Cohere's
//! shape, to `POST /v1/rerank` — 1 and 16 clients — and count documents
//! scored per second; infinity-emb, serving the same directory, runs side by
//! side when installed (no figure of it is quoted: BASELINE.md has none).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use corral_core::Call;
use corral_embed::{Engine, ModelKind, Quantize};
use serde_json::json;

use crate::embed_cmd::{start_pool, ModelArgs, PromptArgs};

mod children;
mod load;
mod report;

pub(crate) use children::ChildServer;
use children::{infinity_installed, Infinity};
use load::median_points;
pub(crate) use load::{all_points, Point};
use report::{report_rerank, report_split, INFINITY_QUOTED};

/// Options of `corral bench serve`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// The corpus, one sentence per line.
    #[arg(long, default_value = "../shared/bench/corpus.txt")]
    pub(crate) corpus: PathBuf,
    /// Seconds measured per load point (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub(crate) seconds: f64,
    /// Seconds of load before each point's measurement.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) warmup: f64,
    /// Bench this running server instead of starting `corral serve`.
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// Model directory (default: the fetched default model).
    #[arg(long)]
    pub(crate) model_dir: Option<PathBuf>,
    /// Workers of the served pool and of the in-process run.
    #[arg(long)]
    pub(crate) workers: Option<usize>,
    /// Threads per worker.
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Skip the in-process comparison.
    #[arg(long)]
    pub(crate) no_inprocess: bool,
    /// Rounds of (corral serve, infinity-emb) runs, alternating, when
    /// infinity-emb is installed; ratios are quoted as the median of the
    /// rounds with their range.
    #[arg(long, default_value_t = 1)]
    pub(crate) rounds: usize,
    /// What the clients ask: embed (sentences to /v1/embeddings) or rerank
    /// (a query and --documents documents to /v1/rerank; needs a
    /// cross-encoder's --model-dir).
    #[arg(long, default_value_t = ModelKind::Embed)]
    pub(crate) task: ModelKind,
    /// Documents per rerank request.
    #[arg(long, default_value_t = 20)]
    pub(crate) documents: usize,
    /// Through a `corral serve --cluster` front to two `corral node`s
    /// (--workers split between them; default 2 in all), beside one local
    /// `corral serve` with the same total workers, alternating rounds: the
    /// cluster path's cost as a ratio (see `bench_cluster.rs`).
    #[arg(long)]
    pub(crate) cluster: bool,
    /// The dense-layer arithmetic of each `corral serve` measured, in turn
    /// within each round: `none` (fp32), `int8`, `bf16`, or several
    /// (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "none,int8")]
    pub(crate) quantize: Vec<Quantize>,
    /// The load points, as clients × texts per request
    /// (comma-separated; default 1x1,16x1,64x1,4x32 for embed,
    /// 1xD,16xD for rerank with D = --documents).
    #[arg(long, value_delimiter = ',')]
    pub(crate) points: Vec<LoadShape>,
}

/// One load point's shape: closed-loop clients × texts per request,
/// written `CxT` (`64x1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LoadShape {
    /// Clients, each with one request in flight.
    pub(crate) clients: usize,
    /// Texts (sentences or documents) per request.
    pub(crate) texts: usize,
}

impl std::str::FromStr for LoadShape {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?}: a load point is CLIENTSxTEXTS, e.g. 64x1");
        let (c, t) = s.split_once(['x', '×']).ok_or_else(bad)?;
        let clients: usize = c.trim().parse().map_err(|_| bad())?;
        let texts: usize = t.trim().parse().map_err(|_| bad())?;
        if clients == 0 || texts == 0 {
            return Err(bad());
        }
        Ok(Self { clients, texts })
    }
}

/// How `corral serve` is labelled in the report for a `--quantize` mode:
/// fp32 keeps the plain label (so `benches/ab.sh` programs written for it
/// keep matching).
fn serve_label(q: Quantize) -> &'static str {
    match q {
        Quantize::None => "corral serve",
        Quantize::Int8 => "corral serve --quantize int8",
        Quantize::Bf16 => "corral serve --quantize bf16",
    }
}

/// What one request of a load point is: the route, and the body for the
/// `batch` corpus lines starting at a given one.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    pub(crate) task: ModelKind,
    /// The model's name, as both servers are told to serve it.
    pub(crate) model: String,
}

impl Workload {
    fn path(&self) -> &'static str {
        match self.task {
            ModelKind::Rerank => "/v1/rerank",
            _ => "/v1/embeddings",
        }
    }

    /// The body for `texts`: sentences to embed, or a query (the line
    /// before them) and its documents.
    fn body(&self, query: &str, texts: &[&str]) -> serde_json::Value {
        match self.task {
            ModelKind::Rerank => json!({"model": self.model, "query": query, "documents": texts}),
            _ => {
                let input = if texts.len() == 1 {
                    json!(texts[0])
                } else {
                    json!(texts)
                };
                json!({ "input": input, "model": self.model })
            }
        }
    }

    /// (clients, texts per request) of each load point: `chosen`, else
    /// the task's default points.
    pub(crate) fn points(&self, documents: usize, chosen: &[LoadShape]) -> Vec<(usize, usize)> {
        if !chosen.is_empty() {
            return chosen.iter().map(|p| (p.clients, p.texts)).collect();
        }
        match self.task {
            ModelKind::Rerank => vec![(1, documents), (16, documents)],
            _ => vec![(1, 1), (16, 1), (64, 1), (4, 32)],
        }
    }
}
impl Args {
    /// The name both servers serve the model under: its directory's.
    pub(crate) fn model_name(&self) -> anyhow::Result<String> {
        let dir = self.model_args().resolve_dir()?;
        Ok(dir
            .file_name()
            .map_or("model".into(), |n| n.to_string_lossy().into_owned()))
    }

    /// The pool options of the in-process run (and of the served pool).
    pub(crate) fn model_args(&self) -> ModelArgs {
        ModelArgs {
            model_dir: self.model_dir.clone(),
            workers: self.workers,
            threads: self.threads,
            no_normalize: false,
            pooling: None,
            engine: Engine::Fast,
            quantize: Quantize::None,
            prompt: PromptArgs::default(),
        }
    }
}

/// In-process throughput of the same batches of 32 from 4 callers, through
/// a pool like `corral embed`'s.
async fn inprocess(
    args: &Args,
    corpus: Arc<Vec<String>>,
    warmup: Duration,
    seconds: Duration,
) -> anyhow::Result<f64> {
    let model = args.model_args();
    let handle = start_pool(model.spec()?, model.pool_config()).await?;
    let measure_from = Instant::now() + warmup;
    let end = measure_from + seconds;
    let mut tasks = Vec::new();
    for c in 0..4usize {
        let handle = handle.clone();
        let corpus = corpus.clone();
        tasks.push(tokio::spawn(async move {
            let mut next = (c * 7919) % corpus.len();
            let mut sentences = 0usize;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let texts: Vec<String> = (0..32)
                    .map(|k| corpus[(next + k) % corpus.len()].clone())
                    .collect();
                next = (next + 32) % corpus.len();
                let Ok(ok) = tokio::time::timeout_at(end.into(), handle.call_batch(texts)).await
                else {
                    break;
                };
                if ok.is_ok() && Instant::now() >= measure_from {
                    sentences += 32;
                }
            }
            sentences
        }));
    }
    let mut sentences = 0;
    for t in tasks {
        sentences += t.await.unwrap_or(0);
    }
    let _ = handle.shutdown(Duration::from_secs(10)).await;
    Ok(sentences as f64 / seconds.as_secs_f64())
}

pub(crate) fn read_corpus(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the corpus {}", path.display()))?;
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        bail!("the corpus {} is empty", path.display());
    }
    Ok(lines)
}

/// Runs `corral bench serve`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if args.cluster {
        return crate::bench_cluster::run(args).await;
    }
    let corpus = Arc::new(read_corpus(&args.corpus)?);
    let seconds = Duration::try_from_secs_f64(args.seconds).context("--seconds")?;
    let warmup = Duration::try_from_secs_f64(args.warmup).context("--warmup")?;
    if seconds.is_zero() {
        bail!("--seconds must be more than zero");
    }
    let rerank = match args.task {
        ModelKind::Embed => false,
        ModelKind::Rerank => true,
        other => bail!("--task {other}: the serve bench drives embed or rerank"),
    };
    if rerank && args.model_dir.is_none() {
        bail!("--task rerank needs --model-dir: a cross-encoder's directory");
    }
    if rerank && args.documents == 0 {
        bail!("--documents must be at least 1");
    }
    let work = Workload {
        task: args.task,
        model: args.model_name()?,
    };
    let shapes = work.points(args.documents, &args.points);
    let mut modes = args.quantize.clone();
    modes.dedup();
    if modes.is_empty() || rerank {
        modes = vec![Quantize::None];
    }
    eprintln!(
        "corral serve ({} sentences from {}):",
        corpus.len(),
        args.corpus.display()
    );
    let have_infinity = args.url.is_none() && infinity_installed();
    // Why infinity-emb was not measured, if it was not.
    let mut unmeasured = if have_infinity {
        String::new()
    } else {
        "infinity_emb is not installed".to_string()
    };
    // corral_rounds[mode][round]
    let mut corral_rounds: Vec<Vec<Vec<Point>>> = vec![vec![]; modes.len()];
    let mut infinity_rounds: Vec<Vec<Point>> = vec![];
    for round in 0..args.rounds.max(1) {
        for (m, &mode) in modes.iter().enumerate() {
            eprintln!("round {round}: {}", serve_label(mode));
            corral_rounds[m].push(match &args.url {
                Some(url) => {
                    all_points(
                        url.trim_end_matches('/'),
                        &work,
                        &shapes,
                        &corpus,
                        warmup,
                        seconds,
                    )
                    .await
                }
                None => {
                    let server = ChildServer::start(&args, mode)?;
                    let points =
                        all_points(&server.base, &work, &shapes, &corpus, warmup, seconds).await;
                    server.stop();
                    points
                }
            });
        }
        if have_infinity {
            eprintln!("round {round}: infinity_emb (side by side, same client)");
            match Infinity::start(&args) {
                Ok(inf) => {
                    infinity_rounds.push(
                        all_points(&inf.base, &work, &shapes, &corpus, warmup, seconds).await,
                    );
                    drop(inf);
                }
                Err(e) => {
                    eprintln!("  could not start infinity_emb ({e:#}); quoting BASELINE.md");
                    unmeasured = "infinity_emb did not start".to_string();
                    infinity_rounds.clear();
                    break;
                }
            }
        }
    }
    let measured_infinity = (!infinity_rounds.is_empty()
        && infinity_rounds.len() == corral_rounds[0].len())
    .then(|| median_points(&infinity_rounds));
    let infinity = format!("quoted from BASELINE.md ({unmeasured}; not measured in this run)");
    if rerank {
        report_rerank(&corral_rounds[0], &infinity_rounds);
        return Ok(());
    }
    let in_process = if args.no_inprocess {
        None
    } else {
        eprintln!("corral embed in process, 4 callers × 32:");
        let s = inprocess(&args, corpus.clone(), warmup, seconds).await?;
        eprintln!("  {s:.1} sentences/s");
        Some(s)
    };

    println!("| system | clients × sentences per request | sentences/s | p50 | p99 | errors |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let medians: Vec<Vec<Point>> = corral_rounds.iter().map(|r| median_points(r)).collect();
    for (mode, points) in modes.iter().zip(&medians) {
        for p in points {
            println!(
                "| {} | {} × {} | {:.1} | {:.1} ms | {:.1} ms | {} |",
                serve_label(*mode),
                p.clients,
                p.batch,
                p.sentences_per_s,
                p.p50_ms,
                p.p99_ms,
                p.errors
            );
        }
    }
    match &measured_infinity {
        Some(inf) => {
            for p in inf {
                println!(
                    "| infinity-emb (measured in this run) | {} × {} | {:.1} | {:.1} ms | {:.1} ms | {} |",
                    p.clients, p.batch, p.sentences_per_s, p.p50_ms, p.p99_ms, p.errors
                );
            }
        }
        None => {
            for (c, b, s, p50, p99) in INFINITY_QUOTED {
                if shapes.contains(&(c, b)) {
                    println!("| infinity-emb ({infinity}) | {c} × {b} | {s:.1} | {p50:.0} ms | {p99:.0} ms | |");
                }
            }
        }
    }
    if let Some(s) = in_process {
        println!("| corral embed in process (pool, no HTTP) | 4 × 32 | {s:.1} | | | |");
    }
    println!();
    report_split(&modes, &medians);
    let points = &medians[0];
    let mut measured_64 = None;
    if measured_infinity.is_some() {
        for (m, mode) in modes.iter().enumerate() {
            let suffix = match mode {
                Quantize::None => "",
                Quantize::Int8 => "_int8",
                Quantize::Bf16 => "_bf16",
            };
            for (k, p) in medians[m].iter().enumerate() {
                let ratios: Vec<f64> = corral_rounds[m]
                    .iter()
                    .zip(&infinity_rounds)
                    .map(|(c, i)| c[k].sentences_per_s / i[k].sentences_per_s)
                    .collect();
                let (med, lo, hi) = crate::median_range(ratios);
                println!(
                    "serve_ratio_measured{suffix}_{}x{}: {med:.2}  (range {lo:.2}–{hi:.2} over {} alternating rounds; vs infinity-emb measured side by side)",
                    p.clients,
                    p.batch,
                    corral_rounds[m].len()
                );
                if p.clients == 64 && p.batch == 1 && *mode == modes[0] {
                    measured_64 = Some(med);
                }
            }
        }
    }
    // The quoted figures stand in only where infinity-emb was not measured.
    for p in points.iter().filter(|_| measured_infinity.is_none()) {
        if let Some((_, _, quoted, _, _)) = INFINITY_QUOTED
            .iter()
            .find(|q| (q.0, q.1) == (p.clients, p.batch))
        {
            println!(
                "serve_ratio_{}x{}: {:.2}  (vs infinity-emb's figure quoted from BASELINE.md, not measured here)",
                p.clients,
                p.batch,
                p.sentences_per_s / quoted
            );
        }
    }
    match (measured_64, points.iter().find(|p| p.clients == 64)) {
        (Some(r), _) => println!(
            "serve_ratio: {r:.2}  (64 clients × 1 sentence; target ≥ 2.0; median against infinity-emb measured side by side)"
        ),
        (None, Some(p64)) => println!(
            "serve_ratio: {:.2}  (64 clients; target ≥ 2.0; against the quoted 63.3 sentences/s: infinity-emb not measured)",
            p64.sentences_per_s / 63.3
        ),
        (None, None) => {}
    }
    if let (Some(s), Some(b)) = (in_process, points.iter().find(|p| p.batch == 32)) {
        println!(
            "server_vs_inprocess_batch32: {:.2}  (target ≥ 0.90)",
            b.sentences_per_s / s
        );
    }
    Ok(())
}
