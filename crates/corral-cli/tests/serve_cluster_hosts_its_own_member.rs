//! `corral serve --cluster --member-workers N` hosts, in the front's own
//! process, a pool for each cluster model as a member of its group, like
//! any node's: with no node connected, the front serves the golden vectors
//! through it (`normalize: false` honoured), and `/metrics` shows it under
//! the front's name. Fails, never skips, without the model.

mod common;

use common::cluster::{cosine, front, get, golden, series, until, vector, MODEL};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_front_serves_through_its_own_member() {
    let dir = common::model_dir();
    let dir = dir.to_str().unwrap();
    let client = reqwest::Client::new();
    let (_front, base) = front(
        "own-member-cookie",
        &[],
        dir,
        &["--member-workers", "1", "--threads", "1"],
    );
    let metrics = format!("{base}/metrics");
    until(&client, &format!("{base}/health"), "healthy", |s, _| {
        s == 200
    })
    .await;
    let cases: Vec<_> = golden().into_iter().take(10).collect();
    for case in &cases {
        let r = client
            .post(format!("{base}/v1/embeddings"))
            .json(&json!({ "model": MODEL, "input": case.text }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let body: Value = r.json().await.unwrap();
        let v = vector(&body["data"][0]["embedding"]);
        let cos = cosine(&v, &case.embedding);
        assert!(cos >= 0.9999, "cosine {cos} for {:?}", case.text);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    }
    let r = client
        .post(format!("{base}/embed"))
        .json(&json!({ "inputs": cases[0].text, "normalize": false }))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let norm = body[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap().powi(2))
        .sum::<f64>()
        .sqrt();
    assert!((norm - 1.0).abs() > 1e-3, "a raw vector: {norm}");
    let page = get(&client, &metrics).await.1;
    let front = [("member", "front")];
    assert_eq!(
        series(&page, "corral_member_in_routing", &front),
        Some(1.0),
        "{page}"
    );
    let answered = series(
        &page,
        "corral_member_requests_total",
        &[("member", "front"), ("outcome", "answered")],
    );
    assert_eq!(answered, Some(cases.len() as f64 + 1.0), "{page}");
}
