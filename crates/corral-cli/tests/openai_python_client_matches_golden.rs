//! The official `openai` Python package, calling `/v1/embeddings` on a
//! running `corral serve` (the real binary, real model, port 0, API key on),
//! gets the golden vectors for single strings, a batch and base64; then
//! SIGTERM drains the server and it exits 0.
//!
//! The client comes from the Python interpreter (`$CORRAL_PYTHON`, else
//! `python3`) when it has one; otherwise this test installs it itself, on
//! first use (see `common::python`). Fails — never skips — when neither
//! works, or when the model is absent.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{python, start_serve, wait_healthy, Serve};

const KEY: &str = "test-key-123";

fn start() -> (Serve, String) {
    let serve = start_serve(
        &["--workers", "1", "--drain-timeout", "10"],
        &[("CORRAL_API_KEY", KEY)],
        "warn",
        false,
    );
    let base = serve.base.clone();
    (serve, base)
}

/// Where the official client (1.x or later, which has `openai.OpenAI`) is
/// found; see [`python::package`].
fn openai_client() -> Option<PathBuf> {
    python::package(
        "openai",
        "import openai; openai.OpenAI; print(openai.__version__)",
    )
}

/// `python3` (or `$CORRAL_PYTHON`) with the official client importable.
fn python_with_client(client: &Option<PathBuf>) -> Command {
    python::python_with(std::slice::from_ref(client))
}

#[test]
fn openai_python_client_gets_golden_vectors_and_sigterm_exits_zero() {
    let client = openai_client();

    let (mut serve, base) = start();
    wait_healthy(&base);
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let stdout = python::check(
        std::slice::from_ref(&client),
        "openai_client_check.py",
        &[
            format!("{base}/v1").as_ref(),
            KEY.as_ref(),
            "all-MiniLM-L6-v2".as_ref(),
            here.join("../corral-embed/tests/fixtures/minilm_l6_v2_public.json")
                .as_os_str(),
        ],
    );
    assert!(stdout.contains("ok: 69 vectors matched"), "{stdout}");

    // A wrong key is refused, through the same official client.
    let wrong = python_with_client(&client)
        .args([
            "-c",
            "import sys, openai\n\
             c = openai.OpenAI(base_url=sys.argv[1], api_key='wrong', max_retries=0)\n\
             try:\n    c.embeddings.create(input='x', model='all-MiniLM-L6-v2')\n    sys.exit(1)\n\
             except openai.AuthenticationError:\n    print('refused')\n",
        ])
        .arg(format!("{base}/v1"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&wrong.stdout).contains("refused"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );

    // SIGTERM: drain, exit 0.
    let pid = serve.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "corral serve did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "corral serve exited with {status}");
}
