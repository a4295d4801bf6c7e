//! The typed messages a pool's supervisor understands, [`PoolMsg`], and the
//! request a caller builds, [`Submit`].
//!
//! A request enters a pool only as an [`Admitted`] request, which carries a
//! door permit: build one with [`crate::PoolRef::admit`] (or let
//! [`crate::Call::submit`] on the handle or the `PoolRef` do it). So every way in — the
//! handle, a host actor's `call_t!` — is bounded by the same door, and a
//! flood never piles up in the supervisor's unbounded ractor mailbox.
//!
//! ```ignore
//! let request = pool.admit(Submit::wait(texts, secs(5)))?;   // refused here when full
//! let reply = ractor::call_t!(pool.actor(), PoolMsg::Submit, 10_000, request)?;
//! ```

use std::time::Duration;

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::door::Permit;
use crate::job::Reply;
use crate::stats::{HealthReport, PoolStats};

/// What a caller wants done when every worker mailbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Admission {
    /// Refuse at once with [`crate::Refusal::Overloaded`].
    Reject,
    /// Wait in the supervisor's bounded waiting line for up to this long for
    /// room in a mailbox (the admission timeout: it does not cover the
    /// compute), then [`crate::Refusal::TimedOut`]. A duration, not an
    /// instant, so it can cross the wire; any length is accepted
    /// (`Duration::MAX` waits as long as the pool lives).
    Wait(Duration),
    /// Wait as [`Admission::Wait`] does, for as long as the pool's own
    /// admission timeout (`PoolConfig::admission_timeout` for a local pool,
    /// `ClusterConfig::admission_timeout` for a cluster handle). Each pool
    /// resolves it ([`Admission::resolve`]) as it admits the request.
    Default,
}

impl Admission {
    /// This choice with [`Admission::Default`] replaced by a wait of
    /// `admission_timeout`.
    #[must_use]
    pub fn resolve(self, admission_timeout: Duration) -> Self {
        match self {
            Admission::Default => Admission::Wait(admission_timeout),
            other => other,
        }
    }
}

/// One request: its inputs, its admission choice and, optionally, an
/// end-to-end deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submit<I> {
    /// The inputs, answered in the same order. One input counts against a
    /// worker's single-request bound, several against its batch bound.
    pub inputs: Vec<I>,
    /// What to do when every mailbox is full.
    pub admission: Admission,
    /// A deadline for the whole request — wait for room, queue and compute —
    /// counted from when the supervisor receives it, as gRPC deadlines are.
    /// A request whose deadline passes before it starts is skipped; one that
    /// is running is answered `DeadlinePassed` at its deadline and its result
    /// discarded. `None`: no deadline past the admission timeout.
    pub deadline: Option<Duration>,
}

impl<I> Submit<I> {
    /// A request that waits for room up to the pool's own admission timeout
    /// ([`Admission::Default`]).
    pub fn new(inputs: Vec<I>) -> Self {
        Self {
            inputs,
            admission: Admission::Default,
            deadline: None,
        }
    }

    /// A request that is refused at once when the pool is full.
    pub fn reject(inputs: Vec<I>) -> Self {
        Self {
            inputs,
            admission: Admission::Reject,
            deadline: None,
        }
    }

    /// A request that waits for room for up to `timeout`.
    pub fn wait(inputs: Vec<I>, timeout: Duration) -> Self {
        Self {
            inputs,
            admission: Admission::Wait(timeout),
            deadline: None,
        }
    }

    /// Sets an end-to-end deadline (see [`Submit::deadline`]).
    #[must_use]
    pub fn within(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

/// A [`Submit`] that has passed the pool's door: it holds one of the pool's
/// admission permits until it is answered. Built by
/// [`crate::PoolRef::admit`]; the only way to put a request in a
/// [`PoolMsg::Submit`].
pub struct Admitted<I> {
    pub(crate) submit: Submit<I>,
    pub(crate) permit: Permit,
}

impl<I> std::fmt::Debug for Admitted<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admitted")
            .field("inputs", &self.submit.inputs.len())
            .field("admission", &self.submit.admission)
            .field("deadline", &self.submit.deadline)
            .finish()
    }
}

/// What shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ShutdownReport {
    /// Admitted requests that were still queued or running at the deadline
    /// and were answered `ShuttingDown`.
    pub aborted: usize,
    /// Callers in the waiting line answered `ShuttingDown` (no worker had
    /// room for them; those for whom one had were admitted and drained).
    pub refused_waiting: usize,
    /// Whether all admitted work finished before the deadline.
    pub drained: bool,
}

/// Messages to a pool's supervisor actor.
pub enum PoolMsg<B: Backend> {
    /// Run a request; the reply carries one output per input, in order.
    Submit(Admitted<B::Input>, RpcReplyPort<Reply<B::Input, B::Output>>),
    /// Report health, including each worker's real queue depth.
    Health(RpcReplyPort<HealthReport>),
    /// Report counters.
    Stats(RpcReplyPort<PoolStats>),
    /// Stop admitting (`ShuttingDown`), finish what was admitted, stop the
    /// workers. After the given deadline (any length; clamped, never an
    /// overflow) whatever is left is answered `ShuttingDown`. The reply comes
    /// when the supervisor is about to stop.
    Shutdown(Duration, RpcReplyPort<ShutdownReport>),
    /// Messages the pool sends itself; cannot be built outside this crate.
    #[doc(hidden)]
    Internal(Internal),
}

#[cfg(feature = "cluster")]
impl<B: Backend> ractor::Message for PoolMsg<B> {}

/// The pool's own messages (opaque).
#[doc(hidden)]
pub struct Internal(pub(crate) InternalMsg);

/// What the supervisor tells itself, and what its workers tell it.
pub(crate) enum InternalMsg {
    /// Watchdog tick: heartbeats, pings, deadlines, drain progress.
    Tick,
    /// A worker's compute thread loaded its model.
    Loaded { worker: u64 },
    /// A worker's model failed to load (error or panic).
    LoadFailed { worker: u64, error: String },
    /// The backend panicked; the batch is still in the worker's running set.
    Crashed { worker: u64, reason: String },
    /// A worker actor answered ping `seq`.
    Pong { worker: u64, seq: u64 },
    /// Slots freed on some worker while callers were waiting.
    Freed,
    /// Fault injection: make this slot's worker actor block in a handler.
    #[cfg(feature = "testing")]
    Freeze { slot: usize },
    /// Fault injection: make the supervisor's handler panic.
    #[cfg(feature = "testing")]
    Panic,
    /// Fault injection: make the supervisor's handler wait until this
    /// channel is sent to or dropped (a supervisor that stops answering).
    #[cfg(feature = "testing")]
    Stall(tokio::sync::oneshot::Receiver<()>),
}

impl<B: Backend> From<InternalMsg> for PoolMsg<B> {
    fn from(m: InternalMsg) -> Self {
        PoolMsg::Internal(Internal(m))
    }
}
