//! `corral bench serve`: a closed-loop load client of the project's own,
//! on loopback, against `corral serve` started as a child process — 1, 16
//! and 64 clients sending single sentences from the corpus and 4 clients
//! sending batches of 32 — then `corral embed`'s in-process throughput with
//! the same batches, for the server's cost. infinity-emb runs side by side
//! only when `infinity_emb` is installed; otherwise its figures are quoted
//! from `BASELINE.md` (and the report says so).
//!
//! With `--task rerank` (and a cross-encoder's `--model-dir`) the clients
//! send a query with `--documents` documents (20) per request, Cohere's
//! shape, to `POST /v1/rerank` — 1 and 16 clients — and count documents
//! scored per second; infinity-emb, serving the same directory, runs side by
//! side when installed (no figure of it is quoted: BASELINE.md has none).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use corral_core::Call;
use corral_embed::{Engine, ModelKind, Quantize};
use serde_json::json;

use crate::embed_cmd::{start_pool, ModelArgs, PromptArgs};

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

    /// (clients, texts per request) of each load point.
    fn points(&self, documents: usize) -> Vec<(usize, usize)> {
        match self.task {
            ModelKind::Rerank => vec![(1, documents), (16, documents)],
            _ => vec![(1, 1), (16, 1), (64, 1), (4, 32)],
        }
    }
}

/// infinity-emb's figures on this project's machine, quoted from
/// `BASELINE.md` (clients, sentences per request, sentences/s, p50 ms, p99 ms).
const INFINITY_QUOTED: [(usize, usize, f64, f64, f64); 4] = [
    (1, 1, 39.6, 25.0, 36.0),
    (16, 1, 67.2, 230.0, 299.0),
    (64, 1, 63.3, 907.0, 1339.0),
    (4, 32, 76.8, 1518.0, 1734.0),
];

/// One load point's result.
#[derive(Debug, Clone)]
pub(crate) struct Point {
    pub(crate) clients: usize,
    pub(crate) batch: usize,
    pub(crate) sentences_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: usize,
    errors: usize,
}

/// The median of each load point over rounds (sentences/s, p50, p99 each
/// taken as its own median; requests and errors summed).
fn median_points(rounds: &[Vec<Point>]) -> Vec<Point> {
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (0..rounds[0].len())
        .map(|k| Point {
            clients: rounds[0][k].clients,
            batch: rounds[0][k].batch,
            sentences_per_s: med(rounds.iter().map(|r| r[k].sentences_per_s).collect()),
            p50_ms: med(rounds.iter().map(|r| r[k].p50_ms).collect()),
            p99_ms: med(rounds.iter().map(|r| r[k].p99_ms).collect()),
            requests: rounds.iter().map(|r| r[k].requests).sum(),
            errors: rounds.iter().map(|r| r[k].errors).sum(),
        })
        .collect()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `clients` closed-loop clients for warm-up + `seconds`, each sending
/// `batch` sentences (or documents) per request as `work` says; counts what
/// completes inside the measured window.
async fn load_point(
    base: &str,
    work: &Workload,
    corpus: Arc<Vec<String>>,
    clients: usize,
    batch: usize,
    warmup: Duration,
    seconds: Duration,
) -> Point {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + seconds;
    let url = format!("{base}{}", work.path());
    let mut tasks = Vec::new();
    for c in 0..clients {
        let corpus = corpus.clone();
        let url = url.clone();
        let work = work.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut next = (c * 7919) % corpus.len();
            let (mut lat, mut sentences, mut errors) = (Vec::new(), 0usize, 0usize);
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let texts: Vec<&str> = (0..batch)
                    .map(|k| corpus[(next + k) % corpus.len()].as_str())
                    .collect();
                let query = corpus[(next + corpus.len() - 1) % corpus.len()].as_str();
                next = (next + batch) % corpus.len();
                let body = work.body(query, &texts);
                // A request still running at the end of the window is
                // abandoned; one that completes inside it counts.
                let send = async {
                    match client.post(&url).json(&body).send().await {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        Ok(_) | Err(_) => false,
                    }
                };
                let Ok(ok) = tokio::time::timeout_at(end.into(), send).await else {
                    break;
                };
                let done = Instant::now();
                if done >= measure_from {
                    if ok {
                        lat.push(done.duration_since(sent).as_secs_f64() * 1e3);
                        sentences += batch;
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, sentences, errors)
        }));
    }
    let (mut lat, mut sentences, mut errors) = (Vec::new(), 0, 0);
    for t in tasks {
        if let Ok((l, s, e)) = t.await {
            lat.extend(l);
            sentences += s;
            errors += e;
        }
    }
    lat.sort_by(f64::total_cmp);
    Point {
        clients,
        batch,
        sentences_per_s: sentences as f64 / seconds.as_secs_f64(),
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        requests: lat.len(),
        errors,
    }
}

/// `corral serve` started as a child process on a free loopback port.
pub(crate) struct ChildServer {
    child: Child,
    pub(crate) base: String,
}

impl ChildServer {
    pub(crate) fn start(args: &Args) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the corral binary")?;
        let mut cmd = Command::new(exe);
        cmd.args(["serve", "--host", "127.0.0.1", "--port", "0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(d) = &args.model_dir {
            cmd.arg("--model-dir").arg(d);
        }
        cmd.args(["--model-name", &args.model_name()?]);
        if let Some(w) = args.workers {
            cmd.args(["--workers", &w.to_string()]);
        }
        if let Some(t) = args.threads {
            cmd.args(["--threads", &t.to_string()]);
        }
        let mut child = cmd.spawn().context("starting corral serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("corral: listening on ") {
                        break url.trim().to_owned();
                    }
                }
                _ => {
                    let _ = child.kill();
                    bail!("corral serve exited before listening");
                }
            }
        };
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self { child, base })
    }

    /// SIGTERM (a graceful drain), then wait.
    pub(crate) fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
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

/// infinity-emb serving the same model directory on a free loopback port.
struct Infinity {
    child: Child,
    base: String,
}

impl Infinity {
    pub(crate) fn start(args: &Args) -> anyhow::Result<Self> {
        let dir = ModelArgs {
            model_dir: args.model_dir.clone(),
            workers: None,
            threads: None,
            no_normalize: false,
            pooling: None,
            engine: Engine::Fast,
            quantize: Quantize::None,
            prompt: PromptArgs::default(),
        }
        .resolve_dir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("infinity_emb")
            .arg("v2")
            .arg("--model-id")
            .arg(&dir)
            .args([
                "--engine",
                "torch",
                "--device",
                "cpu",
                "--url-prefix",
                "/v1",
            ])
            .args([
                "--served-model-name",
                &args.model_name()?,
                "--port",
                &port.to_string(),
            ])
            .env("HF_HUB_OFFLINE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting infinity_emb")?;
        let me = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("infinity_emb did not listen within 180 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(me)
    }
}

impl Drop for Infinity {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn infinity_installed() -> bool {
    Command::new("python3")
        .args(["-c", "import infinity_emb"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) async fn all_points(
    base: &str,
    work: &Workload,
    documents: usize,
    corpus: &Arc<Vec<String>>,
    warmup: Duration,
    seconds: Duration,
) -> Vec<Point> {
    let mut points = Vec::new();
    for (clients, batch) in work.points(documents) {
        let p = load_point(base, work, corpus.clone(), clients, batch, warmup, seconds).await;
        eprintln!(
            "  {clients:>2} clients × {batch:>2}: {:.1} sentences/s, p50 {:.1} ms, p99 {:.1} ms ({} requests, {} errors)",
            p.sentences_per_s, p.p50_ms, p.p99_ms, p.requests, p.errors
        );
        points.push(p);
    }
    points
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
    let docs = args.documents;
    eprintln!(
        "corral serve ({} sentences from {}):",
        corpus.len(),
        args.corpus.display()
    );
    let have_infinity = args.url.is_none() && infinity_installed();
    let mut corral_rounds: Vec<Vec<Point>> = vec![];
    let mut infinity_rounds: Vec<Vec<Point>> = vec![];
    for round in 0..args.rounds.max(1) {
        eprintln!("round {round}: corral serve");
        corral_rounds.push(match &args.url {
            Some(url) => {
                all_points(
                    url.trim_end_matches('/'),
                    &work,
                    docs,
                    &corpus,
                    warmup,
                    seconds,
                )
                .await
            }
            None => {
                let server = ChildServer::start(&args)?;
                let points = all_points(&server.base, &work, docs, &corpus, warmup, seconds).await;
                server.stop();
                points
            }
        });
        if have_infinity {
            eprintln!("round {round}: infinity_emb (side by side, same client)");
            match Infinity::start(&args) {
                Ok(inf) => {
                    infinity_rounds
                        .push(all_points(&inf.base, &work, docs, &corpus, warmup, seconds).await);
                    drop(inf);
                }
                Err(e) => {
                    eprintln!("  could not start infinity_emb ({e:#}); quoting BASELINE.md");
                    infinity_rounds.clear();
                    break;
                }
            }
        }
    }
    let points = median_points(&corral_rounds);
    let measured_infinity = (!infinity_rounds.is_empty()
        && infinity_rounds.len() == corral_rounds.len())
    .then(|| median_points(&infinity_rounds));
    let infinity =
        "quoted from BASELINE.md (infinity_emb is not installed; not measured in this run)";
    if rerank {
        report_rerank(&corral_rounds, &infinity_rounds);
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
    for p in &points {
        println!(
            "| corral serve | {} × {} | {:.1} | {:.1} ms | {:.1} ms | {} |",
            p.clients, p.batch, p.sentences_per_s, p.p50_ms, p.p99_ms, p.errors
        );
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
                println!("| infinity-emb ({infinity}) | {c} × {b} | {s:.1} | {p50:.0} ms | {p99:.0} ms | |");
            }
        }
    }
    if let Some(s) = in_process {
        println!("| corral embed in process (pool, no HTTP) | 4 × 32 | {s:.1} | | | |");
    }
    println!();
    let mut measured_64 = None;
    if measured_infinity.is_some() {
        for (k, p) in points.iter().enumerate() {
            let ratios: Vec<f64> = corral_rounds
                .iter()
                .zip(&infinity_rounds)
                .map(|(c, i)| c[k].sentences_per_s / i[k].sentences_per_s)
                .collect();
            let (med, lo, hi) = crate::median_range(ratios);
            println!(
                "serve_ratio_measured_{}x{}: {med:.2}  (range {lo:.2}–{hi:.2} over {} alternating rounds; vs infinity-emb measured side by side)",
                p.clients,
                p.batch,
                corral_rounds.len()
            );
            if p.clients == 64 && p.batch == 1 {
                measured_64 = Some(med);
            }
        }
    }
    for (p, (_, _, quoted, _, _)) in points.iter().zip(INFINITY_QUOTED) {
        println!(
            "serve_ratio_{}x{}: {:.2}  (vs infinity-emb's figure quoted from BASELINE.md, not measured here)",
            p.clients,
            p.batch,
            p.sentences_per_s / quoted
        );
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

/// The rerank report: documents/s and latency per load point, and, when
/// infinity-emb ran side by side, the median ratio of documents/s (target
/// ≥ 2 at 16 clients) and of p50 at one client (target ≤ 1).
fn report_rerank(corral_rounds: &[Vec<Point>], infinity_rounds: &[Vec<Point>]) {
    let points = median_points(corral_rounds);
    println!("| system | clients × documents per request | documents/s | p50 | p99 | errors |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let row = |system: &str, p: &Point| {
        println!(
            "| {system} | {} × {} | {:.1} | {:.1} ms | {:.1} ms | {} |",
            p.clients, p.batch, p.sentences_per_s, p.p50_ms, p.p99_ms, p.errors
        );
    };
    for p in &points {
        row("corral serve", p);
    }
    if infinity_rounds.is_empty() || infinity_rounds.len() != corral_rounds.len() {
        println!();
        println!(
            "rerank_ratio: not measured (infinity_emb is not installed; no figure of it is quoted)"
        );
        return;
    }
    for p in &median_points(infinity_rounds) {
        row("infinity-emb (measured in this run)", p);
    }
    println!();
    for (k, p) in points.iter().enumerate() {
        let per_s = |f: fn(&Point) -> f64| {
            crate::median_range(
                corral_rounds
                    .iter()
                    .zip(infinity_rounds)
                    .map(|(c, i)| f(&c[k]) / f(&i[k]))
                    .collect(),
            )
        };
        let (med, lo, hi) = per_s(|p| p.sentences_per_s);
        println!(
            "rerank_ratio_{}x{}: {med:.2}  (documents/s, range {lo:.2}–{hi:.2} over {} alternating rounds; target ≥ 2.0 at 16 clients)",
            p.clients,
            p.batch,
            corral_rounds.len()
        );
        if p.clients == 1 {
            let (med, lo, hi) = per_s(|p| p.p50_ms);
            println!(
                "rerank_p50_ratio_1x{}: {med:.2}  (corral's p50 / infinity's, range {lo:.2}–{hi:.2}; target ≤ 1.0)",
                p.batch
            );
        }
    }
}
