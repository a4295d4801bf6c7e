//! Two `corral node` processes with the real model on loopback, and this
//! test process the node that routes: their answers through a
//! `ClusterHandle` match the golden vectors of sentence-transformers, and
//! two nodes of the tiny cross-encoder answer in the rerank group with the
//! PyTorch logits
//! (fails, not skips, without the model). The cluster's behaviour under
//! faults is tested on synthetic nodes, in corral-bench's
//! `tests/cluster_nodes.rs`.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use corral_cluster::{group_name, ClusterConfig, ClusterHandle, Node, NodeConfig};
use corral_core::Call;

const COOKIE: &str = "cluster-test-cookie";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A `corral node` child process, killed when dropped.
struct NodeProc(Child);

impl NodeProc {
    /// A node with `args` after the common ones; waits for its ready line.
    fn spawn(name: &str, port: u16, model: &str, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
            .arg("node")
            .args(args)
            .args(["--name", name, "--port", &port.to_string()])
            .args(["--cookie", COOKIE, "--model-name", model])
            .args(["--threads", "1"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn corral node");
        let stdout = child.stdout.take().unwrap();
        let node = Self(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains(" ready on ") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("node {name} did not report ready"));
        node
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serialises this file's tests: each starts a routing node in this
/// process, and ractor's registry and process groups are global to a
/// process, so two at once see each other's sessions come and go (a node
/// of one test killed while the other routes cost it a member).
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

async fn router_node() -> Node {
    Node::start(NodeConfig::new(
        format!("router-{}", free_port()),
        "127.0.0.1",
        free_port(),
        COOKIE,
    ))
    .await
    .expect("router node")
}

#[derive(serde::Deserialize)]
struct Golden {
    cases: Vec<GoldenCase>,
}

#[derive(serde::Deserialize)]
struct GoldenCase {
    text: String,
    embedding: Vec<f32>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_model_nodes_answer_the_golden_texts_as_sentence_transformers_does() {
    let _serial = one_at_a_time().await;
    use corral_embed::{EmbedInput, EmbedOutput};
    let golden: Golden = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../corral-embed/tests/fixtures/minilm_l6_v2_public.json"),
        )
        .unwrap(),
    )
    .unwrap();
    // The default model directory: fetched by CI before the tests; a node
    // that cannot load it never reports ready, and the test fails.
    let dir = corral_embed::model_dir::resolve_model_dir(None).unwrap_or_else(|e| panic!("{e}"));
    let dir = dir.to_str().unwrap().to_owned();
    let model = "all-MiniLM-L6-v2";
    let (pa, pb) = (free_port(), free_port());
    let args = ["--model-dir", dir.as_str(), "--workers", "1"];
    let _a = NodeProc::spawn("ea", pa, model, &args);
    let _b = NodeProc::spawn("eb", pb, model, &args);
    let c = router_node().await;
    let h = ClusterHandle::<EmbedInput, EmbedOutput>::spawn(ClusterConfig::new(group_name(
        "embed", model,
    )))
    .await
    .unwrap();
    c.connect(addr(pa));
    c.connect(addr(pb));
    h.wait_members(2, Duration::from_secs(20)).await.unwrap();
    let calls: Vec<_> = golden
        .cases
        .iter()
        .map(|case| {
            let h = h.clone();
            let text = case.text.clone();
            tokio::spawn(async move { h.call(EmbedInput::Text(text)).await })
        })
        .collect();
    for (case, call) in golden.cases.iter().zip(calls) {
        let got = call.await.unwrap().unwrap().vector;
        assert_eq!(got.len(), case.embedding.len());
        let dot: f32 = got.iter().zip(&case.embedding).map(|(a, b)| a * b).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let cos = dot / (norm(&got) * norm(&case.embedding));
        assert!(cos >= 0.9999, "cosine {cos} for {:?}", case.text);
    }
    let members = h.members();
    assert!(
        members.iter().all(|m| m.counts.answered > 0),
        "both nodes served: {members:?}"
    );
}

/// A reranker's nodes join the group of its task: a `ClusterHandle` for
/// `corral/rerank/<model>` gets the PyTorch logits of the tiny BERT
/// cross-encoder for every golden pair, from both nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reranker_nodes_answer_pairs_in_the_rerank_group() {
    let _serial = one_at_a_time().await;
    use corral_embed::{ScoreInput, ScoreOutput};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corral-embed/tests/data/tiny-bert-rerank");
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
    let dir = dir.to_str().unwrap().to_owned();
    let model = "tiny-bert-rerank";
    let (pa, pb) = (free_port(), free_port());
    let args = ["--model-dir", dir.as_str(), "--workers", "1"];
    let _a = NodeProc::spawn("ra", pa, model, &args);
    let _b = NodeProc::spawn("rb", pb, model, &args);
    let c = router_node().await;
    let h = ClusterHandle::<ScoreInput, ScoreOutput>::spawn(ClusterConfig::new(group_name(
        "rerank", model,
    )))
    .await
    .unwrap();
    c.connect(addr(pa));
    c.connect(addr(pb));
    h.wait_members(2, Duration::from_secs(20)).await.unwrap();
    let pairs = golden["pairs"].as_array().unwrap().clone();
    let calls: Vec<_> = pairs
        .iter()
        .map(|p| {
            let h = h.clone();
            let input = ScoreInput::pair(
                p["query"].as_str().unwrap(),
                p["document"].as_str().unwrap(),
            );
            tokio::spawn(async move { h.call(input).await })
        })
        .collect();
    for (p, call) in pairs.iter().zip(calls) {
        let got = call.await.unwrap().unwrap().logits;
        let want = p["logits"][0].as_f64().unwrap();
        assert_eq!(got.len(), 1);
        assert!(
            (f64::from(got[0]) - want).abs() < 1e-4,
            "{} vs {want} for {p}",
            got[0]
        );
    }
    let members = h.members();
    assert!(
        members.iter().all(|m| m.counts.answered > 0),
        "both nodes served: {members:?}"
    );
    // The embedding group of that name is empty: the nodes host a reranker.
    let e = ClusterHandle::<corral_embed::EmbedInput, corral_embed::EmbedOutput>::spawn(
        ClusterConfig::new(group_name("embed", model)),
    )
    .await
    .unwrap();
    assert!(e.wait_members(1, Duration::from_millis(500)).await.is_err());
}
