//! The check of `corral serve --cluster`, three processes on
//! loopback: two `corral node`s with the real model — one slower (candle's
//! engine against the fast one) — and one front. 1,000 requests, half
//! through the official `openai` Python client and half through TEI's
//! `/embed`; the slower node is killed mid-run and restarted on its port.
//! Every request is answered once — 200 with the golden vector, or 503
//! (its retry failed too), counted —; the faster node answers more; the
//! restarted node rejoins routing and answers again, as the front's
//! `/metrics` shows. Fails, never skips, without the model or the client.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{
    cosine, free_port, front, get, golden, golden_path, node, series, until, vector, MODEL,
};
use serde_json::{json, Value};

const COOKIE: &str = "restart-test-cookie";
/// Requests through each client.
const EACH: usize = 500;
/// Concurrent requests from each client.
const CALLERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_request_is_answered_once_through_a_node_restart() {
    let started = Instant::now();
    let dir = common::model_dir();
    let dir = dir.to_str().unwrap().to_owned();
    let openai = common::python::package("openai", "import openai");
    let client = reqwest::Client::new();
    let (pf, ps) = (free_port(), free_port());
    let fast = node(COOKIE, "fast", pf, &dir, &["--no-normalize"]);
    let slow_args = ["--no-normalize", "--engine", "candle"];
    let mut slow = node(COOKIE, "slow", ps, &dir, &slow_args);
    let (_front, base) = front(COOKIE, &[pf, ps], &dir, &[]);
    let metrics = format!("{base}/metrics");
    let in_routing = |m: &'static str| {
        move |_: u16, p: &str| series(p, "corral_member_in_routing", &[("member", m)]) == Some(1.0)
    };
    until(&client, &metrics, "fast in routing", in_routing("fast")).await;
    until(&client, &metrics, "slow in routing", in_routing("slow")).await;

    // The openai client's half, in its own process.
    let python = {
        let base = format!("{base}/v1");
        std::thread::spawn(move || {
            common::python::check(
                &[openai],
                "cluster_openai_client_load.py",
                &[
                    base.as_ref(),
                    MODEL.as_ref(),
                    golden_path().as_os_str(),
                    EACH.to_string().as_ref(),
                    CALLERS.to_string().as_ref(),
                ],
            )
        })
    };

    // TEI's half from here; the slow node killed a fifth of the way in.
    let cases = Arc::new(golden());
    let next = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (client, url) = (client.clone(), format!("{base}/embed"));
            let (cases, next, answered) = (cases.clone(), next.clone(), answered.clone());
            tokio::spawn(async move {
                let (mut ok, mut unavailable) = (0, 0);
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= EACH {
                        return (ok, unavailable);
                    }
                    let case = &cases[i % cases.len()];
                    let r = client
                        .post(&url)
                        .json(&json!({ "inputs": case.text }))
                        .send()
                        .await
                        .unwrap();
                    let status = r.status().as_u16();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    match status {
                        200 => {
                            let v = vector(&body[0]);
                            let cos = cosine(&v, &case.embedding);
                            assert!(cos >= 0.9999, "cosine {cos} for {:?}", case.text);
                            ok += 1;
                        }
                        503 => unavailable += 1,
                        s => panic!("{s}: {body}"),
                    }
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let first_fifth_by = Instant::now() + Duration::from_secs(120);
    while answered.load(Ordering::SeqCst) < EACH / 5 {
        assert!(
            Instant::now() < first_fifth_by,
            "the clients answered {} requests in 120 s",
            answered.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    slow.0.kill();
    let killed_at = answered.load(Ordering::SeqCst);
    slow = node(COOKIE, "slow", ps, &dir, &slow_args);
    let restarted_at = answered.load(Ordering::SeqCst);
    let (mut tei_ok, mut tei_unavailable) = (0, 0);
    for c in callers {
        let (ok, unavailable) = c.await.unwrap();
        tei_ok += ok;
        tei_unavailable += unavailable;
    }
    let out = python.join().unwrap();
    let counts: Vec<usize> = out
        .trim()
        .split(' ')
        .map(|kv| kv.split_once('=').unwrap().1.parse().unwrap())
        .collect();
    let (py_ok, py_unavailable) = (counts[0], counts[1]);
    assert_eq!(
        tei_ok + tei_unavailable,
        EACH,
        "each TEI request answered once"
    );
    assert_eq!(
        py_ok + py_unavailable,
        EACH,
        "each openai request answered once"
    );
    let unavailable = tei_unavailable + py_unavailable;
    assert!(
        unavailable <= 2 * CALLERS,
        "at most those in flight to the killed node: {unavailable}"
    );

    // The restarted node rejoins, and answers again.
    let page = until(
        &client,
        &metrics,
        "slow back in routing",
        in_routing("slow"),
    )
    .await;
    let answered_by = |page: &str, m: &str| {
        series(
            page,
            "corral_member_requests_total",
            &[("member", m), ("outcome", "answered")],
        )
        .unwrap_or(0.0)
    };
    let (fast_n, slow_n) = (answered_by(&page, "fast"), answered_by(&page, "slow"));
    assert!(
        fast_n > slow_n,
        "the faster node answers more: {fast_n} vs {slow_n}"
    );
    assert_eq!(
        fast_n + slow_n,
        (tei_ok + py_ok) as f64,
        "every 200 counted on one member"
    );
    let lost = series(
        &page,
        "corral_member_requests_total",
        &[("member", "slow"), ("outcome", "lost")],
    );
    let before = answered_by(&page, "slow");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Bursts that queue on the fast node, so the slow one gets some.
        let burst: Vec<_> = (0..16)
            .map(|i| {
                let client = client.clone();
                let url = format!("{base}/embed");
                let text = cases[i % cases.len()].text.clone();
                tokio::spawn(async move {
                    let r = client
                        .post(&url)
                        .json(&json!({ "inputs": text }))
                        .send()
                        .await;
                    r.unwrap().status().as_u16()
                })
            })
            .collect();
        for b in burst {
            assert_eq!(b.await.unwrap(), 200);
        }
        let page = get(&client, &metrics).await.1;
        if answered_by(&page, "slow") > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node never answered: {page}"
        );
    }
    drop(fast);
    drop(slow);
    eprintln!(
        "1,000 requests: {} answered 200 ({} by fast, {} by slow), {unavailable} answered 503; \
         slow killed after {killed_at}, restarted after {restarted_at}; lost on it: {lost:?}; \
         wall time {:.1} s",
        tei_ok + py_ok,
        fast_n,
        slow_n,
        started.elapsed().as_secs_f64()
    );
}
