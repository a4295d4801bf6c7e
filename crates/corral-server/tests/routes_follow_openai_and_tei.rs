//! `/v1/embeddings` answers as OpenAI's API does (strings, batches, token
//! ids, base64, dimensions, usage), `/embed` as TEI's does (normalize,
//! truncate, truncation_direction), and `/info`, `/v1/models`, `/health`,
//! `/metrics` describe what is served — against a fake model, over real
//! HTTP.

mod common;

use base64::Engine as _;
use common::{norm, FakeModel, TestServer, CLS, DIM, MAX_TOKENS, SEP};
use corral_core::WorkerState;
use corral_server::ServerConfig;
use serde_json::{json, Value};

async fn server() -> (TestServer, std::sync::Arc<FakeModel>) {
    let model = FakeModel::new("fake");
    (
        TestServer::start(vec![model.clone()], ServerConfig::default()).await,
        model,
    )
}

#[tokio::test]
async fn openai_embeddings_answer_strings_and_batches_with_real_usage() {
    let (s, _m) = server().await;
    let r = s
        .post(
            "/v1/embeddings",
            json!({"input": "a bb ccc", "model": "fake"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-queue-time-ms"));
    assert!(r.headers().contains_key("x-compute-time-ms"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "fake");
    assert_eq!(body["data"][0]["object"], "embedding");
    assert_eq!(body["data"][0]["index"], 0);
    let v: Vec<f32> = serde_json::from_value(body["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(v.len(), DIM);
    assert!((norm(&v) - 1.0).abs() < 1e-5);
    // 3 words + [CLS] + [SEP]
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(body["usage"]["total_tokens"], 5);

    let body: Value = s
        .post(
            "/v1/embeddings",
            json!({"input": ["a", "bb cc", "d e f g"], "user": "u1"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["index"], i);
    }
    assert_eq!(body["usage"]["prompt_tokens"], 3 + 4 + 6);
}

#[tokio::test]
async fn openai_base64_is_little_endian_f32_of_the_float_answer() {
    let (s, _m) = server().await;
    let float: Value = s
        .post("/v1/embeddings", json!({"input": "x yy"}))
        .await
        .json()
        .await
        .unwrap();
    let b64: Value = s
        .post(
            "/v1/embeddings",
            json!({"input": "x yy", "encoding_format": "base64"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let expected: Vec<f32> = serde_json::from_value(float["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(decoded, expected);
}

#[tokio::test]
async fn openai_dimensions_truncate_then_renormalise_allow_the_model_size_and_refuse_above_it() {
    let (s, _m) = server().await;
    let body: Value = s
        .post("/v1/embeddings", json!({"input": "x", "dimensions": 3}))
        .await
        .json()
        .await
        .unwrap();
    let v: Vec<f32> = serde_json::from_value(body["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(v.len(), 3);
    assert!((norm(&v) - 1.0).abs() < 1e-5);
    let raw = FakeModel::vector(&[CLS, 2, SEP]);
    let n = norm(&raw[..3]);
    for (a, b) in v.iter().zip(&raw[..3]) {
        assert!((a - b / n).abs() < 1e-6);
    }
    // Exactly the model's size is allowed: the whole (normalised) vector.
    let full: Value = s
        .post("/v1/embeddings", json!({"input": "x", "dimensions": DIM}))
        .await
        .json()
        .await
        .unwrap();
    let plain: Value = s
        .post("/v1/embeddings", json!({"input": "x"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(full["data"][0]["embedding"].as_array().unwrap().len(), DIM);
    assert_eq!(full["data"], plain["data"]);
    let r = s
        .post(
            "/v1/embeddings",
            json!({"input": "x", "dimensions": DIM + 1}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "dimensions");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("dimensions"));
}

#[tokio::test]
async fn openai_token_id_input_reaches_the_pool_as_ids_with_special_tokens() {
    let (s, m) = server().await;
    let body: Value = s
        .post("/v1/embeddings", json!({"input": [5, 6, 7]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    let body: Value = s
        .post("/v1/embeddings", json!({"input": [[5], [6, 7]]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let received = m.received.lock().unwrap().clone();
    assert_eq!(
        received,
        vec![
            vec![CLS, 5, 6, 7, SEP],
            vec![CLS, 5, SEP],
            vec![CLS, 6, 7, SEP]
        ]
    );
    // texts reach the pool tokenised too
    s.post("/v1/embeddings", json!({"input": "abc"})).await;
    assert_eq!(
        m.received.lock().unwrap().last().unwrap(),
        &vec![CLS, 4, SEP]
    );
}

#[tokio::test]
async fn tei_embed_normalises_by_default_and_not_when_asked() {
    let (s, _m) = server().await;
    let r = s.post("/embed", json!({"inputs": "a bb"})).await;
    assert_eq!(r.status(), 200);
    let v: Vec<Vec<f32>> = r.json().await.unwrap();
    assert_eq!(v.len(), 1);
    assert!((norm(&v[0]) - 1.0).abs() < 1e-5);
    let v: Vec<Vec<f32>> = s
        .post(
            "/embed",
            json!({"inputs": ["a bb", "c"], "normalize": false}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0], FakeModel::vector(&[CLS, 2, 3, SEP]));
}

#[tokio::test]
async fn tei_refuses_an_over_long_text_unless_truncate_and_cuts_the_side_asked() {
    let (s, m) = server().await;
    let long: Vec<String> = (0..MAX_TOKENS + 4).map(|i| "x".repeat(1 + i % 5)).collect();
    let long = long.join(" ");
    let r = s.post("/embed", json!({"inputs": long})).await;
    assert_eq!(r.status(), 413);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error_type"], "validation");
    assert!(e["error"].as_str().unwrap().contains("truncate"), "{e}");

    let r = s
        .post("/embed", json!({"inputs": long, "truncate": true}))
        .await;
    assert_eq!(r.status(), 200);
    let right = m.received.lock().unwrap().last().unwrap().clone();
    assert_eq!(right.len(), MAX_TOKENS);
    assert_eq!(right[1], 2, "right truncation keeps the start");
    let r = s
        .post(
            "/embed",
            json!({"inputs": long, "truncate": true, "truncation_direction": "Left"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let left = m.received.lock().unwrap().last().unwrap().clone();
    assert_eq!(left.len(), MAX_TOKENS);
    // words i = 0..20 become ids 2 + i % 5; the left cut keeps i = 6..20
    assert_eq!(left[1], 2 + 6 % 5, "left truncation keeps the end");
    assert_eq!(left[MAX_TOKENS - 2], 2 + 19 % 5);

    // OpenAI has no truncate flag: over-long is a 400 naming `input`.
    let r = s.post("/v1/embeddings", json!({"input": long})).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "input");
}

#[tokio::test]
async fn info_and_models_describe_what_is_served() {
    let a = FakeModel::new("a");
    let b = FakeModel::new("b");
    let s = TestServer::start(vec![a, b.clone()], ServerConfig::default()).await;
    let info: Value = s.get("/info").await.json().await.unwrap();
    assert_eq!(info["models"].as_array().unwrap().len(), 2);
    assert_eq!(info["models"][0]["dimensions"], DIM);
    assert_eq!(info["models"][0]["max_input_tokens"], MAX_TOKENS);
    assert_eq!(info["models"][0]["pooling"], "mean");
    assert_eq!(info["limits"]["max_batch_inputs"], 512);
    assert!(info["version"].is_string());
    let models: Value = s.get("/v1/models").await.json().await.unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][1]["id"], "b");
    // a request picks its model by name
    let body: Value = s
        .post("/v1/embeddings", json!({"input": "q", "model": "b"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["model"], "b");
    assert_eq!(b.received.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn health_is_200_while_a_worker_serves_and_503_with_the_pools_reason_otherwise() {
    let (s, m) = server().await;
    let r = s.get("/health").await;
    assert_eq!(r.status(), 200);
    *m.health.lock().unwrap() = WorkerState::Loading;
    let r = s.get("/health").await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains("model fake") && reason.contains("1 loading"),
        "{reason}"
    );
    *m.health.lock().unwrap() = WorkerState::Restarting;
    let body: Value = s.get("/health").await.json().await.unwrap();
    assert!(
        body["reason"].as_str().unwrap().contains("1 restarting"),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_time_the_pool() {
    let (s, _m) = server().await;
    s.post("/v1/embeddings", json!({"input": "a"})).await;
    s.post("/v1/embeddings", json!({"input": 3})).await;
    let text = s.get("/metrics").await.text().await.unwrap();
    for needle in [
        "corral_http_requests_total{route=\"/v1/embeddings\",status=\"200\"}",
        "corral_http_requests_total{route=\"/v1/embeddings\",status=\"400\"}",
        "corral_http_request_duration_seconds_bucket",
        "corral_request_inputs_bucket{model=\"fake\"",
        "corral_request_tokens_bucket{model=\"fake\"",
        "corral_queue_time_seconds_bucket{model=\"fake\"",
        "corral_compute_time_seconds_bucket{model=\"fake\"",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    // unknown paths are 404 and do not make a series per path
    let r = s.get("/nope/123").await;
    assert_eq!(r.status(), 404);
    let text = s.get("/metrics").await.text().await.unwrap();
    assert!(!text.contains("/nope/123"));
}
