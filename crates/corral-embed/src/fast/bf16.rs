//! bf16 dense layers (`--quantize bf16`): the weights rounded to bfloat16
//! once at load, each product's activations rounded as it starts, and the
//! products summed in fp32 by AVX-512 BF16's `vdpbf16ps` — two
//! multiply-adds per 32-bit lane where fp32's `vfmadd` does one, so about
//! twice the dense layers' rate (see docs/benchmarks.md, "bf16"), with
//! every product of two bf16 values exact in fp32 and only the inputs'
//! rounding (8 significant bits, a relative error under 2⁻⁹) lost.
//! Attention, the softmax, the layer norms and GELU stay fp32.
//!
//! Only the AVX-512 builds on a CPU with AVX-512 BF16 have the kernel
//! ([`super::Isa::has_bf16`]); elsewhere a model asked for bf16 stays fp32
//! (the caller warns). [`reference_product`] is the portable reference the
//! kernel is tested against bit for bit: the hardware's rounding of fp32 to
//! bf16 ([`to_bf16`]) and its order of adding a lane's two products.
//!
//! This module owns [`BfLinear`]; the kernel is in [`avx512`].

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512;

/// Output columns per panel of the packed weights.
const NR: usize = 32;

/// A dense layer `y = x · Wᵀ + b` with bf16 weights, packed for the
/// kernel: panel `p` (output columns `32p .. 32p + 32`), pair step `t`
/// (inputs `2t` and `2t + 1`) is 64 values at `(p · pairs + t) · 64`, two
/// 512-bit vectors of 16 columns each, every 32-bit lane one column's two
/// inputs (the even one in the low half); zero beyond `n` and, for an odd
/// `k`, at input `k`.
#[derive(Debug, Clone)]
pub(crate) struct BfLinear {
    packed: Vec<u16>,
    /// Bias, `[n]` (fp32).
    pub(crate) bias: Vec<f32>,
    /// Input features.
    pub(crate) k: usize,
    /// Output features.
    pub(crate) n: usize,
}

impl BfLinear {
    /// Whether the build that runs has the bf16 kernel.
    pub(crate) fn supported() -> bool {
        super::Isa::current().has_bf16()
    }

    /// Rounds a PyTorch-layout weight `w` (`[n, k]` row-major) to bf16 and
    /// packs it.
    pub(crate) fn from_torch(w: &[f32], bias: Vec<f32>, n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight size");
        assert_eq!(bias.len(), n, "bias size");
        let pairs = k.div_ceil(2);
        let mut packed = vec![0u16; n.div_ceil(NR) * pairs * 2 * NR];
        for (j, row) in w.chunks_exact(k.max(1)).take(n).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                packed[Self::index(j, i, pairs)] = to_bf16(v);
            }
        }
        Self { packed, bias, k, n }
    }

    /// Where the weight of output `j`, input `i` sits in the packing.
    fn index(j: usize, i: usize, pairs: usize) -> usize {
        let (panel, c) = (j / NR, j % NR);
        (panel * pairs + i / 2) * 2 * NR + (c / 16) * 32 + (c % 16) * 2 + i % 2
    }

    /// `W` in PyTorch layout (`[n, k]` row-major), as rounded: each value
    /// exactly a bf16.
    #[cfg(test)]
    pub(crate) fn torch_weights(&self) -> Vec<f32> {
        let pairs = self.k.div_ceil(2);
        let mut w = vec![0.0f32; self.n * self.k];
        for (j, row) in w.chunks_exact_mut(self.k.max(1)).take(self.n).enumerate() {
            for (i, v) in row.iter_mut().enumerate() {
                *v = from_bf16(self.packed[Self::index(j, i, pairs)]);
            }
        }
        w
    }

    /// `out[m, n] = x[m, k] · Wᵀ` (`x`'s values rounded to bf16 first),
    /// plus what `out` already holds when `accumulate`; the bias is *not*
    /// added (callers fuse it into the following pass). Split over
    /// `threads` of the current rayon pool as the fp32 kernel is, with the
    /// same bits on any number of threads.
    ///
    /// # Panics
    /// When the build that runs has no bf16 kernel ([`BfLinear::supported`]
    /// was not checked), or the slices are too short.
    pub(crate) fn forward_no_bias(
        &self,
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
            Self::supported(),
            "bf16 layer on a build without AVX-512 BF16"
        );
        #[cfg(target_arch = "x86_64")]
        {
            let dst = super::matmul::SharedOut(out.as_mut_ptr());
            let panels = n.div_ceil(NR);
            super::matmul::split_tiles(m, panels, avx512::MR, threads, |rows, cols| {
                // SAFETY: the build that runs has AVX-512 F, BW and BF16
                // (asserted above); `out` is borrowed mutably for the whole
                // product and holds m·n values, and each job writes only
                // its own rows or its own panels' columns of it
                // (`split_tiles`).
                #[allow(unsafe_code)]
                #[allow(unsafe_code)]
                unsafe {
                    avx512::product(x, &self.packed, k, n, rows, cols, dst, accumulate)
                }
            });
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (accumulate, threads);
    }
}

/// `x` rounded to the nearest bf16 (ties to even), as the hardware's
/// `vcvtne2ps2bf16` rounds: a NaN stays a (quiet) NaN, and a subnormal
/// becomes a zero of its sign.
pub(crate) fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    if x.is_subnormal() {
        return ((b >> 16) & 0x8000) as u16;
    }
    let lsb = (b >> 16) & 1;
    (b.wrapping_add(0x7fff + lsb) >> 16) as u16
}

/// The fp32 value of a bf16.
#[cfg(test)]
pub(crate) fn from_bf16(v: u16) -> f32 {
    f32::from_bits(u32::from(v) << 16)
}

/// The portable reference of [`BfLinear::forward_no_bias`], on one thread:
/// what `vdpbf16ps` computes, step by step. Each lane adds its odd input's
/// product, rounds, then its even one's and rounds again (each product of
/// two bf16 values is exact in fp32); bf16 subnormals count as zero and a
/// subnormal sum is flushed to zero, as the instruction does.
#[cfg(test)]
pub(crate) fn reference_product(
    layer: &BfLinear,
    x: &[f32],
    out: &mut [f32],
    m: usize,
    accumulate: bool,
) {
    let (k, n) = (layer.k, layer.n);
    let w = layer.torch_weights();
    let daz = |v: f32| if v.is_subnormal() { 0.0 } else { v };
    let ftz = |v: f32| {
        if v.is_subnormal() {
            0.0f32.copysign(v)
        } else {
            v
        }
    };
    let value = |v: f32| daz(from_bf16(to_bf16(v)));
    for i in 0..m {
        let xr: Vec<f32> = x[i * k..(i + 1) * k].iter().map(|&v| value(v)).collect();
        for j in 0..n {
            let wr = &w[j * k..(j + 1) * k];
            let mut acc = 0.0f32;
            for t in 0..k.div_ceil(2) {
                let (e, o) = (2 * t, 2 * t + 1);
                // An odd `k`'s last pair is padded with zeros.
                let odd = if o < k { xr[o] * daz(wr[o]) } else { 0.0 };
                acc = ftz(acc + odd);
                acc = ftz(acc + xr[e] * daz(wr[e]));
            }
            let o = &mut out[i * n + j];
            *o = if accumulate { *o + acc } else { acc };
        }
    }
}

#[cfg(test)]
mod tests;
