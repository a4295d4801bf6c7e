//! The one trait a capability implements.
//!
//! A [`Backend`] knows how to load a model, how much an input costs (tokens
//! for text) and how to run one batch. It knows nothing about actors, queues
//! or time: the pool calls it from a dedicated OS thread per worker, never
//! from a tokio worker thread, so every method may block for as long as the
//! model needs. A call that never returns is the supervisor's problem, not the
//! backend's (see the `supervisor` module).

use std::fmt;
use std::sync::Arc;

/// A capability the pool can run: a model, loaded once per worker.
///
/// Every method runs on the worker's own compute thread. `load` is called
/// once per worker incarnation (a replaced worker loads afresh), `cost` once
/// per input as requests are batched, `run` once per batch.
pub trait Backend: Send + 'static {
    /// What [`Backend::load`] needs: a model directory, a script of faults…
    /// Shared by all workers of a pool.
    type Spec: Send + Sync + 'static;
    /// One unit of work (for text embedding: one text).
    type Input: Send + Sync + 'static;
    /// The answer for one input (for text embedding: one vector).
    type Output: Send + 'static;

    /// Loads the model. Called on the worker's compute thread; may take
    /// seconds.
    ///
    /// # Errors
    /// A [`BackendError`] when the model cannot be loaded; the supervisor
    /// retries under its restart-intensity limits.
    fn load(spec: &Self::Spec, ctx: &LoadContext) -> Result<Self, BackendError>
    where
        Self: Sized;

    /// The cost of one input in the unit `max_batch_tokens` is counted in
    /// (tokens for text). Used to fill batches up to a budget and to size the
    /// stuck-batch deadline. Must be cheap and should not fail; at least 1.
    /// (A panic here is caught: the request then costs a whole batch and
    /// runs alone.)
    fn cost(&self, input: &Self::Input) -> usize;

    /// Runs one batch and returns exactly one output per input, in order.
    ///
    /// # Errors
    /// A [`BackendError`] fails the batch. The pool then reruns each request
    /// of a multi-request batch on its own, so that one bad input fails only
    /// its own request; so does a result with the wrong number of outputs. A
    /// panic is caught: the worker is replaced and the batch retried
    /// elsewhere, each request alone.
    fn run(&mut self, batch: &[&Self::Input]) -> Result<Vec<Self::Output>, BackendError>;
}

/// What the pool tells a backend when it loads it.
#[derive(Debug, Clone)]
pub struct LoadContext {
    /// The pool's name (metrics label; two pools in one process differ here).
    pub pool: Arc<str>,
    /// Unique id of the worker incarnation that is loading.
    pub worker_id: u64,
    /// Compute threads this worker may use. The pool chooses it so that
    /// workers × threads ≤ cores unless configured otherwise.
    pub threads: usize,
}

/// A failure inside a backend: the model could not load or could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    kind: BackendErrorKind,
    message: String,
}

/// Whether a [`BackendError`] is the caller's fault or the backend's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendErrorKind {
    /// The input cannot be processed (maps to `PoolError::InvalidInput`).
    InvalidInput,
    /// The backend failed (maps to `PoolError::Backend`).
    Failed,
}

impl BackendError {
    /// A backend failure (load or run).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            kind: BackendErrorKind::Failed,
            message: message.into(),
        }
    }

    /// An input the backend cannot process; the caller should not retry it.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self {
            kind: BackendErrorKind::InvalidInput,
            message: message.into(),
        }
    }

    /// Which kind of failure this is.
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BackendError {}
