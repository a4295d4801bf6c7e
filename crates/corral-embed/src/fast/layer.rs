//! One BERT encoder layer over packed token rows:
//!
//! 1. `qkv = x·W_qkv + b_qkv` — one matmul for Q, K and V (bias pre-filled,
//!    gemm accumulates onto it);
//! 2. per-sequence, per-head attention reading Q/K/V strided (see
//!    [`super::attention`]);
//! 3. `x ← LayerNorm(x + ctx·W_o + b_o)` — gemm accumulates into `x` itself
//!    (the residual add costs nothing), then one fused bias + norm pass;
//! 4. `inter = gelu(x·W_i + b_i)` — matmul, then one fused bias + GELU pass;
//! 5. `x ← LayerNorm(x + inter·W_o2 + b_o2)` as in 3.
//!
//! Each step runs inside its op span (see [`super::op_timer`]).
//!
//! This module owns [`EncoderLayer`] and [`Scratch`] (the buffers reused
//! across layers and batches).

use rayon::prelude::*;

use super::activation;
use super::attention::{self, SeqSpan};
use super::bf16::BfLinear;
use super::layer_norm::LayerNorm;
use super::matmul::Linear;
use super::op_timer::op_span;
use super::qmatmul::{QLinear, QuantizedRows};

/// A dense layer in fp32, int8 or bf16; each leaves the bias to the
/// caller's fused pass.
#[derive(Debug, Clone)]
pub(crate) enum Dense {
    /// fp32 weights, `gemm`.
    F32(Linear),
    /// int8 weights per output channel, activations quantised per row.
    Int8(QLinear),
    /// bf16 weights and activations, fp32 sums.
    Bf16(BfLinear),
}

impl Dense {
    /// Output features.
    pub(crate) fn n(&self) -> usize {
        match self {
            Self::F32(l) => l.n,
            Self::Int8(l) => l.n,
            Self::Bf16(l) => l.n,
        }
    }

    /// The bias, `[n]`.
    pub(crate) fn bias(&self) -> &[f32] {
        match self {
            Self::F32(l) => &l.bias,
            Self::Int8(l) => &l.bias,
            Self::Bf16(l) => &l.bias,
        }
    }

    /// `out (+)= x · Wᵀ` for `m` rows, as [`Linear::forward_no_bias`];
    /// `q` holds the quantised rows of an int8 layer.
    pub(crate) fn forward_no_bias(
        &self,
        x: &[f32],
        out: &mut [f32],
        m: usize,
        accumulate: bool,
        threads: usize,
        q: &mut QuantizedRows,
    ) {
        match self {
            Self::F32(l) => l.forward_no_bias(x, out, m, accumulate, threads),
            Self::Int8(l) => l.forward_no_bias(x, out, m, accumulate, threads, q),
            Self::Bf16(l) => l.forward_no_bias(x, out, m, accumulate, threads),
        }
    }

    /// Packs an fp32 layer's weights for `isa`'s dense kernel where it has
    /// one (see [`Linear::pack_for`]); an int8 or bf16 layer is left as it
    /// is (packed when made).
    pub(crate) fn pack_for(&mut self, isa: super::Isa) {
        if let Self::F32(l) = self {
            l.pack_for(isa);
        }
    }

    /// Turns an fp32 layer whose input leaves `norm` into int8, smoothing
    /// the input's channels by the norm's parameters (see
    /// [`QLinear::from_torch_smoothed`]).
    pub(crate) fn quantize_smoothed(&mut self, norm: &LayerNorm, k: usize) {
        if let Self::F32(l) = self {
            assert_eq!(l.k, k, "input width");
            let w = l.torch_weights().into_owned();
            let f = QLinear::smoothing_for_norm(&w, l.n, l.k, &norm.gamma, &norm.beta);
            *self = Self::Int8(QLinear::from_torch_smoothed(
                &w,
                std::mem::take(&mut l.bias),
                l.n,
                l.k,
                &f,
            ));
        }
    }

    /// Caps an int8 layer's activation levels (see
    /// [`QLinear::set_max_levels`]); an fp32 layer is left as it is.
    pub(crate) fn set_max_levels(&mut self, levels: u32) {
        if let Self::Int8(q) = self {
            q.set_max_levels(levels);
        }
    }

    /// Turns an fp32 layer into bf16 (an int8 or bf16 one stays as it is).
    pub(crate) fn quantize_bf16_in_place(&mut self) {
        self.convert_f32(|w, bias, n, k| Self::Bf16(BfLinear::from_torch(w, bias, n, k)));
    }

    /// Turns an fp32 layer into int8 (an int8 one stays as it is).
    pub(crate) fn quantize_in_place(&mut self) {
        self.convert_f32(|w, bias, n, k| Self::Int8(QLinear::from_torch(w, bias, n, k)));
    }

    /// Replaces an fp32 layer by `to(W, bias, n, k)`, `W` in PyTorch
    /// layout; any other layer stays as it is.
    fn convert_f32(&mut self, to: impl FnOnce(&[f32], Vec<f32>, usize, usize) -> Self) {
        if let Self::F32(l) = self {
            let w = l.torch_weights().into_owned();
            *self = to(&w, std::mem::take(&mut l.bias), l.n, l.k);
        }
    }
}

/// Weights of one encoder layer.
#[derive(Debug, Clone)]
pub(crate) struct EncoderLayer {
    /// Fused Q|K|V projection, `[hidden, 3·hidden]`.
    pub(crate) qkv: Dense,
    /// Attention output projection.
    pub(crate) attn_out: Dense,
    /// Layer norm after attention.
    pub(crate) attn_norm: LayerNorm,
    /// Feed-forward up projection (`intermediate`).
    pub(crate) ffn_in: Dense,
    /// Feed-forward down projection (`output`).
    pub(crate) ffn_out: Dense,
    /// Layer norm after the feed-forward block.
    pub(crate) ffn_norm: LayerNorm,
    /// Attention heads.
    pub(crate) heads: usize,
}

/// Work buffers, grown to the largest batch seen and then reused.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// `[tokens, 3·hidden]`.
    pub(crate) qkv: Vec<f32>,
    /// `[tokens, hidden]`.
    pub(crate) ctx: Vec<f32>,
    /// `[tokens, intermediate]`.
    pub(crate) inter: Vec<f32>,
    /// One row of attention scores.
    pub(crate) scores: Vec<f32>,
    /// The contexts of the head groups when one sequence's attention is
    /// split over threads, `[tokens, hidden]` in all.
    pub(crate) attn_parts: Vec<f32>,
    /// The quantised input of an int8 layer.
    pub(crate) q: QuantizedRows,
}

impl EncoderLayer {
    /// Hidden size.
    pub(crate) fn hidden(&self) -> usize {
        self.attn_out.n()
    }

    /// Transforms the packed hidden states `x` (`[tokens, hidden]`) in place.
    pub(crate) fn forward(
        &self,
        x: &mut [f32],
        spans: &[SeqSpan],
        scratch: &mut Scratch,
        threads: usize,
    ) {
        let h = self.hidden();
        let tokens = x.len() / h;
        let n3 = self.qkv.n();
        let ni = self.ffn_in.n();
        grow(&mut scratch.qkv, tokens * n3);
        grow(&mut scratch.ctx, tokens * h);
        grow(&mut scratch.inter, tokens * ni);
        let qkv = &mut scratch.qkv[..tokens * n3];
        let ctx = &mut scratch.ctx[..tokens * h];
        let inter = &mut scratch.inter[..tokens * ni];

        op_span!("qkv_matmul").in_scope(|| {
            for row in qkv.chunks_exact_mut(n3) {
                row.copy_from_slice(self.qkv.bias());
            }
            self.qkv
                .forward_no_bias(x, qkv, tokens, true, threads, &mut scratch.q);
        });
        op_span!("attention").in_scope(|| {
            par_attention(
                qkv,
                ctx,
                spans,
                self.heads,
                h / self.heads,
                &mut scratch.scores,
                &mut scratch.attn_parts,
                threads,
            )
        });
        op_span!("attn_out_matmul").in_scope(|| {
            self.attn_out
                .forward_no_bias(ctx, x, tokens, true, threads, &mut scratch.q)
        });
        op_span!("layer_norm").in_scope(|| {
            par_rows(x, h, threads, |rows| {
                self.attn_norm
                    .forward_in_place(rows, Some(self.attn_out.bias()))
            })
        });
        op_span!("ffn_in_matmul").in_scope(|| {
            self.ffn_in
                .forward_no_bias(x, inter, tokens, false, threads, &mut scratch.q)
        });
        op_span!("bias_gelu").in_scope(|| {
            par_rows(inter, ni, threads, |rows| {
                activation::bias_gelu_in_place(rows, self.ffn_in.bias())
            })
        });
        op_span!("ffn_out_matmul").in_scope(|| {
            self.ffn_out
                .forward_no_bias(inter, x, tokens, true, threads, &mut scratch.q)
        });
        op_span!("layer_norm").in_scope(|| {
            par_rows(x, h, threads, |rows| {
                self.ffn_norm
                    .forward_in_place(rows, Some(self.ffn_out.bias()))
            })
        });
    }
}

/// Runs `f` over whole rows of `x` (`width` values each): on the calling
/// thread when `threads <= 1`, else in about `threads` chunks on the
/// current rayon pool. Each row's result does not depend on the split.
pub(crate) fn par_rows(x: &mut [f32], width: usize, threads: usize, f: impl Fn(&mut [f32]) + Sync) {
    let rows = x.len() / width.max(1);
    if threads <= 1 || rows < 2 {
        f(x);
        return;
    }
    let per = rows.div_ceil(threads) * width;
    x.par_chunks_mut(per).for_each(&f);
}

/// [`attention::attention`] on about `threads` threads of the current
/// rayon pool (`threads <= 1`: the calling thread, with `scratch`). With at
/// least as many sequences as threads, the sequences are shared out in
/// groups of similar token counts, each computed whole by one thread into
/// `ctx`. With fewer (a single sentence, say), each sequence's heads are
/// split into about `threads / sequences` ranges, each computed by one
/// thread into its part of `parts` ([`attention::attention_heads`]) and
/// then copied into its columns of `ctx`. Every (sequence, head) is
/// computed by the same code either way, so results do not depend on the
/// split: they are bit-identical to the single-thread path.
#[allow(clippy::too_many_arguments)]
fn par_attention(
    qkv: &[f32],
    ctx: &mut [f32],
    spans: &[SeqSpan],
    heads: usize,
    head_dim: usize,
    scratch: &mut Vec<f32>,
    parts: &mut Vec<f32>,
    threads: usize,
) {
    let groups = threads.div_ceil(spans.len().max(1)).min(heads);
    if threads <= 1 || (spans.len() < 2 && groups < 2) {
        attention::attention(qkv, ctx, spans, heads, head_dim, scratch);
        return;
    }
    if groups > 1 {
        par_attention_heads(qkv, ctx, spans, heads, head_dim, parts, groups);
        return;
    }
    let hidden = heads * head_dim;
    let tokens: usize = spans.iter().map(|s| s.len).sum();
    let target = tokens.div_ceil(threads).max(1);
    // Groups of consecutive spans, each over a contiguous token range.
    let mut jobs = Vec::new();
    let (mut rest_ctx, mut first, mut done) = (ctx, 0usize, 0usize);
    while first < spans.len() {
        let t0 = spans[first].start;
        let mut last = first;
        let mut count = 0;
        while last < spans.len() && (count < target || last == first) {
            count += spans[last].len;
            last += 1;
        }
        let t1 = t0 + count;
        let rebased: Vec<SeqSpan> = spans[first..last]
            .iter()
            .map(|s| SeqSpan {
                start: s.start - t0,
                len: s.len,
            })
            .collect();
        let (mine, tail) = std::mem::take(&mut rest_ctx).split_at_mut((t1 - done) * hidden);
        let mine = &mut mine[(t0 - done) * hidden..];
        rest_ctx = tail;
        done = t1;
        jobs.push((&qkv[t0 * 3 * hidden..t1 * 3 * hidden], mine, rebased));
        first = last;
    }
    jobs.into_par_iter().for_each(|(q, c, sp)| {
        let mut scratch = Vec::new();
        attention::attention(q, c, &sp, heads, head_dim, &mut scratch);
    });
}

/// [`par_attention`] with each sequence's heads split into `groups` ranges
/// of about equal size, one rayon job per (sequence, head range).
fn par_attention_heads(
    qkv: &[f32],
    ctx: &mut [f32],
    spans: &[SeqSpan],
    heads: usize,
    head_dim: usize,
    parts: &mut Vec<f32>,
    groups: usize,
) {
    let hidden = heads * head_dim;
    let row = 3 * hidden;
    // (span, head range), in the order their outputs sit in `parts`.
    let layout: Vec<(SeqSpan, std::ops::Range<usize>)> = spans
        .iter()
        .flat_map(|&s| (0..groups).map(move |g| (s, g * heads / groups..(g + 1) * heads / groups)))
        .filter(|(s, r)| s.len > 0 && !r.is_empty())
        .collect();
    let total: usize = layout.iter().map(|(s, r)| s.len * r.len() * head_dim).sum();
    grow(parts, total);
    let mut rest = &mut parts[..total];
    let mut jobs = Vec::with_capacity(layout.len());
    for (s, r) in &layout {
        let (mine, tail) = std::mem::take(&mut rest).split_at_mut(s.len * r.len() * head_dim);
        rest = tail;
        jobs.push((
            &qkv[s.start * row..(s.start + s.len) * row],
            mine,
            s.len,
            r.clone(),
        ));
    }
    jobs.into_par_iter().for_each(|(q, out, len, r)| {
        let mut scratch = Vec::new();
        let span = [SeqSpan { start: 0, len }];
        attention::attention_heads(q, out, &span, heads, head_dim, r, &mut scratch);
    });
    let mut at = 0;
    for (s, r) in &layout {
        let w = r.len() * head_dim;
        let part = &parts[at..at + s.len * w];
        at += s.len * w;
        for (i, src) in part.chunks_exact(w).enumerate() {
            let t = (s.start + i) * hidden + r.start * head_dim;
            ctx[t..t + w].copy_from_slice(src);
        }
    }
}

/// Grows `v` to at least `n` elements (never shrinks, so buffers are reused).
pub(crate) fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::super::test_util::random_vec;
    use super::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    /// `par_attention` over random Q|K|V rows for sequences of `lens`.
    fn attention_on_threads(lens: &[usize], heads: usize, d: usize, threads: usize) -> Vec<f32> {
        let hidden = heads * d;
        let tokens: usize = lens.iter().sum();
        let qkv = random_vec(tokens * 3 * hidden, 7 + hidden as u64);
        let mut spans = Vec::new();
        let mut start = 0;
        for &len in lens {
            spans.push(SeqSpan { start, len });
            start += len;
        }
        let mut ctx = vec![f32::NAN; tokens * hidden];
        let (mut scratch, mut parts) = (Vec::new(), Vec::new());
        pool(threads).install(|| {
            par_attention(
                &qkv,
                &mut ctx,
                &spans,
                heads,
                d,
                &mut scratch,
                &mut parts,
                threads,
            )
        });
        ctx
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Splitting attention over threads, by heads within one sequence or
    /// by sequences, gives exactly the single-thread result.
    #[test]
    fn attention_on_several_threads_is_bit_identical_to_one() {
        let cases: [&[usize]; 5] = [&[23], &[1], &[9, 1], &[5, 0, 17, 3, 11], &[0]];
        for &(heads, d) in &[(12usize, 32usize), (3, 8), (5, 7), (1, 16), (2, 64)] {
            for lens in cases {
                let want = attention_on_threads(lens, heads, d, 1);
                assert!(want.iter().all(|v| v.is_finite()));
                for threads in [2, 3, 4, 8] {
                    let got = attention_on_threads(lens, heads, d, threads);
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "heads={heads} d={d} lens={lens:?} threads={threads}"
                    );
                }
            }
        }
    }

    /// The row-wise passes (bias + GELU, bias + layer norm) split one
    /// sequence's rows over the threads too, with the same results.
    #[test]
    fn par_rows_splits_one_sequence_over_threads() {
        let (rows, width) = (7, 10);
        let bias = random_vec(width, 2);
        let input = random_vec(rows * width, 3);
        let mut want = input.clone();
        par_rows(&mut want, width, 1, |r| {
            activation::bias_gelu_in_place(r, &bias)
        });
        for threads in [2, 3] {
            let chunks = AtomicUsize::new(0);
            let mut got = input.clone();
            pool(threads).install(|| {
                par_rows(&mut got, width, threads, |r| {
                    assert_eq!(r.len() % width, 0, "whole rows");
                    chunks.fetch_add(1, Ordering::Relaxed);
                    activation::bias_gelu_in_place(r, &bias)
                })
            });
            assert_eq!(chunks.into_inner(), threads, "one chunk per thread");
            assert_eq!(bits(&got), bits(&want));
        }
    }
}
