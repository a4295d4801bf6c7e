//! What can go wrong with a request, one type per question the caller asks.
//!
//! As tokio's `mpsc` has a `SendError<T>` that hands back the value it could
//! not send, a pool call that fails before anything ran hands its inputs
//! back:
//!
//! - [`CallError<T>`] is what the call family ([`crate::Call`]) returns:
//!   either [`CallError::Refused`] — the request never ran ([`Refusal`]
//!   says why) and its inputs come back, to retry elsewhere, later, or shed
//!   — or [`CallError::Failed`] — the request was admitted and then failed
//!   ([`Failure`] says how); its inputs were handed to a worker and are gone.
//! - [`Refused<T>`] is what [`crate::PoolRef::admit`] returns: it can only
//!   refuse.
//! - [`PoolError`] is the flat, serialisable form of both, for the wire and
//!   HTTP, and what the pool's reports (`health`, `stats`, `wait_ready`,
//!   `shutdown`) return. Every error above converts into it with `?`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::{BackendError, BackendErrorKind};

/// Why a request was refused before it ran. Its inputs come back with it
/// (see [`CallError::Refused`] and [`Refused`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Every worker mailbox (and the waiting line, if the caller chose to
    /// wait) is full. Retry after about `retry_after`, or shed the request.
    #[error("pool overloaded: all worker mailboxes are full; retry after {retry_after:?}")]
    Overloaded {
        /// The pool's estimate of when a slot frees up.
        retry_after: Duration,
    },
    /// The caller waited for room as long as it chose to (its
    /// [`crate::Admission`]) and none came.
    #[error("timed out waiting for room in the pool; nothing ran")]
    TimedOut,
    /// The request's end-to-end deadline ([`crate::Submit::within`]) passed
    /// before it ran.
    #[error("the request's deadline passed before it ran")]
    DeadlinePassed,
    /// The pool is shutting down (or has shut down) and runs nothing new.
    #[error("pool is shutting down")]
    ShuttingDown,
    /// The request itself is malformed (empty, or over
    /// `max_client_batch`); sending it again as it is will not help.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The request is too large to carry (over the wire's frame limit, for
    /// a pool across the network): send fewer or shorter inputs per
    /// request. Nothing was sent.
    #[error("request too large: {0}")]
    TooLarge(String),
}

impl Refusal {
    /// What a refusal means for a request that may have run after all (one
    /// taken back from a lost worker, or whose inputs a worker still
    /// holds): its inputs cannot come back.
    pub(crate) fn after_running(self) -> Failure {
        match self {
            // Taken back from a lost worker and found no room again.
            Refusal::Overloaded { .. } | Refusal::TimedOut => Failure::WorkerLost,
            Refusal::DeadlinePassed => Failure::DeadlinePassed,
            Refusal::ShuttingDown => Failure::ShuttingDown,
            Refusal::InvalidInput(m) | Refusal::TooLarge(m) => Failure::InvalidInput(m),
        }
    }
}

/// How a request failed once it was handed to a worker. Its inputs do not
/// come back: they may have run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The request's end-to-end deadline passed while it ran; its result,
    /// if any, was discarded.
    #[error("the request's deadline passed while it ran")]
    DeadlinePassed,
    /// The worker running the request died or was replaced, and the retry
    /// budget (`max_retries`) is spent. The request may or may not have run.
    #[error("worker lost while running the request (retries exhausted)")]
    WorkerLost,
    /// The pool's drain deadline passed while the request ran.
    #[error("pool shut down while the request ran")]
    ShuttingDown,
    /// The backend found an input it cannot process; retrying it will not
    /// help.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The backend failed on this request.
    #[error("backend error: {0}")]
    Backend(String),
}

impl From<BackendError> for Failure {
    fn from(e: BackendError) -> Self {
        match e.kind() {
            BackendErrorKind::InvalidInput => Failure::InvalidInput(e.message().to_owned()),
            BackendErrorKind::Failed => Failure::Backend(e.message().to_owned()),
        }
    }
}

/// Why a call was not answered with outputs: refused before it ran, with its
/// inputs handed back, or failed after it was admitted.
///
/// `T` is what went in: one input for `call`, `call_timeout` and
/// `try_call`; a `Vec` for the batch forms and `submit`. Converts into the
/// flat [`PoolError`] with `?` (dropping the inputs).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use corral_core::{CallError, Refusal};
///
/// let e: CallError<String> = CallError::Refused {
///     reason: Refusal::Overloaded { retry_after: Duration::from_millis(5) },
///     inputs: "again later".to_string(),
/// };
/// assert!(e.is_refused());
/// assert_eq!(e.into_inputs().as_deref(), Some("again later"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum CallError<T> {
    /// Nothing ran: the pool refused the request (at its door, in its
    /// waiting line, or in a worker's mailbox before it started), and the
    /// inputs come back exactly as they went in.
    Refused {
        /// Why.
        reason: Refusal,
        /// The request's inputs.
        inputs: T,
    },
    /// The request was handed to a worker and failed; its inputs are gone.
    Failed(Failure),
}

impl<T> CallError<T> {
    /// Whether the request was refused before it ran (its inputs are here).
    pub fn is_refused(&self) -> bool {
        matches!(self, CallError::Refused { .. })
    }

    /// The inputs handed back, if the request never ran.
    pub fn inputs(&self) -> Option<&T> {
        match self {
            CallError::Refused { inputs, .. } => Some(inputs),
            CallError::Failed(_) => None,
        }
    }

    /// Consumes the error, returning the inputs handed back, if the request
    /// never ran.
    pub fn into_inputs(self) -> Option<T> {
        match self {
            CallError::Refused { inputs, .. } => Some(inputs),
            CallError::Failed(_) => None,
        }
    }

    /// Why the request was refused, if it was.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            CallError::Refused { reason, .. } => Some(reason),
            CallError::Failed(_) => None,
        }
    }

    /// How the request failed, if it ran.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            CallError::Refused { .. } => None,
            CallError::Failed(f) => Some(f),
        }
    }

    /// The flat form, without consuming the error.
    pub fn to_pool_error(&self) -> PoolError {
        match self {
            CallError::Refused { reason, .. } => reason.clone().into(),
            CallError::Failed(f) => f.clone().into(),
        }
    }

    /// Maps the handed-back inputs.
    pub fn map_inputs<U>(self, f: impl FnOnce(T) -> U) -> CallError<U> {
        match self {
            CallError::Refused { reason, inputs } => CallError::Refused {
                reason,
                inputs: f(inputs),
            },
            CallError::Failed(e) => CallError::Failed(e),
        }
    }
}

impl<T> From<Refused<T>> for CallError<T> {
    fn from(r: Refused<T>) -> Self {
        CallError::Refused {
            reason: r.reason,
            inputs: r.inputs,
        }
    }
}

impl<T> From<Failure> for CallError<T> {
    fn from(f: Failure) -> Self {
        CallError::Failed(f)
    }
}

/// As tokio's `SendError<T>`: the inputs are not shown, so `T` need not be
/// `Debug`.
impl<T> fmt::Debug for CallError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Refused { reason, .. } => f
                .debug_struct("Refused")
                .field("reason", reason)
                .finish_non_exhaustive(),
            CallError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

impl<T> fmt::Display for CallError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Refused { .. } => f.write_str("request refused before it ran"),
            CallError::Failed(_) => f.write_str("request failed"),
        }
    }
}

impl<T> std::error::Error for CallError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::Refused { reason, .. } => Some(reason),
            CallError::Failed(e) => Some(e),
        }
    }
}

/// A request refused before it was admitted: why, and its inputs, exactly as
/// they went in. Returned by [`crate::PoolRef::admit`]; converts into
/// [`CallError`] and [`PoolError`].
#[derive(Clone, PartialEq, Eq)]
pub struct Refused<T> {
    /// Why.
    pub reason: Refusal,
    /// The request's inputs.
    pub inputs: T,
}

impl<T> Refused<T> {
    /// Consumes the refusal, returning the inputs.
    pub fn into_inputs(self) -> T {
        self.inputs
    }
}

/// The inputs are not shown, so `T` need not be `Debug`.
impl<T> fmt::Debug for Refused<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refused")
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for Refused<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request refused before it ran")
    }
}

impl<T> std::error::Error for Refused<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.reason)
    }
}

/// The flat, serialisable form of every error a pool gives: what crosses
/// the wire and what HTTP status codes are chosen from. Each variant says
/// what the caller can do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PoolError {
    /// Every worker mailbox (and the waiting line, if the caller chose to
    /// wait) is full; nothing ran. Retry after about `retry_after`, or shed
    /// the request.
    #[error("pool overloaded: all worker mailboxes are full; retry after {retry_after:?}")]
    Overloaded {
        /// The pool's estimate of when a slot frees up.
        retry_after: Duration,
    },
    /// The caller's wait for room ran out (nothing ran), or a report
    /// (`health`, `stats`, `wait_ready`, `shutdown`) did not come in time.
    #[error("timed out waiting for room; nothing ran")]
    TimedOut,
    /// The request's end-to-end deadline passed, before it ran or while it
    /// ran (its result, if any, was discarded).
    #[error("the request's deadline passed")]
    DeadlinePassed,
    /// The worker running the request died or was replaced, and the retry
    /// budget (`max_retries`) is spent. The request may or may not have run.
    #[error("worker lost while running the request (retries exhausted)")]
    WorkerLost,
    /// The pool is shutting down (or has shut down).
    #[error("pool is shutting down")]
    ShuttingDown,
    /// The request itself is malformed; retrying it will not help.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The request is too large to carry (over the wire's frame limit);
    /// nothing ran. Send fewer or shorter inputs per request.
    #[error("request too large: {0}")]
    TooLarge(String),
    /// The backend failed on this request.
    #[error("backend error: {0}")]
    Backend(String),
}

impl From<Refusal> for PoolError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Overloaded { retry_after } => PoolError::Overloaded { retry_after },
            Refusal::TimedOut => PoolError::TimedOut,
            Refusal::DeadlinePassed => PoolError::DeadlinePassed,
            Refusal::ShuttingDown => PoolError::ShuttingDown,
            Refusal::InvalidInput(m) => PoolError::InvalidInput(m),
            Refusal::TooLarge(m) => PoolError::TooLarge(m),
        }
    }
}

impl From<Failure> for PoolError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::DeadlinePassed => PoolError::DeadlinePassed,
            Failure::WorkerLost => PoolError::WorkerLost,
            Failure::ShuttingDown => PoolError::ShuttingDown,
            Failure::InvalidInput(m) => PoolError::InvalidInput(m),
            Failure::Backend(m) => PoolError::Backend(m),
        }
    }
}

impl<T> From<CallError<T>> for PoolError {
    fn from(e: CallError<T>) -> Self {
        match e {
            CallError::Refused { reason, .. } => reason.into(),
            CallError::Failed(f) => f.into(),
        }
    }
}

impl<T> From<Refused<T>> for PoolError {
    fn from(r: Refused<T>) -> Self {
        r.reason.into()
    }
}

impl PoolError {
    /// The refusal this flat error stands for, when it can be one (every
    /// variant but `WorkerLost` and `Backend`); for a transport that carries
    /// "refused" as a flag next to the flat form.
    pub fn into_refusal(self) -> Result<Refusal, PoolError> {
        match self {
            PoolError::Overloaded { retry_after } => Ok(Refusal::Overloaded { retry_after }),
            PoolError::TimedOut => Ok(Refusal::TimedOut),
            PoolError::DeadlinePassed => Ok(Refusal::DeadlinePassed),
            PoolError::ShuttingDown => Ok(Refusal::ShuttingDown),
            PoolError::InvalidInput(m) => Ok(Refusal::InvalidInput(m)),
            PoolError::TooLarge(m) => Ok(Refusal::TooLarge(m)),
            e @ (PoolError::WorkerLost | PoolError::Backend(_)) => Err(e),
        }
    }

    /// The failure this flat error stands for, when it can be one (every
    /// variant but `Overloaded`, `TimedOut` and `TooLarge`, which only
    /// refuse).
    pub fn into_failure(self) -> Result<Failure, PoolError> {
        match self {
            PoolError::DeadlinePassed => Ok(Failure::DeadlinePassed),
            PoolError::WorkerLost => Ok(Failure::WorkerLost),
            PoolError::ShuttingDown => Ok(Failure::ShuttingDown),
            PoolError::InvalidInput(m) => Ok(Failure::InvalidInput(m)),
            PoolError::Backend(m) => Ok(Failure::Backend(m)),
            e @ (PoolError::Overloaded { .. } | PoolError::TimedOut | PoolError::TooLarge(_)) => {
                Err(e)
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flat_form_round_trips_through_refusal_and_failure() {
        let refusals = [
            Refusal::Overloaded {
                retry_after: Duration::from_millis(3),
            },
            Refusal::TimedOut,
            Refusal::DeadlinePassed,
            Refusal::ShuttingDown,
            Refusal::InvalidInput("x".into()),
            Refusal::TooLarge("w".into()),
        ];
        for r in refusals {
            assert_eq!(PoolError::from(r.clone()).into_refusal(), Ok(r));
        }
        let failures = [
            Failure::DeadlinePassed,
            Failure::WorkerLost,
            Failure::ShuttingDown,
            Failure::InvalidInput("y".into()),
            Failure::Backend("z".into()),
        ];
        for f in failures {
            assert_eq!(PoolError::from(f.clone()).into_failure(), Ok(f));
        }
        assert_eq!(
            PoolError::WorkerLost.into_refusal(),
            Err(PoolError::WorkerLost)
        );
        assert_eq!(PoolError::TimedOut.into_failure(), Err(PoolError::TimedOut));
    }

    #[test]
    fn a_call_error_chains_to_its_reason_and_hands_the_inputs_back() {
        use std::error::Error;
        let e = CallError::Refused {
            reason: Refusal::TimedOut,
            inputs: vec![1, 2],
        };
        assert_eq!(
            e.source().map(|s| s.to_string()),
            Some(Refusal::TimedOut.to_string())
        );
        assert_eq!(e.to_pool_error(), PoolError::TimedOut);
        assert_eq!(format!("{e:?}"), "Refused { reason: TimedOut, .. }");
        assert_eq!(e.map_inputs(|v| v.len()).into_inputs(), Some(2));
        let f: CallError<Vec<u8>> = Failure::WorkerLost.into();
        assert_eq!(f.inputs(), None);
        assert_eq!(PoolError::from(f), PoolError::WorkerLost);
    }
}
