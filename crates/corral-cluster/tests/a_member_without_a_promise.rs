//! A member that never answers a describe — as a node from before the
//! describe frame does: its ractor drops a message variant it cannot
//! decode, so the router's call times out — is not left invisible. A
//! router that expects settings refuses it with the reason "no promise"
//! once twice the liveness bound has passed since it joined, keeps asking,
//! and routes to it once it answers with a promise that agrees. A router
//! that expects nothing routes to it on its pings alone.
//!
//! The old member is an actor of this file: it answers pings with a load
//! and holds every describe's reply port unanswered until told to answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_cluster::wire::{self, LoadReport};
use corral_cluster::{ClusterConfig, ClusterHandle, MemberInfo, MemberMsg, Promise, NO_PROMISE};
use corral_core::synthetic::Item;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// A member as an old node's looks from a new router: pings answered,
/// describes unanswered until `answers` is set.
struct OldMember {
    group: String,
    answers: Arc<AtomicBool>,
    promise: Promise,
}

fn load() -> LoadReport {
    LoadReport {
        in_flight: 0,
        capacity: 100,
        ready_workers: 1,
        per_request: Duration::from_millis(1),
        retry_after: Duration::from_millis(1),
        draining: false,
    }
}

impl Actor for OldMember {
    type Msg = MemberMsg;
    /// Describe ports held, never answered.
    type State = Vec<RpcReplyPort<Vec<u8>>>;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (): (),
    ) -> Result<Self::State, ActorProcessingErr> {
        ractor::pg::join(self.group.clone(), vec![myself.get_cell()]);
        Ok(Vec::new())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        held: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MemberMsg::Ping(_, port) => {
                let _ = port.send(wire::encode_load(&load()));
            }
            MemberMsg::Describe(_, port) if self.answers.load(Ordering::SeqCst) => {
                let _ = port.send(wire::encode_promise(&load(), &self.promise));
            }
            MemberMsg::Describe(_, port) => held.push(port),
            MemberMsg::Call(..) => panic!("an undescribed member was sent a request"),
        }
        Ok(())
    }
}

async fn old_member(group: &str, promise: Promise) -> (ActorRef<MemberMsg>, Arc<AtomicBool>) {
    let answers = Arc::new(AtomicBool::new(false));
    let actor = OldMember {
        group: group.into(),
        answers: answers.clone(),
        promise,
    };
    let (a, _) = Actor::spawn(None, actor, ()).await.unwrap();
    (a, answers)
}

async fn router(group: &str, expect: Option<Promise>) -> ClusterHandle<Item, u64> {
    ClusterHandle::spawn(ClusterConfig {
        ping_interval: Duration::from_millis(25),
        liveness: Duration::from_millis(100),
        expect,
        ..ClusterConfig::new(group)
    })
    .await
    .unwrap()
}

/// Polls the handle's one member until `ok` holds; panics after 10 s.
async fn until(
    h: &ClusterHandle<Item, u64>,
    what: &str,
    ok: impl Fn(&MemberInfo) -> bool,
) -> MemberInfo {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(m) = h.members().into_iter().find(|m| ok(m)) {
            return m;
        }
        assert!(Instant::now() < deadline, "never {what}: {:?}", h.members());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_member_is_refused_for_no_promise_until_it_answers() {
    let group = "t/no-promise/expects";
    let expect = Promise::new().with("model", "m");
    let (member, answers) = old_member(group, expect.clone().with("node", "old")).await;
    let started = Instant::now();
    let h = router(group, Some(expect)).await;
    let m = until(&h, "refused for no promise", |m| m.refused.is_some()).await;
    let waited = started.elapsed();
    let reason = m.refused.unwrap();
    assert!(reason.starts_with(NO_PROMISE), "{reason}");
    assert!(reason.contains("within 200ms of joining"), "{reason}");
    assert!(!m.in_routing);
    // Not before twice the liveness bound.
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    // Still asked: its answer, once it gives one, brings it in.
    answers.store(true, Ordering::SeqCst);
    let m = until(&h, "in routing once it answered", |m| m.in_routing).await;
    assert_eq!((m.refused.as_deref(), m.label().as_str()), (None, "old"));
    member.stop(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_that_expects_nothing_routes_a_silent_member_on_its_pings() {
    let group = "t/no-promise/expects-nothing";
    let (member, _answers) = old_member(group, Promise::new()).await;
    let h = router(group, None).await;
    let m = until(&h, "in routing", |m| m.in_routing).await;
    assert_eq!(m.refused, None);
    member.stop(None);
}
