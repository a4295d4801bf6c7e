//! Int8 dense layers: weights quantised per output channel at load
//! (symmetric, `[-127, 127]`), activations quantised per row (token) on the
//! fly (asymmetric over the row's `[min, max]`, in up to 4,096 levels —
//! [`activation_levels`](quantize::activation_levels) — stored around the row's offset), products
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
//! On a CPU with AVX-512 VNNI the same tile runs on `vpdpwssd`, which
//! multiplies the same 16-bit pairs and adds both products into the `i32`
//! accumulator in one instruction (`vpmaddwd` + `vpaddd` fused; wrapping,
//! like `vpaddd`, where nothing can overflow anyway): the same exact sums,
//! so the same bits, with half the instructions. It comes in 256-bit (two
//! vectors per tile row, as AVX2) and 512-bit (one) builds; which runs is
//! [`Isa`](super::Isa)'s choice ([`Kernel::for_isa`]).
//!
//! # 8-bit activations (`u8 × s8`)
//! A layer can take its activations in 256 levels instead
//! ([`QLinear::set_max_levels`]): each row is then stored unsigned, `0..=255`
//! above its minimum (`x̂ = s_a·q + min`, the same output step with the
//! minimum as the offset), and the weights are packed a second time, four
//! `k` values of each column per step. AVX-512 VNNI's `vpdpbusd` multiplies
//! those unsigned bytes by the signed weight bytes and adds the four
//! products of each lane into its `i32` accumulator: twice the multiply-adds
//! of `vpdpwssd` per instruction, exact while `k·255·127 < 2³¹`. The other
//! kernels multiply the same unsigned levels in `i16` lanes, so every
//! kernel still gives the same bits. Which layers get 8 bits is a fidelity
//! choice (`Int8Layers::EIGHT_BIT_ACTIVATIONS`).
//!
//! The `u8` tiles on VNNI finish their rows where the sums are: the wide
//! rows' low sums, the scales, the offset's term and the residual are
//! applied to the accumulators in registers and each row stored once,
//! masked to the panel's columns (`Kernel::tile_u8_out`), with one bounds
//! check a tile. Going through a tile in memory, and a slice and a
//! dispatch per row, had cost most where a tile is shortest (`vpdpbusd`
//! runs 96 steps a tile at `k` = 384, 384 at `k` = 1,536): with
//! `qmatmul::tests::kernel_timings`, old and new builds alternating on a
//! Zen 4 core, the `k` = 384 shapes went from 366–389 to 390–419 GOP/s
//! (+7–9%), the `k` = 1,536 one stayed at 421–433; the whole `corral
//! embed` process gained about 3–5%, within this machine's drift (see
//! `docs/benchmarks.md`). The `i16` tiles keep the tile in
//! memory and the plain-Rust step (`output::finish_rows`, the reference
//! the fused tiles equal bit for bit).
//!
//! With `|q_a| ≤ levels/2`, `|q_w| ≤ 127` the `i32` sums cannot overflow
//! while `k·(levels/2)·127 < 2³¹`, which
//! [`activation_levels`](quantize::activation_levels) keeps true
//! (4,096 levels up to `k` = 8,256, fewer beyond), so the integer part is
//! exact: the AVX2 kernel and the portable one (`gemm_i16_portable`)
//! agree bit for bit before the output step.
//!
//! # Error bound
//! With `x̂ = s_a·q_a + c` (`|x − x̂| ≤ s_a/2`, `s_a = (max − min)/(levels
//! − 1)` over the row) and
//! `ŵ = s_w·q_w` (`|w − ŵ| ≤ s_w/2`, `s_w = max|w_col|/127`), each output
//! element satisfies
//! `|y − ŷ| ≤ Σ_k (s_a/2)·|ŵ_k| + (s_w/2)·|x_k|` (the tests' `error_bound`), plus
//! the fp32 rounding of the output step (relative ~1e-7). The tests check
//! every element of random products, odd sizes included, against that
//! bound computed in `f64`.
//!
//! This module owns [`QLinear`], [`QuantizedRows`] and the kernels
//! ([`Kernel`]: portable, AVX2, AVX-512 VNNI); whether the CPU can run the
//! int8 layers at all is [`int8_supported`].

use rayon::prelude::*;

mod quantize;
pub(crate) use quantize::QuantizedRows;
#[cfg(test)]
use quantize::{activation_levels, MAX_ACTIVATION_LEVELS};

/// Output columns per packed weight panel (two AVX2 vectors of `i32`).
pub(crate) const NR: usize = 16;
/// Rows per micro-kernel tile.
pub(crate) const MR: usize = 6;
/// Rows per cache block: the quantised activations of one block stay in L2
/// while every weight panel passes over them.
const MC: usize = 96;
/// Largest quantised magnitude (symmetric 8-bit).
const QMAX: f32 = 127.0;

/// Whether this CPU runs the int8 kernel (x86-64 with AVX2). Without it
/// callers keep the fp32 layers.
pub(crate) fn int8_supported() -> bool {
    super::Isa::avx2().is_some()
}

/// A dense layer `y = x · Wᵀ + b` with `W` quantised to 8 bits per output
/// channel and packed for the int8 kernel.
#[derive(Debug, Clone)]
pub(crate) struct QLinear {
    /// Packed weights: `panels × (kp/2) × NR × 2` values in `[-127, 127]`.
    packed: Vec<i16>,
    /// Per-output-channel scale, padded with zeros to whole panels.
    w_scale: Vec<f32>,
    /// `Σ_k ŵ[j, k]` per output channel (padded likewise): the factor of
    /// a row's offset in the output.
    w_sum: Vec<f32>,
    /// Bias, `[n]` (applied by the caller's fused pass, as for `Linear`).
    pub(crate) bias: Vec<f32>,
    /// Input features.
    pub(crate) k: usize,
    /// `k` rounded up to even (the kernel consumes `k` in pairs).
    kp: usize,
    /// Output features.
    pub(crate) n: usize,
    /// `1 / f_k` per input channel when the input is smoothed.
    inv_smooth: Option<Vec<f32>>,
    /// Most activation levels per row (at most [`activation_levels`]'s).
    max_levels: u32,
    /// With 8-bit activations, the weights packed again for `vpdpbusd`:
    /// panels × (kq/4) steps × [`NR`] columns × 4 `k` values (`kq` = `kp`
    /// rounded up to 4, zero-padded).
    packed8: Option<Vec<i8>>,
    /// With 8-bit activations, the range (in standard deviations) above
    /// which a row is wide (see `quantize`'s module docs); infinite
    /// otherwise.
    wide_above: f32,
}

/// The range, in standard deviations, above which a row of an 8-bit layer
/// gets [`quantize::wide_levels`] instead of 256 levels. Measured on
/// all-MiniLM-L6-v2 with every layer's activations in 8 bits (minimum
/// cosine to fp32, 24 golden texts / 2,000 corpus sentences; share of rows
/// made wide): no wide rows 0.99200 / 0.99679; above 30, 0.99417 /
/// 0.99761; above 20 (2.6% wide), 0.99519 / 0.99818; above 16 (7%),
/// 0.99615 / 0.99830; above 12 (19%), 0.99607 / 0.99844; above 10 (35%),
/// 0.99634 / 0.99838. Today's 0.99577 / 0.99845 had two layers of four in
/// 8 bits and no wide rows.
pub(crate) const WIDE_ABOVE: f32 = 16.0;

impl QLinear {
    /// `out[m, n] = x̂[m, k] · Ŵᵀ` (plus what `out` holds when
    /// `accumulate`), quantising `x` into `rows` first. As
    /// `Linear::forward_no_bias`: the bias is left to the caller's fused
    /// pass. `threads > 1` splits rows over the current rayon pool. Uses
    /// the kernel of [`Isa::current`](super::Isa::current): AVX-512 VNNI or
    /// AVX2 when the CPU has them, the portable one otherwise.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_no_bias(
        &self,
        x: &[f32],
        out: &mut [f32],
        m: usize,
        accumulate: bool,
        threads: usize,
        rows: &mut QuantizedRows,
    ) {
        rows.quantize_scaled(
            x,
            m,
            self.k,
            self.inv_smooth.as_deref(),
            self.max_levels,
            self.wide_above,
        );
        let kernel = Kernel::current();
        if self.runs_u8(rows, kernel) {
            rows.fill_u8();
        }
        self.forward_quantized(rows, out, accumulate, threads, kernel);
    }

    /// Whether `kernel` multiplies `rows` as `u8 × s8` (`vpdpbusd`): an
    /// AVX-512 VNNI kernel, unsigned 8-bit rows and weights packed for it.
    fn runs_u8(&self, rows: &QuantizedRows, kernel: Kernel) -> bool {
        kernel.has_u8() && rows.unsigned && self.packed8.is_some()
    }

    /// The product of already quantised `rows` with this layer, by `kernel`.
    /// With `threads > 1` the work is split over the current rayon pool:
    /// by rows when there are at least two [`MR`]-row tiles per thread, by
    /// column panels otherwise (a lone sentence's few rows would leave
    /// threads idle or uneven). Each output element is computed by the same
    /// code either way, so the split never changes a bit. On `u8 × s8`, the
    /// wide rows' low bits are multiplied first (see
    /// [`QLinear::wide_low_sums`]).
    pub(crate) fn forward_quantized(
        &self,
        rows: &mut QuantizedRows,
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
        if self.runs_u8(rows, kernel) && !rows.wide.is_empty() {
            self.wide_low_sums(rows, threads, kernel);
        }
        let rows = &*rows;
        let out = &mut out[..m * self.n];
        let panels = self.n.div_ceil(NR);
        let whole = |out: &mut [f32]| Block {
            first: 0,
            count: m,
            panels: 0..panels,
            out: OutRows::new(out, self.n),
        };
        if threads <= 1 {
            self.rows_block(rows, whole(out), accumulate, kernel);
        } else if m.div_ceil(MR) >= 2 * threads {
            // A few chunks per thread balance uneven progress; whole MR
            // tiles keep every chunk's kernel calls full.
            let chunk_rows = m.div_ceil(threads * 2).div_ceil(MR) * MR;
            out.par_chunks_mut(chunk_rows * self.n)
                .enumerate()
                .for_each(|(c, dst)| {
                    let block = Block {
                        first: c * chunk_rows,
                        count: dst.len() / self.n,
                        panels: 0..panels,
                        out: OutRows::new(dst, self.n),
                    };
                    self.rows_block(rows, block, accumulate, kernel)
                });
        } else if panels >= 2 {
            let jobs = threads.min(panels);
            let dst = OutRows::new(out, self.n);
            (0..jobs).into_par_iter().for_each(|j| {
                let block = Block {
                    first: 0,
                    count: m,
                    panels: panels * j / jobs..panels * (j + 1) / jobs,
                    out: dst,
                };
                self.rows_block(rows, block, accumulate, kernel)
            });
        } else {
            self.rows_block(rows, whole(out), accumulate, kernel);
        }
    }

    /// `Σ_k lo[r, k]·q_w[j, k]` for every wide row `r` and output column
    /// `j` (padded to whole panels) into `rows.lo_sums`: the `u8 × s8`
    /// product of the wide rows' low bits, whose sums the main pass adds
    /// to the high bits' (see `quantize`'s module docs). Split by rows over
    /// the current rayon pool when `threads > 1`.
    fn wide_low_sums(&self, rows: &mut QuantizedRows, threads: usize, kernel: Kernel) {
        let w8 = self.packed8.as_deref().expect("weights packed for u8");
        let (kq, panels) = (rows.kq, self.n.div_ceil(NR));
        let width = panels * NR;
        let wide = rows.wide.len();
        rows.lo_sums.clear();
        rows.lo_sums.resize(wide * width, 0);
        let lo8 = &rows.lo8;
        let lo_sums = &mut rows.lo_sums[..];
        let tiles = |(t, dst): (usize, &mut [i32])| {
            let r0 = t * MR;
            let mr = dst.len() / width;
            let mut tile = [[0i32; NR]; MR];
            for panel in 0..panels {
                kernel.tile_u8(
                    &lo8[r0 * kq..(r0 + mr) * kq],
                    kq,
                    mr,
                    &w8[panel * NR * kq..(panel + 1) * NR * kq],
                    kq / 4,
                    &mut tile,
                );
                for (r, acc) in tile.iter().enumerate().take(mr) {
                    dst[r * width + panel * NR..][..NR].copy_from_slice(acc);
                }
            }
        };
        if threads > 1 && wide > MR {
            lo_sums
                .par_chunks_mut(MR * width)
                .enumerate()
                .for_each(tiles);
        } else {
            lo_sums.chunks_mut(MR * width).enumerate().for_each(tiles);
        }
    }

    /// `block`'s rows and panels of the product, the loop and output step
    /// compiled for AVX2 when `kernel` is the AVX2 one and for AVX-512 when
    /// it is a VNNI one (the same bits either way, as no step is fused into
    /// a multiply-add).
    fn rows_block(&self, rows: &QuantizedRows, block: Block, accumulate: bool, kernel: Kernel) {
        #[cfg(target_arch = "x86_64")]
        match kernel {
            Kernel::Avx2 => {
                assert!(int8_supported(), "the AVX2 kernel on a CPU without AVX2");
                // SAFETY: the CPU has AVX2 (asserted above), the only
                // precondition of calling a function that enables it.
                #[allow(unsafe_code)]
                unsafe {
                    self.rows_block_avx2(rows, block, accumulate, kernel)
                };
                return;
            }
            Kernel::Vnni256 | Kernel::Vnni512 => {
                assert!(
                    super::Isa::avx512_vnni(false).is_some(),
                    "a VNNI kernel on a CPU without AVX-512 VNNI"
                );
                // SAFETY: the CPU has AVX2, FMA and AVX-512 F/BW/VL/VNNI
                // (asserted above: `avx512_vnni` checks them all), the only
                // precondition of calling a function that enables them.
                #[allow(unsafe_code)]
                unsafe {
                    self.rows_block_vnni(rows, block, accumulate, kernel)
                };
                return;
            }
            Kernel::Portable => {}
        }
        self.rows_block_any(rows, block, accumulate, kernel)
    }

    /// [`QLinear::rows_block`] built with AVX2 enabled.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn rows_block_avx2(
        &self,
        rows: &QuantizedRows,
        block: Block,
        accumulate: bool,
        kernel: Kernel,
    ) {
        self.rows_block_any(rows, block, accumulate, kernel)
    }

    /// [`QLinear::rows_block`] built with AVX2, FMA and AVX-512 VNNI
    /// enabled (so the `i16` tile and the output step inline; the step has
    /// no fused multiply-add to contract, so it gives the same bits).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn rows_block_vnni(
        &self,
        rows: &QuantizedRows,
        block: Block,
        accumulate: bool,
        kernel: Kernel,
    ) {
        self.rows_block_any(rows, block, accumulate, kernel)
    }

    /// The body of [`QLinear::rows_block`], inlined into each build.
    #[inline(always)]
    fn rows_block_any(&self, rows: &QuantizedRows, block: Block, accumulate: bool, kernel: Kernel) {
        let n = self.n;
        let Block {
            first,
            count,
            panels,
            out,
        } = block;
        assert!(out.rows() >= count, "block rows");
        let pairs = self.kp / 2;
        let panels_total = n.div_ceil(NR);
        let u8_panels = self
            .packed8
            .as_deref()
            .filter(|_| self.runs_u8(rows, kernel));
        if u8_panels.is_some() {
            assert!(rows.q8.len() >= rows.rows * rows.kq, "rows filled as u8");
            assert!(
                rows.lo_sums.len() >= rows.wide.len() * panels_total * NR,
                "the wide rows' low sums"
            );
        }
        let mut tile = [[0i32; NR]; MR];
        for mc in (0..count).step_by(MC) {
            let mc_end = (mc + MC).min(count);
            for panel in panels.clone() {
                let w = &self.packed[panel * pairs * NR * 2..(panel + 1) * pairs * NR * 2];
                let cols = (n - panel * NR).min(NR);
                let scales = &self.w_scale[panel * NR..panel * NR + NR];
                let sums = &self.w_sum[panel * NR..panel * NR + NR];
                for r0 in (mc..mc_end).step_by(MR) {
                    let mr = (mc_end - r0).min(MR);
                    // The output step below reads (when accumulating) and
                    // writes these rows; asked for now, they arrive while
                    // the tile is computed instead of stalling it.
                    for r in 0..mr {
                        let o = out.at(r0 + r, panel * NR);
                        prefetch(o);
                        prefetch(o.wrapping_add(cols - 1));
                    }
                    let at = first + r0;
                    let step = TileStep {
                        sa: &rows.scales[at..at + mr],
                        off: &rows.offsets[at..at + mr],
                        // The i16 path multiplies a wide row's levels whole.
                        slot: match u8_panels {
                            Some(_) => &rows.wide_slot[at..at + mr],
                            None => &[quantize::NARROW; MR],
                        },
                        lo_sums: &rows.lo_sums,
                        lo_width: panels_total * NR,
                        shift: rows.wide_shift,
                        sw: scales.try_into().expect("whole panels of scales"),
                        ws: sums.try_into().expect("whole panels of sums"),
                        accumulate,
                        out,
                        row: r0,
                        col: panel * NR,
                        cols,
                    };
                    // The block's rows and panels are its own: no other job
                    // of this product writes them, and the product's caller
                    // holds the output exclusively while the jobs run
                    // (`OutRows::new`): the contract of both calls below.
                    match u8_panels {
                        Some(w8) => {
                            let a8 = &rows.q8[at * rows.kq..(at + mr) * rows.kq];
                            let w8 = &w8[panel * NR * rows.kq..(panel + 1) * NR * rows.kq];
                            // SAFETY: the tile's outputs are this job's own
                            // (above).
                            #[allow(unsafe_code)]
                            unsafe {
                                kernel.tile_u8_out(a8, rows.kq, mr, w8, rows.kq / 4, &step)
                            }
                        }
                        None => {
                            let a = &rows.q[at * self.kp..(at + mr) * self.kp];
                            kernel.tile(a, self.kp, mr, w, pairs, &mut tile);
                            // SAFETY: as for `tile_u8_out`.
                            #[allow(unsafe_code)]
                            unsafe {
                                finish_rows(&tile, mr, &step)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `Σ_k (s_a/2)·|ŵ[j,k]| + (s_w[j]/2)·|x[i,k]|`: the largest possible
/// `|y[i,j] − ŷ[i,j]|` from quantisation for row `i` of `x`, column `j`,
/// before fp32 rounding (see the module docs).
#[cfg(test)]
pub(crate) fn error_bound(
    layer: &QLinear,
    rows: &QuantizedRows,
    x: &[f32],
    i: usize,
    j: usize,
) -> f64 {
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

mod kernel;
pub(crate) use kernel::Kernel;
mod load;
mod output;
#[cfg(test)]
use kernel::{gemm_i16_portable, gemm_u8_portable};
use output::{finish_rows, prefetch, Block, OutRows, TileStep};

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2;

/// The tile on AVX-512 VNNI: `vpdpwssd` multiplies the same 16-bit pairs
/// as `vpmaddwd`, adds both products to the `i32` accumulator in one
/// instruction (wrapping, as `vpaddd` does; the sums never overflow, see
/// the module docs), so it gives the AVX2 kernel's bits.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod vnni;

#[cfg(test)]
mod tests;
