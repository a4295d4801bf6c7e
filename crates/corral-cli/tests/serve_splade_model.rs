//! `corral serve --model-dir <SPLADE dir>` serves the directory as what it
//! is: `/info` says `sparse-embed`, and TEI's `POST /embed_sparse` answers
//! sentence-transformers' sparse vector for a golden text (the tiny SPLADE
//! fixture committed under corral-embed's test data; the test fails, never
//! skips, without it).

mod common;

use std::path::PathBuf;

use serde_json::{json, Value};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corral-embed/tests/data/tiny-splade")
}

#[test]
fn corral_serve_serves_a_splade_directory_on_embed_sparse() {
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture().join("golden.json"))
            .expect("the SPLADE fixture is committed"),
    )
    .unwrap();
    let case = &golden["texts"][0];
    let serve = common::serve_healthy([std::ffi::OsStr::new("--model-dir"), fixture().as_os_str()]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (info, answer) = rt.block_on(async {
        let client = reqwest::Client::new();
        let info: Value = client
            .get(format!("{}/info", serve.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = client
            .post(format!("{}/embed_sparse", serve.base))
            .json(&json!({"inputs": [case["text"]]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let answer: Value = r.json().await.unwrap();
        (info, answer)
    });
    assert_eq!(info["models"][0]["kind"], "sparse-embed", "{info}");
    let row = answer[0].as_array().unwrap();
    let indices: Vec<u64> = row.iter().map(|e| e["index"].as_u64().unwrap()).collect();
    let want: Vec<u64> = case["indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap())
        .collect();
    assert_eq!(indices, want);
    for (e, w) in row.iter().zip(case["values"].as_array().unwrap()) {
        let (g, w) = (e["value"].as_f64().unwrap(), w.as_f64().unwrap());
        assert!(
            (g - w).abs() <= 1e-4,
            "index {}: {g} against {w}",
            e["index"]
        );
    }
    drop(serve);
}
