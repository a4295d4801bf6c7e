//! Helpers shared by the fast encoder's tests: deterministic random data and
//! conversions to candle tensors for the reference computations.

use candle_core::{Device, Tensor};

/// The dense products of an all-MiniLM-L6-v2 layer (hidden 384,
/// intermediate 1,536) at a batch's ~900 tokens — QKV, feed-forward up
/// and down, attention output — and the feed-forward up at a lone
/// sentence's 30: the timing tests' shapes, `(m, k, n)`.
pub(super) const BERT_SHAPES: [(usize, usize, usize); 5] = [
    (900, 384, 1152),
    (900, 384, 1536),
    (900, 1536, 384),
    (900, 384, 384),
    (30, 384, 1536),
];

/// `n` pseudo-random values in `[-1, 1)` from a fixed seed (xorshift64*).
pub(super) fn random_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let v = s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            (v as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A `[rows, cols]` candle tensor on the CPU.
pub(super) fn candle_mat(v: &[f32], rows: usize, cols: usize) -> Tensor {
    Tensor::from_slice(v, (rows, cols), &Device::Cpu).unwrap()
}

/// Largest absolute element-wise difference.
pub(super) fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
