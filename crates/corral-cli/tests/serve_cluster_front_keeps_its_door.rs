//! The front's own door (`--max-concurrent-requests`) bounds what a
//! `corral serve --cluster` holds, as it does over local pools: with its one
//! member frozen (SIGSTOP), the requests the front admitted wait for it,
//! and every request past the door is answered 429 at once — nothing piles
//! up behind a stuck cluster. Once the member leaves routing, the held
//! ones are answered 503 (no other member to fail over to). Real model,
//! one node and one front on loopback; fails, never skips, without the
//! model.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{free_port, front, node, series, signal, until};
use serde_json::json;

const COOKIE: &str = "door-test-cookie";
/// The front's door.
const DOOR: usize = 4;
/// Requests sent at once while the member is frozen.
const SENT: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_the_door_requests_are_refused_at_once_while_the_member_is_stuck() {
    let dir = common::model_dir();
    let dir = dir.to_str().unwrap();
    let client = reqwest::Client::new();
    let port = free_port();
    let (member, _) = node(COOKIE, "stuck", port, dir, &["--no-normalize"]);
    let door = DOOR.to_string();
    let (_front, base) = front(COOKIE, &[port], dir, &["--max-concurrent-requests", &door]);
    let metrics = format!("{base}/metrics");
    until(&client, &metrics, "the member in routing", |_, p| {
        series(p, "corral_member_in_routing", &[("member", "stuck")]) == Some(1.0)
    })
    .await;
    let r = client
        .post(format!("{base}/embed"))
        .json(&json!({ "inputs": "a cat" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    signal(&member, "-STOP");
    let t0 = Instant::now();
    let sent: Vec<_> = (0..SENT)
        .map(|i| {
            let (client, url) = (client.clone(), format!("{base}/embed"));
            tokio::spawn(async move {
                let r = client
                    .post(&url)
                    .json(&json!({ "inputs": format!("sentence number {i}") }))
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), t0.elapsed())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for s in sent {
        answers.push(s.await.unwrap());
    }
    signal(&member, "-CONT");
    let refused: Vec<Duration> = answers
        .iter()
        .filter(|(s, _)| *s == 429)
        .map(|(_, t)| *t)
        .collect();
    let held: Vec<Duration> = answers
        .iter()
        .filter(|(s, _)| *s == 503)
        .map(|(_, t)| *t)
        .collect();
    eprintln!(
        "{} refused 429 (the last after {:?}), {} held and answered 503 (the first after {:?})",
        refused.len(),
        refused.iter().max(),
        held.len(),
        held.iter().min()
    );
    assert_eq!(
        (refused.len(), held.len()),
        (SENT - DOOR, DOOR),
        "{answers:?}"
    );
    // The refusals did not wait for the stuck member (which leaves routing
    // only after the 1.5 s liveness bound); the held requests did.
    let slowest_refusal = *refused.iter().max().unwrap();
    let first_held = *held.iter().min().unwrap();
    assert!(
        slowest_refusal < first_held,
        "{slowest_refusal:?} vs {first_held:?}"
    );
    assert!(first_held >= Duration::from_millis(1000), "{first_held:?}");
    // Thawed: back in routing, and answering.
    until(&client, &metrics, "the member back", |_, p| {
        series(p, "corral_member_in_routing", &[("member", "stuck")]) == Some(1.0)
    })
    .await;
    let r = client
        .post(format!("{base}/embed"))
        .json(&json!({ "inputs": "a cat" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
