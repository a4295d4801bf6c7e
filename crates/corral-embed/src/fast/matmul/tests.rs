//! Tests of the fp32 dense layers: `gemm` and the AVX-512 panels against
//! candle, threads, layouts, and the timing runs (ignored).

use super::super::test_util::{candle_mat, max_abs_diff, random_vec, BERT_SHAPES};
use super::*;
use candle_core::{Device, Tensor};

fn check(m: usize, k: usize, n: usize, accumulate: bool, threads: usize) {
    let x = random_vec(m * k, 1);
    let w = random_vec(n * k, 2);
    let init = random_vec(m * n, 3);
    let xt = candle_mat(&x, m, k);
    let wc = candle_mat(&w, n, k);
    let mut want = xt.matmul(&wc.t().unwrap()).unwrap();
    if accumulate {
        want = (want + Tensor::from_slice(&init, (m, n), &Device::Cpu).unwrap()).unwrap();
    }
    let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();

    let lin = Linear::from_torch(w.clone(), vec![0.0; n], n, k);
    let mut out = init.clone();
    lin.forward_no_bias(&x, &mut out, m, accumulate, threads);
    let d = max_abs_diff(&out, &want);
    assert!(d < 1e-5, "m={m} k={k} n={n}: max diff {d}");

    // The same product with Wᵀ stored explicitly as [k, n].
    let wt: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
    let mut out = init.clone();
    matmul(
        &mut out,
        &x,
        &wt,
        m,
        k,
        n,
        RhsLayout::KByN,
        accumulate,
        threads,
    );
    let d = max_abs_diff(&out, &want);
    assert!(d < 1e-5, "KByN m={m} k={k} n={n}: max diff {d}");
}

#[test]
fn matmul_matches_candle_odd_sizes() {
    for &(m, k, n) in &[
        (1, 1, 1),
        (3, 5, 7),
        (17, 33, 65),
        (37, 384, 96),
        (64, 96, 13),
    ] {
        check(m, k, n, false, 1);
        check(m, k, n, true, 1);
        check(m, k, n, true, 2);
    }
}

/// Fewer rows than [`COLUMN_SPLIT_ROWS`] on several threads: the
/// columns are shared out (ragged last job, more threads than whole
/// column groups, one row), and every element matches candle's.
#[test]
fn few_rows_split_by_columns_match_candle() {
    for &(m, k, n) in &[(1, 64, 65), (5, 33, 97), (19, 384, 1152), (63, 96, 200)] {
        for threads in [2, 3, 4, 7] {
            check(m, k, n, false, threads);
            check(m, k, n, true, threads);
        }
    }
}

/// Not a check: prints the time of BERT-sized products of a few rows
/// (a lone sentence's tokens) on one thread, on two through `gemm`'s
/// own threading and on two by columns. `cargo test --release -p
/// corral-embed fast::matmul::tests::small_m -- --ignored --nocapture`
#[test]
#[ignore]
fn small_m_timings() {
    use std::time::Instant;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for &(k, n) in &[(384, 1152), (384, 384), (384, 1536), (1536, 384)] {
        for m in [8, 19, 32, 64, 128] {
            let x = random_vec(m * k, 1);
            let w = random_vec(n * k, 2);
            let mut out = vec![0.0; m * n];
            let mut times = [0.0f64; 3];
            pool.install(|| {
                for it in 0..200 {
                    for (which, time) in times.iter_mut().enumerate() {
                        let t = Instant::now();
                        match which {
                            0 => matmul(&mut out, &x, &w, m, k, n, RhsLayout::NByK, false, 1),
                            // gemm's own threading, as before the column split.
                            1 => gemm_own_threads(&mut out, &x, &w, m, k, n),
                            _ => matmul(&mut out, &x, &w, m, k, n, RhsLayout::NByK, false, 2),
                        }
                        if it >= 20 {
                            *time += t.elapsed().as_secs_f64();
                        }
                    }
                }
            });
            let us = |t: f64| t / 180.0 * 1e6;
            println!(
                "m={m:>3} k={k:>4} n={n:>4}: 1 thread {:>7.1} µs, 2 via gemm {:>7.1} µs, 2 by columns {:>7.1} µs",
                us(times[0]),
                us(times[1]),
                us(times[2])
            );
        }
    }
}

/// `gemm`'s own two-thread split of the whole product, whatever `m`.
fn gemm_own_threads(out: &mut [f32], x: &[f32], w: &[f32], m: usize, k: usize, n: usize) {
    assert!(x.len() >= m * k && w.len() >= k * n && out.len() >= m * n);
    // SAFETY: the sizes are checked just above; `out` is exclusive.
    #[allow(unsafe_code)]
    unsafe {
        gemm_columns(
            SharedOut(out.as_mut_ptr()),
            x,
            w,
            m,
            k,
            n,
            0..n,
            RhsLayout::NByK,
            false,
            Parallelism::Rayon(2),
        )
    };
}

/// Not a check: prints GFLOP/s of the BERT-sized matmuls for both
/// layouts of the weight. `cargo test --release -p corral-embed
/// fast::matmul -- --ignored --nocapture`
#[test]
#[ignore]
fn layout_timings() {
    use std::time::Instant;
    for &(m, k, n) in &[
        (900, 384, 1152),
        (900, 384, 1536),
        (900, 1536, 384),
        (900, 384, 384),
    ] {
        let x = random_vec(m * k, 1);
        let w = random_vec(n * k, 2);
        let wt: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
        let mut out = vec![0.0; m * n];
        let (mut t_kn, mut t_nk) = (0.0, 0.0);
        for it in 0..16 {
            // Alternate which goes first, so neither always finds warm caches.
            for which in [it % 2, 1 - it % 2] {
                let t = Instant::now();
                if which == 0 {
                    matmul(&mut out, &x, &wt, m, k, n, RhsLayout::KByN, false, 1);
                    t_kn += t.elapsed().as_secs_f64();
                } else {
                    matmul(&mut out, &x, &w, m, k, n, RhsLayout::NByK, false, 1);
                    t_nk += t.elapsed().as_secs_f64();
                }
            }
        }
        let gf = 2.0 * (m * k * n) as f64 * 16.0 / 1e9;
        println!(
            "[{m},{k}]x[{k},{n}]: W transposed at load {:.1} GFLOP/s, PyTorch layout {:.1} GFLOP/s",
            gf / t_kn,
            gf / t_nk
        );
    }
}

/// Every kernel build this CPU has, forced in turn: the AVX-512 ones
/// pack the weights (and give them back unchanged) and run
/// their own kernel, the others `gemm`; each within 4e-5 of candle at
/// odd sizes (partial panels, one row, odd `k`; sums of up to 384
/// products of magnitude up to 1), accumulating or not;
/// the packed kernel gives the same bits on 1, 2 or 3 threads, split
/// by rows or by panels.
#[test]
fn every_build_matches_candle_and_threads_change_no_packed_bit() {
    use super::super::isa::{with_isa, Isa};
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    for isa in Isa::available() {
        with_isa(isa, || {
            for &(m, k, n) in &[
                (1, 1, 1),
                (1, 384, 1536),
                (3, 5, 7),
                (13, 33, 65),
                (25, 384, 40),
                (100, 97, 33),
                (130, 64, 96),
            ] {
                let x = random_vec(m * k, 7);
                let w = random_vec(n * k, 8);
                let init = random_vec(m * n, 9);
                let mut lin = Linear::from_torch(w.clone(), vec![0.0; n], n, k);
                lin.pack_for(isa);
                assert_eq!(
                    lin.packed.is_some(),
                    isa.vnni_wide().is_some(),
                    "{}",
                    isa.name()
                );
                assert_eq!(&*lin.torch_weights(), &w[..], "weights back as loaded");
                let product = candle_mat(&x, m, k)
                    .matmul(&candle_mat(&w, n, k).t().unwrap())
                    .unwrap();
                let product: Vec<f32> = product.flatten_all().unwrap().to_vec1().unwrap();
                for accumulate in [false, true] {
                    let want: Vec<f32> = if accumulate {
                        product.iter().zip(&init).map(|(p, i)| p + i).collect()
                    } else {
                        product.clone()
                    };
                    let mut one = init.clone();
                    lin.forward_no_bias(&x, &mut one, m, accumulate, 1);
                    let d = max_abs_diff(&one, &want);
                    assert!(d < 4e-5, "{} m={m} k={k} n={n}: {d}", isa.name());
                    for threads in [2, 3] {
                        let mut got = init.clone();
                        lin.forward_no_bias(&x, &mut got, m, accumulate, threads);
                        if lin.packed.is_some() {
                            assert_eq!(bits(&got), bits(&one), "m={m} n={n} threads={threads}");
                        } else {
                            let d = max_abs_diff(&got, &want);
                            assert!(
                                d < 4e-5,
                                "{} m={m} k={k} n={n} threads={threads}: {d}",
                                isa.name()
                            );
                        }
                    }
                }
            }
        });
        eprintln!("{}: matches candle", isa.name());
    }
}

#[test]
fn concat_outputs_is_column_concatenation() {
    let (k, m) = (7, 5);
    let a = Linear::from_torch(random_vec(3 * k, 4), vec![1.0; 3], 3, k);
    let b = Linear::from_torch(random_vec(2 * k, 5), vec![2.0; 2], 2, k);
    let both = Linear::concat_outputs(&[a.clone(), b.clone()]);
    let x = random_vec(m * k, 6);
    let (mut ya, mut yb, mut y) = (vec![0.0; m * 3], vec![0.0; m * 2], vec![0.0; m * 5]);
    a.forward_no_bias(&x, &mut ya, m, false, 1);
    b.forward_no_bias(&x, &mut yb, m, false, 1);
    both.forward_no_bias(&x, &mut y, m, false, 1);
    for i in 0..m {
        assert_eq!(&y[i * 5..i * 5 + 3], &ya[i * 3..i * 3 + 3]);
        assert_eq!(&y[i * 5 + 3..i * 5 + 5], &yb[i * 2..i * 2 + 2]);
    }
    assert_eq!(both.bias, vec![1.0, 1.0, 1.0, 2.0, 2.0]);
}

/// Not a check: GFLOP/s of the AVX-512 panel kernel against `gemm`
/// (one thread, BERT's shapes), alternating.
#[cfg(target_arch = "x86_64")]
#[test]
#[ignore]
#[allow(unsafe_code)]
fn avx512_timings() {
    use std::time::Instant;
    if !std::arch::is_x86_feature_detected!("avx512f") {
        return;
    }
    for &(m, k, n) in &BERT_SHAPES {
        let x = random_vec(m * k, 1);
        let w = random_vec(n * k, 2);
        let lin = Linear::from_torch(w.clone(), vec![0.0; n], n, k);
        let packed = avx512::pack(&w, n, k);
        let mut out = vec![0.0; m * n];
        let ops = 2.0 * (m * k * n) as f64;
        let iters = (3e9 / ops).ceil() as usize;
        let (mut g, mut p) = (Vec::new(), Vec::new());
        for _ in 0..7 {
            let t = Instant::now();
            for _ in 0..iters {
                lin.forward_no_bias(&x, &mut out, m, false, 1);
            }
            g.push(ops * iters as f64 / t.elapsed().as_secs_f64() / 1e9);
            let t = Instant::now();
            for _ in 0..iters {
                // SAFETY: the CPU has AVX-512 F (checked above); `out`
                // is m·n values this loop alone writes.
                unsafe {
                    avx512::product(
                        &x,
                        &packed,
                        k,
                        n,
                        0..m,
                        0..n.div_ceil(avx512::NR),
                        SharedOut(out.as_mut_ptr()),
                        false,
                    )
                };
            }
            p.push(ops * iters as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
        g.sort_by(f64::total_cmp);
        p.sort_by(f64::total_cmp);
        println!(
            "[{m},{k}]x[{k},{n}]: gemm {:.1} GFLOP/s, avx512 panels {:.1} ({:.2}x)",
            g[3],
            p[3],
            p[3] / g[3]
        );
    }
}
