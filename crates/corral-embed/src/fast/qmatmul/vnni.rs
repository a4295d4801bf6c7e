//! The AVX-512 VNNI tiles: `vpdpwssd` over the same 16-bit pairs as AVX2
//! (256- and 512-bit builds), and `vpdpbusd` over unsigned 8-bit
//! activations and signed 8-bit weights, four products a lane.

use super::output::TileStep;
use super::{MR, NR};
use std::arch::x86_64::*;

/// The `R × 16` tile over `pairs` steps of two `k` values, two 256-bit
/// accumulators per row.
///
/// # Safety
/// The CPU has AVX-512 F, BW, VL and VNNI; `a` is readable for `R` rows
/// of stride `lda`, each `2·pairs` values; `w` is readable for
/// `pairs · 32` values.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn tile256<const R: usize>(
    a: *const i16,
    lda: usize,
    w: *const i16,
    pairs: usize,
    out: &mut [[i32; NR]; MR],
) {
    let mut lo = [_mm256_setzero_si256(); R];
    let mut hi = [_mm256_setzero_si256(); R];
    for t in 0..pairs {
        // SAFETY: t < pairs, so the 32 values from `w + t·32` lie within
        // the `pairs · 32` the caller promised readable; `loadu` has no
        // alignment requirement.
        let (w0, w1) = unsafe {
            (
                _mm256_loadu_si256(w.add(t * 32) as *const __m256i),
                _mm256_loadu_si256(w.add(t * 32 + 16) as *const __m256i),
            )
        };
        for r in 0..R {
            // SAFETY: r < R and 2·t + 1 < 2·pairs, so both i16 values lie
            // within row `r` as the caller promised it readable; the read
            // is unaligned.
            let pair = unsafe { (a.add(r * lda + 2 * t) as *const i32).read_unaligned() };
            let av = _mm256_set1_epi32(pair);
            lo[r] = _mm256_dpwssd_epi32(lo[r], av, w0);
            hi[r] = _mm256_dpwssd_epi32(hi[r], av, w1);
        }
    }
    for r in 0..R {
        // SAFETY: `out[r]` is 16 writable i32s (NR), exclusively
        // borrowed: 8 are written from its start and 8 from its middle;
        // `storeu` has no alignment requirement.
        unsafe {
            _mm256_storeu_si256(out[r].as_mut_ptr() as *mut __m256i, lo[r]);
            _mm256_storeu_si256(out[r].as_mut_ptr().add(8) as *mut __m256i, hi[r]);
        }
    }
}

/// As [`tile256`], one 512-bit accumulator (all 16 columns) per row.
///
/// # Safety
/// As [`tile256`].
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn tile512<const R: usize>(
    a: *const i16,
    lda: usize,
    w: *const i16,
    pairs: usize,
    out: &mut [[i32; NR]; MR],
) {
    let mut acc = [_mm512_setzero_si512(); R];
    for t in 0..pairs {
        // SAFETY: t < pairs, so the 32 values from `w + t·32` lie within
        // the `pairs · 32` the caller promised readable; `loadu` has no
        // alignment requirement.
        let wv = unsafe { _mm512_loadu_si512(w.add(t * 32) as *const __m512i) };
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: r < R and 2·t + 1 < 2·pairs, so both i16 values lie
            // within row `r` as the caller promised it readable; the read
            // is unaligned.
            let pair = unsafe { (a.add(r * lda + 2 * t) as *const i32).read_unaligned() };
            *acc = _mm512_dpwssd_epi32(*acc, _mm512_set1_epi32(pair), wv);
        }
    }
    for r in 0..R {
        // SAFETY: `out[r]` is 16 writable i32s (NR), exclusively
        // borrowed; `storeu` has no alignment requirement.
        unsafe { _mm512_storeu_si512(out[r].as_mut_ptr() as *mut __m512i, acc[r]) };
    }
}

/// The `R` rows' `u8 × s8` sums over `quads` steps of four `k` values:
/// `vpdpbusd` adds the four products of each lane to its `i32`
/// accumulator, one 512-bit accumulator (16 columns) per row.
///
/// # Safety
/// As [`tile512_u8`].
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn sums512_u8<const R: usize>(
    a: *const u8,
    lda: usize,
    w: *const i8,
    quads: usize,
) -> [__m512i; R] {
    let mut acc = [_mm512_setzero_si512(); R];
    for t in 0..quads {
        // SAFETY: t < quads, so the 64 bytes from `w + t·64` lie within
        // the `quads · 64` the caller promised readable; `loadu` has no
        // alignment requirement.
        let wv = unsafe { _mm512_loadu_si512(w.add(t * 64) as *const __m512i) };
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: r < R and 4·t + 3 < 4·quads, so the four bytes lie
            // within row `r` as the caller promised it readable; the read
            // is unaligned.
            let quad = unsafe { (a.add(r * lda + 4 * t) as *const i32).read_unaligned() };
            *acc = _mm512_dpbusd_epi32(*acc, _mm512_set1_epi32(quad), wv);
        }
    }
    acc
}

/// The `R × 16` tile over `quads` steps of four `k` values, unsigned
/// bytes `a` times signed bytes `w`: `vpdpbusd` adds the four products
/// of each lane to its `i32` accumulator (wrapping; with `a ≤ 255` and
/// `|w| ≤ 127` the sums are exact while `k·255·127 < 2³¹`), one
/// 512-bit accumulator per row.
///
/// # Safety
/// The CPU has AVX-512 F, BW, VL and VNNI; `a` is readable for `R` rows
/// of stride `lda`, each `4·quads` bytes; `w` for `quads · 64` bytes.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn tile512_u8<const R: usize>(
    a: *const u8,
    lda: usize,
    w: *const i8,
    quads: usize,
    out: &mut [[i32; NR]; MR],
) {
    // SAFETY: as this function's own contract.
    let acc = unsafe { sums512_u8::<R>(a, lda, w, quads) };
    for r in 0..R {
        // SAFETY: `out[r]` is 16 writable i32s (NR), exclusively
        // borrowed; `storeu` has no alignment requirement.
        unsafe { _mm512_storeu_si512(out[r].as_mut_ptr() as *mut __m512i, acc[r]) };
    }
}

/// As [`sums512_u8`], two 256-bit accumulators (columns 0–7 and 8–15)
/// per row.
///
/// # Safety
/// As [`tile512_u8`].
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn sums256_u8<const R: usize>(
    a: *const u8,
    lda: usize,
    w: *const i8,
    quads: usize,
) -> [[__m256i; 2]; R] {
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    for t in 0..quads {
        // SAFETY: as in `sums512_u8`: 64 readable bytes from `w + t·64`.
        let (w0, w1) = unsafe {
            (
                _mm256_loadu_si256(w.add(t * 64) as *const __m256i),
                _mm256_loadu_si256(w.add(t * 64 + 32) as *const __m256i),
            )
        };
        for (r, [lo, hi]) in acc.iter_mut().enumerate() {
            // SAFETY: as in `sums512_u8`.
            let quad = unsafe { (a.add(r * lda + 4 * t) as *const i32).read_unaligned() };
            let av = _mm256_set1_epi32(quad);
            *lo = _mm256_dpbusd_epi32(*lo, av, w0);
            *hi = _mm256_dpbusd_epi32(*hi, av, w1);
        }
    }
    acc
}

/// [`tile512_u8`] with the output step done on the accumulators where they
/// are, instead of through a tile in memory: per row, a wide row's high
/// sums shifted and its low sums added, then `out (+)= acc·(s_a·s_w) +
/// off·Σŵ` — the operations of `output::finish_rows`, one by one, in its
/// order (no fused multiply-add), so the same bits. Writes (and, when
/// accumulating, reads) only the panel's `step.cols` columns of each row.
///
/// # Safety
/// As [`tile512_u8`]; `step` holds factors for `R` rows and `step.cols ≤
/// NR`; `o` is `step.out`'s row `step.row`, column `step.col`, checked to
/// hold `R` rows of `step.cols` (`OutRows::tile_at`), and no other live
/// reference covers those elements.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn tile512_u8_out<const R: usize>(
    a: *const u8,
    lda: usize,
    w: *const i8,
    quads: usize,
    step: &TileStep<'_>,
    o: *mut f32,
) {
    // SAFETY: as this function's own contract (that of `tile512_u8`).
    let acc = unsafe { sums512_u8::<R>(a, lda, w, quads) };
    // SAFETY: `sw` and `ws` are 16 readable f32s (`[f32; NR]`).
    let (sw, ws) = unsafe {
        (
            _mm512_loadu_ps(step.sw.as_ptr()),
            _mm512_loadu_ps(step.ws.as_ptr()),
        )
    };
    let shift = _mm_cvtsi32_si128(step.shift as i32);
    let mask: __mmask16 = if step.cols >= NR {
        !0
    } else {
        (1 << step.cols) - 1
    };
    for (r, &acc) in acc.iter().enumerate() {
        let mut acc = acc;
        if let Some(lo) = step.lo(r) {
            // SAFETY: `lo` is 16 readable i32s (`[i32; NR]`).
            let lo = unsafe { _mm512_loadu_si512(lo.as_ptr() as *const __m512i) };
            acc = _mm512_add_epi32(_mm512_sll_epi32(acc, shift), lo);
        }
        let scale = _mm512_mul_ps(_mm512_set1_ps(step.sa[r]), sw);
        let term = _mm512_mul_ps(_mm512_set1_ps(step.off[r]), ws);
        let mut y = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), scale), term);
        // SAFETY: row `r < R` of the tile the caller checked.
        let o = unsafe { o.add(r * step.out.n) };
        if step.accumulate {
            // SAFETY: the mask reads only the row's `cols` elements, which
            // the checked tile holds; masked-off lanes are never touched.
            y = _mm512_add_ps(unsafe { _mm512_maskz_loadu_ps(mask, o) }, y);
        }
        // SAFETY: as the load: only the row's own `cols` elements, which no
        // other reference covers (the caller's contract).
        unsafe { _mm512_mask_storeu_ps(o, mask, y) };
    }
}

/// As [`tile512_u8_out`], two 256-bit accumulators per row (the output
/// step 8 columns at a time, masked to the panel's columns).
///
/// # Safety
/// As [`tile512_u8_out`].
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn tile256_u8_out<const R: usize>(
    a: *const u8,
    lda: usize,
    w: *const i8,
    quads: usize,
    step: &TileStep<'_>,
    o: *mut f32,
) {
    // SAFETY: as this function's own contract (that of `tile512_u8`).
    let acc = unsafe { sums256_u8::<R>(a, lda, w, quads) };
    let shift = _mm_cvtsi32_si128(step.shift as i32);
    for (r, halves) in acc.iter().enumerate() {
        let wide = step.lo(r);
        for (h, &half) in halves.iter().enumerate() {
            let first = 8 * h;
            let mut acc = half;
            if let Some(lo) = wide {
                // SAFETY: `lo` is 16 readable i32s; this half reads 8 of
                // them from `first`.
                let lo = unsafe { _mm256_loadu_si256(lo.as_ptr().add(first) as *const __m256i) };
                acc = _mm256_add_epi32(_mm256_sll_epi32(acc, shift), lo);
            }
            // SAFETY: `sw` and `ws` are 16 readable f32s; 8 from `first`.
            let (sw, ws) = unsafe {
                (
                    _mm256_loadu_ps(step.sw.as_ptr().add(first)),
                    _mm256_loadu_ps(step.ws.as_ptr().add(first)),
                )
            };
            let scale = _mm256_mul_ps(_mm256_set1_ps(step.sa[r]), sw);
            let term = _mm256_mul_ps(_mm256_set1_ps(step.off[r]), ws);
            let mut y = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc), scale), term);
            let n = step.cols.saturating_sub(first).min(8);
            let mask: __mmask8 = ((1u16 << n) - 1) as u8;
            // `wrapping_add`: only dereferenced through the mask, which is
            // empty when the panel has no columns this far.
            let o = o.wrapping_add(r * step.out.n + first);
            if step.accumulate {
                // SAFETY: the mask reads only columns `first..first + n`
                // of the checked tile's row; masked-off lanes are never
                // touched.
                y = _mm256_add_ps(unsafe { _mm256_maskz_loadu_ps(mask, o) }, y);
            }
            // SAFETY: as the load, under the caller's exclusivity.
            unsafe { _mm256_mask_storeu_ps(o, mask, y) };
        }
    }
}

/// As [`tile512_u8`], two 256-bit accumulators per row.
///
/// # Safety
/// As [`tile512_u8`].
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn tile256_u8<const R: usize>(
    a: *const u8,
    lda: usize,
    w: *const i8,
    quads: usize,
    out: &mut [[i32; NR]; MR],
) {
    // SAFETY: as this function's own contract (that of `tile512_u8`).
    let acc = unsafe { sums256_u8::<R>(a, lda, w, quads) };
    for (r, [lo, hi]) in acc.iter().enumerate() {
        // SAFETY: `out[r]` is 16 writable i32s (NR), exclusively
        // borrowed: 8 are written from its start and 8 from its middle.
        unsafe {
            _mm256_storeu_si256(out[r].as_mut_ptr() as *mut __m256i, *lo);
            _mm256_storeu_si256(out[r].as_mut_ptr().add(8) as *mut __m256i, *hi);
        }
    }
}
