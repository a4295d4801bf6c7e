//! [`Pool::spawn`]: validates the configuration, builds what the handles and
//! the supervisor share, and starts the supervisor.

use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::Mutex;
use ractor::Actor;

use super::{PoolHandle, PoolRef};
use crate::backend::Backend;
use crate::config::PoolConfig;
use crate::door::Door;
use crate::error::SpawnError;
use crate::router::{LeastWait, Router};
use crate::shared::PoolShared;
use crate::stats::recorder::Recorder;
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
                admission_timeout: config.admission_timeout,
            },
            config,
            join: Arc::new(Mutex::new(Some(join))),
        })
    }
}
