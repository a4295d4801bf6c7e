//! The clients the issue found failing against `corral serve`, used as their
//! own docs say, against the real binary and the real model (API key on):
//! `huggingface_hub`'s `InferenceClient(model=URL).feature_extraction(...)`,
//! which posts to `POST /` (TEI routes it by the model's kind: an embedder's
//! is `/embed`), and the `openai` client with `base_url` at the server's root
//! (no `/v1`), which posts to `/embeddings`. Both get the golden vectors.
//!
//! The packages (and `numpy`, which `huggingface_hub` answers with) come
//! from the Python interpreter when it has them, else are installed on first
//! use (see `common::python`). Fails — never skips — when neither works, or
//! when the model is absent.

use std::path::PathBuf;

mod common;

use common::{python, start_serve, wait_healthy};

const KEY: &str = "test-key-root";

#[test]
fn huggingface_hub_feature_extraction_and_openai_at_the_root_get_golden_vectors() {
    let packages = [
        python::package(
            "huggingface_hub",
            "from huggingface_hub import InferenceClient",
        ),
        python::package("numpy", "import numpy"),
        python::package("openai", "import openai; openai.OpenAI"),
    ];
    let serve = start_serve(
        &["--workers", "1"],
        &[("CORRAL_API_KEY", KEY)],
        "warn",
        false,
    );
    wait_healthy(&serve.base);
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../corral-embed/tests/fixtures/minilm_l6_v2_public.json");
    let stdout = python::check(
        &packages,
        "root_routes_client_check.py",
        &[
            serve.base.as_ref(),
            KEY.as_ref(),
            "all-MiniLM-L6-v2".as_ref(),
            golden.as_os_str(),
        ],
    );
    assert!(stdout.contains("ok: 24 vectors matched"), "{stdout}");
}
