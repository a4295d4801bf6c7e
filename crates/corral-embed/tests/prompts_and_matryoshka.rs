//! sentence-transformers prompts and Matryoshka truncation, on a copy of
//! the tiny XLM-RoBERTa fixture (`tests/data/tiny-xlmr/`) given a
//! `config_sentence_transformers.json`:
//! - a prompt is the string put before the text, then the whole is
//!   tokenised and cut (what `SentenceTransformer.encode(prompt_name=…)`
//!   does): the ids of prompt + rest are PyTorch's ids of the whole golden
//!   text, and its vector PyTorch's within 1e-4 — the prompt's tokens
//!   counted in the maximum length;
//! - the ids equal the `tokenizers` crate's own for the prompted text,
//!   truncated as Hugging Face truncates;
//! - `default_prompt_name` applies unless the spec says otherwise; unknown
//!   names and `include_prompt: false` are refused;
//! - `truncate_dim` (the spec's or the model's) keeps the leading
//!   dimensions, then re-normalises.

use std::path::{Path, PathBuf};

use corral_embed::{
    EmbedError, EmbedInput, EmbedSpec, EmbedTokenizer, Embedder, Prompt, TruncationSide,
};
use serde::Deserialize;
use serde_json::json;

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
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-xlmr")
}

fn golden() -> Golden {
    let text = std::fs::read_to_string(fixture_dir().join("golden.json"))
        .expect("the tiny-xlmr fixture is committed");
    serde_json::from_str(&text).unwrap()
}

/// The fixture copied to a temporary directory with `st_config` as its
/// `config_sentence_transformers.json` and, when given, `pooling` as its
/// `1_Pooling/config.json`.
fn model_with(
    st_config: &serde_json::Value,
    pooling: Option<&serde_json::Value>,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(fixture_dir().join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(
        dir.path().join("config_sentence_transformers.json"),
        st_config.to_string(),
    )
    .unwrap();
    if let Some(p) = pooling {
        std::fs::create_dir_all(dir.path().join("1_Pooling")).unwrap();
        std::fs::write(dir.path().join("1_Pooling/config.json"), p.to_string()).unwrap();
    }
    dir
}

const QUICK: &str = "The quick brown fox jumps over the lazy dog.";
const LONG_PREFIX: &str = "Embeddings turn text into vectors, ";

fn prompts() -> serde_json::Value {
    json!({
        "prompts": {"quick": "The quick brown ", "long": LONG_PREFIX, "query": "query: ", "none": ""},
        "default_prompt_name": "quick",
    })
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The golden text whose text is `text`.
fn golden_of<'a>(g: &'a Golden, text: &str) -> &'a GoldenText {
    g.texts.iter().find(|t| t.text == text).unwrap()
}

#[test]
fn a_prompt_is_put_before_the_text_and_counts_toward_the_limit() {
    let g = golden();
    let dir = model_with(&prompts(), None);
    let quick = golden_of(&g, QUICK);
    let long = g
        .texts
        .iter()
        .find(|t| t.text.starts_with(LONG_PREFIX) && t.ids.len() == g.max_tokens)
        .expect("the golden long text is cut at the maximum length");

    // The model's default prompt ("The quick brown ") applies by default.
    let spec = EmbedSpec::new(dir.path()).with_normalize(false);
    let mut e = Embedder::load(&spec, 1).unwrap();
    assert_eq!(e.prompt(), Some("The quick brown "));
    assert_eq!(e.prompts().default_name(), Some("quick"));
    let rest = &QUICK["The quick brown ".len()..];
    assert_eq!(e.token_ids(rest).unwrap(), quick.ids, "prompt + text's ids");
    let v = e.embed(&[rest]).unwrap();
    assert!(max_abs_diff(&v[0], &quick.mean) < TOL);
    // Texts in a pool's inputs get it too; ids do not.
    let inputs = [
        EmbedInput::from(rest),
        EmbedInput::Tokens(quick.ids.clone()),
    ];
    let both = e.embed_inputs(&inputs.iter().collect::<Vec<_>>()).unwrap();
    assert!(max_abs_diff(&both[0], &quick.mean) < TOL);
    assert!(max_abs_diff(&both[1], &quick.mean) < TOL);

    // A named prompt, with a text that overflows: the prompt's tokens come
    // first and the text is cut at the model's limit after them.
    let spec = EmbedSpec::new(dir.path())
        .with_normalize(false)
        .with_prompt(Prompt::Named("long".into()));
    let mut e = Embedder::load(&spec, 1).unwrap();
    let rest = &long.text[LONG_PREFIX.len()..];
    assert_eq!(e.token_ids(rest).unwrap(), long.ids);
    assert!(max_abs_diff(&e.embed(&[rest]).unwrap()[0], &long.mean) < TOL);

    // No prompt: the text alone, which is another vector.
    let spec = EmbedSpec::new(dir.path())
        .with_normalize(false)
        .with_prompt(Prompt::None);
    let mut e = Embedder::load(&spec, 1).unwrap();
    assert_eq!(e.prompt(), None);
    let alone = e.embed(&[&QUICK["The quick brown ".len()..]]).unwrap();
    assert!(max_abs_diff(&alone[0], &quick.mean) > 1e-2);
    // An empty prompt is no prompt; a prompt string is as good as a name.
    for (choice, want) in [
        (Prompt::Named("none".into()), None),
        (Prompt::Text(String::new()), None),
        (Prompt::Text("query: ".into()), Some("query: ")),
    ] {
        let spec = EmbedSpec::new(dir.path()).with_prompt(choice.clone());
        assert_eq!(
            Embedder::load(&spec, 1).unwrap().prompt(),
            want,
            "{choice:?}"
        );
    }
}

#[test]
fn prompted_ids_are_the_hugging_face_tokenizers_own() {
    let dir = model_with(&prompts(), None);
    let hf = tokenizers::Tokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
    let mut cut = hf.clone();
    let t = EmbedTokenizer::load(&EmbedSpec::new(dir.path())).unwrap();
    cut.with_truncation(Some(tokenizers::TruncationParams {
        max_length: t.max_seq_length(),
        ..Default::default()
    }))
    .unwrap();
    let long = "vectors über alles, ".repeat(40);
    for text in [
        "Hello world",
        "",
        "  spaces  ",
        "Grüße aus Köln",
        long.as_str(),
    ] {
        for name in ["query", "quick", "long"] {
            let prompt = t
                .resolve_prompt(&Prompt::Named(name.into()))
                .unwrap()
                .unwrap();
            let ours = t
                .encode_prompted(text, Some(&prompt), TruncationSide::Right)
                .unwrap();
            let theirs = cut.encode(format!("{prompt}{text}"), true).unwrap();
            assert_eq!(ours.ids, theirs.get_ids(), "{name}: {text:?}");
            let whole = hf.encode(format!("{prompt}{text}"), true).unwrap();
            assert_eq!(
                ours.truncated,
                whole.get_ids().len() > t.max_seq_length(),
                "{name}: {text:?}"
            );
        }
    }
    // The default prompt is the model's; a request's choice resolves too.
    assert_eq!(t.default_prompt(), Some("The quick brown "));
    assert_eq!(
        t.resolve_prompt(&Prompt::ModelDefault).unwrap().as_deref(),
        Some("The quick brown ")
    );
    assert_eq!(t.resolve_prompt(&Prompt::None).unwrap(), None);
    let e = t
        .resolve_prompt(&Prompt::Named("passage".into()))
        .unwrap_err();
    assert!(
        matches!(&e, EmbedError::InvalidInput(m) if m.contains("\"passage\"") && m.contains("query")),
        "{e}"
    );
}

#[test]
fn bad_prompt_settings_are_refused_when_loading() {
    // A name the model lacks.
    let dir = model_with(&prompts(), None);
    let spec = EmbedSpec::new(dir.path()).with_prompt(Prompt::Named("passage".into()));
    let e = spec.validate().unwrap_err();
    assert!(
        matches!(&e, EmbedError::Config { .. }) && e.to_string().contains("passage"),
        "{e}"
    );
    assert!(Embedder::load(&spec, 1).is_err());
    // A default_prompt_name that is not one of the prompts.
    let dir = model_with(
        &json!({"prompts": {"query": "q: "}, "default_prompt_name": "doc"}),
        None,
    );
    let e = EmbedSpec::new(dir.path()).validate().unwrap_err();
    assert!(e.to_string().contains("default_prompt_name"), "{e}");
    // A pooling that leaves the prompt out is not Corral's: a prompt is
    // refused, no prompt is fine.
    let pooling = json!({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": true,
                         "include_prompt": false});
    let dir = model_with(&prompts(), Some(&pooling));
    let e = EmbedSpec::new(dir.path()).validate().unwrap_err();
    assert!(e.to_string().contains("include_prompt"), "{e}");
    let spec = EmbedSpec::new(dir.path()).with_prompt(Prompt::None);
    let t = EmbedTokenizer::load(&spec).unwrap();
    assert!(t
        .resolve_prompt(&Prompt::Named("query".into()))
        .is_err_and(|e| e.to_string().contains("include_prompt")));
    assert!(Embedder::load(&spec, 1).is_ok());
}

#[test]
fn truncate_dim_keeps_the_leading_dimensions_then_normalises() {
    let g = golden();
    let quick = golden_of(&g, QUICK);
    let unit = |v: &[f32]| {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect::<Vec<f32>>()
    };
    // The spec's truncate_dim.
    let dir = model_with(&json!({}), None);
    let spec = EmbedSpec::new(dir.path()).with_truncate_dim(8);
    assert_eq!(spec.model_info().unwrap().dim, 8);
    let mut e = Embedder::load(&spec, 1).unwrap();
    assert_eq!(e.dim(), 8);
    let v = e.embed(&[QUICK]).unwrap();
    assert!(max_abs_diff(&v[0], &unit(&quick.mean[..8])) < TOL);
    // Without normalisation: only cut.
    let mut raw = Embedder::load(&spec.clone().with_normalize(false), 1).unwrap();
    assert!(max_abs_diff(&raw.embed(&[QUICK]).unwrap()[0], &quick.mean[..8]) < TOL);

    // The model's own truncate_dim, which the spec may override.
    let dir = model_with(&json!({"truncate_dim": 16}), None);
    let spec = EmbedSpec::new(dir.path());
    assert_eq!(spec.model_info().unwrap().dim, 16);
    let mut e = Embedder::load(&spec, 1).unwrap();
    assert_eq!(e.dim(), 16);
    assert!(max_abs_diff(&e.embed(&[QUICK]).unwrap()[0], &unit(&quick.mean[..16])) < TOL);
    let full = Embedder::load(&spec.clone().with_truncate_dim(32), 1).unwrap();
    assert_eq!(full.dim(), 32);

    // Out of range: refused.
    for bad in [0, 33] {
        let e = EmbedSpec::new(dir.path())
            .with_truncate_dim(bad)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("truncate_dim"), "{bad}: {e}");
    }
    let dir = model_with(&json!({"truncate_dim": 64}), None);
    assert!(EmbedSpec::new(dir.path()).validate().is_err());
}
