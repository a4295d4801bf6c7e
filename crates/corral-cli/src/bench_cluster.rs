//! `corral bench serve --cluster`: the same closed-loop load as `corral
//! bench serve`, through a `corral serve --cluster` front to two `corral
//! node`s, beside one local `corral serve` with the same total workers,
//! in alternating rounds; each load point's ratio (cluster ÷ local
//! sentences/s) is quoted as the median of the rounds with its range. On
//! one machine the nodes share its cores with the front, so this measures
//! what the cluster path costs (target ≥ 0.85), not what more machines
//! gain.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::bench_serve::{all_points, read_corpus, Args, ChildServer, Point, Workload};

/// A child `corral` process, stopped (SIGTERM, then waited for) when
/// dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.0.wait();
    }
}

/// Starts `corral ARGS` (with the cluster's cookie) and returns it with
/// what follows `marker` on the first stdout line that has it.
fn start(args: &[String], cookie: &str, marker: &str) -> anyhow::Result<(Proc, String)> {
    let exe = std::env::current_exe().context("locating the corral binary")?;
    let mut child = Command::new(exe)
        .args(args)
        // The front's 503s while the nodes join are expected, not news.
        .env("RUST_LOG", "warn,tower_http=off")
        .env(corral_cluster::COOKIE_ENV, cookie)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting corral {}", args.join(" ")))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let proc = Proc(child);
    let mut lines = BufReader::new(stdout).lines();
    let rest = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(i) = line.find(marker) {
                    break line[i + marker.len()..].trim().to_owned();
                }
            }
            _ => bail!(
                "corral {} exited before printing {marker:?}",
                args.join(" ")
            ),
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Ok((proc, rest))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// Two nodes and a front serving `name` from `dir`, each node with
/// `workers` workers of `threads` threads; returns them and the front's
/// base URL once both nodes are in its routing.
async fn start_cluster(
    name: &str,
    dir: &str,
    workers: usize,
    threads: Option<usize>,
) -> anyhow::Result<(Vec<Proc>, String)> {
    let cookie = format!("bench-{}-{}", std::process::id(), rand_part());
    let mut procs = Vec::new();
    let mut peers = Vec::new();
    for node in ["bench-a", "bench-b"] {
        let port = free_port()?.to_string();
        let mut args = strings(&["node", "--name", node, "--port", &port, "--no-normalize"]);
        args.extend(strings(&["--model-dir", dir, "--model-name", name]));
        args.extend(["--workers".into(), workers.to_string()]);
        if let Some(t) = threads {
            args.extend(["--threads".into(), t.to_string()]);
        }
        let (p, rest) = start(&args, &cookie, " ready on ")?;
        let addr = rest.split(' ').next().unwrap_or_default().to_owned();
        procs.push(p);
        peers.push(addr);
    }
    let mut args = strings(&["serve", "--host", "127.0.0.1", "--port", "0", "--cluster"]);
    let port = free_port()?.to_string();
    args.extend(strings(&["--name", "bench-front", "--cluster-port", &port]));
    for p in &peers {
        args.extend(["--peer".into(), p.clone()]);
    }
    args.extend(["--model".into(), format!("{name}={dir}")]);
    let (front, base) = start(&args, &cookie, "corral: listening on ")?;
    procs.push(front);
    let client = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let h: serde_json::Value = client
            .get(format!("{base}/health"))
            .send()
            .await?
            .json()
            .await?;
        if h["models"][name]["ready_workers"].as_u64() == Some(2) {
            break;
        }
        if Instant::now() > until {
            bail!("the front never had both nodes in routing: {h}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((procs, base))
}

/// A loopback port free when asked (a node needs a fixed one).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A few bits that differ between runs, for the cookie.
fn rand_part() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Runs `corral bench serve --cluster`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if args.url.is_some() {
        bail!("--cluster starts its own nodes and front; it takes no --url");
    }
    let corpus = Arc::new(read_corpus(&args.corpus)?);
    let seconds = Duration::try_from_secs_f64(args.seconds).context("--seconds")?;
    let warmup = Duration::try_from_secs_f64(args.warmup).context("--warmup")?;
    let name = args.model_name()?;
    let dir = args.model_args().resolve_dir()?;
    let dir = dir
        .to_str()
        .context("the model directory's path is not UTF-8")?;
    // The same total workers: split between the two nodes.
    let total = args.workers.unwrap_or(2).max(2);
    let per_node = total / 2;
    let work = Workload {
        task: corral_embed::ModelKind::Embed,
        model: name.clone(),
    };
    eprintln!(
        "cluster: 2 nodes × {per_node} workers behind one front; local: one corral serve with {} workers",
        per_node * 2
    );
    let (_cluster, front) = start_cluster(&name, dir, per_node, args.threads).await?;
    let local_args = Args {
        workers: Some(per_node * 2),
        ..args.clone()
    };
    // The cluster's nodes run fp32: so does the local server it is
    // compared with.
    let local = ChildServer::start(&local_args, corral_embed::Quantize::None)?;
    let shapes = work.points(args.documents, &args.points);
    let mut cluster_rounds: Vec<Vec<Point>> = vec![];
    let mut local_rounds: Vec<Vec<Point>> = vec![];
    for round in 0..args.rounds.max(1) {
        eprintln!("round {round}: through the cluster front");
        cluster_rounds.push(all_points(&front, &work, &shapes, &corpus, warmup, seconds).await);
        eprintln!("round {round}: local corral serve");
        local_rounds.push(all_points(&local.base, &work, &shapes, &corpus, warmup, seconds).await);
    }
    local.stop();
    println!("| clients × sentences per request | cluster sentences/s | local sentences/s | ratio (median, range) |");
    println!("| --- | --- | --- | --- |");
    let list = |rounds: &[Vec<Point>], k: usize| {
        rounds
            .iter()
            .map(|r| format!("{:.1}", r[k].sentences_per_s))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines = Vec::new();
    for (k, p) in cluster_rounds[0].iter().enumerate() {
        let ratios: Vec<f64> = cluster_rounds
            .iter()
            .zip(&local_rounds)
            .map(|(c, l)| c[k].sentences_per_s / l[k].sentences_per_s)
            .collect();
        let (med, lo, hi) = crate::median_range(ratios);
        println!(
            "| {} × {} | {} | {} | {med:.2} ({lo:.2}–{hi:.2}) |",
            p.clients,
            p.batch,
            list(&cluster_rounds, k),
            list(&local_rounds, k)
        );
        lines.push(format!(
            "cluster_ratio_{}x{}: {med:.2}  (range {lo:.2}–{hi:.2} over {} alternating rounds; target ≥ 0.85)",
            p.clients,
            p.batch,
            cluster_rounds.len()
        ));
    }
    println!();
    for l in lines {
        println!("{l}");
    }
    Ok(())
}
