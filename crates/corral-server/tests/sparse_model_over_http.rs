//! A real SPLADE pool (the tiny random masked-language model committed
//! under corral-embed's test data with sentence-transformers'
//! `SparseEncoder.encode` output; the tests fail, never skip, without it),
//! loaded by `spawn_model` as what its `modules.json` declares, behind the
//! real server beside a dense embedder: TEI's `POST /embed_sparse` answers
//! sentence-transformers' sparse vectors (the same indices, each value
//! within 1e-4) for every text alone, in one batch and after a `prompt`
//! string, `/tokenize` its ids
//! exactly; `/info` and `/v1/models` say it is a `sparse-embed` model; a
//! dense model on `/embed_sparse` and the sparse model on `/embed` or
//! `/v1/embeddings` answer 424, the latter naming `/embed_sparse`; the
//! limits are `/embed`'s; the cluster refuses a SPLADE model by name.

mod common;

use std::time::Duration;

use common::fixtures::{fixture, serve_fixture, small_pool};
use common::{start_models, TestServer};
use corral_embed::EmbedSpec;
use corral_server::{PoolModel, ServerConfig, SpawnModelError};
use serde::Deserialize;
use serde_json::{json, Value};

/// Largest difference allowed between a served and a PyTorch value.
const TOL: f64 = 1e-4;

#[derive(Deserialize)]
struct Golden {
    max_tokens: usize,
    vocab_size: usize,
    texts: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    indices: Vec<u32>,
    values: Vec<f64>,
}

fn golden() -> Golden {
    let path = fixture("tiny-splade").join("golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the SPLADE fixture is missing ({}: {e}); it is committed — \
             regenerate it with scripts/make_tiny_families.py splade",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// The tiny SPLADE model (first, so the default) and a dense embedder.
async fn serve() -> TestServer {
    let models = vec![
        serve_fixture("tiny-splade").await,
        serve_fixture("tiny-xlmr").await,
    ];
    start_models(models, ServerConfig::default(), Duration::from_secs(10)).await
}

/// One served sparse row against sentence-transformers' vector.
fn assert_row(got: &Value, want: &Case, what: &str) {
    let entries = got.as_array().unwrap_or_else(|| panic!("{what}: {got}"));
    let indices: Vec<u32> = entries
        .iter()
        .map(|e| e["index"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(indices, want.indices, "{what} {:?}: indices", want.text);
    for (e, w) in entries.iter().zip(&want.values) {
        let g = e["value"].as_f64().unwrap();
        assert!(
            (g - w).abs() <= TOL,
            "{what} {:?}: index {}: {g} against {w}",
            want.text,
            e["index"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_sparse_gives_sentence_transformers_vectors_alone_and_batched() {
    let g = golden();
    let s = serve().await;
    for case in &g.texts {
        let r = s
            .post(
                "/embed_sparse",
                json!({"model": "tiny-splade", "inputs": case.text, "truncate": true}),
            )
            .await;
        assert_eq!(r.status(), 200, "{:?}", case.text);
        let body: Value = r.json().await.unwrap();
        let rows = body.as_array().unwrap();
        assert_eq!(rows.len(), 1);
        assert_row(&rows[0], case, "alone");
    }
    let texts: Vec<&str> = g.texts.iter().map(|c| c.text.as_str()).collect();
    let r = s
        .post("/embed_sparse", json!({"inputs": texts, "truncate": true}))
        .await;
    assert_eq!(r.status(), 200);
    // Where the time went, as on /embed.
    for header in ["x-queue-time-ms", "x-compute-time-ms"] {
        assert!(r.headers().contains_key(header), "{header}");
    }
    let body: Value = r.json().await.unwrap();
    let rows = body.as_array().unwrap();
    assert_eq!(rows.len(), g.texts.len());
    for (row, case) in rows.iter().zip(&g.texts) {
        assert_row(row, case, "batched");
    }
    // A prompt string is put before the text, as sentence-transformers
    // puts it.
    assert_eq!(g.texts[0].text, "hello world");
    let r = s
        .post(
            "/embed_sparse",
            json!({"model": "tiny-splade", "inputs": ["world"], "prompt": "hello "}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_row(&body[0], &g.texts[0], "prompted");
    // POST / goes by the model's kind.
    let r = s
        .post(
            "/",
            json!({"model": "tiny-splade", "inputs": [texts[0]], "truncate": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_row(&body[0], &g.texts[0], "POST /");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sparse_model_tokenises_as_sentence_transformers_and_says_what_it_is() {
    let g = golden();
    let s = serve().await;
    for case in g.texts.iter().filter(|c| c.ids.len() < g.max_tokens) {
        let r = s
            .post(
                "/tokenize",
                json!({"model": "tiny-splade", "inputs": case.text}),
            )
            .await;
        assert_eq!(r.status(), 200, "{:?}", case.text);
        let body: Value = r.json().await.unwrap();
        let ids: Vec<u32> = body[0]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ids, case.ids, "{:?}", case.text);
    }
    let info: Value = s.get("/info").await.json().await.unwrap();
    let card = &info["models"][0];
    assert_eq!(card["name"], "tiny-splade");
    assert_eq!(card["kind"], "sparse-embed");
    assert_eq!(card["pooling"], "splade");
    assert_eq!(card["dimensions"], g.vocab_size);
    assert_eq!(card["max_input_tokens"], g.max_tokens);
    let models: Value = s.get("/v1/models").await.json().await.unwrap();
    assert_eq!(models["data"][0]["id"], "tiny-splade");
    assert_eq!(models["data"][0]["kind"], "sparse-embed");
    assert_eq!(models["data"][1]["kind"], "embed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_of_the_other_kind_answers_424_and_the_limits_are_embeds() {
    let g = golden();
    let s = serve().await;
    // A dense model asked for sparse vectors.
    let r = s
        .post(
            "/embed_sparse",
            json!({"model": "tiny-xlmr", "inputs": "hello"}),
        )
        .await;
    assert_eq!(r.status(), 424);
    let text = r.text().await.unwrap();
    assert!(text.contains("`embed`"), "{text}");
    // The sparse model asked for dense vectors, in both dialects: 424
    // naming the route that serves it.
    for (route, body) in [
        ("/embed", json!({"model": "tiny-splade", "inputs": "hello"})),
        (
            "/v1/embeddings",
            json!({"model": "tiny-splade", "input": "hello"}),
        ),
    ] {
        let r = s.post(route, body).await;
        assert_eq!(r.status(), 424, "{route}");
        let text = r.text().await.unwrap();
        assert!(text.contains("sparse-embed"), "{route}: {text}");
        assert!(text.contains("/embed_sparse"), "{route}: {text}");
    }
    // Over the length without `truncate`: 413, as on /embed.
    let long = &g
        .texts
        .iter()
        .find(|c| c.ids.len() == g.max_tokens)
        .unwrap();
    let r = s.post("/embed_sparse", json!({"inputs": long.text})).await;
    assert_eq!(r.status(), 413);
    let text = r.text().await.unwrap();
    assert!(text.contains("truncate"), "{text}");
    // More inputs than the server takes: 413.
    let many = vec!["a"; ServerConfig::default().max_batch_inputs + 1];
    let r = s.post("/embed_sparse", json!({"inputs": many})).await;
    assert_eq!(r.status(), 413);
    // `dimensions` does not apply.
    let r = s
        .post("/embed_sparse", json!({"inputs": "a", "dimensions": 8}))
        .await;
    assert_eq!(r.status(), 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_splade_directory_is_never_served_as_a_dense_embedder() {
    let err = PoolModel::spawn(
        "s",
        EmbedSpec::new(fixture("tiny-splade")),
        small_pool(),
        Duration::from_secs(60),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SpawnModelError::WrongKind { .. }), "{err}");
    assert!(err.to_string().contains("sparse-embed"), "{err}");
}

#[test]
fn the_cluster_refuses_a_splade_model_by_name() {
    // What a member promises is read before any cluster pool or front is
    // started (`ClusterModel::spawn`, `corral node`): a SPLADE directory
    // stops there, named.
    let err = corral_server::promise_of("s", &EmbedSpec::new(fixture("tiny-splade"))).unwrap_err();
    assert!(err.to_string().contains("SPLADE"), "{err}");
}
