//! The one CPU-feature check of the fast encoder: [`Isa`] says which build
//! of the kernels runs. A value that selects AVX2 + FMA can only be made
//! here, after the CPU was found to have them, so a kernel given one may
//! call its `#[target_feature]` build without further checks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Which build of the element-wise, attention and int8 kernels runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Isa(Kind);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Baseline,
    Avx2Fma,
}

static AVX2_ALLOWED: AtomicBool = AtomicBool::new(true);

impl Isa {
    /// Baseline x86-64 (or any other target): plain Rust, no CPU check.
    pub(crate) const BASELINE: Self = Self(Kind::Baseline);

    /// AVX2 + FMA, when this CPU has them (checked once per process).
    pub(crate) fn avx2() -> Option<Self> {
        static DETECTED: OnceLock<bool> = OnceLock::new();
        let has = *DETECTED.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                false
            }
        });
        has.then_some(Self(Kind::Avx2Fma))
    }

    /// The best build this CPU runs, unless [`set_avx2_enabled`] forbade
    /// AVX2.
    pub(crate) fn current() -> Self {
        if AVX2_ALLOWED.load(Ordering::Relaxed) {
            Self::avx2().unwrap_or(Self::BASELINE)
        } else {
            Self::BASELINE
        }
    }

    /// Whether this selects the AVX2 + FMA builds.
    pub(crate) fn is_avx2(self) -> bool {
        self.0 == Kind::Avx2Fma
    }
}

/// Allows (the default) or forbids the AVX2 + FMA builds of the fp32
/// element-wise and attention kernels, process-wide; for the encoder bench,
/// which measures what they bring (through `crate::bench_support`). Tests
/// call each build directly instead.
pub(crate) fn set_avx2_enabled(on: bool) {
    AVX2_ALLOWED.store(on, Ordering::Relaxed);
}
