//! The integer tile product: which implementation runs ([`Kernel`], chosen
//! by the CPU's instruction sets), and the plain-Rust references every SIMD
//! tile must equal bit for bit.

use super::super::Isa;
#[cfg(target_arch = "x86_64")]
use super::int8_supported;
use super::output::{finish_rows, TileStep};
#[cfg(target_arch = "x86_64")]
use super::{avx2, vnni};
use super::{MR, NR};

/// Which implementation of the integer tile product runs. All compute the
/// same exact `i32` sums, so all give the same bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// Plain Rust, any CPU.
    Portable,
    /// AVX2 `vpmaddwd` + `vpaddd` (only constructed when the CPU has AVX2).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512 VNNI `vpdpwssd` on 256-bit vectors (AVX-512 VL), two per
    /// tile row (only constructed when the CPU has AVX-512 VNNI).
    #[cfg(target_arch = "x86_64")]
    Vnni256,
    /// AVX-512 VNNI `vpdpwssd` on 512-bit vectors, one per tile row.
    #[cfg(target_arch = "x86_64")]
    Vnni512,
}

impl Kernel {
    /// The kernel of build `isa`.
    pub(crate) fn for_isa(isa: Isa) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            match isa.vnni_wide() {
                Some(true) => return Self::Vnni512,
                Some(false) => return Self::Vnni256,
                None if isa.is_avx2() => return Self::Avx2,
                None => {}
            }
        }
        let _ = isa;
        Self::Portable
    }

    /// The kernel of the build that runs ([`Isa::current`](Isa::current)).
    pub(crate) fn current() -> Self {
        Self::for_isa(Isa::current())
    }

    /// The kernel of every build this CPU can run, the portable one first
    /// ([`Isa::available`]): what the tests compare with each other.
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Self> {
        Isa::available().into_iter().map(Self::for_isa).collect()
    }

    /// Whether this kernel has a `u8 × s8` tile ([`Kernel::tile_u8`]):
    /// the AVX-512 VNNI ones.
    pub(crate) fn has_u8(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            matches!(self, Self::Vnni256 | Self::Vnni512)
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// `tile[r][c] = Σ_t a[r][4t..4t+4] · w[t][c][..]` for `r < mr`, `a`
    /// unsigned and `w` signed bytes: `vpdpbusd` on the VNNI kernels, plain
    /// Rust otherwise ([`gemm_u8_portable`]).
    pub(super) fn tile_u8(
        self,
        a: &[u8],
        lda: usize,
        mr: usize,
        w: &[i8],
        quads: usize,
        tile: &mut [[i32; NR]; MR],
    ) {
        check_u8_operands(a, lda, mr, w, quads);
        #[cfg(target_arch = "x86_64")]
        macro_rules! by_rows {
            ($m:ident :: $f:ident) => {
                match mr {
                    1 => $m::$f::<1>(a.as_ptr(), lda, w.as_ptr(), quads, tile),
                    2 => $m::$f::<2>(a.as_ptr(), lda, w.as_ptr(), quads, tile),
                    3 => $m::$f::<3>(a.as_ptr(), lda, w.as_ptr(), quads, tile),
                    4 => $m::$f::<4>(a.as_ptr(), lda, w.as_ptr(), quads, tile),
                    5 => $m::$f::<5>(a.as_ptr(), lda, w.as_ptr(), quads, tile),
                    _ => $m::$f::<6>(a.as_ptr(), lda, w.as_ptr(), quads, tile),
                }
            };
        }
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Vnni256 | Self::Vnni512 => {
                assert!(
                    Isa::avx512_vnni(false).is_some(),
                    "a VNNI kernel on a CPU without AVX-512 VNNI"
                );
                // SAFETY: the CPU has AVX-512 F/BW/VL/VNNI (asserted
                // above); the bounds the kernel reads within were asserted
                // at the top (a: mr rows of lda, each read up to 4·quads
                // bytes; w: quads steps of NR·4 bytes).
                #[allow(unsafe_code)]
                unsafe {
                    if self == Self::Vnni512 {
                        by_rows!(vnni::tile512_u8)
                    } else {
                        by_rows!(vnni::tile256_u8)
                    }
                }
            }
            _ => gemm_u8_portable(a, lda, mr, w, quads, tile),
        }
    }

    /// [`Kernel::tile_u8`] over `mr` rows followed by the output step
    /// ([`finish_rows`]): each row's outputs written (or added to) from its
    /// sums, its scale and offset and the panel's factors. The VNNI
    /// kernels do the step on their accumulators in registers; the others
    /// sum a tile and finish it in plain Rust. The same bits either way.
    ///
    /// # Safety
    /// No other live reference covers the tile's outputs (`step.out`'s
    /// `mr` rows from `step.row`, `step.cols` columns from `step.col`):
    /// the product's jobs each write their own rows or columns.
    #[allow(unsafe_code)]
    pub(super) unsafe fn tile_u8_out(
        self,
        a: &[u8],
        lda: usize,
        mr: usize,
        w: &[i8],
        quads: usize,
        step: &TileStep<'_>,
    ) {
        check_u8_operands(a, lda, mr, w, quads);
        assert!(
            step.sa.len() >= mr && step.off.len() >= mr && step.slot.len() >= mr,
            "row factors"
        );
        assert!(step.cols <= NR, "panel columns");
        #[cfg(target_arch = "x86_64")]
        macro_rules! by_rows {
            ($m:ident :: $f:ident, $o:expr) => {{
                let (a, w, o) = (a.as_ptr(), w.as_ptr(), $o);
                match mr {
                    1 => $m::$f::<1>(a, lda, w, quads, step, o),
                    2 => $m::$f::<2>(a, lda, w, quads, step, o),
                    3 => $m::$f::<3>(a, lda, w, quads, step, o),
                    4 => $m::$f::<4>(a, lda, w, quads, step, o),
                    5 => $m::$f::<5>(a, lda, w, quads, step, o),
                    _ => $m::$f::<6>(a, lda, w, quads, step, o),
                }
            }};
        }
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Vnni256 | Self::Vnni512 => {
                assert!(
                    Isa::avx512_vnni(false).is_some(),
                    "a VNNI kernel on a CPU without AVX-512 VNNI"
                );
                // SAFETY: the CPU has AVX-512 F/BW/VL/VNNI (asserted
                // above); the bounds the kernel reads and writes within
                // were asserted at the top (a: mr rows of lda, each read up
                // to 4·quads bytes; w: quads steps of NR·4 bytes; factors
                // for mr rows; the outputs by `tile_at`), and the outputs
                // are exclusive by this function's contract.
                unsafe {
                    let o = step.out.tile_at(step.row, step.col, mr, step.cols);
                    if self == Self::Vnni512 {
                        by_rows!(vnni::tile512_u8_out, o)
                    } else {
                        by_rows!(vnni::tile256_u8_out, o)
                    }
                }
            }
            _ => {
                let mut tile = [[0i32; NR]; MR];
                self.tile_u8(a, lda, mr, w, quads, &mut tile);
                // SAFETY: the outputs are exclusive by this function's
                // contract.
                unsafe { finish_rows(&tile, mr, step) };
            }
        }
    }

    /// `tile[r][c] = Σ_t a[r][2t..2t+2] · w[t][c][..]` for `r < mr`.
    pub(super) fn tile(
        self,
        a: &[i16],
        lda: usize,
        mr: usize,
        w: &[i16],
        pairs: usize,
        tile: &mut [[i32; NR]; MR],
    ) {
        assert!((1..=MR).contains(&mr), "tile rows");
        assert!(
            lda >= 2 * pairs && a.len() >= (mr - 1) * lda + 2 * pairs,
            "lhs"
        );
        assert!(w.len() >= pairs * NR * 2, "panel");
        #[cfg(target_arch = "x86_64")]
        macro_rules! by_rows {
            ($m:ident :: $f:ident) => {
                match mr {
                    1 => $m::$f::<1>(a.as_ptr(), lda, w.as_ptr(), pairs, tile),
                    2 => $m::$f::<2>(a.as_ptr(), lda, w.as_ptr(), pairs, tile),
                    3 => $m::$f::<3>(a.as_ptr(), lda, w.as_ptr(), pairs, tile),
                    4 => $m::$f::<4>(a.as_ptr(), lda, w.as_ptr(), pairs, tile),
                    5 => $m::$f::<5>(a.as_ptr(), lda, w.as_ptr(), pairs, tile),
                    _ => $m::$f::<6>(a.as_ptr(), lda, w.as_ptr(), pairs, tile),
                }
            };
        }
        match self {
            Self::Portable => gemm_i16_portable(a, lda, mr, w, pairs, tile),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => {
                assert!(int8_supported(), "the AVX2 kernel on a CPU without AVX2");
                // SAFETY: the CPU has AVX2 (asserted above); the bounds the kernel reads within were asserted
                // just above (a: mr rows of lda, each read up to 2·pairs;
                // w: pairs steps of NR·2 values).
                #[allow(unsafe_code)]
                unsafe {
                    by_rows!(avx2::tile)
                }
            }
            #[cfg(target_arch = "x86_64")]
            Self::Vnni256 | Self::Vnni512 => {
                assert!(
                    Isa::avx512_vnni(false).is_some(),
                    "a VNNI kernel on a CPU without AVX-512 VNNI"
                );
                // SAFETY: the CPU has AVX-512 F/BW/VL/VNNI (asserted
                // above); the bounds the kernel reads within were asserted
                // at the top (a: mr rows of lda, each read up to 2·pairs;
                // w: pairs steps of NR·2 values).
                #[allow(unsafe_code)]
                unsafe {
                    if self == Self::Vnni512 {
                        by_rows!(vnni::tile512)
                    } else {
                        by_rows!(vnni::tile256)
                    }
                }
            }
        }
    }
}

/// The bounds a `u8 × s8` tile of `mr` rows reads within: `a` holds `mr`
/// rows of stride `lda`, each `4·quads` bytes; `w` holds `quads` steps of
/// [`NR`]` · 4` bytes.
fn check_u8_operands(a: &[u8], lda: usize, mr: usize, w: &[i8], quads: usize) {
    assert!((1..=MR).contains(&mr), "tile rows");
    assert!(
        lda >= 4 * quads && a.len() >= (mr - 1) * lda + 4 * quads,
        "lhs"
    );
    assert!(w.len() >= quads * NR * 4, "panel");
}

/// The integer tile product in plain Rust: the reference the AVX2 and
/// VNNI kernels must equal exactly, and the path on CPUs without AVX2.
pub(crate) fn gemm_i16_portable(
    a: &[i16],
    lda: usize,
    mr: usize,
    w: &[i16],
    pairs: usize,
    tile: &mut [[i32; NR]; MR],
) {
    for (r, acc) in tile.iter_mut().enumerate().take(mr) {
        *acc = [0; NR];
        let row = &a[r * lda..r * lda + 2 * pairs];
        for t in 0..pairs {
            let (a0, a1) = (row[2 * t] as i32, row[2 * t + 1] as i32);
            let step = &w[t * NR * 2..(t + 1) * NR * 2];
            for c in 0..NR {
                acc[c] += a0 * step[2 * c] as i32 + a1 * step[2 * c + 1] as i32;
            }
        }
    }
}

/// The `u8 × s8` tile product in plain Rust: the reference the
/// `vpdpbusd` kernels must equal exactly.
pub(crate) fn gemm_u8_portable(
    a: &[u8],
    lda: usize,
    mr: usize,
    w: &[i8],
    quads: usize,
    tile: &mut [[i32; NR]; MR],
) {
    for (r, acc) in tile.iter_mut().enumerate().take(mr) {
        *acc = [0; NR];
        let row = &a[r * lda..r * lda + 4 * quads];
        for t in 0..quads {
            let step = &w[t * NR * 4..(t + 1) * NR * 4];
            for c in 0..NR {
                for i in 0..4 {
                    acc[c] += row[4 * t + i] as i32 * step[4 * c + i] as i32;
                }
            }
        }
    }
}
