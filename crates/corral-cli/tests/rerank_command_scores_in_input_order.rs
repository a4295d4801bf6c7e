//! `corral rerank --query Q` scores documents (one per line, or `--jsonl`)
//! with a cross-encoder and writes `{"index", "score", "text"}` JSON Lines
//! in input order: the scores sentence-transformers' `CrossEncoder.predict`
//! gives (within 1e-4) on the tiny BERT and XLM-RoBERTa rerankers committed
//! under corral-embed's test data, long pairs truncated as it truncates
//! them; `--raw-scores` the logits; a document's score does not depend on
//! its neighbours. An embedding model, or no model, is refused by name.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::corral;
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../corral-embed/tests/data")
        .join(name)
}

struct Pair {
    query: String,
    document: String,
    logit: f64,
    predict: f64,
}

fn golden(model: &str) -> Vec<Pair> {
    let path = data(model).join("golden.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Pair {
            query: p["query"].as_str().unwrap().to_owned(),
            document: p["document"].as_str().unwrap().to_owned(),
            logit: p["logits"][0].as_f64().unwrap(),
            predict: p["ce_predict"].as_f64().unwrap(),
        })
        .collect()
}

fn run(args: &[&str], input: &str) -> Output {
    let mut all = vec!["rerank"];
    all.extend_from_slice(args);
    all.extend(["--workers", "1", "--threads", "1", "--quiet"]);
    corral(&all, input)
}

/// Runs `corral rerank` and parses its lines as (index, score, text).
fn rerank(
    model: &str,
    query: &str,
    extra: &[&str],
    input: &str,
) -> Vec<(u64, f64, Option<String>)> {
    let dir = data(model);
    let mut args = vec!["--query", query, "--model-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = run(&args, input);
    assert!(
        out.status.success(),
        "corral rerank failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (
                v["index"].as_u64().unwrap(),
                v["score"].as_f64().unwrap(),
                v["text"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[test]
fn scores_are_cross_encoder_predict_in_input_order() {
    for model in ["tiny-bert-rerank", "tiny-xlmr-rerank"] {
        let pairs = golden(model);
        // Every golden pair on its own (each has its own query), the
        // over-long ones among them.
        for p in &pairs {
            let input = serde_json::to_string(&serde_json::json!({"text": p.document})).unwrap();
            let got = rerank(model, &p.query, &["--jsonl"], &(input + "\n"));
            assert_eq!(got.len(), 1, "{model}: one line per document");
            assert_eq!(got[0].0, 0);
            assert_eq!(got[0].2.as_deref(), Some(p.document.as_str()));
            assert!(
                (got[0].1 - p.predict).abs() < 1e-4,
                "{model} {:?}/{:?}: {} vs CrossEncoder.predict {}",
                p.query,
                p.document,
                got[0].1,
                p.predict
            );
            let raw = rerank(
                model,
                &p.query,
                &["--jsonl", "--raw-scores", "--no-text"],
                &(serde_json::to_string(&serde_json::json!({"text": p.document})).unwrap() + "\n"),
            );
            assert!(
                (raw[0].1 - p.logit).abs() < 1e-4,
                "{model}: raw {} vs logit {}",
                raw[0].1,
                p.logit
            );
            assert_eq!(raw[0].2, None);
        }
    }
}

#[test]
fn many_documents_come_back_in_input_order_whatever_their_neighbours() {
    let model = "tiny-bert-rerank";
    let pairs = golden(model);
    let query = &pairs[0].query;
    // The first document again at the end, and small requests, so that it
    // shares a batch with other neighbours.
    let mut documents: Vec<&str> = pairs
        .iter()
        .map(|p| p.document.as_str())
        .filter(|d| !d.contains('\n'))
        .collect();
    documents.push(&pairs[0].document);
    let input = documents.join("\n") + "\n";
    let got = rerank(model, query, &["--request-size", "3"], &input);
    assert_eq!(got.len(), documents.len());
    for (i, (index, _, text)) in got.iter().enumerate() {
        assert_eq!(*index, i as u64);
        assert_eq!(text.as_deref(), Some(documents[i]));
    }
    let first = got[0].1;
    let last = got.last().unwrap().1;
    assert!(
        (first - pairs[0].predict).abs() < 1e-4,
        "{first} vs {}",
        pairs[0].predict
    );
    assert!(
        (first - last).abs() < 1e-5,
        "the same pair scored {first} and {last}"
    );
}

#[test]
fn an_embedding_model_or_none_is_refused_by_name() {
    let out = run(&["--query", "q"], "a document\n");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--model-dir"), "{err}");
    let xlmr = data("tiny-xlmr");
    let out = run(
        &["--query", "q", "--model-dir", xlmr.to_str().unwrap()],
        "a document\n",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("embed") && err.contains("not a reranker"),
        "{err}"
    );
    let classify = data("tiny-bert-classify");
    let out = run(
        &["--query", "q", "--model-dir", classify.to_str().unwrap()],
        "a document\n",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("classify") && err.contains("not a reranker"),
        "{err}"
    );
}
