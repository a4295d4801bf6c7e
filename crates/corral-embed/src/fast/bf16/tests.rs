//! Tests of the bf16 dense layers: the rounding, the kernel against the
//! portable reference bit for bit on every thread count, its error against
//! exact products, and a whole model in bf16 against fp32 (and staying
//! fp32 on the builds without the kernel).

use super::super::isa::{with_isa, Isa};
use super::super::test_util::random_vec;
use super::*;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The builds this CPU runs that have the bf16 kernel (none without
/// AVX-512 BF16), said on stderr so a run shows whether it was tested.
fn bf16_builds() -> Vec<Isa> {
    let builds: Vec<Isa> = Isa::available()
        .into_iter()
        .filter(|i| i.has_bf16())
        .collect();
    eprintln!(
        "builds with the bf16 kernel on this CPU: {:?}",
        builds.iter().map(|i| i.name()).collect::<Vec<_>>()
    );
    builds
}

#[test]
fn rounding_is_to_nearest_even_and_keeps_what_it_cannot_round() {
    // 1 + 2⁻⁸ is halfway between two bf16s: ties go to the even one (1.0);
    // 1 + 3·2⁻⁸ ties upwards to the even 1 + 2⁻⁶.
    assert_eq!(to_bf16(1.0 + 1.0 / 256.0), to_bf16(1.0));
    assert_eq!(from_bf16(to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
    // Just above the tie rounds up; the carry reaches the exponent.
    assert_eq!(
        from_bf16(to_bf16(1.0 + 1.0 / 256.0 + 1e-6)),
        1.0 + 2.0 / 256.0
    );
    assert_eq!(from_bf16(to_bf16(1.999_999)), 2.0);
    assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
    assert_eq!(from_bf16(to_bf16(f32::MAX)), f32::INFINITY);
    assert_eq!(from_bf16(to_bf16(-3.0)), -3.0);
    assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    // A NaN whose payload sits below bf16's bits stays a NaN.
    assert!(from_bf16(to_bf16(f32::from_bits(0x7f80_0001))).is_nan());
    assert_eq!(to_bf16(-1e-40), 0x8000);
    assert_eq!(to_bf16(1e-40), 0);
}

#[test]
fn rows_round_in_the_kernel_as_the_reference_rounds() {
    let builds = bf16_builds();
    if builds.is_empty() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let mut values = random_vec(997, 11);
        values.extend([
            1.0 + 1.0 / 256.0,
            1.0 + 3.0 / 256.0,
            f32::MAX,
            -f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::from_bits(0x7f80_0001),
            1e-40,
            -1e-40,
            f32::MIN_POSITIVE,
            0.0,
            -0.0,
        ]);
        let scaled: Vec<f32> = values.iter().map(|v| v * 1e-36).collect();
        for src in [&values, &scaled] {
            for len in [0, 1, 15, 16, 17, 31, 32, 33, src.len()] {
                for pad in [0, 1] {
                    let mut dst = vec![0xffffu16; len + pad];
                    // SAFETY: this CPU has AVX-512 F, BW and BF16 (a
                    // build with the kernel exists).
                    #[allow(unsafe_code)]
                    unsafe {
                        avx512::round_row(&src[..len], &mut dst)
                    };
                    let mut want: Vec<u16> = src[..len].iter().map(|&v| to_bf16(v)).collect();
                    want.extend(std::iter::repeat_n(0, pad));
                    assert_eq!(dst, want, "len {len} pad {pad}");
                }
            }
        }
    }
}

/// Every build with the kernel gives the reference's bits, for odd sizes
/// (an odd `k`, columns past the last whole panel, row counts across the
/// tile and block edges), with and without accumulating, on 1, 2 and 3
/// threads; and the packing gives the rounded weights back.
#[test]
fn the_kernel_gives_the_reference_bits_on_every_thread_count() {
    for isa in bf16_builds() {
        with_isa(isa, || {
            for &(m, k, n) in &[
                (1, 1, 1),
                (1, 384, 1536),
                (3, 5, 7),
                (12, 64, 32),
                (13, 33, 65),
                (25, 384, 40),
                (100, 97, 33),
                (130, 64, 96),
                (200, 18, 70),
            ] {
                let x = random_vec(m * k, 7);
                let w = random_vec(n * k, 8);
                let init = random_vec(m * n, 9);
                let layer = BfLinear::from_torch(&w, vec![0.0; n], n, k);
                let rounded: Vec<f32> = w.iter().map(|&v| from_bf16(to_bf16(v))).collect();
                assert_eq!(bits(&layer.torch_weights()), bits(&rounded));
                for accumulate in [false, true] {
                    let mut want = init.clone();
                    reference_product(&layer, &x, &mut want, m, accumulate);
                    for threads in [1, 2, 3] {
                        let mut got = init.clone();
                        layer.forward_no_bias(&x, &mut got, m, accumulate, threads);
                        assert!(
                            bits(&got) == bits(&want),
                            "{} m={m} k={k} n={n} accumulate {accumulate} threads {threads}",
                            isa.name()
                        );
                    }
                }
            }
        });
    }
}

/// The products' error is the inputs' rounding: within 2⁻⁷ of the sum of
/// the terms' magnitudes of the exact product (each term is off by at most
/// about 2⁻⁸ of itself, the fp32 sums by far less).
#[test]
fn the_error_is_the_rounding_of_the_inputs() {
    for isa in bf16_builds() {
        with_isa(isa, || {
            let (m, k, n) = (37, 384, 96);
            let x = random_vec(m * k, 21);
            let w = random_vec(n * k, 22);
            let layer = BfLinear::from_torch(&w, vec![0.0; n], n, k);
            let mut got = vec![0.0; m * n];
            layer.forward_no_bias(&x, &mut got, m, false, 1);
            let mut worst = 0.0f64;
            for i in 0..m {
                for j in 0..n {
                    let terms = (0..k).map(|t| f64::from(x[i * k + t]) * f64::from(w[j * k + t]));
                    let (exact, size) = terms.fold((0.0, 0.0), |(s, a), v| (s + v, a + v.abs()));
                    worst = worst.max((f64::from(got[i * n + j]) - exact).abs() / size);
                }
            }
            eprintln!("{}: worst error / Σ|terms| {worst:e}", isa.name());
            assert!(worst < 1.0 / 128.0, "{worst}");
            // And it is not fp32: some product moved.
            assert!(worst > 1e-6, "no rounding seen: {worst}");
        });
    }
}

/// A tiny random BERT in bf16: within its rounding of fp32 where the build
/// has the kernel (and the same bits on 1 and 2 threads), and left fp32
/// — the same bits as the model never asked — where it has not.
#[test]
fn a_model_in_bf16_stays_near_fp32_and_stays_fp32_without_the_kernel() {
    let dir = std::env::temp_dir().join(format!("corral-bf16-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (path, cfg) = crate::fast::write_tiny_bert(&dir, 0);
    let ids: Vec<u32> = (0..40).map(|i| (i * 7 + 3) % 50).collect();
    let offsets = [0, 9, 10, 23, 40];
    for isa in Isa::available() {
        with_isa(isa, || {
            let mut fp32 = FastBert::load(&path, &cfg).unwrap();
            let want = fp32.forward_packed(&ids, &offsets, 1).unwrap().to_vec();
            let mut bf = FastBert::load(&path, &cfg).unwrap();
            assert_eq!(bf.quantize_bf16(), isa.has_bf16(), "{}", isa.name());
            let got = bf.forward_packed(&ids, &offsets, 1).unwrap().to_vec();
            if !isa.has_bf16() {
                assert!(bits(&got) == bits(&want), "{}: not fp32", isa.name());
                return;
            }
            let two = bf.forward_packed(&ids, &offsets, 2).unwrap().to_vec();
            assert!(bits(&two) == bits(&got), "threads changed a bit");
            let d = super::super::test_util::max_abs_diff(&got, &want);
            let h = cfg.hidden_size;
            let worst_cos = got
                .chunks_exact(h)
                .zip(want.chunks_exact(h))
                .map(|(a, b)| {
                    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
                    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
                    dot / (na * nb)
                })
                .fold(1.0f32, f32::min);
            eprintln!(
                "{}: bf16 vs fp32 max abs diff {d:e}, min cosine {worst_cos}",
                isa.name()
            );
            assert!(d > 0.0, "bf16 gave fp32's bits: not run");
            assert!(worst_cos > 0.999, "{worst_cos}");
            assert!(d < 0.05, "{d}");
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
}

use super::super::FastBert;

/// Not a check: the bf16 kernel against the fp32 AVX-512 kernel on one
/// thread, BERT's shapes, alternating, median of 7 (the activations'
/// rounding included).
/// `cargo test --release -p corral-embed --lib fast::bf16::tests::bf16_timings -- --ignored --nocapture`
#[test]
#[ignore]
fn bf16_timings() {
    use super::super::matmul::Linear;
    use super::super::test_util::BERT_SHAPES;
    use std::time::Instant;
    let Some(&isa) = bf16_builds().last() else {
        return;
    };
    with_isa(isa, || {
        for &(m, k, n) in &BERT_SHAPES {
            let x = random_vec(m * k, 1);
            let w = random_vec(n * k, 2);
            let mut fp32 = Linear::from_torch(w.clone(), vec![0.0; n], n, k);
            fp32.pack_for(isa);
            let bf = BfLinear::from_torch(&w, vec![0.0; n], n, k);
            let mut out = vec![0.0; m * n];
            let ops = 2.0 * (m * k * n) as f64;
            let iters = (3e9 / ops).ceil() as usize;
            let (mut f, mut b) = (Vec::new(), Vec::new());
            for _ in 0..7 {
                let t = Instant::now();
                for _ in 0..iters {
                    fp32.forward_no_bias(&x, &mut out, m, false, 1);
                }
                f.push(ops * iters as f64 / t.elapsed().as_secs_f64() / 1e9);
                let t = Instant::now();
                for _ in 0..iters {
                    bf.forward_no_bias(&x, &mut out, m, false, 1);
                }
                b.push(ops * iters as f64 / t.elapsed().as_secs_f64() / 1e9);
            }
            f.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            println!(
                "[{m},{k}]x[{k},{n}]: fp32 {:.1} GFLOP/s, bf16 {:.1} ({:.2}x)",
                f[3],
                b[3],
                b[3] / f[3]
            );
        }
    });
}
