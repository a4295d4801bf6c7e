//! Test support: a tiny BERT model (random weights, a small WordPiece
//! vocabulary) written to a temporary directory in the same layout as a
//! sentence-transformers model, and the path of the real default model.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde_json::{json, Value};

/// Hidden size of the tiny model.
pub const HIDDEN: usize = 32;
/// Position embeddings of the tiny model (its hard length limit).
pub const MAX_POSITIONS: usize = 64;

/// How to write the tiny model.
#[derive(Debug, Clone)]
pub struct Tiny {
    /// Pooling declared in `1_Pooling/config.json` (`None`: no
    /// sentence-transformers files at all).
    pub pooling: Option<&'static str>,
    /// `max_seq_length` in `sentence_bert_config.json`.
    pub max_seq_length: usize,
    /// Seed of the random weights.
    pub seed: u64,
}

impl Default for Tiny {
    fn default() -> Self {
        Self {
            pooling: Some("mean"),
            max_seq_length: 24,
            seed: 7,
        }
    }
}

/// The vocabulary: special tokens, some words, every ASCII letter and digit
/// alone and as a continuation piece, and punctuation — so every ASCII word
/// tokenizes without `[UNK]`.
pub fn vocab() -> Vec<String> {
    let mut v: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for w in [
        "the", "cat", "sat", "on", "mat", "hello", "world", "dog", "runs", "fast", "slow", "is",
        "a", "of", "and", "in", "to", "it",
    ] {
        if !v.iter().any(|x| x == w) {
            v.push(w.to_string());
        }
    }
    for c in ('a'..='z').chain('0'..='9') {
        if !v.contains(&c.to_string()) {
            v.push(c.to_string());
        }
        v.push(format!("##{c}"));
    }
    for p in ".,!?;:'\"()[]{}<>-_/\\@#$%^&*+=|~`".chars() {
        v.push(p.to_string());
    }
    v
}

/// A deterministic generator of weights in (-scale, scale).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, scale: f32) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let unit = ((self.0 >> 40) as f32) / ((1u64 << 24) as f32);
        (unit * 2.0 - 1.0) * scale
    }

    fn tensor(&mut self, shape: &[usize], scale: f32, offset: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| offset + self.next(scale)).collect();
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
    }
}

/// Writes the tiny model into `dir` (created if needed) and returns `dir`.
pub fn write_tiny_model(dir: &Path, tiny: &Tiny) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let vocab = vocab();
    let layers = 2;
    let intermediate = 64;
    let config = json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": vocab.len(),
        "hidden_size": HIDDEN,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "intermediate_size": intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": MAX_POSITIONS,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "use_cache": true
    });
    write_json(&dir.join("config.json"), &config);
    write_json(&dir.join("tokenizer.json"), &tokenizer_json(&vocab));

    let mut rng = Lcg(tiny.seed);
    let mut w: HashMap<String, Tensor> = HashMap::new();
    let h = HIDDEN;
    w.insert(
        "embeddings.word_embeddings.weight".into(),
        rng.tensor(&[vocab.len(), h], 1.0, 0.0),
    );
    w.insert(
        "embeddings.position_embeddings.weight".into(),
        rng.tensor(&[MAX_POSITIONS, h], 0.5, 0.0),
    );
    w.insert(
        "embeddings.token_type_embeddings.weight".into(),
        rng.tensor(&[2, h], 0.5, 0.0),
    );
    w.insert(
        "embeddings.LayerNorm.weight".into(),
        rng.tensor(&[h], 0.1, 1.0),
    );
    w.insert(
        "embeddings.LayerNorm.bias".into(),
        rng.tensor(&[h], 0.1, 0.0),
    );
    for l in 0..layers {
        let p = format!("encoder.layer.{l}");
        let mut lin = |name: &str, out: usize, inp: usize, rng: &mut Lcg| {
            w.insert(
                format!("{p}.{name}.weight"),
                rng.tensor(&[out, inp], 0.3, 0.0),
            );
            w.insert(format!("{p}.{name}.bias"), rng.tensor(&[out], 0.1, 0.0));
        };
        lin("attention.self.query", h, h, &mut rng);
        lin("attention.self.key", h, h, &mut rng);
        lin("attention.self.value", h, h, &mut rng);
        lin("attention.output.dense", h, h, &mut rng);
        lin("intermediate.dense", intermediate, h, &mut rng);
        lin("output.dense", h, intermediate, &mut rng);
        for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
            w.insert(format!("{p}.{ln}.weight"), rng.tensor(&[h], 0.1, 1.0));
            w.insert(format!("{p}.{ln}.bias"), rng.tensor(&[h], 0.1, 0.0));
        }
    }
    candle_core::safetensors::save(&w, dir.join("model.safetensors")).unwrap();

    if let Some(pooling) = tiny.pooling {
        write_json(
            &dir.join("modules.json"),
            &json!([
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
            ]),
        );
        std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
        write_json(
            &dir.join("1_Pooling/config.json"),
            &json!({
                "word_embedding_dimension": HIDDEN,
                "pooling_mode_cls_token": pooling == "cls",
                "pooling_mode_mean_tokens": pooling == "mean",
                "pooling_mode_max_tokens": pooling == "max",
                "pooling_mode_lasttoken": pooling == "lasttoken",
                "pooling_mode_mean_sqrt_len_tokens": false
            }),
        );
        write_json(
            &dir.join("sentence_bert_config.json"),
            &json!({"max_seq_length": tiny.max_seq_length, "do_lower_case": false}),
        );
    }
    dir.to_path_buf()
}

/// A `tokenizer.json` like the real model's: BERT normalizer and
/// pre-tokenizer, WordPiece, `[CLS] … [SEP]` template — and, like the real
/// one, fixed padding to 16 and truncation at 16, which loading must override.
fn tokenizer_json(vocab: &[String]) -> Value {
    let vocab_map: serde_json::Map<String, Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let added: Vec<Value> = vocab[..5]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"id": i, "special": true, "content": t, "single_word": false,
                   "lstrip": false, "rstrip": false, "normalized": false})
        })
        .collect();
    json!({
        "version": "1.0",
        "truncation": {"max_length": 16, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": {"Fixed": 16}, "direction": "Right", "pad_to_multiple_of": null,
                    "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}
            }
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab_map}
    })
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

/// The tiny model in a fresh temporary directory (kept alive by the guard).
pub fn tiny_model(tiny: &Tiny) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_tiny_model(&tmp.path().join("tiny-bert"), tiny);
    (tmp, dir)
}

/// Largest absolute difference between two vectors of equal length.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Cosine similarity.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// L2 norm.
pub fn norm(a: &[f32]) -> f32 {
    a.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// The committed tiny model `name` under `tests/data/`.
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// `golden.json` of the tiny model `name`, parsed as `T`; a missing fixture
/// fails the test (it is committed), naming `script`, which makes it.
pub fn fixture_golden<T: serde::de::DeserializeOwned>(name: &str, script: &str) -> T {
    let path = fixture_dir(name).join("golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the {name} fixture is missing ({}: {e}); it is committed — regenerate it \
             with {script}",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// Asserts that `e` and the `EmbedTokenizer` of `dir` give each golden
/// text its golden ids (`label` names the model in failures), and returns
/// how many texts the tokenizer truncated.
pub fn assert_golden_ids<'a>(
    label: &str,
    e: &corral_embed::Embedder,
    dir: &Path,
    cases: impl IntoIterator<Item = (&'a str, &'a [u32])>,
) -> usize {
    let tok = corral_embed::EmbedTokenizer::load(&corral_embed::EmbedSpec::new(dir)).unwrap();
    assert_eq!(tok.max_seq_length(), e.max_seq_length(), "{label}");
    let mut truncated = 0;
    for (text, ids) in cases {
        assert_eq!(e.token_ids(text).unwrap(), ids, "{label} {text:?}");
        let t = tok
            .encode(text, corral_embed::TruncationSide::Right)
            .unwrap();
        assert_eq!(t.ids, ids, "{label} {text:?} (EmbedTokenizer)");
        truncated += usize::from(t.truncated);
    }
    truncated
}

/// The embedder of `dir` on `engine` with `pooling` (the directory's when
/// `None`), unnormalised, on one thread; panics unless candle's engine
/// runs it (the families beside BERT and XLM-RoBERTa run there only).
pub fn load_on_candle(
    dir: &Path,
    engine: corral_embed::Engine,
    pooling: Option<corral_embed::Pooling>,
) -> corral_embed::Embedder {
    let mut spec = corral_embed::EmbedSpec::new(dir)
        .with_engine(engine)
        .with_normalize(false);
    spec.pooling = pooling;
    let e =
        corral_embed::Embedder::load(&spec, 1).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert_eq!(
        e.engine(),
        corral_embed::Engine::Candle,
        "{} runs on candle's engine",
        dir.display()
    );
    e
}
