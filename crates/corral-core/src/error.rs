//! The one error type callers see, [`PoolError`]: each variant says what the
//! caller can do about it. It is plain data (serde), so it can cross the wire
//! unchanged when pools are reached from other nodes.

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
    /// The caller chose to wait for room and its deadline passed first.
    /// Nothing was run.
    #[error("timed out waiting for room in a worker mailbox")]
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
