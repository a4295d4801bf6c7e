//! The one CPU-feature check of the fast encoder: [`Isa`] says which build
//! of the kernels runs. A value that selects AVX2 + FMA (or AVX-512 VNNI)
//! can only be made here, after the CPU was found to have those
//! instructions, so a kernel given one may call its `#[target_feature]`
//! build without further checks.
//!
//! The builds, from the least to the most the CPU must have:
//! - `portable`: plain Rust, any CPU (the reference every kernel is tested
//!   against);
//! - `avx2`: AVX2 + FMA element-wise, attention and int8 (`vpmaddwd` +
//!   `vpaddd`) kernels;
//! - `avx512vnni-256` / `avx512vnni-512`: as `avx2`, with the int8 tile
//!   product done by AVX-512 VNNI's `vpdpwssd` (the same 16-bit pair
//!   multiply-add, fused with the accumulate) or, for 8-bit activations,
//!   `vpdpbusd`, on 256- or 512-bit vectors, and the fp32 dense layers on
//!   AVX-512 F over weights packed once (`matmul`'s `avx512`; the other
//!   builds use `gemm`); where the CPU also has AVX-512 BF16, these builds
//!   run bf16 dense layers (`bf16`) for models asked for them.
//!
//! The best build the CPU runs is chosen unless the environment variable
//! `CORRAL_ISA` names another (one of the names above); a build the CPU
//! lacks falls back to the best it has below it. Read once per process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Which build of the element-wise, attention and int8 kernels runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Isa(Kind);

/// Ordered: each needs what the ones before it need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Baseline,
    Avx2Fma,
    /// AVX-512 F/BW/VL + VNNI (and AVX2 + FMA); int8 tiles on 256-bit
    /// vectors.
    Vnni256,
    /// As `Vnni256`, int8 tiles on 512-bit vectors.
    Vnni512,
}

/// Which VNNI width [`Isa::best`] picks: the faster one measured (see
/// docs/benchmarks.md, "AVX-512 VNNI").
const VNNI_DEFAULT: Kind = Kind::Vnni512;

/// The environment variable that forces a build.
pub(crate) const ISA_ENV: &str = "CORRAL_ISA";

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

    /// AVX-512 VNNI with 256-bit (`wide == false`) or 512-bit int8 tiles,
    /// when this CPU has AVX-512 F, BW, VL and VNNI besides AVX2 + FMA
    /// (checked once per process).
    pub(crate) fn avx512_vnni(wide: bool) -> Option<Self> {
        static DETECTED: OnceLock<bool> = OnceLock::new();
        let has = *DETECTED.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                Self::avx2().is_some()
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                false
            }
        });
        has.then_some(Self(if wide { Kind::Vnni512 } else { Kind::Vnni256 }))
    }

    /// Every build this CPU runs, the baseline first.
    pub(crate) fn available() -> Vec<Self> {
        let mut all = vec![Self::BASELINE];
        all.extend(Self::avx2());
        all.extend(Self::avx512_vnni(false));
        all.extend(Self::avx512_vnni(true));
        all
    }

    /// The best build this CPU runs.
    fn best() -> Self {
        Self::avx512_vnni(VNNI_DEFAULT == Kind::Vnni512)
            .or_else(Self::avx2)
            .unwrap_or(Self::BASELINE)
    }

    /// The build `name` selects (see the module docs), or the best below it
    /// that this CPU runs; `None` for a name that is none of them.
    pub(crate) fn by_name(name: &str) -> Option<Self> {
        let want = match name.trim().to_ascii_lowercase().as_str() {
            "portable" | "baseline" => Kind::Baseline,
            "avx2" => Kind::Avx2Fma,
            "avx512vnni-256" => Kind::Vnni256,
            "avx512vnni-512" => Kind::Vnni512,
            "avx512vnni" | "vnni" => VNNI_DEFAULT,
            _ => return None,
        };
        Some(
            Self::available()
                .into_iter()
                .filter(|isa| isa.0 <= want)
                .max_by_key(|isa| isa.0)
                .unwrap_or(Self::BASELINE),
        )
    }

    /// The build that runs: the best this CPU runs, or the one `CORRAL_ISA`
    /// forces (an unknown name is ignored, with a warning), the baseline
    /// when [`set_avx2_enabled`] forbade AVX2.
    pub(crate) fn current() -> Self {
        #[cfg(test)]
        if let Some(isa) = FORCED.with(std::cell::Cell::get) {
            return isa;
        }
        static CHOSEN: OnceLock<Isa> = OnceLock::new();
        let chosen = *CHOSEN.get_or_init(|| match std::env::var(ISA_ENV) {
            Ok(name) => Self::by_name(&name).unwrap_or_else(|| {
                tracing::warn!(
                    "{ISA_ENV}={name:?} is not one of portable, avx2, avx512vnni, \
                     avx512vnni-256, avx512vnni-512; using the best this CPU runs"
                );
                Self::best()
            }),
            Err(_) => Self::best(),
        });
        if AVX2_ALLOWED.load(Ordering::Relaxed) {
            chosen
        } else {
            Self::BASELINE
        }
    }

    /// Whether this selects the AVX2 + FMA builds of the element-wise and
    /// attention kernels (every build but the baseline does).
    pub(crate) fn is_avx2(self) -> bool {
        self.0 >= Kind::Avx2Fma
    }

    /// Whether this selects an AVX-512 VNNI int8 tile: `Some(true)` for
    /// 512-bit vectors, `Some(false)` for 256-bit, `None` for none.
    pub(crate) fn vnni_wide(self) -> Option<bool> {
        match self.0 {
            Kind::Vnni256 => Some(false),
            Kind::Vnni512 => Some(true),
            Kind::Baseline | Kind::Avx2Fma => None,
        }
    }

    /// Whether this build runs the bf16 dense layers (`vdpbf16ps`): the
    /// AVX-512 builds, on a CPU that also has AVX-512 BF16 (checked once per
    /// process). The other builds have no bf16 kernel, so a model asked for
    /// bf16 stays fp32 there.
    pub(crate) fn has_bf16(self) -> bool {
        static DETECTED: OnceLock<bool> = OnceLock::new();
        self.vnni_wide().is_some()
            && *DETECTED.get_or_init(|| {
                #[cfg(target_arch = "x86_64")]
                {
                    std::arch::is_x86_feature_detected!("avx512bf16")
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    false
                }
            })
    }

    /// The build's name, as `CORRAL_ISA` takes it.
    pub(crate) fn name(self) -> &'static str {
        match self.0 {
            Kind::Baseline => "portable",
            Kind::Avx2Fma => "avx2",
            Kind::Vnni256 => "avx512vnni-256",
            Kind::Vnni512 => "avx512vnni-512",
        }
    }
}

#[cfg(test)]
thread_local! {
    /// The build [`Isa::current`] returns on this thread, when set.
    static FORCED: std::cell::Cell<Option<Isa>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with [`Isa::current`] returning `isa` on this thread (tests run
/// in parallel, so a process-wide switch would reach other tests).
#[cfg(test)]
pub(crate) fn with_isa<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    struct Reset(Option<Isa>);
    impl Drop for Reset {
        fn drop(&mut self) {
            FORCED.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(FORCED.with(|c| c.replace(Some(isa))));
    f()
}

/// Allows (the default) or forbids the AVX2 + FMA builds of the fp32
/// element-wise and attention kernels, process-wide; for the encoder bench,
/// which measures what they bring (through `crate::bench_support`). Tests
/// call each build directly instead.
pub(crate) fn set_avx2_enabled(on: bool) {
    AVX2_ALLOWED.store(on, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_fall_back_to_what_the_cpu_runs() {
        for isa in Isa::available() {
            assert_eq!(Isa::by_name(isa.name()), Some(isa));
        }
        assert_eq!(Isa::by_name("portable"), Some(Isa::BASELINE));
        assert_eq!(Isa::by_name("sse9"), None);
        // A build the CPU lacks gives the best below it.
        let best = Isa::best();
        assert!(Isa::by_name("avx512vnni-512").unwrap().0 <= Kind::Vnni512);
        assert!(Isa::available().contains(&best));
        eprintln!(
            "builds this CPU runs: {:?}; best {}",
            Isa::available()
                .iter()
                .map(|i| i.name())
                .collect::<Vec<_>>(),
            best.name()
        );
    }

    /// Where the CPU reports AVX-512 VNNI, the VNNI builds are offered and
    /// chosen by default; so they are never silently left untested here.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vnni_is_offered_where_the_cpu_has_it() {
        let cpu_has = std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx2");
        assert_eq!(Isa::avx512_vnni(false).is_some(), cpu_has);
        assert_eq!(Isa::best().vnni_wide().is_some(), cpu_has);
        eprintln!("avx512vnni on this CPU: {cpu_has}");
        let bf16 = cpu_has && std::arch::is_x86_feature_detected!("avx512bf16");
        assert_eq!(Isa::best().has_bf16(), bf16);
        for isa in Isa::available() {
            assert_eq!(isa.has_bf16(), bf16 && isa.vnni_wide().is_some());
        }
        eprintln!("avx512bf16 (with the AVX-512 builds) on this CPU: {bf16}");
    }
}
