//! Every error a client can cause or meet has a status it can act on and a
//! body in its API's shape: each `PoolError`, malformed and wrong-typed
//! bodies, empty and oversized inputs, unknown models, API keys — and a
//! client that disconnects withdraws its request.

mod common;

use std::time::Duration;

use common::{eventually, FakeModel, Script, TestServer};
use corral_core::PoolError;
use corral_server::ServerConfig;
use serde_json::{json, Value};

async fn server_with(config: ServerConfig) -> (TestServer, std::sync::Arc<FakeModel>) {
    let model = FakeModel::new("fake");
    (TestServer::start(vec![model.clone()], config).await, model)
}

async fn openai_error(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    assert!(
        body["error"].as_object().unwrap().contains_key("param"),
        "{body}"
    );
    assert!(
        body["error"].as_object().unwrap().contains_key("code"),
        "{body}"
    );
    (status, body)
}

#[tokio::test]
async fn overloaded_is_429_with_retry_after_from_the_pools_estimate() {
    let (s, m) = server_with(ServerConfig::default()).await;
    m.set(Script::Fail(PoolError::Overloaded {
        retry_after: Duration::from_millis(2300),
    }));
    let r = s.post("/v1/embeddings", json!({"input": "a"})).await;
    assert_eq!(r.headers()["retry-after"], "3");
    let (status, body) = openai_error(r).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "overloaded");
    m.set(Script::Fail(PoolError::Overloaded {
        retry_after: Duration::from_millis(10),
    }));
    let r = s.post("/embed", json!({"inputs": "a"})).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_type"], "overloaded");
}

#[tokio::test]
async fn every_other_pool_error_maps_to_its_status() {
    let (s, m) = server_with(ServerConfig::default()).await;
    let cases = [
        (PoolError::ShuttingDown, 503, 503),
        (PoolError::TimedOut, 503, 503),
        (PoolError::DeadlinePassed, 504, 504),
        (PoolError::WorkerLost, 503, 503),
        (PoolError::InvalidInput("bad".into()), 400, 422),
        (PoolError::Backend("boom".into()), 500, 500),
        (PoolError::TooLarge("65 MiB".into()), 400, 413),
    ];
    for (err, openai, tei) in cases {
        m.set(Script::Fail(err.clone()));
        let (status, _) = openai_error(s.post("/v1/embeddings", json!({"input": "a"})).await).await;
        assert_eq!(status, openai, "{err:?}");
        let r = s.post("/embed", json!({"inputs": "a"})).await;
        assert_eq!(r.status().as_u16(), tei, "{err:?}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].is_string() && body["error_type"].is_string(),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_model_that_answers_too_few_vectors_is_the_servers_500() {
    let (s, m) = server_with(ServerConfig::default()).await;
    m.set(Script::MissingRow);
    for (path, body) in [
        ("/v1/embeddings", json!({"input": ["a", "b"]})),
        ("/embed", json!({"inputs": ["a", "b"]})),
    ] {
        let r = s.post(path, body).await;
        assert_eq!(r.status(), 500, "{path}");
        let text = r.text().await.unwrap();
        assert!(text.contains("1 vectors for 2 inputs"), "{path}: {text}");
    }
}

#[tokio::test]
async fn malformed_or_wrong_typed_bodies_are_400_naming_the_field() {
    let (s, _m) = server_with(ServerConfig::default()).await;
    let r = s
        .client
        .post(s.url("/v1/embeddings"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = openai_error(r).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("JSON"));
    for (req, field) in [
        (json!({}), "input"),
        (json!({"input": 5.5}), "input"),
        (json!({"input": [1, "a"]}), "input"),
        (json!({"input": []}), "input"),
        (json!({"input": "a", "model": 3}), "model"),
        (
            json!({"input": "a", "encoding_format": "int8"}),
            "encoding_format",
        ),
        (json!({"input": "a", "dimensions": -1}), "dimensions"),
        (json!({"input": [[1, 5000]]}), "input"),
        (json!([1, 2]), "body"),
    ] {
        let (status, body) = openai_error(s.post("/v1/embeddings", req.clone()).await).await;
        assert_eq!(status, 400, "{req}");
        assert_eq!(body["error"]["param"], field, "{req}: {body}");
    }
    // TEI answers its own codes: 422 for a wrong type, 400 for an empty batch.
    let r = s
        .post("/embed", json!({"inputs": "a", "normalize": "yes"}))
        .await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("normalize"));
    let r = s.post("/embed", json!({"inputs": []})).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_type"], "empty");
}

/// Every typed field of both dialects, given a value of the wrong type:
/// OpenAI answers 400 with `param` the field, TEI 422; both messages name
/// the field, and nothing reaches the pool.
#[tokio::test]
async fn a_wrong_type_in_any_field_of_either_dialect_is_named() {
    let (s, m) = server_with(ServerConfig::default()).await;
    for (req, field) in [
        (json!({"input": true}), "input"),
        (json!({"input": "a", "model": ["fake"]}), "model"),
        (
            json!({"input": "a", "encoding_format": 1}),
            "encoding_format",
        ),
        (json!({"input": "a", "dimensions": "3"}), "dimensions"),
        (json!({"input": "a", "user": 5}), "user"),
    ] {
        let (status, body) = openai_error(s.post("/v1/embeddings", req.clone()).await).await;
        assert_eq!(status, 400, "{req}");
        assert_eq!(body["error"]["param"], field, "{req}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{field}`")), "{req}: {message}");
    }
    for (req, field) in [
        (json!({"inputs": {"a": 1}}), "inputs"),
        (json!({"inputs": "a", "model": 1}), "model"),
        (json!({"inputs": "a", "normalize": 1}), "normalize"),
        (json!({"inputs": "a", "truncate": "yes"}), "truncate"),
        (
            json!({"inputs": "a", "truncation_direction": true}),
            "truncation_direction",
        ),
    ] {
        let r = s.post("/embed", req.clone()).await;
        assert_eq!(r.status(), 422, "{req}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error_type"], "validation", "{req}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(&format!("`{field}`")), "{req}: {message}");
    }
    assert!(
        m.received.lock().unwrap().is_empty(),
        "nothing reached the pool"
    );
}

/// A token id the model's vocabulary lacks is the inputs field's error, at
/// the input's place, with the id.
#[tokio::test]
async fn an_unknown_token_id_is_named_with_its_place() {
    let (s, m) = server_with(ServerConfig::default()).await;
    let (status, body) = openai_error(
        s.post("/v1/embeddings", json!({"input": [[1], [2, 5000]]}))
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "input");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("`input`[1]: ") && message.contains("5000"),
        "{message}"
    );
    let r = s.post("/embed", json!({"inputs": [7, 1000]})).await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(
        message.starts_with("`inputs`[0]: ") && message.contains("1000"),
        "{message}"
    );
    assert!(
        m.received.lock().unwrap().is_empty(),
        "nothing reached the pool"
    );
}

/// An unknown path is the client's error (404, `invalid_request_error`),
/// not a server that is unavailable.
#[tokio::test]
async fn an_unknown_path_is_404_as_the_clients_error() {
    let (s, _m) = server_with(ServerConfig::default()).await;
    for r in [
        s.get("/v1/nope").await,
        s.post("/v2/embeddings", json!({"input": "a"})).await,
    ] {
        let (status, body) = openai_error(r).await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        assert!(body["error"]["code"].is_null(), "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("no route /v"),
            "{body}"
        );
    }
    // With no recorder, `/metrics` is not served: the same 404.
    let s = common::TestServer::start(
        vec![FakeModel::new("fake")],
        ServerConfig {
            metrics: None,
            ..ServerConfig::default()
        },
    )
    .await;
    let (status, body) = openai_error(s.get("/metrics").await).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
}

#[tokio::test]
async fn too_many_inputs_and_too_large_a_body_are_refused() {
    let config = ServerConfig {
        max_batch_inputs: 4,
        max_body: 1000,
        ..ServerConfig::default()
    };
    let (s, m) = server_with(config).await;
    let (status, body) = openai_error(
        s.post(
            "/v1/embeddings",
            json!({"input": ["a", "b", "c", "d", "e"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 4"));
    let r = s
        .post("/embed", json!({"inputs": ["a", "b", "c", "d", "e"]}))
        .await;
    assert_eq!(r.status(), 413);

    let big = "x ".repeat(600);
    let (status, _) = openai_error(s.post("/v1/embeddings", json!({"input": big})).await).await;
    assert_eq!(status, 413);
    // the same without a declared length (chunked) is refused as it streams
    let status =
        chunked_post_status(&s, "/v1/embeddings", &format!("{{\"input\": \"{big}\"}}")).await;
    assert_eq!(status, 413);
    assert!(
        m.received.lock().unwrap().is_empty(),
        "nothing reached the pool"
    );
}

/// POSTs `body` in 100-byte chunks without a Content-Length, over a raw
/// connection, and returns the status code.
async fn chunked_post_status(s: &TestServer, path: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        s.addr
    );
    for chunk in body.as_bytes().chunks(100) {
        req.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            std::str::from_utf8(chunk).unwrap()
        ));
    }
    req.push_str("0\r\n\r\n");
    // The server may answer and close before it has read everything.
    let _ = conn.write_all(req.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

#[tokio::test]
async fn unknown_model_is_404() {
    let (s, _m) = server_with(ServerConfig::default()).await;
    let (status, body) = openai_error(
        s.post("/v1/embeddings", json!({"input": "a", "model": "gpt-9"}))
            .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "model_not_found");
    assert!(body["error"]["message"].as_str().unwrap().contains("fake"));
}

/// Which dialect's error body `body` is: TEI's `{error, error_type}`,
/// OpenAI's `{error: {message, …}}`, or Cohere's `{message}`.
fn error_shape(body: &Value) -> &'static str {
    if body["error_type"].is_string() && body["error"].is_string() {
        "tei"
    } else if body["error"]["message"].is_string() {
        "openai"
    } else if body["message"].is_string() {
        "cohere"
    } else {
        "unknown"
    }
}

#[tokio::test]
async fn the_doors_refusals_speak_each_routes_own_dialect() {
    // The API key and the concurrency door answer before any handler
    // runs, so they pick the dialect from the path; each POST route of
    // the OpenAPI document must get the same one as its handler gives
    // its own errors (here: an empty body, refused by the route).
    let config = ServerConfig {
        api_key: Some("k".into()),
        ..ServerConfig::default()
    };
    let (s, _m) = server_with(config).await;
    let doc: Value = s
        .client
        .get(s.url("/openapi.json"))
        .bearer_auth("k")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        if ops.get("post").is_none() {
            continue;
        }
        let own = s
            .client
            .post(s.url(path))
            .bearer_auth("k")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(own.status().is_client_error(), "{path}: {}", own.status());
        let own: Value = own.json().await.unwrap();
        let door = s.post(path, json!({})).await;
        assert_eq!(door.status(), 401, "{path}");
        let door: Value = door.json().await.unwrap();
        assert_eq!(
            error_shape(&door),
            error_shape(&own),
            "{path}: the door said {door}, the route {own}"
        );
        checked += 1;
    }
    assert!(checked >= 13, "only {checked} POST routes in the document");
}

#[tokio::test]
async fn api_key_guards_every_route_but_health_when_set() {
    let config = ServerConfig {
        api_key: Some("s3cret".into()),
        ..ServerConfig::default()
    };
    let (s, _m) = server_with(config).await;
    let (status, body) = openai_error(s.post("/v1/embeddings", json!({"input": "a"})).await).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let r = s
        .client
        .post(s.url("/embed"))
        .bearer_auth("wrong")
        .json(&json!({"inputs": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(body["error_type"].is_string());
    for path in ["/info", "/v1/models", "/metrics"] {
        assert_eq!(s.get(path).await.status(), 401, "{path}");
    }
    assert_eq!(s.get("/health").await.status(), 200);
    let r = s
        .client
        .post(s.url("/v1/embeddings"))
        .bearer_auth("s3cret")
        .json(&json!({"input": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // and without a key configured, no header is needed
    let (open, _m) = server_with(ServerConfig::default()).await;
    assert_eq!(
        open.post("/v1/embeddings", json!({"input": "a"}))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_client_that_disconnects_withdraws_its_request_from_the_pool() {
    let (s, m) = server_with(ServerConfig::default()).await;
    m.set(Script::Hold);
    let client = s.client.clone();
    let url = s.url("/v1/embeddings");
    let request =
        tokio::spawn(async move { client.post(url).json(&json!({"input": "a"})).send().await });
    assert!(
        eventually(Duration::from_secs(5), || m
            .held
            .load(std::sync::atomic::Ordering::SeqCst)
            == 1)
        .await
    );
    request.abort();
    assert!(
        eventually(Duration::from_secs(5), || {
            m.withdrawn.load(std::sync::atomic::Ordering::SeqCst) == 1
        })
        .await,
        "the server dropped the pool call when its client went away"
    );
    assert_eq!(m.held.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn past_max_concurrent_requests_a_request_is_refused_429_before_its_body_is_read() {
    let (s, m) = server_with(ServerConfig {
        max_concurrent_requests: 2,
        ..ServerConfig::default()
    })
    .await;
    m.set(Script::Hold);
    let mut held = vec![];
    for _ in 0..2 {
        let client = s.client.clone();
        let url = s.url("/v1/embeddings");
        held.push(tokio::spawn(async move {
            client.post(url).json(&json!({"input": "a"})).send().await
        }));
    }
    assert!(
        eventually(Duration::from_secs(5), || m
            .held
            .load(std::sync::atomic::Ordering::SeqCst)
            == 2)
        .await
    );
    // Both routes refuse the third at once, in their own dialect.
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        s.post("/v1/embeddings", json!({"input": "b"})),
    )
    .await
    .expect("refused at once, not held");
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
    let r = s.post("/embed", json!({"inputs": "b"})).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert!(body["error_type"].is_string(), "{body}");
    // Cheap reads are never refused.
    assert_eq!(s.get("/health").await.status(), 200);
    // The places come back when the held requests are answered.
    m.set(Script::Answer);
    m.gate.notify_waiters();
    for h in held {
        assert_eq!(h.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(
        s.post("/v1/embeddings", json!({"input": "c"}))
            .await
            .status(),
        200
    );
}
