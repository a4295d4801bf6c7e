//! The host-actor path — `PoolRef::admit` then `PoolMsg::Submit` sent
//! straight to the supervisor, as a ractor service would — takes the same
//! admission permit as the handle: a flood through it is refused at the
//! door (counted, inputs handed back) once the pool's door limit is in
//! flight, and nothing piles up in the supervisor's mailbox.

mod common;

use std::time::Duration;

use corral::synthetic::{Item, SyntheticSpec};
use corral::{PoolConfig, PoolMsg, Refusal, Submit};
use ractor::RpcReplyPort;

// One runtime thread: the flood below never yields, so the supervisor cannot
// drain its mailbox meanwhile — the worst case for a producer that outruns it.
#[tokio::test(flavor = "current_thread")]
async fn a_flood_of_typed_messages_stops_at_the_door() {
    common::within(Duration::from_secs(30), "test", async {
        let cfg = PoolConfig {
            queue_capacity: 4,
            max_waiting: 8,
            ..common::config(1)
        };
        let limit = cfg.door_limit();
        let pool = common::ready_pool(SyntheticSpec::default(), cfg).await;
        let host = pool.pool_ref();
        let (gate, hold) = common::hold(&pool).await;

        const FLOOD: u64 = 20_000;
        let mut replies = Vec::new();
        let mut refused = 0u64;
        for id in 0..FLOOD {
            match host.admit(Submit::wait(vec![Item::new(id)], Duration::from_secs(60))) {
                Ok(request) => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let port: RpcReplyPort<_> = tx.into();
                    host.actor()
                        .send_message(PoolMsg::Submit(request, port))
                        .unwrap();
                    replies.push((id, rx));
                }
                Err(e) => {
                    assert!(matches!(e.reason, Refusal::Overloaded { .. }), "{e:?}");
                    assert_eq!(e.inputs[0].id, id, "inputs handed back");
                    refused += 1;
                }
            }
        }
        // Exactly the door limit is in flight (the held request has one
        // permit); everything past it was refused without a message sent.
        assert_eq!(
            replies.len(),
            limit - 1,
            "admitted through a door of {limit}"
        );
        assert_eq!(refused + replies.len() as u64, FLOOD);
        let h = pool.health().await.unwrap();
        assert!(h.total_depth() <= 4 && h.waiting <= 8, "{h:?}");

        gate.open();
        hold.await.unwrap().unwrap();
        let mut ok = 0;
        for (id, rx) in replies {
            match rx.await.unwrap() {
                Ok(v) => {
                    assert_eq!(v, [id]);
                    ok += 1;
                }
                Err(e) => assert!(
                    matches!(e.refusal(), Some(Refusal::Overloaded { .. })),
                    "{e:?}"
                ),
            }
        }
        assert!(ok >= 11, "the mailbox and the line were served: {ok}");
        let stats = pool.stats().await.unwrap();
        assert!(
            stats.rejected_overloaded >= refused,
            "door refusals are counted"
        );
        pool.shutdown(Duration::from_secs(5)).await.unwrap();
    })
    .await;
}
