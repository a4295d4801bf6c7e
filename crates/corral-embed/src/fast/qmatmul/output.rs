//! The product's output side: [`Block`] (one job's rows and panels),
//! [`OutRows`] (the output rows several jobs write at once), and the
//! output step that turns a tile's exact `i32` sums into `f32` (scales,
//! the offset's term, the residual when accumulating).

use super::{MR, NR};

/// One job of a product: rows `first..first + count` of the quantised
/// input, the weight panels `panels`, written into `out`.
pub(super) struct Block {
    pub(super) first: usize,
    pub(super) count: usize,
    pub(super) panels: std::ops::Range<usize>,
    pub(super) out: OutRows,
}

/// Output rows (`n` values each) that several jobs of one product write at
/// once, each its own rows or its own columns: a raw view, so that jobs
/// splitting the columns of the same rows never hold overlapping `&mut`
/// slices. Made from a `&mut [f32]` the product holds for as long as its
/// jobs run.
#[derive(Clone, Copy)]
pub(super) struct OutRows {
    ptr: *mut f32,
    len: usize,
    pub(super) n: usize,
}

// SAFETY: an `OutRows` is only a view of a buffer borrowed mutably for the
// duration of one product; its jobs write disjoint elements of it (see
// `OutRows::tile_at`), so sharing it between the product's threads is sound.
#[allow(unsafe_code)]
unsafe impl Send for OutRows {}
// SAFETY: as for `Send`: shared between one product's jobs, which write
// disjoint elements.
#[allow(unsafe_code)]
unsafe impl Sync for OutRows {}

impl OutRows {
    /// A view of `out`, rows of `n`.
    pub(super) fn new(out: &mut [f32], n: usize) -> Self {
        Self {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            n,
        }
    }

    /// Whole rows in the view.
    pub(super) fn rows(&self) -> usize {
        self.len / self.n.max(1)
    }

    /// Where row `r`'s column `c` is (for prefetching: never dereferenced
    /// here).
    pub(super) fn at(&self, r: usize, c: usize) -> *const f32 {
        self.ptr.wrapping_add(r * self.n + c)
    }

    /// Where row `r`'s column `c` is, for `rows` rows of `cols` columns
    /// from there (stride `n`), checked against the view's bounds. Writing
    /// through it is the caller's to make exclusive: callers give each job
    /// of a product its own rows or its own columns.
    pub(super) fn tile_at(&self, r: usize, c: usize, rows: usize, cols: usize) -> *mut f32 {
        assert!(
            rows >= 1 && c + cols <= self.n && (r + rows - 1) * self.n + c + cols <= self.len,
            "output bounds"
        );
        self.ptr.wrapping_add(r * self.n + c)
    }
}

/// Asks the CPU to bring the cache line holding `p` into L1 (a hint: it
/// never faults, whatever `p` is; a no-op off x86-64).
#[inline(always)]
pub(super) fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of x86-64's baseline, the only precondition;
        // a prefetch reads nothing the program can see and cannot fault.
        #[allow(unsafe_code)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p.cast())
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// What a tile's output step ([`finish_rows`], or the one fused into
/// `Kernel::tile_u8_out`) needs beside the tile's sums: its rows' factors,
/// its panel's columns' factors, and where its outputs go.
pub(super) struct TileStep<'a> {
    /// Per tile row, its activation scale.
    pub(super) sa: &'a [f32],
    /// Per tile row, its offset.
    pub(super) off: &'a [f32],
    /// Per tile row, its index among the wide rows, or `quantize::NARROW`.
    pub(super) slot: &'a [u32],
    /// The wide rows' low sums, rows of `lo_width` (see
    /// `QLinear::wide_low_sums`).
    pub(super) lo_sums: &'a [i32],
    /// The width of a row of `lo_sums`: the layer's padded width.
    pub(super) lo_width: usize,
    /// How far a wide row's high sums shift left before its low sums add.
    pub(super) shift: u32,
    /// Per panel column, its weight scale.
    pub(super) sw: &'a [f32; NR],
    /// Per panel column, `Σ_k ŵ[j, k]`.
    pub(super) ws: &'a [f32; NR],
    /// Whether the outputs are added to (else overwritten).
    pub(super) accumulate: bool,
    /// The product's output rows.
    pub(super) out: OutRows,
    /// The output row of the tile's first row.
    pub(super) row: usize,
    /// The output column of the panel's first column.
    pub(super) col: usize,
    /// The panel's columns (at most [`NR`]; fewer in a last, partial panel).
    pub(super) cols: usize,
}

impl TileStep<'_> {
    /// Tile row `r`'s low sums for this panel if it is a wide row (its
    /// tile sums are then its high bits').
    #[inline(always)]
    pub(super) fn lo(&self, r: usize) -> Option<&[i32; NR]> {
        let slot = self.slot[r];
        (slot != super::quantize::NARROW).then(|| {
            let at = slot as usize * self.lo_width + self.col;
            <&[i32; NR]>::try_from(&self.lo_sums[at..at + NR]).expect("a panel's low sums")
        })
    }
}

/// The output step of a tile already summed, `mr` rows of it: per row, a
/// wide row's high sums shifted left by `step.shift` and its low sums added
/// (wrapping, as the kernels' `i32` lanes do), then [`output_row`]. Every
/// kernel's step on the `i16` path, and the reference the fused `u8`
/// kernels (`Kernel::tile_u8_out`) must equal bit for bit.
///
/// # Safety
/// No other live reference covers the tile's outputs (`step.out`'s `mr`
/// rows from `step.row`, `step.cols` columns from `step.col`; their bounds
/// are checked here).
#[inline(always)]
#[allow(unsafe_code)]
pub(super) unsafe fn finish_rows(tile: &[[i32; NR]; MR], mr: usize, step: &TileStep<'_>) {
    let o = step.out.tile_at(step.row, step.col, mr, step.cols);
    for (r, acc) in tile.iter().enumerate().take(mr) {
        let mut acc = *acc;
        if let Some(lo) = step.lo(r) {
            for (a, &l) in acc.iter_mut().zip(lo) {
                *a = (*a << step.shift).wrapping_add(l);
            }
        }
        // SAFETY: row `r < mr` of the tile `tile_at` checked, exclusive by
        // the caller's contract.
        let out = unsafe { std::slice::from_raw_parts_mut(o.add(r * step.out.n), step.cols) };
        output_row(
            &acc,
            step.sa[r],
            step.off[r],
            step.sw,
            step.ws,
            out,
            step.accumulate,
        );
    }
}

/// `o[j] (+)= acc[j]·sa·sw[j] + off·wsum[j]` for `j < o.len()`: the
/// kernel's output step for one tile row. No fused multiply-add, so every
/// build gives the same bits.
#[inline(always)]
fn output_row(
    acc: &[i32],
    sa: f32,
    off: f32,
    sw: &[f32],
    wsum: &[f32],
    o: &mut [f32],
    accumulate: bool,
) {
    let cols = o.len();
    let (acc, sw, wsum) = (&acc[..cols], &sw[..cols], &wsum[..cols]);
    if accumulate {
        for j in 0..cols {
            o[j] += acc[j] as f32 * (sa * sw[j]) + off * wsum[j];
        }
    } else {
        for j in 0..cols {
            o[j] = acc[j] as f32 * (sa * sw[j]) + off * wsum[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::test_util::random_vec;
    use super::super::quantize::NARROW;
    use super::super::Kernel;
    use super::*;

    /// Every kernel's `u8` tile with its output step — the VNNI ones fused
    /// on their accumulators, the others through a tile in memory — gives
    /// [`finish_rows`]'s bits after the portable tile: every row count,
    /// whole and partial panels (either side of a 256-bit half), wide rows
    /// among narrow ones, overwriting and accumulating; and it writes
    /// nothing outside its rows and columns.
    #[test]
    fn every_fused_u8_tile_equals_the_tile_then_its_output_step() {
        let kernels = Kernel::available();
        // The panel is the second of a row of 40 outputs, from row 2.
        let (n, row, col): (usize, usize, usize) = (40, 2, NR);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        for quads in [1usize, 3, 96] {
            let lda = 4 * quads + 4;
            let to_byte = |v: f32| ((v + 1.0) * 127.9) as u8;
            let a: Vec<u8> = random_vec(MR * lda, 51).into_iter().map(to_byte).collect();
            let w: Vec<i8> = random_vec(quads * NR * 4, 52)
                .into_iter()
                .map(|v| (v * 127.0) as i8)
                .collect();
            let sa: Vec<f32> = random_vec(MR, 53).iter().map(|v| v.abs() * 0.01).collect();
            let off = random_vec(MR, 54);
            // Rows 1 and 4 wide (slots 1 and 0), the rest narrow.
            let slot: Vec<u32> = (0..MR as u32)
                .map(|r| match r {
                    1 => 1,
                    4 => 0,
                    _ => NARROW,
                })
                .collect();
            let lo_sums: Vec<i32> = random_vec(2 * n.next_multiple_of(NR), 55)
                .iter()
                .map(|v| (v * 1e6) as i32)
                .collect();
            let sw: [f32; NR] = random_vec(NR, 56).try_into().unwrap();
            let ws: [f32; NR] = random_vec(NR, 57).try_into().unwrap();
            let init = random_vec((row + MR) * n, 58);
            for mr in 1..=MR {
                for cols in [NR, 9, 8, 5, 1] {
                    for accumulate in [false, true] {
                        let run = |kernel: Kernel| {
                            let mut out = init.clone();
                            let step = TileStep {
                                sa: &sa[..mr],
                                off: &off[..mr],
                                slot: &slot[..mr],
                                lo_sums: &lo_sums,
                                lo_width: n.next_multiple_of(NR),
                                shift: 4,
                                sw: &sw,
                                ws: &ws,
                                accumulate,
                                out: OutRows::new(&mut out, n),
                                row,
                                col,
                                cols,
                            };
                            // SAFETY: `out` is this closure's own.
                            #[allow(unsafe_code)]
                            unsafe {
                                kernel.tile_u8_out(&a, lda, mr, &w, quads, &step)
                            };
                            out
                        };
                        let want = run(Kernel::Portable);
                        for &kernel in &kernels {
                            let got = run(kernel);
                            assert_eq!(
                                bits(&got),
                                bits(&want),
                                "{kernel:?} quads={quads} mr={mr} cols={cols} \
                                 accumulate={accumulate}"
                            );
                        }
                        // Outside the tile, `init` untouched; inside, changed.
                        for (i, (&g, &x)) in want.iter().zip(&init).enumerate() {
                            let (r, c) = (i / n, i % n);
                            let inside =
                                (row..row + mr).contains(&r) && (col..col + cols).contains(&c);
                            assert_eq!(g.to_bits() != x.to_bits(), inside, "({r},{c})");
                        }
                    }
                }
            }
        }
        eprintln!("fused u8 tiles ({kernels:?}): the tile then its output step, bit for bit");
    }

    /// [`finish_rows`] is the output step as the module states it: a wide
    /// row's sums `(high << b) + low`, then `acc·(s_a·s_w) + off·Σŵ`, added
    /// to the output when accumulating.
    #[test]
    fn finish_rows_is_the_stated_step() {
        let mut tile = [[0i32; NR]; MR];
        for (r, row) in tile.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = (r as i32 - 2) * 1000 + c as i32 * 37;
            }
        }
        let lo_sums: Vec<i32> = (0..NR as i32).map(|c| c * 3 - 7).collect();
        let (sa, off) = ([0.5f32, 0.25, 2.0], [1.0f32, -3.0, 0.0]);
        let slot = [NARROW, 0, NARROW];
        let sw: [f32; NR] = std::array::from_fn(|c| 0.01 * (c as f32 + 1.0));
        let ws: [f32; NR] = std::array::from_fn(|c| c as f32 - 8.0);
        for accumulate in [false, true] {
            let init: Vec<f32> = (0..3 * NR).map(|i| i as f32 * 0.5).collect();
            let mut out = init.clone();
            let step = TileStep {
                sa: &sa,
                off: &off,
                slot: &slot,
                lo_sums: &lo_sums,
                lo_width: NR,
                shift: 3,
                sw: &sw,
                ws: &ws,
                accumulate,
                out: OutRows::new(&mut out, NR),
                row: 0,
                col: 0,
                cols: NR,
            };
            // SAFETY: `out` is this test's own.
            #[allow(unsafe_code)]
            unsafe {
                finish_rows(&tile, 3, &step)
            };
            for r in 0..3 {
                for c in 0..NR {
                    let acc = match slot[r] {
                        NARROW => tile[r][c],
                        _ => (tile[r][c] << 3) + lo_sums[c],
                    };
                    let mut y = acc as f32 * (sa[r] * sw[c]) + off[r] * ws[c];
                    if accumulate {
                        y += init[r * NR + c];
                    }
                    assert_eq!(out[r * NR + c].to_bits(), y.to_bits(), "({r},{c})");
                }
            }
        }
    }
}
