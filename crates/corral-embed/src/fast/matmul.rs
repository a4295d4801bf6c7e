//! Dense layers: weights transposed once at load into `[in, out]` row-major
//! and multiplied with the `gemm` crate (the same version candle-core uses),
//! choosing its parallelism per call.
//!
//! This module owns [`Linear`] and [`matmul`], the only `unsafe` call in the
//! fast encoder (the `gemm` crate exposes a raw-pointer API); every bound it
//! relies on is checked with an `assert!` right before the call.

use gemm::Parallelism;

/// A dense layer `y = x · Wᵀ + b`, stored as `wt = Wᵀ` (`[k, n]` row-major)
/// so that the matmul streams the weight along contiguous rows.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `Wᵀ`, `[k, n]` row-major.
    pub wt: Vec<f32>,
    /// Bias, `[n]`.
    pub bias: Vec<f32>,
    /// Input features.
    pub k: usize,
    /// Output features.
    pub n: usize,
}

impl Linear {
    /// Builds the layer from a PyTorch-layout weight `w` (`[n, k]` row-major,
    /// i.e. `out_features × in_features`) and its bias, transposing once.
    pub fn from_torch(w: &[f32], bias: Vec<f32>, n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight size");
        assert_eq!(bias.len(), n, "bias size");
        let mut wt = vec![0.0f32; k * n];
        for (o, row) in w.chunks_exact(k).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                wt[i * n + o] = v;
            }
        }
        Self { wt, bias, k, n }
    }

    /// Concatenates layers sharing the input (`[k, n1 + n2 + ..]`), so that
    /// Q, K and V are computed by one matmul.
    pub fn concat_outputs(parts: &[Linear]) -> Self {
        let k = parts[0].k;
        assert!(parts.iter().all(|p| p.k == k), "inputs differ");
        let n: usize = parts.iter().map(|p| p.n).sum();
        let mut wt = Vec::with_capacity(k * n);
        for i in 0..k {
            for p in parts {
                wt.extend_from_slice(&p.wt[i * p.n..(i + 1) * p.n]);
            }
        }
        let bias = parts.iter().flat_map(|p| p.bias.iter().copied()).collect();
        Self { wt, bias, k, n }
    }

    /// `out[m, n] = x[m, k] · Wᵀ` plus what `out` already holds when
    /// `accumulate` (used to fuse the residual add). The bias is *not* added:
    /// callers fuse it into the following pass.
    pub fn forward_no_bias(
        &self,
        x: &[f32],
        out: &mut [f32],
        m: usize,
        accumulate: bool,
        threads: usize,
    ) {
        matmul(out, x, &self.wt, m, self.k, self.n, accumulate, threads);
    }
}

/// `out[m, n] (+)= a[m, k] · b[k, n]`, all row-major and contiguous.
/// With `accumulate` the product is added to `out`, otherwise it overwrites
/// it. `threads <= 1` runs on the calling thread only.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
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
    let par = if threads <= 1 {
        Parallelism::None
    } else {
        Parallelism::Rayon(threads)
    };
    // The crate denies unsafe code; this one call is the exception (gemm has
    // no safe API), measured to matter: see the module docs.
    // SAFETY: `a` holds at least m·k elements read at a[i·k + p] (row stride
    // k, column stride 1) for i < m, p < k; `b` holds at least k·n elements
    // read at b[p·n + j]; `out` holds at least m·n elements written at
    // out[i·n + j]. `out` is an exclusive borrow, so it aliases neither input.
    // All strides fit in isize because the slices exist. With
    // `read_dst = false` gemm ignores alpha and never reads `out`.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
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
    use super::super::test_util::{candle_mat, max_abs_diff, random_vec};
    use super::*;
    use candle_core::{Device, Tensor};

    fn check(m: usize, k: usize, n: usize, accumulate: bool, threads: usize) {
        let x = random_vec(m * k, 1);
        let w = random_vec(n * k, 2);
        let init = random_vec(m * n, 3);
        let lin = Linear::from_torch(&w, vec![0.0; n], n, k);
        let mut out = init.clone();
        lin.forward_no_bias(&x, &mut out, m, accumulate, threads);

        let xt = candle_mat(&x, m, k);
        let wt = candle_mat(&w, n, k);
        let mut want = xt.matmul(&wt.t().unwrap()).unwrap();
        if accumulate {
            want = (want + Tensor::from_slice(&init, (m, n), &Device::Cpu).unwrap()).unwrap();
        }
        let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
        let d = max_abs_diff(&out, &want);
        assert!(d < 1e-5, "m={m} k={k} n={n}: max diff {d}");
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

    /// Not a check: prints GFLOP/s of the BERT-sized matmuls with the weight
    /// pre-transposed (`[k, n]`, what [`Linear`] stores) and as stored by
    /// PyTorch (`[n, k]`, read transposed). `cargo test --release -p
    /// corral-embed fast::matmul -- --ignored --nocapture`
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
            let lin = Linear::from_torch(&w, vec![0.0; n], n, k);
            let mut out = vec![0.0; m * n];
            let (mut t_pre, mut t_torch) = (0.0, 0.0);
            for _ in 0..15 {
                let t = Instant::now();
                lin.forward_no_bias(&x, &mut out, m, false, 1);
                t_pre += t.elapsed().as_secs_f64();
                let t = Instant::now();
                // SAFETY: as in `matmul`, with `w` read as [k, n] through
                // column stride k, row stride 1 (w has n·k elements).
                #[allow(unsafe_code)]
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        out.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        x.as_ptr(),
                        1,
                        k as isize,
                        w.as_ptr(),
                        k as isize,
                        1,
                        1.0f32,
                        1.0f32,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
                t_torch += t.elapsed().as_secs_f64();
            }
            let gf = 2.0 * (m * k * n) as f64 * 15.0 / 1e9;
            println!(
                "[{m},{k}]x[{k},{n}]: pre-transposed {:.1} GFLOP/s, torch layout {:.1} GFLOP/s",
                gf / t_pre,
                gf / t_torch
            );
        }
    }

    #[test]
    fn concat_outputs_is_column_concatenation() {
        let (k, m) = (7, 5);
        let a = Linear::from_torch(&random_vec(3 * k, 4), vec![1.0; 3], 3, k);
        let b = Linear::from_torch(&random_vec(2 * k, 5), vec![2.0; 2], 2, k);
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
}
