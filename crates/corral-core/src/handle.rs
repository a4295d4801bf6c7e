//! The front doors for host applications.
//!
//! - [`Pool::spawn`] starts a pool and returns a [`PoolHandle`]: the typed,
//!   cheap-to-clone handle with the `call*` method family, health, stats,
//!   readiness and shutdown.
//! - [`PoolRef`] is what a host *actor* keeps: the supervisor's `ActorRef`
//!   plus the pool's door. [`PoolRef::admit`] turns a [`Submit`] into an
//!   [`Admitted`] request — or refuses it on the spot — and only an
//!   admitted request can be sent as [`PoolMsg::Submit`] (with `call_t!` or
//!   `send_message`). So every way in takes the same admission permit, and a
//!   flood never piles up in the supervisor's unbounded ractor mailbox.
//!
//! Method family (as tokio's `send` / `try_send` / `send_timeout`, with one
//! difference a name cannot hide: no call here waits without limit):
//! - `call` / `call_batch` wait for room up to the pool's
//!   `admission_timeout` (a timed wait), then `Timeout`;
//! - `call_timeout` / `call_batch_timeout` wait for room up to a given time;
//! - `try_call` / `try_call_batch` are refused at once with `Overloaded`
//!   when every mailbox is full, and hand the inputs back;
//! - `submit` takes a [`Submit`] for full control, including an end-to-end
//!   deadline ([`Submit::within`]).

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef, MessagingErr, RpcReplyPort};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::backend::Backend;
use crate::config::PoolConfig;
use crate::door::Door;
use crate::error::{CallError, PoolError, SpawnError};
use crate::job::Reply;
use crate::msg::{Admitted, PoolMsg, ShutdownReport, Submit};
use crate::router::{LeastWait, Router};
use crate::shared::PoolShared;
use crate::stats::recorder::Recorder;
use crate::stats::{HealthReport, PoolLoad, PoolStats};
use crate::supervisor::{Supervisor, SupervisorArgs};

/// Starts pools.
pub struct Pool<B: Backend>(PhantomData<fn() -> B>);

impl<B: Backend> Pool<B> {
    /// Validates `config`, spawns the supervisor and its workers (each loads
    /// the model on its own compute thread) and returns a handle. Returns
    /// before the models are loaded; see [`PoolHandle::wait_ready`]. Routes
    /// with [`LeastWait`].
    ///
    /// # Errors
    /// [`SpawnError::Config`] for a configuration that cannot work,
    /// [`SpawnError::Actor`] if ractor refuses to spawn.
    pub async fn spawn(spec: B::Spec, config: PoolConfig) -> Result<PoolHandle<B>, SpawnError> {
        Self::spawn_with_router(spec, config, LeastWait::default()).await
    }

    /// [`Pool::spawn`] with another routing policy.
    ///
    /// # Errors
    /// As [`Pool::spawn`].
    pub async fn spawn_with_router(
        spec: B::Spec,
        config: PoolConfig,
        router: impl Router,
    ) -> Result<PoolHandle<B>, SpawnError> {
        config.validate()?;
        let config = Arc::new(config);
        let recorder = Arc::new(Recorder::new(
            &config.name,
            config.workers,
            &config.metric_labels,
        ));
        let shared = Arc::new(PoolShared::new(
            Door::new(config.door_limit(), recorder.clone()),
            recorder,
        ));
        let args = SupervisorArgs {
            config: config.clone(),
            spec: Arc::new(spec),
            router: Box::new(router),
            shared: shared.clone(),
        };
        let (actor, join) = Actor::spawn(None, Supervisor::<B>::new(), args)
            .await
            .map_err(|e| SpawnError::Actor(e.to_string()))?;
        Ok(PoolHandle {
            pool: PoolRef {
                actor,
                shared,
                max_client_batch: config.max_client_batch,
            },
            config,
            join: Arc::new(Mutex::new(Some(join))),
        })
    }
}

/// What a host actor keeps to use a pool: the supervisor's `ActorRef` and
/// the pool's door. Cheap to clone; `Send + Sync`.
///
/// A host actor either awaits [`PoolRef::submit`] (in a task of its own, so
/// its handler is not blocked), or builds the message itself:
///
/// ```ignore
/// let request = pool.admit(Submit::wait(texts, Duration::from_secs(5)))?; // refused here when full
/// let reply = ractor::call_t!(pool.actor(), PoolMsg::Submit, 10_000, request)?;
/// ```
pub struct PoolRef<B: Backend> {
    actor: ActorRef<PoolMsg<B>>,
    shared: Arc<PoolShared>,
    max_client_batch: usize,
}

impl<B: Backend> Clone for PoolRef<B> {
    fn clone(&self) -> Self {
        Self {
            actor: self.actor.clone(),
            shared: self.shared.clone(),
            max_client_batch: self.max_client_batch,
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

    /// Passes `submit` through the pool's door: checks its size, and takes
    /// one of the pool's admission permits, held until the request is
    /// answered.
    ///
    /// # Errors
    /// `InvalidInput` for an empty request or one over `max_client_batch`;
    /// `Overloaded { retry_after }` (counted like every refusal) when the
    /// pool's whole capacity is already in flight. Either way the inputs
    /// come back in the error.
    pub fn admit(
        &self,
        submit: Submit<B::Input>,
    ) -> Result<Admitted<B::Input>, CallError<Vec<B::Input>>> {
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
            return Err(CallError::refused(
                PoolError::InvalidInput(why),
                submit.inputs,
            ));
        }
        match self.shared.door.enter() {
            Ok(permit) => Ok(Admitted { submit, permit }),
            Err(retry_after) => Err(CallError::refused(
                PoolError::Overloaded { retry_after },
                submit.inputs,
            )),
        }
    }

    /// Admits `submit` and waits for its answer.
    ///
    /// # Errors
    /// Any [`PoolError`], with the inputs handed back when the request never
    /// ran (see [`CallError`]).
    ///
    /// # Cancel safety
    /// Dropping the future withdraws the request: in the waiting line its
    /// place is freed at once; queued in a mailbox, it is skipped before
    /// compute. Its permit is released when the pool lets go of it.
    pub async fn submit(&self, submit: Submit<B::Input>) -> Reply<B::Input, B::Output> {
        let request = self.admit(submit)?;
        let (tx, rx) = oneshot::channel();
        if let Err(e) = self.actor.send_message(PoolMsg::Submit(request, tx.into())) {
            // The supervisor is gone: the request comes back with the error.
            let inputs = match e {
                MessagingErr::SendErr(PoolMsg::Submit(request, _)) => Some(request.submit.inputs),
                _ => None,
            };
            return Err(CallError {
                error: PoolError::ShuttingDown,
                inputs,
            });
        }
        // Every job answers as it drops; a port dropped unanswered would
        // mean the supervisor died mid-message.
        rx.await
            .unwrap_or(Err(CallError::new(PoolError::WorkerLost)))
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
    /// `ShuttingDown` once the pool has stopped; `Timeout` if the
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
    /// `ShuttingDown` once the pool has stopped; `Timeout` if the
    /// supervisor does not answer within [`REPORT_TIMEOUT`].
    ///
    /// # Cancel safety
    /// Safe.
    pub async fn stats(&self) -> Result<PoolStats, PoolError> {
        self.ask(PoolMsg::Stats, REPORT_TIMEOUT).await
    }

    /// Asks the supervisor and waits for its answer up to `within` (any
    /// length): `Timeout` past it, `ShuttingDown` if the supervisor is gone
    /// or drops the question.
    async fn ask<T: Send + 'static>(
        &self,
        question: impl FnOnce(RpcReplyPort<T>) -> PoolMsg<B>,
        within: Duration,
    ) -> Result<T, PoolError> {
        match self.actor.call(question, Some(within)).await {
            Ok(CallResult::Success(answer)) => Ok(answer),
            Ok(CallResult::Timeout) => Err(PoolError::Timeout),
            Ok(CallResult::SenderError) | Err(_) => Err(PoolError::ShuttingDown),
        }
    }
}

/// How long [`PoolHandle::health`], [`PoolHandle::stats`] and their
/// [`PoolRef`] twins wait for the supervisor's answer, and how long
/// [`PoolHandle::shutdown`] waits past its drain deadline, before they
/// answer `Timeout`. The supervisor answers within microseconds unless it
/// is stuck or its mailbox holds a backlog, so five seconds means "not
/// answering", not "busy".
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// A typed, cheap-to-clone front door to a pool (see the module docs for the
/// method family).
///
/// # Examples
/// ```
/// # use corral_core::{Backend, BackendError, LoadContext};
/// # struct Upper;
/// # impl Backend for Upper {
/// #     type Spec = ();
/// #     type Input = String;
/// #     type Output = String;
/// #     fn load(_: &(), _: &LoadContext) -> Result<Self, BackendError> { Ok(Upper) }
/// #     fn cost(&self, s: &String) -> usize { s.len().max(1) }
/// #     fn run(&mut self, batch: &[&String]) -> Result<Vec<String>, BackendError> {
/// #         Ok(batch.iter().map(|s| s.to_uppercase()).collect())
/// #     }
/// # }
/// use std::time::Duration;
/// use corral_core::{Pool, PoolConfig};
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::<Upper>::spawn((), PoolConfig { workers: 2, ..PoolConfig::default() }).await?;
/// pool.wait_ready(Duration::from_secs(10)).await?;
/// assert_eq!(pool.call("hello".to_string()).await?, "HELLO");
/// let report = pool.shutdown(Duration::from_secs(5)).await?;
/// assert!(report.drained);
/// # Ok(())
/// # }
/// ```
pub struct PoolHandle<B: Backend> {
    pool: PoolRef<B>,
    config: Arc<PoolConfig>,
    join: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl<B: Backend> Clone for PoolHandle<B> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            config: self.config.clone(),
            join: self.join.clone(),
        }
    }
}

fn only<O>(mut v: Vec<O>) -> Result<O, PoolError> {
    match (v.pop(), v.is_empty()) {
        (Some(o), true) => Ok(o),
        _ => Err(PoolError::Backend("expected exactly one output".into())),
    }
}

impl<B: Backend> PoolHandle<B> {
    /// The [`PoolRef`] to give a host actor.
    pub fn pool_ref(&self) -> PoolRef<B> {
        self.pool.clone()
    }

    /// The supervisor actor, for linking or monitoring it, or for sending
    /// [`PoolMsg`]s; a `Submit` needs [`PoolRef::admit`] (see [`PoolRef`]).
    pub fn actor(&self) -> &ActorRef<PoolMsg<B>> {
        self.pool.actor()
    }

    /// The pool's load now; see [`PoolRef::load`].
    pub fn load(&self) -> PoolLoad {
        self.pool.load()
    }

    /// The configuration the pool runs with.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Sends one request and waits for its answer; see [`PoolRef::submit`].
    ///
    /// # Examples
    /// ```
    /// # use corral_core::{Backend, BackendError, LoadContext};
    /// # struct Upper;
    /// # impl Backend for Upper {
    /// #     type Spec = ();
    /// #     type Input = String;
    /// #     type Output = String;
    /// #     fn load(_: &(), _: &LoadContext) -> Result<Self, BackendError> { Ok(Upper) }
    /// #     fn cost(&self, s: &String) -> usize { s.len().max(1) }
    /// #     fn run(&mut self, batch: &[&String]) -> Result<Vec<String>, BackendError> {
    /// #         Ok(batch.iter().map(|s| s.to_uppercase()).collect())
    /// #     }
    /// # }
    /// # use std::time::Duration;
    /// # use corral_core::{Pool, PoolConfig};
    /// use corral_core::Submit;
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pool = Pool::<Upper>::spawn((), PoolConfig::default()).await?;
    /// # pool.wait_ready(Duration::from_secs(10)).await?;
    /// // Wait up to 1 s for room; answer within 2 s all told, or `Timeout`.
    /// let request = Submit::wait(vec!["a".to_string(), "b".to_string()], Duration::from_secs(1))
    ///     .within(Duration::from_secs(2));
    /// assert_eq!(pool.submit(request).await?, ["A", "B"]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Any [`PoolError`], with the inputs handed back when the request never
    /// ran (see [`CallError`]).
    ///
    /// # Cancel safety
    /// As [`PoolRef::submit`].
    pub async fn submit(&self, submit: Submit<B::Input>) -> Reply<B::Input, B::Output> {
        self.pool.submit(submit).await
    }

    /// Runs one input, waiting for room up to the pool's
    /// `admission_timeout` (a timed wait; it does not bound the compute).
    ///
    /// # Examples
    /// ```
    /// # use corral_core::{Backend, BackendError, LoadContext};
    /// # struct Upper;
    /// # impl Backend for Upper {
    /// #     type Spec = ();
    /// #     type Input = String;
    /// #     type Output = String;
    /// #     fn load(_: &(), _: &LoadContext) -> Result<Self, BackendError> { Ok(Upper) }
    /// #     fn cost(&self, s: &String) -> usize { s.len().max(1) }
    /// #     fn run(&mut self, batch: &[&String]) -> Result<Vec<String>, BackendError> {
    /// #         Ok(batch.iter().map(|s| s.to_uppercase()).collect())
    /// #     }
    /// # }
    /// # use std::time::Duration;
    /// # use corral_core::{Pool, PoolConfig};
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pool = Pool::<Upper>::spawn((), PoolConfig::default()).await?;
    /// # pool.wait_ready(Duration::from_secs(10)).await?;
    /// let shout = pool.call("quiet".to_string()).await?;
    /// assert_eq!(shout, "QUIET");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `Timeout` if no room came in time; `Overloaded` if the waiting line
    /// is full too; any other [`PoolError`].
    ///
    /// # Cancel safety
    /// As [`PoolRef::submit`].
    pub async fn call(&self, input: B::Input) -> Result<B::Output, PoolError> {
        self.call_timeout(input, self.config.admission_timeout)
            .await
    }

    /// Runs one input, waiting for room up to `wait` (any length:
    /// `Duration::MAX` waits as long as the pool lives). The wait covers
    /// admission, not the compute; see [`Submit::within`].
    ///
    /// # Errors
    /// As [`PoolHandle::call`].
    ///
    /// # Cancel safety
    /// As [`PoolRef::submit`].
    pub async fn call_timeout(
        &self,
        input: B::Input,
        wait: Duration,
    ) -> Result<B::Output, PoolError> {
        only(self.submit(Submit::wait(vec![input], wait)).await?)
    }

    /// Runs one input if a mailbox has room now; otherwise refused at once.
    ///
    /// # Examples
    /// ```
    /// # use corral_core::{Backend, BackendError, LoadContext};
    /// # struct Upper;
    /// # impl Backend for Upper {
    /// #     type Spec = ();
    /// #     type Input = String;
    /// #     type Output = String;
    /// #     fn load(_: &(), _: &LoadContext) -> Result<Self, BackendError> { Ok(Upper) }
    /// #     fn cost(&self, s: &String) -> usize { s.len().max(1) }
    /// #     fn run(&mut self, batch: &[&String]) -> Result<Vec<String>, BackendError> {
    /// #         Ok(batch.iter().map(|s| s.to_uppercase()).collect())
    /// #     }
    /// # }
    /// # use std::time::Duration;
    /// # use corral_core::{Pool, PoolConfig};
    /// use corral_core::PoolError;
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pool = Pool::<Upper>::spawn((), PoolConfig::default()).await?;
    /// # pool.wait_ready(Duration::from_secs(10)).await?;
    /// match pool.try_call("now".to_string()).await {
    ///     Ok(v) => assert_eq!(v, "NOW"),
    ///     // Refused: the input comes back, to retry later or shed.
    ///     Err(e) if matches!(e.error, PoolError::Overloaded { .. }) => {
    ///         let _later: Option<String> = e.inputs;
    ///     }
    ///     Err(e) => return Err(e.error.into()),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `Overloaded { retry_after }` when every mailbox is full (the input
    /// handed back); any other [`PoolError`].
    ///
    /// # Cancel safety
    /// As [`PoolRef::submit`].
    pub async fn try_call(&self, input: B::Input) -> Result<B::Output, CallError<B::Input>> {
        match self.submit(Submit::reject(vec![input])).await {
            Ok(v) => only(v).map_err(CallError::new),
            Err(e) => Err(e.map_inputs(|mut v| v.pop().expect("one input went in"))),
        }
    }

    /// Runs several inputs as one request (one reply, outputs in order),
    /// waiting for room up to the pool's `admission_timeout`.
    ///
    /// # Examples
    /// ```
    /// # use corral_core::{Backend, BackendError, LoadContext};
    /// # struct Upper;
    /// # impl Backend for Upper {
    /// #     type Spec = ();
    /// #     type Input = String;
    /// #     type Output = String;
    /// #     fn load(_: &(), _: &LoadContext) -> Result<Self, BackendError> { Ok(Upper) }
    /// #     fn cost(&self, s: &String) -> usize { s.len().max(1) }
    /// #     fn run(&mut self, batch: &[&String]) -> Result<Vec<String>, BackendError> {
    /// #         Ok(batch.iter().map(|s| s.to_uppercase()).collect())
    /// #     }
    /// # }
    /// # use std::time::Duration;
    /// # use corral_core::{Pool, PoolConfig};
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pool = Pool::<Upper>::spawn((), PoolConfig::default()).await?;
    /// # pool.wait_ready(Duration::from_secs(10)).await?;
    /// let out = pool.call_batch(vec!["x".into(), "y".into()]).await?;
    /// assert_eq!(out, ["X", "Y"]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`PoolHandle::call`]; `InvalidInput` for an empty request or one
    /// over `max_client_batch`.
    ///
    /// # Cancel safety
    /// As [`PoolRef::submit`].
    pub async fn call_batch(&self, inputs: Vec<B::Input>) -> Result<Vec<B::Output>, PoolError> {
        self.call_batch_timeout(inputs, self.config.admission_timeout)
            .await
    }

    /// [`PoolHandle::call_batch`] with its own wait for room.
    ///
    /// # Errors
    /// As [`PoolHandle::call_batch`].
    ///
    /// # Cancel safety
    /// As [`PoolRef::submit`].
    pub async fn call_batch_timeout(
        &self,
        inputs: Vec<B::Input>,
        wait: Duration,
    ) -> Result<Vec<B::Output>, PoolError> {
        Ok(self.submit(Submit::wait(inputs, wait)).await?)
    }

    /// [`PoolHandle::call_batch`] refused at once when the pool is full,
    /// handing the inputs back.
    ///
    /// # Errors
    /// As [`PoolHandle::try_call`].
    ///
    /// # Cancel safety
    /// As [`PoolRef::submit`].
    pub async fn try_call_batch(
        &self,
        inputs: Vec<B::Input>,
    ) -> Result<Vec<B::Output>, CallError<Vec<B::Input>>> {
        self.submit(Submit::reject(inputs)).await
    }

    /// Health, with each worker's real queue depth. Waits for the
    /// supervisor's answer up to [`REPORT_TIMEOUT`].
    ///
    /// # Errors
    /// `ShuttingDown` once the pool has stopped; `Timeout` if the
    /// supervisor does not answer within [`REPORT_TIMEOUT`].
    ///
    /// # Cancel safety
    /// Safe: nothing is lost if the future is dropped.
    pub async fn health(&self) -> Result<HealthReport, PoolError> {
        self.pool.health().await
    }

    /// Counters since start. Waits for the supervisor's answer up to
    /// [`REPORT_TIMEOUT`].
    ///
    /// # Errors
    /// `ShuttingDown` once the pool has stopped; `Timeout` if the
    /// supervisor does not answer within [`REPORT_TIMEOUT`].
    ///
    /// # Cancel safety
    /// Safe.
    pub async fn stats(&self) -> Result<PoolStats, PoolError> {
        self.pool.stats().await
    }

    /// Waits until every worker has loaded its model (any `timeout`, even
    /// `Duration::MAX`).
    ///
    /// # Errors
    /// `Timeout` if they are not all ready within `timeout`; `ShuttingDown`
    /// if the pool stopped.
    ///
    /// # Cancel safety
    /// Safe.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), PoolError> {
        let want = self.config.workers;
        let mut rx = self.pool.shared.ready.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n >= want))
            .await
            .map_err(|_| PoolError::Timeout)?
            .map_err(|_| PoolError::ShuttingDown)?;
        Ok(())
    }

    /// Drains and stops the pool: new requests are refused `ShuttingDown`,
    /// waiting callers too (those for whom a worker has room are admitted
    /// instead); admitted requests finish, up to `deadline` (any
    /// length), after which the rest are answered `ShuttingDown`. Returns
    /// once the supervisor has stopped.
    ///
    /// # Errors
    /// `ShuttingDown` if the pool had already stopped; `Timeout` if the
    /// supervisor has not reported the end of the drain [`REPORT_TIMEOUT`]
    /// after `deadline` (it is stuck; the shutdown still goes on).
    ///
    /// # Cancel safety
    /// The shutdown goes on if the future is dropped.
    pub async fn shutdown(&self, deadline: Duration) -> Result<ShutdownReport, PoolError> {
        let within = deadline.saturating_add(REPORT_TIMEOUT);
        let report = self
            .pool
            .ask(|reply| PoolMsg::Shutdown(deadline, reply), within)
            .await?;
        let join = self.join.lock().take();
        if let Some(join) = join {
            let _ = join.await;
        }
        Ok(report)
    }

    /// Fault injection (the `testing` feature): the worker actor in `slot`
    /// blocks forever in its next handler, as a deadlocked actor would.
    #[cfg(feature = "testing")]
    pub fn inject_actor_freeze(&self, slot: usize) {
        let _ = self
            .pool
            .actor
            .send_message(crate::msg::InternalMsg::Freeze { slot }.into());
    }

    /// Fault injection (the `testing` feature): the supervisor's next
    /// handler waits, answering nothing, until the returned sender is used
    /// or dropped.
    #[cfg(feature = "testing")]
    pub fn inject_supervisor_stall(&self) -> oneshot::Sender<()> {
        let (release, stalled) = oneshot::channel();
        let _ = self
            .pool
            .actor
            .send_message(crate::msg::InternalMsg::Stall(stalled).into());
        release
    }

    /// Fault injection (the `testing` feature): the supervisor's next
    /// handler panics, so the actor dies without `post_stop`.
    #[cfg(feature = "testing")]
    pub fn inject_supervisor_panic(&self) {
        let _ = self
            .pool
            .actor
            .send_message(crate::msg::InternalMsg::Panic.into());
    }
}
