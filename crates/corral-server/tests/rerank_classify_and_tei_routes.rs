//! Reranking and classification in every dialect clients speak — TEI's
//! `/rerank` (`texts`) and `/predict`, Cohere's `/v1/rerank` and `/rerank`
//! with `documents` (as Jina and infinity take it), infinity's `/classify` —
//! TEI's `/tokenize` and `/decode`, and the routes TEI serves for clients
//! people already have (`POST /`, `/invocations` by the model's kind,
//! `/embeddings`, `GET /ping`), against fake models over real HTTP: the
//! answers' shapes and order, each model picked by kind, and every error
//! status (424 for a task the model cannot do, naming its kind).

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{
    eventually, start_models, FakeModel, Script, TestServer, CLS, LABELS, MAX_TOKENS, SEP,
};
use corral_core::{HealthReport, PoolError};
use corral_embed::{Tokenized, TruncationSide};
use corral_server::model::BoxFuture;
use corral_server::{Embedded, ModelCard, ServedModel, ServerConfig, TokenizeError};
use serde_json::{json, Value};

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn close(a: &Value, b: f32) -> bool {
    (a.as_f64().unwrap() as f32 - b).abs() < 1e-6
}

async fn one(model: Arc<FakeModel>) -> TestServer {
    TestServer::start(vec![model], ServerConfig::default()).await
}

/// An embedder, a reranker and a classifier in one server, in that order.
async fn three() -> (TestServer, [Arc<FakeModel>; 3]) {
    let models = [
        FakeModel::new("embedder"),
        FakeModel::reranker("reranker"),
        FakeModel::classifier("classifier"),
    ];
    let s = TestServer::start(models.to_vec(), ServerConfig::default()).await;
    (s, models)
}

#[tokio::test]
async fn tei_rerank_answers_best_first_with_sigmoid_raw_scores_and_texts_on_request() {
    let m = FakeModel::reranker("rr");
    let s = one(m.clone()).await;
    // Logit = the document's words − 2: -1, 1, 0.
    let texts = ["a", "a b c", "a b"];
    let r = s
        .post("/rerank", json!({"query": "q", "texts": texts}))
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-compute-time-ms"));
    let body: Value = r.json().await.unwrap();
    let ranks = body.as_array().unwrap();
    let order: Vec<u64> = ranks.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(order, [1, 2, 0]);
    assert!(close(&ranks[0]["score"], sigmoid(1.0)), "{body}");
    assert!(close(&ranks[2]["score"], sigmoid(-1.0)), "{body}");
    assert!(ranks.iter().all(|r| r.get("text").is_none()), "{body}");
    // The pool got pairs: [CLS] q [SEP] doc [SEP], types 0 then 1.
    let scored = m.scored.lock().unwrap().clone();
    assert_eq!(scored.len(), 3);
    assert_eq!(scored[0].ids, [CLS, 2, SEP, 2, SEP]);
    assert_eq!(scored[0].type_ids, [0, 0, 0, 1, 1]);

    let body: Value = s
        .post(
            "/rerank",
            json!({"query": "q", "texts": texts, "raw_scores": true, "return_text": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    let ranks = body.as_array().unwrap();
    let scores: Vec<f64> = ranks.iter().map(|r| r["score"].as_f64().unwrap()).collect();
    assert_eq!(scores, [1.0, 0.0, -1.0]);
    assert_eq!(ranks[0]["text"], "a b c");
    assert_eq!(ranks[2]["text"], "a");
}

#[tokio::test]
async fn cohere_rerank_on_both_paths_takes_strings_or_text_objects_top_n_and_documents() {
    let s = one(FakeModel::reranker("rr")).await;
    for path in ["/v1/rerank", "/rerank"] {
        let r = s
            .post(
                path,
                json!({
                    "model": "rr",
                    "query": "q",
                    "documents": ["a", {"text": "a b c", "id": "x"}, "a b"],
                    "top_n": 2,
                    "return_documents": true,
                }),
            )
            .await;
        assert_eq!(r.status(), 200, "{path}");
        let body: Value = r.json().await.unwrap();
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), 2, "{path}: {body}");
        assert_eq!(results[0]["index"], 1);
        assert!(close(&results[0]["relevance_score"], sigmoid(1.0)));
        assert_eq!(results[0]["document"], json!({"text": "a b c"}));
        assert_eq!(results[1]["index"], 2);
        assert_eq!(body["model"], "rr");
        // [CLS] q [SEP] doc [SEP]: 5, 7 and 6 word pieces.
        assert_eq!(body["usage"]["total_tokens"], 18, "{body}");
        assert_eq!(body["usage"]["prompt_tokens"], 18);
    }
    // Without return_documents there is no document; without top_n, all.
    let body: Value = s
        .post("/v1/rerank", json!({"query": "q", "documents": ["a", "b"]}))
        .await
        .json()
        .await
        .unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(
        results.iter().all(|r| r.get("document").is_none()),
        "{body}"
    );
}

#[tokio::test]
async fn an_over_long_pair_is_refused_by_tei_unless_truncate_and_cut_by_cohere() {
    let m = FakeModel::reranker("rr");
    let s = one(m.clone()).await;
    let long = vec!["w"; MAX_TOKENS].join(" ");
    let r = s
        .post("/rerank", json!({"query": "q", "texts": ["a", long]}))
        .await;
    assert_eq!(r.status(), 413);
    let e: Value = r.json().await.unwrap();
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("`texts`[1]") && msg.contains("truncate"),
        "{msg}"
    );
    assert_eq!(e["error_type"], "validation");

    let r = s
        .post(
            "/rerank",
            json!({"query": "q", "texts": ["a", long], "truncate": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        m.scored.lock().unwrap().last().unwrap().ids.len(),
        MAX_TOKENS
    );
    let r = s
        .post("/v1/rerank", json!({"query": "q", "documents": [long]}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        m.scored.lock().unwrap().last().unwrap().ids.len(),
        MAX_TOKENS
    );
}

#[tokio::test]
async fn tei_predict_takes_a_text_a_pair_or_a_batch_and_answers_every_label_best_first() {
    let m = FakeModel::classifier("cls");
    let s = one(m.clone()).await;
    // One word: ids 3, logits [0, -1, -2]: negative first.
    let body: Value = s
        .post("/predict", json!({"inputs": "a"}))
        .await
        .json()
        .await
        .unwrap();
    let labels: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["negative", "neutral", "positive"]);
    let sum: f64 = body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["score"].as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-5, "softmax: {body}");

    // A pair is one input: [CLS] a [SEP] b c [SEP], 6 ids: positive first.
    let body: Value = s
        .post("/predict", json!({"inputs": ["a", "b c"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body[0]["label"], "positive", "{body}");
    let pair = m.scored.lock().unwrap().last().unwrap().clone();
    assert_eq!(pair.type_ids, [0, 0, 0, 1, 1, 1]);

    // A batch of a text and a pair: a list per input.
    let body: Value = s
        .post(
            "/predict",
            json!({"inputs": [["a"], ["a b c d", "e"]], "raw_scores": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    let batch = body.as_array().unwrap();
    assert_eq!(batch.len(), 2, "{body}");
    assert_eq!(batch[0][0], json!({"score": 0.0, "label": "negative"}));
    // 8 ids: raw logits [0, 4, 8].
    assert_eq!(batch[1][0], json!({"score": 8.0, "label": "positive"}));
    assert_eq!(batch[1][2], json!({"score": 0.0, "label": "negative"}));

    // A reranker predicts too: its one label, sigmoid.
    let s = one(FakeModel::reranker("rr")).await;
    let body: Value = s
        .post("/predict", json!({"inputs": ["q", "a b c"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body[0]["label"], "LABEL_0");
    assert!(close(&body[0]["score"], sigmoid(1.0)), "{body}");
}

#[tokio::test]
async fn infinity_classify_answers_a_list_per_input_with_usage() {
    let s = one(FakeModel::classifier("cls")).await;
    let r = s
        .post(
            "/classify",
            json!({"input": ["a", "a b c"], "model": "cls"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "classify");
    assert_eq!(body["model"], "cls");
    assert_eq!(body["data"][0][0]["label"], "negative");
    assert_eq!(body["data"][1][0]["label"], "positive");
    assert_eq!(body["data"][1].as_array().unwrap().len(), LABELS.len());
    assert_eq!(body["usage"]["total_tokens"], 3 + 5);
    let body: Value = s
        .post("/classify", json!({"input": "a b c", "raw_scores": true}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["data"][0][0],
        json!({"score": 2.0, "label": "positive"})
    );
}

#[tokio::test]
async fn tokenize_lists_tokens_with_specials_marked_and_decode_inverts_it() {
    let s = one(FakeModel::new("e")).await;
    let body: Value = s
        .post("/tokenize", json!({"inputs": "a bb"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body,
        json!([[
            {"id": CLS, "text": "[CLS]", "special": true, "start": null, "stop": null},
            {"id": 2, "text": "w2", "special": false, "start": null, "stop": null},
            {"id": 3, "text": "w3", "special": false, "start": null, "stop": null},
            {"id": SEP, "text": "[SEP]", "special": true, "start": null, "stop": null},
        ]])
    );
    let body: Value = s
        .post(
            "/tokenize",
            json!({"inputs": ["a", "bb"], "add_special_tokens": false}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body[0],
        json!([{"id": 2, "text": "w2", "special": false, "start": null, "stop": null}])
    );
    assert_eq!(body[1][0]["id"], 3);

    let body: Value = s
        .post("/decode", json!({"ids": [CLS, 5, 6, SEP]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!(["w5 w6"]));
    let body: Value = s
        .post(
            "/decode",
            json!({"ids": [[CLS, 5, SEP], [7]], "skip_special_tokens": false}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!(["[CLS] w5 [SEP]", "w7"]));
    let r = s.post("/decode", json!({"ids": [[5], [1000]]})).await;
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("`ids`[1]"), "{e}");
}

#[tokio::test]
async fn post_root_and_invocations_follow_the_models_kind_and_embeddings_is_openais() {
    let (s, [_e, r, c]) = three().await;
    for path in ["/", "/invocations"] {
        // No model named: the first served, an embedder: TEI's /embed.
        let root: Value = s
            .post(path, json!({"inputs": ["a bb"]}))
            .await
            .json()
            .await
            .unwrap();
        let embed: Value = s
            .post("/embed", json!({"inputs": ["a bb"]}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(root, embed, "{path}");
        // The reranker named: TEI's /rerank.
        let body: Value = s
            .post(
                path,
                json!({"model": "reranker", "query": "q", "texts": ["a", "a b c"]}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body[0]["index"], 1, "{path}: {body}");
        // The classifier named: TEI's /predict.
        let body: Value = s
            .post(path, json!({"model": "classifier", "inputs": "a"}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body[0]["label"], "negative", "{path}: {body}");
    }
    assert_eq!(r.scored.lock().unwrap().len(), 4);
    assert_eq!(c.scored.lock().unwrap().len(), 2);
    // A classifier alone: POST / is /predict.
    let s2 = one(FakeModel::classifier("only")).await;
    let body: Value = s2
        .post("/", json!({"inputs": [["a"], ["b"]]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body.as_array().unwrap().len(), 2, "{body}");

    let a: Value = s
        .post("/embeddings", json!({"input": "a bb"}))
        .await
        .json()
        .await
        .unwrap();
    let b: Value = s
        .post("/v1/embeddings", json!({"input": "a bb"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a["object"], "list");
    assert_eq!(s.get("/ping").await.status(), 200);
}

#[tokio::test]
async fn without_model_each_task_goes_to_the_first_model_of_its_kind() {
    let (s, [e, r, c]) = three().await;
    assert_eq!(
        s.post("/rerank", json!({"query": "q", "texts": ["a"]}))
            .await
            .status(),
        200
    );
    assert_eq!(
        s.post("/predict", json!({"inputs": "a"})).await.status(),
        200
    );
    assert_eq!(
        s.post("/classify", json!({"input": ["a"]})).await.status(),
        200
    );
    assert_eq!(s.post("/embed", json!({"inputs": "a"})).await.status(), 200);
    assert_eq!(r.scored.lock().unwrap().len(), 1);
    assert_eq!(
        c.scored.lock().unwrap().len(),
        2,
        "predict prefers a classifier"
    );
    assert_eq!(e.received.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_task_the_model_cannot_do_is_424_naming_its_kind_in_each_dialect() {
    let (s, _m) = three().await;
    // TEI: named model of the wrong kind.
    let r = s
        .post(
            "/rerank",
            json!({"model": "embedder", "query": "q", "texts": ["a"]}),
        )
        .await;
    assert_eq!(r.status(), 424);
    let e: Value = r.json().await.unwrap();
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("`embedder` is of kind `embed`") && msg.contains("rerank"),
        "{msg}"
    );
    assert_eq!(e["error_type"], "backend");
    // OpenAI: embeddings from a reranker.
    let r = s
        .post("/v1/embeddings", json!({"model": "reranker", "input": "a"}))
        .await;
    assert_eq!(r.status(), 424);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "wrong_model_kind");
    assert_eq!(e["error"]["param"], "model");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("kind `rerank`") && msg.contains("embed"),
        "{msg}"
    );
    // Cohere: its `message`, and OpenAI's error beside it.
    let r = s
        .post(
            "/v1/rerank",
            json!({"model": "classifier", "query": "q", "documents": ["a"]}),
        )
        .await;
    assert_eq!(r.status(), 424);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["message"].as_str().unwrap().contains("kind `classify`"),
        "{e}"
    );
    assert_eq!(e["error"]["code"], "wrong_model_kind");
    // Predict on an embedder; classify on an embedder.
    for (path, body) in [
        ("/predict", json!({"model": "embedder", "inputs": "a"})),
        ("/classify", json!({"model": "embedder", "input": ["a"]})),
        ("/embed", json!({"model": "classifier", "inputs": "a"})),
    ] {
        assert_eq!(s.post(path, body).await.status(), 424, "{path}");
    }
    // Nothing named and nothing of that kind: 424 naming what is served.
    let s = one(FakeModel::new("e")).await;
    let r = s
        .post("/rerank", json!({"query": "q", "texts": ["a"]}))
        .await;
    assert_eq!(r.status(), 424);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("`e` is of kind `embed`"),
        "{e}"
    );
    let two = TestServer::start(
        vec![FakeModel::new("e1"), FakeModel::new("e2")],
        ServerConfig::default(),
    )
    .await;
    let r = two.post("/predict", json!({"inputs": "a"})).await;
    assert_eq!(r.status(), 424);
    let e: Value = r.json().await.unwrap();
    let msg = e["error"].as_str().unwrap();
    assert!(msg.contains("e1 (embed), e2 (embed)"), "{msg}");
}

#[tokio::test]
async fn info_and_models_say_each_models_kind_labels_and_activation() {
    let (s, _m) = three().await;
    let info: Value = s.get("/info").await.json().await.unwrap();
    let kinds: Vec<&str> = info["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["embed", "rerank", "classify"]);
    assert_eq!(info["models"][2]["labels"], json!(LABELS));
    assert_eq!(info["models"][2]["activation"], "softmax");
    assert_eq!(info["models"][1]["activation"], "sigmoid");
    let models: Value = s.get("/v1/models").await.json().await.unwrap();
    assert_eq!(models["data"][1]["id"], "reranker");
    assert_eq!(models["data"][1]["kind"], "rerank");
}

#[tokio::test]
async fn pool_errors_on_scoring_routes_map_to_their_statuses_with_retry_after() {
    let m = FakeModel::reranker("rr");
    let s = one(m.clone()).await;
    let requests = [
        ("/rerank", json!({"query": "q", "texts": ["a"]})),
        ("/v1/rerank", json!({"query": "q", "documents": ["a"]})),
        ("/predict", json!({"inputs": "a"})),
        ("/classify", json!({"input": ["a"]})),
        ("/", json!({"query": "q", "texts": ["a"]})),
    ];
    m.set(Script::Fail(PoolError::Overloaded {
        retry_after: Duration::from_millis(2500),
    }));
    for (path, body) in &requests {
        let r = s.post(path, body.clone()).await;
        assert_eq!(r.status(), 429, "{path}");
        assert_eq!(r.headers()["retry-after"], "3", "{path}");
    }
    for (err, status) in [
        (PoolError::ShuttingDown, 503),
        (PoolError::Backend("boom".into()), 500),
        (PoolError::DeadlinePassed, 504),
    ] {
        m.set(Script::Fail(err.clone()));
        for (path, body) in &requests {
            assert_eq!(
                s.post(path, body.clone()).await.status(),
                status,
                "{path} {err:?}"
            );
        }
    }
    // A model that answers the wrong number of logits is the server's
    // failure, not the client's.
    m.set(Script::ExtraLogit);
    let r = s.post("/rerank", requests[0].1.clone()).await;
    assert_eq!(r.status(), 500);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("2 logits"), "{e}");
    // So is one that answers fewer rows than it was given, on every task.
    m.set(Script::MissingRow);
    let r = s.post("/rerank", requests[0].1.clone()).await;
    assert_eq!(r.status(), 500);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("scores for"), "{e}");
    m.set(Script::Fail(PoolError::InvalidInput("bad".into())));
    assert_eq!(s.post("/rerank", requests[0].1.clone()).await.status(), 422);
    assert_eq!(
        s.post("/v1/rerank", requests[1].1.clone()).await.status(),
        400
    );
}

#[tokio::test]
async fn wrong_or_missing_fields_are_named_in_each_dialect() {
    let (s, _m) = three().await;
    let cases = [
        ("/rerank", json!({"texts": ["a"]}), 422, "query"),
        ("/rerank", json!({"query": "q"}), 422, "texts"),
        ("/rerank", json!({"query": "q", "texts": "a"}), 422, "texts"),
        (
            "/rerank",
            json!({"query": "q", "texts": ["a"], "raw_scores": 1}),
            422,
            "raw_scores",
        ),
        (
            "/rerank",
            json!({"query": 1, "documents": ["a"]}),
            400,
            "query",
        ),
        ("/v1/rerank", json!({"query": "q"}), 400, "documents"),
        (
            "/v1/rerank",
            json!({"query": "q", "documents": [{"id": 1}]}),
            400,
            "documents",
        ),
        (
            "/v1/rerank",
            json!({"query": "q", "documents": [3]}),
            400,
            "documents",
        ),
        (
            "/v1/rerank",
            json!({"query": "q", "documents": ["a"], "top_n": -1}),
            400,
            "top_n",
        ),
        (
            "/v1/rerank",
            json!({"query": "q", "documents": ["a"], "top_n": 0}),
            400,
            "top_n",
        ),
        ("/predict", json!({}), 422, "inputs"),
        (
            "/predict",
            json!({"inputs": ["a", "b", "c"]}),
            422,
            "inputs",
        ),
        (
            "/predict",
            json!({"inputs": [["a", "b", "c"]]}),
            422,
            "inputs",
        ),
        ("/predict", json!({"inputs": 3}), 422, "inputs"),
        ("/classify", json!({"input": 3}), 400, "input"),
        ("/classify", json!({}), 400, "input"),
        ("/tokenize", json!({"inputs": [1]}), 422, "inputs"),
        (
            "/tokenize",
            json!({"inputs": "a", "add_special_tokens": "no"}),
            422,
            "add_special_tokens",
        ),
        ("/decode", json!({"ids": "a"}), 422, "ids"),
        ("/decode", json!({}), 422, "ids"),
    ];
    for (path, body, status, field) in cases {
        let r = s.post(path, body.clone()).await;
        assert_eq!(r.status(), status, "{path} {body}");
        let e: Value = r.json().await.unwrap();
        let msg = e["error"]
            .as_str()
            .or_else(|| e["message"].as_str())
            .or_else(|| e["error"]["message"].as_str())
            .unwrap_or_else(|| panic!("{path} {body}: {e}"));
        assert!(msg.contains(&format!("`{field}`")), "{path} {body}: {msg}");
        if status == 400 {
            assert_eq!(e["error"]["param"], field, "{path} {body}: {e}");
        }
    }
    // Empty lists: TEI's `empty`, 400 in every dialect.
    for (path, body) in [
        ("/rerank", json!({"query": "q", "texts": []})),
        ("/v1/rerank", json!({"query": "q", "documents": []})),
        ("/predict", json!({"inputs": []})),
        ("/classify", json!({"input": []})),
        ("/tokenize", json!({"inputs": []})),
        ("/decode", json!({"ids": []})),
    ] {
        assert_eq!(
            s.post(path, body.clone()).await.status(),
            400,
            "{path} {body}"
        );
    }
    // A text the tokenizer cannot encode: named with its place.
    let r = s
        .post("/rerank", json!({"query": "q", "texts": ["a", "FAIL"]}))
        .await;
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"].as_str().unwrap().starts_with("`texts`[1]: "),
        "{e}"
    );
    let r = s.post("/classify", json!({"input": ["FAIL"]})).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "input");
}

#[tokio::test]
async fn limits_unknown_models_and_the_api_key_hold_on_every_new_route() {
    let config = ServerConfig {
        max_batch_inputs: 2,
        max_body: 4096,
        api_key: Some("k".into()),
        ..ServerConfig::default()
    };
    let s = TestServer::start(
        vec![FakeModel::reranker("rr"), FakeModel::classifier("cls")],
        config,
    )
    .await;
    let authed = |path: &str, body: Value| {
        s.client
            .post(s.url(path))
            .bearer_auth("k")
            .json(&body)
            .send()
    };
    let three = ["a", "b", "c"];
    assert_eq!(
        authed("/rerank", json!({"query": "q", "texts": three}))
            .await
            .unwrap()
            .status(),
        413
    );
    assert_eq!(
        authed("/v1/rerank", json!({"query": "q", "documents": three}))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        authed("/classify", json!({"input": three}))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        authed("/tokenize", json!({"inputs": three}))
            .await
            .unwrap()
            .status(),
        413
    );
    let big = "x ".repeat(4096);
    assert_eq!(
        authed("/predict", json!({"inputs": big}))
            .await
            .unwrap()
            .status(),
        413
    );
    let r = authed(
        "/v1/rerank",
        json!({"model": "nope", "query": "q", "documents": ["a"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert!(e["message"].as_str().unwrap().contains("rr, cls"), "{e}");
    for path in [
        "/rerank",
        "/v1/rerank",
        "/predict",
        "/classify",
        "/tokenize",
        "/decode",
        "/",
        "/invocations",
        "/embeddings",
    ] {
        assert_eq!(s.post(path, json!({})).await.status(), 401, "{path}");
    }
    assert_eq!(s.get("/ping").await.status(), 200, "/ping is open");
}

#[tokio::test]
async fn scoring_routes_hold_a_place_and_answer_429_past_max_concurrent_requests() {
    let m = FakeModel::reranker("rr");
    let config = ServerConfig {
        max_concurrent_requests: 1,
        ..ServerConfig::default()
    };
    let s = TestServer::start(vec![m.clone()], config).await;
    m.set(Script::Hold);
    let held = tokio::spawn({
        let client = s.client.clone();
        let url = s.url("/rerank");
        async move {
            client
                .post(url)
                .json(&json!({"query": "q", "texts": ["a"]}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    assert!(
        eventually(Duration::from_secs(5), || m.held.load(Ordering::SeqCst)
            == 1)
        .await
    );
    let r = s
        .post("/v1/rerank", json!({"query": "q", "documents": ["a"]}))
        .await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let e: Value = r.json().await.unwrap();
    assert!(e["message"].is_string(), "Cohere's shape: {e}");
    m.set(Script::Answer);
    m.gate.notify_waiters();
    assert_eq!(held.await.unwrap(), 200);
}

#[tokio::test]
async fn metrics_label_scoring_by_route_model_and_task() {
    let s = one(FakeModel::reranker("rr-metrics")).await;
    s.post("/rerank", json!({"query": "q", "texts": ["a"]}))
        .await;
    s.post("/v1/rerank", json!({"query": "q", "documents": ["a"]}))
        .await;
    let text = s.get("/metrics").await.text().await.unwrap();
    for needle in [
        "corral_http_requests_total{route=\"/rerank\",status=\"200\"}",
        "corral_http_requests_total{route=\"/v1/rerank\",status=\"200\"}",
        "corral_request_inputs_bucket{model=\"rr-metrics\",task=\"rerank\"",
        "corral_compute_time_seconds_bucket{model=\"rr-metrics\",task=\"rerank\"",
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
}

/// A model that implements only what an embedder must: every new method
/// is the trait's default.
struct Minimal(ModelCard);

impl ServedModel for Minimal {
    fn card(&self) -> &ModelCard {
        &self.0
    }
    fn tokenize(&self, text: &str, _side: TruncationSide) -> Result<Tokenized, TokenizeError> {
        Ok(Tokenized {
            ids: vec![CLS; text.len().min(3)],
            truncated: false,
        })
    }
    fn wrap_ids(&self, ids: Vec<u32>, _side: TruncationSide) -> Result<Tokenized, TokenizeError> {
        Ok(Tokenized {
            ids,
            truncated: false,
        })
    }
    fn embed(&self, _inputs: Vec<Vec<u32>>) -> BoxFuture<'_, Result<Embedded, PoolError>> {
        Box::pin(async { Err(PoolError::ShuttingDown) })
    }
    fn health(&self) -> BoxFuture<'_, Result<HealthReport, PoolError>> {
        Box::pin(async { Err(PoolError::ShuttingDown) })
    }
    fn shutdown(&self, _deadline: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

#[tokio::test]
async fn what_a_model_does_not_offer_is_424_naming_it() {
    let mut card = FakeModel::reranker("minimal").card().clone();
    card.name = "minimal".into();
    let s = start_models(
        vec![Arc::new(Minimal(card))],
        ServerConfig::default(),
        Duration::from_secs(1),
    )
    .await;
    for (path, body, what) in [
        ("/decode", json!({"ids": [1]}), "decode"),
        ("/tokenize", json!({"inputs": "ab"}), "decode"),
        ("/rerank", json!({"query": "q", "texts": ["a"]}), "pair"),
    ] {
        let r = s.post(path, body).await;
        assert_eq!(r.status(), 424, "{path}");
        let e: Value = r.json().await.unwrap();
        let msg = e["error"].as_str().unwrap();
        assert!(
            msg.contains("`minimal` cannot") && msg.contains(what),
            "{path}: {msg}"
        );
    }
    // A single text goes through the default tokenize_pair; the default
    // score refuses it as invalid input.
    let r = s.post("/predict", json!({"inputs": "ab"})).await;
    assert_eq!(r.status(), 422);
}
