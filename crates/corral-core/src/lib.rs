//! Corral's runtime: a supervised pool of inference workers on ractor, with
//! bounded mailboxes, least-loaded routing, backpressure the caller chooses
//! per call, and replacement of stuck or deadlocked workers.
//!
//! # Layout
//! - [`backend`]: the [`Backend`] trait a capability implements (load, cost,
//!   how a batch is costed — [`Batching`] — and run one batch, which is one
//!   forward pass) — blocking, on the worker's own OS thread.
//! - [`call`]: [`Call`], the one way to call a pool — implement `submit`,
//!   get `call`, `call_timeout`, `try_call` and their `_batch` forms.
//! - [`handle`]: [`Pool::spawn`], [`PoolHandle`] and [`PoolRef`] (what a
//!   host actor keeps); both implement [`Call`].
//! - `door`: the admission permits every request takes before it is sent.
//! - `shared`: the state a pool's handles and its supervisor share.
//! - [`msg`]: the typed messages ([`PoolMsg`], [`Submit`], [`Admitted`]).
//! - `job`: one admitted request; answered exactly once, even when dropped.
//! - `mailbox`: a worker's bounded mailbox and what its compute thread shares
//!   with the supervisor (depth counters, heartbeat, running batch).
//! - `worker`: the worker actor and its compute thread, behind one narrow
//!   handle each way.
//! - [`router`]: the routing decision ([`LeastWait`] by default), kept apart
//!   from the load it reads.
//! - `supervisor`: the actor, and its policies one file each — the worker
//!   lifecycle (`state`), admission and routing (`state::admission`),
//!   reports (`state::reports`), detection (`watchdog`), restarts
//!   (`restart`), the waiting line (`waiting`), shutdown (`drain`).
//! - [`stats`]: [`HealthReport`] / [`PoolStats`], the `metrics` names, and
//!   the one recorder that counts every event.
//! - [`config`], [`error`]: [`PoolConfig`]; [`CallError`] (refused, inputs
//!   handed back, or failed), [`Refused`], and the flat [`PoolError`].
//! - `synthetic` (feature `testing`): a backend with scripted cost and
//!   faults, for tests and benchmarks.
//!
//! # Bounds
//! Every queue on a request's path has a bound: each worker's mailbox
//! (`queue_capacity` single requests + `batch_queue_capacity` batch
//! requests) and the supervisor's waiting line (`max_waiting`). Every way in
//! takes an admission permit first, and the door refuses once the pool's
//! total capacity is in flight, so a flood never piles up in the
//! supervisor's ractor mailbox. Memory under any offered load is at most the
//! sum of the bounds.

#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod backend;
pub mod call;
pub mod config;
mod door;
pub mod error;
pub mod handle;
mod job;
mod mailbox;
pub mod msg;
mod rng;
pub mod router;
mod shared;
pub mod stats;
mod supervisor;
#[cfg(feature = "testing")]
pub mod synthetic;
pub mod time;
mod worker;

pub use backend::{Backend, BackendError, BackendErrorKind, BatchShape, Batching, LoadContext};
pub use call::Call;
pub use config::{available_cores, PoolConfig};
pub use error::{CallError, ConfigError, Failure, PoolError, Refusal, Refused, SpawnError};
pub use handle::{Pool, PoolHandle, PoolRef, REPORT_TIMEOUT};
pub use job::Reply;
pub use msg::{Admission, Admitted, PoolMsg, ShutdownReport, Submit};
pub use router::{LeastDepth, LeastWait, Router, WorkerLoad};
pub use stats::{
    Health, HealthReport, PoolLoad, PoolStats, WorkerHealth, WorkerState, WorkerStats,
};
