//! The real loading code on a tiny model written by the test: configuration,
//! pooling (mean and cls, from the model's files or overridden),
//! normalisation, truncation, and the errors for unusable directories.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use common::{cosine, max_abs_diff, norm, tiny_model, Tiny, HIDDEN};
use corral_embed::{EmbedError, EmbedSpec, Embedder, Pooling};

/// Pooled (not normalised) vector of `text` computed straight with candle's
/// BERT on the unpadded sequence — an independent reference.
fn reference(dir: &std::path::Path, ids: &[u32], pooling: Pooling) -> Vec<f32> {
    let config: Config =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu).unwrap();
    let model = BertModel::load(vb, &config).unwrap();
    let input = Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let types = input.zeros_like().unwrap();
    let hidden = model.forward(&input, &types, None).unwrap();
    let hidden = hidden.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    match pooling {
        Pooling::Cls => hidden[0].clone(),
        Pooling::LastToken => hidden[hidden.len() - 1].clone(),
        Pooling::Splade => unreachable!("splade is not a dense pooling"),
        Pooling::Mean => (0..HIDDEN)
            .map(|j| hidden.iter().map(|row| row[j]).sum::<f32>() / hidden.len() as f32)
            .collect(),
    }
}

#[test]
fn mean_pooling_is_read_from_the_model_and_matches_plain_candle() {
    let (_tmp, dir) = tiny_model(&Tiny::default());
    let spec = EmbedSpec::new(&dir).with_normalize(false);
    let mut e = Embedder::load(&spec, 1).unwrap();
    assert_eq!(e.pooling(), Pooling::Mean);
    assert_eq!(e.dim(), HIDDEN);
    assert_eq!(e.max_seq_length(), 24);
    // A short text among longer ones: it is padded inside the batch.
    let texts = ["the cat sat", "hello world and the dog runs fast on a mat"];
    let got = e.embed(&texts).unwrap();
    for (text, v) in texts.iter().zip(&got) {
        let want = reference(&dir, &e.token_ids(text).unwrap(), Pooling::Mean);
        assert!(max_abs_diff(v, &want) < 1e-4, "{text}: {v:?} vs {want:?}");
    }
}

#[test]
fn cls_pooling_is_read_from_the_pooling_config() {
    let (_tmp, dir) = tiny_model(&Tiny {
        pooling: Some("cls"),
        ..Tiny::default()
    });
    let mut e = Embedder::load(&EmbedSpec::new(&dir).with_normalize(false), 1).unwrap();
    assert_eq!(e.pooling(), Pooling::Cls);
    let texts = ["hello", "the cat sat on the mat and it is slow"];
    let got = e.embed(&texts).unwrap();
    for (text, v) in texts.iter().zip(&got) {
        let want = reference(&dir, &e.token_ids(text).unwrap(), Pooling::Cls);
        assert!(max_abs_diff(v, &want) < 1e-4, "{text}");
    }
}

#[test]
fn last_token_pooling_is_read_from_the_pooling_config_on_both_engines() {
    let (_tmp, dir) = tiny_model(&Tiny {
        pooling: Some("lasttoken"),
        ..Tiny::default()
    });
    // A short text beside a longer one: its last real token, not padding.
    let texts = [
        "the cat sat",
        "hello world and the dog runs fast on a mat",
        "",
    ];
    for engine in [corral_embed::Engine::Fast, corral_embed::Engine::Candle] {
        let spec = EmbedSpec::new(&dir)
            .with_normalize(false)
            .with_engine(engine);
        let mut e = Embedder::load(&spec, 1).unwrap();
        assert_eq!(e.pooling(), Pooling::LastToken);
        let got = e.embed(&texts).unwrap();
        for (text, v) in texts.iter().zip(&got) {
            let want = reference(&dir, &e.token_ids(text).unwrap(), Pooling::LastToken);
            assert!(
                max_abs_diff(v, &want) < 1e-4,
                "{engine} {text}: {v:?} vs {want:?}"
            );
        }
    }
    assert_eq!("lasttoken".parse::<Pooling>(), Ok(Pooling::LastToken));
}

#[test]
fn pooling_option_overrides_the_model_and_mean_is_the_fallback() {
    let (_tmp, dir) = tiny_model(&Tiny {
        pooling: None,
        ..Tiny::default()
    });
    let mut mean = Embedder::load(&EmbedSpec::new(&dir), 1).unwrap();
    assert_eq!(mean.pooling(), Pooling::Mean);
    // Without sentence_bert_config.json the limit is the position table.
    assert_eq!(mean.max_seq_length(), common::MAX_POSITIONS);
    let mut cls = Embedder::load(&EmbedSpec::new(&dir).with_pooling(Pooling::Cls), 1).unwrap();
    assert_eq!(cls.pooling(), Pooling::Cls);
    let a = &mean.embed(&["the dog runs"]).unwrap()[0];
    let b = &cls.embed(&["the dog runs"]).unwrap()[0];
    assert!(cosine(a, b) < 0.9999, "mean and cls gave the same vector");
}

#[test]
fn normalisation_is_on_by_default_and_off_by_option() {
    let (_tmp, dir) = tiny_model(&Tiny::default());
    let mut on = Embedder::load(&EmbedSpec::new(&dir), 1).unwrap();
    let mut off = Embedder::load(&EmbedSpec::new(&dir).with_normalize(false), 1).unwrap();
    assert!(on.normalize() && !off.normalize());
    let a = &on.embed(&["hello world"]).unwrap()[0];
    let b = &off.embed(&["hello world"]).unwrap()[0];
    assert!((norm(a) - 1.0).abs() < 1e-5);
    assert!(
        (norm(b) - 1.0).abs() > 1e-3,
        "unnormalised norm {}",
        norm(b)
    );
    let scaled: Vec<f32> = b.iter().map(|x| x / norm(b)).collect();
    assert!(max_abs_diff(a, &scaled) < 1e-5);
}

#[test]
fn tokenizer_padding_is_overridden_and_truncation_follows_sentence_transformers() {
    let (_tmp, dir) = tiny_model(&Tiny::default());
    let e = Embedder::load(&EmbedSpec::new(&dir), 1).unwrap();
    // tokenizer.json says Fixed(16) padding and truncation at 16.
    assert_eq!(e.token_ids("hello").unwrap(), vec![2, 10, 3]);
    let long = "the cat sat on the mat ".repeat(10);
    let ids = e.token_ids(&long).unwrap();
    assert_eq!(ids.len(), 24, "sentence_bert_config.json says 24");
    assert_eq!((ids[0], ids[23]), (2, 3), "[CLS] … [SEP] kept");
    // A lower limit from the spec applies; a higher one is capped.
    let mut spec = EmbedSpec::new(&dir);
    spec.max_seq_length = Some(8);
    assert_eq!(
        Embedder::load(&spec, 1)
            .unwrap()
            .token_ids(&long)
            .unwrap()
            .len(),
        8
    );
    spec.max_seq_length = Some(10_000);
    assert_eq!(Embedder::load(&spec, 1).unwrap().max_seq_length(), 24);
}

#[test]
fn a_missing_model_directory_names_the_fetch_command() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Embedder::load(&EmbedSpec::new(tmp.path().join("nope")), 1).unwrap_err();
    assert!(matches!(err, EmbedError::ModelDir { .. }));
    let msg = err.to_string();
    assert!(msg.contains("does not exist"), "{msg}");
    assert!(
        msg.contains("cargo run --release --bin corral -- fetch-model"),
        "{msg}"
    );
}

#[test]
fn an_incomplete_model_directory_says_what_is_missing() {
    let (_tmp, dir) = tiny_model(&Tiny::default());
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let msg = Embedder::load(&EmbedSpec::new(&dir), 1)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("tokenizer.json"), "{msg}");
    assert!(msg.contains("model.safetensors"), "{msg}");
    assert!(msg.contains("fetch-model"), "{msg}");
}

#[test]
fn a_non_bert_model_is_refused_clearly() {
    let (_tmp, dir) = tiny_model(&Tiny::default());
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"bert\"", "\"gpt2\"")
        .replace("BertModel", "GPT2Model");
    std::fs::write(&path, text).unwrap();
    let msg = Embedder::load(&EmbedSpec::new(&dir), 1)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("unsupported architecture"), "{msg}");
    assert!(msg.contains("\"gpt2\""), "{msg}");
    assert!(msg.contains("xlm-roberta"), "{msg}");
}

#[test]
fn unsupported_pooling_and_mismatched_weights_are_refused_clearly() {
    let (_tmp, dir) = tiny_model(&Tiny {
        pooling: Some("max"),
        ..Tiny::default()
    });
    let msg = Embedder::load(&EmbedSpec::new(&dir), 1)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("pooling mode max is not supported"), "{msg}");

    let (_tmp2, dir2) = tiny_model(&Tiny::default());
    let path = dir2.join("config.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    std::fs::write(&path, text).unwrap();
    let msg = Embedder::load(&EmbedSpec::new(&dir2), 1)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("do not match"), "{msg}");
}
