//! The AVX-512 VNNI tiles: `vpdpwssd` over the same 16-bit pairs as AVX2
//! (256- and 512-bit builds), and `vpdpbusd` over unsigned 8-bit
//! activations and signed 8-bit weights, four products a lane.

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
    for r in 0..R {
        // SAFETY: `out[r]` is 16 writable i32s (NR), exclusively
        // borrowed; `storeu` has no alignment requirement.
        unsafe { _mm512_storeu_si512(out[r].as_mut_ptr() as *mut __m512i, acc[r]) };
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
    let mut lo = [_mm256_setzero_si256(); R];
    let mut hi = [_mm256_setzero_si256(); R];
    for t in 0..quads {
        // SAFETY: as in `tile512_u8`: 64 readable bytes from `w + t·64`.
        let (w0, w1) = unsafe {
            (
                _mm256_loadu_si256(w.add(t * 64) as *const __m256i),
                _mm256_loadu_si256(w.add(t * 64 + 32) as *const __m256i),
            )
        };
        for r in 0..R {
            // SAFETY: as in `tile512_u8`.
            let quad = unsafe { (a.add(r * lda + 4 * t) as *const i32).read_unaligned() };
            let av = _mm256_set1_epi32(quad);
            lo[r] = _mm256_dpbusd_epi32(lo[r], av, w0);
            hi[r] = _mm256_dpbusd_epi32(hi[r], av, w1);
        }
    }
    for r in 0..R {
        // SAFETY: `out[r]` is 16 writable i32s (NR), exclusively
        // borrowed: 8 are written from its start and 8 from its middle.
        unsafe {
            _mm256_storeu_si256(out[r].as_mut_ptr() as *mut __m256i, lo[r]);
            _mm256_storeu_si256(out[r].as_mut_ptr().add(8) as *mut __m256i, hi[r]);
        }
    }
}
