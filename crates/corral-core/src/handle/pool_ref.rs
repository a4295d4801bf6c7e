//! [`PoolRef`]: what a host actor keeps to use a pool — the supervisor's
//! `ActorRef` and the pool's door — and the admission every way in goes
//! through ([`PoolRef::admit`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, MessagingErr, RpcReplyPort};
use tokio::sync::oneshot;

use crate::backend::Backend;
use crate::call::Call;
use crate::error::{CallError, Failure, PoolError, Refusal, Refused};
use crate::job::Reply;
use crate::msg::{Admitted, PoolMsg, Submit};
use crate::shared::PoolShared;
use crate::stats::{HealthReport, PoolLoad, PoolStats};

/// What a host actor keeps to use a pool: the supervisor's `ActorRef` and
/// the pool's door. Cheap to clone; `Send + Sync`.
///
/// A host actor either awaits [`Call::submit`] or any of the [`Call`]
/// family (in a task of its own, so its handler is not blocked), or builds
/// the message itself:
///
/// ```ignore
/// let request = pool.admit(Submit::wait(texts, Duration::from_secs(5)))?; // refused here when full
/// let reply = ractor::call_t!(pool.actor(), PoolMsg::Submit, 10_000, request)?;
/// ```
pub struct PoolRef<B: Backend> {
    pub(super) actor: ActorRef<PoolMsg<B>>,
    pub(super) shared: Arc<PoolShared>,
    pub(super) max_client_batch: usize,
    /// What [`crate::Admission::Default`] waits.
    pub(super) admission_timeout: Duration,
}

impl<B: Backend> Clone for PoolRef<B> {
    fn clone(&self) -> Self {
        Self {
            actor: self.actor.clone(),
            shared: self.shared.clone(),
            max_client_batch: self.max_client_batch,
            admission_timeout: self.admission_timeout,
        }
    }
}

impl<B: Backend> PoolRef<B> {
    /// The supervisor actor. Use it to send [`PoolMsg`]s (a `Submit` needs
    /// an [`Admitted`] request from [`PoolRef::admit`]; `Health`, `Stats`
    /// and `Shutdown` need nothing) or to link or monitor the pool from your
    /// own supervision tree.
    pub fn actor(&self) -> &ActorRef<PoolMsg<B>> {
        &self.actor
    }

    /// Passes `submit` through the pool's door: checks its size, resolves
    /// [`crate::Admission::Default`] to the pool's `admission_timeout`, and
    /// takes one of the pool's admission permits, held until the request is
    /// answered.
    ///
    /// # Errors
    /// [`Refusal::InvalidInput`] for an empty request or one over
    /// `max_client_batch`; [`Refusal::Overloaded`] (counted like every
    /// refusal) when the pool's whole capacity is already in flight. Either
    /// way the inputs come back in the error.
    pub fn admit(
        &self,
        submit: Submit<B::Input>,
    ) -> Result<Admitted<B::Input>, Refused<Vec<B::Input>>> {
        let n = submit.inputs.len();
        if n == 0 || n > self.max_client_batch {
            let why = if n == 0 {
                "the request has no inputs".to_owned()
            } else {
                format!(
                    "the request has {n} inputs; the limit (max_client_batch) is {}",
                    self.max_client_batch
                )
            };
            return Err(Refused {
                reason: Refusal::InvalidInput(why),
                inputs: submit.inputs,
            });
        }
        match self.shared.door.enter() {
            Ok(permit) => {
                let mut submit = submit;
                submit.admission = submit.admission.resolve(self.admission_timeout);
                Ok(Admitted { submit, permit })
            }
            Err(retry_after) => Err(Refused {
                reason: Refusal::Overloaded { retry_after },
                inputs: submit.inputs,
            }),
        }
    }

    /// The pool's load now, from shared counters (no message to the
    /// supervisor; cheap enough to call per request).
    pub fn load(&self) -> PoolLoad {
        PoolLoad {
            in_flight: self.shared.door.in_flight().min(self.shared.door.limit()),
            capacity: self.shared.door.limit(),
            ready_workers: *self.shared.ready.borrow(),
            per_request: Duration::from_nanos(self.shared.per_request_ns.load(Ordering::Relaxed)),
            retry_after: self.shared.door.retry_after(),
            draining: self.shared.draining.load(Ordering::Relaxed),
        }
    }

    /// Health, with each worker's real queue depth. Waits for the
    /// supervisor's answer up to [`REPORT_TIMEOUT`].
    ///
    /// # Errors
    /// `ShuttingDown` once the pool has stopped; `TimedOut` if the
    /// supervisor does not answer within [`REPORT_TIMEOUT`].
    ///
    /// # Cancel safety
    /// Safe: nothing is lost if the future is dropped.
    pub async fn health(&self) -> Result<HealthReport, PoolError> {
        self.ask(PoolMsg::Health, REPORT_TIMEOUT).await
    }

    /// Counters since start. Waits for the supervisor's answer up to
    /// [`REPORT_TIMEOUT`].
    ///
    /// # Errors
    /// `ShuttingDown` once the pool has stopped; `TimedOut` if the
    /// supervisor does not answer within [`REPORT_TIMEOUT`].
    ///
    /// # Cancel safety
    /// Safe.
    pub async fn stats(&self) -> Result<PoolStats, PoolError> {
        self.ask(PoolMsg::Stats, REPORT_TIMEOUT).await
    }

    /// Asks the supervisor and waits for its answer up to `within` (any
    /// length): `TimedOut` past it, `ShuttingDown` if the supervisor is gone
    /// or drops the question.
    pub(super) async fn ask<T: Send + 'static>(
        &self,
        question: impl FnOnce(RpcReplyPort<T>) -> PoolMsg<B>,
        within: Duration,
    ) -> Result<T, PoolError> {
        match self.actor.call(question, Some(within)).await {
            Ok(CallResult::Success(answer)) => Ok(answer),
            Ok(CallResult::Timeout) => Err(PoolError::TimedOut),
            Ok(CallResult::SenderError) | Err(_) => Err(PoolError::ShuttingDown),
        }
    }
}

impl<B: Backend> Call for PoolRef<B> {
    type Input = B::Input;
    type Output = B::Output;

    /// Admits `submit` ([`PoolRef::admit`]) and waits for its answer.
    ///
    /// # Errors
    /// As [`Call::submit`].
    ///
    /// # Cancel safety
    /// Dropping the future withdraws the request: in the waiting line its
    /// place is freed at once; queued in a mailbox, it is skipped before
    /// compute. Its permit is released when the pool lets go of it.
    async fn submit(&self, submit: Submit<B::Input>) -> Reply<B::Input, B::Output> {
        let request = self.admit(submit)?;
        let (tx, rx) = oneshot::channel();
        if let Err(e) = self.actor.send_message(PoolMsg::Submit(request, tx.into())) {
            // The supervisor is gone: the request comes back with the error.
            return Err(match e {
                MessagingErr::SendErr(PoolMsg::Submit(request, _)) => CallError::Refused {
                    reason: Refusal::ShuttingDown,
                    inputs: request.submit.inputs,
                },
                _ => CallError::Failed(Failure::ShuttingDown),
            });
        }
        // Every job answers as it drops; a port dropped unanswered would
        // mean the supervisor died mid-message.
        rx.await
            .unwrap_or(Err(CallError::Failed(Failure::WorkerLost)))
    }
}

/// How long [`crate::PoolHandle::health`], [`crate::PoolHandle::stats`] and
/// their [`PoolRef`] twins wait for the supervisor's answer, and how long
/// [`crate::PoolHandle::shutdown`] waits past its drain deadline, before
/// they answer `TimedOut`. The supervisor answers within microseconds unless
/// it is stuck or its mailbox holds a backlog, so five seconds means "not
/// answering", not "busy".
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(5);
