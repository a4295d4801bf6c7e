//! Int8 dense layers: weights quantised per output channel at load
//! (symmetric, `[-127, 127]`), activations quantised per row (token) on the
//! fly (asymmetric over the row's `[min, max]`, in up to 4,096 levels —
//! [`activation_levels`] — stored around the row's offset), products
//! accumulated exactly in `i32` by an AVX2 kernel of our own, and the
//! scales, the offset's term and — when asked — the residual add applied in
//! the kernel's output step.
//!
//! Why 12-bit activations with 8-bit weights: the kernel multiplies `i16`
//! lanes (below), so an activation with 4,096 levels costs exactly the
//! instructions of one with 256, and the `i32` sums stay exact for any
//! BERT width. Measured on the 24 golden texts (minimum cosine to fp32),
//! the fused QKV projection went from 0.99727 with 256 levels to 0.99949
//! with 4,096, which is what lets every dense layer run in int8 (all four:
//! 0.99202 → 0.99620). What is left is mostly the weights' rounding.
//!
//! Asymmetric rows matter after GELU (the feed-forward down projection's
//! input lies in `[-0.17, max]`, so a symmetric scale would waste half its
//! levels) and cost nothing elsewhere: for `x ≈ s_a·q + c_row`,
//! `Σ_k x_k·ŵ_jk = s_a·s_w[j]·Σ_k q_k·q_w[j,k] + c_row·Σ_k ŵ_jk`, and the
//! last sum is a per-column constant computed at load.
//!
//! Inputs that come out of a layer norm carry a few outlier channels (large
//! `γ`), which would take a per-token scale for themselves and leave the
//! other channels a handful of levels. For those layers the input channel
//! `k` is divided by a smoothing factor `f_k` before quantising and the
//! weight's column multiplied by it (`x·Wᵀ` is unchanged), with
//! `f_k = √(a_k / max_j |w_jk|)` and `a_k = 4|γ_k| + |β_k|` the norm's own
//! bound on the channel's magnitude — SmoothQuant's balance, with the
//! activation statistics read from the norm's parameters instead of from
//! calibration data ([`QLinear::from_torch_smoothed`]).
//!
//! # The kernel
//! Both operands are held as `i16` (a weight is an 8-bit value
//! sign-extended; an activation up to 12 bits), so that
//! `vpmaddwd` multiplies 16 pairs and adds adjacent products into 8 `i32`
//! lanes per instruction — twice the multiply-adds of an 8-lane fp32 FMA,
//! and without `vpmaddubsw`'s `i16` saturation (which forces 7-bit weights
//! or activations). Weights are packed once at load into panels of
//! [`NR`] = 16 output columns, each step of a panel holding two `k` values
//! of every column interleaved as `vpmaddwd` wants them; the micro-kernel
//! keeps a [`MR`] = 6 rows × 16 columns tile of `i32` accumulators in 12
//! registers and broadcasts one (`x[k]`, `x[k+1]`) pair per row per step.
//!
//! With `|q_a| ≤ levels/2`, `|q_w| ≤ 127` the `i32` sums cannot overflow
//! while `k·(levels/2)·127 < 2³¹`, which [`activation_levels`] keeps true
//! (4,096 levels up to `k` = 8,256, fewer beyond), so the integer part is
//! exact: the AVX2 kernel and the portable one (`gemm_i16_portable`)
//! agree bit for bit before the output step.
//!
//! # Error bound
//! With `x̂ = s_a·q_a + c` (`|x − x̂| ≤ s_a/2`, `s_a = (max − min)/(levels
//! − 1)` over the row) and
//! `ŵ = s_w·q_w` (`|w − ŵ| ≤ s_w/2`, `s_w = max|w_col|/127`), each output
//! element satisfies
//! `|y − ŷ| ≤ Σ_k (s_a/2)·|ŵ_k| + (s_w/2)·|x_k|` ([`error_bound`]), plus
//! the fp32 rounding of the output step (relative ~1e-7). The tests check
//! every element of random products, odd sizes included, against that
//! bound computed in `f64`.
//!
//! This module owns [`QLinear`], [`QuantizedRows`] and the kernels; whether
//! the CPU can run them is [`int8_supported`].

use rayon::prelude::*;

/// Output columns per packed weight panel (two AVX2 vectors of `i32`).
pub const NR: usize = 16;
/// Rows per micro-kernel tile.
pub const MR: usize = 6;
/// Rows per cache block: the quantised activations of one block stay in L2
/// while every weight panel passes over them.
const MC: usize = 96;
/// Largest quantised magnitude (symmetric 8-bit).
const QMAX: f32 = 127.0;

/// Whether this CPU runs the int8 kernel (x86-64 with AVX2). Without it
/// callers keep the fp32 layers.
pub fn int8_supported() -> bool {
    super::Isa::avx2().is_some()
}

/// A dense layer `y = x · Wᵀ + b` with `W` quantised to 8 bits per output
/// channel and packed for the int8 kernel.
#[derive(Debug, Clone)]
pub struct QLinear {
    /// Packed weights: `panels × (kp/2) × NR × 2` values in `[-127, 127]`.
    packed: Vec<i16>,
    /// Per-output-channel scale, padded with zeros to whole panels.
    w_scale: Vec<f32>,
    /// `Σ_k ŵ[j, k]` per output channel (padded likewise): the factor of
    /// a row's offset in the output.
    w_sum: Vec<f32>,
    /// Bias, `[n]` (applied by the caller's fused pass, as for `Linear`).
    pub bias: Vec<f32>,
    /// Input features.
    pub k: usize,
    /// `k` rounded up to even (the kernel consumes `k` in pairs).
    kp: usize,
    /// Output features.
    pub n: usize,
    /// `1 / f_k` per input channel when the input is smoothed.
    inv_smooth: Option<Vec<f32>>,
}

impl QLinear {
    /// As [`QLinear::from_torch`], with input channel `k` divided by
    /// `smooth[k]` before quantising and `W`'s column `k` multiplied by it.
    pub fn from_torch_smoothed(
        w: &[f32],
        bias: Vec<f32>,
        n: usize,
        k: usize,
        smooth: &[f32],
    ) -> Self {
        assert_eq!(smooth.len(), k, "smoothing factors");
        assert!(
            smooth.iter().all(|f| f.is_finite() && *f > 0.0),
            "factors > 0"
        );
        let scaled: Vec<f32> = w
            .chunks_exact(k.max(1))
            .flat_map(|row| row.iter().zip(smooth).map(|(v, f)| v * f))
            .collect();
        let mut layer = Self::from_torch(&scaled, bias, n, k);
        layer.inv_smooth = Some(smooth.iter().map(|f| 1.0 / f).collect());
        layer
    }

    /// SmoothQuant-style factors for an input that leaves a layer norm with
    /// parameters `gamma`, `beta` (see the module docs) and the weight `w`
    /// (`[n, k]`).
    pub fn smoothing_for_norm(
        w: &[f32],
        n: usize,
        k: usize,
        gamma: &[f32],
        beta: &[f32],
    ) -> Vec<f32> {
        assert_eq!(w.len(), n * k, "weight size");
        (0..k)
            .map(|p| {
                let a = 4.0 * gamma[p].abs() + beta[p].abs();
                let wmax = (0..n).fold(0.0f32, |m, j| m.max(w[j * k + p].abs()));
                if a > 0.0 && wmax > 0.0 {
                    (a / wmax).sqrt()
                } else {
                    1.0
                }
            })
            .collect()
    }

    /// Quantises a PyTorch-layout weight (`[n, k]` row-major) per output
    /// channel and packs it.
    pub fn from_torch(w: &[f32], bias: Vec<f32>, n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight size");
        assert_eq!(bias.len(), n, "bias size");
        let kp = k + (k & 1);
        let panels = n.div_ceil(NR);
        let mut w_scale = vec![0.0f32; panels * NR];
        let mut w_sum = vec![0.0f32; panels * NR];
        let mut q = vec![0i16; panels * NR * kp];
        for j in 0..n {
            let row = &w[j * k..(j + 1) * k];
            let amax = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let scale = if amax > 0.0 { amax / QMAX } else { 1.0 };
            w_scale[j] = scale;
            let mut sum = 0i64;
            for (p, &v) in row.iter().enumerate() {
                q[j * kp + p] = quantize_one(v, 1.0 / scale);
                sum += q[j * kp + p] as i64;
            }
            w_sum[j] = sum as f32 * scale;
        }
        // Panel p, step t: [col 0 (k=2t, 2t+1), col 1 (…), …, col 15 (…)].
        let mut packed = vec![0i16; panels * NR * kp];
        for p in 0..panels {
            for t in 0..kp / 2 {
                for c in 0..NR {
                    let j = p * NR + c;
                    let dst = ((p * (kp / 2) + t) * NR + c) * 2;
                    packed[dst] = q[j * kp + 2 * t];
                    packed[dst + 1] = q[j * kp + 2 * t + 1];
                }
            }
        }
        Self {
            packed,
            w_scale,
            w_sum,
            bias,
            k,
            kp,
            n,
            inv_smooth: None,
        }
    }

    /// The dequantised weight `ŵ[j, p]` the kernel multiplies by.
    pub fn dequantized(&self, j: usize, p: usize) -> f32 {
        let (panel, c) = (j / NR, j % NR);
        let idx = ((panel * (self.kp / 2) + p / 2) * NR + c) * 2 + (p & 1);
        self.packed[idx] as f32 * self.w_scale[j]
    }

    /// `out[m, n] = x̂[m, k] · Ŵᵀ` (plus what `out` holds when
    /// `accumulate`), quantising `x` into `rows` first. As
    /// `Linear::forward_no_bias`: the bias is left to the caller's fused
    /// pass. `threads > 1` splits rows over the current rayon pool. Uses
    /// the AVX2 kernel when the CPU has it, the portable one otherwise.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_no_bias(
        &self,
        x: &[f32],
        out: &mut [f32],
        m: usize,
        accumulate: bool,
        threads: usize,
        rows: &mut QuantizedRows,
    ) {
        rows.quantize_scaled(x, m, self.k, self.inv_smooth.as_deref());
        self.forward_quantized(rows, out, accumulate, threads, Kernel::best());
    }

    /// The product of already quantised `rows` with this layer, by `kernel`.
    pub(crate) fn forward_quantized(
        &self,
        rows: &QuantizedRows,
        out: &mut [f32],
        accumulate: bool,
        threads: usize,
        kernel: Kernel,
    ) {
        let m = rows.rows;
        assert_eq!(rows.kp, self.kp, "input width");
        assert!(out.len() >= m * self.n, "dst too short");
        if m == 0 || self.n == 0 {
            return;
        }
        let out = &mut out[..m * self.n];
        let chunk_rows = if threads <= 1 {
            m
        } else {
            // A few chunks per thread balance uneven progress; whole MR
            // tiles keep every chunk's kernel calls full.
            m.div_ceil(threads * 2).div_ceil(MR) * MR
        };
        if threads <= 1 || chunk_rows >= m {
            self.rows_block(rows, 0, out, accumulate, kernel);
        } else {
            out.par_chunks_mut(chunk_rows * self.n)
                .enumerate()
                .for_each(|(c, dst)| {
                    self.rows_block(rows, c * chunk_rows, dst, accumulate, kernel)
                });
        }
    }

    /// Rows `first..first + dst.len()/n` of the product into `dst`.
    fn rows_block(
        &self,
        rows: &QuantizedRows,
        first: usize,
        dst: &mut [f32],
        accumulate: bool,
        kernel: Kernel,
    ) {
        let n = self.n;
        let count = dst.len() / n;
        let pairs = self.kp / 2;
        let mut tile = [[0i32; NR]; MR];
        for mc in (0..count).step_by(MC) {
            let mc_end = (mc + MC).min(count);
            for panel in 0..n.div_ceil(NR) {
                let w = &self.packed[panel * pairs * NR * 2..(panel + 1) * pairs * NR * 2];
                let cols = (n - panel * NR).min(NR);
                let scales = &self.w_scale[panel * NR..panel * NR + NR];
                let sums = &self.w_sum[panel * NR..panel * NR + NR];
                for r0 in (mc..mc_end).step_by(MR) {
                    let mr = (mc_end - r0).min(MR);
                    let a = &rows.q[(first + r0) * self.kp..(first + r0 + mr) * self.kp];
                    kernel.tile(a, self.kp, mr, w, pairs, &mut tile);
                    for (r, acc) in tile.iter().enumerate().take(mr) {
                        let i = first + r0 + r;
                        let (sa, c) = (rows.scales[i], rows.offsets[i]);
                        let o = &mut dst[(r0 + r) * n + panel * NR..][..cols];
                        match (
                            <&mut [f32; NR]>::try_from(&mut *o),
                            <&[f32; NR]>::try_from(scales),
                            <&[f32; NR]>::try_from(sums),
                        ) {
                            // A whole panel: fixed-size, inlined, no dispatch.
                            (Ok(o), Ok(sw), Ok(ws)) => {
                                output_step_full(acc, sa, c, sw, ws, o, accumulate)
                            }
                            _ => output_step(acc, sa, c, scales, sums, o, accumulate),
                        }
                    }
                }
            }
        }
    }
}

multiversion! {
    /// `o[j] (+)= acc[j]·sa·sw[j] + off·wsum[j]` for the tile row's valid
    /// columns.
    fn output_step / output_step_on(
        acc: &[i32; NR],
        sa: f32,
        off: f32,
        sw: &[f32],
        wsum: &[f32],
        o: &mut [f32],
        accumulate: bool,
    ) {
        let cols = o.len();
        if accumulate {
            for j in 0..cols {
                o[j] += acc[j] as f32 * (sa * sw[j]) + off * wsum[j];
            }
        } else {
            for j in 0..cols {
                o[j] = acc[j] as f32 * (sa * sw[j]) + off * wsum[j];
            }
        }
    }
}

/// [`output_step`] for a whole panel of `NR` columns: the same arithmetic
/// (no fused multiply-add, so the result is the same bit for bit), with
/// sizes the compiler knows, inlined into the caller's loop rather than
/// dispatched per tile row.
#[inline(always)]
fn output_step_full(
    acc: &[i32; NR],
    sa: f32,
    off: f32,
    sw: &[f32; NR],
    wsum: &[f32; NR],
    o: &mut [f32; NR],
    accumulate: bool,
) {
    if accumulate {
        for j in 0..NR {
            o[j] += acc[j] as f32 * (sa * sw[j]) + off * wsum[j];
        }
    } else {
        for j in 0..NR {
            o[j] = acc[j] as f32 * (sa * sw[j]) + off * wsum[j];
        }
    }
}

/// Quantises one value with the reciprocal of its scale.
#[inline(always)]
fn quantize_one(v: f32, inv_scale: f32) -> i16 {
    (v * inv_scale).round().clamp(-QMAX, QMAX) as i16
}

/// Activations quantised per row: `x[i, p] ≈ scales[i]·q[i, p] +
/// offsets[i]`, `q` within ± half of [`activation_levels`]; reused across layers and batches.
#[derive(Debug, Default, Clone)]
pub struct QuantizedRows {
    q: Vec<i16>,
    scales: Vec<f32>,
    offsets: Vec<f32>,
    /// One smoothed input row.
    row: Vec<f32>,
    rows: usize,
    kp: usize,
}

impl QuantizedRows {
    /// Quantises `x` (`[m, k]` row-major), each row over its own
    /// `[min, max]` in 256 levels.
    pub fn quantize(&mut self, x: &[f32], m: usize, k: usize) {
        self.quantize_scaled(x, m, k, None);
    }

    /// As [`QuantizedRows::quantize`], multiplying input channel `p` by
    /// `col_scale[p]` first when given.
    pub fn quantize_scaled(&mut self, x: &[f32], m: usize, k: usize, col_scale: Option<&[f32]>) {
        assert!(x.len() >= m * k, "input too short");
        let kp = k + (k & 1);
        self.rows = m;
        self.kp = kp;
        if self.q.len() < m * kp {
            self.q.resize(m * kp, 0);
        }
        self.scales.clear();
        self.scales.resize(m, 1.0);
        self.offsets.clear();
        self.offsets.resize(m, 0.0);
        let levels = activation_levels(k);
        for i in 0..m {
            let row = &x[i * k..(i + 1) * k];
            let dst = &mut self.q[i * kp..(i + 1) * kp];
            (self.scales[i], self.offsets[i]) = match col_scale {
                None => quantize_row(row, dst, levels),
                Some(f) => {
                    self.row.clear();
                    self.row.extend(row.iter().zip(f).map(|(v, f)| v * f));
                    quantize_row(&self.row, dst, levels)
                }
            };
        }
    }

    /// The dequantised input `x̂[i, p]`.
    pub fn dequantized(&self, i: usize, p: usize) -> f32 {
        self.q[i * self.kp + p] as f32 * self.scales[i] + self.offsets[i]
    }

    /// The scale of row `i`.
    pub fn scale(&self, i: usize) -> f32 {
        self.scales[i]
    }
}

/// The most activation levels per row: 4,096 (12 bits).
pub const MAX_ACTIVATION_LEVELS: u32 = 4096;

/// How many levels a row of `k` activations is quantised to: the most, up
/// to [`MAX_ACTIVATION_LEVELS`], for which the kernel's `i32` sums stay
/// exact (`k·(levels/2)·127 < 2³¹`; 4,096 up to `k` = 8,256, never under
/// 256 for any `k` below 132,000).
pub fn activation_levels(k: usize) -> u32 {
    let kp = (k + (k & 1)).max(2) as u64;
    let mut half = u64::from(MAX_ACTIVATION_LEVELS / 2);
    while half > 128 && kp * half * 127 >= 1 << 31 {
        half /= 2;
    }
    (2 * half) as u32
}

/// Quantises `row` into `dst` (one longer when `row`'s length is odd; the
/// extra value is 0, i.e. it contributes nothing) over `levels` levels and
/// returns the scale and offset: `row[p] ≈ scale·dst[p] + offset`.
fn quantize_row(row: &[f32], dst: &mut [i16], levels: u32) -> (f32, f32) {
    let (lo, hi) = min_max(row);
    let top = (levels - 1) as f32;
    let half = (levels / 2) as f32;
    let scale = if hi > lo { (hi - lo) / top } else { 1.0 };
    // Level 0 of 0..levels is `lo`; stored shifted by -levels/2.
    let offset = lo + half * scale;
    quantize_with(row, lo, 1.0 / scale, top, half as i16, dst);
    (scale, offset)
}

/// The smallest and largest values of `row` (0 and 0 when empty; a NaN is
/// skipped).
fn min_max(row: &[f32]) -> (f32, f32) {
    if row.is_empty() {
        return (0.0, 0.0);
    }
    #[cfg(target_arch = "x86_64")]
    if crate::fast::Isa::current().is_avx2() {
        // SAFETY: an AVX2 `Isa` exists only once the CPU was found to
        // support AVX2 and FMA, the only precondition of the call.
        #[allow(unsafe_code)]
        return unsafe { avx2_min_max::min_max(row) };
    }
    min_max_portable(row)
}

/// [`min_max`] in plain Rust (any CPU).
fn min_max_portable(row: &[f32]) -> (f32, f32) {
    row.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| {
        (if v < l { v } else { l }, if v > h { v } else { h })
    })
}

/// [`min_max`] with AVX2 intrinsics: LLVM turns the plain loop into
/// shuffles and blends (a profile found it at 5% of an int8 run), where
/// `vminps`/`vmaxps` need one instruction each per 8 values.
#[cfg(target_arch = "x86_64")]
mod avx2_min_max {
    use std::arch::x86_64::{
        _mm256_loadu_ps, _mm256_max_ps, _mm256_min_ps, _mm256_set1_ps, _mm256_storeu_ps,
    };

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn min_max(row: &[f32]) -> (f32, f32) {
        let mut lo = _mm256_set1_ps(f32::MAX);
        let mut hi = _mm256_set1_ps(f32::MIN);
        let mut chunks = row.chunks_exact(8);
        for c in &mut chunks {
            // SAFETY: `c` is 8 readable, contiguous f32s; `loadu` has no
            // alignment requirement.
            #[allow(unsafe_code)]
            let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            // `min(v, lo)` keeps `lo` where `v` is NaN.
            lo = _mm256_min_ps(v, lo);
            hi = _mm256_max_ps(v, hi);
        }
        let (mut l, mut h) = ([0f32; 8], [0f32; 8]);
        // SAFETY: `l` and `h` are 8 writable f32s each.
        #[allow(unsafe_code)]
        unsafe {
            _mm256_storeu_ps(l.as_mut_ptr(), lo);
            _mm256_storeu_ps(h.as_mut_ptr(), hi);
        }
        let (l, h) = super::min_max_portable_from(&l, &h);
        chunks.remainder().iter().fold((l, h), |(l, h), &v| {
            (if v < l { v } else { l }, if v > h { v } else { h })
        })
    }
}

/// The smallest of `l` and the largest of `h`.
#[cfg(target_arch = "x86_64")]
fn min_max_portable_from(l: &[f32; 8], h: &[f32; 8]) -> (f32, f32) {
    let lo = min_max_portable(l).0;
    let hi = min_max_portable(h).1;
    (lo, hi)
}

multiversion! {
    /// `dst[p] = round((row[p] − lo)·inv) − half`, the level within
    /// `[0, top]`; `dst`'s tail past `row` is zeroed.
    fn quantize_with / quantize_with_on(row: &[f32], lo: f32, inv: f32, top: f32, half: i16, dst: &mut [i16]) {
        // Values are ≥ 0 before the shift, so rounding half up is
        // trunc(v + 0.5), which vectorises.
        let (head, tail) = dst.split_at_mut(row.len());
        for (d, &v) in head.iter_mut().zip(row) {
            let s = (v - lo) * inv;
            // Clamped by comparisons, so a NaN becomes 0 and `t` is always
            // in [0.5, top + 0.5].
            let s = if s > 0.0 { s } else { 0.0 };
            let t = if s < top { s } else { top } + 0.5;
            // SAFETY: `t` is finite and within i32's range (see above), the
            // only precondition; it truncates exactly as `t as i32` would,
            // without the saturation checks that cast adds per lane.
            #[allow(unsafe_code)]
            let level = unsafe { t.to_int_unchecked::<i32>() };
            *d = level as i16 - half;
        }
        tail.fill(0);
    }
}

/// `Σ_k (s_a/2)·|ŵ[j,k]| + (s_w[j]/2)·|x[i,k]|`: the largest possible
/// `|y[i,j] − ŷ[i,j]|` from quantisation for row `i` of `x`, column `j`,
/// before fp32 rounding (see the module docs).
pub fn error_bound(layer: &QLinear, rows: &QuantizedRows, x: &[f32], i: usize, j: usize) -> f64 {
    let k = layer.k;
    let sa = rows.scales[i] as f64;
    let sw = layer.w_scale[j] as f64;
    (0..k)
        .map(|p| {
            sa / 2.0 * (layer.dequantized(j, p) as f64).abs()
                + sw / 2.0 * (x[i * k + p] as f64).abs()
        })
        .sum()
}

/// Which implementation of the integer tile product runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// Plain Rust, any CPU.
    Portable,
    /// AVX2 `vpmaddwd` (only constructed when the CPU has AVX2).
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    /// The AVX2 kernel when the CPU has it, else the portable one.
    pub(crate) fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        if int8_supported() {
            return Self::Avx2;
        }
        Self::Portable
    }

    /// `tile[r][c] = Σ_t a[r][2t..2t+2] · w[t][c][..]` for `r < mr`.
    fn tile(
        self,
        a: &[i16],
        lda: usize,
        mr: usize,
        w: &[i16],
        pairs: usize,
        tile: &mut [[i32; NR]; MR],
    ) {
        assert!((1..=MR).contains(&mr), "tile rows");
        assert!(
            lda >= 2 * pairs && a.len() >= (mr - 1) * lda + 2 * pairs,
            "lhs"
        );
        assert!(w.len() >= pairs * NR * 2, "panel");
        match self {
            Self::Portable => gemm_i16_portable(a, lda, mr, w, pairs, tile),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => {
                assert!(int8_supported(), "the AVX2 kernel on a CPU without AVX2");
                // SAFETY: the CPU has AVX2 (asserted above); the bounds the kernel reads within were asserted
                // just above (a: mr rows of lda, each read up to 2·pairs;
                // w: pairs steps of NR·2 values).
                #[allow(unsafe_code)]
                unsafe {
                    match mr {
                        1 => avx2::tile::<1>(a.as_ptr(), lda, w.as_ptr(), pairs, tile),
                        2 => avx2::tile::<2>(a.as_ptr(), lda, w.as_ptr(), pairs, tile),
                        3 => avx2::tile::<3>(a.as_ptr(), lda, w.as_ptr(), pairs, tile),
                        4 => avx2::tile::<4>(a.as_ptr(), lda, w.as_ptr(), pairs, tile),
                        5 => avx2::tile::<5>(a.as_ptr(), lda, w.as_ptr(), pairs, tile),
                        _ => avx2::tile::<6>(a.as_ptr(), lda, w.as_ptr(), pairs, tile),
                    }
                }
            }
        }
    }
}

/// The integer tile product in plain Rust: the reference the AVX2 kernel
/// must equal exactly, and the path on CPUs without AVX2.
pub(crate) fn gemm_i16_portable(
    a: &[i16],
    lda: usize,
    mr: usize,
    w: &[i16],
    pairs: usize,
    tile: &mut [[i32; NR]; MR],
) {
    for (r, acc) in tile.iter_mut().enumerate().take(mr) {
        *acc = [0; NR];
        let row = &a[r * lda..r * lda + 2 * pairs];
        for t in 0..pairs {
            let (a0, a1) = (row[2 * t] as i32, row[2 * t + 1] as i32);
            let step = &w[t * NR * 2..(t + 1) * NR * 2];
            for c in 0..NR {
                acc[c] += a0 * step[2 * c] as i32 + a1 * step[2 * c + 1] as i32;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
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
            let w0 = _mm256_loadu_si256(w.add(t * 32) as *const __m256i);
            let w1 = _mm256_loadu_si256(w.add(t * 32 + 16) as *const __m256i);
            for r in 0..R {
                let pair = (a.add(r * lda + 2 * t) as *const i32).read_unaligned();
                let av = _mm256_set1_epi32(pair);
                lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(av, w0));
                hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(av, w1));
            }
        }
        for r in 0..R {
            _mm256_storeu_si256(out[r].as_mut_ptr() as *mut __m256i, lo[r]);
            _mm256_storeu_si256(out[r].as_mut_ptr().add(8) as *mut __m256i, hi[r]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::random_vec;
    use super::*;

    /// `x · Wᵀ` in f64.
    fn reference(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut y = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                y[i * n + j] = (0..k)
                    .map(|p| x[i * k + p] as f64 * w[j * k + p] as f64)
                    .sum();
            }
        }
        y
    }

    /// Every element of the int8 product, by `kernel`, within its stated
    /// bound of the exact product; returns the largest error ÷ bound.
    fn check(
        m: usize,
        k: usize,
        n: usize,
        accumulate: bool,
        threads: usize,
        kernel: Kernel,
    ) -> f64 {
        // Rows of very different magnitudes, and an outlier column, as
        // transformer activations have.
        let mut x = random_vec(m * k, 31 + k as u64);
        for i in 0..m {
            let s = 1.0 + (i % 5) as f32 * 3.0;
            x[i * k..(i + 1) * k].iter_mut().for_each(|v| *v *= s);
            x[i * k] *= 20.0;
        }
        let w: Vec<f32> = random_vec(n * k, 32 + n as u64)
            .iter()
            .map(|v| v * 0.1)
            .collect();
        let init = random_vec(m * n, 33);
        let layer = QLinear::from_torch(&w, vec![0.0; n], n, k);
        let mut rows = QuantizedRows::default();
        rows.quantize(&x, m, k);
        let mut out = init.clone();
        layer.forward_quantized(&rows, &mut out, accumulate, threads, kernel);
        let want = reference(&x, &w, m, k, n);
        let mut worst = 0.0f64;
        for i in 0..m {
            for j in 0..n {
                let base = if accumulate {
                    init[i * n + j] as f64
                } else {
                    0.0
                };
                let got = out[i * n + j] as f64 - base;
                let err = (got - want[i * n + j]).abs();
                // fp32 rounding of the output step (whose two terms may
                // cancel, so relative to Σ|x·ŵ|) and of the residual.
                let mag: f64 = (0..k)
                    .map(|p| (x[i * k + p] as f64 * layer.dequantized(j, p) as f64).abs())
                    .sum();
                let slack = 1e-6 * (mag + base.abs() + 1.0);
                let bound = error_bound(&layer, &rows, &x, i, j) + slack;
                assert!(
                    err <= bound,
                    "{kernel:?} m={m} k={k} n={n} ({i},{j}): error {err} > bound {bound}"
                );
                worst = worst.max(err / bound);
            }
        }
        worst
    }

    const SIZES: &[(usize, usize, usize)] = &[
        (1, 1, 1),
        (1, 2, 16),
        (3, 5, 7),
        (7, 33, 17),
        (13, 64, 40),
        (37, 384, 96),
        (100, 97, 33),
        (200, 384, 48),
    ];

    #[test]
    fn portable_int8_product_is_within_its_error_bound() {
        for &(m, k, n) in SIZES {
            for accumulate in [false, true] {
                check(m, k, n, accumulate, 1, Kernel::Portable);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_int8_product_is_within_its_error_bound_and_equals_portable() {
        assert!(int8_supported(), "this test needs an AVX2 CPU");
        for &(m, k, n) in SIZES {
            for (accumulate, threads) in [(false, 1), (true, 1), (true, 2)] {
                let worst = check(m, k, n, accumulate, threads, Kernel::Avx2);
                assert!(worst <= 1.0);
            }
            // The integer part is exact, so both kernels agree bit for bit.
            let x = random_vec(m * k, 5);
            let w = random_vec(n * k, 6);
            let layer = QLinear::from_torch(&w, vec![0.0; n], n, k);
            let mut rows = QuantizedRows::default();
            rows.quantize(&x, m, k);
            let mut a = vec![0.0; m * n];
            let mut b = vec![1.0; m * n];
            layer.forward_quantized(&rows, &mut a, false, 1, Kernel::Portable);
            layer.forward_quantized(&rows, &mut b, false, 1, Kernel::Avx2);
            assert_eq!(a, b, "m={m} k={k} n={n}");
        }
    }

    #[test]
    fn smoothing_leaves_the_product_unchanged_within_its_bound() {
        let (m, k, n) = (9, 37, 21);
        let mut x = random_vec(m * k, 41);
        // Two outlier channels, as after a layer norm with large γ there.
        for i in 0..m {
            x[i * k + 3] *= 40.0;
            x[i * k + 30] *= 25.0;
        }
        let w = random_vec(n * k, 42);
        let mut gamma = vec![1.0f32; k];
        (gamma[3], gamma[30]) = (40.0, 25.0);
        let f = QLinear::smoothing_for_norm(&w, n, k, &gamma, &vec![0.0; k]);
        let plain = QLinear::from_torch(&w, vec![0.0; n], n, k);
        let smooth = QLinear::from_torch_smoothed(&w, vec![0.0; n], n, k, &f);
        let want = reference(&x, &w, m, k, n);
        let err = |layer: &QLinear| {
            let mut out = vec![0.0; m * n];
            let mut rows = QuantizedRows::default();
            layer.forward_no_bias(&x, &mut out, m, false, 1, &mut rows);
            out.iter()
                .zip(&want)
                .map(|(a, b)| (*a as f64 - b).abs())
                .fold(0.0, f64::max)
        };
        let (e_plain, e_smooth) = (err(&plain), err(&smooth));
        // The smoothed product's bound, in the smoothed quantities.
        let xs: Vec<f32> = x
            .chunks_exact(k)
            .flat_map(|r| r.iter().zip(&f).map(|(v, f)| v / f))
            .collect();
        let mut rows = QuantizedRows::default();
        rows.quantize(&xs, m, k);
        let bound = (0..m)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .map(|(i, j)| error_bound(&smooth, &rows, &xs, i, j))
            .fold(0.0, f64::max);
        assert!(e_smooth <= bound * 1.001 + 1e-5, "{e_smooth} > {bound}");
        assert!(
            e_smooth < e_plain,
            "smoothing did not help: {e_smooth} vs {e_plain}"
        );
    }

    #[test]
    fn min_max_is_exact_on_every_path() {
        for (len, seed) in [(1, 1), (7, 2), (8, 3), (9, 4), (37, 5), (384, 6), (1537, 7)] {
            let x = random_vec(len, seed);
            let lo = x.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(min_max(&x), (lo, hi), "len {len}");
            assert_eq!(min_max_portable(&x), (lo, hi), "len {len}");
        }
        assert_eq!(min_max(&[]), (0.0, 0.0));
        // A NaN is skipped, wherever it falls.
        let mut x = random_vec(19, 8);
        let (lo, hi) = min_max(&x);
        x[3] = f32::NAN;
        x[17] = f32::NAN;
        let (l2, h2) = min_max(&x);
        assert!(l2 >= lo && h2 <= hi && l2.is_finite() && h2.is_finite());
    }

    #[test]
    fn activation_levels_keep_the_sums_exact() {
        for k in [1, 2, 384, 1536, 8256, 8257, 20_000, 131_000] {
            let levels = u64::from(activation_levels(k));
            let kp = (k + (k & 1)) as u64;
            assert!(levels.is_power_of_two() && levels >= 256, "k {k}");
            assert!(kp * (levels / 2) * 127 < 1 << 31, "k {k}: {levels}");
            // The most levels that fit (or the cap).
            assert!(
                levels == u64::from(MAX_ACTIVATION_LEVELS) || kp * levels * 127 >= 1 << 31,
                "k {k}: {levels} is not the most"
            );
        }
        assert_eq!(activation_levels(1536), 4096);
    }

    #[test]
    fn quantisation_round_trips_within_half_a_step() {
        let k = 37;
        let x = random_vec(5 * k, 9);
        let mut rows = QuantizedRows::default();
        rows.quantize(&x, 5, k);
        for i in 0..5 {
            let s = rows.scale(i);
            let row = &x[i * k..(i + 1) * k];
            let lo = row.iter().fold(f32::MAX, |m, &v| m.min(v));
            let hi = row.iter().fold(f32::MIN, |m, &v| m.max(v));
            let top = (activation_levels(k) - 1) as f32;
            assert!((s - (hi - lo) / top).abs() <= 1e-9);
            for p in 0..k {
                let d = (rows.dequantized(i, p) - x[i * k + p]).abs();
                assert!(d <= s * (0.5 + 1e-4), "({i},{p}) {d} vs step {s}");
            }
        }
        // A constant row comes back exactly, whatever its value.
        rows.quantize(&[0.0; 4], 1, 4);
        assert_eq!(rows.dequantized(0, 3), 0.0);
        rows.quantize(&[2.5; 3], 1, 3);
        assert_eq!(rows.dequantized(0, 2), 2.5);
        // All-positive rows (as after GELU) use every level.
        let pos: Vec<f32> = x.iter().map(|v| v.abs()).collect();
        rows.quantize(&pos, 5, k);
        let top = (activation_levels(k) - 1) as f32;
        assert!(rows.scale(0) <= 1.0 / top + 1e-6);
    }

    /// Not a check: GFLOP/s-equivalent of the int8 product beside the fp32
    /// matmul for BERT's shapes. `cargo test --release -p corral-embed
    /// qmatmul::tests::timings -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn timings() {
        use super::super::matmul::Linear;
        use std::time::Instant;
        for &(m, k, n) in &[
            (900, 384, 1152),
            (900, 384, 1536),
            (900, 1536, 384),
            (900, 384, 384),
            (30, 384, 1536),
        ] {
            let x = random_vec(m * k, 1);
            let w = random_vec(n * k, 2);
            let f = Linear::from_torch(w.clone(), vec![0.0; n], n, k);
            let q = QLinear::from_torch(&w, vec![0.0; n], n, k);
            let mut rows = QuantizedRows::default();
            let mut out = vec![0.0; m * n];
            let (mut tf, mut tq) = (0.0, 0.0);
            let iters = (2e9 / (2.0 * (m * k * n) as f64)).ceil() as usize;
            for it in 0..iters {
                for which in [it % 2, 1 - it % 2] {
                    let t = Instant::now();
                    if which == 0 {
                        f.forward_no_bias(&x, &mut out, m, false, 1);
                        tf += t.elapsed().as_secs_f64();
                    } else {
                        q.forward_no_bias(&x, &mut out, m, false, 1, &mut rows);
                        tq += t.elapsed().as_secs_f64();
                    }
                }
            }
            let gf = 2.0 * (m * k * n) as f64 * iters as f64 / 1e9;
            println!(
                "[{m},{k}]x[{k},{n}]: fp32 {:.1} GFLOP/s, int8 {:.1} GOP/s ({:.2}x)",
                gf / tf,
                gf / tq,
                tf / tq
            );
        }
    }
}
