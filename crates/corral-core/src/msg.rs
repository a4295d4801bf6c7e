//! The typed messages a pool's supervisor understands, [`PoolMsg`]. Host
//! actors send these with ractor's `call!`/`call_t!`; [`crate::PoolHandle`]
//! is a thin typed wrapper over the same messages.
//!
//! ```ignore
//! let reply = ractor::call!(pool_actor, |port| PoolMsg::Submit(Submit::wait(vec![text], secs(5)), port))?;
//! ```

use std::time::Duration;

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::job::{Job, Reply};
use crate::stats::{HealthReport, PoolStats};

/// What a caller wants done when every worker mailbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Admission {
    /// Refuse at once with `PoolError::Overloaded`.
    Reject,
    /// Wait in the supervisor's bounded waiting line for up to this long,
    /// then `PoolError::Timeout`. (A duration, not an instant, so it can
    /// cross the wire.)
    Wait(Duration),
}

/// One request: its inputs and its admission choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submit<I> {
    /// The inputs, answered in the same order. One input counts against a
    /// worker's single-request bound, several against its batch bound.
    pub inputs: Vec<I>,
    /// What to do when every mailbox is full.
    pub admission: Admission,
}

impl<I> Submit<I> {
    /// A request that is refused at once when the pool is full.
    pub fn reject(inputs: Vec<I>) -> Self {
        Self {
            inputs,
            admission: Admission::Reject,
        }
    }

    /// A request that waits for room for up to `timeout`.
    pub fn wait(inputs: Vec<I>, timeout: Duration) -> Self {
        Self {
            inputs,
            admission: Admission::Wait(timeout),
        }
    }
}

/// What shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ShutdownReport {
    /// Admitted requests that were still queued or running at the deadline
    /// and were answered `ShuttingDown`.
    pub aborted: usize,
    /// Callers in the waiting line answered `ShuttingDown`.
    pub refused_waiting: usize,
    /// Whether all admitted work finished before the deadline.
    pub drained: bool,
}

/// Messages to a pool's supervisor actor.
pub enum PoolMsg<B: Backend> {
    /// Run a request; the reply carries one output per input, in order.
    Submit(Submit<B::Input>, RpcReplyPort<Reply<B::Output>>),
    /// Report health, including each worker's real queue depth.
    Health(RpcReplyPort<HealthReport>),
    /// Report counters.
    Stats(RpcReplyPort<PoolStats>),
    /// Stop admitting (`ShuttingDown`), finish what was admitted, stop the
    /// workers. After the given deadline whatever is left is answered
    /// `ShuttingDown`. The reply comes when the supervisor is about to stop.
    Shutdown(Duration, RpcReplyPort<ShutdownReport>),
    /// Messages the pool sends itself; cannot be built outside this crate.
    #[doc(hidden)]
    Internal(Internal<B>),
}

#[cfg(feature = "cluster")]
impl<B: Backend> ractor::Message for PoolMsg<B> {}

/// The pool's own messages (opaque).
#[doc(hidden)]
pub struct Internal<B: Backend>(pub(crate) InternalMsg<B>);

pub(crate) enum InternalMsg<B: Backend> {
    /// Watchdog tick: heartbeats, pings, waiting deadlines, drain progress.
    Tick,
    /// A worker's compute thread loaded its model.
    Loaded { worker: u64 },
    /// A worker's model failed to load (error or panic).
    LoadFailed { worker: u64, error: String },
    /// The backend panicked; these jobs were in the batch.
    Crashed {
        worker: u64,
        jobs: Vec<Job<B>>,
        reason: String,
    },
    /// A worker actor answered ping `seq`.
    Pong { worker: u64, seq: u64 },
    /// Slots freed on some worker while callers were waiting.
    Freed,
    /// Fault injection: make this slot's worker actor block in a handler.
    Freeze { slot: usize },
}

impl<B: Backend> From<InternalMsg<B>> for PoolMsg<B> {
    fn from(m: InternalMsg<B>) -> Self {
        PoolMsg::Internal(Internal(m))
    }
}
