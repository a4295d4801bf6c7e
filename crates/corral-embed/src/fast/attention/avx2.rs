//! The attention kernels with AVX2 + FMA intrinsics: the keys' 8×8
//! transpose, the scores and contexts of a block of queries, and the
//! per-head loop that chains them with the softmax.

use std::arch::x86_64::{
    __m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_permute2f128_ps,
    _mm256_set1_ps, _mm256_setzero_ps, _mm256_shuffle_ps, _mm256_storeu_ps, _mm256_unpackhi_ps,
    _mm256_unpacklo_ps,
};

use std::ops::Range;

use super::{HeadJob, SeqSpan};

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

/// Transposes the 8×8 block held as 8 row vectors into 8 column
/// vectors (`r[c][j] ← r[j][c]`).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn transpose8(r: &mut [__m256; 8]) {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    // Per 128-bit lane: [j0 j1 j2 j3] of columns 0/4, 1/5, 2/6, 3/7.
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    r[0] = _mm256_permute2f128_ps::<0x20>(u0, u4);
    r[1] = _mm256_permute2f128_ps::<0x20>(u1, u5);
    r[2] = _mm256_permute2f128_ps::<0x20>(u2, u6);
    r[3] = _mm256_permute2f128_ps::<0x20>(u3, u7);
    r[4] = _mm256_permute2f128_ps::<0x31>(u0, u4);
    r[5] = _mm256_permute2f128_ps::<0x31>(u1, u5);
    r[6] = _mm256_permute2f128_ps::<0x31>(u2, u6);
    r[7] = _mm256_permute2f128_ps::<0x31>(u3, u7);
}

/// `super::gather_kt` in 8 keys × 8 dimensions blocks: 8 row loads, a
/// register transpose and 8 column stores per block (a block past the
/// last key stores zeros into `kt`'s padding, which is zero already).
/// Dimensions past the last whole 8 go the scalar way.
#[target_feature(enable = "avx2,fma")]
fn gather_kt(rows: &[f32], row: usize, ko: usize, d: usize, lp: usize, scale: f32, kt: &mut [f32]) {
    let len = rows.len() / row;
    let sv = _mm256_set1_ps(scale);
    let whole = d / 8 * 8;
    for j0 in (0..len).step_by(8) {
        let keys = (len - j0).min(8);
        for c0 in (0..whole).step_by(8) {
            let mut r = [_mm256_setzero_ps(); 8];
            for (t, v) in r.iter_mut().enumerate().take(keys) {
                *v = _mm256_mul_ps(load8(&rows[(j0 + t) * row + ko + c0..]), sv);
            }
            transpose8(&mut r);
            for (c, v) in r.iter().enumerate() {
                store8(&mut kt[(c0 + c) * lp + j0..], *v);
            }
        }
    }
    if whole < d {
        super::gather_kt(
            rows,
            row,
            ko + whole,
            d - whole,
            lp,
            scale,
            &mut kt[whole * lp..],
        );
    }
}

/// Scores of the `R` queries `i0..i0 + R` against the `T` blocks of 8
/// keys from block `jb0`: `s[r·lp + j] = q_{i0+r} · kt[.., j]`, `R·T`
/// accumulators in registers, each `kt` vector loaded once for all `R`
/// queries. Per query and key the same multiply-adds in the same order
/// as one query at a time.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn scores_block<const R: usize, const T: usize>(
    job: &HeadJob<'_>,
    i0: usize,
    jb0: usize,
    s: &mut [f32],
) {
    let (d, lp) = (job.d, job.lp);
    let q: [&[f32]; R] = std::array::from_fn(|r| &job.rows[(i0 + r) * job.row + job.qo..][..d]);
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    for c in 0..d {
        let base = c * lp + jb0 * 8;
        let kv: [__m256; T] = std::array::from_fn(|t| load8(&job.kt[base + t * 8..]));
        for (a, qr) in acc.iter_mut().zip(&q) {
            let qv = _mm256_set1_ps(qr[c]);
            for (at, kt) in a.iter_mut().zip(&kv) {
                *at = _mm256_fmadd_ps(qv, *kt, *at);
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        for (t, at) in a.iter().enumerate() {
            store8(&mut s[r * lp + (jb0 + t) * 8..], *at);
        }
    }
}

/// Scores of the `R` queries from `i0` against every key block.
#[target_feature(enable = "avx2,fma")]
fn scores_rows<const R: usize>(job: &HeadJob<'_>, i0: usize, s: &mut [f32]) {
    let blocks = job.lp / 8;
    let mut jb = 0;
    while jb + 2 <= blocks {
        scores_block::<R, 2>(job, i0, jb, s);
        jb += 2;
    }
    if jb < blocks {
        scores_block::<R, 1>(job, i0, jb, s);
    }
}

/// `out_i = Σ_j p_i[j]·v_j` for the `R` queries from `i0` (their
/// probabilities in `p`, rows of stride `lp`) and a head dimension of
/// `8·D8`: each value vector loaded once for all `R` queries, one chain
/// of multiply-adds per query and 8 dimensions.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn context_block<const R: usize, const D8: usize>(
    job: &HeadJob<'_>,
    i0: usize,
    p: &[f32],
    out: &mut [f32],
    out_row: usize,
    oo: usize,
) {
    let (len, lp) = (job.len(), job.lp);
    let pr: [&[f32]; R] = std::array::from_fn(|r| &p[r * lp..][..len]);
    let mut acc = [[_mm256_setzero_ps(); D8]; R];
    for (j, v) in job.rows.chunks_exact(job.row).enumerate() {
        let v = &v[job.vo..][..8 * D8];
        let vv: [__m256; D8] = std::array::from_fn(|t| load8(&v[t * 8..]));
        for (a, pj) in acc.iter_mut().zip(&pr) {
            let pb = _mm256_set1_ps(pj[j]);
            for (at, vt) in a.iter_mut().zip(&vv) {
                *at = _mm256_fmadd_ps(pb, *vt, *at);
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let o = &mut out[(i0 + r) * out_row + oo..][..8 * D8];
        for (t, at) in a.iter().enumerate() {
            store8(&mut o[t * 8..], *at);
        }
    }
}

/// Every query of one head, [`super::QUERY_BLOCK`] at a time: their
/// scores, the softmax of each row, their contexts (in blocks of 2 for
/// a head dimension of 32, one by one for 64, by the portable row
/// kernel for any other).
#[target_feature(enable = "avx2,fma")]
fn attend_head(job: &HeadJob<'_>, s: &mut [f32], out: &mut [f32], out_row: usize, oo: usize) {
    let (len, lp, d) = (job.len(), job.lp, job.d);
    let mut i0 = 0;
    while i0 < len {
        let r = (len - i0).min(super::QUERY_BLOCK);
        match r {
            1 => scores_rows::<1>(job, i0, s),
            2 => scores_rows::<2>(job, i0, s),
            3 => scores_rows::<3>(job, i0, s),
            _ => scores_rows::<4>(job, i0, s),
        }
        for k in 0..r {
            super::softmax_inline(&mut s[k * lp..k * lp + len]);
        }
        match d {
            32 => {
                let mut k = 0;
                while k + 2 <= r {
                    context_block::<2, 4>(job, i0 + k, &s[k * lp..], out, out_row, oo);
                    k += 2;
                }
                if k < r {
                    context_block::<1, 4>(job, i0 + k, &s[k * lp..], out, out_row, oo);
                }
            }
            64 => {
                for k in 0..r {
                    context_block::<1, 8>(job, i0 + k, &s[k * lp..], out, out_row, oo);
                }
            }
            _ => {
                for k in 0..r {
                    let o = (i0 + k) * out_row + oo;
                    super::context_row_any(
                        &s[k * lp..k * lp + len],
                        job.rows,
                        job.row,
                        job.vo,
                        &mut out[o..o + d],
                    );
                }
            }
        }
        i0 += r;
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
        |rows, row, ko, d, lp, scale, kt| gather_kt(rows, row, ko, d, lp, scale, kt),
        |job, s, out, out_row, oo| attend_head(job, s, out, out_row, oo),
    );
}
