//! all-MiniLM-L6-v2 gives what sentence-transformers gives: on the 24 public
//! golden texts every element is within [`MAX_ABS`] of the reference
//! embedding and every norm within [`NORM_TOL`] of it (cosine alone ignores
//! length, and 0.9999 lets a tanh GELU through), on both engines; without
//! normalisation both engines give the same vectors (so pooling and the
//! norm are pinned where the reference has none); and the word-piece ids
//! match the reference tokenizer's.
//!
//! Breakage these tests were checked to catch (each planted by hand, the
//! test run, then reverted): GELU by its tanh approximation; no L2
//! normalisation; mean pooling over padding too (the mask ignored).
//!
//! The model is found through `CORRAL_MODEL_DIR` (else the default fetched
//! location). A missing model fails these tests, naming the command that
//! fetches it; they never skip.

mod common;

use std::path::PathBuf;

use common::{cosine, max_abs_diff, norm};
use corral_embed::{model_dir, EmbedSpec, Embedder, Engine, Pooling};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    pooling: String,
    normalize: bool,
    cases: Vec<GoldenCase>,
}

#[derive(Deserialize)]
struct GoldenCase {
    text: String,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct GoldenTokens {
    max_seq_length: usize,
    cases: Vec<TokenCase>,
}

#[derive(Deserialize)]
struct TokenCase {
    text: String,
    input_ids: Vec<u32>,
    truncated: bool,
}

fn fixture<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn minilm_with(threads: usize, engine: Engine) -> Embedder {
    let dir = model_dir::resolve_model_dir(None).unwrap_or_else(|e| {
        panic!("the golden test needs all-MiniLM-L6-v2 (set CORRAL_MODEL_DIR or fetch it): {e}")
    });
    Embedder::load(&EmbedSpec::new(dir).with_engine(engine), threads).unwrap()
}

fn minilm(threads: usize) -> Embedder {
    minilm_with(threads, Engine::default())
}

#[test]
fn golden_token_ids_match_the_reference_tokenizer() {
    let tokens: GoldenTokens = fixture("minilm_l6_v2_public_tokens.json");
    let e = minilm(1);
    assert_eq!(e.max_seq_length(), tokens.max_seq_length);
    assert_eq!(tokens.cases.len(), 24);
    assert!(tokens.cases.iter().any(|c| c.truncated));
    for case in &tokens.cases {
        assert_eq!(
            e.token_ids(&case.text).unwrap(),
            case.input_ids,
            "{:?}",
            case.text
        );
    }
}

/// Largest element-wise difference allowed from the reference vectors
/// (reached: see the test's output; fp32 noise on both engines is ~1e-7).
const MAX_ABS: f32 = 1e-5;
/// Largest difference allowed between a vector's norm and the reference's.
const NORM_TOL: f32 = 1e-5;

fn check_golden(e: &mut Embedder) {
    let golden: Golden = fixture("minilm_l6_v2_public.json");
    assert_eq!(golden.cases.len(), 24);
    assert_eq!(e.pooling().to_string(), golden.pooling);
    assert_eq!(e.pooling(), Pooling::Mean);
    assert_eq!(e.normalize(), golden.normalize);
    assert_eq!(e.dim(), 384);
    let texts: Vec<&str> = golden.cases.iter().map(|c| c.text.as_str()).collect();
    let got = e.embed(&texts).unwrap();
    let mut worst = (f64::MAX, "");
    let (mut worst_abs, mut worst_norm) = (0f32, 0f32);
    for (case, v) in golden.cases.iter().zip(&got) {
        let c = cosine(v, &case.embedding);
        if c < worst.0 {
            worst = (c, &case.text);
        }
        assert!(c >= 0.9999, "{:?}: cosine {c}", case.text);
        let d = max_abs_diff(v, &case.embedding);
        assert!(d <= MAX_ABS, "{:?}: max abs diff {d}", case.text);
        let n = (norm(v) - norm(&case.embedding)).abs();
        assert!(n <= NORM_TOL, "{:?}: norm differs by {n}", case.text);
        worst_abs = worst_abs.max(d);
        worst_norm = worst_norm.max(n);
    }
    eprintln!(
        "lowest cosine 1 - {:.2e} for {:?}; largest max abs diff {worst_abs:.2e}, norm diff {worst_norm:.2e}",
        1.0 - worst.0,
        worst.1
    );
}

#[test]
fn golden_embeddings_match_sentence_transformers() {
    check_golden(&mut minilm(2));
}

#[test]
fn golden_embeddings_match_with_the_candle_engine_too() {
    check_golden(&mut minilm_with(1, Engine::Candle));
}

/// Without normalisation the reference has no vectors, so the two engines
/// (one of them candle-transformers' BERT, computing padding rows that
/// masked pooling must skip) are held to each other element-wise, in one
/// padded batch, and each one's direction to the reference.
#[test]
fn unnormalized_vectors_agree_across_engines_and_point_at_the_reference() {
    let golden: Golden = fixture("minilm_l6_v2_public.json");
    let texts: Vec<&str> = golden.cases.iter().map(|c| c.text.as_str()).collect();
    let dir = model_dir::resolve_model_dir(None).unwrap_or_else(|e| panic!("{e}"));
    let load = |engine| {
        let spec = EmbedSpec::new(&dir)
            .with_engine(engine)
            .with_normalize(false);
        Embedder::load(&spec, 1).unwrap()
    };
    let fast = load(Engine::Fast).embed(&texts).unwrap();
    let candle = load(Engine::Candle).embed(&texts).unwrap();
    let mut worst = 0f32;
    for ((a, b), case) in fast.iter().zip(&candle).zip(&golden.cases) {
        // Unnormalised means have norms of a few units: allow the same
        // relative error as the normalised check.
        let scale = norm(b).max(1.0);
        let d = max_abs_diff(a, b) / scale;
        assert!(
            d <= MAX_ABS,
            "{:?}: engines differ by {d} (relative)",
            case.text
        );
        assert!(
            (norm(a) - norm(b)).abs() / scale <= NORM_TOL,
            "{:?}: norms {} vs {}",
            case.text,
            norm(a),
            norm(b)
        );
        assert!(
            (norm(a) - 1.0).abs() > 0.01,
            "{:?}: normalised anyway",
            case.text
        );
        let unit: Vec<f32> = a.iter().map(|x| x / norm(a)).collect();
        let r = max_abs_diff(&unit, &case.embedding);
        assert!(r <= MAX_ABS, "{:?}: direction off by {r}", case.text);
        worst = worst.max(d);
    }
    eprintln!("unnormalised: largest relative max abs diff between engines {worst:.2e}");
}
