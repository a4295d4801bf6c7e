//! A host application that embeds texts with pools on other ractor_cluster
//! nodes, as if they were one local pool. Three nodes on one machine, one
//! command each (the first two host the default model; fetch it once with
//! `corral fetch-model`):
//!
//! ```sh
//! cargo run --release --bin corral -- node --name a --port 4701 --cookie s3cret
//! cargo run --release --bin corral -- node --name b --port 4702 --cookie s3cret --peer 127.0.0.1:4701
//! cargo run --release --example cluster -- 127.0.0.1:4701 127.0.0.1:4702
//! ```
//!
//! This third node hosts no pool: it connects to the two others, finds their
//! pools in the process group `corral/embed/all-MiniLM-L6-v2`, and sends
//! each request to the one with the least expected wait. Stop `a` or `b`
//! while it runs: requests in flight to it are retried on the other, and
//! the stopped node rejoins routing when it comes back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use corral::cluster::{group_name, ClusterConfig, ClusterHandle, Node, NodeConfig};
use corral::embed::{EmbedInput, EmbedOutput};
use corral::Call;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let peers: Vec<SocketAddr> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    if peers.is_empty() {
        return Err("usage: cluster HOST:PORT [HOST:PORT…]".into());
    }
    let cookie = std::env::var("CORRAL_COOKIE").unwrap_or_else(|_| "s3cret".into());
    let node = Node::start(NodeConfig::new("c", "127.0.0.1", 4703, cookie)).await?;
    let pools = ClusterHandle::<EmbedInput, EmbedOutput>::spawn(ClusterConfig::new(group_name(
        "embed",
        "all-MiniLM-L6-v2",
    )))
    .await?;
    for p in &peers {
        node.connect(*p);
    }
    pools.wait_members(1, Duration::from_secs(30)).await?;
    println!("{} pool(s) in routing", pools.members().len());

    // Ten rounds of 32 single-sentence requests, concurrently.
    for round in 0..10 {
        let started = Instant::now();
        let mut calls = vec![];
        for i in 0..32 {
            let pools = pools.clone();
            let text = format!("sentence {i} of round {round}, routed across nodes");
            calls.push(tokio::spawn(async move {
                pools.call(EmbedInput::Text(text)).await
            }));
        }
        let mut dims = 0;
        for c in calls {
            dims = c.await??.vector.len();
        }
        let spread: Vec<String> = pools
            .members()
            .iter()
            .map(|m| format!("{}: {} answered", m.id, m.counts.answered))
            .collect();
        println!(
            "round {round}: 32 × {dims}-d embeddings in {:.0?} ({})",
            started.elapsed(),
            spread.join(", ")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}
