//! Tests of the int8 layers: the kernels against the exact product within
//! the stated bound, quantisation, smoothing.

use super::super::test_util::{random_vec, BERT_SHAPES};
use super::quantize::{min_max, min_max_portable, moments_on, split_bytes_on, to_bytes_on};
use super::*;

/// `x · Wᵀ` in f64.
fn reference(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut y = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            y[i * n + j] = (0..k)
                .map(|p| x[i * k + p] as f64 * w[j * k + p] as f64)
                .sum();
        }
    }
    y
}

/// Every element of the int8 product, by `kernel`, within its stated
/// bound of the exact product; returns the largest error ÷ bound.
fn check(m: usize, k: usize, n: usize, accumulate: bool, threads: usize, kernel: Kernel) -> f64 {
    check_levels(m, k, n, accumulate, threads, kernel, u32::MAX)
}

/// [`check`] with the activations quantised to at most `levels` levels
/// (the layer capped likewise, so at 256 the VNNI kernels run `u8 × s8`).
fn check_levels(
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
    threads: usize,
    kernel: Kernel,
    levels: u32,
) -> f64 {
    // Rows of very different magnitudes, and an outlier column, as
    // transformer activations have.
    let mut x = random_vec(m * k, 31 + k as u64);
    for i in 0..m {
        let s = 1.0 + (i % 5) as f32 * 3.0;
        x[i * k..(i + 1) * k].iter_mut().for_each(|v| *v *= s);
        x[i * k] *= 20.0;
    }
    let w: Vec<f32> = random_vec(n * k, 32 + n as u64)
        .iter()
        .map(|v| v * 0.1)
        .collect();
    let init = random_vec(m * n, 33);
    let mut layer = QLinear::from_torch(&w, vec![0.0; n], n, k);
    let mut rows = QuantizedRows::default();
    if levels <= 256 {
        layer.set_max_levels(levels);
        rows.quantize_scaled(&x, m, k, None, levels, f32::INFINITY);
        rows.fill_u8();
        assert_eq!(layer.runs_u8(&rows, kernel), kernel.has_u8());
    } else {
        rows.quantize(&x, m, k);
    }
    let mut out = init.clone();
    layer.forward_quantized(&mut rows, &mut out, accumulate, threads, kernel);
    let want = reference(&x, &w, m, k, n);
    let mut worst = 0.0f64;
    for i in 0..m {
        for j in 0..n {
            let base = if accumulate {
                init[i * n + j] as f64
            } else {
                0.0
            };
            let got = out[i * n + j] as f64 - base;
            let err = (got - want[i * n + j]).abs();
            // fp32 rounding of the output step (whose two terms may
            // cancel, so relative to Σ|x·ŵ|) and of the residual.
            let mag: f64 = (0..k)
                .map(|p| (x[i * k + p] as f64 * layer.dequantized(j, p) as f64).abs())
                .sum();
            let slack = 1e-6 * (mag + base.abs() + 1.0);
            let bound = error_bound(&layer, &rows, &x, i, j) + slack;
            assert!(
                err <= bound,
                "{kernel:?} m={m} k={k} n={n} ({i},{j}): error {err} > bound {bound}"
            );
            worst = worst.max(err / bound);
        }
    }
    worst
}

const SIZES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 2, 16),
    (3, 5, 7),
    (7, 33, 17),
    (13, 64, 40),
    (37, 384, 96),
    (100, 97, 33),
    (200, 384, 48),
    (19, 48, 100),
];

#[test]
fn portable_int8_product_is_within_its_error_bound() {
    for &(m, k, n) in SIZES {
        for accumulate in [false, true] {
            check(m, k, n, accumulate, 1, Kernel::Portable);
        }
    }
}

/// Every kernel this CPU runs (the portable one, AVX2, both VNNI widths
/// where the CPU has AVX-512 VNNI): within the error bound, and bit for bit
/// the portable kernel's output (the integer part is exact). Prints which
/// ran.
#[test]
fn every_int8_kernel_is_within_its_bound_and_equals_portable() {
    let kernels = Kernel::available();
    #[cfg(target_arch = "x86_64")]
    {
        assert!(int8_supported(), "this test needs an AVX2 CPU");
        assert!(kernels.contains(&Kernel::Avx2));
    }
    for &kernel in &kernels {
        for &(m, k, n) in SIZES {
            for (accumulate, threads) in [(false, 1), (true, 1), (true, 2)] {
                let worst = check(m, k, n, accumulate, threads, kernel);
                assert!(worst <= 1.0);
            }
            let x = random_vec(m * k, 5);
            let w = random_vec(n * k, 6);
            let layer = QLinear::from_torch(&w, vec![0.0; n], n, k);
            let mut rows = QuantizedRows::default();
            rows.quantize(&x, m, k);
            let init = random_vec(m * n, 7);
            for (accumulate, threads) in [(false, 1), (true, 1), (true, 3)] {
                let mut a = init.clone();
                let mut b = init.clone();
                layer.forward_quantized(&mut rows, &mut a, accumulate, 1, Kernel::Portable);
                layer.forward_quantized(&mut rows, &mut b, accumulate, threads, kernel);
                let (a, b): (Vec<u32>, Vec<u32>) = (
                    a.iter().map(|v| v.to_bits()).collect(),
                    b.iter().map(|v| v.to_bits()).collect(),
                );
                assert_eq!(a, b, "{kernel:?} m={m} k={k} n={n} accumulate={accumulate}");
            }
        }
        eprintln!("int8 kernel {kernel:?}: equals portable bit for bit");
    }
}

/// The tile alone, every kernel against the portable one on extreme
/// values (every activation and weight at its largest magnitude, both
/// signs), every row count and odd strides: the exact `i32` sums.
#[test]
fn every_int8_tile_is_exact_at_the_extremes() {
    let half = i16::try_from(MAX_ACTIVATION_LEVELS / 2).unwrap();
    for kernel in Kernel::available() {
        for pairs in [1usize, 2, 7, 192, 768] {
            let lda = 2 * pairs + 3;
            let a: Vec<i16> = (0..MR * lda)
                .map(|i| {
                    if i % 3 == 0 {
                        -half
                    } else {
                        half - (i % 7) as i16
                    }
                })
                .collect();
            let w: Vec<i16> = (0..pairs * NR * 2)
                .map(|i| {
                    if i % 5 < 2 {
                        -127
                    } else {
                        127 - (i % 11) as i16
                    }
                })
                .collect();
            for mr in 1..=MR {
                let (mut want, mut got) = ([[0i32; NR]; MR], [[7i32; NR]; MR]);
                gemm_i16_portable(&a, lda, mr, &w, pairs, &mut want);
                kernel.tile(&a, lda, mr, &w, pairs, &mut got);
                assert_eq!(want[..mr], got[..mr], "{kernel:?} pairs={pairs} mr={mr}");
            }
        }
    }
}

#[test]
fn smoothing_leaves_the_product_unchanged_within_its_bound() {
    let (m, k, n) = (9, 37, 21);
    let mut x = random_vec(m * k, 41);
    // Two outlier channels, as after a layer norm with large γ there.
    for i in 0..m {
        x[i * k + 3] *= 40.0;
        x[i * k + 30] *= 25.0;
    }
    let w = random_vec(n * k, 42);
    let mut gamma = vec![1.0f32; k];
    (gamma[3], gamma[30]) = (40.0, 25.0);
    let f = QLinear::smoothing_for_norm(&w, n, k, &gamma, &vec![0.0; k]);
    let plain = QLinear::from_torch(&w, vec![0.0; n], n, k);
    let smooth = QLinear::from_torch_smoothed(&w, vec![0.0; n], n, k, &f);
    let want = reference(&x, &w, m, k, n);
    let err = |layer: &QLinear| {
        let mut out = vec![0.0; m * n];
        let mut rows = QuantizedRows::default();
        layer.forward_no_bias(&x, &mut out, m, false, 1, &mut rows);
        out.iter()
            .zip(&want)
            .map(|(a, b)| (*a as f64 - b).abs())
            .fold(0.0, f64::max)
    };
    let (e_plain, e_smooth) = (err(&plain), err(&smooth));
    // The smoothed product's bound, in the smoothed quantities.
    let xs: Vec<f32> = x
        .chunks_exact(k)
        .flat_map(|r| r.iter().zip(&f).map(|(v, f)| v / f))
        .collect();
    let mut rows = QuantizedRows::default();
    rows.quantize(&xs, m, k);
    let bound = (0..m)
        .flat_map(|i| (0..n).map(move |j| (i, j)))
        .map(|(i, j)| error_bound(&smooth, &rows, &xs, i, j))
        .fold(0.0, f64::max);
    assert!(e_smooth <= bound * 1.001 + 1e-5, "{e_smooth} > {bound}");
    assert!(
        e_smooth < e_plain,
        "smoothing did not help: {e_smooth} vs {e_plain}"
    );
}

#[test]
fn min_max_is_exact_on_every_path() {
    for (len, seed) in [(1, 1), (7, 2), (8, 3), (9, 4), (37, 5), (384, 6), (1537, 7)] {
        let x = random_vec(len, seed);
        let lo = x.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(min_max(&x), (lo, hi), "len {len}");
        assert_eq!(min_max_portable(&x), (lo, hi), "len {len}");
    }
    assert_eq!(min_max(&[]), (0.0, 0.0));
    // A NaN is skipped, wherever it falls.
    let mut x = random_vec(19, 8);
    let (lo, hi) = min_max(&x);
    x[3] = f32::NAN;
    x[17] = f32::NAN;
    let (l2, h2) = min_max(&x);
    assert!(l2 >= lo && h2 <= hi && l2.is_finite() && h2.is_finite());
}

#[test]
fn activation_levels_keep_the_sums_exact() {
    for k in [1, 2, 384, 1536, 8256, 8257, 20_000, 131_000] {
        let levels = u64::from(activation_levels(k));
        let kp = (k + (k & 1)) as u64;
        assert!(levels.is_power_of_two() && levels >= 256, "k {k}");
        assert!(kp * (levels / 2) * 127 < 1 << 31, "k {k}: {levels}");
        // The most levels that fit (or the cap).
        assert!(
            levels == u64::from(MAX_ACTIVATION_LEVELS) || kp * levels * 127 >= 1 << 31,
            "k {k}: {levels} is not the most"
        );
    }
    assert_eq!(activation_levels(1536), 4096);
}

#[test]
fn quantisation_round_trips_within_half_a_step() {
    let k = 37;
    let x = random_vec(5 * k, 9);
    let mut rows = QuantizedRows::default();
    rows.quantize(&x, 5, k);
    for i in 0..5 {
        let s = rows.scale(i);
        let row = &x[i * k..(i + 1) * k];
        let lo = row.iter().fold(f32::MAX, |m, &v| m.min(v));
        let hi = row.iter().fold(f32::MIN, |m, &v| m.max(v));
        let top = (activation_levels(k) - 1) as f32;
        assert!((s - (hi - lo) / top).abs() <= 1e-9);
        for p in 0..k {
            let d = (rows.dequantized(i, p) - x[i * k + p]).abs();
            assert!(d <= s * (0.5 + 1e-4), "({i},{p}) {d} vs step {s}");
        }
    }
    // A constant row comes back exactly, whatever its value.
    rows.quantize(&[0.0; 4], 1, 4);
    assert_eq!(rows.dequantized(0, 3), 0.0);
    rows.quantize(&[2.5; 3], 1, 3);
    assert_eq!(rows.dequantized(0, 2), 2.5);
    // All-positive rows (as after GELU) use every level.
    let pos: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    rows.quantize(&pos, 5, k);
    let top = (activation_levels(k) - 1) as f32;
    assert!(rows.scale(0) <= 1.0 / top + 1e-6);
}

/// Not a check: GFLOP/s-equivalent of the int8 product beside the fp32
/// matmul for BERT's shapes. `cargo test --release -p corral-embed
/// qmatmul::tests::timings -- --ignored --nocapture`
#[test]
#[ignore]
fn timings() {
    use super::super::matmul::Linear;
    use std::time::Instant;
    for &(m, k, n) in &BERT_SHAPES {
        let x = random_vec(m * k, 1);
        let w = random_vec(n * k, 2);
        let f = Linear::from_torch(w.clone(), vec![0.0; n], n, k);
        let q = QLinear::from_torch(&w, vec![0.0; n], n, k);
        let mut rows = QuantizedRows::default();
        let mut out = vec![0.0; m * n];
        let (mut tf, mut tq) = (0.0, 0.0);
        let iters = (2e9 / (2.0 * (m * k * n) as f64)).ceil() as usize;
        for it in 0..iters {
            for which in [it % 2, 1 - it % 2] {
                let t = Instant::now();
                if which == 0 {
                    f.forward_no_bias(&x, &mut out, m, false, 1);
                    tf += t.elapsed().as_secs_f64();
                } else {
                    q.forward_no_bias(&x, &mut out, m, false, 1, &mut rows);
                    tq += t.elapsed().as_secs_f64();
                }
            }
        }
        let gf = 2.0 * (m * k * n) as f64 * iters as f64 / 1e9;
        println!(
            "[{m},{k}]x[{k},{n}]: fp32 {:.1} GFLOP/s, int8 {:.1} GOP/s ({:.2}x)",
            gf / tf,
            gf / tq,
            tf / tq
        );
    }
}

/// Not a check: GOP/s of the int8 product by every kernel this CPU runs,
/// for BERT's shapes, the kernels alternating within each round (the
/// machine drifts); prints each kernel's median speed relative to AVX2 and
/// the range over rounds. `cargo test --release -p corral-embed
/// qmatmul::tests::kernel_timings -- --ignored --nocapture`
#[test]
#[ignore]
fn kernel_timings() {
    use std::time::Instant;
    // (kernel, 8-bit activations): every kernel but the portable one on
    // 12-bit activations, then the VNNI ones on 8-bit (`vpdpbusd`).
    let mut kernels: Vec<(Kernel, bool)> = crate::fast::Isa::available()
        .into_iter()
        .skip(1)
        .map(|isa| (Kernel::for_isa(isa), false))
        .collect();
    let u8s: Vec<(Kernel, bool)> = kernels
        .iter()
        .filter(|(k, _)| k.has_u8())
        .map(|&(k, _)| (k, true))
        .collect();
    kernels.extend(u8s);
    let rounds = 15;
    for &(m, k, n) in &BERT_SHAPES {
        let x = random_vec(m * k, 1);
        let w = random_vec(n * k, 2);
        let q = QLinear::from_torch(&w, vec![0.0; n], n, k);
        let mut rows = QuantizedRows::default();
        rows.quantize(&x, m, k);
        let mut q8 = q.clone();
        q8.set_max_levels(256);
        let mut rows8 = QuantizedRows::default();
        rows8.quantize_scaled(&x, m, k, None, 256, f32::INFINITY);
        rows8.fill_u8();
        let mut out = vec![0.0; m * n];
        let ops = 2.0 * (m * k * n) as f64;
        let iters = (2e9 / ops).ceil() as usize;
        let mut rates = vec![Vec::new(); kernels.len()];
        for round in 0..rounds {
            for i in 0..kernels.len() {
                let i = (i + round) % kernels.len();
                let (kernel, eight) = kernels[i];
                let (layer, rows) = if eight {
                    (&q8, &mut rows8)
                } else {
                    (&q, &mut rows)
                };
                let t = Instant::now();
                for _ in 0..iters {
                    layer.forward_quantized(&mut *rows, &mut out, false, 1, kernel);
                }
                rates[i].push(ops * iters as f64 / t.elapsed().as_secs_f64() / 1e9);
            }
        }
        let mut line = format!("[{m},{k}]x[{k},{n}]:");
        for ((kernel, eight), r) in kernels.iter().zip(&rates) {
            let mut ratio: Vec<f64> = r.iter().zip(&rates[0]).map(|(a, b)| a / b).collect();
            ratio.sort_by(f64::total_cmp);
            let mut g = r.clone();
            g.sort_by(f64::total_cmp);
            let label = if *eight { "-u8" } else { "" };
            line += &format!(
                "  {kernel:?}{label} {:.1} GOP/s ({:.3}x, {:.3}-{:.3})",
                g[rounds / 2],
                ratio[rounds / 2],
                ratio[0],
                ratio[rounds - 1]
            );
        }
        println!("{line}");
    }
}

/// 8-bit activations: every kernel within the error bound of the product
/// and bit for bit the portable one — the VNNI kernels on `vpdpbusd`
/// (`u8 × s8`), the others on the same unsigned levels in `i16` lanes.
#[test]
fn every_kernel_with_8_bit_activations_is_within_its_bound_and_equals_portable() {
    let kernels = Kernel::available();
    for &kernel in &kernels {
        for &(m, k, n) in SIZES {
            for (accumulate, threads) in [(false, 1), (true, 1), (true, 2)] {
                assert!(check_levels(m, k, n, accumulate, threads, kernel, 256) <= 1.0);
            }
            let x = random_vec(m * k, 15);
            let w = random_vec(n * k, 16);
            let mut layer = QLinear::from_torch(&w, vec![0.0; n], n, k);
            layer.set_max_levels(256);
            let mut rows = QuantizedRows::default();
            rows.quantize_scaled(&x, m, k, None, 256, f32::INFINITY);
            assert!(rows.unsigned);
            assert!(rows.q[..m * rows.kp]
                .iter()
                .all(|&q| (0..=255).contains(&q)));
            rows.fill_u8();
            let init = random_vec(m * n, 17);
            for (accumulate, threads) in [(false, 1), (true, 3)] {
                let mut a = init.clone();
                let mut b = init.clone();
                layer.forward_quantized(&mut rows, &mut a, accumulate, 1, Kernel::Portable);
                layer.forward_quantized(&mut rows, &mut b, accumulate, threads, kernel);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
                assert_eq!(bits(&a), bits(&b), "{kernel:?} m={m} k={k} n={n}");
            }
        }
        eprintln!(
            "8-bit activations, kernel {kernel:?} ({}): equals portable bit for bit",
            if kernel.has_u8() { "u8 × s8" } else { "i16" }
        );
    }
}

/// The `u8 × s8` tile at the extremes (every activation 255 or 0, every
/// weight ±127, every row count, odd strides): the exact `i32` sums, as
/// the portable tile gives them.
#[test]
fn every_u8_tile_is_exact_at_the_extremes() {
    for kernel in Kernel::available() {
        for quads in [1usize, 3, 96, 384] {
            let lda = 4 * quads + 4;
            let a: Vec<u8> = (0..MR * lda)
                .map(|i| if i % 7 == 3 { 0 } else { 255 })
                .collect();
            let w: Vec<i8> = (0..quads * NR * 4)
                .map(|i| if i % 3 == 0 { -127 } else { 127 })
                .collect();
            for mr in 1..=MR {
                let mut want = [[0i32; NR]; MR];
                let mut got = [[0i32; NR]; MR];
                gemm_u8_portable(&a, lda, mr, &w, quads, &mut want);
                kernel.tile_u8(&a, lda, mr, &w, quads, &mut got);
                assert_eq!(want[..mr], got[..mr], "{kernel:?} quads={quads} mr={mr}");
                let row0: i64 = (0..4 * quads)
                    .map(|p| a[p] as i64 * w[(p / 4) * NR * 4 + (p % 4)] as i64)
                    .sum();
                assert_eq!(i64::from(want[0][0]), row0, "exact sum");
            }
        }
    }
}

/// Wide rows (see `quantize`'s module docs): in an 8-bit layer, exactly
/// the rows whose range exceeds [`WIDE_ABOVE`] standard deviations get
/// [`quantize::wide_levels`] levels, every kernel gives the portable
/// kernel's bits for them (the VNNI ones multiplying the high and low bits
/// as two byte rows, the others the levels themselves in `i16` lanes), on
/// one thread or several, and every element stays within the error bound
/// of its row's finer scale.
#[test]
fn wide_rows_get_finer_levels_and_every_kernel_gives_the_same_bits() {
    let kernels = Kernel::available();
    // One outlier can stretch a row of `k` values to at most about √k
    // deviations, so rows narrower than 256 are never wide at 16.
    for &(m, k, n) in &[(1, 384, 16), (7, 401, 17), (40, 384, 96), (29, 1536, 40)] {
        // Every third row carries an outlier channel about 100× its
        // deviation (19 deviations of range at k = 384): wide.
        let mut x = random_vec(m * k, 41 + k as u64);
        let planted: Vec<bool> = (0..m).map(|i| i % 3 == 0).collect();
        for i in (0..m).filter(|&i| planted[i]) {
            x[i * k + (i * 7) % k] = 60.0;
        }
        let w: Vec<f32> = random_vec(n * k, 42).iter().map(|v| v * 0.1).collect();
        let mut layer = QLinear::from_torch(&w, vec![0.0; n], n, k);
        layer.set_max_levels(256);
        let mut rows = QuantizedRows::default();
        rows.quantize_scaled(&x, m, k, None, 256, WIDE_ABOVE);
        let wide_levels = quantize::wide_levels(k).expect("BERT widths allow wide rows");
        assert_eq!(wide_levels, 4096);
        assert_eq!(rows.wide_rows(), planted.iter().filter(|&&p| p).count());
        for (i, &p) in planted.iter().enumerate() {
            let top = rows.q[i * rows.kp..i * rows.kp + k].iter().max().copied();
            if p {
                assert_eq!(top, Some(4095), "row {i}: wide, 12 bits");
            } else {
                assert!(top <= Some(255), "row {i}: 8 bits");
            }
        }
        rows.fill_u8();
        let init = random_vec(m * n, 43);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        let mut want = init.clone();
        layer.forward_quantized(&mut rows, &mut want, true, 1, Kernel::Portable);
        let exact = reference(&x, &w, m, k, n);
        for i in 0..m {
            for j in 0..n {
                let err =
                    (want[i * n + j] as f64 - init[i * n + j] as f64 - exact[i * n + j]).abs();
                let bound = error_bound(&layer, &rows, &x, i, j) + 1e-5;
                assert!(err <= bound, "({i},{j}): {err} > {bound}");
            }
        }
        for &kernel in &kernels {
            for threads in [1, 3] {
                let mut got = init.clone();
                layer.forward_quantized(&mut rows, &mut got, true, threads, kernel);
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "{kernel:?} m={m} k={k} n={n} threads={threads}"
                );
            }
        }
    }
    eprintln!("wide rows: every kernel equals portable bit for bit");
}

/// A layer without 8-bit activations never makes a row wide, nor does an
/// 8-bit one whose rows are all tame.
#[test]
fn no_wide_rows_without_8_bits_or_outliers() {
    let (m, k) = (12, 384);
    let tame = random_vec(m * k, 44);
    let mut outlier = tame.clone();
    outlier[5] = 80.0;
    let mut rows = QuantizedRows::default();
    rows.quantize_scaled(&outlier, m, k, None, u32::MAX, WIDE_ABOVE);
    assert_eq!(rows.wide_rows(), 0, "12-bit rows are never wide");
    rows.quantize_scaled(&tame, m, k, None, 256, WIDE_ABOVE);
    assert_eq!(
        rows.wide_rows(),
        0,
        "uniform rows span about 3.5 deviations"
    );
    rows.quantize_scaled(&outlier, m, k, None, 256, f32::INFINITY);
    assert_eq!(rows.wide_rows(), 0, "no threshold, no wide rows");
    rows.quantize_scaled(&outlier, m, k, None, 256, WIDE_ABOVE);
    assert_eq!(rows.wide_rows(), 1);
}

/// What [`row_passes_give_the_same_bits_in_every_build`] compares: the
/// moments' bits, the bytes, a wide row's high and low bytes.
type RowPasses = ([u32; 2], Vec<u8>, Vec<u8>, Vec<u8>);

/// The quantiser's row passes give the same bits in every build: the
/// moments that decide which rows are wide (a row wide in one build and
/// not in another would change every kernel's result) and the byte
/// conversions.
#[test]
fn row_passes_give_the_same_bits_in_every_build() {
    let builds = crate::fast::Isa::available();
    for len in [1, 7, 8, 33, 384, 1537] {
        let row: Vec<f32> = random_vec(len, len as u64)
            .iter()
            .enumerate()
            .map(|(i, v)| if i % 97 == 5 { v * 40.0 } else { *v })
            .collect();
        let levels: Vec<i16> = (0..len).map(|i| ((i * 2654435761) % 4096) as i16).collect();
        let mut want: Option<RowPasses> = None;
        for &isa in &builds {
            let mut sums = [0.0; 2];
            moments_on(isa, &row, &mut sums);
            let mut bytes = vec![0u8; len + 3];
            to_bytes_on(isa, &levels, &mut bytes);
            let (mut hi, mut lo) = (vec![0u8; len + 3], vec![0u8; len + 3]);
            split_bytes_on(isa, &levels, &mut hi, &mut lo, 4);
            for p in 0..len {
                assert_eq!(u16::from(hi[p]) << 4 | u16::from(lo[p]), levels[p] as u16);
            }
            assert!(
                hi[len..].iter().chain(&lo[len..]).all(|&b| b == 0),
                "tails untouched"
            );
            let got = ([sums[0].to_bits(), sums[1].to_bits()], bytes, hi, lo);
            match &want {
                None => want = Some(got),
                Some(w) => assert!(*w == got, "{} differs at {len}", isa.name()),
            }
        }
    }
    eprintln!(
        "builds: {:?}",
        builds.iter().map(|i| i.name()).collect::<Vec<_>>()
    );
}
