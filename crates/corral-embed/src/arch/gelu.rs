//! Exact (erf) GELU on the CPU in plain arithmetic the compiler can
//! vectorise. candle's `gelu_erf` calls a scalar `erf` per element, which
//! cost about a fifth of MPNet's forward on one thread.
//!
//! `erf` here is Abramowitz & Stegun's formula 7.1.26 (absolute error
//! under 1.5e-7), with `exp` by range reduction to `2^n · e^r`,
//! `|r| ≤ ln 2 / 2`, and a degree-7 Taylor polynomial for `e^r` (relative
//! error about 2e-8 before rounding).

use candle_core::{DType, Tensor};

use crate::fast::math::{ERFC_P, EXP_TAYLOR, LN2_HI, LN2_LO, LOG2_E, ROUND_MAGIC};

/// `e^x` for `x` in `[-87, 0]` (what `erf` asks for); below, it clamps.
/// The fast engine's range reduction and Taylor coefficients
/// ([`crate::fast::math`]), without fused multiply-adds: this path is not
/// compiled per CPU feature, and a fused multiply-add without FMA would be
/// a libm call.
fn exp_nonpositive(x: f32) -> f32 {
    let x = x.clamp(-87.0, 0.0);
    let n = (x * LOG2_E + ROUND_MAGIC) - ROUND_MAGIC;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    for c in EXP_TAYLOR {
        p = p * r + c;
    }
    // 2^n by its exponent bits; n ≥ -126 for x ≥ -87.
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

/// `erf(x)` within 1.5e-7 (absolute) plus rounding.
pub(crate) fn erf(x: f32) -> f32 {
    // The handbook's digits, kept as published (two of them round to
    // another `f32` than the fast engine's `ERFC_A`; both are within the
    // formula's error).
    #[allow(clippy::excessive_precision)]
    const A: [f32; 5] = [
        0.254_829_592,
        -0.284_496_736,
        1.421_413_741,
        -1.453_152_027,
        1.061_405_429,
    ];
    let a = x.abs();
    let t = 1.0 / (1.0 + ERFC_P * a);
    let mut poly = A[4];
    for c in [A[3], A[2], A[1], A[0]] {
        poly = poly * t + c;
    }
    let y = 1.0 - poly * t * exp_nonpositive(-a * a);
    y.copysign(x)
}

/// `x · Φ(x)` = `x/2 · (1 + erf(x/√2))` in place.
pub(crate) fn gelu_erf_in_place(xs: &mut [f32]) {
    for x in xs {
        *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// Exact GELU of an f32 tensor on the CPU (any other dtype goes through
/// candle's `gelu_erf`).
///
/// # Errors
/// candle's.
pub(crate) fn gelu_erf(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.dtype() != DType::F32 || !x.device().is_cpu() {
        return x.gelu_erf();
    }
    let mut v = x.flatten_all()?.to_vec1::<f32>()?;
    gelu_erf_in_place(&mut v);
    Tensor::from_vec(v, x.shape(), x.device())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_matches_candles_scalar_erf() {
        let xs: Vec<f32> = (-12_000..=12_000).map(|i| i as f32 * 1e-3).collect();
        let want = Tensor::new(xs.as_slice(), &candle_core::Device::Cpu)
            .unwrap()
            .gelu_erf()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut got = xs.clone();
        gelu_erf_in_place(&mut got);
        for ((x, g), w) in xs.iter().zip(&got).zip(&want) {
            // erf within 1.5e-7 plus its rounding, times x/2; a few ulps more.
            let tol = 2e-7 * x.abs() + 4.0 * f32::EPSILON * w.abs().max(1e-6);
            assert!((g - w).abs() <= tol, "gelu({x}) = {g}, want {w}");
        }
    }

    #[test]
    fn erf_is_odd_and_saturates() {
        for x in [0.1f32, 0.5, 1.0, 2.0, 3.5] {
            assert_eq!(erf(-x), -erf(x));
        }
        assert_eq!(erf(0.0), 0.0);
        assert!((erf(10.0) - 1.0).abs() < 1e-7);
        assert!((erf(f32::MAX) - 1.0).abs() < 1e-7);
    }
}
