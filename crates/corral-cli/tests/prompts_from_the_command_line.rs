//! `corral embed --prompt-name / --no-prompt / --truncate-dim` and `corral
//! serve --default-prompt-name`, on a copy of the tiny XLM-RoBERTa fixture
//! (corral-embed's `tests/data/tiny-xlmr`, with PyTorch's golden vectors)
//! given a `config_sentence_transformers.json` of prompts: the prompt goes
//! before each text, so a text's rest after a golden text's first words,
//! prompted with those words, embeds as PyTorch embedded the whole.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::max_abs_diff;
use serde_json::{json, Value};

const QUICK: &str = "The quick brown fox jumps over the lazy dog.";
const QUICK_PROMPT: &str = "The quick brown ";
const LONG_PREFIX: &str = "Embeddings turn text into vectors, ";

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corral-embed/tests/data/tiny-xlmr")
}

/// The golden (text, mean vector) whose text passes `pick`.
fn golden(pick: impl Fn(&str) -> bool) -> (String, Vec<f64>) {
    let g: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("golden.json")).unwrap())
            .unwrap();
    let t = g["texts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| pick(t["text"].as_str().unwrap()))
        .unwrap();
    (
        t["text"].as_str().unwrap().to_owned(),
        t["mean"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect(),
    )
}

/// A copy of the fixture with prompts; the default is "quick".
fn prompted_model(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("corral-prompts-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(fixture().join(f), dir.join(f)).unwrap();
    }
    let st = json!({
        "prompts": {"quick": QUICK_PROMPT, "long": LONG_PREFIX},
        "default_prompt_name": "quick",
    });
    std::fs::write(
        dir.join("config_sentence_transformers.json"),
        st.to_string(),
    )
    .unwrap();
    dir
}

fn unit(v: &[f64]) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// `corral embed --model-dir DIR ARGS` on `text`: the vector, or stderr.
fn embed(dir: &Path, args: &[&str], text: &str) -> Result<Vec<f64>, String> {
    let mut all = vec!["embed", "--workers", "1", "--threads", "1", "--quiet"];
    all.extend(["--model-dir", dir.to_str().unwrap()]);
    all.extend_from_slice(args);
    let out = common::corral(&all, &format!("{text}\n"));
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let line: Value = serde_json::from_str(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        line["text"], text,
        "the output names the text, not the prompt"
    );
    Ok(line["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect())
}

#[test]
fn corral_embed_applies_the_prompt_it_is_told() {
    let dir = prompted_model("embed");
    let (_, quick) = golden(|t| t == QUICK);
    let (long_text, long) = golden(|t| t.starts_with(LONG_PREFIX) && t.len() > 300);
    let rest = &QUICK[QUICK_PROMPT.len()..];
    let raw = ["--no-normalize"];

    let v = embed(&dir, &raw, rest).unwrap();
    assert!(
        max_abs_diff(&v, &quick) < 1e-4,
        "the model's default prompt"
    );
    let v = embed(
        &dir,
        &["--no-normalize", "--prompt-name", "long"],
        &long_text[LONG_PREFIX.len()..],
    )
    .unwrap();
    assert!(max_abs_diff(&v, &long) < 1e-4, "--prompt-name long");
    let v = embed(&dir, &["--no-normalize", "--no-prompt"], QUICK).unwrap();
    assert!(max_abs_diff(&v, &quick) < 1e-4, "--no-prompt");
    let v = embed(&dir, &["--no-prompt", "--truncate-dim", "8"], QUICK).unwrap();
    assert!(
        max_abs_diff(&v, &unit(&quick[..8])) < 1e-4,
        "--truncate-dim"
    );

    let e = embed(&dir, &["--prompt-name", "passage"], rest).unwrap_err();
    assert!(e.contains("passage") && e.contains("quick"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn corral_serve_default_prompt_name_is_every_requests_default() {
    let dir = prompted_model("serve");
    let model = format!("p={}", dir.display());
    // A name the model lacks: refused at start, named.
    // (Bounded: a server that starts anyway is killed and the test fails.)
    let mut refused = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["serve", "--port", "0", "--model", &model])
        .args(["--default-prompt-name", "passage"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = refused.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = refused.kill();
            let _ = refused.wait();
            panic!("corral serve started with a prompt name its model lacks");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut refused.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("passage"), "{stderr}");

    let serve = common::serve_healthy(["--model", &model, "--default-prompt-name", "long"]);
    let (long_text, long) = golden(|t| t.starts_with(LONG_PREFIX) && t.len() > 300);
    let (_, quick) = golden(|t| t == QUICK);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let post = |body: Value| {
        rt.block_on(async {
            let r = reqwest::Client::new()
                .post(format!("{}/embed", serve.base))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            v[0].as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect::<Vec<f64>>()
        })
    };
    let v = post(
        json!({"inputs": &long_text[LONG_PREFIX.len()..], "truncate": true,
                        "normalize": false}),
    );
    assert!(max_abs_diff(&v, &long) < 1e-4, "the served default prompt");
    let v = post(
        json!({"inputs": &QUICK[QUICK_PROMPT.len()..], "prompt_name": "quick",
                        "normalize": false}),
    );
    assert!(
        max_abs_diff(&v, &quick) < 1e-4,
        "a request's own prompt_name"
    );
    drop(serve);
    let _ = std::fs::remove_dir_all(dir);
}
