//! The bf16 product on AVX-512 BF16: a block of up to [`MC`] activation
//! rows rounded to bf16 once (`vcvtne2ps2bf16`, stride `k` rounded up to
//! even, zero-padded), then tiles of up to [`MR`] = 12 rows × 32 columns
//! held in 24 registers, as the fp32 kernel's: each pair step loads the
//! panel's two vectors (16 columns × 2 inputs each) once and broadcasts
//! one row's input pair, for two `vdpbf16ps` per row — 64 multiply-adds
//! where the fp32 tile does 32.
//!
//! Each output element is one chain of `vdpbf16ps` over `k` in order, so
//! the result does not depend on the tile, the block or the thread that
//! computed it.

use super::NR;
use crate::fast::matmul::avx512::{store, tile_of_rows};
use crate::fast::matmul::SharedOut;
use std::arch::x86_64::*;

/// Rows per tile.
pub(super) const MR: usize = 12;
/// Rows per block: a block's rounded activations stay in L2 while every
/// panel passes over them.
const MC: usize = 96;

/// Rows `rows` of `out[m, n] (+)= bf16(x[m, k]) · Wᵀ`, the panels
/// `panels` of the packed weights, on the calling thread. `out` is the
/// product's whole output (row stride `n`).
///
/// # Safety
/// The CPU has AVX-512 F, BW and BF16 (and AVX2 + FMA); `out` points to at
/// least `rows.end · n` writable values, of which no one else reads or
/// writes rows `rows`' columns in `panels` during the call.
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512bf16")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn product(
    x: &[f32],
    packed: &[u16],
    k: usize,
    n: usize,
    rows: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
    out: SharedOut,
    accumulate: bool,
) {
    let pairs = k.div_ceil(2);
    let panel_len = pairs * 2 * NR;
    assert!(x.len() >= rows.end * k, "lhs too short");
    assert!(packed.len() >= n.div_ceil(NR) * panel_len, "panels");
    assert!(panels.end <= n.div_ceil(NR), "panel range");
    let lda = 2 * pairs;
    let mut a = vec![0u16; rows.len().min(MC) * lda];
    for mc in rows.clone().step_by(MC) {
        let block = (mc + MC).min(rows.end) - mc;
        for (r, dst) in a.chunks_exact_mut(lda.max(1)).take(block).enumerate() {
            let src = &x[(mc + r) * k..(mc + r + 1) * k];
            // SAFETY: the CPU has AVX-512 F, BW and BF16 (our contract).
            unsafe { round_row(src, dst) };
        }
        for panel in panels.clone() {
            let w = &packed[panel * panel_len..(panel + 1) * panel_len];
            let cols = (n - panel * NR).min(NR);
            for r0 in (0..block).step_by(MR) {
                let mr = (block - r0).min(MR);
                // SAFETY: `out` covers rows `rows` (the caller's contract)
                // with stride `n`, so row `mc + r0 + r` (< rows.end)
                // columns `panel·NR .. + cols` (≤ n) are in it and this
                // job's own.
                let o = unsafe { out.0.add((mc + r0) * n + panel * NR) };
                type Tile =
                    unsafe fn(*const u16, usize, *const u16, usize, *mut f32, usize, usize, bool);
                let tile: Tile = tile_of_rows!(tile, mr);
                let a = a[r0 * lda..(r0 + mr) * lda].as_ptr();
                // SAFETY: `a` holds `mr` rounded rows of `lda = 2·pairs`,
                // `w` a whole panel (`pairs · 64`), `o` `mr` rows of `cols`
                // writable values at stride `n` (above); the CPU has
                // AVX-512 F and BF16 (the caller's contract).
                unsafe { tile(a, lda, w.as_ptr(), pairs, o, n, cols, accumulate) };
            }
        }
    }
}

/// `dst[..src.len()]` = `src` rounded to bf16 (ties to even, subnormals to
/// zero: [`super::to_bf16`]), and 0 in `dst`'s one padding value if any.
///
/// # Safety
/// The CPU has AVX-512 F, BW and BF16.
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn round_row(src: &[f32], dst: &mut [u16]) {
    assert!(dst.len() >= src.len() && dst.len() <= src.len() + 1, "row");
    for i in (0..dst.len()).step_by(32) {
        let part = |from: usize, len: usize| -> usize { len.saturating_sub(i + from).min(16) };
        let load =
            |from: usize| -> __mmask16 { ((1u32 << part(from, src.len())) - 1) as __mmask16 };
        let stored = (dst.len() - i).min(32);
        let keep = if stored == 32 {
            u32::MAX
        } else {
            (1u32 << stored) - 1
        };
        // SAFETY: the masked loads read only `src[i..]` values under
        // `src.len()`, the masked store writes only `dst[i..]` values under
        // `dst.len()`; the CPU has the features (our contract).
        unsafe {
            let lo = _mm512_maskz_loadu_ps(load(0), src.as_ptr().wrapping_add(i));
            let hi = _mm512_maskz_loadu_ps(load(16), src.as_ptr().wrapping_add(i + 16));
            let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
            _mm512_mask_storeu_epi16(dst.as_mut_ptr().add(i) as *mut i16, keep, v);
        }
    }
}

/// The `R × 32` tile: `o[r, c] (+)= Σ_t a[r, t]·w[t, c]` for `c < cols`,
/// over `pairs` steps of two inputs.
///
/// # Safety
/// The CPU has AVX-512 F and BF16; `a` is readable for `R` rows of
/// `2·pairs` values (stride `lda`), `w` for `pairs · 64` values, `o`
/// writable for `R` rows of `cols ≤ 32` values (stride `ldo`), and no one
/// else touches those meanwhile.
#[inline]
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize>(
    a: *const u16,
    lda: usize,
    w: *const u16,
    pairs: usize,
    o: *mut f32,
    ldo: usize,
    cols: usize,
    accumulate: bool,
) {
    let mut lo = [_mm512_setzero_ps(); R];
    let mut hi = [_mm512_setzero_ps(); R];
    for t in 0..pairs {
        // SAFETY: t < pairs, so the 64 values at `w + 64t` are in the
        // panel, and row r's pair `2t, 2t + 1` is in its `2·pairs`;
        // unaligned loads. A `__m512i` and a `__m512bh` are the same 64
        // bytes.
        unsafe {
            let w0: __m512bh = std::mem::transmute(_mm512_loadu_si512(w.add(t * 64) as *const _));
            let w1: __m512bh =
                std::mem::transmute(_mm512_loadu_si512(w.add(t * 64 + 32) as *const _));
            for r in 0..R {
                let pair = (a.add(r * lda + 2 * t) as *const i32).read_unaligned();
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
                lo[r] = _mm512_dpbf16_ps(lo[r], av, w0);
                hi[r] = _mm512_dpbf16_ps(hi[r], av, w1);
            }
        }
    }
    // SAFETY: `o` as our contract; the CPU has AVX-512 F.
    unsafe { store(&lo, &hi, o, ldo, cols, accumulate) }
}
