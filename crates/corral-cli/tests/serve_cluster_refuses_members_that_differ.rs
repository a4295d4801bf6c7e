//! `corral serve --cluster` keeps out of routing a member whose settings
//! differ from its own model's — one that normalises its vectors, and
//! another model hosted under the same name — with the reason on
//! `/metrics` and, once no member agrees, in `/health`'s 503; the member
//! that agrees takes every request, with the golden vectors; frozen
//! (SIGSTOP), it leaves routing within the liveness bound and comes back
//! on SIGCONT. Each member's series are on the front's `/metrics`, and
//! `corral node --http-port` serves the node's own `/health` and
//! `/metrics`. Three real-model nodes and one front on loopback; fails,
//! never skips, without the model.

mod common;

use common::cluster::{
    cosine, free_port, front, get, golden, node, series, signal, until, vector, MODEL,
};
use serde_json::{json, Value};

const COOKIE: &str = "refuse-test-cookie";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_whose_settings_differ_are_refused_with_the_reason() {
    let dir = common::model_dir();
    let dir = dir.to_str().unwrap();
    let tiny = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corral-embed/tests/data/tiny-xlmr");
    let tiny = tiny.to_str().unwrap();
    let client = reqwest::Client::new();

    // Agrees (unnormalised, as the front expects); normalises; another
    // model under the same name. The first also serves its own status.
    let ports = [free_port(), free_port(), free_port()];
    let (good, good_http) = node(
        COOKIE,
        "good",
        ports[0],
        dir,
        &["--no-normalize", "--http-port", "0"],
    );
    let (_normalizes, _) = node(COOKIE, "normalizes", ports[1], dir, &[]);
    let (_other, _) = node(COOKIE, "other-model", ports[2], tiny, &["--no-normalize"]);
    let (_front, base) = front(COOKIE, &ports, dir, &[]);
    let metrics = format!("{base}/metrics");

    // All three described: one in routing, two refused, each saying why.
    let page = until(&client, &metrics, "three members described", |_, p| {
        series(p, "corral_member_in_routing", &[("member", "good")]) == Some(1.0)
            && series(p, "corral_member_refused", &[("member", "normalizes")]) == Some(1.0)
            && series(p, "corral_member_refused", &[("member", "other-model")]) == Some(1.0)
    })
    .await;
    let refused_line = |member: &str| {
        page.lines()
            .find(|l| {
                l.starts_with("corral_member_refused{")
                    && l.contains(&format!("member=\"{member}\""))
            })
            .unwrap()
            .to_owned()
    };
    let n = refused_line("normalizes");
    assert!(
        n.contains("normalize: member has true, expected false"),
        "{n}"
    );
    let o = refused_line("other-model");
    for key in ["dimensions", "tokenizer", "weights"] {
        assert!(o.contains(&format!("{key}: member has")), "{o}");
    }
    for m in ["normalizes", "other-model"] {
        let routing = series(&page, "corral_member_in_routing", &[("member", m)]);
        assert_eq!(routing, Some(0.0), "{m}");
    }
    let (status, h) = get(&client, &format!("{base}/health")).await;
    assert_eq!(status, 200, "one member agrees: {h}");

    // Every request goes to the one that agrees, with the golden vectors,
    // and `normalize: false` is honoured (the front normalises).
    let cases: Vec<_> = golden().into_iter().take(20).collect();
    for case in &cases {
        for normalize in [true, false] {
            let r = client
                .post(format!("{base}/embed"))
                .json(&json!({ "inputs": case.text, "normalize": normalize }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            let body: Value = r.json().await.unwrap();
            let v = vector(&body[0]);
            let cos = cosine(&v, &case.embedding);
            assert!(cos >= 0.9999, "cosine {cos} for {:?}", case.text);
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert_eq!((norm - 1.0).abs() < 1e-3, normalize, "norm {norm}");
        }
    }
    let page = get(&client, &metrics).await.1;
    let answered = |m: &str| {
        series(
            &page,
            "corral_member_requests_total",
            &[("member", m), ("outcome", "answered")],
        )
    };
    assert_eq!(answered("good"), Some(2.0 * cases.len() as f64), "{page}");
    for m in ["normalizes", "other-model"] {
        assert_eq!(answered(m).unwrap_or(0.0), 0.0, "{m}");
    }
    let good_series = |name: &str| series(&page, name, &[("member", "good")]);
    assert_eq!(good_series("corral_member_share"), Some(1.0));
    assert!(good_series("corral_member_seconds_per_request").unwrap() > 0.0);
    assert_eq!(good_series("corral_member_in_flight"), Some(0.0));
    assert!(good_series("corral_member_depth").is_some());

    // The node's own status.
    let (status, h) = get(&client, &format!("{good_http}/health")).await;
    assert_eq!(status, 200, "{h}");
    let h: Value = serde_json::from_str(&h).unwrap();
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["ready_workers"], 1, "{h}");
    let (status, node_page) = get(&client, &format!("{good_http}/metrics")).await;
    assert_eq!(status, 200);
    assert!(node_page.contains("corral_admitted_total"), "{node_page}");

    // Frozen (SIGSTOP, its connection left open): out of routing within
    // the liveness bound (1.5 s + a 250 ms ping), and back on SIGCONT.
    signal(&good, "-STOP");
    let frozen = std::time::Instant::now();
    until(&client, &metrics, "the frozen member out", |_, p| {
        series(p, "corral_member_in_routing", &[("member", "good")]) == Some(0.0)
    })
    .await;
    let out_after = frozen.elapsed();
    // The bound, and slack for a loaded machine's scheduling.
    assert!(
        out_after < std::time::Duration::from_millis(3_000),
        "{out_after:?}"
    );
    eprintln!("a frozen member left routing after {out_after:?}");
    let (status, _) = get(&client, &format!("{base}/health")).await;
    assert_eq!(status, 503, "no member left in routing");
    signal(&good, "-CONT");
    until(&client, &metrics, "the thawed member back", |_, p| {
        series(p, "corral_member_in_routing", &[("member", "good")]) == Some(1.0)
    })
    .await;
    let (status, h) = get(&client, &format!("{base}/health")).await;
    assert_eq!(status, 200, "{h}");

    // The agreeing member gone: 503, the reason naming both refusals.
    drop(good);
    let body = until(
        &client,
        &format!("{base}/health"),
        "503 without the agreeing member",
        |s, _| s == 503,
    )
    .await;
    let h: Value = serde_json::from_str(&body).unwrap();
    let reason = h["reason"].as_str().unwrap();
    assert!(reason.contains("2 refused for their settings"), "{reason}");
    assert!(
        reason.contains("member normalizes refused: normalize: member has true, expected false"),
        "{reason}"
    );
    let page = get(&client, &metrics).await.1;
    let routing = series(&page, "corral_member_in_routing", &[("member", "good")]);
    assert_eq!(routing, Some(0.0), "{page}");
    let r = client
        .post(format!("{base}/v1/embeddings"))
        .json(&json!({ "model": MODEL, "input": "a cat" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
}
