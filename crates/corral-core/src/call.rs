//! [`Call`]: the one way to call a pool, written once.
//!
//! A pool of any kind — a local [`crate::PoolHandle`], a host actor's
//! [`crate::PoolRef`], a cluster-wide handle — implements one method,
//! [`Call::submit`], and gets the whole family (as tokio's `send` /
//! `try_send` / `send_timeout`, with one difference a name cannot hide: no
//! call here waits without limit):
//!
//! | method | inputs | when every mailbox is full |
//! |---|---|---|
//! | [`call`](Call::call) | one | waits for room up to the pool's own admission timeout ([`Admission::Default`](crate::Admission::Default)) |
//! | [`call_timeout`](Call::call_timeout) | one | waits for room up to `wait` |
//! | [`try_call`](Call::try_call) | one | refused at once, `Overloaded` |
//! | [`call_batch`](Call::call_batch) | several, one request | as `call` |
//! | [`call_batch_timeout`](Call::call_batch_timeout) | several | as `call_timeout` |
//! | [`try_call_batch`](Call::try_call_batch) | several | as `try_call` |
//! | [`submit`](Call::submit) | a [`Submit`] | its [`Admission`](crate::Admission); with an end-to-end deadline ([`Submit::within`]) |
//!
//! Every one answers a [`CallError`] when it gets no outputs: refused
//! before anything ran, with the inputs handed back exactly as they went in
//! (one input for the single forms, the `Vec` for the others), or failed
//! after it was admitted.
//!
//! A backend of any kind reads naturally through the same names: an
//! embedding pool's `call` takes a text and answers a vector, a reranker's
//! takes a query with its passages and answers scores.

use std::future::Future;
use std::time::Duration;

use crate::error::{CallError, Failure};
use crate::job::Reply;
use crate::msg::Submit;

/// A pool that can be called. Implement [`Call::submit`]; the rest of the
/// family is provided.
///
/// # Examples
/// ```
/// # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/handle/doc_pool.rs"));
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let pool = doc_pool().await?;
/// use std::time::Duration;
/// use corral_core::{Call, CallError, Refusal, Submit};
///
/// // One input, waiting for room up to the pool's admission_timeout.
/// assert_eq!(pool.call("quiet".to_string()).await?, "QUIET");
/// // Several as one request; outputs in order.
/// assert_eq!(pool.call_batch(vec!["x".into(), "y".into()]).await?, ["X", "Y"]);
/// // Refused at once when the pool is full, handing the input back.
/// match pool.try_call("now".to_string()).await {
///     Ok(v) => assert_eq!(v, "NOW"),
///     Err(CallError::Refused { reason: Refusal::Overloaded { .. }, inputs }) => {
///         let _later: String = inputs;
///     }
///     Err(e) => return Err(e.into()),
/// }
/// // Wait up to 1 s for room; answer within 2 s all told.
/// let request = Submit::wait(vec!["a".to_string(), "b".to_string()], Duration::from_secs(1))
///     .within(Duration::from_secs(2));
/// assert_eq!(pool.submit(request).await?, ["A", "B"]);
/// # Ok(())
/// # }
/// ```
pub trait Call: Send + Sync {
    /// One unit of work.
    type Input: Send + 'static;
    /// The answer for one input.
    type Output: Send + 'static;

    /// Sends one request and waits for its answer: one output per input, in
    /// order.
    ///
    /// # Errors
    /// [`CallError::Refused`], with the inputs, when the request never ran:
    /// `Overloaded` (no room and the caller would not wait, or the waiting
    /// line is full too), `TimedOut` (no room within its wait),
    /// `DeadlinePassed` (its end-to-end deadline passed before it ran),
    /// `ShuttingDown`, `InvalidInput` (empty, or too many inputs).
    /// [`CallError::Failed`] once it was handed to a worker.
    ///
    /// # Cancel safety
    /// Dropping the future withdraws the request if it has not started; one
    /// that has finishes and its answer is dropped.
    fn submit(
        &self,
        submit: Submit<Self::Input>,
    ) -> impl Future<Output = Reply<Self::Input, Self::Output>> + Send;

    /// Runs one input, waiting for room up to the pool's own admission
    /// timeout (a timed wait; it does not bound the compute).
    ///
    /// # Errors
    /// As [`Call::submit`], the input handed back when it never ran.
    ///
    /// # Cancel safety
    /// As [`Call::submit`].
    fn call(
        &self,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Output, CallError<Self::Input>>> + Send {
        one(self.submit(Submit::new(vec![input])))
    }

    /// Runs one input, waiting for room up to `wait` (any length:
    /// `Duration::MAX` waits as long as the pool lives). The wait covers
    /// admission, not the compute; see [`Submit::within`].
    ///
    /// # Errors
    /// As [`Call::call`]; `TimedOut` when no room came within `wait`.
    ///
    /// # Cancel safety
    /// As [`Call::submit`].
    fn call_timeout(
        &self,
        input: Self::Input,
        wait: Duration,
    ) -> impl Future<Output = Result<Self::Output, CallError<Self::Input>>> + Send {
        one(self.submit(Submit::wait(vec![input], wait)))
    }

    /// Runs one input if a mailbox has room now; otherwise refused at once.
    ///
    /// # Errors
    /// As [`Call::call`]; `Overloaded { retry_after }` when every mailbox is
    /// full.
    ///
    /// # Cancel safety
    /// As [`Call::submit`].
    fn try_call(
        &self,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Output, CallError<Self::Input>>> + Send {
        one(self.submit(Submit::reject(vec![input])))
    }

    /// Runs several inputs as one request (one reply, outputs in order),
    /// waiting for room up to the pool's own admission timeout.
    ///
    /// # Errors
    /// As [`Call::submit`]; `InvalidInput` for an empty request or one over
    /// the pool's `max_client_batch`.
    ///
    /// # Cancel safety
    /// As [`Call::submit`].
    fn call_batch(
        &self,
        inputs: Vec<Self::Input>,
    ) -> impl Future<Output = Reply<Self::Input, Self::Output>> + Send {
        self.submit(Submit::new(inputs))
    }

    /// [`Call::call_batch`] with its own wait for room.
    ///
    /// # Errors
    /// As [`Call::call_batch`]; `TimedOut` when no room came within `wait`.
    ///
    /// # Cancel safety
    /// As [`Call::submit`].
    fn call_batch_timeout(
        &self,
        inputs: Vec<Self::Input>,
        wait: Duration,
    ) -> impl Future<Output = Reply<Self::Input, Self::Output>> + Send {
        self.submit(Submit::wait(inputs, wait))
    }

    /// [`Call::call_batch`] refused at once when the pool is full.
    ///
    /// # Errors
    /// As [`Call::call_batch`]; `Overloaded { retry_after }` when every
    /// mailbox is full.
    ///
    /// # Cancel safety
    /// As [`Call::submit`].
    fn try_call_batch(
        &self,
        inputs: Vec<Self::Input>,
    ) -> impl Future<Output = Reply<Self::Input, Self::Output>> + Send {
        self.submit(Submit::reject(inputs))
    }
}

/// The answer to a one-input request: its one output, or its error with the
/// one input handed back.
async fn one<I, O>(reply: impl Future<Output = Reply<I, O>>) -> Result<O, CallError<I>> {
    match reply.await {
        Ok(mut outputs) => match (outputs.pop(), outputs.is_empty()) {
            (Some(o), true) => Ok(o),
            _ => Err(CallError::Failed(Failure::Backend(
                "expected exactly one output".into(),
            ))),
        },
        Err(CallError::Refused { reason, mut inputs }) => match (inputs.pop(), inputs.is_empty()) {
            (Some(input), true) => Err(CallError::Refused {
                reason,
                inputs: input,
            }),
            // Not the one input that went in: it cannot be handed back.
            _ => Err(CallError::Failed(reason.after_running())),
        },
        Err(CallError::Failed(f)) => Err(CallError::Failed(f)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Refusal;
    use crate::msg::Admission;
    use std::sync::Mutex;

    /// A pool that answers from a script and records what it was sent.
    struct Scripted {
        answer: fn(Vec<u32>) -> Reply<u32, u32>,
        sent: Mutex<Vec<(Admission, usize)>>,
    }

    impl Call for Scripted {
        type Input = u32;
        type Output = u32;
        async fn submit(&self, submit: Submit<u32>) -> Reply<u32, u32> {
            self.sent
                .lock()
                .unwrap()
                .push((submit.admission, submit.inputs.len()));
            (self.answer)(submit.inputs)
        }
    }

    fn scripted(answer: fn(Vec<u32>) -> Reply<u32, u32>) -> Scripted {
        Scripted {
            answer,
            sent: Mutex::new(Vec::new()),
        }
    }

    #[tokio::test]
    async fn each_provided_method_submits_its_admission() {
        let p = scripted(|v| Ok(v.iter().map(|x| x * 10).collect()));
        let wait = Duration::from_millis(7);
        assert_eq!(p.call(1).await, Ok(10));
        assert_eq!(p.call_timeout(2, wait).await, Ok(20));
        assert_eq!(p.try_call(3).await, Ok(30));
        assert_eq!(p.call_batch(vec![4, 5]).await, Ok(vec![40, 50]));
        assert_eq!(p.call_batch_timeout(vec![6], wait).await, Ok(vec![60]));
        assert_eq!(p.try_call_batch(vec![7, 8, 9]).await, Ok(vec![70, 80, 90]));
        assert_eq!(
            *p.sent.lock().unwrap(),
            [
                (Admission::Default, 1),
                (Admission::Wait(wait), 1),
                (Admission::Reject, 1),
                (Admission::Default, 2),
                (Admission::Wait(wait), 1),
                (Admission::Reject, 3),
            ]
        );
    }

    #[tokio::test]
    async fn a_single_call_hands_its_one_input_back() {
        let p = scripted(|inputs| {
            Err(CallError::Refused {
                reason: Refusal::TimedOut,
                inputs,
            })
        });
        let e = p.call_timeout(42, Duration::ZERO).await.unwrap_err();
        assert_eq!(e.refusal(), Some(&Refusal::TimedOut));
        assert_eq!(e.into_inputs(), Some(42));
    }

    #[tokio::test]
    async fn a_wrong_count_is_a_failure_not_a_refusal() {
        let two = scripted(|_| Ok(vec![1, 2]));
        assert_eq!(
            two.call(1).await,
            Err(CallError::Failed(Failure::Backend(
                "expected exactly one output".into()
            )))
        );
        let lost = scripted(|_| {
            Err(CallError::Refused {
                reason: Refusal::ShuttingDown,
                inputs: vec![],
            })
        });
        assert_eq!(
            lost.try_call(1).await,
            Err(CallError::Failed(Failure::ShuttingDown))
        );
    }
}
