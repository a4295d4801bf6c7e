//! The `corral` binary people install carries none of the runtime's test
//! hooks: corral-cli's normal dependencies do not turn on the `testing`
//! feature of corral-core or corral-cluster (the synthetic backend, fault
//! injection), and the commands built on them — the synthetic node and
//! the synthetic benchmarks — are `corral-bench`'s, not `corral`'s.

use std::process::Command;

#[test]
fn corral_cli_builds_without_the_testing_feature() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", "corral-cli", "-e", "normal,build,features"])
        .args(["--prefix", "none", "--charset", "ascii"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        tree.contains("corral-core"),
        "cargo tree lists corral-cli's dependencies:\n{tree}"
    );
    let hooks: Vec<&str> = tree
        .lines()
        .filter(|l| l.contains("feature \"testing\""))
        .collect();
    assert!(
        hooks.is_empty(),
        "the product build turns on test hooks: {hooks:?}"
    );
}

#[test]
fn corral_has_no_synthetic_node_or_synthetic_benchmarks() {
    for args in [
        &[
            "node",
            "--name",
            "n",
            "--cookie",
            "c",
            "--synthetic-ms",
            "1",
        ][..],
        &["bench", "route"],
        &["bench", "chaos"],
        &["bench", "cluster"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_corral"))
            .args(args)
            .output()
            .expect("run corral");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "`corral {}` must be refused as a usage error: {stderr}",
            args.join(" ")
        );
        assert!(
            stderr.contains("unexpected argument") || stderr.contains("unrecognized subcommand"),
            "`corral {}`: {stderr}",
            args.join(" ")
        );
    }
}
