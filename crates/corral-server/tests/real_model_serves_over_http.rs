//! The real all-MiniLM-L6-v2 behind the real server (release mode): the
//! routes give the golden vectors (floats, base64, token ids, TEI with
//! truncation) with the real token counts; a flood of 20× the pool's
//! capacity is refused 429 at once (every refusal before the batch that filled
//! the pool ends; a lone refusal in well under 50 ms) and never hangs or fails; a client that
//! disconnects frees its place in the pool.
//!
//! The model is found through `CORRAL_MODEL_DIR` (else the default fetched
//! location); a missing model fails these tests, naming the command that
//! fetches it.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{start_models, TestServer};
use corral_core::PoolConfig;
use corral_embed::{model_dir, EmbedSpec};
use corral_server::{PoolModel, ServedModel, ServerConfig};
use serde::Deserialize;
use serde_json::{json, Value};

/// One model load at a time: the tests share two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Deserialize)]
struct Golden {
    cases: Vec<GoldenCase>,
}

#[derive(Deserialize)]
struct GoldenCase {
    text: String,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct GoldenTokens {
    cases: Vec<TokenCase>,
}

#[derive(Deserialize)]
struct TokenCase {
    input_ids: Vec<u32>,
    truncated: bool,
}

fn fixture<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../corral-embed/tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

async fn minilm(config: PoolConfig) -> PoolModel {
    let dir = model_dir::resolve_model_dir(None).unwrap_or_else(|e| {
        panic!("these tests need all-MiniLM-L6-v2 (set CORRAL_MODEL_DIR or fetch it): {e}")
    });
    PoolModel::spawn(
        "all-MiniLM-L6-v2",
        EmbedSpec::new(dir),
        config,
        Duration::from_secs(120),
    )
    .await
    .unwrap()
}

async fn serve(model: PoolModel) -> TestServer {
    let models: Vec<Arc<dyn ServedModel>> = vec![Arc::new(model)];
    start_models(models, ServerConfig::default(), Duration::from_secs(10)).await
}

fn vectors(body: &Value) -> Vec<Vec<f32>> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| match &d["embedding"] {
            Value::String(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            v => serde_json::from_value(v.clone()).unwrap(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_vectors_come_back_over_every_route_with_real_token_counts() {
    let _one = SERIAL.lock().await;
    let s = serve(
        minilm(PoolConfig {
            workers: 1,
            ..PoolConfig::default()
        })
        .await,
    )
    .await;
    let golden: Golden = fixture("minilm_l6_v2_public.json");
    let tokens: GoldenTokens = fixture("minilm_l6_v2_public_tokens.json");
    let fits: Vec<usize> = (0..golden.cases.len())
        .filter(|&i| !tokens.cases[i].truncated)
        .collect();
    let texts: Vec<&str> = fits
        .iter()
        .map(|&i| golden.cases[i].text.as_str())
        .collect();
    let expected_tokens: usize = fits.iter().map(|&i| tokens.cases[i].input_ids.len()).sum();

    for format in ["float", "base64"] {
        let r = s
            .post(
                "/v1/embeddings",
                json!({"input": texts, "model": "all-MiniLM-L6-v2", "encoding_format": format}),
            )
            .await;
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key("x-queue-time-ms"));
        assert!(r.headers().contains_key("x-compute-time-ms"));
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["usage"]["prompt_tokens"], expected_tokens);
        for (v, &i) in vectors(&body).iter().zip(&fits) {
            let c = cosine(v, &golden.cases[i].embedding);
            assert!(
                c >= 0.9999,
                "{format} {:?}: cosine {c}",
                golden.cases[i].text
            );
        }
    }
    // token ids (without the special tokens) give the same vectors
    let ids: Vec<Vec<u32>> = fits
        .iter()
        .map(|&i| {
            let t = &tokens.cases[i].input_ids;
            t[1..t.len() - 1].to_vec()
        })
        .collect();
    let body: Value = s
        .post("/v1/embeddings", json!({"input": ids}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["usage"]["prompt_tokens"], expected_tokens);
    for (v, &i) in vectors(&body).iter().zip(&fits) {
        assert!(cosine(v, &golden.cases[i].embedding) >= 0.9999);
    }
    // an id outside the real vocabulary is the field's error, with its place
    let r = s
        .post("/v1/embeddings", json!({"input": [[7592], [7592, 30522]]}))
        .await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "input");
    assert_eq!(
        e["error"]["message"],
        "`input`[1]: token id 30522 is outside the vocabulary (0..30522)"
    );
    // dimensions: the first 64, re-normalised
    let body: Value = s
        .post(
            "/v1/embeddings",
            json!({"input": "Hello world", "dimensions": 64}),
        )
        .await
        .json()
        .await
        .unwrap();
    let v = &vectors(&body)[0];
    assert_eq!(v.len(), 64);
    assert!((v.iter().map(|x| x * x).sum::<f32>().sqrt() - 1.0).abs() < 1e-5);
    assert!(cosine(v, &golden.cases[0].embedding[..64]) >= 0.9999);
    let r = s
        .post("/v1/embeddings", json!({"input": "x", "dimensions": 385}))
        .await;
    assert_eq!(r.status(), 400);

    // the over-long text: refused without truncation, golden with it
    let long = golden
        .cases
        .iter()
        .zip(&tokens.cases)
        .find(|(_, t)| t.truncated)
        .unwrap()
        .0;
    assert_eq!(
        s.post("/v1/embeddings", json!({"input": long.text}))
            .await
            .status(),
        400
    );
    assert_eq!(
        s.post("/embed", json!({"inputs": long.text}))
            .await
            .status(),
        413
    );
    let r = s
        .post(
            "/embed",
            json!({"inputs": [long.text, "Hello world"], "truncate": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Vec<Vec<f32>> = r.json().await.unwrap();
    assert!(cosine(&v[0], &long.embedding) >= 0.9999);
    assert!(cosine(&v[1], &golden.cases[0].embedding) >= 0.9999);
    assert_eq!(s.get("/health").await.status(), 200);
    let metrics = s.get("/metrics").await.text().await.unwrap();
    let labelled = |series: &str| {
        metrics
            .lines()
            .any(|l| l.starts_with(series) && l.contains(r#"model="all-MiniLM-L6-v2""#))
    };
    for series in ["corral_worker_depth", "corral_admitted_total"] {
        assert!(
            labelled(series),
            "the pool's own {series} is exported, labelled by model:\n{metrics}"
        );
    }
}

/// The 1-minute load average and the core count.
fn load_and_cores() -> (f64, f64) {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (load, cores as f64)
}

/// A request that keeps the only worker busy for a while: `n` texts at the
/// model's full length.
fn hog(n: usize) -> Value {
    let long = "the quick brown fox jumps over the lazy dog ".repeat(40);
    json!({"inputs": vec![long; n], "truncate": true})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_twenty_times_capacity_is_refused_429_at_once_then_served_again() {
    let _one = SERIAL.lock().await;
    let config = PoolConfig {
        workers: 1,
        // one core computes, the other serves HTTP
        threads_per_worker: Some(1),
        queue_capacity: 2,
        batch_queue_capacity: 2,
        ..PoolConfig::default()
    };
    let capacity = config.workers * (config.queue_capacity + config.batch_queue_capacity);
    let model = minilm(config).await;
    let pool = model.pool().clone();
    let s = serve(model).await;
    // Occupy the worker so that the flood meets full mailboxes.
    let client = s.client.clone();
    let url = s.url("/embed");
    let started = Instant::now();
    let busy = tokio::spawn(async move {
        let status = client
            .post(url)
            .json(&hog(48))
            .send()
            .await
            .unwrap()
            .status();
        (status, Instant::now())
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while pool.health().await.unwrap().total_depth() == 0 {
        assert!(
            Instant::now() < deadline,
            "the hog request never reached the pool"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The flood: every request on its own connection, all at once.
    let flood = 20 * capacity;
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut requests = Vec::new();
    for i in 0..flood {
        let client = reqwest::Client::new();
        let url = s.url("/v1/embeddings");
        let answered = answered.clone();
        requests.push(tokio::spawn(async move {
            let r = tokio::time::timeout(
                Duration::from_secs(60),
                client
                    .post(url)
                    .json(&json!({"input": format!("sentence number {i}")}))
                    .send(),
            )
            .await
            .expect("no request hangs")
            .unwrap();
            let arrived = Instant::now();
            answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let retry_after = r.headers().get("retry-after").cloned();
            (r.status().as_u16(), arrived, retry_after)
        }));
    }
    // One caller's view: once the flood has been refused (all but the few
    // it can admit, which wait behind the hog), refusals one after another
    // on a warm connection.
    while answered.load(std::sync::atomic::Ordering::SeqCst) < flood - capacity {
        assert!(Instant::now() < deadline, "the flood was not answered");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let probe = |i: usize| s.post("/v1/embeddings", json!({"input": format!("probe {i}")}));
    assert_eq!(
        probe(0).await.status(),
        429,
        "a probe found room: the hog ended too soon, or the flood waited"
    );
    let mut took = Vec::new();
    for i in 1..=20 {
        let sent = Instant::now();
        let status = probe(i).await.status();
        took.push(sent.elapsed());
        assert_eq!(
            status, 429,
            "a probe found room: the hog ended too soon, or the flood waited"
        );
    }
    let mut refused_at = Vec::new();
    let mut ok = 0;
    for r in requests {
        let (status, arrived, retry_after) = r.await.unwrap();
        match status {
            200 => ok += 1,
            429 => {
                let secs: u64 = retry_after
                    .expect("Retry-After")
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(secs >= 1);
                refused_at.push(arrived);
            }
            other => panic!("flood answered {other}"),
        }
    }
    assert!(
        refused_at.len() >= flood - capacity,
        "{} refused, {ok} served",
        refused_at.len()
    );
    let (status, hog_done) = busy.await.unwrap();
    assert_eq!(status, 200);
    // "At once" means "without waiting for the model": every refusal of the
    // flood reached its caller before the batch that filled the pool ended.
    let last_refusal = *refused_at.iter().max().unwrap();
    eprintln!(
        "{} refused, the last {:?} after the hog began, which took {:?}; {ok} served",
        refused_at.len(),
        last_refusal - started,
        hog_done - started
    );
    assert!(
        last_refusal < hog_done,
        "a refusal waited for the model: the last came {:?} after the hog began, the hog ended after {:?}",
        last_refusal - started,
        hog_done - started
    );
    // And one refusal on its own costs little. 50 ms is the target on a
    // machine with a core to spare; with the cores oversubscribed by other
    // processes (load average above the core count) the scheduler, not the
    // server, sets the figure.
    took.sort();
    let worst = *took.last().unwrap();
    eprintln!(
        "a lone refusal: median {:?}, worst {worst:?}",
        took[took.len() / 2]
    );
    let (load, cores) = load_and_cores();
    let limit = if load <= cores {
        Duration::from_millis(50)
    } else {
        eprintln!(
            "load average {load:.1} on {cores} cores: holding a refusal to 500 ms, not 50 ms"
        );
        Duration::from_millis(500)
    };
    assert!(
        worst < limit,
        "a lone refusal took {worst:?} (limit {limit:?})"
    );
    // After the flood every request succeeds again.
    for i in 0..20 {
        let r = s
            .post(
                "/v1/embeddings",
                json!({"input": format!("after the flood {i}")}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_frees_its_place_in_the_pool() {
    let _one = SERIAL.lock().await;
    let model = minilm(PoolConfig {
        workers: 1,
        ..PoolConfig::default()
    })
    .await;
    let pool = model.pool().clone();
    let s = serve(model).await;
    let client = s.client.clone();
    let url = s.url("/embed");
    let busy = tokio::spawn(async move {
        client
            .post(url)
            .json(&hog(48))
            .send()
            .await
            .unwrap()
            .status()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while pool.health().await.unwrap().total_depth() < 1 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let before = pool.stats().await.unwrap().cancelled;
    // Queued behind the busy worker, then its client goes away.
    let client = s.client.clone();
    let url = s.url("/v1/embeddings");
    let leaver = tokio::spawn(async move {
        client
            .post(url)
            .json(&json!({"input": "I will not wait"}))
            .send()
            .await
    });
    while pool.health().await.unwrap().total_depth() < 2 {
        assert!(
            Instant::now() < deadline,
            "the second request never reached the pool"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    leaver.abort();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = pool.stats().await.unwrap();
        if stats.cancelled > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pool never skipped the withdrawn request"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(busy.await.unwrap(), 200);
    assert!(pool.health().await.unwrap().total_depth() == 0);
    assert_eq!(
        s.post("/v1/embeddings", json!({"input": "still served"}))
            .await
            .status(),
        200
    );
}
