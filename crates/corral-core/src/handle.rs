//! The front door for host applications: [`Pool::spawn`] starts a pool and
//! returns a [`PoolHandle`], a cheap-to-clone typed wrapper over
//! [`PoolMsg`]. The handle takes an admission permit before it sends, so a
//! local flood is refused before it ever reaches the supervisor's (unbounded)
//! ractor mailbox.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ractor::{Actor, ActorRef};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::backend::Backend;
use crate::config::PoolConfig;
use crate::error::{PoolError, SpawnError};
use crate::job::Reply;
use crate::msg::{InternalMsg, PoolMsg, ShutdownReport, Submit};
use crate::router::{LeastDepth, Router};
use crate::stats::{HealthReport, PoolStats};
use crate::supervisor::{Supervisor, SupervisorArgs};

/// State the handle and the supervisor share. One per pool: nothing global,
/// so any number of pools live side by side in one process.
pub(crate) struct PoolShared {
    /// Ready workers, published by the supervisor.
    pub(crate) ready: watch::Sender<usize>,
    /// Callers in the supervisor's waiting line.
    pub(crate) waiting: Arc<AtomicUsize>,
    /// Abandoned compute threads still alive.
    pub(crate) abandoned: Arc<AtomicUsize>,
    next_worker_id: AtomicU64,
    /// Requests sent by handles and not yet answered.
    in_flight: AtomicUsize,
    permit_limit: usize,
}

impl PoolShared {
    pub(crate) fn next_worker_id(&self) -> u64 {
        self.next_worker_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Starts pools.
pub struct Pool<B: Backend>(PhantomData<fn() -> B>);

impl<B: Backend> Pool<B> {
    /// Validates `config`, spawns the supervisor and its workers (each loads
    /// the model on its own compute thread) and returns a handle. Returns
    /// before the models are loaded; see [`PoolHandle::wait_ready`].
    ///
    /// # Errors
    /// [`SpawnError::Config`] for a configuration that cannot work,
    /// [`SpawnError::Actor`] if ractor refuses to spawn.
    pub async fn spawn(spec: B::Spec, config: PoolConfig) -> Result<PoolHandle<B>, SpawnError> {
        Self::spawn_with_router(spec, config, LeastDepth::default()).await
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
        let shared = Arc::new(PoolShared {
            ready: watch::Sender::new(0),
            waiting: Arc::new(AtomicUsize::new(0)),
            abandoned: Arc::new(AtomicUsize::new(0)),
            next_worker_id: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            permit_limit: config.total_capacity(),
        });
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
            actor,
            shared,
            config,
            join: Arc::new(Mutex::new(Some(join))),
        })
    }
}

/// A typed, cheap-to-clone front door to a pool.
///
/// Method family (as tokio's `send`/`try_send`/`send_timeout`):
/// `embed` waits for room up to `admission_timeout`, `embed_timeout` up to a
/// given time, `try_embed` is refused at once with `Overloaded` when every
/// mailbox is full; the `_batch` forms take several inputs in one request.
pub struct PoolHandle<B: Backend> {
    actor: ActorRef<PoolMsg<B>>,
    shared: Arc<PoolShared>,
    config: Arc<PoolConfig>,
    join: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl<B: Backend> Clone for PoolHandle<B> {
    fn clone(&self) -> Self {
        Self {
            actor: self.actor.clone(),
            shared: self.shared.clone(),
            config: self.config.clone(),
            join: self.join.clone(),
        }
    }
}

/// Releases a handle's admission permit however the call ends.
struct Permit<'a>(&'a AtomicUsize);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn only<O>(mut v: Vec<O>) -> Result<O, PoolError> {
    match (v.pop(), v.is_empty()) {
        (Some(o), true) => Ok(o),
        _ => Err(PoolError::Backend("expected exactly one output".into())),
    }
}

impl<B: Backend> PoolHandle<B> {
    /// The supervisor actor, for host actors that send [`PoolMsg`] directly
    /// (with `call!`/`call_t!`).
    pub fn actor(&self) -> &ActorRef<PoolMsg<B>> {
        &self.actor
    }

    /// The configuration the pool runs with.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Sends one request and waits for its answer.
    ///
    /// # Errors
    /// Any [`PoolError`]; `ShuttingDown` once the pool is stopped.
    ///
    /// # Cancel safety
    /// Dropping the future withdraws the request: if it has not started
    /// running, the worker skips it; its permit is released at once.
    pub async fn submit(&self, submit: Submit<B::Input>) -> Reply<B::Output> {
        let prev = self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        let _permit = Permit(&self.shared.in_flight);
        if prev >= self.shared.permit_limit {
            // Everything the pool can hold is already held by this handle's
            // callers: refuse before touching the supervisor's mailbox.
            return Err(PoolError::Overloaded {
                retry_after: Duration::from_millis(10),
            });
        }
        let (tx, rx) = oneshot::channel();
        self.actor
            .send_message(PoolMsg::Submit(submit, tx.into()))
            .map_err(|_| PoolError::ShuttingDown)?;
        // A reply port dropped unanswered means the supervisor died.
        rx.await.unwrap_or(Err(PoolError::WorkerLost))
    }

    /// Runs one input, waiting up to `admission_timeout` for room.
    ///
    /// # Errors
    /// `Timeout` if no room came in time; `Overloaded` if the waiting line
    /// is full too; any other [`PoolError`].
    ///
    /// # Cancel safety
    /// As [`PoolHandle::submit`].
    pub async fn embed(&self, input: B::Input) -> Result<B::Output, PoolError> {
        self.embed_timeout(input, self.config.admission_timeout)
            .await
    }

    /// Runs one input, waiting up to `timeout` for room. The deadline covers
    /// the wait for a mailbox slot, not the compute.
    ///
    /// # Errors
    /// As [`PoolHandle::embed`].
    ///
    /// # Cancel safety
    /// As [`PoolHandle::submit`].
    pub async fn embed_timeout(
        &self,
        input: B::Input,
        timeout: Duration,
    ) -> Result<B::Output, PoolError> {
        only(self.submit(Submit::wait(vec![input], timeout)).await?)
    }

    /// Runs one input if a mailbox has room now; otherwise `Overloaded`.
    ///
    /// # Errors
    /// `Overloaded { retry_after }` when every mailbox is full; any other
    /// [`PoolError`].
    ///
    /// # Cancel safety
    /// As [`PoolHandle::submit`].
    pub async fn try_embed(&self, input: B::Input) -> Result<B::Output, PoolError> {
        only(self.submit(Submit::reject(vec![input])).await?)
    }

    /// Runs several inputs as one request (one reply, outputs in order),
    /// waiting up to `admission_timeout` for room.
    ///
    /// # Errors
    /// As [`PoolHandle::embed`]; `InvalidInput` for an empty request or one
    /// over `max_client_batch`.
    ///
    /// # Cancel safety
    /// As [`PoolHandle::submit`].
    pub async fn embed_batch(&self, inputs: Vec<B::Input>) -> Result<Vec<B::Output>, PoolError> {
        self.submit(Submit::wait(inputs, self.config.admission_timeout))
            .await
    }

    /// [`PoolHandle::embed_batch`] with its own wait deadline.
    ///
    /// # Errors
    /// As [`PoolHandle::embed_batch`].
    ///
    /// # Cancel safety
    /// As [`PoolHandle::submit`].
    pub async fn embed_batch_timeout(
        &self,
        inputs: Vec<B::Input>,
        timeout: Duration,
    ) -> Result<Vec<B::Output>, PoolError> {
        self.submit(Submit::wait(inputs, timeout)).await
    }

    /// [`PoolHandle::embed_batch`] refused at once when the pool is full.
    ///
    /// # Errors
    /// As [`PoolHandle::try_embed`].
    ///
    /// # Cancel safety
    /// As [`PoolHandle::submit`].
    pub async fn try_embed_batch(
        &self,
        inputs: Vec<B::Input>,
    ) -> Result<Vec<B::Output>, PoolError> {
        self.submit(Submit::reject(inputs)).await
    }

    /// Health, with each worker's real queue depth.
    ///
    /// # Errors
    /// `ShuttingDown` once the pool has stopped.
    ///
    /// # Cancel safety
    /// Safe: nothing is lost if the future is dropped.
    pub async fn health(&self) -> Result<HealthReport, PoolError> {
        ractor::call!(self.actor, PoolMsg::Health).map_err(|_| PoolError::ShuttingDown)
    }

    /// Counters since start.
    ///
    /// # Errors
    /// `ShuttingDown` once the pool has stopped.
    ///
    /// # Cancel safety
    /// Safe.
    pub async fn stats(&self) -> Result<PoolStats, PoolError> {
        ractor::call!(self.actor, PoolMsg::Stats).map_err(|_| PoolError::ShuttingDown)
    }

    /// Waits until every worker has loaded its model.
    ///
    /// # Errors
    /// `Timeout` if they are not all ready within `timeout`.
    ///
    /// # Cancel safety
    /// Safe.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), PoolError> {
        let want = self.config.workers;
        let mut rx = self.shared.ready.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n >= want))
            .await
            .map_err(|_| PoolError::Timeout)?
            .map_err(|_| PoolError::ShuttingDown)?;
        Ok(())
    }

    /// Drains and stops the pool: new requests are refused `ShuttingDown`,
    /// waiting callers too; admitted requests finish, up to `deadline`, after
    /// which the rest are answered `ShuttingDown`. Returns once the
    /// supervisor has stopped.
    ///
    /// # Errors
    /// `ShuttingDown` if the pool had already stopped.
    ///
    /// # Cancel safety
    /// The shutdown goes on if the future is dropped.
    pub async fn shutdown(&self, deadline: Duration) -> Result<ShutdownReport, PoolError> {
        let report = ractor::call!(self.actor, PoolMsg::Shutdown, deadline)
            .map_err(|_| PoolError::ShuttingDown)?;
        let join = self.join.lock().take();
        if let Some(join) = join {
            let _ = join.await;
        }
        Ok(report)
    }

    /// Fault injection for tests and chaos runs: the worker actor in `slot`
    /// blocks forever in its next handler, as a deadlocked actor would.
    #[doc(hidden)]
    pub fn inject_actor_freeze(&self, slot: usize) {
        let _ = self.actor.send_message(InternalMsg::Freeze { slot }.into());
    }
}
