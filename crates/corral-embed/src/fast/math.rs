//! Scalar transcendental functions written so that LLVM can vectorise loops
//! that call them: branch-free, only `+ - * /`, fused multiply-adds
//! (GELU's), `min`/`max`, float↔int conversions and bit casts.
//!
//! This module owns [`exp`] (used by the softmax) and [`gelu_erf`] (the
//! exact-GELU activation; `erfc_abs` states its approximation for the
//! tests). Both are accurate to a few
//! units in the last place of an `f32` over the ranges a BERT forward
//! produces; the tests check them against `f64` references.

/// `ln 2` split into a high part exactly representable with few mantissa bits
/// and a low correction, for an exact range reduction `x - n·ln2`.
pub(crate) const LN2_HI: f32 = 0.693_145_75;
pub(crate) const LN2_LO: f32 = 1.428_606_8e-6;
pub(crate) const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// Adding and subtracting 1.5·2²³ rounds an `f32` of magnitude < 2²² to the
/// nearest integer without calling `roundf` (which would not vectorise on
/// baseline x86-64).
pub(crate) const ROUND_MAGIC: f32 = 12_582_912.0;
/// `e^r`'s Taylor coefficients after the leading `1/7!`, highest first: the
/// Horner steps of [`exp`] and [`gelu_erf`].
pub(crate) const EXP_TAYLOR: [f32; 7] = [
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];
/// `erfc(|z|) ≈ t·P(t)·e^{-z²}` with `t = 1/(1 + ERFC_P·|z|)` and `P`'s
/// coefficients `ERFC_A` (lowest first): Abramowitz & Stegun 7.1.26.
pub(crate) const ERFC_P: f32 = 0.327_591_1;
pub(crate) const ERFC_A: [f32; 5] = [
    0.254_829_6,
    -0.284_496_74,
    1.421_413_8,
    -1.453_152,
    1.061_405_4,
];

/// `e^x` for `f32`, relative error below 2·10⁻⁷ for `x` in `[-87, 88]`.
/// Inputs below −87 return about `1.6e-38` instead of 0 or a subnormal, which
/// is harmless for a softmax (the largest term is always `e^0 = 1`).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // x = n·ln2 + r with |r| ≤ ln2/2.
    // t holds n in the low bits of its mantissa: bits(t) = bits(MAGIC) + n.
    let t = x * LOG2_E + ROUND_MAGIC;
    let n = t - ROUND_MAGIC;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // e^r by its Taylor series to r⁷ (truncation error < 6·10⁻⁹ at |r| = ln2/2).
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // 2^n built from its exponent bits; n ∈ [-126, 127] after the clamp.
    // Integer arithmetic on bits(t) avoids a float→int conversion (Rust's
    // saturating `as` does not vectorise to a single instruction).
    let n_bits = t.to_bits().wrapping_sub(ROUND_MAGIC.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    p * scale
}

/// `erfc(|z|)`, i.e. `1 - erf(|z|)`: absolute error ≤ 1.4·10⁻⁷ for the
/// approximation itself, ≤ 5·10⁻⁷ once evaluated in `f32` (the worst case
/// is near `z = 0`, where the Horner steps round at magnitude ~1.4).
///
/// Uses the rational-times-Gaussian form `t·P(t)·e^{-z²}` with
/// `t = 1 / (1 + p·|z|)` (Abramowitz & Stegun 7.1.26). Returning the
/// complement keeps full relative precision where `1 + erf(z)` is small
/// (large negative `z`), which is exactly where GELU needs it.
///
/// [`gelu_erf`] computes the same with fused multiply-adds; this unfused
/// form is the tests' statement of the approximation.
#[cfg(test)]
#[inline(always)]
pub(crate) fn erfc_abs(z: f32) -> f32 {
    let a = z.abs();
    let t = 1.0 / (1.0 + ERFC_P * a);
    let poly = ERFC_A[..4].iter().rev().fold(ERFC_A[4], |p, &c| p * t + c) * t;
    poly * exp(-a * a)
}

/// Exact (erf-based) GELU: `x · (1 + erf(x/√2)) / 2`, the activation of
/// BERT's `hidden_act = "gelu"`. Absolute error below `2e-7·(1 + |x|)`.
///
/// [`erfc_abs`] and [`exp`]'s steps with every multiply-add fused
/// (`mul_add`), in the order the AVX2 kernel (`activation`'s) runs them on
/// 8 lanes, so that both give the same bits: an int8 layer after GELU
/// quantises its input, and a last-bit difference there can move a value
/// to the next level. On a CPU without fused multiply-adds `mul_add` is a
/// libm call, equal but some forty times slower: the portable build runs
/// [`gelu_erf_portable`] instead.
#[inline(always)]
pub(crate) fn gelu_erf(x: f32) -> f32 {
    gelu_erf_by(x, f32::mul_add)
}

/// What the portable build runs: [`gelu_erf`] where the target fuses
/// multiply-adds in hardware (aarch64, or x86 built with FMA), the same
/// steps with each multiply and add rounded apart elsewhere (baseline
/// x86-64, where `mul_add` would be a libm call per step): within a few
/// units in the last place of [`gelu_erf`], and as fast as plain
/// arithmetic.
#[inline(always)]
pub(crate) fn gelu_erf_portable(x: f32) -> f32 {
    if cfg!(any(target_feature = "fma", target_arch = "aarch64")) {
        gelu_erf(x)
    } else {
        gelu_erf_unfused(x)
    }
}

/// [`gelu_erf`]'s steps with each multiply and add rounded apart.
#[inline(always)]
pub(crate) fn gelu_erf_unfused(x: f32) -> f32 {
    gelu_erf_by(x, |a, b, c| a * b + c)
}

/// [`gelu_erf`] with `fma(a, b, c)` for each `a·b + c` step.
#[inline(always)]
fn gelu_erf_by(x: f32, fma: impl Fn(f32, f32, f32) -> f32) -> f32 {
    let a = (x * std::f32::consts::FRAC_1_SQRT_2).abs();
    let t = 1.0 / fma(ERFC_P, a, 1.0);
    let poly = ERFC_A[..4]
        .iter()
        .rev()
        .fold(ERFC_A[4], |p, &c| fma(p, t, c))
        * t;
    // e^{-a²} (the argument is never positive), as `exp`.
    let u = ((-a) * a).max(-87.0);
    let tn = fma(u, LOG2_E, ROUND_MAGIC);
    let n = tn - ROUND_MAGIC;
    let r = fma(-n, LN2_HI, u);
    let r = fma(-n, LN2_LO, r);
    let p = EXP_TAYLOR
        .iter()
        .fold(1.0 / 5040.0, |p: f32, &c| fma(p, r, c));
    let n_bits = tn.to_bits().wrapping_sub(ROUND_MAGIC.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    let c = poly * (p * scale);
    // 1 + erf(z) = 2 - erfc(z) for z ≥ 0 and erfc(|z|) for z < 0.
    let one_plus_erf = if x >= 0.0 { 2.0 - c } else { c };
    0.5 * x * one_plus_erf
}

/// Sum of a slice with eight independent accumulators, so that LLVM keeps
/// them in one vector register (a single running `f32` sum cannot be
/// vectorised without reassociating).
#[inline(always)]
pub(crate) fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for &v in tail {
        s += v;
    }
    s
}

/// Dot product with eight independent accumulators (see [`sum`]).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (x, y) in ta.iter().zip(tb) {
        s += x * y;
    }
    s
}

/// Largest element (−∞ for an empty slice), eight lanes at a time.
#[inline(always)]
pub(crate) fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            acc[l] = acc[l].max(c[l]);
        }
    }
    let mut m = acc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for &v in tail {
        m = m.max(v);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 by its Maclaurin series (|z| ≤ 3) or the continued fraction
    /// for erfc (|z| > 3): a slow reference, exact to ~1e-15.
    fn erf_ref(z: f64) -> f64 {
        let a = z.abs();
        let v = if a <= 3.0 {
            let mut term = a;
            let mut sum = a;
            let mut n = 0.0;
            loop {
                n += 1.0;
                term *= -a * a / n;
                let add = term / (2.0 * n + 1.0);
                sum += add;
                if add.abs() < 1e-17 {
                    break;
                }
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc(a) = e^{-a²}/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + ...))))
            let mut f = a;
            for k in (1..60).rev() {
                f = a + (k as f64 / 2.0) / f;
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
        };
        v.copysign(z)
    }

    #[test]
    fn reductions_match_naive() {
        for n in [0usize, 1, 7, 8, 9, 31, 33, 384] {
            let a: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.25)
                .collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.5).collect();
            let naive_sum: f32 = a.iter().sum();
            let naive_dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let naive_max = a.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert!((sum(&a) - naive_sum).abs() < 1e-5);
            assert!((dot(&a, &b) - naive_dot).abs() < 1e-5);
            assert_eq!(max(&a), naive_max);
        }
    }

    #[test]
    fn exp_matches_f64() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let got = exp(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.013;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn erfc_matches_reference() {
        let mut worst = 0.0f64;
        let mut z = -6.0f32;
        while z < 6.0 {
            let got = erfc_abs(z) as f64;
            let want = 1.0 - erf_ref(z.abs() as f64);
            worst = worst.max((got - want).abs());
            z += 0.0007;
        }
        assert!(worst < 5e-7, "worst absolute error {worst}");
    }

    #[test]
    fn gelu_matches_reference() {
        let mut worst = 0.0f64;
        let mut x = -12.0f32;
        while x < 12.0 {
            let xd = x as f64;
            let want = 0.5 * xd * (1.0 + erf_ref(xd / std::f64::consts::SQRT_2));
            let got = gelu_erf(x) as f64;
            worst = worst.max((got - want).abs() / (1.0 + xd.abs()));
            x += 0.001;
        }
        assert!(worst < 2e-7, "worst scaled error {worst}");
    }
}
