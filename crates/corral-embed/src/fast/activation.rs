//! The feed-forward activation, fused with the intermediate layer's bias:
//! `x ← gelu_erf(x + b)` in one pass over the `[rows, intermediate]` buffer,
//! with the vectorisable erf from [`super::math`] instead of libm's `erff`.
//!
//! The AVX2 build (which the AVX-512 VNNI builds share) runs
//! [`math::gelu_erf`]'s steps on 8 lanes with intrinsics — fused
//! multiply-adds where `gelu_erf` has `mul_add`, two vectors per step so
//! that their long dependency chains overlap — and so gives its bits. The
//! portable build runs [`math::gelu_erf_portable`] per element: the same
//! bits where the target fuses multiply-adds in hardware, within a few
//! units in the last place where it does not (baseline x86-64, where a
//! fused step would be a libm call). A profile of an int8 run had found the
//! auto-vectorised loop (without fused multiply-adds: LLVM does not
//! contract `a * b + c` written in Rust) at a tenth of the whole.
//!
//! This module owns that fused kernel.

use super::math;
use super::Isa;

/// `x[r, j] ← gelu_erf(x[r, j] + bias[j])` in place for every row.
pub(crate) fn bias_gelu_in_place(x: &mut [f32], bias: &[f32]) {
    bias_gelu_in_place_on(Isa::current(), x, bias)
}

/// The same, by the kernel build `isa` selects.
pub(crate) fn bias_gelu_in_place_on(isa: Isa, x: &mut [f32], bias: &[f32]) {
    let n = bias.len();
    assert!(n > 0 && x.len().is_multiple_of(n), "rows are not whole");
    #[cfg(target_arch = "x86_64")]
    if isa.is_avx2() {
        for row in x.chunks_exact_mut(n) {
            // SAFETY: an AVX2 `Isa` exists only once the CPU was found to
            // support AVX2 and FMA, the only precondition of the call.
            #[allow(unsafe_code)]
            unsafe {
                avx2::bias_gelu_row(row, bias)
            };
        }
        return;
    }
    let _ = isa;
    for row in x.chunks_exact_mut(n) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v = math::gelu_erf_portable(*v + b);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use std::arch::x86_64::*;

    use super::math;

    use super::math::{ERFC_A, ERFC_P, EXP_TAYLOR, LN2_HI, LN2_LO, LOG2_E, ROUND_MAGIC};

    /// `gelu_erf(x)` on 8 lanes: [`math::gelu_erf`] with fused
    /// multiply-adds.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn gelu8(x: __m256) -> __m256 {
        let z = _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
        let a = _mm256_andnot_ps(_mm256_set1_ps(-0.0), z);
        let one = _mm256_set1_ps(1.0);
        let t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(ERFC_P), a, one));
        let mut poly = _mm256_set1_ps(ERFC_A[4]);
        for &c in ERFC_A[..4].iter().rev() {
            poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(c));
        }
        poly = _mm256_mul_ps(poly, t);
        // e^{-a²}, as `math::exp` (the argument is never positive).
        let u = _mm256_max_ps(
            _mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), a), a),
            _mm256_set1_ps(-87.0),
        );
        let magic = _mm256_set1_ps(ROUND_MAGIC);
        let tn = _mm256_fmadd_ps(u, _mm256_set1_ps(LOG2_E), magic);
        let n = _mm256_sub_ps(tn, magic);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), u);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_set1_ps(1.0 / 5040.0);
        for c in EXP_TAYLOR {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let n_bits = _mm256_sub_epi32(_mm256_castps_si256(tn), _mm256_castps_si256(magic));
        let scale = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            n_bits,
            _mm256_set1_epi32(127),
        )));
        let c = _mm256_mul_ps(poly, _mm256_mul_ps(p, scale));
        // 1 + erf(z): 2 − erfc(|z|) for x ≥ 0, erfc(|z|) below.
        let nonneg = _mm256_cmp_ps::<_CMP_GE_OQ>(x, _mm256_setzero_ps());
        let one_plus_erf = _mm256_blendv_ps(c, _mm256_sub_ps(_mm256_set1_ps(2.0), c), nonneg);
        _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5), x), one_plus_erf)
    }

    /// `row[j] ← gelu_erf(row[j] + bias[j])`: two vectors a step, then
    /// one, then the scalar function for the last few.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn bias_gelu_row(row: &mut [f32], bias: &[f32]) {
        assert_eq!(row.len(), bias.len(), "row width");
        let len = row.len();
        let (x, b) = (row.as_mut_ptr(), bias.as_ptr());
        let mut j = 0;
        while j + 16 <= len {
            // SAFETY: `j + 16 ≤ len`, and `row` and `bias` both have `len`
            // elements, `row` exclusively borrowed; `loadu` and `storeu`
            // have no alignment requirement.
            unsafe {
                let v0 = _mm256_add_ps(_mm256_loadu_ps(x.add(j)), _mm256_loadu_ps(b.add(j)));
                let v1 =
                    _mm256_add_ps(_mm256_loadu_ps(x.add(j + 8)), _mm256_loadu_ps(b.add(j + 8)));
                _mm256_storeu_ps(x.add(j), gelu8(v0));
                _mm256_storeu_ps(x.add(j + 8), gelu8(v1));
            }
            j += 16;
        }
        while j + 8 <= len {
            // SAFETY: as above, with `j + 8 ≤ len`.
            unsafe {
                let v = _mm256_add_ps(_mm256_loadu_ps(x.add(j)), _mm256_loadu_ps(b.add(j)));
                _mm256_storeu_ps(x.add(j), gelu8(v));
            }
            j += 8;
        }
        for (v, b) in row[j..].iter_mut().zip(&bias[j..]) {
            *v = math::gelu_erf(*v + b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{candle_mat, max_abs_diff, random_vec};
    use super::*;
    use crate::fast::Isa;

    /// Every build within 1e-5 of candle's GELU (erf) over both tails,
    /// odd widths included (the AVX2 build's scalar tail too); every SIMD
    /// build bit for bit [`math::gelu_erf`], and the portable build too
    /// where it fuses multiply-adds, within 2e-6 of it where it does not.
    #[test]
    fn matches_candle_gelu_erf_odd_sizes() {
        for &(rows, n) in &[(1, 1), (3, 7), (7, 129), (9, 1536), (2, 23)] {
            // Spread inputs over [-8, 8] to cover both tails.
            let x: Vec<f32> = random_vec(rows * n, 20 + n as u64)
                .iter()
                .map(|v| v * 8.0)
                .collect();
            let bias = random_vec(n, 21);
            let want = candle_mat(&x, rows, n)
                .broadcast_add(&candle_mat(&bias, 1, n))
                .unwrap()
                .gelu_erf()
                .unwrap();
            let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
            let fused: Vec<f32> = x
                .chunks_exact(n)
                .flat_map(|row| row.iter().zip(&bias).map(|(v, b)| math::gelu_erf(v + b)))
                .collect();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
            for isa in Isa::available() {
                let mut got = x.clone();
                bias_gelu_in_place_on(isa, &mut got, &bias);
                let d = max_abs_diff(&got, &want);
                assert!(d < 1e-5, "{} rows={rows} n={n}: max diff {d}", isa.name());
                if isa != Isa::BASELINE || PORTABLE_FUSES {
                    assert_eq!(bits(&got), bits(&fused), "{} vs gelu_erf", isa.name());
                } else {
                    let d = max_abs_diff(&got, &fused);
                    assert!(d <= 2e-6, "portable vs gelu_erf: {d}");
                }
            }
        }
    }

    /// Whether the portable build fuses multiply-adds (see
    /// [`math::gelu_erf_portable`]).
    const PORTABLE_FUSES: bool = cfg!(any(target_feature = "fma", target_arch = "aarch64"));

    /// The portable build without fused multiply-adds is the fast one:
    /// plain arithmetic, not a libm call per step. Planted `mul_add` in
    /// its place, this takes some forty times as long.
    #[test]
    fn portable_gelu_without_fma_rounds_apart() {
        let x: Vec<f32> = (0..2000).map(|i| -10.0 + 0.01 * i as f32).collect();
        for &v in &x {
            let (apart, fused) = (math::gelu_erf_unfused(v), math::gelu_erf(v));
            assert!((apart - fused).abs() <= 2e-6 * (1.0 + v.abs()), "x={v}");
            if !PORTABLE_FUSES {
                assert_eq!(math::gelu_erf_portable(v).to_bits(), apart.to_bits());
            }
        }
    }

    /// The AVX2 kernel on the inputs where GELU is hardest: exactly 0, the
    /// erf switch's neighbours, the exp clamp (|x| ≥ 13.2) and beyond:
    /// [`math::gelu_erf`]'s bits.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_matches_portable_at_the_edges() {
        let Some(avx2) = Isa::avx2() else {
            eprintln!("no AVX2 here: nothing to compare");
            return;
        };
        let x: Vec<f32> = [
            0.0, -0.0, 1e-30, -1e-30, 1e-7, -1e-7, 0.5, -0.5, 3.0, -3.0, 13.0, -13.0, 13.2, -13.2,
            20.0, -20.0, 1e4, -1e4, 3e38, -3e38,
        ]
        .into_iter()
        .chain((0..300).map(|i| -15.0 + 0.1 * i as f32))
        .collect();
        let bias = vec![0.0; x.len()];
        let mut b = x.clone();
        bias_gelu_in_place_on(avx2, &mut b, &bias);
        for (&x, &b) in x.iter().zip(&b) {
            // The kernel adds the bias first (−0 + 0 is +0).
            let a = math::gelu_erf(x + 0.0);
            assert_eq!(a.to_bits(), b.to_bits(), "x={x}: gelu_erf {a}, avx2 {b}");
        }
    }
}
