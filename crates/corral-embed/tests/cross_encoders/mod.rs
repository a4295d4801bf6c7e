//! The four tiny cross-encoder fixtures (`tests/data/tiny-{bert,xlmr}-{rerank,classify}/`,
//! made by `scripts/make_tiny_cross_encoders.py`, committed) and their
//! golden outputs from PyTorch, shared by the cross-encoder tests.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use corral_embed::{EmbedSpec, Engine, Quantize, ScoreInput, Scorer};
use serde::Deserialize;

/// Largest difference allowed between a Rust and a PyTorch logit or score
/// (fp32).
pub const TOL: f32 = 1e-4;

/// Largest difference allowed between an input's logits alone and in a
/// mixed batch (fp32): the same arithmetic up to the order of sums.
pub const BATCH_TOL: f32 = 1e-5;

/// Largest difference allowed between an int8 logit (fast engine,
/// `Quantize::Int8`: every dense layer of the encoder in int8, the head in
/// fp32) and PyTorch's fp32 one, for the one-label rerankers. Measured on
/// these fixtures, every pair and text, batched: 0.033 (BERT) and 0.028
/// (XLM-R) on logits of 0.5 to 3.3 — so a sigmoid score moves by at most
/// a quarter of that, under 0.01. The tiny models' random weights (large,
/// untrained) are harsher on int8 than trained ones.
pub const INT8_RERANK_TOL: f32 = 0.05;

/// The same for the three-label classifiers, on logits of -3.1 to 2.0:
/// measured 0.076 (BERT) and 0.132 (XLM-R) with 12-bit activations (the
/// AVX2 build), 0.103 and 0.159 with every layer's in 8 bits (the AVX-512
/// VNNI builds; the rerankers stay at 0.026 and 0.035 there).
pub const INT8_CLASSIFY_TOL: f32 = 0.2;

/// The same for bf16 (`Quantize::Bf16`: every dense layer of the encoder
/// in bf16, the head in fp32), rerankers: measured 0.012 (BERT and XLM-R)
/// on Zen 4, against int8's 0.026 and 0.035.
pub const BF16_RERANK_TOL: f32 = 0.02;

/// bf16, classifiers: measured 0.049 (BERT) and 0.034 (XLM-R), against
/// int8's 0.103 and 0.159.
pub const BF16_CLASSIFY_TOL: f32 = 0.075;

#[derive(Deserialize)]
pub struct Golden {
    pub num_labels: usize,
    pub id2label: std::collections::BTreeMap<String, String>,
    pub ce_activation: String,
    pub pairs: Vec<GoldenPair>,
    #[serde(default)]
    pub texts: Vec<GoldenText>,
}

#[derive(Deserialize)]
pub struct GoldenPair {
    pub query: String,
    pub document: String,
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    pub logits: Vec<f32>,
    pub ce_predict: serde_json::Value,
    #[serde(default)]
    pub only_second: Option<Option<OnlySecond>>,
    #[serde(default)]
    pub softmax: Option<Vec<f32>>,
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Deserialize)]
pub struct OnlySecond {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    pub logits: Vec<f32>,
}

#[derive(Deserialize)]
pub struct GoldenText {
    pub text: String,
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    pub logits: Vec<f32>,
    pub softmax: Vec<f32>,
    pub label: String,
}

pub const MODELS: [&str; 4] = [
    "tiny-bert-rerank",
    "tiny-xlmr-rerank",
    "tiny-bert-classify",
    "tiny-xlmr-classify",
];

pub fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The golden output; panics (the test fails) when the fixture is missing.
pub fn golden(name: &str) -> Golden {
    let path = dir(name).join("golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the fixture is missing ({}: {e}); it is committed — regenerate it with \
             scripts/make_tiny_cross_encoders.py",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

pub fn load(name: &str, engine: Engine, quantize: Quantize) -> Scorer {
    let spec = EmbedSpec::new(dir(name))
        .with_engine(engine)
        .with_quantize(quantize);
    let s = Scorer::load(&spec, 1).unwrap();
    assert_eq!(
        s.engine(),
        engine,
        "{engine} must run {name}, not a fallback"
    );
    s
}

/// The embedding tests' helpers; the cross-encoder tests share their
/// `max_abs_diff`.
#[path = "../common/mod.rs"]
mod common;
#[allow(unused_imports)] // used by cross_encoders_match_pytorch, not by every binary
pub use common::max_abs_diff;

pub fn ce_predict(p: &GoldenPair) -> Vec<f32> {
    match &p.ce_predict {
        serde_json::Value::Array(v) => v.iter().map(|x| x.as_f64().unwrap() as f32).collect(),
        x => vec![x.as_f64().unwrap() as f32],
    }
}

/// Every pair of a model, then (classifiers) every single text.
pub fn inputs(g: &Golden) -> Vec<(ScoreInput, Vec<f32>)> {
    let mut v: Vec<(ScoreInput, Vec<f32>)> = g
        .pairs
        .iter()
        .map(|p| (ScoreInput::pair(&p.query, &p.document), p.logits.clone()))
        .collect();
    v.extend(
        g.texts
            .iter()
            .map(|t| (ScoreInput::Text(t.text.clone()), t.logits.clone())),
    );
    v
}
