//! MPNet, NomicBert, ModernBERT and the Qwen3 decoder against PyTorch: the
//! tiny random models in `tests/data/tiny-{mpnet,nomic,modernbert,qwen3}/`
//! (made by
//! `scripts/make_tiny_families.py` with transformers' own model classes,
//! committed; the tests fail, never skip, without them) must give PyTorch's
//! token ids exactly and its pooled vectors within 1e-4 per element — each
//! text alone and in a mixed batch, the batch also within 1e-5 of alone —
//! with the pooling their `1_Pooling/config.json` declares read as the
//! default. Qwen3's last-token vectors match PyTorch's batches padded on the
//! left and on the right. The fast engine falls back to candle's for these
//! families, and a head or an unknown family is refused by name.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use common::{assert_golden_ids, fixture_dir, fixture_golden, load_on_candle, max_abs_diff};
use corral_embed::{EmbedSpec, Embedder, Engine, Pooling};
use serde::Deserialize;

/// Largest difference allowed between a Rust and a PyTorch element.
const TOL: f32 = 1e-4;
/// Largest difference allowed between a text in a batch and alone.
const BATCH_TOL: f32 = 1e-5;

#[derive(Deserialize)]
struct Golden {
    max_tokens: usize,
    texts: Vec<GoldenText>,
    batch_right_last: Vec<Vec<f32>>,
    batch_left_last: Vec<Vec<f32>>,
    batch_mean: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct GoldenText {
    text: String,
    ids: Vec<u32>,
    mean: Vec<f32>,
    cls: Vec<f32>,
    last: Vec<f32>,
}

impl GoldenText {
    fn pooled(&self, pooling: Pooling) -> &[f32] {
        match pooling {
            Pooling::Mean => &self.mean,
            Pooling::Cls => &self.cls,
            Pooling::LastToken => &self.last,
            Pooling::Splade => unreachable!("splade is not a dense pooling"),
        }
    }
}

/// The golden output of `name`; panics (the test fails) when the fixture is
/// missing.
fn golden(name: &str) -> Golden {
    fixture_golden(name, "scripts/make_tiny_families.py")
}

fn load(dir: &Path, engine: Engine, pooling: Option<Pooling>) -> Embedder {
    load_on_candle(dir, engine, pooling)
}

/// Every text alone and in one batch, for each pooling, on both engine
/// settings (fast falls back to candle).
fn check_against_golden(name: &str, dir: &Path, poolings: &[Pooling]) {
    let golden = golden(name);
    let texts: Vec<&str> = golden.texts.iter().map(|g| g.text.as_str()).collect();
    for engine in [Engine::Fast, Engine::Candle] {
        for &pooling in poolings {
            let mut e = load(dir, engine, Some(pooling));
            assert_eq!(e.dim(), 32);
            let batch = e.embed(&texts).unwrap();
            for (g, got) in golden.texts.iter().zip(&batch) {
                let want = g.pooled(pooling);
                let d = max_abs_diff(got, want);
                assert!(d <= TOL, "{name} {pooling} {:?} in a batch: {d}", g.text);
                let alone = e.embed(&[g.text.as_str()]).unwrap();
                let d = max_abs_diff(&alone[0], want);
                assert!(d <= TOL, "{name} {pooling} {:?} alone: {d}", g.text);
                let d = max_abs_diff(&alone[0], got);
                assert!(
                    d <= BATCH_TOL,
                    "{name} {pooling} {:?} batch vs alone: {d}",
                    g.text
                );
            }
        }
    }
}

fn check_ids(name: &str) {
    let golden = golden(name);
    let dir = fixture_dir(name);
    let e = load(&dir, Engine::Candle, None);
    assert_eq!(e.max_seq_length(), golden.max_tokens);
    let cases = golden.texts.iter().map(|g| (g.text.as_str(), &g.ids[..]));
    let truncated = assert_golden_ids(name, &e, &dir, cases);
    assert_eq!(
        truncated, 1,
        "{name}: the golden set has one over-long text"
    );
    assert!(golden.texts.iter().any(|g| !g.text.is_ascii()));
    assert!(golden.texts.iter().any(|g| g.text.is_empty()));
}

/// A copy of fixture `name` in a temporary directory with every weight's
/// name changed by `rename`.
fn renamed_copy(name: &str, rename: impl Fn(&str) -> String) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy_dir(&fixture_dir(name), &dir);
    let weights =
        candle_core::safetensors::load(fixture_dir(name).join("model.safetensors"), &Device::Cpu)
            .unwrap();
    let renamed: HashMap<String, Tensor> =
        weights.into_iter().map(|(n, t)| (rename(&n), t)).collect();
    candle_core::safetensors::save(&renamed, dir.join("model.safetensors")).unwrap();
    (tmp, dir)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn mpnet_token_ids_are_pytorchs_exactly() {
    check_ids("tiny-mpnet");
}

#[test]
fn mpnet_matches_pytorch_alone_and_in_batches() {
    let dir = fixture_dir("tiny-mpnet");
    let golden = golden("tiny-mpnet");
    // Distances of 8 tokens and more fall in the log-scale buckets.
    assert!(golden.texts.iter().any(|g| g.ids.len() > 40));
    check_against_golden("tiny-mpnet", &dir, &[Pooling::Mean, Pooling::Cls]);
}

#[test]
fn nomic_token_ids_are_pytorchs_exactly() {
    check_ids("tiny-nomic");
}

#[test]
fn modernbert_token_ids_are_pytorchs_exactly() {
    check_ids("tiny-modernbert");
}

#[test]
fn qwen3_token_ids_are_pytorchs_exactly_with_the_eos_kept_on_truncation() {
    check_ids("tiny-qwen3");
    let golden = golden("tiny-qwen3");
    let eos = *golden.texts[0].ids.last().unwrap();
    for g in &golden.texts {
        assert_eq!(
            g.ids.last(),
            Some(&eos),
            "{:?} ends in <|endoftext|>",
            g.text
        );
    }
}

#[test]
fn nomic_matches_pytorch_alone_and_in_batches() {
    let dir = fixture_dir("tiny-nomic");
    check_against_golden("tiny-nomic", &dir, &[Pooling::Mean, Pooling::Cls]);
}

#[test]
fn modernbert_matches_pytorch_alone_and_in_batches_past_its_local_window() {
    let dir = fixture_dir("tiny-modernbert");
    let golden = golden("tiny-modernbert");
    // The second layer's window is 8 tokens: texts longer than that test
    // the local mask.
    assert!(golden.texts.iter().filter(|g| g.ids.len() > 8).count() >= 3);
    check_against_golden("tiny-modernbert", &dir, &[Pooling::Mean, Pooling::Cls]);
}

#[test]
fn qwen3_matches_pytorch_alone_and_in_batches() {
    let dir = fixture_dir("tiny-qwen3");
    check_against_golden("tiny-qwen3", &dir, &[Pooling::LastToken, Pooling::Mean]);
}

#[test]
fn qwen3_last_token_equals_pytorchs_left_and_right_padded_batches() {
    let golden = golden("tiny-qwen3");
    let texts: Vec<&str> = golden.texts.iter().map(|g| g.text.as_str()).collect();
    // The declared pooling (1_Pooling: lasttoken) is the default.
    let mut e = load(&fixture_dir("tiny-qwen3"), Engine::Candle, None);
    assert_eq!(e.pooling(), Pooling::LastToken);
    let got = e.embed(&texts).unwrap();
    for (i, g) in golden.texts.iter().enumerate() {
        for (side, want) in [
            ("left", &golden.batch_left_last[i]),
            ("right", &golden.batch_right_last[i]),
        ] {
            let d = max_abs_diff(&got[i], want);
            assert!(
                d <= TOL,
                "{:?} against PyTorch padded on the {side}: {d}",
                g.text
            );
        }
    }
    // The same for mean pooling over the right-padded batch.
    let mut e = load(
        &fixture_dir("tiny-qwen3"),
        Engine::Candle,
        Some(Pooling::Mean),
    );
    let got = e.embed(&texts).unwrap();
    for (i, g) in golden.texts.iter().enumerate() {
        let d = max_abs_diff(&got[i], &golden.batch_mean[i]);
        assert!(d <= TOL, "{:?} mean against PyTorch's batch: {d}", g.text);
    }
}

#[test]
fn the_declared_pooling_is_the_default_for_each_family() {
    for (name, pooling) in [
        ("tiny-mpnet", Pooling::Mean),
        ("tiny-nomic", Pooling::Mean),
        ("tiny-modernbert", Pooling::Cls),
        ("tiny-qwen3", Pooling::LastToken),
    ] {
        let golden = golden(name);
        let mut e = load(&fixture_dir(name), Engine::Fast, None);
        assert_eq!(e.pooling(), pooling, "{name}");
        let got = e.embed(&[golden.texts[2].text.as_str()]).unwrap();
        let d = max_abs_diff(&got[0], golden.texts[2].pooled(pooling));
        assert!(d <= TOL, "{name}: {d}");
    }
}

#[test]
fn weights_load_bare_or_under_the_checkpoints_prefix() {
    // MPNet under `mpnet.`, NomicBert under `nomic_bert.` (*ForMaskedLM
    // checkpoints), ModernBERT under `model.`, Qwen3 bare (as a Qwen3Model
    // saves it).
    let (_m, mpnet) = renamed_copy("tiny-mpnet", |n| format!("mpnet.{n}"));
    check_against_golden("tiny-mpnet", &mpnet, &[Pooling::Mean]);
    let (_a, nomic) = renamed_copy("tiny-nomic", |n| format!("nomic_bert.{n}"));
    check_against_golden("tiny-nomic", &nomic, &[Pooling::Mean]);
    let (_b, modern) = renamed_copy("tiny-modernbert", |n| format!("model.{n}"));
    check_against_golden("tiny-modernbert", &modern, &[Pooling::Cls]);
    let (_c, qwen) = renamed_copy("tiny-qwen3", |n| {
        n.strip_prefix("model.").unwrap_or(n).to_owned()
    });
    check_against_golden("tiny-qwen3", &qwen, &[Pooling::LastToken]);
}

/// A copy of fixture `name` whose `config.json` is edited by `edit`.
fn copy_with_config(
    name: &str,
    edit: impl Fn(&mut serde_json::Value),
) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy_dir(&fixture_dir(name), &dir);
    let path = dir.join("config.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut json);
    std::fs::write(&path, json.to_string()).unwrap();
    (tmp, dir)
}

/// The error loading a copy of fixture `name` whose `config.json` is
/// edited by `edit`.
fn load_error_with_config(name: &str, edit: impl Fn(&mut serde_json::Value)) -> String {
    let (_tmp, dir) = copy_with_config(name, edit);
    Embedder::load(&EmbedSpec::new(&dir), 1)
        .unwrap_err()
        .to_string()
}

#[test]
fn modernbert_and_qwen3_configs_in_transformers_5_layout_load_the_same() {
    // ModernBERT: rope_parameters per attention kind and layer_types in
    // place of global_rope_theta, local_rope_theta and
    // global_attn_every_n_layers.
    let (_a, modern) = copy_with_config("tiny-modernbert", |j| {
        let o = j.as_object_mut().unwrap();
        for key in [
            "global_rope_theta",
            "local_rope_theta",
            "global_attn_every_n_layers",
        ] {
            o.remove(key).unwrap();
        }
        o.insert(
            "rope_parameters".into(),
            serde_json::json!({
                "full_attention": {"rope_type": "default", "rope_theta": 160000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            }),
        );
        o.insert(
            "layer_types".into(),
            serde_json::json!(["full_attention", "sliding_attention"]),
        );
    });
    check_against_golden("tiny-modernbert", &modern, &[Pooling::Cls]);
    // Qwen3: rope_parameters in place of rope_theta; the sliding-window
    // fields left out.
    let (_b, qwen) = copy_with_config("tiny-qwen3", |j| {
        let o = j.as_object_mut().unwrap();
        for key in [
            "rope_theta",
            "rope_scaling",
            "max_window_layers",
            "sliding_window",
            "use_sliding_window",
        ] {
            o.remove(key).unwrap();
        }
        o.insert(
            "rope_parameters".into(),
            serde_json::json!({"rope_type": "default", "rope_theta": 1000000.0}),
        );
    });
    check_against_golden("tiny-qwen3", &qwen, &[Pooling::LastToken]);
}

#[test]
fn what_candle_does_not_implement_is_refused_not_run() {
    let msg = load_error_with_config("tiny-qwen3", |j| {
        j["rope_scaling"] = serde_json::json!({"rope_type": "yarn", "factor": 4.0});
    });
    assert!(msg.contains("rope_scaling"), "{msg}");
    let msg = load_error_with_config("tiny-modernbert", |j| {
        j["layer_types"] = serde_json::json!(["sliding_attention", "full_attention"]);
    });
    assert!(msg.contains("layer_types"), "{msg}");
    let msg = load_error_with_config("tiny-qwen3", |j| {
        j["use_sliding_window"] = serde_json::json!(true);
        j["sliding_window"] = serde_json::json!(4);
    });
    assert!(msg.contains("sliding"), "{msg}");
}

#[test]
fn a_head_on_a_new_family_is_refused_by_name() {
    let msg = load_error_with_config("tiny-modernbert", |j| {
        j["architectures"] = serde_json::json!(["ModernBertForSequenceClassification"]);
        j["id2label"] = serde_json::json!({"0": "LABEL_0"});
    });
    assert!(msg.contains("ModernBertForSequenceClassification"), "{msg}");
    assert!(msg.contains("not supported"), "{msg}");
}

#[test]
fn an_unknown_family_is_still_refused_by_name() {
    let msg = load_error_with_config("tiny-qwen3", |j| {
        j["model_type"] = serde_json::json!("mistral");
        j["architectures"] = serde_json::json!(["MistralModel"]);
    });
    assert!(msg.contains("unsupported architecture"), "{msg}");
    assert!(msg.contains("\"mistral\""), "{msg}");
    assert!(msg.contains("qwen3"), "{msg}");
}

#[test]
fn nomic_in_transformers_own_layout_is_refused_not_misread() {
    let msg = load_error_with_config("tiny-nomic", |j| {
        let o = j.as_object_mut().unwrap();
        let n = o.remove("n_embd").unwrap();
        o.insert("hidden_size".into(), n);
    });
    assert!(msg.contains("n_embd"), "{msg}");
}
