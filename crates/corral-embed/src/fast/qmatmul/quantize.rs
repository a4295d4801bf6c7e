//! Activations quantised per row (token) on the fly: [`QuantizedRows`],
//! the number of levels a row gets ([`activation_levels`]) and the row
//! passes (min/max, then the levels).

/// Activations quantised per row: `x[i, p] ≈ scales[i]·q[i, p] +
/// offsets[i]`, `q` within ± half of [`activation_levels`]; reused across layers and batches.
#[derive(Debug, Default, Clone)]
pub(crate) struct QuantizedRows {
    pub(super) q: Vec<i16>,
    pub(super) scales: Vec<f32>,
    pub(super) offsets: Vec<f32>,
    /// One smoothed input row.
    row: Vec<f32>,
    pub(super) rows: usize,
    pub(super) kp: usize,
    /// Whether `q` holds unsigned 8-bit levels (`0..=255`, offset = the
    /// row's minimum) rather than levels centred on zero.
    pub(super) unsigned: bool,
    /// `q` as bytes, rows of `kq` (`kp` rounded up to 4, zero-padded), for
    /// the `u8 × s8` kernel; filled by [`QuantizedRows::fill_u8`].
    pub(super) q8: Vec<u8>,
    pub(super) kq: usize,
}

impl QuantizedRows {
    /// Quantises `x` (`[m, k]` row-major), each row over its own
    /// `[min, max]` in [`activation_levels`]`(k)` levels.
    #[cfg(test)]
    pub(crate) fn quantize(&mut self, x: &[f32], m: usize, k: usize) {
        self.quantize_scaled(x, m, k, None, u32::MAX);
    }

    /// Quantises `x` (`[m, k]` row-major), each row over its own
    /// `[min, max]` in [`activation_levels`]`(k)` levels, multiplying input
    /// channel `p` by `col_scale[p]` first when given, in at most
    /// `max_levels` levels.
    pub(crate) fn quantize_scaled(
        &mut self,
        x: &[f32],
        m: usize,
        k: usize,
        col_scale: Option<&[f32]>,
        max_levels: u32,
    ) {
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
        let levels = activation_levels(k).min(max_levels);
        // 8-bit levels are kept unsigned (0..=255 above the row's minimum),
        // the operand `vpdpbusd` takes, while the sums stay exact.
        self.unsigned = levels <= 256 && (kp as u64) * 255 * 127 < 1 << 31;
        let unsigned = self.unsigned;
        for i in 0..m {
            let row = &x[i * k..(i + 1) * k];
            let dst = &mut self.q[i * kp..(i + 1) * kp];
            (self.scales[i], self.offsets[i]) = match col_scale {
                None => quantize_row(row, dst, levels, unsigned),
                Some(f) => {
                    self.row.clear();
                    self.row.extend(row.iter().zip(f).map(|(v, f)| v * f));
                    quantize_row(&self.row, dst, levels, unsigned)
                }
            };
        }
    }

    /// Copies the unsigned 8-bit levels into `q8` (rows of `kq`, `kp`
    /// rounded up to 4, the tail zero) for the `u8 × s8` kernel.
    pub(super) fn fill_u8(&mut self) {
        assert!(self.unsigned, "8-bit unsigned rows");
        let (kp, kq) = (self.kp, self.kp.next_multiple_of(4));
        self.kq = kq;
        self.q8.clear();
        self.q8.resize(self.rows * kq, 0);
        for (src, dst) in self.q[..self.rows * kp]
            .chunks_exact(kp)
            .zip(self.q8.chunks_exact_mut(kq))
        {
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = v as u8;
            }
        }
    }

    /// The dequantised input `x̂[i, p]`.
    #[cfg(test)]
    pub(crate) fn dequantized(&self, i: usize, p: usize) -> f32 {
        self.q[i * self.kp + p] as f32 * self.scales[i] + self.offsets[i]
    }

    /// The scale of row `i`.
    #[cfg(test)]
    pub(crate) fn scale(&self, i: usize) -> f32 {
        self.scales[i]
    }
}

/// The most activation levels per row: 4,096 (12 bits).
pub(crate) const MAX_ACTIVATION_LEVELS: u32 = 4096;

/// How many levels a row of `k` activations is quantised to: the most, up
/// to [`MAX_ACTIVATION_LEVELS`], for which the kernel's `i32` sums stay
/// exact (`k·(levels/2)·127 < 2³¹`; 4,096 up to `k` = 8,256, never under
/// 256 for any `k` below 132,000).
pub(crate) fn activation_levels(k: usize) -> u32 {
    let kp = (k + (k & 1)).max(2) as u64;
    let mut half = u64::from(MAX_ACTIVATION_LEVELS / 2);
    while half > 128 && kp * half * 127 >= 1 << 31 {
        half /= 2;
    }
    (2 * half) as u32
}

/// Quantises `row` into `dst` (one longer when `row`'s length is odd; the
/// extra value is 0, i.e. it contributes nothing) over `levels` levels and
/// returns the scale and offset: `row[p] ≈ scale·dst[p] + offset`. Levels
/// are centred on zero, or, when `unsigned`, `0..levels` above the minimum.
fn quantize_row(row: &[f32], dst: &mut [i16], levels: u32, unsigned: bool) -> (f32, f32) {
    let (lo, hi) = min_max(row);
    let top = (levels - 1) as f32;
    let half = if unsigned { 0.0 } else { (levels / 2) as f32 };
    let scale = if hi > lo { (hi - lo) / top } else { 1.0 };
    // Level 0 of 0..levels is `lo`; stored shifted by -levels/2.
    let offset = lo + half * scale;
    quantize_with(row, lo, 1.0 / scale, top, half as i16, dst);
    (scale, offset)
}

/// The smallest and largest values of `row` (0 and 0 when empty; a NaN is
/// skipped).
pub(super) fn min_max(row: &[f32]) -> (f32, f32) {
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
pub(super) fn min_max_portable(row: &[f32]) -> (f32, f32) {
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
