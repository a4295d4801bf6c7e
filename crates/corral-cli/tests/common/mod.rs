//! What the CLI's integration tests share: the default model's directory and
//! a `corral serve` child process on a free port; and, in [`python`], the
//! Python clients the tests drive it with.

#![allow(dead_code)] // each test file uses its own part

pub mod cluster;
pub mod python;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Output, Stdio};

/// The default model's directory; panics (the test fails, never skips)
/// when it is absent.
pub fn model_dir() -> PathBuf {
    corral_embed::model_dir::resolve_model_dir(None).unwrap_or_else(|e| {
        panic!("this test needs all-MiniLM-L6-v2 (set CORRAL_MODEL_DIR or fetch it): {e}")
    })
}

/// Runs `corral ARGS` (the test's own build), `CORRAL_MODEL_DIR` unset so
/// that only `--model-dir` or the fetched default can name a model, with
/// `input` on its stdin; waits for it and returns what it wrote.
pub fn corral(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(args)
        .env_remove("CORRAL_MODEL_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start corral");
    // A child that exits early (a refused flag) closes its stdin: what it
    // printed is the answer, not the broken pipe.
    let _ = child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes());
    child.wait_with_output().expect("wait for corral")
}

/// The largest element-wise difference of two vectors of one length.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// The cosine of two vectors.
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (norm(a) * norm(b))
}

/// The Euclidean norm of a vector.
pub fn norm(a: &[f64]) -> f64 {
    a.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// A running `corral serve`, killed when dropped.
pub struct Serve {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `corral serve --port 0 --model-dir <default model> ARGS` with
/// `envs` and `RUST_LOG` = `log`, and returns once it printed its address.
/// Its stderr is inherited, or piped (see [`Serve::take_stderr`]) when
/// `pipe_stderr`.
pub fn start_serve(args: &[&str], envs: &[(&str, &str)], log: &str, pipe_stderr: bool) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["serve", "--port", "0"])
        .arg("--model-dir")
        .arg(model_dir())
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LOG", log)
        .stdout(Stdio::piped())
        .stderr(if pipe_stderr {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .spawn()
        .expect("starting corral serve");
    let base = listening(&mut child);
    Serve { child, base }
}

/// Starts `corral serve --port 0 --workers 1 --threads 1 ARGS` (its stderr
/// dropped) and returns once `/health` answers 200.
pub fn serve_healthy<A: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = A>) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["serve", "--port", "0", "--workers", "1", "--threads", "1"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting corral serve");
    let base = listening(&mut child);
    let serve = Serve { child, base };
    wait_healthy(&serve.base);
    serve
}

/// The address a starting `corral serve` prints on its stdout; the rest of
/// its stdout is drained on a thread.
fn listening(child: &mut Child) -> String {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("corral serve exited before listening")
            .unwrap();
        // Scripts and tests read the port from this line.
        if let Some(url) = line.strip_prefix("corral: listening on ") {
            break url.trim().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    base
}

impl Serve {
    /// The piped stderr (once).
    pub fn take_stderr(&mut self) -> ChildStderr {
        self.child.stderr.take().expect("stderr piped, taken once")
    }
}

/// Blocks until `GET {base}/health` answers 200; panics after two minutes.
pub fn wait_healthy(base: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            if let Ok(r) = reqwest::get(format!("{base}/health")).await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "corral serve never became healthy"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
}
