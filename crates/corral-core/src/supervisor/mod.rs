//! The supervisor actor: owns the worker set, admits requests, routes them,
//! runs the watchdog, replaces failed workers, re-routes what they held, and
//! drains on shutdown.
//!
//! Its handlers never run model code, never allocate in proportion to load
//! beyond the bounded waiting line, and never await a worker: its own ractor
//! mailbox (the one queue Corral cannot bound) stays short because every
//! message is cheap to handle and refusal is immediate.
//!
//! Failure handling, in one place ([`SupervisorState::retire`]):
//! - *stuck*: a heartbeat shows a batch running past
//!   `stuck_base + stuck_per_token × cost`;
//! - *deadlocked*: the worker actor left a ping unanswered past
//!   `ping_timeout`;
//! - *crashed*: the backend panicked (the compute thread reports it);
//! - *load failed / load hung*; *actor died* (a supervision event).
//!
//! A retired worker's mailbox is closed and its queued requests re-routed at
//! once; the batch it was running is taken back and retried elsewhere up to
//! `max_retries`, then answered `WorkerLost`. The compute thread is never
//! joined: if it is still inside the backend it is abandoned (counted,
//! capped) and exits on its own if it ever returns. Restarts obey an
//! Erlang-style intensity limit with exponential backoff and jitter.

mod state;

use std::marker::PhantomData;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::backend::Backend;
use crate::config::PoolConfig;
use crate::msg::{InternalMsg, PoolMsg};
use crate::router::Router;
use crate::PoolShared;

pub(crate) use state::SupervisorState;

pub(crate) struct Supervisor<B: Backend>(PhantomData<fn() -> B>);

impl<B: Backend> Supervisor<B> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

pub(crate) struct SupervisorArgs<B: Backend> {
    pub(crate) config: Arc<PoolConfig>,
    pub(crate) spec: Arc<B::Spec>,
    pub(crate) router: Box<dyn Router>,
    pub(crate) shared: Arc<PoolShared>,
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
            PoolMsg::Submit(submit, reply) => state.submit(submit, reply),
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
