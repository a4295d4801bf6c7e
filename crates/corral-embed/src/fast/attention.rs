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
//! This module owns [`SeqSpan`], `softmax_in_place` (the tests'), [`attention`] and
//! [`attention_heads`] (a range of heads only, for splitting one sequence
//! over threads).

use std::ops::Range;

use super::math;

/// Where one sequence's tokens sit in the packed token rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeqSpan {
    /// First row.
    pub(crate) start: usize,
    /// Number of rows (real tokens).
    pub(crate) len: usize,
}

/// `s ← softmax(s)` in place (max-subtracted, so it never overflows).
#[cfg(test)]
pub(crate) fn softmax_in_place(s: &mut [f32]) {
    softmax_inline(s)
}

#[inline(always)]
fn softmax_inline(s: &mut [f32]) {
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
/// (`kt[c·lp + j]`, `lp = s.len()`): `d` multiply-adds across all keys.
/// Portable version; see [`avx2`] for the one used on AVX2 CPUs.
#[inline(always)]
fn scores_row(q: &[f32], kt: &[f32], lp: usize, s: &mut [f32]) {
    s.fill(0.0);
    for (&qc, ktc) in q.iter().zip(kt.chunks_exact(lp)) {
        for (sj, &kj) in s.iter_mut().zip(ktc) {
            *sj += qc * kj;
        }
    }
}

/// `kt[c·lp + j] = rows[j·row + ko + c]·scale` for every key `j` of the
/// sequence (`rows.len() / row` of them) and `c < d`: one head's keys,
/// transposed and scaled. Portable version; see [`avx2`] for the one used
/// on AVX2 CPUs (8×8 blocks in registers, so the score kernel's vector
/// loads of `kt` read whole vector stores).
#[inline(always)]
fn gather_kt(rows: &[f32], row: usize, ko: usize, d: usize, lp: usize, scale: f32, kt: &mut [f32]) {
    for (j, r) in rows.chunks_exact(row).enumerate() {
        for (c, &v) in r[ko..ko + d].iter().enumerate() {
            kt[c * lp + j] = v * scale;
        }
    }
}

/// `c = Σ_j p[j] · v_j` with `v_j = rows[j·row + vo ..][..c.len()]`.
/// Portable version; see [`avx2`] for the one used on AVX2 CPUs.
#[inline(always)]
fn context_row_any(p: &[f32], rows: &[f32], row: usize, vo: usize, c: &mut [f32]) {
    let d = c.len();
    c.fill(0.0);
    for (&pj, vr) in p.iter().zip(rows.chunks_exact(row)) {
        for (cv, &vv) in c.iter_mut().zip(&vr[vo..vo + d]) {
            *cv += pj * vv;
        }
    }
}

/// Attention for the sequences in `spans`: `ctx[t, h·d..] = softmax(q·kᵀ/√d)·v`
/// per head `h`, reading `qkv` (`[tokens, 3·hidden]`, biases already added)
/// and writing `ctx` (`[tokens, hidden]`). `scratch` is grown as needed and
/// reused across calls.
///
/// Per (sequence, head) the keys are first gathered transposed into a small
/// `[d, len]` block (rows padded with zeros to a multiple of 8), so a row of
/// scores is `d` multiply-adds of whole 8-lane vectors across the keys, with
/// no horizontal sums; the context is `len` multiply-adds of length `d` over
/// the values read in place. On CPUs with AVX2 + FMA the kernels use
/// explicit 8-lane registers (the private `avx2` module; LLVM does not keep
/// their accumulators in registers on its own, measured 3× slower): the
/// keys are transposed 8×8 in registers, and queries go
/// four at a time, so each key vector loaded serves four
/// queries' scores and each value vector two queries' contexts. Together
/// that made attention 1.8× faster in an int8 forward over the benchmark
/// corpus (per-op breakdown of `cargo bench --bench encoder`). Each
/// query's arithmetic is the same whichever block it falls in.
pub(crate) fn attention(
    qkv: &[f32],
    ctx: &mut [f32],
    spans: &[SeqSpan],
    heads: usize,
    head_dim: usize,
    scratch: &mut Vec<f32>,
) {
    attention_on(
        super::Isa::current(),
        qkv,
        ctx,
        spans,
        heads,
        head_dim,
        scratch,
    )
}

/// [`attention`] by the kernel build `isa` selects.
pub(crate) fn attention_on(
    isa: super::Isa,
    qkv: &[f32],
    ctx: &mut [f32],
    spans: &[SeqSpan],
    heads: usize,
    head_dim: usize,
    scratch: &mut Vec<f32>,
) {
    attention_heads_on(isa, qkv, ctx, spans, heads, head_dim, 0..heads, scratch)
}

/// [`attention`] for the heads in `head_range` only, writing `ctx` as
/// `[tokens, head_range.len()·head_dim]` (head `h` at columns
/// `(h − head_range.start)·head_dim ..`). Each (sequence, head) is computed
/// exactly as by [`attention`], so the values are bit-identical to the
/// matching columns of its output.
pub(crate) fn attention_heads(
    qkv: &[f32],
    ctx: &mut [f32],
    spans: &[SeqSpan],
    heads: usize,
    head_dim: usize,
    head_range: Range<usize>,
    scratch: &mut Vec<f32>,
) {
    attention_heads_on(
        super::Isa::current(),
        qkv,
        ctx,
        spans,
        heads,
        head_dim,
        head_range,
        scratch,
    )
}

/// [`attention_heads`] by the kernel build `isa` selects.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_heads_on(
    isa: super::Isa,
    qkv: &[f32],
    ctx: &mut [f32],
    spans: &[SeqSpan],
    heads: usize,
    head_dim: usize,
    head_range: Range<usize>,
    scratch: &mut Vec<f32>,
) {
    assert!(head_range.end <= heads, "head range past the heads");
    #[cfg(target_arch = "x86_64")]
    if isa.is_avx2() {
        // SAFETY: an AVX2 `Isa` exists only once the CPU was found to
        // support AVX2 and FMA, the only precondition of calling a function
        // with those features.
        #[allow(unsafe_code)]
        unsafe {
            avx2::attention(qkv, ctx, spans, heads, head_dim, head_range, scratch)
        };
        return;
    }
    attention_with(
        qkv,
        ctx,
        spans,
        heads,
        head_dim,
        head_range,
        scratch,
        gather_kt,
        attend_head_rows,
    );
}

/// One head of one sequence, as the kernels see it.
pub(crate) struct HeadJob<'a> {
    /// The sequence's rows of the fused QKV projection, `len` rows of `row`.
    pub(crate) rows: &'a [f32],
    /// Width of a QKV row (`3·hidden`).
    pub(crate) row: usize,
    /// Column of this head's query in a QKV row.
    pub(crate) qo: usize,
    /// Column of this head's value in a QKV row.
    pub(crate) vo: usize,
    /// Head dimension.
    pub(crate) d: usize,
    /// The keys transposed and scaled, `kt[c·lp + j]` (see [`gather_kt`]).
    pub(crate) kt: &'a [f32],
    /// Keys rounded up to a multiple of 8 (`kt`'s row stride).
    pub(crate) lp: usize,
}

impl HeadJob<'_> {
    /// Tokens in the sequence.
    fn len(&self) -> usize {
        self.rows.len() / self.row
    }
}

/// [`HeadJob`] for every query of the head, one row at a time: scores,
/// softmax, context into `out` (row `i` at `out[i·out_row + oo..][..d]`).
/// `s` holds at least `lp` floats. The portable kernel.
fn attend_head_rows(job: &HeadJob<'_>, s: &mut [f32], out: &mut [f32], out_row: usize, oo: usize) {
    let (d, lp, len) = (job.d, job.lp, job.len());
    for (i, r) in job.rows.chunks_exact(job.row).enumerate() {
        scores_row(&r[job.qo..job.qo + d], job.kt, lp, &mut s[..lp]);
        let p = &mut s[..len];
        softmax_inline(p);
        context_row_any(
            p,
            job.rows,
            job.row,
            job.vo,
            &mut out[i * out_row + oo..i * out_row + oo + d],
        );
    }
}

/// Rows of scores a head kernel may keep at once (the AVX2 kernel's query
/// block).
const QUERY_BLOCK: usize = 4;

/// The loop over sequences and the heads of `head_range`, with the two
/// kernels passed in: `gather(rows, row, ko, d, lp, scale, kt)` writes one
/// head's keys transposed and scaled (as [`gather_kt`]);
/// `head(job, s, out, out_row, oo)` computes every query of the head (as
/// [`attend_head_rows`]), with `s` holding [`QUERY_BLOCK`]` · lp` floats.
/// `ctx` rows are `head_range.len()·head_dim` wide.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attention_with(
    qkv: &[f32],
    ctx: &mut [f32],
    spans: &[SeqSpan],
    heads: usize,
    head_dim: usize,
    head_range: Range<usize>,
    scratch: &mut Vec<f32>,
    gather: impl Fn(&[f32], usize, usize, usize, usize, f32, &mut [f32]),
    head: impl Fn(&HeadJob<'_>, &mut [f32], &mut [f32], usize, usize),
) {
    let hidden = heads * head_dim;
    let row = 3 * hidden;
    let out_row = head_range.len() * head_dim;
    let h0 = head_range.start;
    let scale = 1.0 / (head_dim as f32).sqrt();
    for span in spans {
        let len = span.len;
        if len == 0 {
            continue;
        }
        let lp = len.div_ceil(8) * 8;
        let need = head_dim * lp + QUERY_BLOCK * lp;
        if scratch.len() < need {
            scratch.resize(need, 0.0);
        }
        let (kt, rest) = scratch.split_at_mut(head_dim * lp);
        kt.fill(0.0);
        let s = &mut rest[..QUERY_BLOCK * lp];
        let rows = &qkv[span.start * row..(span.start + len) * row];
        let out = &mut ctx[span.start * out_row..(span.start + len) * out_row];
        for h in head_range.clone() {
            let ko = hidden + h * head_dim;
            // Kᵀ for this head, pre-scaled by 1/√d: kt[c·lp + j] = k[j][c]·scale.
            gather(rows, row, ko, head_dim, lp, scale, kt);
            let job = HeadJob {
                rows,
                row,
                qo: h * head_dim,
                vo: 2 * hidden + h * head_dim,
                d: head_dim,
                kt,
                lp,
            };
            head(&job, s, out, out_row, (h - h0) * head_dim);
        }
    }
}

/// The attention kernels with AVX2 + FMA intrinsics.
#[cfg(target_arch = "x86_64")]
mod avx2;

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
        for &(heads, d) in &[(1usize, 1usize), (3, 5), (12, 32), (2, 17), (2, 64), (3, 8)] {
            let hidden = heads * d;
            let lens = [5usize, 1, 3, 7, 8, 13, 29];
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
            // Both builds of the kernels, each called directly: portable,
            // then AVX2 (this project's machines have it).
            let mut runs = Vec::new();
            let avx2 = crate::fast::Isa::avx2().expect("this test needs an AVX2 + FMA CPU");
            for isa in [crate::fast::Isa::BASELINE, avx2] {
                let mut ctx = vec![f32::NAN; tokens * hidden];
                let mut scratch = Vec::new();
                attention_on(isa, &packed, &mut ctx, &spans, heads, d, &mut scratch);
                runs.push(ctx);
            }

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
            for (ctx, path) in runs.iter().zip(["portable", "avx2"]) {
                let diff = max_abs_diff(ctx, &expected);
                assert!(diff < 1e-5, "{path} heads={heads} d={d}: max diff {diff}");
            }
        }
    }
}
