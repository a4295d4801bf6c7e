//! fp32 dense layers on AVX-512 F: the weights packed once at load into
//! panels of [`NR`] = 32 output columns (`k` steps of 32 values: two
//! 512-bit vectors), and a tile of up to [`MR`] = 12 rows × 32 columns
//! held in 24 of AVX-512's 32 registers. Each `k` step loads the panel's
//! two vectors once and broadcasts one value of each row: 2 + 12 loads per
//! 24 fused multiply-adds, where a 256-bit kernel (16 registers) keeps a
//! tile a quarter the size and loads about twice as much per multiply-add.
//! The activations are read where they lie (row-major, broadcast one value
//! at a time), so only the weights are ever packed.
//!
//! Each output element is one fused multiply-add chain over `k` in order,
//! so the result does not depend on the tile, the row block or the thread
//! that computed it.

use std::arch::x86_64::*;

/// `$tile::<R>` for `R = $rows` (1 to 12; more is 12): a tile function by
/// its row count, for the kernels whose tiles take their rows as a const
/// parameter.
macro_rules! tile_of_rows {
    ($tile:ident, $rows:expr) => {
        match $rows {
            1 => $tile::<1>,
            2 => $tile::<2>,
            3 => $tile::<3>,
            4 => $tile::<4>,
            5 => $tile::<5>,
            6 => $tile::<6>,
            7 => $tile::<7>,
            8 => $tile::<8>,
            9 => $tile::<9>,
            10 => $tile::<10>,
            11 => $tile::<11>,
            _ => $tile::<12>,
        }
    };
}
pub(in crate::fast) use tile_of_rows;

/// Output columns per panel (two 512-bit vectors).
pub(super) const NR: usize = 32;
/// Rows per tile.
pub(super) const MR: usize = 12;
/// Rows per block: a block's activations stay in L2 while every panel
/// passes over them.
const MC: usize = 96;

/// `w` (`[n, k]` row-major, PyTorch's layout) packed as panels of [`NR`]
/// columns: panel `p`, step `t` holds columns `32p..32p + 32` at `k = t`,
/// zero beyond `n`.
pub(super) fn pack(w: &[f32], n: usize, k: usize) -> Vec<f32> {
    assert_eq!(w.len(), n * k, "weight size");
    let panels = n.div_ceil(NR);
    let mut out = vec![0.0f32; panels * k * NR];
    for (j, row) in w.chunks_exact(k.max(1)).take(n).enumerate() {
        let (panel, c) = (j / NR, j % NR);
        let dst = &mut out[panel * k * NR..(panel + 1) * k * NR];
        for (t, &v) in row.iter().enumerate() {
            dst[t * NR + c] = v;
        }
    }
    out
}

/// The `[n, k]` row-major weights back from [`pack`]'s panels.
pub(super) fn unpack(packed: &[f32], n: usize, k: usize) -> Vec<f32> {
    let mut w = vec![0.0f32; n * k];
    for (j, row) in w.chunks_exact_mut(k.max(1)).take(n).enumerate() {
        let (panel, c) = (j / NR, j % NR);
        for (t, v) in row.iter_mut().enumerate() {
            *v = packed[(panel * k + t) * NR + c];
        }
    }
    w
}

/// Rows `rows` of `out[m, n] (+)= a[m, k] · Wᵀ`, the panels `panels` of
/// the packed weights, on the calling thread. `out` is the product's whole
/// output (row stride `n`).
///
/// # Safety
/// The CPU has AVX-512 F (and AVX2 + FMA); `out` points to at least
/// `rows.end · n` writable values, of which no one else reads or writes
/// rows `rows`' columns in `panels` during the call.
#[target_feature(enable = "avx2,fma,avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn product(
    a: &[f32],
    packed: &[f32],
    k: usize,
    n: usize,
    rows: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
    out: super::SharedOut,
    accumulate: bool,
) {
    assert!(a.len() >= rows.end * k, "lhs too short");
    assert!(packed.len() >= n.div_ceil(NR) * k * NR, "panels");
    assert!(panels.end <= n.div_ceil(NR), "panel range");
    for mc in rows.clone().step_by(MC) {
        let mc_end = (mc + MC).min(rows.end);
        for panel in panels.clone() {
            let w = &packed[panel * k * NR..(panel + 1) * k * NR];
            let cols = (n - panel * NR).min(NR);
            for r0 in (mc..mc_end).step_by(MR) {
                let mr = (mc_end - r0).min(MR);
                let a = &a[r0 * k..(r0 + mr) * k];
                // SAFETY: `out` covers rows `rows` (the caller's contract)
                // with stride `n`, so row `r0 + r` (< rows.end) columns
                // `panel·NR .. + cols` (≤ n) are in it and this job's own.
                let o = unsafe { out.0.add(r0 * n + panel * NR) };
                type Tile = unsafe fn(*const f32, usize, *const f32, *mut f32, usize, usize, bool);
                let tile: Tile = tile_of_rows!(tile, mr);
                // SAFETY: `a` holds `mr` rows of `k`, `w` a whole panel
                // (`k·NR`), `o` `mr` rows of `cols` writable values at
                // stride `n` (above); the CPU has AVX-512 F (the caller's
                // contract).
                unsafe { tile(a.as_ptr(), k, w.as_ptr(), o, n, cols, accumulate) };
            }
        }
    }
}

/// The `R × 32` tile: `o[r, c] (+)= Σ_t a[r, t]·w[t, c]` for `c < cols`.
///
/// # Safety
/// The CPU has AVX-512 F; `a` is readable for `R` rows of `k` (stride
/// `k`), `w` for `k·32` values, `o` writable for `R` rows of `cols ≤ 32`
/// values (stride `ldo`), and no one else touches those meanwhile.
#[inline]
#[target_feature(enable = "avx2,fma,avx512f")]
unsafe fn tile<const R: usize>(
    a: *const f32,
    k: usize,
    w: *const f32,
    o: *mut f32,
    ldo: usize,
    cols: usize,
    accumulate: bool,
) {
    let mut lo = [_mm512_setzero_ps(); R];
    let mut hi = [_mm512_setzero_ps(); R];
    for t in 0..k {
        // SAFETY: t < k, so the 32 values at `w + 32t` are in the panel;
        // `a[r·k + t]` is in row r < R. Unaligned loads.
        unsafe {
            let w0 = _mm512_loadu_ps(w.add(t * NR));
            let w1 = _mm512_loadu_ps(w.add(t * NR + 16));
            for r in 0..R {
                let av = _mm512_set1_ps(*a.add(r * k + t));
                lo[r] = _mm512_fmadd_ps(av, w0, lo[r]);
                hi[r] = _mm512_fmadd_ps(av, w1, hi[r]);
            }
        }
    }
    // SAFETY: as this function's own contract.
    unsafe { store(&lo, &hi, o, ldo, cols, accumulate) }
}

/// Writes an `R × 32` tile of fp32 sums (`lo`: columns 0–15, `hi`:
/// 16–31) to `o`, added to what it holds when `accumulate`, masked to the
/// first `cols` columns.
///
/// # Safety
/// The CPU has AVX-512 F; `o` is readable and writable for `R` rows of
/// `cols ≤ 32` values (stride `ldo`), and no one else touches those
/// meanwhile.
#[inline]
#[target_feature(enable = "avx2,fma,avx512f")]
pub(in crate::fast) unsafe fn store<const R: usize>(
    lo: &[__m512; R],
    hi: &[__m512; R],
    o: *mut f32,
    ldo: usize,
    cols: usize,
    accumulate: bool,
) {
    let mask = |from: usize| -> __mmask16 {
        let c = cols.saturating_sub(from).min(16);
        ((1u32 << c) - 1) as __mmask16
    };
    let (m0, m1) = (mask(0), mask(16));
    for r in 0..R {
        // SAFETY: row r < R, columns under `cols` only (the masks); masked
        // loads and stores touch no element outside the mask.
        unsafe {
            let p = o.add(r * ldo);
            let (mut v0, mut v1) = (lo[r], hi[r]);
            if accumulate {
                v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, p), v0);
                v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, p.wrapping_add(16)), v1);
            }
            _mm512_mask_storeu_ps(p, m0, v0);
            _mm512_mask_storeu_ps(p.wrapping_add(16), m1, v1);
        }
    }
}
