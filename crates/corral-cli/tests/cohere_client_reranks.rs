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
    let golden = reranker.join("golden.json");
    let stdout = python::check(
        &packages,
        "cohere_client_check.py",
        &[
            serve.base.as_ref(),
            KEY.as_ref(),
            "tiny-bert-rerank".as_ref(),
            golden.as_os_str(),
        ],
    );
    assert!(stdout.contains("ok: 26 reranks matched"), "{stdout}");
}
