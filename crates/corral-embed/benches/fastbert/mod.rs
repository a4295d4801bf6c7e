//! The encoder bench's FastBert-only parts: the per-op profile of a forward
//! (from FastBert's op spans, summed by an [`OpTimer`]) and the
//! single-sentence latency section (one short text alone, a batch of 1,
//! fp32 and int8, on one and two threads, each on a private rayon pool the
//! way a worker runs it).

use std::path::Path;
use std::time::{Duration, Instant};

use corral_embed::fast::{FastBert, FastBertConfig, Int8Layers, OpTimer};
use tokenizers::Tokenizer;
use tracing_subscriber::layer::SubscriberExt;

use super::{fast_embed, tokenize, Batch, Res};

/// The per-op table's rows: FastBert's op span names and their labels.
const OP_LABELS: [(&str, &str); 8] = [
    ("embeddings", "embeddings (gather+sum+LN)"),
    ("qkv_matmul", "QKV matmul (+bias)"),
    ("attention", "attention (scores+softmax+context)"),
    ("attn_out_matmul", "attn-out matmul (+residual)"),
    ("ffn_in_matmul", "FFN-in matmul"),
    ("bias_gelu", "bias+GELU"),
    ("ffn_out_matmul", "FFN-out matmul (+residual)"),
    ("layer_norm", "bias+LayerNorm (x2)"),
];

/// Per-op times of one forward + mean pool + normalise of `b` on the
/// calling thread (one thread), averaged over `iters` calls, labelled and
/// in the order of [`OP_LABELS`].
pub(crate) fn op_profile(
    fb: &mut FastBert,
    b: &Batch,
    iters: usize,
) -> Res<Vec<(&'static str, Duration)>> {
    fast_embed(fb, b, 1)?;
    let timer = OpTimer::new();
    let subscriber = tracing_subscriber::registry().with(timer.clone());
    tracing::subscriber::with_default(subscriber, || -> Res<()> {
        for _ in 0..iters {
            fast_embed(fb, b, 1)?;
        }
        Ok(())
    })?;
    let p = timer.times();
    let calls = p.calls.max(1) as u32;
    Ok(OP_LABELS
        .iter()
        .map(|&(op, label)| (label, p.get(op).map_or(Duration::ZERO, |o| o.time) / calls))
        .collect())
}

/// Prints the p50 and p99 latency of forward + mean pool + normalise of
/// `sentence` alone, for each engine and thread count.
pub(crate) fn print_single_sentence_latency(
    tok: &Tokenizer,
    sentence: &str,
    weights: &Path,
    fcfg: &FastBertConfig,
) -> Res<()> {
    let b = tokenize(tok, &[sentence])?;
    let (warmup, n) = (20, 200);
    println!(
        "\nsingle sentence latency, batch 1 ({} tokens: {sentence:?}), forward + mean pool + normalise, {n} calls after {warmup} warm-up:",
        b.seq
    );
    println!(
        "  {:<16} {:>7} {:>9} {:>9}",
        "engine", "threads", "p50 ms", "p99 ms"
    );
    for int8 in [false, true] {
        let mut fb = FastBert::load(weights, fcfg)?;
        if int8 && !fb.quantize(Int8Layers::DEFAULT_INT8) {
            println!("  FastBert int8: skipped (no AVX2 for the int8 kernel)");
            continue;
        }
        for threads in [1, 2] {
            let (p50, p99) = single_latency(&mut fb, &b, threads, warmup, n)?;
            println!(
                "  {:<16} {:>7} {:>9.3} {:>9.3}",
                if int8 {
                    "FastBert int8"
                } else {
                    "FastBert fp32"
                },
                threads,
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}

/// Forward + mean pool + normalise of the one-text batch `b` on a private
/// rayon pool of `threads` threads (as a worker runs it): `warmup` untimed
/// calls, then the 50th and 99th percentile of `n` timed ones.
fn single_latency(
    fb: &mut FastBert,
    b: &Batch,
    threads: usize,
    warmup: usize,
    n: usize,
) -> Res<(Duration, Duration)> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    pool.install(|| -> Res<(Duration, Duration)> {
        for _ in 0..warmup {
            fast_embed(fb, b, threads)?;
        }
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            fast_embed(fb, b, threads)?;
            times.push(t.elapsed());
        }
        times.sort();
        let pct = |p: usize| times[(n * p).div_ceil(100).clamp(1, n) - 1];
        Ok((pct(50), pct(99)))
    })
}
