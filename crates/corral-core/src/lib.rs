//! Corral's runtime: a supervised pool of inference workers on ractor, with
//! bounded mailboxes, least-loaded routing, backpressure the caller chooses
//! per call, and replacement of stuck or deadlocked workers.
//!
//! # Layout
//! - [`backend`]: the [`Backend`] trait a capability implements (load, cost,
//!   run one batch) — blocking, on the worker's own OS thread.
//! - `mailbox`: a worker's bounded mailbox and the state its compute thread
//!   shares with the supervisor (depth counters, heartbeat, running batch).
//! - `worker`: the worker actor (pings, lifetime) and its compute thread
//!   (batching by token budget, running, answering).
//! - [`router`]: the routing decision ([`LeastDepth`] by default), kept apart
//!   from the load it reads.
//! - `supervisor`: admission, the bounded waiting line, routing, the
//!   watchdog, restarts, re-routing, drain.
//! - [`msg`]: the typed messages ([`PoolMsg`]) host actors send.
//! - [`handle`]: [`Pool::spawn`] and [`PoolHandle`], the typed front door.
//! - [`config`], [`error`], [`stats`]: [`PoolConfig`], [`PoolError`],
//!   [`HealthReport`] / [`PoolStats`] and the `metrics` names.
//! - [`synthetic`]: a backend with scripted cost and faults, for tests and
//!   benchmarks.
//!
//! # Bounds
//! Every queue on a request's path has a bound: each worker's mailbox
//! (`embed_queue_capacity` single requests + `batch_queue_capacity` batch
//! requests) and the supervisor's waiting line (`max_waiting`). Handles also
//! refuse locally once the pool's total capacity is in flight, so a flood
//! never piles up in the supervisor's ractor mailbox. Memory under any
//! offered load is at most the sum of the bounds.

#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod backend;
pub mod config;
pub mod error;
pub mod handle;
mod job;
mod mailbox;
pub mod msg;
pub mod router;
pub mod stats;
mod supervisor;
pub mod synthetic;
mod worker;

pub use backend::{Backend, BackendError, BackendErrorKind, LoadContext};
pub use config::{available_cores, PoolConfig};
pub use error::{ConfigError, PoolError, SpawnError};
pub use handle::{Pool, PoolHandle};
pub use job::Reply;
pub use msg::{Admission, PoolMsg, ShutdownReport, Submit};
pub use router::{LeastDepth, Router, WorkerLoad};
pub use stats::{Health, HealthReport, PoolStats, WorkerHealth, WorkerState, WorkerStats};

pub(crate) use handle::PoolShared;
