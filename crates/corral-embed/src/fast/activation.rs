//! The feed-forward activation, fused with the intermediate layer's bias:
//! `x ← gelu_erf(x + b)` in one pass over the `[rows, intermediate]` buffer,
//! with the vectorisable erf from [`super::math`] instead of libm's `erff`.
//!
//! This module owns that fused kernel.

use super::math;

multiversion! {
    /// `x[r, j] ← gelu_erf(x[r, j] + bias[j])` in place for every row.
    pub(crate) fn bias_gelu_in_place / bias_gelu_in_place_on(x: &mut [f32], bias: &[f32]) {
        let n = bias.len();
        assert!(n > 0 && x.len().is_multiple_of(n), "rows are not whole");
        for row in x.chunks_exact_mut(n) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v = math::gelu_erf(*v + b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{candle_mat, max_abs_diff, random_vec};
    use super::*;
    use crate::fast::Isa;

    #[test]
    fn matches_candle_gelu_erf_odd_sizes() {
        for &(rows, n) in &[(1, 1), (3, 7), (7, 129), (9, 1536)] {
            // Spread inputs over [-8, 8] to cover both tails.
            let x: Vec<f32> = random_vec(rows * n, 20 + n as u64)
                .iter()
                .map(|v| v * 8.0)
                .collect();
            let bias = random_vec(n, 21);
            let mut got = x.clone();
            bias_gelu_in_place_on(Isa::BASELINE, &mut got, &bias);
            #[cfg(target_arch = "x86_64")]
            {
                let avx2 = Isa::avx2().expect("this test needs an AVX2 + FMA CPU");
                let mut got_avx2 = x.clone();
                bias_gelu_in_place_on(avx2, &mut got_avx2, &bias);
                assert_eq!(got, got_avx2, "same code, same results");
            }
            let want = candle_mat(&x, rows, n)
                .broadcast_add(&candle_mat(&bias, 1, n))
                .unwrap()
                .gelu_erf()
                .unwrap();
            let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
            let d = max_abs_diff(&got, &want);
            assert!(d < 1e-5, "rows={rows} n={n}: max diff {d}");
        }
    }
}
