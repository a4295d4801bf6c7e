//! The load side of [`QLinear`]: quantising a PyTorch-layout weight per
//! output channel (optionally smoothed by a layer norm's parameters),
//! packing it for the 16-bit tile and, for 8-bit activations, again for
//! `vpdpbusd`; and the layer's activation-level choice.

use super::{QLinear, NR, QMAX, WIDE_ABOVE};

impl QLinear {
    /// As [`QLinear::from_torch`], with input channel `k` divided by
    /// `smooth[k]` before quantising and `W`'s column `k` multiplied by it.
    pub(crate) fn from_torch_smoothed(
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
    pub(crate) fn smoothing_for_norm(
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
    pub(crate) fn from_torch(w: &[f32], bias: Vec<f32>, n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight size");
        assert_eq!(bias.len(), n, "bias size");
        let kp = k + (k & 1);
        let panels = n.div_ceil(NR);
        let mut w_scale = vec![0.0f32; panels * NR];
        let mut w_sum = vec![0.0f32; panels * NR];
        // Quantised straight into the packed layout — panel p, step t:
        // [col 0 (k=2t, 2t+1), col 1 (…), …, col 15 (…)] — so column j's
        // value at k = p sits at ((panel·kp/2 + p/2)·NR + c)·2 + p%2.
        let mut packed = vec![0i16; panels * NR * kp];
        for (j, row) in w.chunks_exact(k.max(1)).take(n).enumerate() {
            let amax = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let scale = if amax > 0.0 { amax / QMAX } else { 1.0 };
            w_scale[j] = scale;
            let (panel, c) = (j / NR, j % NR);
            let dst = &mut packed[panel * NR * kp..(panel + 1) * NR * kp];
            let mut sum = 0i64;
            for (p, &v) in row.iter().enumerate() {
                let q = quantize_one(v, 1.0 / scale);
                dst[((p / 2) * NR + c) * 2 + (p & 1)] = q;
                sum += i64::from(q);
            }
            w_sum[j] = sum as f32 * scale;
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
            max_levels: u32::MAX,
            packed8: None,
            wide_above: f32::INFINITY,
        }
    }

    /// Caps the levels each input row is quantised to (256: 8-bit
    /// activations; the default is [`activation_levels`](super::quantize::activation_levels)'s 4,096).
    ///
    /// At 256 levels or fewer the rows are unsigned 8-bit values, and the
    /// weights are packed a second time for the `u8 × s8` product
    /// (`vpdpbusd`, four products per `i32` lane), which the AVX-512 VNNI
    /// kernels then run; the others multiply the same values in `i16`
    /// lanes, so every kernel still gives the same bits. Rows too coarse at
    /// 8 bits (a range above [`WIDE_ABOVE`] standard deviations) are wide
    /// rows, quantised finer (see `quantize`'s module docs).
    pub(crate) fn set_max_levels(&mut self, levels: u32) {
        self.max_levels = levels.max(2);
        self.packed8 = (self.max_levels <= 256).then(|| self.pack_u8());
        self.wide_above = if self.max_levels <= 256 {
            WIDE_ABOVE
        } else {
            f32::INFINITY
        };
    }

    /// Whether the activations are quantised to 8 bits (and the weights
    /// packed for `vpdpbusd`).
    #[cfg(test)]
    pub(crate) fn eight_bit(&self) -> bool {
        self.packed8.is_some()
    }

    /// The weights in the `vpdpbusd` layout (see `packed8`).
    fn pack_u8(&self) -> Vec<i8> {
        let (pairs, kq) = (self.kp / 2, self.kp.next_multiple_of(4));
        let panels = self.n.div_ceil(NR);
        let mut out = vec![0i8; panels * NR * kq];
        for panel in 0..panels {
            let src = &self.packed[panel * pairs * NR * 2..(panel + 1) * pairs * NR * 2];
            let dst = &mut out[panel * NR * kq..(panel + 1) * NR * kq];
            for p in 0..self.kp {
                for c in 0..NR {
                    let v = src[((p / 2) * NR + c) * 2 + (p & 1)];
                    dst[((p / 4) * NR + c) * 4 + (p & 3)] = v as i8;
                }
            }
        }
        out
    }

    /// The dequantised weight `ŵ[j, p]` the kernel multiplies by.
    #[cfg(test)]
    pub(crate) fn dequantized(&self, j: usize, p: usize) -> f32 {
        let (panel, c) = (j / NR, j % NR);
        let idx = ((panel * (self.kp / 2) + p / 2) * NR + c) * 2 + (p & 1);
        self.packed[idx] as f32 * self.w_scale[j]
    }
}

/// Quantises one value with the reciprocal of its scale: the nearest
/// integer (ties to even) within `±QMAX`. Rounds by adding and subtracting
/// 1.5·2²³, exact below 2²², rather than `f32::round`, which is a libm call
/// per weight on baseline x86-64 (a fifth of an int8 model's load time).
#[inline(always)]
fn quantize_one(v: f32, inv_scale: f32) -> i16 {
    const MAGIC: f32 = 12_582_912.0;
    let t = (v * inv_scale).clamp(-QMAX, QMAX);
    ((t + MAGIC) - MAGIC) as i16
}
