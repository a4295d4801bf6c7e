//! `--pooling` on `corral embed` and `corral serve` overrides the model
//! directory's pooling: `--pooling splade` makes a plain `BertForMaskedLM`
//! (the tiny SPLADE fixture without its `SpladePooling` module) give
//! sentence-transformers' sparse vectors — `corral embed` writes
//! `{"text", "indices", "values"}`, `corral serve` serves it as
//! `sparse-embed` —, `--pooling cls` is what `/info` then reports for a
//! mean-pooled model, and a pooling that cannot apply stops the command,
//! named. The fixtures are committed under corral-embed's test data; the
//! tests fail, never skip, without them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::corral;
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../corral-embed/tests/data")
        .join(name)
}

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The tiny SPLADE model as a plain masked-language model: its files
/// without `modules.json` (and so without the `SpladePooling` module).
fn plain_masked_lm(tag: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("corral-plain-mlm-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(data("tiny-splade")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() && entry.file_name() != "modules.json" {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    TempDir(dir)
}

fn golden() -> Value {
    let path = data("tiny-splade").join("golden.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("the SPLADE fixture is committed"))
        .unwrap()
}

fn embed(dir: &Path, extra: &[&str], input: &str) -> std::process::Output {
    let mut args = vec!["embed", "--workers", "1", "--threads", "1", "--model-dir"];
    args.push(dir.to_str().unwrap());
    args.extend_from_slice(extra);
    corral(&args, input)
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn embed_with_pooling_splade_writes_sentence_transformers_sparse_vectors() {
    let golden = golden();
    let cases = golden["texts"].as_array().unwrap();
    let texts: Vec<&str> = cases
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .filter(|t| !t.is_empty() && !t.contains('\n'))
        .collect();
    let input = texts.join("\n") + "\n";
    let plain = plain_masked_lm("embed");
    for (dir, extra) in [
        (plain.0.as_path(), &["--pooling", "splade"][..]),
        (data("tiny-splade").as_path(), &[][..]),
    ] {
        let out = embed(dir, extra, &input);
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), texts.len());
        for (line, text) in lines.iter().zip(&texts) {
            let case = cases.iter().find(|c| c["text"] == *text).unwrap();
            assert_eq!(line["text"], *text);
            assert_eq!(line["indices"], case["indices"], "{text:?}");
            for (g, w) in numbers(&line["values"])
                .iter()
                .zip(numbers(&case["values"]))
            {
                assert!((g - w).abs() <= 1e-4, "{text:?}: {g} against {w}");
            }
        }
    }
}

/// Runs `corral ARGS` and returns what it wrote once it exits; a command
/// still running after `limit` (a server that started) is killed and the
/// test fails.
fn exits_within(args: &[&str], limit: Duration) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(args)
        .env_remove("CORRAL_MODEL_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("corral {args:?} was still running after {limit:?}: it started");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_pooling_that_cannot_apply_stops_embed_and_serve_by_name() {
    for (dir, pooling, words) in [
        (
            data("tiny-mpnet"),
            "splade",
            ["BertForMaskedLM", "MPNetModel"],
        ),
        (data("tiny-splade"), "mean", ["pooling mean", "SPLADE"]),
    ] {
        let out = embed(&dir, &["--pooling", pooling], "hello\n");
        let serve = exits_within(
            &[
                "serve",
                "--port",
                "0",
                "--workers",
                "1",
                "--model-dir",
                dir.to_str().unwrap(),
                "--pooling",
                pooling,
            ],
            Duration::from_secs(60),
        );
        for out in [out, serve] {
            assert!(!out.status.success(), "--pooling {pooling} ran");
            let err = String::from_utf8_lossy(&out.stderr);
            for w in words {
                assert!(err.contains(w), "--pooling {pooling}: {err}");
            }
        }
    }
}

/// Starts `corral serve` on `dir` with `extra`, returns its base URL.
fn serve(dir: &Path, extra: &[&str]) -> common::Serve {
    let mut args = vec![std::ffi::OsStr::new("--model-dir"), dir.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    common::serve_healthy(args)
}

fn info(base: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::get(format!("{base}/info"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}

#[test]
fn serve_reports_and_serves_the_pooling_it_was_given() {
    let plain = plain_masked_lm("serve");
    let sparse = serve(&plain.0, &["--pooling", "splade"]);
    let card = &info(&sparse.base)["models"][0];
    assert_eq!(card["kind"], "sparse-embed", "{card}");
    assert_eq!(card["pooling"], "splade", "{card}");
    drop(sparse);
    let dense = serve(&data("tiny-mpnet"), &["--pooling", "cls"]);
    let card = &info(&dense.base)["models"][0];
    assert_eq!(card["kind"], "embed", "{card}");
    assert_eq!(card["pooling"], "cls", "{card}");
}
