//! Activations quantised per row (token) on the fly: [`QuantizedRows`],
//! the number of levels a row gets ([`activation_levels`],
//! [`wide_levels`]) and the row passes (min/max, then the levels).
//!
//! # Wide rows
//! A layer whose activations take 8 bits (256 levels per row, for
//! `vpdpbusd`) gives a row more levels when 256 would be too coarse for
//! it: when its range exceeds `wide_above` times its standard deviation —
//! the mark of a few outlier channels (a `[SEP]` or `.` token's), which
//! take the range and leave the rest of the row a handful of levels. Such a
//! *wide* row is quantised unsigned to [`wide_levels`] (4,096 for BERT's
//! widths) and, for the `u8 × s8` kernel, split into two byte rows:
//! `q = 2^b·hi + lo` with `hi = q >> b` (`0..=255`) and `lo` the low `b`
//! bits. The product multiplies `hi` in the main pass and `lo` in a small
//! pass of the wide rows alone, and the output step takes
//! `(Σ hi·w << b) + Σ lo·w`, which is `Σ q·w` exactly: a wide row costs two
//! byte rows and gets the 12-bit precision, and the other kernels, which
//! multiply `q` itself in 16-bit lanes, give the same bits.

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
    /// Per row, its index among the wide rows, or [`NARROW`].
    pub(super) wide_slot: Vec<u32>,
    /// The wide rows, ascending.
    pub(super) wide: Vec<u32>,
    /// `b`: a wide row's levels are `256·2^b`.
    pub(super) wide_shift: u32,
    /// The low `b` bits of each wide row's levels, rows of `kq`, filled by
    /// [`QuantizedRows::fill_u8`].
    pub(super) lo8: Vec<u8>,
    /// The wide rows' `Σ lo·w` per output column (rows of the layer's
    /// padded width), filled by the product before its main pass.
    pub(super) lo_sums: Vec<i32>,
}

/// [`QuantizedRows::wide_slot`] of a row that is not wide.
pub(super) const NARROW: u32 = u32::MAX;

impl QuantizedRows {
    /// Quantises `x` (`[m, k]` row-major), each row over its own
    /// `[min, max]` in [`activation_levels`]`(k)` levels.
    #[cfg(test)]
    pub(crate) fn quantize(&mut self, x: &[f32], m: usize, k: usize) {
        self.quantize_scaled(x, m, k, None, u32::MAX, f32::INFINITY);
    }

    /// Quantises `x` (`[m, k]` row-major), each row over its own
    /// `[min, max]` in [`activation_levels`]`(k)` levels, multiplying input
    /// channel `p` by `col_scale[p]` first when given, in at most
    /// `max_levels` levels. When that makes the rows 8-bit, a row whose
    /// range exceeds `wide_above` standard deviations is a wide row (see
    /// the module docs) where [`wide_levels`]`(k)` allows one.
    pub(crate) fn quantize_scaled(
        &mut self,
        x: &[f32],
        m: usize,
        k: usize,
        col_scale: Option<&[f32]>,
        max_levels: u32,
        wide_above: f32,
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
        let wide_levels = wide_levels(k).filter(|_| unsigned && wide_above.is_finite());
        self.wide_shift = wide_levels.map_or(0, |l| (l / 256).trailing_zeros());
        self.wide.clear();
        self.wide_slot.clear();
        self.wide_slot.resize(m, NARROW);
        for i in 0..m {
            let row = &x[i * k..(i + 1) * k];
            let dst = &mut self.q[i * kp..(i + 1) * kp];
            let row = match col_scale {
                None => row,
                Some(f) => {
                    self.row.clear();
                    self.row.extend(row.iter().zip(f).map(|(v, f)| v * f));
                    &self.row
                }
            };
            let (lo, hi) = min_max(row);
            let mut row_levels = levels;
            if let Some(wide) = wide_levels {
                if is_wide(row, lo, hi, wide_above) {
                    self.wide_slot[i] = self.wide.len() as u32;
                    self.wide.push(i as u32);
                    row_levels = wide;
                }
            }
            (self.scales[i], self.offsets[i]) =
                quantize_row(row, lo, hi, dst, row_levels, unsigned);
        }
    }

    /// Copies the unsigned 8-bit levels into `q8` (rows of `kq`, `kp`
    /// rounded up to 4, the tail zero) for the `u8 × s8` kernel.
    /// A wide row's high bits go to `q8` and its low `b` bits to a row of
    /// `lo8` (see the module docs).
    pub(super) fn fill_u8(&mut self) {
        assert!(self.unsigned, "8-bit unsigned rows");
        let (kp, kq) = (self.kp, self.kp.next_multiple_of(4));
        self.kq = kq;
        self.q8.clear();
        self.q8.resize(self.rows * kq, 0);
        self.lo8.clear();
        self.lo8.resize(self.wide.len() * kq, 0);
        let b = self.wide_shift;
        for (i, (src, dst)) in self.q[..self.rows * kp]
            .chunks_exact(kp)
            .zip(self.q8.chunks_exact_mut(kq))
            .enumerate()
        {
            match self.wide_slot[i] {
                NARROW => to_bytes(src, dst),
                slot => {
                    let lo = &mut self.lo8[slot as usize * kq..(slot as usize + 1) * kq];
                    split_bytes(src, dst, lo, b);
                }
            }
        }
    }

    /// How many rows are wide (see the module docs).
    #[cfg(test)]
    pub(crate) fn wide_rows(&self) -> usize {
        self.wide.len()
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

/// How many levels a wide row of `k` activations gets (see the module
/// docs): unsigned, at most 4,096, a power of two so that its high bits
/// are one byte, and few enough that `k·(levels − 1)·127 < 2³¹` keeps the
/// sums exact; `None` where that leaves fewer than 512 (no gain over 8
/// bits).
pub(crate) fn wide_levels(k: usize) -> Option<u32> {
    let kp = (k + (k & 1)).max(2) as u64;
    let mut levels = 4096u64;
    while levels >= 512 && kp * (levels - 1) * 127 >= 1 << 31 {
        levels /= 2;
    }
    (levels >= 512).then_some(levels as u32)
}

/// Whether `row` (its minimum `lo`, maximum `hi`) spans more than
/// `ratio` standard deviations: whether 256 levels' step, `(hi − lo)/255`,
/// is coarser than `ratio/255` of the row's deviation, the row's noise
/// relative to its signal. (One outlier stretches a row of `k` values to
/// at most about `√k` deviations.) The same plain arithmetic in every
/// build, so every kernel makes the same rows wide.
fn is_wide(row: &[f32], lo: f32, hi: f32, ratio: f32) -> bool {
    let n = row.len() as f32;
    let mut sums = [0.0; 2];
    moments(row, &mut sums);
    let mean = sums[0] / n;
    let var = sums[1] / n - mean * mean;
    var > 0.0 && (hi - lo) > ratio * var.sqrt()
}

multiversion! {
    /// `sums = [Σ row, Σ row²]`, each with eight lane accumulators in a
    /// fixed order (`math::sum`, `math::dot`), so every build gives the
    /// same bits — only the AVX2 one in a single vector register each.
    fn moments / moments_on(row: &[f32], sums: &mut [f32; 2]) {
        *sums = [super::super::math::sum(row), super::super::math::dot(row, row)];
    }
}

multiversion! {
    /// `dst[p] = src[p]` for unsigned 8-bit levels (`0..=255`); `dst`'s
    /// tail past `src` is left as it is.
    fn to_bytes / to_bytes_on(src: &[i16], dst: &mut [u8]) {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = v as u8;
        }
    }
}

multiversion! {
    /// A wide row's levels split into bytes: `hi[p] = src[p] >> b`,
    /// `lo[p]` its low `b` bits; the tails past `src` are left as they are.
    fn split_bytes / split_bytes_on(src: &[i16], hi: &mut [u8], lo: &mut [u8], b: u32) {
        let mask = (1u16 << b) - 1;
        for ((h, l), &v) in hi.iter_mut().zip(lo.iter_mut()).zip(src) {
            *h = (v as u16 >> b) as u8;
            *l = (v as u16 & mask) as u8;
        }
    }
}

/// Quantises `row` (its minimum `lo`, maximum `hi`) into `dst` (one longer
/// when `row`'s length is odd; the extra value is 0, i.e. it contributes
/// nothing) over `levels` levels and returns the scale and offset:
/// `row[p] ≈ scale·dst[p] + offset`. Levels are centred on zero, or, when
/// `unsigned`, `0..levels` above the minimum.
fn quantize_row(
    row: &[f32],
    lo: f32,
    hi: f32,
    dst: &mut [i16],
    levels: u32,
    unsigned: bool,
) -> (f32, f32) {
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
