//! Graceful shutdown: once triggered the server stops accepting, lets the
//! requests the pool admitted finish within the drain deadline, answers the
//! rest 503, and returns `Ok`.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{eventually, FakeModel, Script, TestServer};
use corral_server::ServerConfig;
use serde_json::json;

#[tokio::test]
async fn admitted_requests_finish_within_the_drain_and_new_ones_are_refused() {
    let m = FakeModel::new("fake");
    let mut s = TestServer::start_with_drain(
        vec![m.clone()],
        ServerConfig::default(),
        Duration::from_secs(10),
    )
    .await;
    m.set(Script::Hold);
    let client = s.client.clone();
    let url = s.url("/v1/embeddings");
    let admitted =
        tokio::spawn(async move { client.post(url).json(&json!({"input": "a"})).send().await });
    assert!(
        eventually(Duration::from_secs(5), || m.held.load(Ordering::SeqCst)
            == 1)
        .await
    );

    s.shutdown();
    assert!(
        eventually(Duration::from_secs(5), || m
            .shutting_down
            .load(Ordering::SeqCst))
        .await
    );
    // A new connection is no longer accepted (or, if it raced in, refused 503).
    let fresh = reqwest::Client::new();
    match fresh
        .post(s.url("/v1/embeddings"))
        .json(&json!({"input": "b"}))
        .send()
        .await
    {
        Err(e) => assert!(e.is_connect() || e.is_request(), "{e}"),
        Ok(r) => assert_eq!(r.status(), 503),
    }
    // The admitted one finishes once its work is done.
    m.gate.notify_waiters();
    let r = admitted.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    let done = tokio::time::timeout(Duration::from_secs(10), s.done).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "{done:?}");
}

#[tokio::test]
async fn requests_still_running_at_the_drain_deadline_are_answered_503() {
    let m = FakeModel::new("fake");
    let mut s = TestServer::start_with_drain(
        vec![m.clone()],
        ServerConfig::default(),
        Duration::from_millis(200),
    )
    .await;
    m.set(Script::Hold);
    let client = s.client.clone();
    let url = s.url("/embed");
    let stuck =
        tokio::spawn(async move { client.post(url).json(&json!({"inputs": "a"})).send().await });
    assert!(
        eventually(Duration::from_secs(5), || m.held.load(Ordering::SeqCst)
            == 1)
        .await
    );
    s.shutdown();
    let r = tokio::time::timeout(Duration::from_secs(10), stuck)
        .await
        .expect("answered after the drain deadline")
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error_type"], "unhealthy");
    let done = tokio::time::timeout(Duration::from_secs(10), s.done).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "{done:?}");
}
