//! The supervisor actor: owns the worker set, admits requests, routes them,
//! runs the watchdog, replaces failed workers, re-routes what they held, and
//! drains on shutdown.
//!
//! Its handlers never run model code, never allocate in proportion to load
//! beyond the bounded waiting line, and never await a worker: its own ractor
//! mailbox (the one queue Corral cannot bound) stays short because every
//! message is cheap to handle, refusal is immediate, and requests reach it
//! only through the door's permits.
//!
//! Where to look:
//! - `state`: the glue — the worker lifecycle (start, retirement and
//!   re-routing, restarts, the tick, reports, shutdown); its child
//!   `state::admission` carries out the request path (a request arrives,
//!   the line is pumped and expired, a retired worker's requests are
//!   re-routed);
//! - `slots`: the worker slots and their lifecycle, one type that owns them
//!   (a slot's counts survive its incarnations);
//! - `snapshot`: every figure the pool reports (`health()`, `stats()`, the
//!   `metrics` levels, `retry_after`, the time per request behind
//!   `PoolRef::load`), computed from one pass over the slots;
//! - `admission`: admit, wait or refuse a request that arrives, a pure
//!   function of the clock, the request, the workers' loads and the line
//!   (why was this request refused?);
//! - `watchdog`: stuck / deadlocked / hung-load detection, a pure function
//!   of a worker's probe and the clock (why was this worker restarted?);
//! - `restart`: restart intensity and backoff with jitter;
//! - `waiting`: the bounded waiting line;
//! - `drain`: shutdown's deadline and report.
//!
//! If the supervisor itself dies (a panic in a handler, which ractor stops
//! without calling `post_stop`), its state is dropped: each worker's `Drop`
//! closes its mailbox and answers what it held, and each waiting job answers
//! as it drops — no request is left unanswered, no compute thread parked.

mod admission;
mod drain;
mod restart;
mod slots;
mod snapshot;
mod state;
mod waiting;
mod watchdog;

use std::marker::PhantomData;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::backend::Backend;
use crate::msg::{InternalMsg, PoolMsg};

pub(crate) use state::SupervisorArgs;
use state::SupervisorState;

pub(crate) struct Supervisor<B: Backend>(PhantomData<fn() -> B>);

impl<B: Backend> Supervisor<B> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

impl<B: Backend> Actor for Supervisor<B> {
    type Msg = PoolMsg<B>;
    type State = SupervisorState<B>;
    type Arguments = SupervisorArgs<B>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = SupervisorState::new(myself.clone(), args);
        state.start_all().await;
        myself.send_interval(state.config().watchdog_interval, || {
            InternalMsg::Tick.into()
        });
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PoolMsg::Submit(request, reply) => state.submit(request, reply),
            PoolMsg::Health(reply) => {
                let _ = reply.send(state.health());
            }
            PoolMsg::Stats(reply) => {
                let _ = reply.send(state.stats());
            }
            PoolMsg::Shutdown(deadline, reply) => state.begin_shutdown(deadline, reply),
            PoolMsg::Internal(internal) => state.internal(internal.0).await,
        }
        if state.finished() {
            myself.stop(None);
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                state
                    .worker_actor_gone(cell.get_id(), reason.unwrap_or_default())
                    .await;
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                state
                    .worker_actor_gone(cell.get_id(), err.to_string())
                    .await;
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.abort_everything();
        Ok(())
    }
}
