//! all-MiniLM-L6-v2 gives what sentence-transformers gives: the 24 public
//! golden texts reach cosine ≥ 0.9999 with the reference embeddings, and
//! their word-piece ids match the reference tokenizer's.
//!
//! The model is found through `CORRAL_MODEL_DIR` (else the default fetched
//! location). A missing model fails these tests, naming the command that
//! fetches it; they never skip.

mod common;

use std::path::PathBuf;

use common::cosine;
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

fn check_golden(e: &Embedder) {
    let golden: Golden = fixture("minilm_l6_v2_public.json");
    assert_eq!(golden.cases.len(), 24);
    assert_eq!(e.pooling().to_string(), golden.pooling);
    assert_eq!(e.pooling(), Pooling::Mean);
    assert_eq!(e.normalize(), golden.normalize);
    assert_eq!(e.dim(), 384);
    let texts: Vec<&str> = golden.cases.iter().map(|c| c.text.as_str()).collect();
    let got = e.embed(&texts).unwrap();
    let mut worst = (f64::MAX, "");
    for (case, v) in golden.cases.iter().zip(&got) {
        let c = cosine(v, &case.embedding);
        if c < worst.0 {
            worst = (c, &case.text);
        }
        assert!(c >= 0.9999, "{:?}: cosine {c}", case.text);
    }
    eprintln!("lowest cosine 1 - {:.2e} for {:?}", 1.0 - worst.0, worst.1);
}

#[test]
fn golden_embeddings_match_sentence_transformers() {
    check_golden(&minilm(2));
}

#[test]
fn golden_embeddings_match_with_the_candle_engine_too() {
    check_golden(&minilm_with(1, Engine::Candle));
}
