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
mod avx512;

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

    /// [`Linear::forward_no_bias`] by [`avx512::product`]. `threads > 1`
    /// splits the rows over the current rayon pool when there are at least
    /// two tiles per thread, else the column panels; every element is the
    /// same chain of fused multiply-adds either way, so the split never
    /// changes a bit.
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
        use rayon::prelude::*;
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
        #[allow(unsafe_code)]
        let job = |rows: std::ops::Range<usize>, cols: std::ops::Range<usize>| {
            // SAFETY: the CPU has AVX-512 F (asserted above: the VNNI check
            // includes it); `out` is borrowed mutably for the whole product
            // and holds m·n values, and each job writes only its own rows or
            // its own panels' columns of it.
            unsafe { avx512::product(x, packed, k, n, rows, cols, dst, accumulate) }
        };
        if threads <= 1 {
            job(0..m, 0..panels);
        } else if m.div_ceil(avx512::MR) >= 2 * threads {
            let chunk = m.div_ceil(threads * 2).div_ceil(avx512::MR) * avx512::MR;
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
struct SharedOut(*mut f32);

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
mod tests {
    use super::super::test_util::{candle_mat, max_abs_diff, random_vec, BERT_SHAPES};
    use super::*;
    use candle_core::{Device, Tensor};

    fn check(m: usize, k: usize, n: usize, accumulate: bool, threads: usize) {
        let x = random_vec(m * k, 1);
        let w = random_vec(n * k, 2);
        let init = random_vec(m * n, 3);
        let xt = candle_mat(&x, m, k);
        let wc = candle_mat(&w, n, k);
        let mut want = xt.matmul(&wc.t().unwrap()).unwrap();
        if accumulate {
            want = (want + Tensor::from_slice(&init, (m, n), &Device::Cpu).unwrap()).unwrap();
        }
        let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();

        let lin = Linear::from_torch(w.clone(), vec![0.0; n], n, k);
        let mut out = init.clone();
        lin.forward_no_bias(&x, &mut out, m, accumulate, threads);
        let d = max_abs_diff(&out, &want);
        assert!(d < 1e-5, "m={m} k={k} n={n}: max diff {d}");

        // The same product with Wᵀ stored explicitly as [k, n].
        let wt: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
        let mut out = init.clone();
        matmul(
            &mut out,
            &x,
            &wt,
            m,
            k,
            n,
            RhsLayout::KByN,
            accumulate,
            threads,
        );
        let d = max_abs_diff(&out, &want);
        assert!(d < 1e-5, "KByN m={m} k={k} n={n}: max diff {d}");
    }

    #[test]
    fn matmul_matches_candle_odd_sizes() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 5, 7),
            (17, 33, 65),
            (37, 384, 96),
            (64, 96, 13),
        ] {
            check(m, k, n, false, 1);
            check(m, k, n, true, 1);
            check(m, k, n, true, 2);
        }
    }

    /// Fewer rows than [`COLUMN_SPLIT_ROWS`] on several threads: the
    /// columns are shared out (ragged last job, more threads than whole
    /// column groups, one row), and every element matches candle's.
    #[test]
    fn few_rows_split_by_columns_match_candle() {
        for &(m, k, n) in &[(1, 64, 65), (5, 33, 97), (19, 384, 1152), (63, 96, 200)] {
            for threads in [2, 3, 4, 7] {
                check(m, k, n, false, threads);
                check(m, k, n, true, threads);
            }
        }
    }

    /// Not a check: prints the time of BERT-sized products of a few rows
    /// (a lone sentence's tokens) on one thread, on two through `gemm`'s
    /// own threading and on two by columns. `cargo test --release -p
    /// corral-embed fast::matmul::tests::small_m -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn small_m_timings() {
        use std::time::Instant;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for &(k, n) in &[(384, 1152), (384, 384), (384, 1536), (1536, 384)] {
            for m in [8, 19, 32, 64, 128] {
                let x = random_vec(m * k, 1);
                let w = random_vec(n * k, 2);
                let mut out = vec![0.0; m * n];
                let mut times = [0.0f64; 3];
                pool.install(|| {
                    for it in 0..200 {
                        for (which, time) in times.iter_mut().enumerate() {
                            let t = Instant::now();
                            match which {
                                0 => matmul(&mut out, &x, &w, m, k, n, RhsLayout::NByK, false, 1),
                                // gemm's own threading, as before the column split.
                                1 => gemm_own_threads(&mut out, &x, &w, m, k, n),
                                _ => matmul(&mut out, &x, &w, m, k, n, RhsLayout::NByK, false, 2),
                            }
                            if it >= 20 {
                                *time += t.elapsed().as_secs_f64();
                            }
                        }
                    }
                });
                let us = |t: f64| t / 180.0 * 1e6;
                println!(
                    "m={m:>3} k={k:>4} n={n:>4}: 1 thread {:>7.1} µs, 2 via gemm {:>7.1} µs, 2 by columns {:>7.1} µs",
                    us(times[0]),
                    us(times[1]),
                    us(times[2])
                );
            }
        }
    }

    /// `gemm`'s own two-thread split of the whole product, whatever `m`.
    fn gemm_own_threads(out: &mut [f32], x: &[f32], w: &[f32], m: usize, k: usize, n: usize) {
        assert!(x.len() >= m * k && w.len() >= k * n && out.len() >= m * n);
        // SAFETY: the sizes are checked just above; `out` is exclusive.
        #[allow(unsafe_code)]
        unsafe {
            gemm_columns(
                SharedOut(out.as_mut_ptr()),
                x,
                w,
                m,
                k,
                n,
                0..n,
                RhsLayout::NByK,
                false,
                Parallelism::Rayon(2),
            )
        };
    }

    /// Not a check: prints GFLOP/s of the BERT-sized matmuls for both
    /// layouts of the weight. `cargo test --release -p corral-embed
    /// fast::matmul -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn layout_timings() {
        use std::time::Instant;
        for &(m, k, n) in &[
            (900, 384, 1152),
            (900, 384, 1536),
            (900, 1536, 384),
            (900, 384, 384),
        ] {
            let x = random_vec(m * k, 1);
            let w = random_vec(n * k, 2);
            let wt: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
            let mut out = vec![0.0; m * n];
            let (mut t_kn, mut t_nk) = (0.0, 0.0);
            for it in 0..16 {
                // Alternate which goes first, so neither always finds warm caches.
                for which in [it % 2, 1 - it % 2] {
                    let t = Instant::now();
                    if which == 0 {
                        matmul(&mut out, &x, &wt, m, k, n, RhsLayout::KByN, false, 1);
                        t_kn += t.elapsed().as_secs_f64();
                    } else {
                        matmul(&mut out, &x, &w, m, k, n, RhsLayout::NByK, false, 1);
                        t_nk += t.elapsed().as_secs_f64();
                    }
                }
            }
            let gf = 2.0 * (m * k * n) as f64 * 16.0 / 1e9;
            println!(
                "[{m},{k}]x[{k},{n}]: W transposed at load {:.1} GFLOP/s, PyTorch layout {:.1} GFLOP/s",
                gf / t_kn,
                gf / t_nk
            );
        }
    }

    /// Every kernel build this CPU has, forced in turn: the AVX-512 ones
    /// pack the weights (and give them back unchanged) and run
    /// their own kernel, the others `gemm`; each within 4e-5 of candle at
    /// odd sizes (partial panels, one row, odd `k`; sums of up to 384
    /// products of magnitude up to 1), accumulating or not;
    /// the packed kernel gives the same bits on 1, 2 or 3 threads, split
    /// by rows or by panels.
    #[test]
    fn every_build_matches_candle_and_threads_change_no_packed_bit() {
        use super::super::isa::{with_isa, Isa};
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        for isa in Isa::available() {
            with_isa(isa, || {
                for &(m, k, n) in &[
                    (1, 1, 1),
                    (1, 384, 1536),
                    (3, 5, 7),
                    (13, 33, 65),
                    (25, 384, 40),
                    (100, 97, 33),
                    (130, 64, 96),
                ] {
                    let x = random_vec(m * k, 7);
                    let w = random_vec(n * k, 8);
                    let init = random_vec(m * n, 9);
                    let mut lin = Linear::from_torch(w.clone(), vec![0.0; n], n, k);
                    lin.pack_for(isa);
                    assert_eq!(
                        lin.packed.is_some(),
                        isa.vnni_wide().is_some(),
                        "{}",
                        isa.name()
                    );
                    assert_eq!(&*lin.torch_weights(), &w[..], "weights back as loaded");
                    let product = candle_mat(&x, m, k)
                        .matmul(&candle_mat(&w, n, k).t().unwrap())
                        .unwrap();
                    let product: Vec<f32> = product.flatten_all().unwrap().to_vec1().unwrap();
                    for accumulate in [false, true] {
                        let want: Vec<f32> = if accumulate {
                            product.iter().zip(&init).map(|(p, i)| p + i).collect()
                        } else {
                            product.clone()
                        };
                        let mut one = init.clone();
                        lin.forward_no_bias(&x, &mut one, m, accumulate, 1);
                        let d = max_abs_diff(&one, &want);
                        assert!(d < 4e-5, "{} m={m} k={k} n={n}: {d}", isa.name());
                        for threads in [2, 3] {
                            let mut got = init.clone();
                            lin.forward_no_bias(&x, &mut got, m, accumulate, threads);
                            if lin.packed.is_some() {
                                assert_eq!(bits(&got), bits(&one), "m={m} n={n} threads={threads}");
                            } else {
                                let d = max_abs_diff(&got, &want);
                                assert!(
                                    d < 4e-5,
                                    "{} m={m} k={k} n={n} threads={threads}: {d}",
                                    isa.name()
                                );
                            }
                        }
                    }
                }
            });
            eprintln!("{}: matches candle", isa.name());
        }
    }

    #[test]
    fn concat_outputs_is_column_concatenation() {
        let (k, m) = (7, 5);
        let a = Linear::from_torch(random_vec(3 * k, 4), vec![1.0; 3], 3, k);
        let b = Linear::from_torch(random_vec(2 * k, 5), vec![2.0; 2], 2, k);
        let both = Linear::concat_outputs(&[a.clone(), b.clone()]);
        let x = random_vec(m * k, 6);
        let (mut ya, mut yb, mut y) = (vec![0.0; m * 3], vec![0.0; m * 2], vec![0.0; m * 5]);
        a.forward_no_bias(&x, &mut ya, m, false, 1);
        b.forward_no_bias(&x, &mut yb, m, false, 1);
        both.forward_no_bias(&x, &mut y, m, false, 1);
        for i in 0..m {
            assert_eq!(&y[i * 5..i * 5 + 3], &ya[i * 3..i * 3 + 3]);
            assert_eq!(&y[i * 5 + 3..i * 5 + 5], &yb[i * 2..i * 2 + 2]);
        }
        assert_eq!(both.bias, vec![1.0, 1.0, 1.0, 2.0, 2.0]);
    }

    /// Not a check: GFLOP/s of the AVX-512 panel kernel against `gemm`
    /// (one thread, BERT's shapes), alternating.
    #[cfg(target_arch = "x86_64")]
    #[test]
    #[ignore]
    #[allow(unsafe_code)]
    fn avx512_timings() {
        use std::time::Instant;
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        for &(m, k, n) in &BERT_SHAPES {
            let x = random_vec(m * k, 1);
            let w = random_vec(n * k, 2);
            let lin = Linear::from_torch(w.clone(), vec![0.0; n], n, k);
            let packed = avx512::pack(&w, n, k);
            let mut out = vec![0.0; m * n];
            let ops = 2.0 * (m * k * n) as f64;
            let iters = (3e9 / ops).ceil() as usize;
            let (mut g, mut p) = (Vec::new(), Vec::new());
            for _ in 0..7 {
                let t = Instant::now();
                for _ in 0..iters {
                    lin.forward_no_bias(&x, &mut out, m, false, 1);
                }
                g.push(ops * iters as f64 / t.elapsed().as_secs_f64() / 1e9);
                let t = Instant::now();
                for _ in 0..iters {
                    // SAFETY: the CPU has AVX-512 F (checked above); `out`
                    // is m·n values this loop alone writes.
                    unsafe {
                        avx512::product(
                            &x,
                            &packed,
                            k,
                            n,
                            0..m,
                            0..n.div_ceil(avx512::NR),
                            SharedOut(out.as_mut_ptr()),
                            false,
                        )
                    };
                }
                p.push(ops * iters as f64 / t.elapsed().as_secs_f64() / 1e9);
            }
            g.sort_by(f64::total_cmp);
            p.sort_by(f64::total_cmp);
            println!(
                "[{m},{k}]x[{k},{n}]: gemm {:.1} GFLOP/s, avx512 panels {:.1} ({:.2}x)",
                g[3],
                p[3],
                p[3] / g[3]
            );
        }
    }
}
