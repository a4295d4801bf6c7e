//! A worker: a ractor actor (the control plane) plus its compute thread (the
//! data plane), sharing a [`WorkerShared`].
//!
//! The actor answers pings — a worker actor that stops answering is deemed
//! deadlocked — and owns the compute thread's lifetime. Requests do not pass
//! through the actor's unbounded ractor mailbox: the supervisor puts them in
//! the worker's bounded mailbox directly (see the `mailbox` module).

pub(crate) mod compute;

use std::marker::PhantomData;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::backend::Backend;
use crate::mailbox::WorkerShared;
use crate::msg::{InternalMsg, PoolMsg};

use compute::Compute;

/// Messages to a worker actor.
pub(crate) enum WorkerMsg {
    /// Answer with a `Pong` to the supervisor.
    Ping(u64),
    /// Fault injection: block this handler forever (a deadlocked actor).
    Freeze,
}

#[cfg(feature = "cluster")]
impl ractor::Message for WorkerMsg {}

pub(crate) struct WorkerActor<B: Backend>(PhantomData<fn() -> B>);

impl<B: Backend> WorkerActor<B> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

pub(crate) struct WorkerArgs<B: Backend> {
    pub(crate) compute: Compute<B>,
    pub(crate) thread_name: String,
}

pub(crate) struct WorkerState<B: Backend> {
    shared: Arc<WorkerShared<B>>,
    supervisor: ActorRef<PoolMsg<B>>,
}

impl<B: Backend> Actor for WorkerActor<B> {
    type Msg = WorkerMsg;
    type State = WorkerState<B>;
    type Arguments = WorkerArgs<B>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let shared = args.compute.shared.clone();
        let supervisor = args.compute.supervisor.clone();
        let compute = args.compute;
        // Never joined: a thread stuck in the backend is abandoned, not
        // awaited (see the supervisor).
        std::thread::Builder::new()
            .name(args.thread_name)
            .spawn(move || compute.run())
            .map_err(|e| format!("could not start compute thread: {e}"))?;
        Ok(WorkerState { shared, supervisor })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WorkerMsg::Ping(seq) => {
                let _ = state.supervisor.send_message(
                    InternalMsg::Pong {
                        worker: state.shared.id,
                        seq,
                    }
                    .into(),
                );
            }
            WorkerMsg::Freeze => std::future::pending::<()>().await,
        }
        Ok(())
    }
}
