//! A [`Job`]: one admitted request on its way through the pool — its inputs,
//! its reply port, which mailbox bound it counts against, its deadline, how
//! often it has been tried, and the door permit it holds.
//!
//! A job is answered exactly once. Whoever holds it answers it (the compute
//! thread, the supervisor after taking it back from a failed worker, the
//! watchdog at its deadline); a job dropped unanswered — on a path nobody
//! foresaw, or because the supervisor itself died — answers `WorkerLost` as
//! it goes, so no caller is ever left waiting on a port nobody holds.

use std::sync::Arc;
use std::time::Instant;

use ractor::RpcReplyPort;

use crate::backend::Backend;
use crate::door::Permit;
use crate::error::{CallError, Failure, Refusal};

/// What a pool answers to one request: one output per input, in order, or
/// why not ([`CallError::Refused`], with the inputs handed back, when the
/// request never ran).
pub type Reply<I, O> = Result<Vec<O>, CallError<Vec<I>>>;

/// Which per-worker bound a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// One input: bounded by `queue_capacity`.
    Single,
    /// Several inputs: bounded by `batch_queue_capacity`.
    Batch,
}

impl Class {
    pub(crate) fn of(len: usize) -> Self {
        if len == 1 {
            Class::Single
        } else {
            Class::Batch
        }
    }
}

pub(crate) struct Job<B: Backend> {
    /// Shared so that the compute thread can run them while the job itself
    /// stays where the supervisor can take it back.
    pub(crate) inputs: Arc<Vec<B::Input>>,
    reply: Option<RpcReplyPort<Reply<B::Input, B::Output>>>,
    pub(crate) class: Class,
    /// The end-to-end deadline, if the caller set one.
    pub(crate) deadline: Option<Instant>,
    /// How many times a worker started running this job and failed to
    /// finish it (stuck, deadlocked, panicked).
    pub(crate) failed_attempts: u32,
    /// Its batch failed with an error: it runs alone from now on, so that a
    /// bad input fails only its own request.
    pub(crate) isolate: bool,
    _permit: Permit,
}

impl<B: Backend> Job<B> {
    pub(crate) fn new(
        inputs: Vec<B::Input>,
        reply: RpcReplyPort<Reply<B::Input, B::Output>>,
        deadline: Option<Instant>,
        permit: Permit,
    ) -> Self {
        Self {
            class: Class::of(inputs.len()),
            inputs: Arc::new(inputs),
            reply: Some(reply),
            deadline,
            failed_attempts: 0,
            isolate: false,
            _permit: permit,
        }
    }

    /// Answers the caller (at most once; later answers are ignored).
    pub(crate) fn answer(&mut self, reply: Result<Vec<B::Output>, Failure>) {
        if let Some(port) = self.reply.take() {
            // A caller that went away is not an error: nobody is left to tell.
            let _ = port.send(reply.map_err(CallError::Failed));
        }
    }

    /// Answers with a refusal, its inputs handed back — when it never ran:
    /// a job that a worker started before (and was lost), or whose inputs a
    /// compute thread still holds, fails instead
    /// ([`Refusal::after_running`]).
    pub(crate) fn refuse(mut self, reason: Refusal) {
        if let Some(port) = self.reply.take() {
            let inputs = std::mem::replace(&mut self.inputs, Arc::new(Vec::new()));
            let err = match Arc::try_unwrap(inputs) {
                Ok(inputs) if self.failed_attempts == 0 => CallError::Refused { reason, inputs },
                _ => CallError::Failed(reason.after_running()),
            };
            let _ = port.send(Err(err));
        }
    }

    /// Whether the caller has been answered already (at its deadline).
    pub(crate) fn is_answered(&self) -> bool {
        self.reply.is_none()
    }

    /// The caller went away (or was answered): running it helps nobody.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.reply.as_ref().is_none_or(|p| p.is_closed())
    }

    /// Whether the end-to-end deadline has passed at `now`.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| d <= now)
    }

    /// Runs alone: it failed in a batch before, by error or with its worker.
    pub(crate) fn runs_alone(&self) -> bool {
        self.isolate || self.failed_attempts > 0
    }
}

impl<B: Backend> Drop for Job<B> {
    fn drop(&mut self) {
        if let Some(port) = self.reply.take() {
            let _ = port.send(Err(CallError::Failed(Failure::WorkerLost)));
        }
    }
}
