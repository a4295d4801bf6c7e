//! `corral bench serve`: a closed-loop load client of the project's own,
//! on loopback, against `corral serve` started as a child process — 1, 16
//! and 64 clients sending single sentences from the corpus and 4 clients
//! sending batches of 32 — then `corral embed`'s in-process throughput with
//! the same batches, for the server's cost. infinity-emb runs side by side
//! only when `infinity_emb` is installed; otherwise its figures are quoted
//! from `BASELINE.md` (and the report says so).
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
    /// The dense-layer arithmetic of each `corral serve` measured, in turn
    /// within each round: `none` (fp32), `int8`, or both (comma-separated).
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
    /// Mean latency of every request answered during the point, warm-up
    /// included (what the server's `/metrics` counted too).
    mean_ms: f64,
    /// Where the time went, from the server's `/metrics` (one client only).
    split: Option<TimeSplit>,
}

/// Mean milliseconds per request over one load point, from the server's
/// `/metrics` (histogram sums ÷ counts, differences across the point):
/// the client's own mean latency, the server's HTTP handler time (parsing,
/// tokenising, the pool and the answer's encoding), the pool's queue time
/// and the engine's compute time (one forward pass with pooling).
#[derive(Debug, Clone, Copy)]
struct TimeSplit {
    client_ms: f64,
    handler_ms: f64,
    queue_ms: f64,
    compute_ms: f64,
}

impl TimeSplit {
    /// The median of each part over `splits`.
    fn median(splits: &[TimeSplit]) -> Option<TimeSplit> {
        if splits.is_empty() {
            return None;
        }
        let med = |f: fn(&TimeSplit) -> f64| {
            let mut v: Vec<f64> = splits.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        Some(TimeSplit {
            client_ms: med(|s| s.client_ms),
            handler_ms: med(|s| s.handler_ms),
            queue_ms: med(|s| s.queue_ms),
            compute_ms: med(|s| s.compute_ms),
        })
    }
}

/// (sum, count) of each histogram the split reads, from one `/metrics` text:
/// the HTTP duration of the embedding routes, the queue time, the compute
/// time.
#[derive(Debug, Clone, Copy, Default)]
struct Scrape {
    handler: (f64, f64),
    queue: (f64, f64),
    compute: (f64, f64),
}

impl Scrape {
    /// Parses the Prometheus text exposition `text`: every label set of a
    /// series is summed (for the HTTP duration, only the lines naming an
    /// embedding route).
    fn parse(text: &str) -> Self {
        use corral_server::telemetry::{COMPUTE_TIME, HTTP_DURATION, QUEUE_TIME};
        let mut me = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let name = series.split('{').next().unwrap_or(series);
            let slot = if name.starts_with(HTTP_DURATION) {
                if !series.contains("embed") {
                    continue;
                }
                &mut me.handler
            } else if name.starts_with(QUEUE_TIME) {
                &mut me.queue
            } else if name.starts_with(COMPUTE_TIME) {
                &mut me.compute
            } else {
                continue;
            };
            if name.ends_with("_sum") {
                slot.0 += value;
            } else if name.ends_with("_count") {
                slot.1 += value;
            }
        }
        me
    }

    /// Mean milliseconds per request between `before` and `self`.
    fn mean_ms(before: (f64, f64), after: (f64, f64)) -> f64 {
        let n = after.1 - before.1;
        if n > 0.0 {
            (after.0 - before.0) / n * 1e3
        } else {
            f64::NAN
        }
    }
}

/// The server's `/metrics` at `base`, parsed; `None` when it cannot be read
/// (a `--url` server without it).
async fn scrape(client: &reqwest::Client, base: &str) -> Option<Scrape> {
    let r = client.get(format!("{base}/metrics")).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    Some(Scrape::parse(&r.text().await.ok()?))
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
            mean_ms: med(rounds.iter().map(|r| r[k].mean_ms).collect()),
            split: TimeSplit::median(&rounds.iter().filter_map(|r| r[k].split).collect::<Vec<_>>()),
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
            let mut all = (0.0f64, 0usize);
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
                if ok {
                    all.0 += done.duration_since(sent).as_secs_f64() * 1e3;
                    all.1 += 1;
                }
                if done >= measure_from {
                    if ok {
                        lat.push(done.duration_since(sent).as_secs_f64() * 1e3);
                        sentences += batch;
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, sentences, errors, all)
        }));
    }
    let (mut lat, mut sentences, mut errors) = (Vec::new(), 0, 0);
    let mut all = (0.0f64, 0usize);
    for t in tasks {
        if let Ok((l, s, e, a)) = t.await {
            lat.extend(l);
            sentences += s;
            errors += e;
            all.0 += a.0;
            all.1 += a.1;
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
        mean_ms: all.0 / all.1.max(1) as f64,
        split: None,
    }
}

/// `corral serve` started as a child process on a free loopback port.
pub(crate) struct ChildServer {
    child: Child,
    pub(crate) base: String,
}

impl ChildServer {
    pub(crate) fn start(args: &Args, quantize: Quantize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the corral binary")?;
        let mut cmd = Command::new(exe);
        cmd.args(["serve", "--host", "127.0.0.1", "--port", "0"])
            .args(["--quantize", &quantize.to_string()])
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

/// Every load point against `base`, in order. At one client the point
/// also reads `/metrics` before and after for the [`TimeSplit`]; that
/// point's requests are counted from the first one sent (the warm-up's
/// included, which `/metrics` cannot tell apart), the client's mean over
/// the same requests.
pub(crate) async fn all_points(
    base: &str,
    work: &Workload,
    shapes: &[(usize, usize)],
    corpus: &Arc<Vec<String>>,
    warmup: Duration,
    seconds: Duration,
) -> Vec<Point> {
    let mut points = Vec::new();
    let http = reqwest::Client::new();
    for &(clients, batch) in shapes {
        let before = if clients == 1 {
            scrape(&http, base).await
        } else {
            None
        };
        let mut p = load_point(base, work, corpus.clone(), clients, batch, warmup, seconds).await;
        if let (Some(b), Some(a)) = (before, scrape(&http, base).await) {
            let handler_ms = Scrape::mean_ms(b.handler, a.handler);
            p.split = Some(TimeSplit {
                client_ms: p.mean_ms,
                handler_ms,
                queue_ms: Scrape::mean_ms(b.queue, a.queue),
                compute_ms: Scrape::mean_ms(b.compute, a.compute),
            });
        }
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
                    infinity_rounds.clear();
                    break;
                }
            }
        }
    }
    let measured_infinity = (!infinity_rounds.is_empty()
        && infinity_rounds.len() == corral_rounds[0].len())
    .then(|| median_points(&infinity_rounds));
    let infinity =
        "quoted from BASELINE.md (infinity_emb is not installed; not measured in this run)";
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
    for p in points {
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

/// At one client × one sentence, per mode: p50 and p99 against the
/// targets (≤ 12 ms fp32, ≤ 8 ms int8 on 2 cores), and where a lone
/// request's mean time goes ([`TimeSplit`], medians over the rounds).
fn report_split(modes: &[Quantize], medians: &[Vec<Point>]) {
    for (mode, points) in modes.iter().zip(medians) {
        let Some(p) = points.iter().find(|p| (p.clients, p.batch) == (1, 1)) else {
            continue;
        };
        let target = match mode {
            Quantize::None => 12,
            Quantize::Int8 => 8,
        };
        let name = match mode {
            Quantize::None => "fp32",
            Quantize::Int8 => "int8",
        };
        println!(
            "latency_1x1_{name}: p50 {:.2} ms, p99 {:.2} ms  (target p50 ≤ {target} ms on 2 cores)",
            p.p50_ms, p.p99_ms
        );
        if let Some(s) = p.split {
            let outside = s.client_ms - s.handler_ms;
            let inside = s.handler_ms - s.queue_ms - s.compute_ms;
            println!(
                "time_split_1x1_{name}: mean {:.2} ms = engine {:.2} + pool queue {:.2} + rest of the handler (parsing, tokenising, hops, answer) {:.2} + outside the handler (loopback, HTTP framing, client) {:.2}",
                s.client_ms, s.compute_ms, s.queue_ms, inside, outside
            );
        }
    }
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
