//! Multi-head self-attention over *packed* sequences.
//!
//! The encoder keeps only the real (mask = 1) tokens of a batch, one
//! sequence after another, so attention runs per sequence over exactly its
//! own tokens: that is the same as BERT's additive `-inf` mask on padded
//! keys, without computing scores for padding. Q, K and V are read strided
//! out of the fused QKV projection (`[tokens, 3·hidden]`, Q | K | V by
//! columns, head `h` at columns `h·d .. (h+1)·d` of each third), so no
//! transposed or per-head copies are made; the softmax runs in place on one
//! row of scores at a time.
//!
//! This module owns [`SeqSpan`], [`softmax_in_place`] and [`attention`].

use super::math;

/// Where one sequence's tokens sit in the packed token rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqSpan {
    /// First row.
    pub start: usize,
    /// Number of rows (real tokens).
    pub len: usize,
}

/// `s ← softmax(s)` in place (max-subtracted, so it never overflows).
pub fn softmax_in_place(s: &mut [f32]) {
    if s.is_empty() {
        return;
    }
    let m = math::max(s);
    for v in s.iter_mut() {
        *v = math::exp(*v - m);
    }
    let inv = 1.0 / math::sum(s);
    for v in s.iter_mut() {
        *v *= inv;
    }
}

/// `s[j] = q · kt[.., j]` for a query `q` (`[d]`) and keys stored transposed
/// (`kt[c·lp + j]`, `lp` a multiple of 8): eight keys at a time, with four
/// independent accumulators over `c` so the adds do not wait on each other.
#[inline(always)]
fn scores_row(q: &[f32], kt: &[f32], lp: usize, s: &mut [f32]) {
    let k8 = |c: usize, jb: usize| -> &[f32; 8] {
        let o = c * lp + jb * 8;
        kt[o..o + 8].try_into().expect("8 lanes")
    };
    let whole = q.len() / 4 * 4;
    for (jb, s8) in s.chunks_exact_mut(8).enumerate() {
        let mut a = [[0.0f32; 8]; 4];
        for c4 in (0..whole).step_by(4) {
            for u in 0..4 {
                let (qc, k) = (q[c4 + u], k8(c4 + u, jb));
                for l in 0..8 {
                    a[u][l] += qc * k[l];
                }
            }
        }
        for c in whole..q.len() {
            let (qc, k) = (q[c], k8(c, jb));
            for l in 0..8 {
                a[0][l] += qc * k[l];
            }
        }
        for l in 0..8 {
            s8[l] = (a[0][l] + a[1][l]) + (a[2][l] + a[3][l]);
        }
    }
}

/// `c = Σ_j p[j] · v_j` with `v_j = rows[j·row + vo ..][..8·D8]`, the head
/// dimension a multiple of 8 known at compile time, so the accumulators stay
/// in registers (`D8` independent chains).
#[inline(always)]
fn context_row<const D8: usize>(p: &[f32], rows: &[f32], row: usize, vo: usize, c: &mut [f32]) {
    let mut acc = [[0.0f32; 8]; D8];
    for (&pj, vr) in p.iter().zip(rows.chunks_exact(row)) {
        let v: &[f32] = &vr[vo..vo + 8 * D8];
        for t in 0..D8 {
            for l in 0..8 {
                acc[t][l] += pj * v[t * 8 + l];
            }
        }
    }
    for (t, a) in acc.iter().enumerate() {
        c[t * 8..t * 8 + 8].copy_from_slice(a);
    }
}

/// [`context_row`] for any head dimension.
#[inline(always)]
fn context_row_any(p: &[f32], rows: &[f32], row: usize, vo: usize, c: &mut [f32]) {
    c.fill(0.0);
    for (&pj, vr) in p.iter().zip(rows.chunks_exact(row)) {
        for (cv, &vv) in c.iter_mut().zip(&vr[vo..vo + c.len()]) {
            *cv += pj * vv;
        }
    }
}

multiversion! {
    /// Attention for the sequences in `spans`: `ctx[t, h·d..] = softmax(q·kᵀ/√d)·v`
    /// per head `h`, reading `qkv` (`[tokens, 3·hidden]`, biases already added)
    /// and writing `ctx` (`[tokens, hidden]`). `scratch` is grown as needed and
    /// reused across calls.
    ///
    /// Per (sequence, head) the keys are first gathered transposed into a small
    /// `[d, len]` block (rows padded with zeros to a multiple of 8), so a row of
    /// scores is `d` multiply-adds of whole 8-lane vectors across the keys, with
    /// no horizontal sums; the context is `len` multiply-adds of length `d` over
    /// the values read in place.
    pub fn attention(
        qkv: &[f32],
        ctx: &mut [f32],
        spans: &[SeqSpan],
        heads: usize,
        head_dim: usize,
        scratch: &mut Vec<f32>,
    ) {
        let hidden = heads * head_dim;
        let row = 3 * hidden;
        let scale = 1.0 / (head_dim as f32).sqrt();
        for span in spans {
            let len = span.len;
            if len == 0 {
                continue;
            }
            let lp = len.div_ceil(8) * 8;
            let need = head_dim * lp + lp;
            if scratch.len() < need {
                scratch.resize(need, 0.0);
            }
            let (kt, rest) = scratch.split_at_mut(head_dim * lp);
            kt.fill(0.0);
            let s_full = &mut rest[..lp];
            let rows = &qkv[span.start * row..(span.start + len) * row];
            let out = &mut ctx[span.start * hidden..(span.start + len) * hidden];
            for h in 0..heads {
                let (qo, ko, vo) = (h * head_dim, hidden + h * head_dim, 2 * hidden + h * head_dim);
                // Kᵀ for this head, pre-scaled by 1/√d: kt[c·lp + j] = k[j][c]·scale.
                for (j, r) in rows.chunks_exact(row).enumerate() {
                    for (c, &v) in r[ko..ko + head_dim].iter().enumerate() {
                        kt[c * lp + j] = v * scale;
                    }
                }
                for (i, r) in rows.chunks_exact(row).enumerate() {
                    let q = &r[qo..qo + head_dim];
                    scores_row(q, kt, lp, s_full);
                    let s = &mut s_full[..len];
                    softmax_in_place(s);
                    let c = &mut out[i * hidden + qo..i * hidden + qo + head_dim];
                    match head_dim {
                        32 => context_row::<4>(s, rows, row, vo, c),
                        64 => context_row::<8>(s, rows, row, vo, c),
                        _ => context_row_any(s, rows, row, vo, c),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{max_abs_diff, random_vec};
    use super::*;
    use candle_core::{DType, Device, Tensor, D};

    #[test]
    fn softmax_matches_candle() {
        for n in [1usize, 2, 7, 8, 9, 33, 129] {
            let x: Vec<f32> = random_vec(n, n as u64).iter().map(|v| v * 20.0).collect();
            let mut got = x.clone();
            softmax_in_place(&mut got);
            let t = Tensor::from_slice(&x, (1, n), &Device::Cpu).unwrap();
            let want: Vec<f32> = candle_nn::ops::softmax_last_dim(&t)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(max_abs_diff(&got, &want) < 1e-6);
        }
    }

    /// Packed attention equals candle's padded, masked attention (the way
    /// candle-transformers' BERT computes it) on the real tokens.
    #[test]
    fn packed_attention_matches_candle_masked_attention() {
        for &(heads, d) in &[(1usize, 1usize), (3, 5), (12, 32), (2, 17)] {
            let hidden = heads * d;
            let lens = [5usize, 1, 3, 7];
            let seq = *lens.iter().max().unwrap();
            let batch = lens.len();
            // Padded [batch, seq, 3·hidden] with garbage in the padding.
            let padded = random_vec(batch * seq * 3 * hidden, 40 + hidden as u64);
            let mut mask = vec![0f32; batch * seq];
            let mut packed = Vec::new();
            let mut spans = Vec::new();
            for (b, &l) in lens.iter().enumerate() {
                spans.push(SeqSpan {
                    start: packed.len() / (3 * hidden),
                    len: l,
                });
                for t in 0..l {
                    mask[b * seq + t] = 1.0;
                    let r = (b * seq + t) * 3 * hidden;
                    packed.extend_from_slice(&padded[r..r + 3 * hidden]);
                }
            }
            let tokens = packed.len() / (3 * hidden);
            let mut ctx = vec![f32::NAN; tokens * hidden];
            let mut scratch = Vec::new();
            attention(&packed, &mut ctx, &spans, heads, d, &mut scratch);

            // Reference: candle ops, shaped like candle-transformers' BERT.
            let dev = Device::Cpu;
            let qkv = Tensor::from_slice(&padded, (batch, seq, 3 * hidden), &dev).unwrap();
            let split = |i: usize| {
                qkv.narrow(2, i * hidden, hidden)
                    .unwrap()
                    .reshape((batch, seq, heads, d))
                    .unwrap()
                    .transpose(1, 2)
                    .unwrap()
                    .contiguous()
                    .unwrap()
            };
            let (q, k, v) = (split(0), split(1), split(2));
            let m = Tensor::from_slice(&mask, (batch, 1, 1, seq), &dev).unwrap();
            let additive = ((m.ones_like().unwrap() - &m).unwrap() * f32::MIN as f64).unwrap();
            let scores = (q.matmul(&k.t().unwrap()).unwrap() / (d as f64).sqrt()).unwrap();
            let scores = scores
                .broadcast_add(&additive.to_dtype(DType::F32).unwrap())
                .unwrap();
            let probs = candle_nn::ops::softmax(&scores, D::Minus1).unwrap();
            let want = probs
                .matmul(&v)
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .reshape((batch * seq, hidden))
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let mut expected = Vec::new();
            for (b, &l) in lens.iter().enumerate() {
                for t in 0..l {
                    expected.extend_from_slice(&want[b * seq + t]);
                }
            }
            let diff = max_abs_diff(&ctx, &expected);
            assert!(diff < 1e-5, "heads={heads} d={d}: max diff {diff}");
        }
    }
}
