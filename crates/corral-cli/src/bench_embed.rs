//! `corral bench embed`: embedding throughput over a corpus (sentences per
//! second), for each workers × threads configuration, through the full pool
//! and raw (the same [`Embedder`] calls on plain threads, no pool; engine
//! per `--engine`) in the same run, printed next to the baseline figures.
//!
//! The pool is driven as `corral embed` drives it (requests of 32 texts,
//! eight per worker in flight); the raw run gets the same texts in the batches a
//! worker would form (by the embedder's costing rule, within
//! `max_batch_tokens` and one forward pass's limits), handed out to its
//! threads from a shared cursor. Raw and pool runs alternate.
//!
//! With `--quantize int8` or `bf16` it also prints the fidelity of the
//! quantised vectors: the minimum and mean cosine to the fp32 vectors of
//! the same engine, over the golden texts and over the corpus.
//!
//! Both tables say which kernel build (ISA) ran: the best the CPU has, or
//! the one `CORRAL_ISA` forces (`portable`, `avx2`, `avx512vnni-256`,
//! `avx512vnni-512`; see `corral_embed::fast::kernel_isa`).
//!
//! Each configuration runs in a child process of its own with
//! `RAYON_NUM_THREADS` and `CANDLE_NUM_THREADS` set to its thread count:
//! candle sizes its process-wide pool for element-wise ops from them once per
//! process, so one process cannot measure two thread counts fairly.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use corral_core::{BatchShape, Call, PoolConfig, PoolHandle};
use corral_embed::{EmbedBackend, EmbedSpec, Embedder, Engine, Quantize};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::embed_cmd::{requests_in_flight, start_pool};

/// Options of `corral bench embed`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// The corpus, one sentence per line.
    #[arg(long, default_value = "../shared/bench/corpus.txt")]
    pub(crate) corpus: PathBuf,
    /// The baseline figures to print alongside.
    #[arg(long, default_value = "../shared/bench/BASELINE.md")]
    pub(crate) baseline: PathBuf,
    /// Model directory (default: $CORRAL_MODEL_DIR, else the fetched default
    /// model).
    #[arg(long)]
    pub(crate) model_dir: Option<PathBuf>,
    /// Configurations as WORKERSxTHREADS, comma-separated.
    #[arg(long, default_value = "1x2,2x1")]
    pub(crate) configs: String,
    /// Forward pass: fast (Corral's own kernels) or candle. The raw (no
    /// pool) runs use the same engine, so the pair measures the pool's cost.
    #[arg(long, default_value_t = Engine::Fast)]
    pub(crate) engine: Engine,
    /// Dense-layer arithmetic: none (fp32), int8 or bf16. With int8 or bf16
    /// the fidelity to fp32 (cosine over the golden texts and the corpus)
    /// is printed too.
    #[arg(long, default_value_t = Quantize::None)]
    pub(crate) quantize: Quantize,
    /// The golden texts (sentence-transformers' reference JSON) over which
    /// the quantised modes' fidelity is measured.
    #[arg(long, default_value = "../shared/golden/minilm_l6_v2_public.json")]
    pub(crate) golden: PathBuf,
    /// Skip the fidelity table (for repeated speed-only runs, e.g.
    /// benches/ab.sh rounds).
    #[arg(long)]
    pub(crate) no_fidelity: bool,
    /// Timed runs per measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
    /// Texts per request sent to the pool.
    #[arg(long, default_value_t = 32)]
    pub(crate) request_size: usize,
    /// Run every configuration in this process instead of one child process
    /// each (thread counts of candle's element-wise pool are then shared).
    #[arg(long)]
    pub(crate) in_process: bool,
    /// Internal: run one configuration and print its result as JSON.
    #[arg(long, hide = true)]
    pub(crate) child: Option<String>,
}

/// One configuration's measurements (sentences per second, one per run).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Measured {
    workers: usize,
    threads: usize,
    raw: Vec<f64>,
    pool: Vec<f64>,
    /// CPU milliseconds per sentence (the whole process), per run; empty
    /// where the platform does not say.
    #[serde(default)]
    raw_cpu: Vec<f64>,
    #[serde(default)]
    pool_cpu: Vec<f64>,
    /// The kernel build that ran (`corral_embed::fast::kernel_isa`).
    #[serde(default)]
    isa: String,
}

/// CPU time this process has used (user + system), from `/proc/self/stat`
/// (Linux; clock ticks taken as 100 per second).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn parse_config(s: &str) -> anyhow::Result<(usize, usize)> {
    let (w, t) = s
        .trim()
        .split_once(['x', 'X', '*'])
        .with_context(|| format!("configuration {s:?} is not WORKERSxTHREADS"))?;
    let (w, t): (usize, usize) = (w.trim().parse()?, t.trim().parse()?);
    if w == 0 || t == 0 {
        bail!("configuration {s:?}: workers and threads must be at least 1");
    }
    Ok((w, t))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// Runs `corral bench embed`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if args.runs == 0 || args.request_size == 0 {
        bail!("--runs and --request-size must be at least 1");
    }
    let model_dir = corral_embed::model_dir::resolve_model_dir(args.model_dir.clone())?;
    let corpus = read_corpus(&args.corpus)?;
    if let Some(config) = &args.child {
        let (w, t) = parse_config(config)?;
        let m = measure(&model_dir, &corpus, w, t, &args).await?;
        println!("{}", serde_json::to_string(&m)?);
        return Ok(());
    }
    let configs = args
        .configs
        .split(',')
        .map(parse_config)
        .collect::<anyhow::Result<Vec<_>>>()?;
    eprintln!(
        "corral bench embed: {} sentences from {}, model {}, {} run(s) each, requests of {}",
        corpus.len(),
        args.corpus.display(),
        model_dir.display(),
        args.runs,
        args.request_size
    );
    let mut results = Vec::new();
    for &(w, t) in &configs {
        let m = if args.in_process {
            measure(&model_dir, &corpus, w, t, &args).await?
        } else {
            match measure_in_child(w, t) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("   child process failed ({e:#}); measuring in this process");
                    measure(&model_dir, &corpus, w, t, &args).await?
                }
            }
        };
        results.push(m);
    }
    print_report(&results, &args, corpus.len());
    if args.quantize != Quantize::None && !args.no_fidelity {
        let spec = EmbedSpec::new(&model_dir).with_engine(args.engine);
        let golden = read_golden(&args.golden)?;
        let mode = args.quantize;
        let report =
            tokio::task::spawn_blocking(move || fidelity(&spec, mode, &golden, &corpus)).await??;
        println!("{report}");
    }
    Ok(())
}

#[derive(Deserialize)]
struct Golden {
    cases: Vec<GoldenCase>,
}

#[derive(Deserialize)]
struct GoldenCase {
    text: String,
}

fn read_golden(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the golden texts {}", path.display()))?;
    let golden: Golden = serde_json::from_str(&text)
        .with_context(|| format!("parsing the golden texts {}", path.display()))?;
    Ok(golden.cases.into_iter().map(|c| c.text).collect())
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(f64::MIN_POSITIVE)
}

/// Minimum and mean cosine of `quantized`'s vectors to `reference`'s.
fn cosine_stats(
    reference: &mut Embedder,
    quantized: &mut Embedder,
    texts: &[String],
) -> anyhow::Result<(f64, f64, usize)> {
    let (mut min, mut sum, mut argmin) = (f64::MAX, 0.0, 0);
    for (i, chunk) in texts.chunks(64).enumerate() {
        let a = reference.embed(chunk)?;
        let b = quantized.embed(chunk)?;
        for (j, (x, y)) in a.iter().zip(&b).enumerate() {
            let c = cosine(x, y);
            sum += c;
            if c < min {
                (min, argmin) = (c, i * 64 + j);
            }
        }
    }
    Ok((min, sum / texts.len().max(1) as f64, argmin))
}

/// The fidelity table: `mode` against fp32 (same engine), golden texts
/// and corpus.
fn fidelity(
    spec: &EmbedSpec,
    mode: Quantize,
    golden: &[String],
    corpus: &[String],
) -> anyhow::Result<String> {
    let mut reference = Embedder::load(spec, 1)?;
    let mut quantized = Embedder::load(&spec.clone().with_quantize(mode), 1)?;
    let isa = corral_embed::fast::kernel_isa();
    let mut out = format!(
        "\nFidelity, {mode} vs fp32 embeddings (cosine)\n\n| texts | count | min | mean | ISA |\n|---|---|---|---|---|\n",
    );
    for (name, texts) in [("golden", golden), ("corpus", corpus)] {
        let (min, mean, argmin) = cosine_stats(&mut reference, &mut quantized, texts)?;
        out.push_str(&format!(
            "| {name} | {} | {min:.6} | {mean:.6} | {isa} |\n",
            texts.len()
        ));
        tracing::debug!(
            "lowest {name} cosine for text {argmin}: {:?}",
            texts[argmin]
        );
    }
    Ok(out)
}

fn read_corpus(path: &Path) -> anyhow::Result<Vec<String>> {
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

/// Re-runs this command with `--child WxT` and the thread variables set.
fn measure_in_child(workers: usize, threads: usize) -> anyhow::Result<Measured> {
    let exe = std::env::current_exe().context("locating the corral executable")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    eprintln!("-- {workers} worker(s) × {threads} thread(s) (child process)");
    let out = Command::new(exe)
        .args(&args)
        .arg("--child")
        .arg(format!("{workers}x{threads}"))
        .env("RAYON_NUM_THREADS", threads.to_string())
        .env("CANDLE_NUM_THREADS", threads.to_string())
        .stderr(Stdio::inherit())
        .output()
        .context("running the benchmark child process")?;
    if !out.status.success() {
        bail!(
            "the benchmark child for {workers}x{threads} failed ({})",
            out.status
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("the benchmark child printed no result")?;
    Ok(serde_json::from_str(line)?)
}

/// Requests of `request_size` texts packed, in corpus order, into the
/// batches a worker would form: requests join while the batch, costed by
/// the embedder's rule ([`Embedder::batching`]), keeps `max_batch_tokens`,
/// `max_batch_requests` and the forward's limits; a request over the
/// forward's limits by itself is cut into forwards as the pool cuts it.
/// Each batch is one forward pass.
fn worker_batches(
    embedder: &Embedder,
    corpus: &[String],
    request_size: usize,
    pool: &PoolConfig,
) -> Vec<Vec<String>> {
    let batching = embedder.batching();
    let mut batches = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let (mut shape, mut requests) = (BatchShape::default(), 0usize);
    for request in corpus.chunks(request_size) {
        let costs: Vec<usize> = request
            .iter()
            .map(|t| embedder.estimate_tokens(t))
            .collect();
        let own = costs.iter().fold(BatchShape::default(), |s, &c| s.with(c));
        let grown = shape.join(own);
        if requests > 0
            && (batching.cost(grown) > pool.max_batch_tokens
                || !batching.fits(grown)
                || requests + 1 > pool.max_batch_requests)
        {
            batches.push(std::mem::take(&mut current));
            (shape, requests) = (BatchShape::default(), 0);
        }
        if requests == 0 && !batching.fits(own) {
            for forward in batching.forwards(&costs) {
                batches.push(request[forward].to_vec());
            }
            continue;
        }
        current.extend(request.iter().cloned());
        shape = shape.join(own);
        requests += 1;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

async fn measure(
    model_dir: &Path,
    corpus: &[String],
    workers: usize,
    threads: usize,
    args: &Args,
) -> anyhow::Result<Measured> {
    let spec = EmbedSpec::new(model_dir)
        .with_engine(args.engine)
        .with_quantize(args.quantize);
    let pool_config = PoolConfig {
        name: "corral-bench".into(),
        workers,
        threads_per_worker: Some(threads),
        ..PoolConfig::default()
    };
    let n = corpus.len() as f64;

    // Raw: the same Embedder calls on plain threads, no pool.
    let mut embedders = {
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || {
            (0..workers)
                .map(|_| Embedder::load(&spec, threads))
                .collect::<Result<Vec<_>, _>>()
        })
        .await??
    };
    let batches = std::sync::Arc::new(worker_batches(
        &embedders[0],
        corpus,
        args.request_size,
        &pool_config,
    ));
    // The full pool, fed as `corral embed` feeds it: requests of
    // `request_size` texts, eight per worker in flight.
    let in_flight = requests_in_flight(&pool_config);
    let handle = start_pool(spec, pool_config).await?;
    let requests: Vec<Vec<String>> = corpus
        .chunks(args.request_size)
        .map(<[String]>::to_vec)
        .collect();

    // Raw and pool runs alternate, so that drift in the machine's load
    // affects both alike. Run 0 warms both up on a little work.
    let (mut raw, mut pool) = (Vec::new(), Vec::new());
    let (mut raw_cpu, mut pool_cpu) = (Vec::new(), Vec::new());
    let cpu_ms_per_sentence = |start: Option<f64>| Some((cpu_seconds()? - start?) * 1000.0 / n);
    for run in 0..=args.runs {
        let take = |len: usize| if run == 0 { workers.min(len) } else { len };

        let (mut e, b) = (std::mem::take(&mut embedders), batches.clone());
        let take_batches = take(b.len());
        let cpu = cpu_seconds();
        let started = Instant::now();
        embedders = tokio::task::spawn_blocking(move || {
            let next = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for embedder in e.iter_mut() {
                    let (next, batches) = (&next, &b[..take_batches]);
                    s.spawn(move || loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(batch) = batches.get(i) else { break };
                        embedder.embed(batch).expect("raw embedding failed");
                    });
                }
            });
            e
        })
        .await?;
        let raw_rate = n / started.elapsed().as_secs_f64();
        let raw_ms = cpu_ms_per_sentence(cpu);

        let cpu = cpu_seconds();
        let started = Instant::now();
        embed_windowed(&handle, &requests[..take(requests.len())], in_flight).await?;
        let pool_rate = n / started.elapsed().as_secs_f64();
        let pool_ms = cpu_ms_per_sentence(cpu);
        if run > 0 {
            eprintln!("   run {run}: raw {raw_rate:.1}, pool {pool_rate:.1} sentences/s");
            raw.push(raw_rate);
            pool.push(pool_rate);
            if let (Some(r), Some(p)) = (raw_ms, pool_ms) {
                eprintln!("          CPU per sentence: raw {r:.2} ms, pool {p:.2} ms");
                raw_cpu.push(r);
                pool_cpu.push(p);
            }
        }
    }
    let _ = handle.shutdown(Duration::from_secs(10)).await;
    Ok(Measured {
        workers,
        threads,
        raw,
        pool,
        raw_cpu,
        pool_cpu,
        isa: corral_embed::fast::kernel_isa().to_owned(),
    })
}

/// Sends `requests` keeping at most `in_flight` of them running, and waits
/// for all the answers.
async fn embed_windowed(
    handle: &PoolHandle<EmbedBackend>,
    requests: &[Vec<String>],
    in_flight: usize,
) -> anyhow::Result<()> {
    let mut pending = VecDeque::new();
    for r in requests {
        if pending.len() >= in_flight {
            let front: JoinHandle<_> = pending.pop_front().expect("non-empty");
            front.await??;
        }
        let (h, r) = (handle.clone(), r.clone());
        pending.push_back(tokio::spawn(async move { h.call_batch(r).await }));
    }
    for t in pending {
        t.await??;
    }
    Ok(())
}

/// Baseline rows (system, configuration, sentences/s) from BASELINE.md's
/// throughput table.
fn baseline_rows(path: &Path) -> Vec<(String, String, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            if cells.len() != 3 {
                return None;
            }
            let figure = cells[2].trim_matches('*');
            figure.parse::<f64>().ok()?;
            Some((cells[0].to_owned(), cells[1].to_owned(), figure.to_owned()))
        })
        .collect()
}

fn print_report(results: &[Measured], args: &Args, sentences: usize) {
    println!(
        "\nEmbedding throughput, {sentences} sentences, sentences/s (median of {} runs)\n",
        args.runs
    );
    println!(
        "| configuration | raw, no pool | through the pool | pool cost (wall) \
         | CPU ms/sentence raw / pool | pool cost (CPU) | ISA |"
    );
    println!("|---|---|---|---|---|---|---|");
    for m in results {
        let (raw, pool) = (median(&m.raw), median(&m.pool));
        let (raw_cpu, pool_cpu) = (median(&m.raw_cpu), median(&m.pool_cpu));
        println!(
            "| {} worker{} × {} thread{} | {raw:.1} | {pool:.1} | {:+.1}% | {raw_cpu:.2} / {pool_cpu:.2} | {:+.1}% | {} |",
            m.workers,
            if m.workers == 1 { "" } else { "s" },
            m.threads,
            if m.threads == 1 { "" } else { "s" },
            (1.0 - pool / raw) * 100.0,
            (pool_cpu / raw_cpu - 1.0) * 100.0,
            m.isa
        );
    }
    println!(
        "\n(pool cost: how much lower the pool's throughput is, or how much more CPU \
         it spends per sentence, than the raw run's in the same process)"
    );
    let rows = baseline_rows(&args.baseline);
    if !rows.is_empty() {
        println!("\nBaseline ({}):\n", args.baseline.display());
        println!("| system | configuration | sentences/s |");
        println!("|---|---|---|");
        for (system, config, figure) in rows {
            println!("| {system} | {config} | {figure} |");
        }
    }
}
