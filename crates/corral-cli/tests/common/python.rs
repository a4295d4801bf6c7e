//! Python clients for the tests that drive `corral serve` with the packages
//! people install: the interpreter (`$CORRAL_PYTHON`, else `python3`), and
//! each package from it when it has one; otherwise installed on first use
//! with `pip install --target` into a folder under cargo's `target/tmp` (one
//! per package and Python version, reused after), so that the README's test
//! command passes on a machine with only Rust and Python. Panics — the test
//! fails, never skips — when neither works.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The Python interpreter the model fetch uses too.
pub fn python() -> String {
    std::env::var("CORRAL_PYTHON")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// Whether `python` runs `check` (which imports the package) with `dir`
/// before its own path.
fn imports(check: &str, dir: Option<&Path>) -> Result<(), String> {
    let mut cmd = Command::new(python());
    cmd.args(["-c", check]);
    if let Some(dir) = dir {
        cmd.env("PYTHONPATH", pythonpath_with(&[dir.to_path_buf()]));
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

/// `dirs` before whatever `PYTHONPATH` already holds.
fn pythonpath_with(dirs: &[PathBuf]) -> OsString {
    let mut all = dirs.to_vec();
    if let Some(old) = std::env::var_os("PYTHONPATH") {
        all.extend(std::env::split_paths(&old));
    }
    std::env::join_paths(all).expect("a PYTHONPATH entry holds ':'")
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

/// A name no other process or call uses.
fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// Where [`python`] finds the PyPI package `package` — `check` is Python
/// code that imports it and fails when it is unusable: `None` when the
/// interpreter has it; else a folder under `target/tmp` that pip installs it
/// into on first use. The install goes to a folder of this process's own
/// and is renamed into place when complete, so that tests or processes
/// racing here each end up with a complete copy (the first rename wins; the
/// others drop theirs). Panics, naming what failed, when neither way gives
/// the package.
pub fn package(package: &str, check: &str) -> Option<PathBuf> {
    let Err(system) = imports(check, None) else {
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
    let dir = root.join(format!("python-{package}-{tag}"));
    if dir.exists() {
        if imports(check, Some(&dir)).is_ok() {
            return Some(dir);
        }
        // Unusable (a Python upgraded in place, say): move it aside.
        let aside = root.join(format!("python-{package}-{tag}.broken-{}", unique()));
        if std::fs::rename(&dir, &aside).is_ok() {
            let _ = std::fs::remove_dir_all(&aside);
        }
    }
    let staging = root.join(format!("python-{package}-{tag}.partial-{}", unique()));
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
            .arg(package),
        Duration::from_secs(600),
    );
    if let Err(e) = installed {
        let _ = std::fs::remove_dir_all(&staging);
        panic!(
            "this test needs the `{package}` Python package; {} lacks it ({system}) and \
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
    if let Err(e) = imports(check, Some(&dir)) {
        panic!(
            "the `{package}` package installed into {} does not import: {e}",
            dir.display()
        );
    }
    Some(dir)
}

/// [`python`] with the folders [`package`] gave on its path.
pub fn python_with(dirs: &[Option<PathBuf>]) -> Command {
    let dirs: Vec<PathBuf> = dirs.iter().flatten().cloned().collect();
    let mut cmd = Command::new(python());
    if !dirs.is_empty() {
        cmd.env("PYTHONPATH", pythonpath_with(&dirs));
    }
    cmd
}

/// Runs the client check `script` (under this crate's `tests/`) with
/// `args`, the folders [`package`] gave on its path; fails the test,
/// showing both outputs, unless it exits 0. Returns its stdout.
pub fn check(packages: &[Option<PathBuf>], script: &str, args: &[&std::ffi::OsStr]) -> String {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = python_with(packages)
        .arg(here.join("tests").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
