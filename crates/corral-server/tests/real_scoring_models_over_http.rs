//! Real scoring pools (the tiny BERT and XLM-RoBERTa cross-encoders and
//! classifiers committed under corral-embed's test data, loaded by
//! `spawn_model` as what their `config.json` declares) behind the real
//! server, beside a real embedder: every rerank dialect answers the scores
//! sentence-transformers' `CrossEncoder.predict` gives (within 1e-4) and TEI's
//! `raw_scores` the PyTorch logits; `/predict` and `/classify` answer the
//! PyTorch softmax; `POST /` goes by each model's kind; a model asked for a
//! task it cannot do answers 424, naming its kind; and an embedder's
//! directory is never served as a scorer, nor a scorer's as an embedder.

mod common;

use std::time::Duration;

use common::fixtures::{fixture, serve_fixture, small_pool};
use common::{start_models, TestServer};
use corral_embed::EmbedSpec;
use corral_server::{PoolModel, ScoringModel, ServerConfig, SpawnModelError};
use serde_json::{json, Value};

fn golden(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name).join("golden.json")).unwrap())
        .unwrap()
}

/// The tiny rerankers and classifiers, and the tiny XLM-RoBERTa embedder,
/// in one server.
async fn serve() -> TestServer {
    let mut models = Vec::new();
    for name in [
        "tiny-bert-rerank",
        "tiny-xlmr-rerank",
        "tiny-bert-classify",
        "tiny-xlmr-classify",
        "tiny-xlmr",
    ] {
        models.push(serve_fixture(name).await);
    }
    start_models(models, ServerConfig::default(), Duration::from_secs(10)).await
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rerank_dialect_gives_cross_encoder_scores() {
    let s = serve().await;
    for name in ["tiny-bert-rerank", "tiny-xlmr-rerank"] {
        let g = golden(name);
        for pair in g["pairs"].as_array().unwrap() {
            let query = pair["query"].as_str().unwrap();
            let document = pair["document"].as_str().unwrap();
            let predict = pair["ce_predict"].as_f64().unwrap();
            let logit = pair["logits"][0].as_f64().unwrap();
            // A neighbour, so that each request is a batch of two.
            let other = "an unrelated second document";
            // Cohere / Jina / infinity, on both paths.
            for path in ["/v1/rerank", "/rerank"] {
                let r = s
                    .post(
                        path,
                        json!({"model": name, "query": query, "documents": [other, {"text": document}], "return_documents": true}),
                    )
                    .await;
                assert_eq!(r.status(), 200, "{path}");
                let body: Value = r.json().await.unwrap();
                let hit = body["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["index"] == 1)
                    .unwrap();
                let got = hit["relevance_score"].as_f64().unwrap();
                assert!(
                    close(got, predict),
                    "{name} {path} {query:?}: {got} vs {predict}"
                );
                assert_eq!(hit["document"]["text"], document);
            }
            // TEI, with and without raw scores.
            for (raw, want) in [(false, predict), (true, logit)] {
                let r = s
                    .post(
                        "/rerank",
                        json!({"model": name, "query": query, "texts": [document, other], "raw_scores": raw, "truncate": true}),
                    )
                    .await;
                assert_eq!(r.status(), 200);
                let body: Value = r.json().await.unwrap();
                let hit = body
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["index"] == 0)
                    .unwrap();
                let got = hit["score"].as_f64().unwrap();
                assert!(
                    close(got, want),
                    "{name} TEI raw={raw} {query:?}: {got} vs {want}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classifiers_answer_the_pytorch_softmax_by_label() {
    let s = serve().await;
    for name in ["tiny-bert-classify", "tiny-xlmr-classify"] {
        let g = golden(name);
        let labels: Vec<String> = (0..g["num_labels"].as_u64().unwrap())
            .map(|i| g["id2label"][i.to_string()].as_str().unwrap().to_owned())
            .collect();
        for pair in g["pairs"].as_array().unwrap().iter().take(4) {
            let softmax: Vec<f64> = pair["softmax"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            let r = s
                .post(
                    "/predict",
                    json!({"model": name, "inputs": [pair["query"], pair["document"]], "truncate": true}),
                )
                .await;
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.unwrap();
            for entry in body.as_array().unwrap() {
                let label = entry["label"].as_str().unwrap();
                let i = labels.iter().position(|l| l == label).unwrap();
                let got = entry["score"].as_f64().unwrap();
                assert!(
                    close(got, softmax[i]),
                    "{name} {label}: {got} vs {}",
                    softmax[i]
                );
            }
        }
        // One text, through infinity's /classify and TEI's /predict alike.
        let text = g["texts"][0]["text"].as_str().unwrap_or("hello world");
        let a: Value = s
            .post("/classify", json!({"model": name, "input": [text]}))
            .await
            .json()
            .await
            .unwrap();
        let b: Value = s
            .post("/predict", json!({"model": name, "inputs": text}))
            .await
            .json()
            .await
            .unwrap();
        let top_a = &a["data"][0][0];
        let top_b = &b[0];
        assert_eq!(top_a["label"], top_b["label"], "{a} / {b}");
        assert!(close(
            top_a["score"].as_f64().unwrap(),
            top_b["score"].as_f64().unwrap()
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_model_serves_its_own_kind_and_says_so() {
    let s = serve().await;
    let info: Value = s.get("/info").await.json().await.unwrap();
    let kinds: Vec<(String, String)> = info["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (name, kind) in [
        ("tiny-bert-rerank", "rerank"),
        ("tiny-bert-classify", "classify"),
        ("tiny-xlmr", "embed"),
    ] {
        assert!(kinds.contains(&(name.into(), kind.into())), "{kinds:?}");
    }
    // POST / goes by kind.
    let r = s
        .post(
            "/",
            json!({"model": "tiny-bert-rerank", "query": "q", "texts": ["a", "b"]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    // A reranker asked to embed, an embedder asked to rerank: 424 naming
    // the kind.
    let r = s
        .post(
            "/v1/embeddings",
            json!({"model": "tiny-bert-rerank", "input": "hello"}),
        )
        .await;
    assert_eq!(r.status(), 424);
    let text = r.text().await.unwrap();
    assert!(text.contains("rerank"), "{text}");
    let r = s
        .post(
            "/v1/rerank",
            json!({"model": "tiny-xlmr", "query": "q", "documents": ["a"]}),
        )
        .await;
    assert_eq!(r.status(), 424);
    let text = r.text().await.unwrap();
    assert!(text.contains("embed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_is_never_served_as_another_kind() {
    let err = PoolModel::spawn(
        "r",
        EmbedSpec::new(fixture("tiny-bert-rerank")),
        small_pool(),
        Duration::from_secs(60),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SpawnModelError::WrongKind { .. }), "{err}");
    assert!(err.to_string().contains("rerank"), "{err}");
    let err = ScoringModel::spawn(
        "e",
        EmbedSpec::new(fixture("tiny-xlmr")),
        small_pool(),
        Duration::from_secs(60),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("embed"), "{err}");
}
