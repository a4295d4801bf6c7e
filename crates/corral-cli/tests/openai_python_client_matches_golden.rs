//! The official `openai` Python package, calling `/v1/embeddings` on a
//! running `corral serve` (the real binary, real model, port 0, API key on),
//! gets the golden vectors for single strings, a batch and base64; then
//! SIGTERM drains the server and it exits 0.
//!
//! The client comes from the Python interpreter (`$CORRAL_PYTHON`, else
//! `python3`) when it has one; otherwise this test installs it itself, on
//! first use, with `pip install --target` into a folder under cargo's
//! `target/tmp` (one per Python version, reused after), so that the README's
//! test command passes on a machine with only Rust and Python. Fails — never
//! skips — when neither works, or when the model is absent.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;

use common::{start_serve, Serve};

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

/// The Python interpreter the model fetch uses too.
fn python() -> String {
    std::env::var("CORRAL_PYTHON")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// Whether `python` imports the official client (1.x or later, which has
/// `openai.OpenAI`) with `pythonpath` before its own.
fn has_client(pythonpath: Option<&OsString>) -> Result<(), String> {
    let mut cmd = Command::new(python());
    cmd.args([
        "-c",
        "import openai; openai.OpenAI; print(openai.__version__)",
    ]);
    if let Some(path) = pythonpath {
        cmd.env("PYTHONPATH", path);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {} ({e}); Python 3 is required", python()))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(stderr.trim().lines().last().unwrap_or_default().to_owned())
    }
}

/// `dir` before whatever `PYTHONPATH` already holds.
fn pythonpath_with(dir: &Path) -> OsString {
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(old) = std::env::var_os("PYTHONPATH") {
        dirs.extend(std::env::split_paths(&old));
    }
    std::env::join_paths(dirs).expect("a PYTHONPATH entry holds ':'")
}

/// Runs `cmd` to completion, or kills it after `limit`.
fn run_within(cmd: &mut Command, limit: Duration) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{shown} did not finish within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let errors = errors.join().unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status}):\n{errors}"))
    }
}

/// The `PYTHONPATH` under which [`python`] imports the official client:
/// none when it has its own; else a folder under `target/tmp` that pip
/// installs it into on first use. The install goes to a folder of this
/// process's own and is renamed into place when complete, so that tests or
/// processes racing here each end up with a complete copy (the first rename
/// wins; the others drop theirs). Panics, naming what failed, when neither
/// way gives a client.
fn openai_client() -> Option<OsString> {
    let Err(system) = has_client(None) else {
        return None;
    };
    let tag = Command::new(python())
        .args(["-c", "import sys; print(sys.implementation.cache_tag)"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| panic!("{} does not run: Python 3 is required", python()));
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = root.join(format!("python-openai-{tag}"));
    let path = pythonpath_with(&dir);
    if dir.exists() {
        if has_client(Some(&path)).is_ok() {
            return Some(path);
        }
        // Unusable (a Python upgraded in place, say): move it aside.
        let aside = root.join(format!("python-openai-{tag}.broken-{}", unique()));
        if std::fs::rename(&dir, &aside).is_ok() {
            let _ = std::fs::remove_dir_all(&aside);
        }
    }
    let staging = root.join(format!("python-openai-{tag}.partial-{}", unique()));
    let installed = run_within(
        Command::new(python())
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                "--target",
            ])
            .arg(&staging)
            .arg("openai"),
        Duration::from_secs(600),
    );
    if let Err(e) = installed {
        let _ = std::fs::remove_dir_all(&staging);
        panic!(
            "this test needs the `openai` Python package; {} lacks it ({system}) and \
             installing it into {} failed (pip is needed: `{} -m pip --version`; on \
             Debian `apt-get install python3-pip`): {e}",
            python(),
            dir.display(),
            python()
        );
    }
    if std::fs::rename(&staging, &dir).is_err() {
        // Another test or process put its complete copy there first.
        let _ = std::fs::remove_dir_all(&staging);
    }
    if let Err(e) = has_client(Some(&path)) {
        panic!(
            "the `openai` package installed into {} does not import: {e}",
            dir.display()
        );
    }
    Some(path)
}

/// A name no other process or call uses.
fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// `python3` (or `$CORRAL_PYTHON`) with the official client importable.
fn python_with_client(pythonpath: &Option<OsString>) -> Command {
    let mut cmd = Command::new(python());
    if let Some(path) = pythonpath {
        cmd.env("PYTHONPATH", path);
    }
    cmd
}

fn wait_healthy(base: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(r) = reqwest::get(format!("{base}/health")).await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "corral serve never became healthy"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn openai_python_client_gets_golden_vectors_and_sigterm_exits_zero() {
    let client = openai_client();

    let (mut serve, base) = start();
    wait_healthy(&base);
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = python_with_client(&client)
        .arg(here.join("tests/openai_client_check.py"))
        .arg(format!("{base}/v1"))
        .arg(KEY)
        .arg("all-MiniLM-L6-v2")
        .arg(here.join("../corral-embed/tests/fixtures/minilm_l6_v2_public.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "openai client check failed:\n{stdout}\n{stderr}"
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
