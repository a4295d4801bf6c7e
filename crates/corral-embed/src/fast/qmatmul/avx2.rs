//! The AVX2 tile: `vpmaddwd` multiplies 16 pairs of `i16` and adds
//! adjacent products into 8 `i32` lanes; `vpaddd` accumulates them.

use super::{MR, NR};
use std::arch::x86_64::*;

/// The `R × 16` tile over `pairs` steps of two `k` values.
///
/// # Safety
/// The CPU has AVX2; `a` is readable for `R` rows of stride `lda`, each
/// `2·pairs` values; `w` is readable for `pairs · 32` values.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn tile<const R: usize>(
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
            lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(av, w0));
            hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(av, w1));
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
