//! The workspace's declared `rust-version` is no older than any locked
//! dependency's own: a toolchain that the declaration admits is not refused
//! by cargo before it compiles anything.
//!
//! This covers the dependencies. Corral's own use of newer standard-library
//! items is clippy's `incompatible_msrv` lint (on in the project's clippy
//! command, which denies warnings); its use of newer language features
//! (safe `#[target_feature]` functions: 1.86; intrinsics called without
//! `unsafe` inside them: 1.87) only a build with that toolchain shows.

use std::path::PathBuf;
use std::process::Command;

/// `"1.88"` or `"1.88.0"` as (major, minor, patch).
fn version(v: &str) -> (u64, u64, u64) {
    let mut parts = v.split('.').map(|p| {
        p.parse::<u64>()
            .unwrap_or_else(|e| panic!("rust-version {v:?}: {e}"))
    });
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    let patch = parts.next().unwrap_or(0);
    (major, minor, patch)
}

#[test]
fn declared_rust_version_is_at_least_every_locked_dependencys() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(&root)
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let resolved: Vec<&str> = meta["resolve"]["nodes"]
        .as_array()
        .expect("a resolve graph")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let packages = meta["packages"].as_array().unwrap();

    let mut declared = Vec::new();
    let mut needed: Vec<((u64, u64, u64), String)> = Vec::new();
    for p in packages {
        let id = p["id"].as_str().unwrap();
        let name = format!(
            "{}@{}",
            p["name"].as_str().unwrap(),
            p["version"].as_str().unwrap()
        );
        let rust_version = p["rust_version"].as_str();
        if members.contains(&id) {
            let v = rust_version.unwrap_or_else(|| panic!("{name} declares no rust-version"));
            declared.push((version(v), name));
        } else if let (true, Some(v)) = (resolved.contains(&id), rust_version) {
            needed.push((version(v), name));
        }
    }
    let (ours, _) = declared.first().cloned().expect("workspace members");
    assert!(
        declared.iter().all(|(v, _)| *v == ours),
        "the members declare different rust-versions: {declared:?}"
    );
    let too_new: Vec<_> = needed.iter().filter(|(v, _)| *v > ours).collect();
    assert!(
        too_new.is_empty(),
        "rust-version {ours:?} is older than these locked dependencies ask for: {too_new:?}"
    );
}
