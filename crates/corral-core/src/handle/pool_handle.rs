//! [`PoolHandle`]: the typed, cheap-to-clone handle [`crate::Pool::spawn`]
//! returns.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ractor::ActorRef;
use tokio::task::JoinHandle;

use super::pool_ref::{PoolRef, REPORT_TIMEOUT};
use crate::backend::Backend;
use crate::call::Call;
use crate::config::PoolConfig;
use crate::error::PoolError;
use crate::job::Reply;
use crate::msg::{PoolMsg, ShutdownReport, Submit};
use crate::stats::{HealthReport, PoolLoad, PoolStats};

/// A typed, cheap-to-clone front door to a pool: the [`Call`] family, and
/// the pool's health, stats, readiness and shutdown.
///
/// # Examples
/// ```
/// # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/handle/doc_pool.rs"));
/// use std::time::Duration;
/// use corral_core::{Call, Pool, PoolConfig};
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
    pub(super) pool: PoolRef<B>,
    pub(super) config: Arc<PoolConfig>,
    pub(super) join: Arc<Mutex<Option<JoinHandle<()>>>>,
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

impl<B: Backend> Call for PoolHandle<B> {
    type Input = B::Input;
    type Output = B::Output;

    /// As [`PoolRef`]'s: admits `submit` and waits for its answer.
    ///
    /// # Errors
    /// As [`Call::submit`].
    ///
    /// # Cancel safety
    /// As [`PoolRef`]'s.
    fn submit(
        &self,
        submit: Submit<B::Input>,
    ) -> impl std::future::Future<Output = Reply<B::Input, B::Output>> + Send {
        self.pool.submit(submit)
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
        self.pool.health().await
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
        self.pool.stats().await
    }

    /// Waits until every worker has loaded its model (any `timeout`, even
    /// `Duration::MAX`).
    ///
    /// # Errors
    /// `TimedOut` if they are not all ready within `timeout`;
    /// `ShuttingDown` if the pool stopped.
    ///
    /// # Cancel safety
    /// Safe.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), PoolError> {
        let want = self.config.workers;
        let mut rx = self.pool.shared.ready.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n >= want))
            .await
            .map_err(|_| PoolError::TimedOut)?
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
    /// `ShuttingDown` if the pool had already stopped; `TimedOut` if the
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
}
