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
//! This module owns [`EncoderLayer`], [`Scratch`] (the buffers reused across
//! layers and batches) and [`OpTimes`] (the optional per-op profile).

use std::time::{Duration, Instant};

use super::activation;
use super::attention::{self, SeqSpan};
use super::layer_norm::LayerNorm;
use super::matmul::Linear;

/// Weights of one encoder layer.
#[derive(Debug, Clone)]
pub struct EncoderLayer {
    /// Fused Q|K|V projection, `[hidden, 3·hidden]`.
    pub qkv: Linear,
    /// Attention output projection.
    pub attn_out: Linear,
    /// Layer norm after attention.
    pub attn_norm: LayerNorm,
    /// Feed-forward up projection (`intermediate`).
    pub ffn_in: Linear,
    /// Feed-forward down projection (`output`).
    pub ffn_out: Linear,
    /// Layer norm after the feed-forward block.
    pub ffn_norm: LayerNorm,
    /// Attention heads.
    pub heads: usize,
}

/// Work buffers, grown to the largest batch seen and then reused.
#[derive(Debug, Default)]
pub struct Scratch {
    /// `[tokens, 3·hidden]`.
    pub qkv: Vec<f32>,
    /// `[tokens, hidden]`.
    pub ctx: Vec<f32>,
    /// `[tokens, intermediate]`.
    pub inter: Vec<f32>,
    /// One row of attention scores.
    pub scores: Vec<f32>,
}

/// Accumulated wall time per kind of op (filled only when profiling is on).
#[derive(Debug, Default, Clone)]
pub struct OpTimes {
    /// Gathering real tokens, embedding sum and its layer norm.
    pub embeddings: Duration,
    /// QKV matmul including the bias pre-fill.
    pub qkv_matmul: Duration,
    /// Scores, softmax and context for all heads.
    pub attention: Duration,
    /// Attention output matmul (+ residual, fused into gemm).
    pub attn_out_matmul: Duration,
    /// Feed-forward up matmul.
    pub ffn_in_matmul: Duration,
    /// Fused bias + GELU.
    pub bias_gelu: Duration,
    /// Feed-forward down matmul (+ residual).
    pub ffn_out_matmul: Duration,
    /// Both fused bias + layer norms.
    pub layer_norm: Duration,
    /// Scattering packed rows back to `[batch, seq, hidden]` / pooling.
    pub output: Duration,
    /// Number of forward calls profiled.
    pub calls: u64,
}

impl OpTimes {
    /// `(name, time)` pairs in forward order.
    pub fn entries(&self) -> [(&'static str, Duration); 9] {
        [
            ("embeddings (gather+sum+LN)", self.embeddings),
            ("QKV matmul (+bias)", self.qkv_matmul),
            ("attention (scores+softmax+context)", self.attention),
            ("attn-out matmul (+residual)", self.attn_out_matmul),
            ("FFN-in matmul", self.ffn_in_matmul),
            ("bias+GELU", self.bias_gelu),
            ("FFN-out matmul (+residual)", self.ffn_out_matmul),
            ("bias+LayerNorm (x2)", self.layer_norm),
            ("output scatter/pool", self.output),
        ]
    }

    /// Sum of all entries.
    pub fn total(&self) -> Duration {
        self.entries().iter().map(|e| e.1).sum()
    }
}

/// Runs `f`, adding its wall time to `slot` when profiling.
#[inline]
pub(crate) fn timed<R>(
    prof: &mut Option<OpTimes>,
    slot: fn(&mut OpTimes) -> &mut Duration,
    f: impl FnOnce() -> R,
) -> R {
    match prof {
        None => f(),
        Some(p) => {
            let t = Instant::now();
            let r = f();
            *slot(p) += t.elapsed();
            r
        }
    }
}

impl EncoderLayer {
    /// Hidden size.
    pub fn hidden(&self) -> usize {
        self.attn_out.n
    }

    /// Transforms the packed hidden states `x` (`[tokens, hidden]`) in place.
    pub fn forward(
        &self,
        x: &mut [f32],
        spans: &[SeqSpan],
        scratch: &mut Scratch,
        threads: usize,
        prof: &mut Option<OpTimes>,
    ) {
        let h = self.hidden();
        let tokens = x.len() / h;
        let n3 = self.qkv.n;
        let ni = self.ffn_in.n;
        grow(&mut scratch.qkv, tokens * n3);
        grow(&mut scratch.ctx, tokens * h);
        grow(&mut scratch.inter, tokens * ni);
        let qkv = &mut scratch.qkv[..tokens * n3];
        let ctx = &mut scratch.ctx[..tokens * h];
        let inter = &mut scratch.inter[..tokens * ni];

        timed(
            prof,
            |p| &mut p.qkv_matmul,
            || {
                for row in qkv.chunks_exact_mut(n3) {
                    row.copy_from_slice(&self.qkv.bias);
                }
                self.qkv.forward_no_bias(x, qkv, tokens, true, threads);
            },
        );
        timed(
            prof,
            |p| &mut p.attention,
            || {
                attention::attention(
                    qkv,
                    ctx,
                    spans,
                    self.heads,
                    h / self.heads,
                    &mut scratch.scores,
                )
            },
        );
        timed(
            prof,
            |p| &mut p.attn_out_matmul,
            || self.attn_out.forward_no_bias(ctx, x, tokens, true, threads),
        );
        timed(
            prof,
            |p| &mut p.layer_norm,
            || {
                self.attn_norm
                    .forward_in_place(x, Some(&self.attn_out.bias))
            },
        );
        timed(
            prof,
            |p| &mut p.ffn_in_matmul,
            || {
                self.ffn_in
                    .forward_no_bias(x, inter, tokens, false, threads)
            },
        );
        timed(
            prof,
            |p| &mut p.bias_gelu,
            || activation::bias_gelu_in_place(inter, &self.ffn_in.bias),
        );
        timed(
            prof,
            |p| &mut p.ffn_out_matmul,
            || {
                self.ffn_out
                    .forward_no_bias(inter, x, tokens, true, threads)
            },
        );
        timed(
            prof,
            |p| &mut p.layer_norm,
            || self.ffn_norm.forward_in_place(x, Some(&self.ffn_out.bias)),
        );
    }
}

/// Grows `v` to at least `n` elements (never shrinks, so buffers are reused).
pub(crate) fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}
