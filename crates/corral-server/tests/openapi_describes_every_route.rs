//! `GET /openapi.json` lists every route the server serves, each body with
//! the fields its type reads and what each must be — built from the router's
//! own table and the body types, so that it cannot drift.

mod common;

use std::collections::BTreeSet;

use common::{FakeModel, TestServer};
use corral_server::ServerConfig;
use serde_json::{json, Value};

fn properties(schema: &Value) -> BTreeSet<String> {
    schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{schema}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn the_document_lists_every_route_and_each_bodys_fields() {
    let s = TestServer::start(vec![FakeModel::reranker("rr")], ServerConfig::default()).await;
    let r = s.get("/openapi.json").await;
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    let listed: BTreeSet<String> = paths.keys().cloned().collect();
    assert_eq!(
        listed,
        set(&[
            "/",
            "/classify",
            "/decode",
            "/embed",
            "/embed_sparse",
            "/embeddings",
            "/health",
            "/info",
            "/invocations",
            "/metrics",
            "/ping",
            "/predict",
            "/rerank",
            "/tokenize",
            "/v1/embeddings",
            "/v1/models",
            "/v1/rerank",
            "/v2/rerank",
        ])
    );
    let body = |path: &str| {
        paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"].clone()
    };
    let cohere = body("/v1/rerank");
    assert_eq!(
        properties(&cohere),
        set(&[
            "query",
            "documents",
            "model",
            "top_n",
            "return_documents",
            "raw_scores"
        ])
    );
    assert_eq!(cohere["properties"]["top_n"]["type"], "integer");
    assert_eq!(cohere["properties"]["return_documents"]["type"], "boolean");
    let rerank = body("/rerank");
    let shapes = rerank["oneOf"].as_array().unwrap();
    assert_eq!(shapes.len(), 2);
    assert!(properties(&shapes[0]).contains("texts"));
    assert!(properties(&shapes[1]).contains("documents"));
    assert_eq!(body("/")["oneOf"].as_array().unwrap().len(), 3);
    // `/embed_sparse` takes `/embed`'s body.
    assert_eq!(
        properties(&body("/embed_sparse")),
        properties(&body("/embed"))
    );
    assert!(properties(&body("/embed_sparse")).contains("truncation_direction"));
    assert_eq!(
        properties(&body("/v1/embeddings")),
        set(&[
            "input",
            "model",
            "encoding_format",
            "dimensions",
            "user",
            "prompt_name",
            "prompt"
        ])
    );
    assert_eq!(
        properties(&body("/predict")),
        set(&[
            "inputs",
            "model",
            "raw_scores",
            "truncate",
            "truncation_direction"
        ])
    );
    assert!(paths["/health"]["get"].is_object());
}

/// Every field of every body says what it must be: a field whose errors
/// would not name what is expected shows up here.
#[tokio::test]
async fn every_field_of_every_body_is_described_and_every_post_route_is_served() {
    let s = TestServer::start(vec![FakeModel::reranker("rr")], ServerConfig::default()).await;
    let doc: Value = s.get("/openapi.json").await.json().await.unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(post) = item.get("post") else {
            continue;
        };
        let schema = &post["requestBody"]["content"]["application/json"]["schema"];
        let shapes = match schema.get("oneOf") {
            Some(several) => several.as_array().unwrap().clone(),
            None => vec![schema.clone()],
        };
        for shape in shapes {
            for (field, p) in shape["properties"].as_object().unwrap() {
                assert!(
                    p["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{path}: `{field}` has no description"
                );
            }
        }
        let r = s.post(path, json!({})).await;
        assert!(
            ![404, 405].contains(&r.status().as_u16()),
            "{path} is listed but not served ({})",
            r.status()
        );
    }
}
