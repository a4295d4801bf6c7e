//! Cross-encoders and sequence classifiers against PyTorch: the four tiny
//! random models in `tests/data/tiny-{bert,xlmr}-{rerank,classify}/` (made
//! by `scripts/make_tiny_cross_encoders.py`, committed; the tests fail,
//! never skip, without them) must give PyTorch's logits within 1e-4 on
//! both engines in fp32 — every pair in one batch and alone —,
//! `CrossEncoder.predict`'s scores through [`Scorer::rerank`], the softmax
//! and label of the classifiers, and stay within a stated bound in int8.
//! (What is read before a forward pass — config, activation, pair ids — is
//! `cross_encoders_load_and_tokenize.rs`.)

mod cross_encoders;

use corral_embed::{Activation, EmbedError, Engine, PairTokenized, Quantize, ScoreInput};

use cross_encoders::*;

#[test]
fn both_engines_give_pytorch_logits_in_a_batch_and_alone() {
    for name in MODELS {
        let g = golden(name);
        let inputs = inputs(&g);
        let refs: Vec<&ScoreInput> = inputs.iter().map(|(i, _)| i).collect();
        for engine in [Engine::Fast, Engine::Candle] {
            let mut s = load(name, engine, Quantize::None);
            assert_eq!(s.labels().len(), g.num_labels);
            let batch = s.score(&refs).unwrap();
            assert_eq!(batch.len(), inputs.len());
            for ((input, want), got) in inputs.iter().zip(&batch) {
                let d = max_abs_diff(got, want);
                assert!(
                    d < TOL,
                    "{name} {engine} batch {input:?}: {got:?} vs {want:?}"
                );
                let alone = s.score(&[input]).unwrap();
                let d = max_abs_diff(&alone[0], want);
                assert!(d < TOL, "{name} {engine} alone {input:?}: {d}");
                // Batch-invariance: what shares the batch moves nothing
                // beyond floating-point noise.
                let d = max_abs_diff(&alone[0], got);
                assert!(
                    d < BATCH_TOL,
                    "{name} {engine} batch vs alone {input:?}: {d}"
                );
            }
        }
    }
}

#[test]
fn scores_are_cross_encoder_predict_and_classifiers_softmax() {
    for name in MODELS {
        let g = golden(name);
        for engine in [Engine::Fast, Engine::Candle] {
            let mut s = load(name, engine, Quantize::None);
            if g.num_labels == 1 {
                // One query per call: group the fixture's pairs by query.
                for p in &g.pairs {
                    let got = s.rerank(&p.query, &[p.document.as_str()]).unwrap();
                    let want = ce_predict(p);
                    assert!(
                        max_abs_diff(&got, &want) < TOL,
                        "{name} {engine}: {got:?} {want:?}"
                    );
                }
                let q = &g.pairs[0].query;
                let docs: Vec<&str> = g.pairs.iter().map(|p| p.document.as_str()).collect();
                let all = s.rerank(q, &docs).unwrap();
                assert_eq!(all.len(), docs.len());
                let first = s.rerank(q, &docs[..1]).unwrap();
                assert!((all[0] - first[0]).abs() < 1e-5);
            } else {
                assert_eq!(s.activation(), Activation::Softmax);
                let mut check = |input: ScoreInput, softmax: &[f32], label: &str| {
                    let mut logits = s.score(&[&input]).unwrap().remove(0);
                    s.activation().apply(&mut logits);
                    assert!(max_abs_diff(&logits, softmax) < TOL, "{name} {engine}");
                    let best = (0..logits.len())
                        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
                        .unwrap();
                    assert_eq!(s.labels()[best], label);
                };
                for p in &g.pairs {
                    let input = ScoreInput::pair(&p.query, &p.document);
                    check(
                        input,
                        p.softmax.as_ref().unwrap(),
                        p.label.as_ref().unwrap(),
                    );
                }
                for t in &g.texts {
                    check(ScoreInput::Text(t.text.clone()), &t.softmax, &t.label);
                }
            }
        }
    }
}

#[test]
fn tokens_score_as_their_text_and_other_truncations_as_pytorch() {
    for name in MODELS {
        let g = golden(name);
        for engine in [Engine::Fast, Engine::Candle] {
            let mut s = load(name, engine, Quantize::None);
            let mut inputs = Vec::new();
            for p in &g.pairs {
                let t = PairTokenized {
                    ids: p.ids.clone(),
                    type_ids: p.type_ids.clone(),
                    truncated: false,
                };
                inputs.push((ScoreInput::Tokens(t), p.logits.clone()));
                if let Some(Some(alt)) = &p.only_second {
                    let t = PairTokenized {
                        ids: alt.ids.clone(),
                        type_ids: alt.type_ids.clone(),
                        truncated: true,
                    };
                    inputs.push((ScoreInput::Tokens(t), alt.logits.clone()));
                }
            }
            let refs: Vec<&ScoreInput> = inputs.iter().map(|(i, _)| i).collect();
            let got = s.score(&refs).unwrap();
            for ((input, want), got) in inputs.iter().zip(&got) {
                assert!(max_abs_diff(got, want) < TOL, "{name} {engine} {input:?}");
            }
        }
    }
}

#[test]
fn bad_tokens_are_refused_as_invalid_input() {
    let mut s = load("tiny-bert-rerank", Engine::Fast, Quantize::None);
    let tokens = |ids: Vec<u32>, type_ids: Vec<u32>| {
        ScoreInput::Tokens(PairTokenized {
            ids,
            type_ids,
            truncated: false,
        })
    };
    for bad in [
        tokens(vec![], vec![]),
        tokens(vec![2, 5, 3], vec![0, 0]),
        tokens(vec![2, 100_000, 3], vec![0, 0, 0]),
        tokens(vec![2, 5, 3], vec![0, 2, 0]),
        tokens(vec![2; 65], vec![0; 65]),
    ] {
        let err = s.score(&[&bad]).unwrap_err();
        assert!(matches!(err, EmbedError::InvalidInput(_)), "{bad:?}: {err}");
    }
    // XLM-RoBERTa has one token type.
    let mut s = load("tiny-xlmr-rerank", Engine::Fast, Quantize::None);
    let err = s
        .score(&[&tokens(vec![0, 5, 2], vec![0, 1, 0])])
        .unwrap_err();
    assert!(matches!(err, EmbedError::InvalidInput(_)), "{err}");
}

#[test]
fn int8_stays_within_its_bound_of_pytorch() {
    within_bound_of_pytorch(
        Quantize::Int8,
        (INT8_RERANK_TOL, INT8_CLASSIFY_TOL),
        is_x86_feature_detected_avx2(),
    );
}

#[test]
fn bf16_stays_within_its_bound_of_pytorch() {
    within_bound_of_pytorch(
        Quantize::Bf16,
        (BF16_RERANK_TOL, BF16_CLASSIFY_TOL),
        corral_embed::fast::kernel_isa().starts_with("avx512") && is_x86_feature_detected_bf16(),
    );
}

/// Every fixture's logits in `mode` within `(rerank, classify)` of
/// PyTorch's fp32 ones; and, where `runs` (the CPU has the mode's kernel),
/// not fp32's own logits.
fn within_bound_of_pytorch(mode: Quantize, (rerank, classify): (f32, f32), runs: bool) {
    for name in MODELS {
        let g = golden(name);
        let tol = if g.num_labels == 1 { rerank } else { classify };
        let inputs = inputs(&g);
        let refs: Vec<&ScoreInput> = inputs.iter().map(|(i, _)| i).collect();
        let mut s = load(name, Engine::Fast, mode);
        let got = s.score(&refs).unwrap();
        let mut fp32 = load(name, Engine::Fast, Quantize::None);
        let exact = fp32.score(&refs).unwrap();
        let (mut worst, mut moved) = (0f32, 0f32);
        for (((input, want), got), exact) in inputs.iter().zip(&got).zip(&exact) {
            let d = max_abs_diff(got, want);
            worst = worst.max(d);
            moved = moved.max(max_abs_diff(got, exact));
            assert!(d < tol, "{name} {mode} {input:?}: {got:?} vs {want:?}");
        }
        eprintln!("{name}: largest |{mode} - PyTorch| logit difference {worst} (bound {tol})");
        // The mode really ran (where the CPU has it): the logits moved.
        if runs {
            assert!(moved > 1e-6, "{name}: {mode} gave fp32's logits exactly");
        } else {
            assert_eq!(moved, 0.0, "{name}: {mode} fell back, yet is not fp32");
        }
    }
}

fn is_x86_feature_detected_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn is_x86_feature_detected_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
