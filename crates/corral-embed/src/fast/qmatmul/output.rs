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
// `OutRows::slice`), so sharing it between the product's threads is sound.
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
    /// through it is the caller's to make exclusive, as for
    /// [`OutRows::slice`].
    pub(super) fn tile_at(&self, r: usize, c: usize, rows: usize, cols: usize) -> *mut f32 {
        assert!(
            rows >= 1 && c + cols <= self.n && (r + rows - 1) * self.n + c + cols <= self.len,
            "output bounds"
        );
        self.ptr.wrapping_add(r * self.n + c)
    }

    /// Row `r`'s columns `c..c + cols`, checked against the view's bounds.
    ///
    /// # Safety
    /// No other live reference may cover these elements: callers give
    /// each job of a product its own rows or its own columns.
    #[allow(unsafe_code)]
    pub(super) unsafe fn slice<'a>(&self, r: usize, c: usize, cols: usize) -> &'a mut [f32] {
        let start = r * self.n + c;
        assert!(
            c + cols <= self.n && start + cols <= self.len,
            "output bounds"
        );
        // SAFETY: in bounds (asserted), and exclusive by the caller's
        // contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), cols) }
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

/// What a fused output step (`Kernel::tile_u8_out`) needs beside the
/// tile's sums: its rows' factors, its panel's columns' factors, and where
/// its outputs go.
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
/// (wrapping, as the kernels' `i32` lanes do), then [`output_row`]. The
/// reference the fused kernels (`Kernel::tile_u8_out`) must equal bit for
/// bit.
///
/// # Safety
/// `o` is row `step.row`, column `step.col` of `step.out`, checked to hold
/// `mr` rows of `step.cols` (`OutRows::tile_at`), and no other live
/// reference covers those elements.
#[allow(unsafe_code)]
pub(super) unsafe fn finish_rows(tile: &[[i32; NR]; MR], mr: usize, step: &TileStep<'_>, o: *mut f32) {
    for (r, acc) in tile.iter().enumerate().take(mr) {
        let mut acc = *acc;
        if let Some(lo) = step.lo(r) {
            for (a, &l) in acc.iter_mut().zip(lo) {
                *a = (*a << step.shift).wrapping_add(l);
            }
        }
        // SAFETY: row `r < mr` of the checked tile, exclusive by the
        // caller's contract.
        let out = unsafe { std::slice::from_raw_parts_mut(o.add(r * step.out.n), step.cols) };
        output_row(&acc, step.sa[r], step.off[r], step.sw, step.ws, out, step.accumulate);
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

multiversion! {
    /// [`output_row`] for a partial panel (fewer than `NR` columns).
    pub(super) fn output_step / output_step_on(
        acc: &[i32; NR],
        sa: f32,
        off: f32,
        sw: &[f32],
        wsum: &[f32],
        o: &mut [f32],
        accumulate: bool,
    ) {
        output_row(acc, sa, off, sw, wsum, o, accumulate)
    }
}

/// [`output_row`] for a whole panel of `NR` columns: sizes the compiler
/// knows, inlined into the caller's loop rather than dispatched per tile
/// row.
#[inline(always)]
pub(super) fn output_step_full(
    acc: &[i32; NR],
    sa: f32,
    off: f32,
    sw: &[f32; NR],
    wsum: &[f32; NR],
    o: &mut [f32; NR],
    accumulate: bool,
) {
    output_row(acc, sa, off, sw, wsum, o, accumulate)
}
