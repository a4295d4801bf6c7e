//! A [`ClusterModel`] behind the real server, over members in this process
//! (the tiny XLM-RoBERTa embedder's pools; the process groups work without
//! a node): a member that promises other settings (normalisation on) is
//! refused with the reason and never sent a request, while the one that
//! agrees answers; each member's series are on `/metrics`; and a request
//! whose frame would be over the wire limit is answered 400 (OpenAI) / 413
//! (TEI) before anything is sent to any member.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::start_models;
use corral_cluster::wire::Limits;
use corral_cluster::{ClusterConfig, Member, NODE_KEY};
use corral_core::{Pool, PoolConfig};
use corral_embed::{EmbedInputBackend, EmbedSpec};
use corral_server::{promise_of, ClusterModel, ServedModel, ServerConfig};
use serde_json::json;

const NAME: &str = "tiny-cluster";
const GROUP: &str = "corral/embed/tiny-cluster";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corral-embed/tests/data/tiny-xlmr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_checked_and_oversized_requests_never_sent() {
    let config = PoolConfig {
        workers: 1,
        threads_per_worker: Some(1),
        ..PoolConfig::default()
    };
    let mut members = Vec::new();
    let mut pools = Vec::new();
    for (node, normalize) in [("agrees", false), ("normalizes", true)] {
        let spec = EmbedSpec::new(dir()).with_normalize(normalize);
        let pool = Pool::<EmbedInputBackend>::spawn(spec.clone(), config.clone())
            .await
            .unwrap();
        pool.wait_ready(Duration::from_secs(60)).await.unwrap();
        let promise = promise_of(NAME, &spec).unwrap().with(NODE_KEY, node);
        let member =
            Member::spawn_promising(pool.pool_ref(), GROUP.into(), Limits::default(), promise)
                .await
                .unwrap();
        members.push(member);
        pools.push(pool);
    }
    // As `ClusterModel::spawn` expects, with a wire limit small enough to
    // pass: a few hundred bytes of ids.
    let front_spec = EmbedSpec::new(dir());
    let model = ClusterModel::spawn_in(
        NAME,
        &front_spec,
        ClusterConfig {
            limits: Limits {
                max_frame: 2_000,
                ..Limits::default()
            },
            expect: Some(promise_of(NAME, &front_spec.clone().with_normalize(false)).unwrap()),
            ..ClusterConfig::new(GROUP)
        },
    )
    .await
    .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while model
        .members()
        .iter()
        .filter(|m| m.promise.is_some())
        .count()
        < 2
    {
        assert!(Instant::now() < until, "{:?}", model.members());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused: Vec<_> = model
        .members()
        .into_iter()
        .filter_map(|m| m.refused.clone().map(|r| (m.label(), r)))
        .collect();
    assert_eq!(
        refused,
        [(
            "normalizes".to_owned(),
            "normalize: member has true, expected false".to_owned()
        )]
    );
    let model = Arc::new(model);
    let server = start_models(
        vec![model.clone() as Arc<dyn ServedModel>],
        ServerConfig::default(),
        Duration::from_secs(5),
    )
    .await;

    for _ in 0..10 {
        let r = server
            .post(
                "/embed",
                json!({ "inputs": "a cat sat on the mat", "normalize": false }),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let sent = |label: &str| {
        model
            .members()
            .into_iter()
            .find(|m| m.label() == label)
            .unwrap()
            .counts
            .sent
    };
    assert_eq!((sent("agrees"), sent("normalizes")), (10, 0));

    // Over the wire limit: refused here, nothing sent.
    let many: Vec<String> = (0..200).map(|i| format!("sentence number {i}")).collect();
    let r = server.post("/embed", json!({ "inputs": many })).await;
    assert_eq!(r.status(), 413);
    let body: serde_json::Value = r.json().await.unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("over the limit of 2000"), "{message}");
    let r = server
        .post("/v1/embeddings", json!({ "model": NAME, "input": many }))
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!((sent("agrees"), sent("normalizes")), (10, 0));

    let page = server.get("/metrics").await.text().await.unwrap();
    let line = |name: &str, member: &str| {
        page.lines()
            .find(|l| {
                l.starts_with(&format!("{name}{{"))
                    && l.contains(&format!("member=\"{member}\""))
                    && l.contains(&format!("model=\"{NAME}\""))
                    && (!l.contains("outcome=\"") || l.contains("outcome=\"answered\""))
            })
            .unwrap_or_else(|| panic!("no {name} for {member}: {page}"))
            .to_owned()
    };
    assert!(line("corral_member_in_routing", "agrees").ends_with(" 1"));
    assert!(line("corral_member_in_routing", "normalizes").ends_with(" 0"));
    assert!(line("corral_member_requests_total", "agrees").ends_with(" 10"));
    assert!(line("corral_member_share", "agrees").ends_with(" 1"));
    assert!(line("corral_member_refused", "normalizes")
        .contains("reason=\"normalize: member has true, expected false\""));
    for m in members {
        m.stop(None);
    }
    for p in pools {
        drop(p.shutdown(Duration::from_secs(5)).await);
    }
}

#[test]
fn a_member_that_quantises_differently_is_told_apart() {
    // An int8 member answers a text with a vector within cosine 0.995 of
    // the fp32 one, not equal to it: the front must not mix the two.
    let fp32 = promise_of(NAME, &EmbedSpec::new(dir()).with_normalize(false)).unwrap();
    let int8 = promise_of(
        NAME,
        &EmbedSpec::new(dir())
            .with_normalize(false)
            .with_quantize(corral_embed::Quantize::Int8),
    )
    .unwrap();
    assert_eq!(
        fp32.disagreement(&int8).as_deref(),
        Some("quantize: member has int8, expected none")
    );
    assert_eq!(fp32.disagreement(&fp32.clone().with(NODE_KEY, "a")), None);
}
