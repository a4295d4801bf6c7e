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
//! This module owns [`SeqSpan`], [`softmax_in_place`], [`attention`] and
//! [`attention_heads`] (a range of heads only, for splitting one sequence
//! over threads).

use std::ops::Range;

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
/// the values read in place. On CPUs with AVX2 + FMA the two row kernels use
/// explicit 8-lane registers (the private `avx2` module); LLVM does not keep their
/// accumulators in registers on its own (measured 3× slower).
pub fn attention(
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
pub fn attention_heads(
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
        scores_row,
        context_row_any,
    );
}

/// The loop over sequences and the heads of `head_range`, with the two row
/// kernels passed in: `scores(q, kt, lp, s)` fills `s[..lp]`,
/// `context(p, rows, row, vo, c)` writes one head's context row `c`.
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
    scores: impl Fn(&[f32], &[f32], usize, &mut [f32]),
    context: impl Fn(&[f32], &[f32], usize, usize, &mut [f32]),
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
        let need = head_dim * lp + lp;
        if scratch.len() < need {
            scratch.resize(need, 0.0);
        }
        let (kt, rest) = scratch.split_at_mut(head_dim * lp);
        kt.fill(0.0);
        let s_full = &mut rest[..lp];
        let rows = &qkv[span.start * row..(span.start + len) * row];
        let out = &mut ctx[span.start * out_row..(span.start + len) * out_row];
        for h in head_range.clone() {
            let oo = (h - h0) * head_dim;
            let (qo, ko, vo) = (
                h * head_dim,
                hidden + h * head_dim,
                2 * hidden + h * head_dim,
            );
            // Kᵀ for this head, pre-scaled by 1/√d: kt[c·lp + j] = k[j][c]·scale.
            for (j, r) in rows.chunks_exact(row).enumerate() {
                for (c, &v) in r[ko..ko + head_dim].iter().enumerate() {
                    kt[c * lp + j] = v * scale;
                }
            }
            for (i, r) in rows.chunks_exact(row).enumerate() {
                scores(&r[qo..qo + head_dim], kt, lp, s_full);
                let s = &mut s_full[..len];
                softmax_inline(s);
                context(
                    s,
                    rows,
                    row,
                    vo,
                    &mut out[i * out_row + oo..i * out_row + oo + head_dim],
                );
            }
        }
    }
}

/// The attention row kernels with AVX2 + FMA intrinsics.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps,
        _mm256_storeu_ps,
    };

    use std::ops::Range;

    use super::SeqSpan;

    /// The first 8 lanes of `s`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn load8(s: &[f32]) -> __m256 {
        let a: &[f32; 8] = s[..8].try_into().expect("8 lanes");
        // SAFETY: `a` is 8 readable, contiguous f32s; `loadu` has no
        // alignment requirement.
        #[allow(unsafe_code)]
        unsafe {
            _mm256_loadu_ps(a.as_ptr())
        }
    }

    /// Writes 8 lanes to the start of `d`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn store8(d: &mut [f32], v: __m256) {
        let a: &mut [f32; 8] = (&mut d[..8]).try_into().expect("8 lanes");
        // SAFETY: `a` is 8 writable, contiguous f32s, exclusively borrowed;
        // `storeu` has no alignment requirement.
        #[allow(unsafe_code)]
        unsafe {
            _mm256_storeu_ps(a.as_mut_ptr(), v)
        }
    }

    /// `super::scores_row` for `T` blocks of 8 keys starting at block `jb0`,
    /// `T` accumulators live in registers.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn scores_blocks<const T: usize>(q: &[f32], kt: &[f32], lp: usize, jb0: usize, s: &mut [f32]) {
        let mut acc = [_mm256_setzero_ps(); T];
        for (c, &qc) in q.iter().enumerate() {
            let qv = _mm256_set1_ps(qc);
            let base = c * lp + jb0 * 8;
            for (t, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(qv, load8(&kt[base + t * 8..]), *a);
            }
        }
        for (t, a) in acc.iter().enumerate() {
            store8(&mut s[(jb0 + t) * 8..], *a);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn scores_row(q: &[f32], kt: &[f32], lp: usize, s: &mut [f32]) {
        let blocks = lp / 8;
        let mut jb = 0;
        while jb < blocks {
            match blocks - jb {
                1 => scores_blocks::<1>(q, kt, lp, jb, s),
                2 => scores_blocks::<2>(q, kt, lp, jb, s),
                3 => scores_blocks::<3>(q, kt, lp, jb, s),
                _ => scores_blocks::<4>(q, kt, lp, jb, s),
            }
            jb += 4;
        }
    }

    /// `c = Σ_j p[j]·v_j` for a head dimension of `8·D8`, with two sets of
    /// `D8` accumulators (even and odd `j`) so the chains overlap.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn context_row<const D8: usize>(p: &[f32], rows: &[f32], row: usize, vo: usize, c: &mut [f32]) {
        let mut even = [_mm256_setzero_ps(); D8];
        let mut odd = [_mm256_setzero_ps(); D8];
        let mut pairs = p.chunks_exact(2);
        let mut j = 0;
        for pp in &mut pairs {
            let (p0, p1) = (_mm256_set1_ps(pp[0]), _mm256_set1_ps(pp[1]));
            let v0 = &rows[j * row + vo..];
            let v1 = &rows[(j + 1) * row + vo..];
            for t in 0..D8 {
                even[t] = _mm256_fmadd_ps(p0, load8(&v0[t * 8..]), even[t]);
                odd[t] = _mm256_fmadd_ps(p1, load8(&v1[t * 8..]), odd[t]);
            }
            j += 2;
        }
        if let [pl] = pairs.remainder() {
            let pv = _mm256_set1_ps(*pl);
            let v = &rows[j * row + vo..];
            for t in 0..D8 {
                even[t] = _mm256_fmadd_ps(pv, load8(&v[t * 8..]), even[t]);
            }
        }
        for t in 0..D8 {
            store8(&mut c[t * 8..], _mm256_add_ps(even[t], odd[t]));
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn attention(
        qkv: &[f32],
        ctx: &mut [f32],
        spans: &[SeqSpan],
        heads: usize,
        head_dim: usize,
        head_range: Range<usize>,
        scratch: &mut Vec<f32>,
    ) {
        super::attention_with(
            qkv,
            ctx,
            spans,
            heads,
            head_dim,
            head_range,
            scratch,
            |q, kt, lp, s| scores_row(q, kt, lp, s),
            |p, rows, row, vo, c| match c.len() {
                32 => context_row::<4>(p, rows, row, vo, c),
                64 => context_row::<8>(p, rows, row, vo, c),
                _ => super::context_row_any(p, rows, row, vo, c),
            },
        );
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
        for &(heads, d) in &[(1usize, 1usize), (3, 5), (12, 32), (2, 17), (2, 64), (3, 8)] {
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
