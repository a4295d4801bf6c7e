//! Layer normalisation over the hidden dimension, fused with the bias add
//! that precedes it in BERT (`LayerNorm(x + bias)`, where `x` already holds
//! residual + matmul output): one read and one write of each row.
//!
//! This module owns [`LayerNorm`] (its parameters) and the fused kernel.

use super::math;

/// Parameters of one layer norm.
#[derive(Debug, Clone)]
pub(crate) struct LayerNorm {
    /// Scale (`weight`), `[hidden]`.
    pub(crate) gamma: Vec<f32>,
    /// Shift (`bias`), `[hidden]`.
    pub(crate) beta: Vec<f32>,
    /// Added to the variance.
    pub(crate) eps: f32,
}

impl LayerNorm {
    /// Normalises every row of `x` (`[rows, hidden]`) in place after adding
    /// `bias` (when given) to it: `y = (v - mean) / sqrt(var + eps) · γ + β`
    /// with `v = x + bias`, biased variance as in PyTorch.
    pub(crate) fn forward_in_place(&self, x: &mut [f32], bias: Option<&[f32]>) {
        let h = self.gamma.len();
        assert!(h > 0 && x.len().is_multiple_of(h), "rows are not whole");
        for row in x.chunks_exact_mut(h) {
            if let Some(b) = bias {
                for (v, b) in row.iter_mut().zip(b) {
                    *v += b;
                }
            }
            let mean = math::sum(row) / h as f32;
            let mut acc = [0.0f32; 8];
            let chunks = row.chunks_exact(8);
            let tail = chunks.remainder();
            for c in chunks {
                for l in 0..8 {
                    let d = c[l] - mean;
                    acc[l] += d * d;
                }
            }
            let mut ss = acc.iter().sum::<f32>();
            for &v in tail {
                ss += (v - mean) * (v - mean);
            }
            let rstd = 1.0 / (ss / h as f32 + self.eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
                *v = (*v - mean) * rstd * g + b;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{candle_mat, max_abs_diff, random_vec};
    use super::*;

    #[test]
    fn matches_candle_layer_norm_odd_sizes() {
        for &(rows, h) in &[(1, 1), (3, 7), (5, 33), (13, 384), (2, 1000)] {
            let x = random_vec(rows * h, 10 + h as u64);
            let bias = random_vec(h, 11);
            let gamma = random_vec(h, 12);
            let beta = random_vec(h, 13);
            for eps in [1e-12f32, 1e-5] {
                let ln = LayerNorm {
                    gamma: gamma.clone(),
                    beta: beta.clone(),
                    eps,
                };
                let mut got = x.clone();
                ln.forward_in_place(&mut got, Some(&bias));

                let b = candle_mat(&bias, 1, h);
                let v = candle_mat(&x, rows, h).broadcast_add(&b).unwrap();
                let cln = candle_nn::LayerNorm::new(
                    candle_mat(&gamma, 1, h).flatten_all().unwrap(),
                    candle_mat(&beta, 1, h).flatten_all().unwrap(),
                    eps as f64,
                );
                let want = candle_core::Module::forward(&cln, &v).unwrap();
                let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
                let d = max_abs_diff(&got, &want);
                // A single-element row normalises to exactly β.
                assert!(d < 1e-5, "rows={rows} h={h}: max diff {d}");
            }
        }
    }
}
