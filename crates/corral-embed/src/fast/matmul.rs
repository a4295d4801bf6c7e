//! Dense layers, multiplied with the `gemm` crate (the same version
//! candle-core uses), choosing its parallelism per call, or, in the
//! AVX-512 builds, by a kernel of our own over weights packed at load
//! ([`avx512`]); Q, K and V fused into one layer at load.
//!
//! The AVX-512 kernel: measured against `gemm` on one thread
//! (`avx512_timings` below, Zen 4, quiet machine, median of 7): 1.04–1.06×
//! at a batch's ~900 rows for BERT's four shapes (both near this core's
//! fused multiply-add peak, ~110 GFLOP/s), 1.57× at a lone sentence's 30
//! rows, and no per-call packing (3.7% of an fp32 run was `gemm`'s).
//!
//! Weights stay in PyTorch's `[out, in]` row-major layout and are read as
//! the transposed right-hand side (`x · Wᵀ`): on this machine gemm runs that
//! as fast as, or 1–5% faster than, a weight transposed once at load
//! (`layout_timings` below; both ≈ 80–88 GFLOP/s on one core for BERT's
//! shapes at ~900 tokens). A hand-written packed AVX2 kernel was tried and
//! reached only 65–80, so it is not used.
//!
//! This module owns [`Linear`] and [`matmul`], whose call into `gemm` is the
//! only `unsafe` in the dense layers (the crate has a raw-pointer API); every
//! bound it relies on is checked with an `assert!` right before the call.

use gemm::Parallelism;

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub(super) mod avx512;

/// How the right-hand side of [`matmul`] is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RhsLayout {
    /// `[k, n]` row-major. (The model's weights are all `NByK`; only the
    /// tests multiply by a `[k, n]` matrix.)
    #[cfg_attr(not(test), allow(dead_code))]
    KByN,
    /// `[n, k]` row-major (the product uses its transpose), PyTorch's
    /// `Linear.weight` layout.
    NByK,
}

/// A dense layer `y = x · Wᵀ + b`, with `W` in PyTorch layout, or packed
/// for the AVX-512 kernel.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    /// `W`, `[n, k]` row-major (`out_features × in_features`); empty when
    /// `packed` holds it.
    w: Vec<f32>,
    /// `W` packed for [`avx512::product`], in the AVX-512 builds.
    packed: Option<Vec<f32>>,
    /// Bias, `[n]`.
    pub(crate) bias: Vec<f32>,
    /// Input features.
    pub(crate) k: usize,
    /// Output features.
    pub(crate) n: usize,
}

impl Linear {
    /// Builds the layer from a PyTorch-layout weight `w` (`[n, k]`
    /// row-major) and its bias.
    pub(crate) fn from_torch(w: Vec<f32>, bias: Vec<f32>, n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight size");
        assert_eq!(bias.len(), n, "bias size");
        Self {
            w,
            packed: None,
            bias,
            k,
            n,
        }
    }

    /// Packs `W` for [`avx512::product`] (dropping the PyTorch-layout copy)
    /// when `isa` is one of the AVX-512 builds and it is not packed yet;
    /// otherwise leaves it to `gemm`.
    pub(crate) fn pack_for(&mut self, isa: super::Isa) {
        #[cfg(target_arch = "x86_64")]
        if isa.vnni_wide().is_some() && self.packed.is_none() {
            self.packed = Some(avx512::pack(&self.w, self.n, self.k));
            self.w = Vec::new();
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = isa;
    }

    /// `W` in PyTorch layout (`[n, k]` row-major), unpacked when packed.
    pub(crate) fn torch_weights(&self) -> std::borrow::Cow<'_, [f32]> {
        match &self.packed {
            None => std::borrow::Cow::Borrowed(&self.w),
            #[cfg(target_arch = "x86_64")]
            Some(p) => std::borrow::Cow::Owned(avx512::unpack(p, self.n, self.k)),
            #[cfg(not(target_arch = "x86_64"))]
            Some(_) => unreachable!("packed only on x86-64"),
        }
    }

    /// Concatenates layers sharing the input along their outputs (stacking
    /// the rows of `W`), so that Q, K and V are computed by one matmul.
    pub(crate) fn concat_outputs(parts: &[Linear]) -> Self {
        let k = parts[0].k;
        assert!(parts.iter().all(|p| p.k == k), "inputs differ");
        let n = parts.iter().map(|p| p.n).sum();
        let w = parts
            .iter()
            .flat_map(|p| p.torch_weights().into_owned())
            .collect();
        let bias = parts.iter().flat_map(|p| p.bias.iter().copied()).collect();
        Self::from_torch(w, bias, n, k)
    }

    /// `out[m, n] = x[m, k] · Wᵀ` plus what `out` already holds when
    /// `accumulate` (used to fuse the residual add). The bias is *not* added:
    /// callers fuse it into the following pass.
    pub(crate) fn forward_no_bias(
        &self,
        x: &[f32],
        out: &mut [f32],
        m: usize,
        accumulate: bool,
        threads: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if let Some(packed) = &self.packed {
            self.forward_packed(packed, x, out, m, accumulate, threads);
            return;
        }
        let layout = RhsLayout::NByK;
        matmul(
            out, x, &self.w, m, self.k, self.n, layout, accumulate, threads,
        );
    }

    /// [`Linear::forward_no_bias`] by [`avx512::product`], split over
    /// `threads` by [`split_tiles`]: every element is the same chain of
    /// fused multiply-adds whatever the split, so it never changes a bit.
    #[cfg(target_arch = "x86_64")]
    fn forward_packed(
        &self,
        packed: &[f32],
        x: &[f32],
        out: &mut [f32],
        m: usize,
        accumulate: bool,
        threads: usize,
    ) {
        let (k, n) = (self.k, self.n);
        assert!(x.len() >= m * k, "lhs too short");
        assert!(out.len() >= m * n, "dst too short");
        assert!(
            super::Isa::avx512_vnni(false).is_some(),
            "packed for AVX-512 on a CPU without it"
        );
        if m == 0 || n == 0 {
            return;
        }
        let panels = n.div_ceil(avx512::NR);
        let dst = SharedOut(out.as_mut_ptr());
        split_tiles(m, panels, avx512::MR, threads, |rows, cols| {
            // SAFETY: the CPU has AVX-512 F (asserted above: the VNNI check
            // includes it); `out` is borrowed mutably for the whole product
            // and holds m·n values, and each job writes only its own rows or
            // its own panels' columns of it (`split_tiles`).
            #[allow(unsafe_code)]
            unsafe {
                avx512::product(x, packed, k, n, rows, cols, dst, accumulate)
            }
        });
    }
}

/// Runs `job(rows, panels)` over an `m`-row product whose output is cut
/// into `panels` column panels and tiles of `mr` rows: on the calling
/// thread for `threads <= 1`; else over the current rayon pool, splitting
/// the rows when there are at least two tiles per thread, the panels
/// otherwise. The jobs' (rows, panels) pairs are disjoint and cover the
/// product, so a kernel whose every element is one chain over `k` gives
/// the same bits on any number of threads.
pub(super) fn split_tiles(
    m: usize,
    panels: usize,
    mr: usize,
    threads: usize,
    job: impl Fn(std::ops::Range<usize>, std::ops::Range<usize>) + Sync,
) {
    use rayon::prelude::*;
    if m == 0 || panels == 0 {
        return;
    }
    if threads <= 1 {
        job(0..m, 0..panels);
    } else if m.div_ceil(mr) >= 2 * threads {
        let chunk = m.div_ceil(threads * 2).div_ceil(mr) * mr;
        (0..m.div_ceil(chunk))
            .into_par_iter()
            .for_each(|c| job(c * chunk..((c + 1) * chunk).min(m), 0..panels));
    } else {
        let jobs = threads.min(panels);
        (0..jobs)
            .into_par_iter()
            .for_each(|j| job(0..m, panels * j / jobs..panels * (j + 1) / jobs));
    }
}

/// Rows below which a product on several threads splits the output's
/// columns among them instead of leaving the split to `gemm`: a lone short
/// sentence's few rows give `gemm`'s own row-wise threading nothing to
/// share (measured by `small_m_timings` below: at 19 rows, two threads
/// through `gemm` ran no faster than one).
pub(crate) const COLUMN_SPLIT_ROWS: usize = 64;

/// Columns per job of a column split are whole multiples of this (a few
/// SIMD vectors), so no job is left a ragged sliver.
const COLUMN_ALIGN: usize = 32;

/// `out[m, n] (+)= a[m, k] · B`, `a` and `out` row-major and contiguous, `B`
/// stored as `layout` says. With `accumulate` the product is added to `out`,
/// otherwise it overwrites it. `threads <= 1` runs on the calling thread
/// only; more use the current rayon pool: for fewer than
/// [`COLUMN_SPLIT_ROWS`] rows each thread computes its own range of output
/// columns (every element is still one thread's dot product over all of
/// `k`), otherwise `gemm` splits the work itself.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    layout: RhsLayout,
    accumulate: bool,
    threads: usize,
) {
    assert!(a.len() >= m * k, "lhs too short");
    assert!(b.len() >= k * n, "rhs too short");
    assert!(out.len() >= m * n, "dst too short");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out[..m * n].fill(0.0);
        }
        return;
    }
    let jobs = threads.min(n.div_ceil(COLUMN_ALIGN));
    if threads > 1 && m < COLUMN_SPLIT_ROWS && jobs >= 2 {
        use rayon::prelude::*;
        let dst = SharedOut(out.as_mut_ptr());
        let step = n.div_ceil(jobs).div_ceil(COLUMN_ALIGN) * COLUMN_ALIGN;
        (0..jobs).into_par_iter().for_each(|j| {
            let cols = (j * step).min(n)..((j + 1) * step).min(n);
            // SAFETY: `out` (m·n elements, checked above) is borrowed
            // mutably for the whole parallel loop, and each job writes only
            // its own columns `cols` of it; the column ranges are disjoint.
            #[allow(unsafe_code)]
            unsafe {
                gemm_columns(
                    dst,
                    a,
                    b,
                    m,
                    k,
                    n,
                    cols,
                    layout,
                    accumulate,
                    Parallelism::None,
                )
            };
        });
        return;
    }
    let par = if threads <= 1 {
        Parallelism::None
    } else {
        Parallelism::Rayon(threads)
    };
    // SAFETY: `out` is an exclusive borrow of at least m·n elements, and
    // this one call writes all of its columns.
    #[allow(unsafe_code)]
    unsafe {
        gemm_columns(
            SharedOut(out.as_mut_ptr()),
            a,
            b,
            m,
            k,
            n,
            0..n,
            layout,
            accumulate,
            par,
        )
    };
}

/// The start of a product's output, shared by the jobs that each write
/// their own columns of it.
#[derive(Clone, Copy)]
pub(super) struct SharedOut(pub(super) *mut f32);

// SAFETY: a `SharedOut` points into a buffer borrowed mutably for one
// product, whose jobs write disjoint columns of it (see `gemm_columns`).
#[allow(unsafe_code)]
unsafe impl Send for SharedOut {}
// SAFETY: as for `Send`.
#[allow(unsafe_code)]
unsafe impl Sync for SharedOut {}

/// Columns `cols` of `out[m, n] (+)= a[m, k] · B` through `gemm`.
///
/// # Safety
/// `out.0` must point to `m·n` writable `f32`s, row-major with row stride
/// `n`, and nothing else may read or write their columns `cols` during the
/// call. `a`, `b` and the sizes are checked by [`matmul`] (`a.len() >= m·k`,
/// `b.len() >= k·n`, `cols` within `0..n`).
#[allow(clippy::too_many_arguments, unsafe_code)]
unsafe fn gemm_columns(
    out: SharedOut,
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    cols: std::ops::Range<usize>,
    layout: RhsLayout,
    accumulate: bool,
    par: Parallelism,
) {
    assert!(
        cols.start <= cols.end && cols.end <= n,
        "columns out of range"
    );
    if cols.is_empty() {
        return;
    }
    // B[p][j] sits at b[p·b_rs + j·b_cs].
    let (b_cs, b_rs) = match layout {
        RhsLayout::KByN => (1, n as isize),
        RhsLayout::NByK => (k as isize, 1),
    };
    // SAFETY: `a` holds at least m·k elements, read at a[i·k + p] (row
    // stride k, column stride 1) for i < m, p < k; `b` holds at least k·n
    // elements, read at b[p·b_rs + j·b_cs] ≤ (k-1)·n + (n-1) or
    // (n-1)·k + (k-1) < k·n for p < k and j in `cols` (j < n), through a
    // pointer offset by cols.start·b_cs; `out` is written at
    // out[i·n + j] < m·n for i < m, j in `cols`, which the caller
    // guarantees no one else touches meanwhile, so it aliases neither
    // input. All strides fit in isize because the slices exist. With
    // `read_dst = false` gemm never reads `out`.
    unsafe {
        gemm::gemm(
            m,
            cols.len(),
            k,
            out.0.add(cols.start),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr().offset(cols.start as isize * b_cs),
            b_cs,
            b_rs,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests;
