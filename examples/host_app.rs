//! A host application that embeds Corral: it spawns a pool in-process, sends
//! typed `PoolMsg` messages to it from one of its own actors (as a ractor
//! service would) through a `PoolRef` — which takes the pool's admission
//! permit first, so a flood from the host is refused at the door instead of
//! piling up in the supervisor's mailbox — reads health and stats through
//! the handle, and shuts down cleanly.
//!
//! Run with `cargo run --release --example host_app`. It uses the synthetic
//! backend so it needs no model; swap in `corral::embed::EmbedBackend` for
//! real embeddings.

use std::time::Duration;

use corral::synthetic::{Item, Synthetic, SyntheticSpec};
use corral::{Call, CallError, Pool, PoolConfig, PoolError, PoolMsg, PoolRef, Refusal, Submit};
use ractor::{call_t, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// The host's own actor: it owns a reference to the pool and serves its own
/// callers with it.
struct Indexer;

enum IndexerMsg {
    /// Index `n` documents; reply with how many were embedded.
    Index(u64, RpcReplyPort<Result<usize, PoolError>>),
}

// With ractor's `cluster` feature (corral's `cluster` feature, on by
// default), a message type says it is one; a local-only one needs nothing
// more. Without it, ractor implements `Message` for every type itself.
#[cfg(feature = "cluster")]
impl ractor::Message for IndexerMsg {}

impl Actor for Indexer {
    type Msg = IndexerMsg;
    type State = PoolRef<Synthetic>;
    type Arguments = PoolRef<Synthetic>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        pool: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(pool)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        pool: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let IndexerMsg::Index(n, reply) = msg;
        let docs: Vec<Item> = (0..n).map(Item::new).collect();
        // Through the door first (refused here, inputs handed back, when the
        // pool's whole capacity is in flight), then a typed call straight to
        // the supervisor: wait up to 5 s for room.
        let answer = match pool.admit(Submit::wait(docs, Duration::from_secs(5))) {
            Ok(request) => call_t!(pool.actor(), PoolMsg::Submit, 10_000, request)?,
            Err(refused) => Err(refused.into()),
        };
        let _ = reply.send(answer.map(|vectors| vectors.len()).map_err(PoolError::from));
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = PoolConfig {
        name: "host-app".into(),
        workers: 2,
        ..PoolConfig::default()
    };
    let spec = SyntheticSpec::with_per_item(Duration::from_micros(200));
    let pool = Pool::<Synthetic>::spawn(spec, config).await?;
    pool.wait_ready(Duration::from_secs(10)).await?;

    let (indexer, indexer_handle) = Actor::spawn(None, Indexer, pool.pool_ref()).await?;
    let embedded = call_t!(indexer, IndexerMsg::Index, 10_000, 32)??;
    println!("indexer embedded {embedded} documents through the pool");

    // The method family, from `Call`.
    let one = pool.call(Item::new(7)).await?;
    println!("call(7) -> {one}");
    match pool.try_call(Item::new(8)).await {
        Ok(v) => println!("try_call(8) -> {v}"),
        Err(CallError::Refused {
            reason: Refusal::Overloaded { retry_after },
            inputs,
        }) => {
            // The item comes back: keep it and retry later.
            println!("overloaded; retry {inputs:?} after {retry_after:?}");
        }
        Err(e) => return Err(e.into()),
    }

    let health = pool.health().await?;
    println!(
        "health: {:?}, total queue depth {}",
        health.health,
        health.total_depth()
    );
    for w in &health.workers {
        println!("  slot {} ({:?}): depth {}", w.slot, w.state, w.queue_depth);
    }
    let stats = pool.stats().await?;
    println!(
        "stats: admitted {}, rejected {}, restarts {}",
        stats.admitted, stats.rejected_overloaded, stats.restarts
    );

    indexer.stop(None);
    indexer_handle.await?;
    let report = pool.shutdown(Duration::from_secs(5)).await?;
    println!(
        "shut down: drained {}, aborted {}",
        report.drained, report.aborted
    );
    Ok(())
}
