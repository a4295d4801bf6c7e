//! [`Member`]: the actor that puts one local pool in front of the cluster.
//!
//! A member joins the process group named after its pool's capability and
//! model (see [`group_name`]); ractor_cluster mirrors the group on every
//! connected node, which is how routers anywhere find it. It speaks only
//! bytes ([`MemberMsg`]): a request is decoded with the wire module's
//! checked decoder, passed through the pool's own door
//! ([`PoolRef::admit`] — refused at once when the pool is full, so the
//! member never queues anything of its own), and answered with the outputs
//! or the [`PoolError`], with the pool's [`LoadReport`] piggybacked on every
//! reply. A ping is answered with the load alone; a describe with the load
//! and the member's [`Promise`] (what it says about its pool's settings,
//! which routers that expect settings check before routing to it).
//!
//! A reply over the wire limit ([`Limits::max_frame`]) is never sent: the
//! caller gets `InvalidInput` in its place, since the router's node would
//! close the whole session over it.
//!
//! The member's handler never awaits the pool: an admitted request is
//! handed to a task that waits for the answer, and such tasks are bounded
//! by the pool's door (one per admission permit).

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use tokio::sync::oneshot;

use corral_core::{Backend, CallError, Failure, PoolError, PoolLoad, PoolMsg, PoolRef};

use crate::promise::Promise;
use crate::wire::{self, Limits, LoadReport, Wire, WireReply};

/// The process group a pool joins: `corral/<capability>/<model>`, for
/// example `corral/embed/all-MiniLM-L6-v2`. Routers look pools up by it.
pub fn group_name(capability: &str, model: &str) -> String {
    format!("corral/{capability}/{model}")
}

/// What a member understands. Both carry wire-encoded bytes (see
/// [`crate::wire`]); ractor_cluster moves them between nodes as they are.
#[derive(RactorClusterMessage)]
pub enum MemberMsg {
    /// A wire request; the answer is a wire reply (outputs or error, with
    /// the pool's load).
    #[rpc]
    Call(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// A wire ping; the answer is the pool's load alone.
    #[rpc]
    Ping(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// A wire describe; the answer is the pool's load and the member's
    /// promise.
    #[rpc]
    Describe(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

/// The pool's load in its wire form.
pub(crate) fn report(load: &PoolLoad) -> LoadReport {
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    LoadReport {
        in_flight: n(load.in_flight),
        capacity: n(load.capacity),
        ready_workers: n(load.ready_workers),
        per_request: load.per_request,
        retry_after: load.retry_after,
        draining: load.draining,
    }
}

/// The member actor for a pool of backend `B`.
pub struct Member<B: Backend> {
    _backend: std::marker::PhantomData<fn() -> B>,
}

/// A member's state: the pool it fronts, the decoder's limits, its group
/// and its promise.
pub struct MemberState<B: Backend> {
    pool: PoolRef<B>,
    limits: Limits,
    group: String,
    promise: Promise,
}

impl<B> Member<B>
where
    B: Backend,
    B::Input: Wire,
    B::Output: Wire,
{
    /// Spawns a member for `pool` and joins it to `group` (see
    /// [`group_name`]), promising nothing (routers that expect settings
    /// keep it out of routing). It stops when the returned actor is
    /// stopped, and leaves the group as it stops.
    ///
    /// # Errors
    /// ractor's spawn error.
    pub async fn spawn(
        pool: PoolRef<B>,
        group: String,
        limits: Limits,
    ) -> Result<ActorRef<MemberMsg>, ractor::SpawnErr> {
        Self::spawn_promising(pool, group, limits, Promise::new()).await
    }

    /// As [`Self::spawn`], the member answering describes with `promise`:
    /// the settings its pool runs with (see [`Promise`]).
    ///
    /// # Errors
    /// ractor's spawn error.
    pub async fn spawn_promising(
        pool: PoolRef<B>,
        group: String,
        limits: Limits,
        promise: Promise,
    ) -> Result<ActorRef<MemberMsg>, ractor::SpawnErr> {
        let (actor, _join) = Actor::spawn(
            None,
            Member::<B> {
                _backend: std::marker::PhantomData,
            },
            MemberState {
                pool,
                limits,
                group,
                promise,
            },
        )
        .await?;
        Ok(actor)
    }
}

fn send_reply(port: RpcReplyPort<Vec<u8>>, bytes: Vec<u8>) {
    // The caller may have given up; nothing to do then.
    let _ = port.send(bytes);
}

impl<B> Actor for Member<B>
where
    B: Backend,
    B::Input: Wire,
    B::Output: Wire,
{
    type Msg = MemberMsg;
    type State = MemberState<B>;
    type Arguments = MemberState<B>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        ractor::pg::join(state.group.clone(), vec![myself.get_cell()]);
        Ok(state)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        ractor::pg::leave(state.group.clone(), vec![myself.get_cell()]);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MemberMsg::Ping(_, port) => {
                send_reply(port, wire::encode_load(&report(&state.pool.load())));
            }
            MemberMsg::Describe(_, port) => {
                send_reply(
                    port,
                    wire::encode_promise(&report(&state.pool.load()), &state.promise),
                );
            }
            MemberMsg::Call(bytes, port) => {
                let submit = match wire::decode_request::<B::Input>(&bytes, &state.limits) {
                    Ok(s) => s,
                    Err(e) => {
                        let error = PoolError::InvalidInput(format!("undecodable request: {e}"));
                        send_reply(port, refusal::<B::Output>(&state.pool, error));
                        return Ok(());
                    }
                };
                let admitted = match state.pool.admit(submit) {
                    Ok(a) => a,
                    Err(e) => {
                        send_reply(port, refusal::<B::Output>(&state.pool, e.into()));
                        return Ok(());
                    }
                };
                let (tx, rx) = oneshot::channel();
                if state
                    .pool
                    .actor()
                    .send_message(PoolMsg::Submit(admitted, tx.into()))
                    .is_err()
                {
                    send_reply(
                        port,
                        refusal::<B::Output>(&state.pool, PoolError::ShuttingDown),
                    );
                    return Ok(());
                }
                let pool = state.pool.clone();
                let max_frame = state.limits.max_frame;
                tokio::spawn(async move {
                    // Every job answers as it drops; a port dropped
                    // unanswered means the supervisor died mid-message.
                    let reply = rx
                        .await
                        .unwrap_or(Err(CallError::Failed(Failure::WorkerLost)));
                    let load = report(&pool.load());
                    let reply = match reply {
                        Ok(outputs) => WireReply::Done(outputs),
                        Err(e) => WireReply::Failed {
                            refused: e.is_refused(),
                            error: e.into(),
                        },
                    };
                    send_reply(port, within_limit(&load, &reply, max_frame));
                });
            }
        }
        Ok(())
    }
}

/// The reply frame, or — when it would be over `max_frame`, which the
/// router's node would answer by closing the session — an `InvalidInput`
/// error in its place.
fn within_limit<O: Wire>(load: &LoadReport, reply: &WireReply<O>, max_frame: usize) -> Vec<u8> {
    let bytes = wire::encode_reply(load, reply);
    if bytes.len() <= max_frame {
        return bytes;
    }
    let error = PoolError::InvalidInput(format!(
        "the reply is {} bytes on the wire, over the limit of {max_frame}: \
         send fewer inputs per request",
        bytes.len()
    ));
    wire::encode_reply::<O>(
        load,
        &WireReply::Failed {
            error,
            refused: false,
        },
    )
}

/// A reply for a request that never ran.
fn refusal<O: Wire>(pool: &PoolRef<impl Backend>, error: PoolError) -> Vec<u8> {
    let reply = WireReply::<O>::Failed {
        error,
        refused: true,
    };
    wire::encode_reply(&report(&pool.load()), &reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_over_the_limit_becomes_an_invalid_input_error() {
        let load = LoadReport::default();
        let reply = WireReply::Done(vec!["x".repeat(1000)]);
        let fits = within_limit(&load, &reply, 2000);
        assert_eq!(
            wire::decode_reply::<String>(&fits, &Limits::default()),
            Ok((load, reply.clone()))
        );
        let over = within_limit(&load, &reply, 999);
        assert!(over.len() <= 999);
        match wire::decode_reply::<String>(&over, &Limits::default()) {
            Ok((
                _,
                WireReply::Failed {
                    error: PoolError::InvalidInput(m),
                    refused: false,
                },
            )) => {
                assert!(m.contains("over the limit of 999"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }
}
