//! The `corral` command: `embed` texts through a pool, `rerank` documents
//! against a query with a cross-encoder, `serve` them over
//! HTTP, run a cluster `node`, `fetch-model`, and the benchmarks of real
//! models (`bench embed`, `bench serve`). Each subcommand lives in its own
//! module with its own `Args`. The benchmarks and test nodes built on the
//! runtime's test hooks (the synthetic backend, fault injection) are in
//! `corral-bench`, so that this binary is built without them.

mod bench_cluster;
mod bench_embed;
mod bench_serve;
mod embed_cmd;
mod fetch_cmd;
mod lines;
mod node_cmd;
mod rerank_cmd;
mod serve_cmd;

use std::io::IsTerminal;

use clap::{Parser, Subcommand};

/// Corral: a supervised pool of ML inference workers.
#[derive(Parser)]
#[command(name = "corral", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed texts (one per line, or JSON Lines) into JSON Lines through a pool.
    Embed(embed_cmd::Args),
    /// Score documents (one per line, or JSON Lines) against a query with a
    /// cross-encoder, into JSON Lines in input order.
    Rerank(rerank_cmd::Args),
    /// Serve embeddings over HTTP (OpenAI /v1/embeddings, TEI /embed,
    /// /health, /metrics, /info) until SIGTERM or Ctrl-C.
    Serve(serve_cmd::Args),
    /// Run a cluster node (ractor_cluster) that hosts a pool for the other
    /// nodes and keeps its peers connected, until SIGTERM or Ctrl-C.
    Node(node_cmd::Args),
    /// Put the default model (all-MiniLM-L6-v2), or a hub repository
    /// (--repo), in the local models directory.
    FetchModel(fetch_cmd::Args),
    /// Benchmarks of real models (the synthetic ones are `corral-bench`'s).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Embedding throughput through the pool and without it (same engine).
    Embed(bench_embed::Args),
    /// HTTP throughput and latency of `corral serve` from a closed-loop
    /// client on loopback, beside `corral embed`'s in-process throughput.
    Serve(bench_serve::Args),
}

/// candle sizes a process-wide pool for its large element-wise ops from
/// `CANDLE_NUM_THREADS` (else `RAYON_NUM_THREADS`, else all cores), once, and
/// that pool ignores the per-worker rayon pools. Size it to one worker's
/// share, unless the user chose, while the process is still single-threaded.
fn pin_candle_threads(threads: usize) {
    for var in ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            // Sound here: no other thread exists yet (the runtime is built
            // after this).
            std::env::set_var(var, threads.to_string());
        }
    }
}

/// The median of alternating rounds' ratios, with their range (lowest,
/// highest), as every side-by-side bench quotes them.
pub(crate) fn median_range(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// Whether log lines get ANSI colours: only when stderr, where they go, is
/// a terminal, and never while `NO_COLOR` is set to anything but "" (the
/// NO_COLOR convention).
fn colour_logs() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// This program as the user invoked it, for advice that names another of
/// its commands (`… fetch-model`):
/// - run by `cargo run` (cargo set `CARGO` and `CARGO_PKG_NAME` to this
///   package for it): `cargo run --release --bin corral --`, without
///   `--release` for a debug build;
/// - otherwise the name it was invoked by (`argv[0]`): `corral` when found
///   on `PATH`, the path as typed (`./target/release/corral`) otherwise —
///   quoted for a shell when it needs to be.
fn invoked_as() -> String {
    let by_cargo = std::env::var_os("CARGO").is_some()
        && std::env::var("CARGO_PKG_NAME").is_ok_and(|p| p == env!("CARGO_PKG_NAME"));
    if by_cargo {
        let release = std::env::current_exe().is_ok_and(|exe| {
            exe.parent()
                .and_then(|dir| dir.file_name())
                .is_some_and(|dir| dir == "release")
        });
        let profile = if release { " --release" } else { "" };
        return format!("cargo run{profile} --bin corral --");
    }
    let argv0 = std::env::args_os()
        .next()
        .and_then(|a| a.into_string().ok())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "corral".into());
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c);
    if argv0.chars().all(plain) {
        argv0
    } else {
        format!("'{}'", argv0.replace('\'', r"'\''"))
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    corral_embed::model_dir::set_fetch_command(format!("{} fetch-model", invoked_as()));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_logs())
        .with_writer(std::io::stderr);
    match &cli.command {
        Command::Serve(args) if args.log_format == serve_cmd::LogFormat::Json => {
            logs.json().with_ansi(false).init();
        }
        _ => logs.init(),
    }
    match &cli.command {
        Command::Embed(args) => pin_candle_threads(args.model.pool_config().resolved_threads()),
        Command::Rerank(args) => pin_candle_threads(args.model.pool_config().resolved_threads()),
        Command::Node(args) => pin_candle_threads(args.model.pool_config().resolved_threads()),
        Command::Serve(args) => {
            pin_candle_threads(args.model_args(None).pool_config().resolved_threads());
        }
        Command::Bench(BenchCommand::Serve(args)) => {
            pin_candle_threads(args.model_args().pool_config().resolved_threads());
        }
        _ => {}
    }
    // Only the HTTP commands need tokio's I/O driver (sockets, signals); the
    // others run without it, so that a task woken by a compute thread
    // unparks a runtime thread with a futex, not an eventfd write.
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    match &cli.command {
        Command::Serve(_) | Command::Node(_) | Command::Bench(BenchCommand::Serve(_)) => {
            runtime.enable_all()
        }
        _ => runtime.enable_time(),
    };
    let runtime = runtime.build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Embed(args) => embed_cmd::run(args).await,
            Command::Rerank(args) => rerank_cmd::run(args).await,
            Command::Serve(args) => serve_cmd::run(args).await,
            Command::FetchModel(args) => fetch_cmd::run(args).await,
            Command::Node(args) => node_cmd::run(args).await,
            Command::Bench(BenchCommand::Embed(args)) => bench_embed::run(args).await,
            Command::Bench(BenchCommand::Serve(args)) => bench_serve::run(args).await,
        }
    })
}
