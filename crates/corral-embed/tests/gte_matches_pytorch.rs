//! The new GTE (`model_type` `"new"`, as `gte-base-en-v1.5` and
//! `gte-large-en-v1.5` publish it) against PyTorch: the tiny random model
//! in `tests/data/tiny-gte/` (made by `scripts/make_tiny_families.py gte
//! --gte-code DIR` with the hub's own remote code, `Alibaba-NLP/new-impl`,
//! committed; the tests fail, never skip, without it) must give PyTorch's
//! token ids exactly and its pooled vectors within 1e-4 per element —
//! each text alone and in a batch, the batch also within 1e-5 of alone —
//! with its declared CLS pooling the default. Its rotary positions are
//! NTK-scaled, as both English v1.5 models declare them, and it has token
//! types (as the large one); a copy without token types, or with its
//! weights under `new.`, loads; what Corral does not implement is refused
//! by name.

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
    batch_mean: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct GoldenText {
    text: String,
    ids: Vec<u32>,
    mean: Vec<f32>,
    cls: Vec<f32>,
}

fn fixture() -> PathBuf {
    fixture_dir("tiny-gte")
}

fn golden() -> Golden {
    fixture_golden(
        "tiny-gte",
        "scripts/make_tiny_families.py gte --gte-code DIR",
    )
}

fn load(dir: &Path, engine: Engine, pooling: Option<Pooling>) -> Embedder {
    load_on_candle(dir, engine, pooling)
}

/// Every text in one batch and alone against PyTorch, for `pooling`.
fn check(dir: &Path, engine: Engine, pooling: Pooling) {
    let golden = golden();
    let texts: Vec<&str> = golden.texts.iter().map(|g| g.text.as_str()).collect();
    let mut e = load(dir, engine, Some(pooling));
    assert_eq!(e.dim(), 32);
    let batch = e.embed(&texts).unwrap();
    for (g, got) in golden.texts.iter().zip(&batch) {
        let want = match pooling {
            Pooling::Cls => &g.cls,
            _ => &g.mean,
        };
        let d = max_abs_diff(got, want);
        assert!(d <= TOL, "{pooling} {:?} in a batch: {d}", g.text);
        let alone = e.embed(&[g.text.as_str()]).unwrap();
        let d = max_abs_diff(&alone[0], want);
        assert!(d <= TOL, "{pooling} {:?} alone: {d}", g.text);
        let d = max_abs_diff(&alone[0], got);
        assert!(d <= BATCH_TOL, "{pooling} {:?} batch vs alone: {d}", g.text);
    }
}

#[test]
fn token_ids_are_pytorchs_exactly() {
    let golden = golden();
    let e = load(&fixture(), Engine::Candle, None);
    assert_eq!(e.max_seq_length(), golden.max_tokens);
    let cases = golden.texts.iter().map(|g| (g.text.as_str(), &g.ids[..]));
    let truncated = assert_golden_ids("tiny GTE", &e, &fixture(), cases);
    assert_eq!(truncated, 1, "the golden set has one over-long text");
}

#[test]
fn matches_pytorch_alone_and_in_batches() {
    let golden = golden();
    // Long texts, where a wrong rotary frequency shows most.
    assert!(golden
        .texts
        .iter()
        .any(|g| g.ids.len() == golden.max_tokens));
    for engine in [Engine::Fast, Engine::Candle] {
        check(&fixture(), engine, Pooling::Cls);
    }
    check(&fixture(), Engine::Candle, Pooling::Mean);
    // PyTorch's own padded batch agrees with its texts alone: the golden
    // batch is a fair reference for the mask.
    for (g, b) in golden.texts.iter().zip(&golden.batch_mean) {
        assert!(max_abs_diff(&g.mean, b) <= BATCH_TOL, "{:?}", g.text);
    }
}

#[test]
fn the_declared_cls_pooling_is_the_default() {
    let e = load(&fixture(), Engine::Candle, None);
    assert_eq!(e.pooling(), Pooling::Cls);
    let info = EmbedSpec::new(fixture()).model_info().unwrap();
    assert_eq!(info.pooling, Pooling::Cls);
    assert_eq!(info.dim, 32);
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

/// A copy of the fixture whose weights are `edit`ed (renamed, dropped)
/// and whose config.json is `config`ed.
fn edited_copy(
    weights: impl Fn(HashMap<String, Tensor>) -> HashMap<String, Tensor>,
    config: impl Fn(&mut serde_json::Value),
) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("gte");
    copy_dir(&fixture(), &dir);
    let w =
        candle_core::safetensors::load(fixture().join("model.safetensors"), &Device::Cpu).unwrap();
    candle_core::safetensors::save(&weights(w), dir.join("model.safetensors")).unwrap();
    let path = dir.join("config.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config(&mut json);
    std::fs::write(&path, json.to_string()).unwrap();
    (tmp, dir)
}

#[test]
fn weights_under_the_checkpoints_prefix_give_the_same_vectors() {
    let (_tmp, dir) = edited_copy(
        |w| {
            w.into_iter()
                .map(|(n, t)| (format!("new.{n}"), t))
                .collect()
        },
        |_| {},
    );
    check(&dir, Engine::Candle, Pooling::Cls);
}

#[test]
fn a_model_without_token_types_loads() {
    // gte-base-en-v1.5 has type_vocab_size 0: no token-type table.
    let (_tmp, dir) = edited_copy(
        |w| {
            w.into_iter()
                .filter(|(n, _)| !n.contains("token_type"))
                .collect()
        },
        |c| c["type_vocab_size"] = 0.into(),
    );
    let mut e = load(&dir, Engine::Candle, None);
    let golden = golden();
    let v = e.embed(&[golden.texts[0].text.as_str()]).unwrap();
    assert!(v[0].iter().all(|x| x.is_finite()));
    // Token type 0's row is part of the fixture's vectors: without it
    // they differ.
    assert!(max_abs_diff(&v[0], &golden.texts[0].cls) > 1e-3);
}

#[test]
fn what_corral_does_not_implement_is_refused_by_name() {
    let cases: [(&str, serde_json::Value); 6] = [
        (
            "rope_scaling",
            serde_json::json!({"rope_scaling": {"type": "dynamic", "factor": 2.0}}),
        ),
        (
            "mixed_b",
            serde_json::json!({"rope_scaling": {"type": "ntk", "factor": 2.0, "mixed_b": 0.7}}),
        ),
        (
            "rms_norm",
            serde_json::json!({"layer_norm_type": "rms_norm"}),
        ),
        (
            "logn_attention_scale",
            serde_json::json!({"logn_attention_scale": true}),
        ),
        (
            "absolute",
            serde_json::json!({"position_embedding_type": "absolute"}),
        ),
        ("gelu_new", serde_json::json!({"hidden_act": "gelu_new"})),
    ];
    for (word, edit) in cases {
        let (_tmp, dir) = edited_copy(
            |w| w,
            |c| {
                for (k, v) in edit.as_object().unwrap() {
                    c[k] = v.clone();
                }
            },
        );
        let msg = match Embedder::load(&EmbedSpec::new(&dir), 1) {
            Ok(_) => panic!("{edit} loaded"),
            Err(e) => e.to_string(),
        };
        assert!(msg.contains("GTE") && msg.contains(word), "{edit}: {msg}");
    }
}
