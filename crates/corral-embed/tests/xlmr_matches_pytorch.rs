//! XLM-RoBERTa in both engines against PyTorch: the tiny random model in
//! `tests/data/tiny-xlmr/` (made by `scripts/make_tiny_xlmr.py`, committed;
//! the tests fail, never skip, without it) must give PyTorch's token ids
//! exactly, and its mean- and CLS-pooled vectors within 1e-4 per element —
//! each text in a mixed batch and alone, with the weights' names bare or
//! under `roberta.`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use common::{assert_golden_ids, max_abs_diff};
use corral_embed::fast::{FastBert, FastBertConfig};
use corral_embed::{EmbedSpec, EmbedTokenizer, Embedder, Engine, Pooling, TruncationSide};
use serde::Deserialize;

/// Largest difference allowed between a Rust and a PyTorch element.
const TOL: f32 = 1e-4;

#[derive(Deserialize)]
struct Golden {
    max_tokens: usize,
    texts: Vec<GoldenText>,
}

#[derive(Deserialize)]
struct GoldenText {
    text: String,
    ids: Vec<u32>,
    mean: Vec<f32>,
    cls: Vec<f32>,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-xlmr")
}

/// The golden output; panics (the test fails) when the fixture is missing.
fn golden() -> Golden {
    let path = fixture_dir().join("golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the XLM-RoBERTa fixture is missing ({}: {e}); it is committed — \
             regenerate it with scripts/make_tiny_xlmr.py",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn load(dir: &Path, engine: Engine, pooling: Pooling) -> Embedder {
    let spec = EmbedSpec::new(dir)
        .with_engine(engine)
        .with_pooling(pooling)
        .with_normalize(false);
    let e = Embedder::load(&spec, 1).unwrap();
    assert_eq!(
        e.engine(),
        engine,
        "{engine} must run the model, not a fallback"
    );
    e
}

fn want(g: &GoldenText, pooling: Pooling) -> &[f32] {
    match pooling {
        Pooling::Mean => &g.mean,
        Pooling::Cls => &g.cls,
        Pooling::LastToken | Pooling::Splade => {
            unreachable!("the golden file has only mean and cls vectors")
        }
    }
}

/// Both engines, both poolings: batch and alone against PyTorch, and batch
/// against alone.
fn check_engines_against_golden(dir: &Path) {
    let golden = golden();
    let texts: Vec<&str> = golden.texts.iter().map(|g| g.text.as_str()).collect();
    for engine in [Engine::Fast, Engine::Candle] {
        for pooling in [Pooling::Mean, Pooling::Cls] {
            let mut e = load(dir, engine, pooling);
            assert_eq!(e.dim(), 32);
            let batch = e.embed(&texts).unwrap();
            for (g, got) in golden.texts.iter().zip(&batch) {
                let d = max_abs_diff(got, want(g, pooling));
                assert!(d <= TOL, "{engine} {pooling} {:?} in a batch: {d}", g.text);
                let alone = e.embed(&[g.text.as_str()]).unwrap();
                let d = max_abs_diff(&alone[0], want(g, pooling));
                assert!(d <= TOL, "{engine} {pooling} {:?} alone: {d}", g.text);
                let d = max_abs_diff(&alone[0], got);
                assert!(
                    d <= 1e-5,
                    "{engine} {pooling} {:?} batch vs alone: {d}",
                    g.text
                );
            }
        }
    }
}

#[test]
fn token_ids_are_pytorchs_exactly() {
    let golden = golden();
    let dir = fixture_dir();
    let e = load(&dir, Engine::Fast, Pooling::Mean);
    assert_eq!(e.max_seq_length(), golden.max_tokens);
    let cases = golden.texts.iter().map(|g| (g.text.as_str(), &g.ids[..]));
    let truncated = assert_golden_ids("tiny XLM-R", &e, &dir, cases);
    assert_eq!(truncated, 1, "the golden set has one over-long text");
    assert!(golden.texts.iter().any(|g| !g.text.is_ascii()));
}

#[test]
fn both_engines_match_pytorch_in_batches_and_alone() {
    check_engines_against_golden(&fixture_dir());
}

#[test]
fn weights_under_a_roberta_prefix_load_in_both_engines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny-xlmr-prefixed");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(fixture_dir().join(f), dir.join(f)).unwrap();
    }
    let bare =
        candle_core::safetensors::load(fixture_dir().join("model.safetensors"), &Device::Cpu)
            .unwrap();
    let prefixed: HashMap<String, Tensor> = bare
        .into_iter()
        .map(|(name, t)| (format!("roberta.{name}"), t))
        .collect();
    candle_core::safetensors::save(&prefixed, dir.join("model.safetensors")).unwrap();
    check_engines_against_golden(&dir);
}

#[test]
fn fast_bert_alone_reads_the_xlmr_config_and_matches_pytorch() {
    let golden = golden();
    let dir = fixture_dir();
    let json = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let config = FastBertConfig::from_hf_json(&json).unwrap();
    assert_eq!(config.padding_idx, Some(1));
    assert_eq!(config.max_tokens(), golden.max_tokens);
    let mut model = FastBert::load(&dir.join("model.safetensors"), &config).unwrap();
    let mut ids = Vec::new();
    let mut offsets = vec![0];
    for g in &golden.texts {
        ids.extend_from_slice(&g.ids);
        offsets.push(ids.len());
    }
    let h = config.hidden_size;
    for threads in [1, 2] {
        let hidden = model.forward_packed(&ids, &offsets, threads).unwrap();
        for (g, w) in golden.texts.iter().zip(offsets.windows(2)) {
            let cls = &hidden[w[0] * h..(w[0] + 1) * h];
            let d = max_abs_diff(cls, &g.cls);
            assert!(d <= TOL, "{:?} threads={threads}: {d}", g.text);
        }
    }
}

#[test]
fn a_bert_config_keeps_positions_from_zero() {
    let json = r#"{"model_type":"bert","hidden_size":8,"num_attention_heads":2,
        "num_hidden_layers":1,"intermediate_size":16,"vocab_size":10,
        "max_position_embeddings":12,"pad_token_id":0}"#;
    let config = FastBertConfig::from_hf_json(json).unwrap();
    assert_eq!(config.padding_idx, None);
    assert_eq!(config.max_tokens(), 12);
    let xlmr = json
        .replace("\"bert\"", "\"xlm-roberta\"")
        .replace("\"pad_token_id\":0", "\"pad_token_id\":1");
    let config = FastBertConfig::from_hf_json(&xlmr).unwrap();
    assert_eq!(config.padding_idx, Some(1));
    assert_eq!(config.max_tokens(), 10);
}

#[test]
fn an_xlmr_the_fast_engine_cannot_run_falls_back_to_candle() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny-xlmr-gelu-new");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(fixture_dir().join(f), dir.join(f)).unwrap();
    }
    let config = std::fs::read_to_string(dir.join("config.json"))
        .unwrap()
        .replace("\"gelu\"", "\"gelu_new\"");
    std::fs::write(dir.join("config.json"), config).unwrap();
    let spec = EmbedSpec::new(&dir).with_engine(Engine::Fast);
    let mut e = Embedder::load(&spec, 1).unwrap();
    assert_eq!(e.engine(), Engine::Candle);
    let v = e.embed(&["Grüße aus Köln"]).unwrap();
    assert!((common::norm(&v[0]) - 1.0).abs() < 1e-5);
}

/// Long texts are tokenized from a prefix; for a SentencePiece tokenizer
/// the prefix may end only at whitespace (punctuation sits inside its
/// words: `▁dog.` is one piece here, `▁dog` is not), or the last pieces
/// kept would differ from the whole text's.
#[test]
fn long_texts_keep_the_whole_texts_first_pieces() {
    let dir = fixture_dir();
    let e = load(&dir, Engine::Fast, Pooling::Mean);
    let tok = EmbedTokenizer::load(&EmbedSpec::new(&dir)).unwrap();
    let mut whole = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    whole
        .with_truncation(Some(tokenizers::TruncationParams {
            max_length: e.max_seq_length(),
            ..Default::default()
        }))
        .unwrap();
    // Long one-piece words (over 8 bytes a piece, so the first prefix has
    // fewer pieces than the limit) and words that end in punctuation.
    let words = [
        "Embeddings",
        "multilingual",
        "Embeddings",
        "multilingual",
        "world,",
        "dog.",
        "vectors;",
    ];
    let mut state = 12345u64;
    for n in 0..400 {
        let mut text = String::new();
        while text.len() < 600 + n {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push_str(words[(state >> 33) as usize % words.len()]);
            text.push(' ');
        }
        let want = whole
            .encode(text.as_str(), true)
            .unwrap()
            .get_ids()
            .to_vec();
        assert_eq!(e.token_ids(&text).unwrap(), want, "{text:?}");
        let got = tok.encode(&text, TruncationSide::Right).unwrap().ids;
        assert_eq!(got, want, "{text:?} (EmbedTokenizer)");
    }
}
