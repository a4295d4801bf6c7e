//! The `cohere` Python SDK, used as its own docs say — `Client.rerank`
//! (`POST /v1/rerank`, what LangChain's and LlamaIndex's Cohere rerankers
//! call) and `ClientV2.rerank` (`POST /v2/rerank`) — against the real
//! `corral serve` serving the tiny BERT cross-encoder beside the default
//! embedder (API key on): every score is `CrossEncoder.predict`'s within
//! 1e-4, best first, `top_n` and `return_documents` honoured.
//!
//! The SDK comes from the Python interpreter when it has it, else is
//! installed on first use (see `common::python`). Fails — never skips — when
//! neither works.

use std::path::PathBuf;

mod common;

use common::{python, start_serve, wait_healthy};

const KEY: &str = "test-key-cohere";

#[test]
fn cohere_client_and_client_v2_rerank_as_cross_encoder_predict() {
    let packages = [python::package("cohere", "import cohere; cohere.ClientV2")];
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let reranker = here.join("../corral-embed/tests/data/tiny-bert-rerank");
    let serve = start_serve(
        &[
            "--workers",
            "1",
            "--model",
            &format!("tiny-bert-rerank={}", reranker.display()),
        ],
        &[("CORRAL_API_KEY", KEY)],
        "warn",
        false,
    );
    wait_healthy(&serve.base);
    let out = python::python_with(&packages)
        .arg(here.join("tests/cohere_client_check.py"))
        .arg(&serve.base)
        .arg(KEY)
        .arg("tiny-bert-rerank")
        .arg(reranker.join("golden.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the cohere client's check failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok: 26 reranks matched"), "{stdout}");
}
