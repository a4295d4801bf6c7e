//! A missing model directory's advice names the fetch command the way the
//! user ran `corral`: `corral fetch-model` for an installed `corral` found on
//! `PATH`, the path as typed for a binary run by its path, and `cargo run
//! --release --bin corral -- fetch-model` only when cargo ran it.
//!
//! Needs nothing but the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_corral"))
}

/// `cmd` without the variables cargo sets for what it runs, as a shell
/// would start it.
fn outside_cargo(mut cmd: Command) -> Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CARGO") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// What `cmd embed --model-dir <missing>` prints on stderr; it must fail.
fn advice(mut cmd: Command) -> String {
    let missing = std::env::temp_dir().join(format!("corral-no-model-{}", std::process::id()));
    let out = cmd
        .args(["embed", "--model-dir"])
        .arg(&missing)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("running corral");
    assert!(!out.status.success(), "a missing model directory must fail");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("does not exist"), "{stderr}");
    stderr
}

fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).unwrap()
}

#[test]
fn an_installed_corral_names_corral_fetch_model() {
    let bin = binary();
    let mut cmd = Command::new("corral");
    cmd.env("PATH", path_with(bin.parent().unwrap()));
    let stderr = advice(outside_cargo(cmd));
    assert!(stderr.contains("Run `corral fetch-model`"), "{stderr}");
    assert!(!stderr.contains("cargo run"), "{stderr}");
}

#[test]
fn a_corral_run_by_its_path_names_that_path() {
    let bin = binary();
    let stderr = advice(outside_cargo(Command::new(&bin)));
    let want = format!("Run `{} fetch-model`", bin.display());
    assert!(stderr.contains(&want), "wanted {want:?} in:\n{stderr}");
}

#[test]
fn a_corral_run_by_cargo_names_the_cargo_command() {
    let bin = binary();
    let release = bin.parent().and_then(Path::file_name) == Some("release".as_ref());
    let mut cmd = outside_cargo(Command::new(&bin));
    // What `cargo run --bin corral` sets for the program it runs.
    cmd.env("CARGO", "cargo")
        .env("CARGO_PKG_NAME", "corral-cli");
    let stderr = advice(cmd);
    let want = if release {
        "Run `cargo run --release --bin corral -- fetch-model`"
    } else {
        "Run `cargo run --bin corral -- fetch-model`"
    };
    assert!(stderr.contains(want), "wanted {want:?} in:\n{stderr}");
}
