//! The product's output side: [`Block`] (one job's rows and panels),
//! [`OutRows`] (the output rows several jobs write at once), and the
//! output step that turns a tile's exact `i32` sums into `f32` (scales,
//! the offset's term, the residual when accumulating).

use super::NR;

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
    n: usize,
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
