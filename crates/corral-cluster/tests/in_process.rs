//! The cluster layer inside one process: members in front of synthetic
//! pools, a router over them, and faults planted by hand — a member that
//! leaves mid-request, one that falls silent, garbage on the wire. The
//! network between nodes is tested in `corral-cli/tests/cluster_*`.
//!
//! ractor's process groups are global to a process, so every test uses a
//! group of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_cluster::wire::{self, Limits, WireReply};
use corral_cluster::{ClusterConfig, ClusterHandle, Member, MemberMsg};
use corral_core::synthetic::{Item, Synthetic, SyntheticSpec};
use corral_core::{
    Call, CallError, Failure, Pool, PoolConfig, PoolError, PoolHandle, Refusal, Submit,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

type Handle = ClusterHandle<Item, u64>;

fn config(workers: usize) -> PoolConfig {
    PoolConfig {
        workers,
        threads_per_worker: Some(1),
        ping_interval: Duration::from_millis(20),
        watchdog_interval: Duration::from_millis(10),
        ..PoolConfig::default()
    }
}

async fn pool(per_item: Duration, cfg: PoolConfig) -> PoolHandle<Synthetic> {
    let pool = Pool::<Synthetic>::spawn(SyntheticSpec::with_per_item(per_item), cfg)
        .await
        .expect("spawn");
    pool.wait_ready(Duration::from_secs(10))
        .await
        .expect("ready");
    pool
}

async fn member(pool: &PoolHandle<Synthetic>, group: &str) -> ActorRef<MemberMsg> {
    Member::spawn(pool.pool_ref(), group.into(), Limits::default())
        .await
        .expect("member")
}

fn cluster_config(group: &str) -> ClusterConfig {
    ClusterConfig {
        ping_interval: Duration::from_millis(50),
        liveness: Duration::from_millis(300),
        ..ClusterConfig::new(group)
    }
}

async fn handle(cfg: ClusterConfig, members: usize) -> Handle {
    let h = Handle::spawn(cfg).await.expect("router");
    h.wait_members(members, Duration::from_secs(5))
        .await
        .expect("members in routing");
    h
}

async fn within<T>(limit: Duration, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .expect("test did not finish in time")
}

async fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < until, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_cross_the_member_and_come_back_in_order() {
    within(Duration::from_secs(30), async {
        let p = pool(Duration::from_millis(1), config(2)).await;
        let _m = member(&p, "t/order").await;
        let h = handle(cluster_config("t/order"), 1).await;
        let ids: Vec<u64> = (10..20).collect();
        let out = h
            .call_batch(ids.iter().map(|&i| Item::new(i)).collect())
            .await
            .map_err(PoolError::from)
            .unwrap();
        assert_eq!(out, ids);
        assert_eq!(
            h.call(Item::new(7)).await.map_err(PoolError::from).unwrap(),
            7
        );
        let err = h.try_call_batch(vec![]).await.unwrap_err();
        assert!(
            matches!(err.refusal(), Some(Refusal::InvalidInput(_))),
            "{err:?}"
        );
        let s = h.stats();
        assert_eq!(s.answered, 2);
        let m = &h.members()[0];
        assert!(m.local && m.in_routing);
        assert_eq!(m.counts.answered, 2);
        assert_eq!(m.outstanding, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_faster_pool_gets_more_of_the_load() {
    within(Duration::from_secs(60), async {
        let fast = pool(Duration::from_millis(2), config(1)).await;
        let slow = pool(Duration::from_millis(20), config(1)).await;
        let fm = member(&fast, "t/split").await;
        let _sm = member(&slow, "t/split").await;
        let h = handle(cluster_config("t/split"), 2).await;
        // Closed loop, 8 callers × 40 requests.
        let mut tasks = vec![];
        for c in 0..8u64 {
            let h = h.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..40 {
                    assert_eq!(
                        h.call(Item::new(c * 1000 + i))
                            .await
                            .map_err(PoolError::from)
                            .unwrap(),
                        c * 1000 + i
                    );
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let members = h.members();
        let count = |id| {
            members
                .iter()
                .find(|m| m.id == id)
                .map(|m| m.counts.answered)
                .unwrap()
        };
        let (f, s) = (
            count(fm.get_id()),
            members.iter().map(|m| m.counts.answered).sum::<u64>() - count(fm.get_id()),
        );
        assert_eq!(f + s, 320);
        assert!(
            f > 3 * s,
            "the 10× faster pool should take far more: fast {f}, slow {s}"
        );
        assert!(
            s > 0,
            "the slow pool is still used when the fast one is deep"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_members_refuse_at_once_and_waiters_wait_for_room() {
    within(Duration::from_secs(30), async {
        // Capacity 1: one worker, one single-request slot, no waiting line.
        let cfg = PoolConfig {
            queue_capacity: 1,
            batch_queue_capacity: 1,
            max_batch_requests: 1,
            max_waiting: 0,
            ..config(1)
        };
        let p = pool(Duration::from_millis(300), cfg).await;
        let _m = member(&p, "t/full").await;
        // Liveness is not what this test is about: a generous bound keeps
        // a slow ping on a busy machine from taking the member out.
        let cfg = ClusterConfig {
            liveness: Duration::from_secs(10),
            ..cluster_config("t/full")
        };
        let h = handle(cfg, 1).await;
        let first = {
            let h = h.clone();
            tokio::spawn(async move { h.call(Item::new(1)).await.map_err(PoolError::from) })
        };
        eventually(Duration::from_secs(5), "first request in", || {
            p.load().in_flight == 1
        })
        .await;
        let t0 = Instant::now();
        let refused = h.try_call(Item::new(2)).await.unwrap_err();
        assert!(t0.elapsed() < Duration::from_millis(100), "refused at once");
        assert!(
            matches!(refused.refusal(), Some(Refusal::Overloaded { .. })),
            "{refused:?}"
        );
        assert_eq!(
            refused.into_inputs().map(|i| i.id),
            Some(2),
            "the input comes back"
        );
        // A caller that waits is served once the first is done.
        let waited = h
            .call_timeout(Item::new(3), Duration::from_secs(5))
            .await
            .map_err(PoolError::from);
        assert_eq!(waited, Ok(3));
        assert_eq!(first.await.unwrap(), Ok(1));
        // One that cannot wait long enough times out. (The pool counts a
        // request out only after answering it: wait for that, so that
        // "one in flight" below is the next request, not the last.)
        eventually(Duration::from_secs(5), "pool empty", || {
            p.load().in_flight == 0
        })
        .await;
        let first = {
            let h = h.clone();
            tokio::spawn(async move { h.call(Item::new(4)).await.map_err(PoolError::from) })
        };
        eventually(Duration::from_secs(5), "request in", || {
            p.load().in_flight == 1
        })
        .await;
        let r = h
            .call_timeout(Item::new(5), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(r.refusal(), Some(&Refusal::TimedOut), "{r:?}");
        assert_eq!(
            r.into_inputs().map(|i| i.id),
            Some(5),
            "nothing ran: it comes back"
        );
        assert_eq!(first.await.unwrap(), Ok(4));
        let s = h.stats();
        assert_eq!((s.rejected_overloaded, s.timed_out, s.answered), (1, 1, 3));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_member_leaves_is_retried_once_elsewhere() {
    within(Duration::from_secs(30), async {
        let stuck = pool(Duration::from_secs(20), config(1)).await;
        let sm = member(&stuck, "t/failover").await;
        let h = handle(cluster_config("t/failover"), 1).await;
        let call = {
            let h = h.clone();
            tokio::spawn(async move { h.call(Item::new(42)).await.map_err(PoolError::from) })
        };
        eventually(Duration::from_secs(5), "request at the stuck pool", || {
            stuck.load().in_flight == 1
        })
        .await;
        let good = pool(Duration::from_millis(1), config(1)).await;
        let _gm = member(&good, "t/failover").await;
        h.wait_members(2, Duration::from_secs(5)).await.unwrap();
        // The stuck pool's member goes away with the request in flight.
        sm.stop(None);
        let answer = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .expect("failed over promptly")
            .unwrap();
        assert_eq!(answer, Ok(42));
        let s = h.stats();
        assert_eq!((s.failed_over, s.answered), (1, 1));
        stuck.shutdown(Duration::from_millis(10)).await.ok();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_again_after_its_retries_is_worker_lost() {
    within(Duration::from_secs(30), async {
        let a = pool(Duration::from_secs(20), config(1)).await;
        let am = member(&a, "t/lost").await;
        let cfg = ClusterConfig {
            failover_retries: 0,
            ..cluster_config("t/lost")
        };
        let h = handle(cfg, 1).await;
        let call = {
            let h = h.clone();
            tokio::spawn(async move { h.call(Item::new(1)).await.map_err(PoolError::from) })
        };
        eventually(Duration::from_secs(5), "request in", || {
            a.load().in_flight == 1
        })
        .await;
        am.stop(None);
        assert_eq!(call.await.unwrap(), Err(PoolError::WorkerLost));
        assert_eq!(h.stats().worker_lost, 1);
        a.shutdown(Duration::from_millis(10)).await.ok();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_with_no_other_member_is_worker_lost_at_once_not_a_timeout() {
    within(Duration::from_secs(30), async {
        let a = pool(Duration::from_secs(20), config(1)).await;
        let am = member(&a, "t/lost-alone").await;
        // The default one retry, and an admission wait far longer than the
        // answer may take.
        let cfg = ClusterConfig {
            admission_timeout: Duration::from_secs(120),
            ..cluster_config("t/lost-alone")
        };
        let h = handle(cfg, 1).await;
        let call = {
            let h = h.clone();
            tokio::spawn(async move { h.call(Item::new(1)).await.map_err(PoolError::from) })
        };
        eventually(Duration::from_secs(5), "request in", || {
            a.load().in_flight == 1
        })
        .await;
        am.stop(None);
        let answer = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .expect("answered at once, not after the admission wait")
            .unwrap();
        assert_eq!(answer, Err(PoolError::WorkerLost));
        let s = h.stats();
        assert_eq!(
            (s.worker_lost, s.timed_out, s.failed_over),
            (1, 0, 0),
            "{s:?}"
        );
        a.shutdown(Duration::from_millis(10)).await.ok();
    })
    .await;
}

/// A member that answers pings until told to fall silent, then holds every
/// message without answering — a frozen node, as a router sees one.
struct Freezable;

struct FreezableState {
    frozen: Arc<AtomicBool>,
    held: Vec<RpcReplyPort<Vec<u8>>>,
    pool: corral_core::PoolRef<Synthetic>,
}

impl Actor for Freezable {
    type Msg = MemberMsg;
    type State = FreezableState;
    type Arguments = (Arc<AtomicBool>, corral_core::PoolRef<Synthetic>, String);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (frozen, pool, group): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        ractor::pg::join(group, vec![myself.get_cell()]);
        Ok(FreezableState {
            frozen,
            held: vec![],
            pool,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (port, describe) = match msg {
            MemberMsg::Ping(_, port) | MemberMsg::Call(_, port) => (port, false),
            MemberMsg::Describe(_, port) => (port, true),
        };
        if state.frozen.load(Ordering::SeqCst) {
            state.held.push(port);
        } else {
            let load = state.pool.load();
            let report = wire::LoadReport {
                in_flight: 0,
                capacity: load.capacity as u32,
                ready_workers: 1,
                per_request: Duration::from_micros(1),
                retry_after: Duration::from_millis(1),
                draining: false,
            };
            let _ = port.send(if describe {
                wire::encode_promise(&report, &corral_cluster::Promise::new())
            } else {
                wire::encode_load(&report)
            });
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_member_leaves_routing_within_the_bound_and_its_requests_move() {
    within(Duration::from_secs(30), async {
        let p = pool(Duration::from_millis(1), config(1)).await;
        let frozen = Arc::new(AtomicBool::new(false));
        let (silent, _) = Actor::spawn(
            None,
            Freezable,
            (frozen.clone(), p.pool_ref(), "t/silent".to_string()),
        )
        .await
        .unwrap();
        let cfg = cluster_config("t/silent");
        let bound = cfg.liveness + cfg.ping_interval;
        let h = handle(cfg, 1).await;
        // The freezable member looks idle and very fast, so it gets the
        // request; then it falls silent with the request held.
        frozen.store(true, Ordering::SeqCst);
        let t0 = Instant::now();
        let call = {
            let h = h.clone();
            tokio::spawn(async move { h.call(Item::new(9)).await.map_err(PoolError::from) })
        };
        eventually(
            Duration::from_secs(5),
            "request at the silent member",
            || h.members().iter().any(|m| m.outstanding == 1),
        )
        .await;
        let _real = member(&p, "t/silent").await;
        let answer = call.await.unwrap();
        let took = t0.elapsed();
        assert_eq!(answer, Ok(9), "moved to the live member");
        assert!(
            took <= bound + Duration::from_millis(400),
            "out of routing in {took:?}; the stated bound is {bound:?}"
        );
        let m = h.members();
        let s = m.iter().find(|m| m.id == silent.get_id()).unwrap();
        assert!(!s.in_routing);
        assert_eq!(s.counts.lost, 1);
        // It speaks again: back in routing.
        frozen.store(false, Ordering::SeqCst);
        eventually(Duration::from_secs(5), "back in routing", || {
            h.members()
                .iter()
                .any(|m| m.id == silent.get_id() && m.in_routing)
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_wire_is_an_error_reply_not_a_crash() {
    within(Duration::from_secs(30), async {
        let p = pool(Duration::from_millis(1), config(1)).await;
        let m = member(&p, "t/garbage").await;
        for bytes in [
            vec![],
            vec![0xff; 3],
            vec![wire::VERSION, 1, 0xff, 0xff, 0xff, 0xff, 0xff],
            wire::encode_ping(),
        ] {
            let reply = m
                .call(
                    |port| MemberMsg::Call(bytes.clone(), port),
                    Some(Duration::from_secs(5)),
                )
                .await
                .unwrap();
            let ractor::rpc::CallResult::Success(reply) = reply else {
                panic!("no answer for {bytes:?}")
            };
            let (_, reply) = wire::decode_reply::<u64>(&reply, &Limits::default()).unwrap();
            match reply {
                WireReply::Failed {
                    error: PoolError::InvalidInput(msg),
                    refused: true,
                } => assert!(msg.contains("undecodable"), "{msg}"),
                other => panic!("{other:?}"),
            }
        }
        // Still serving.
        let ok = wire::encode_request(&Submit::reject(vec![Item::new(5)]));
        let reply = m
            .call(
                |port| MemberMsg::Call(ok, port),
                Some(Duration::from_secs(5)),
            )
            .await
            .unwrap();
        let ractor::rpc::CallResult::Success(reply) = reply else {
            panic!()
        };
        let (_, reply) = wire::decode_reply::<u64>(&reply, &Limits::default()).unwrap();
        assert_eq!(reply, WireReply::Done(vec![5]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_to_end_deadline_covers_the_remote_call() {
    within(Duration::from_secs(30), async {
        let p = pool(Duration::from_secs(3), config(1)).await;
        let _m = member(&p, "t/deadline").await;
        // Liveness is not what this test is about (see above).
        let cfg = ClusterConfig {
            liveness: Duration::from_secs(10),
            ..cluster_config("t/deadline")
        };
        let h = handle(cfg, 1).await;
        let t0 = Instant::now();
        let r = h
            .submit(
                Submit::wait(vec![Item::new(1)], Duration::from_secs(10))
                    .within(Duration::from_millis(200)),
            )
            .await;
        // It was running on the member: it fails, nothing comes back.
        assert!(
            matches!(r, Err(CallError::Failed(Failure::DeadlinePassed))),
            "{r:?}"
        );
        assert!(
            t0.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t0.elapsed()
        );
        // Huge durations are clamped, never an overflow.
        let r = h
            .submit(Submit::reject(vec![Item::new(2)]).within(Duration::MAX))
            .await;
        assert!(
            r.is_ok() || matches!(r, Err(ref e) if matches!(e.refusal(), Some(Refusal::Overloaded { .. }))),
            "{r:?}"
        );
        p.shutdown(Duration::from_millis(10)).await.ok();
    })
    .await;
}
