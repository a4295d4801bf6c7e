//! `corral serve --cluster` in front of `corral node` processes with the
//! real model, all on loopback: the front serves `--model NAME=DIR`
//! through the nodes' pools (DIR only for the tokenizer and the card) and a
//! local pool beside it. Checked over HTTP: 503 with the reason while no
//! member is connected (and `/health` 503 naming the group), the golden
//! vectors of sentence-transformers through `/v1/embeddings` and `/embed`
//! once the nodes join, every request answered once while a node is killed
//! mid-run (200 with the golden vector, or 503), 503 again once both are
//! gone while the local pool still answers; 429 with `Retry-After` when
//! every member is full; and a reranker through its `corral/rerank/…`
//! group with the PyTorch logits. Fails, never skips, without the model.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::vector;
use serde_json::{json, Value};

const COOKIE: &str = "serve-cluster-test-cookie";
const MODEL: &str = "all-MiniLM-L6-v2";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed when dropped.
struct Proc(Child);

impl Proc {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns `corral ARGS` and returns once a stdout line contains `marker`,
/// with what follows the marker on that line.
fn spawn_until(args: &[String], marker: &'static str) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn corral");
    let stdout = child.stdout.take().unwrap();
    let proc = Proc(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(i) = line.find(marker) {
                let _ = tx.send(line[i + marker.len()..].trim().to_owned());
            }
        }
    });
    let rest = rx
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("corral {args:?} did not print {marker:?}"));
    (proc, rest)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// A `corral node` hosting the default model (unnormalised vectors, as a
/// front expects), one worker of one thread, and `extra`.
fn node(name: &str, port: u16, extra: &[&str]) -> Proc {
    let dir = common::model_dir();
    let mut args = strings(&["node", "--name", name, "--cookie", COOKIE]);
    args.extend(strings(&[
        "--port",
        &port.to_string(),
        "--model-name",
        MODEL,
    ]));
    args.extend(strings(&[
        "--workers",
        "1",
        "--threads",
        "1",
        "--no-normalize",
    ]));
    args.push("--model-dir".into());
    args.push(dir.to_str().unwrap().to_owned());
    args.extend(strings(extra));
    spawn_until(&args, " ready on ").0
}

/// `corral serve --cluster` with the default model through the cluster,
/// dialling `peers`, and `extra`; returns it and its base URL.
fn front(peers: &[u16], extra: &[&str]) -> (Proc, String) {
    let dir = common::model_dir();
    let mut args = strings(&["serve", "--port", "0", "--cluster", "--name"]);
    args.push(format!("front-{}", free_port()));
    args.extend(strings(&["--cookie", COOKIE, "--cluster-port"]));
    args.push(free_port().to_string());
    for p in peers {
        args.push("--peer".into());
        args.push(format!("127.0.0.1:{p}"));
    }
    args.push("--model".into());
    args.push(format!("{MODEL}={}", dir.to_str().unwrap()));
    args.extend(strings(extra));
    spawn_until(&args, "corral: listening on ")
}

#[derive(serde::Deserialize, Clone)]
struct GoldenCase {
    text: String,
    embedding: Vec<f32>,
}

fn golden() -> Vec<GoldenCase> {
    #[derive(serde::Deserialize)]
    struct Golden {
        cases: Vec<GoldenCase>,
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corral-embed/tests/fixtures/minilm_l6_v2_public.json");
    let g: Golden = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    g.cases
}

/// The golden cases within the model's length (OpenAI's route does not
/// truncate; TEI's is asked to, as sentence-transformers does).
fn short(cases: &[GoldenCase]) -> Vec<GoldenCase> {
    let short: Vec<GoldenCase> = cases
        .iter()
        .filter(|c| c.text.len() < 600)
        .cloned()
        .collect();
    assert!(short.len() >= 20 && short.len() < cases.len());
    short
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn assert_golden(got: &[f32], case: &GoldenCase) {
    let cos = cosine(got, &case.embedding);
    assert!(cos >= 0.9999, "cosine {cos} for {:?}", case.text);
}

/// Status, `Retry-After` (seconds) and body of a POST.
async fn post(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Option<u64>, Value) {
    let r = client
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

/// `/health`'s status and the cluster model's ready members.
async fn health(client: &reqwest::Client, base: &str) -> (u16, Value) {
    let r = client.get(format!("{base}/health")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Polls `/health` until the cluster model has `n` members ready (the
/// front's own view, as it routes); panics after a minute.
async fn until_members(client: &reqwest::Client, base: &str, n: u64) {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, h) = health(client, base).await;
        if h["models"][MODEL]["ready_workers"].as_u64() == Some(n) {
            return;
        }
        assert!(Instant::now() < until, "never {n} members ready: {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_front_serves_the_golden_vectors_through_two_nodes_and_survives_losing_one() {
    let cases = golden();
    let client = reqwest::Client::new();
    let (pa, pb) = (free_port(), free_port());
    let rerank_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corral-embed/tests/data/tiny-bert-rerank");
    let rerank_dir = rerank_dir.to_str().unwrap();
    let local = [
        "--model-dir",
        rerank_dir,
        "--model-name",
        "local-rerank",
        "--workers",
        "1",
        "--threads",
        "1",
    ];
    let (_front, base) = front(&[pa, pb], &local);
    let openai = format!("{base}/v1/embeddings");
    let tei = format!("{base}/embed");
    let one = |text: &str| json!({ "model": MODEL, "input": text });

    // No node yet: 503 with the reason, and /health says which group.
    let (status, h) = health(&client, &base).await;
    assert_eq!(status, 503, "{h}");
    let reason = h["reason"].as_str().unwrap();
    assert!(reason.contains("corral/embed/all-MiniLM-L6-v2"), "{h}");
    let (status, retry, body) = post(&client, &openai, &one("a cat")).await;
    assert_eq!((status, retry), (503, Some(1)), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no member"),
        "{body}"
    );
    let (status, _, body) = post(&client, &tei, &json!({ "inputs": "a cat" })).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error_type"], "unhealthy", "{body}");
    // The local pool beside it serves meanwhile.
    let rerank = json!({ "query": "a cat", "texts": ["a cat sat", "stocks fell"] });
    let (status, _, body) = post(&client, &format!("{base}/rerank"), &rerank).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 2);

    let mut a = Some(node("sa", pa, &[]));
    let mut b = Some(node("sb", pb, &[]));
    until_members(&client, &base, 2).await;
    let (status, h) = health(&client, &base).await;
    assert_eq!(status, 200, "{h}");

    // The golden texts: one request for all, one per text, and TEI's.
    let within = short(&cases);
    let texts: Vec<&str> = within.iter().map(|c| c.text.as_str()).collect();
    let body = json!({ "model": MODEL, "input": texts });
    let (status, _, body) = post(&client, &openai, &body).await;
    assert_eq!(status, 200, "{body}");
    for (case, item) in within.iter().zip(body["data"].as_array().unwrap()) {
        assert_golden(&vector(&item["embedding"]), case);
    }
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let body = json!({ "inputs": texts, "truncate": true });
    let (status, _, body) = post(&client, &tei, &body).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_array().unwrap().len(), cases.len());
    for (case, v) in cases.iter().zip(body.as_array().unwrap()) {
        assert_golden(&vector(v), case);
    }
    for case in &within {
        let (status, _, body) = post(&client, &openai, &one(&case.text)).await;
        assert_eq!(status, 200, "{body}");
        assert_golden(&vector(&body["data"][0]["embedding"]), case);
    }

    // A node killed mid-run: every request answered once, 200 with the
    // golden vectors or 503 (its retry failed too). Each request carries
    // every golden text, so that both nodes always have work in flight.
    const CALLERS: usize = 8;
    const EACH: usize = 10;
    let answered = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let (client, openai, tei) = (client.clone(), openai.clone(), tei.clone());
            let (cases, within, answered) = (cases.clone(), within.clone(), answered.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..EACH {
                    let texts =
                        |of: &[GoldenCase]| of.iter().map(|c| c.text.clone()).collect::<Vec<_>>();
                    // OpenAI's route: the texts within the length.
                    let (status, of, body, vectors) = if (c + i) % 2 == 0 {
                        let body = json!({ "model": MODEL, "input": texts(&within) });
                        let (s, _, b) = post(&client, &openai, &body).await;
                        let v = b["data"].as_array().map(|d| {
                            d.iter()
                                .map(|d| vector(&d["embedding"]))
                                .collect::<Vec<_>>()
                        });
                        (s, &within, b, v)
                    } else {
                        let body = json!({ "inputs": texts(&cases), "truncate": true });
                        let (s, _, b) = post(&client, &tei, &body).await;
                        let v = b
                            .as_array()
                            .map(|d| d.iter().map(vector).collect::<Vec<_>>());
                        (s, &cases, b, v)
                    };
                    assert!(status == 200 || status == 503, "{status}: {body}");
                    if status == 200 {
                        let vectors = vectors.unwrap();
                        assert_eq!(vectors.len(), of.len());
                        for (case, v) in of.iter().zip(&vectors) {
                            assert_golden(v, case);
                        }
                    }
                    statuses.push(status);
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                statuses
            })
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(60);
    while answered.load(Ordering::SeqCst) < 12 {
        assert!(Instant::now() < until, "the run did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.take().unwrap().kill();
    let at_kill = answered.load(Ordering::SeqCst);
    let mut statuses = Vec::new();
    for c in callers {
        statuses.extend(c.await.unwrap());
    }
    assert_eq!(
        statuses.len(),
        CALLERS * EACH,
        "every request answered once"
    );
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let unavailable = statuses.len() - ok;
    eprintln!("killed node sa after {at_kill} answers: {ok} × 200, {unavailable} × 503");
    assert!(at_kill < CALLERS * EACH, "the kill came mid-run");
    assert!(ok > at_kill, "the front kept answering on the other node");
    // The other node is up with room to spare (8 callers, its queues hold
    // 50 requests), so every request lost on the killed one was retried
    // there and answered: none is 503.
    assert_eq!(unavailable, 0, "lost requests failed over to the live node");
    until_members(&client, &base, 1).await;
    let (status, _, body) = post(&client, &openai, &one(&cases[0].text)).await;
    assert_eq!(status, 200, "{body}");

    // Both gone: 503 with the reason again; the local pool still serves.
    b.take().unwrap().kill();
    until_members(&client, &base, 0).await;
    let (status, h) = health(&client, &base).await;
    assert_eq!(status, 503, "{h}");
    let (status, retry, body) = post(&client, &openai, &one("a cat")).await;
    assert_eq!((status, retry), (503, Some(1)), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no member"),
        "{body}"
    );
    let (status, _, body) = post(&client, &format!("{base}/rerank"), &rerank).await;
    assert_eq!(status, 200, "{body}");
}

/// Members with room for one request each, under 48 concurrent requests of
/// 22 or 24 texts: the ones no member admits are answered 429 with `Retry-After`
/// (OpenAI's `rate_limit_error`, TEI's `overloaded`), the rest 200 with the
/// golden vectors.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_members_are_answered_429_with_retry_after() {
    let cases = golden();
    let client = reqwest::Client::new();
    let (pa, pb) = (free_port(), free_port());
    let (_front, base) = front(&[pa, pb], &[]);
    let full = ["--queue-capacity", "1", "--batch-queue-capacity", "1"];
    let _a = node("qa", pa, &full);
    let _b = node("qb", pb, &full);
    until_members(&client, &base, 2).await;
    let within = short(&cases);
    let texts = |of: &[GoldenCase]| of.iter().map(|c| c.text.clone()).collect::<Vec<_>>();
    let (short_texts, all_texts) = (texts(&within), texts(&cases));
    let calls: Vec<_> = (0..48)
        .map(|i| {
            let client = client.clone();
            let base = base.clone();
            let (short_texts, all_texts) = (short_texts.clone(), all_texts.clone());
            tokio::spawn(async move {
                if i % 2 == 0 {
                    let url = format!("{base}/v1/embeddings");
                    let body = json!({ "model": MODEL, "input": short_texts });
                    post(&client, &url, &body).await
                } else {
                    let body = json!({ "inputs": all_texts, "truncate": true });
                    post(&client, &format!("{base}/embed"), &body).await
                }
            })
        })
        .collect();
    let (mut ok, mut full) = (0, 0);
    for (i, call) in calls.into_iter().enumerate() {
        let (status, retry, body) = call.await.unwrap();
        match status {
            200 => {
                ok += 1;
                let vectors: Vec<Vec<f32>> = if i % 2 == 0 {
                    body["data"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| vector(&d["embedding"]))
                        .collect()
                } else {
                    body.as_array().unwrap().iter().map(vector).collect()
                };
                let of = if i % 2 == 0 { &within } else { &cases };
                assert_eq!(vectors.len(), of.len());
                for (case, v) in of.iter().zip(&vectors) {
                    assert_golden(v, case);
                }
            }
            429 => {
                full += 1;
                assert!(retry.is_some_and(|s| s >= 1), "Retry-After: {retry:?}");
                if i % 2 == 0 {
                    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
                } else {
                    assert_eq!(body["error_type"], "overloaded", "{body}");
                }
            }
            _ => panic!("{status}: {body}"),
        }
    }
    eprintln!("48 requests: {ok} × 200, {full} × 429");
    assert!(ok >= 1 && full >= 1, "{ok} × 200, {full} × 429");
}

/// A reranker's directory given to `--model` with `--cluster` is served
/// through its `corral/rerank/…` group: TEI's `/rerank` through the front
/// answers the PyTorch logits of the tiny cross-encoder from a node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reranker_is_served_through_its_rerank_group() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corral-embed/tests/data/tiny-bert-rerank");
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
    let dir = dir.to_str().unwrap();
    let name = "tiny-bert-rerank";
    let port = free_port();
    let mut args = strings(&["serve", "--port", "0", "--cluster", "--name"]);
    args.push(format!("front-{}", free_port()));
    args.extend(strings(&["--cookie", COOKIE, "--cluster-port"]));
    args.push(free_port().to_string());
    args.push("--peer".into());
    args.push(format!("127.0.0.1:{port}"));
    args.push("--model".into());
    args.push(format!("{name}={dir}"));
    let (_front, base) = spawn_until(&args, "corral: listening on ");
    let mut args = strings(&["node", "--name", "rr", "--cookie", COOKIE, "--port"]);
    args.push(port.to_string());
    args.extend(strings(&["--model-name", name, "--model-dir", dir]));
    args.extend(strings(&["--workers", "1", "--threads", "1"]));
    let _node = spawn_until(&args, " ready on ").0;
    let client = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, h) = health(&client, &base).await;
        if status == 200 {
            assert_eq!(h["models"][name]["ready_workers"], 1, "{h}");
            break;
        }
        assert!(Instant::now() < until, "the node never joined: {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pairs = golden["pairs"].as_array().unwrap();
    assert!(!pairs.is_empty());
    for p in pairs {
        let body = json!({ "query": p["query"], "texts": [p["document"]], "raw_scores": true, "truncate": true });
        let (status, _, body) = post(&client, &format!("{base}/rerank"), &body).await;
        assert_eq!(status, 200, "{body}");
        let got = body[0]["score"].as_f64().unwrap();
        let want = p["logits"][0].as_f64().unwrap();
        assert!((got - want).abs() < 1e-4, "{got} vs {want} for {p}");
    }
}

/// `--cluster` without a `--model` to route is refused, naming the flag;
/// a node flag without `--cluster` is refused by the parser.
#[test]
fn cluster_flags_are_checked() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_corral"))
            .args(args)
            .output()
            .expect("run corral");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = run(&[
        "serve",
        "--cluster",
        "--name",
        "f",
        "--cookie",
        "c",
        "--port",
        "0",
    ]);
    assert!(!ok && err.contains("--model NAME=DIR"), "{err}");
    let (ok, err) = run(&["serve", "--name", "f", "--port", "0"]);
    assert!(!ok && err.contains("--cluster"), "{err}");
    let dir = common::model_dir();
    let model = format!("m={}", dir.to_str().unwrap());
    let (ok, err) = run(&[
        "serve",
        "--cluster",
        "--cookie",
        "c",
        "--model",
        &model,
        "--port",
        "0",
    ]);
    assert!(!ok && err.contains("--name"), "{err}");
}
