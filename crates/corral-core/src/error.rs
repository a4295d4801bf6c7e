//! The one error type callers see, [`PoolError`]: each variant says what the
//! caller can do about it. It is plain data (serde), so it can cross the wire
//! unchanged when pools are reached from other nodes.
//!
//! [`CallError`] wraps it for the calls that can refuse a request before it
//! runs: a refused request hands its inputs back, as tokio's
//! `TrySendError::Full(T)` does, so a caller that retries later need not
//! clone them beforehand.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::{BackendError, BackendErrorKind};

/// Why a request was not answered with outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PoolError {
    /// Every worker mailbox (and the waiting line, if the caller chose to
    /// wait) is full. Retry after about `retry_after`, or shed the request.
    #[error("pool overloaded: all worker mailboxes are full; retry after {retry_after:?}")]
    Overloaded {
        /// The pool's estimate of when a slot frees up.
        retry_after: Duration,
    },
    /// A deadline passed: the caller's wait for room (nothing ran), or the
    /// request's end-to-end deadline (its result, if any, was discarded).
    #[error("timed out: the request's deadline passed")]
    Timeout,
    /// The worker running the request died or was replaced, and the retry
    /// budget (`max_retries`) is spent. The request may or may not have run.
    #[error("worker lost while running the request (retries exhausted)")]
    WorkerLost,
    /// The pool is shutting down (or has shut down) and admits nothing new.
    #[error("pool is shutting down")]
    ShuttingDown,
    /// The request itself is malformed; retrying it will not help.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The backend failed on this request.
    #[error("backend error: {0}")]
    Backend(String),
}

impl From<BackendError> for PoolError {
    fn from(e: BackendError) -> Self {
        match e.kind() {
            BackendErrorKind::InvalidInput => PoolError::InvalidInput(e.message().to_owned()),
            BackendErrorKind::Failed => PoolError::Backend(e.message().to_owned()),
        }
    }
}

/// A [`PoolError`], and the request's inputs when it never ran.
///
/// Returned by the calls that can refuse a request before it is admitted
/// (`try_call`, `try_call_batch`, `PoolRef::admit`, `PoolRef::submit`).
/// `inputs` is `Some` when the pool refused the request without running it
/// (`Overloaded`, `ShuttingDown`, `Timeout` while waiting for room,
/// `InvalidInput` from the request's size): the caller gets them back to
/// retry or shed. It is `None` once the inputs were handed to a worker.
/// Converts into [`PoolError`] with `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError<T> {
    /// Why the request failed.
    pub error: PoolError,
    /// The request's inputs, when it never ran.
    pub inputs: Option<T>,
}

impl<T> CallError<T> {
    /// A failure that hands nothing back.
    pub fn new(error: PoolError) -> Self {
        Self {
            error,
            inputs: None,
        }
    }

    /// A refusal that hands `inputs` back.
    pub fn refused(error: PoolError, inputs: T) -> Self {
        Self {
            error,
            inputs: Some(inputs),
        }
    }

    /// Maps the handed-back inputs.
    pub fn map_inputs<U>(self, f: impl FnOnce(T) -> U) -> CallError<U> {
        CallError {
            error: self.error,
            inputs: self.inputs.map(f),
        }
    }
}

impl<T> std::fmt::Display for CallError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl<T: std::fmt::Debug> std::error::Error for CallError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<T> From<CallError<T>> for PoolError {
    fn from(e: CallError<T>) -> Self {
        e.error
    }
}

/// A [`crate::PoolConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pool config: {0}")]
pub struct ConfigError(pub String);

/// Why a pool could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// ractor refused to spawn the supervisor.
    #[error("could not spawn the supervisor actor: {0}")]
    Actor(String),
}
