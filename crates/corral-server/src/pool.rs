//! [`PoolModel`]: [`ServedModel`] over a real Corral pool. Every call into
//! `corral_core`'s `PoolHandle` lives in this module, so that a change of
//! the handle's API is adapted here and nowhere else.
//!
//! Admission is [`Call::try_call_batch`] (one request's inputs as one
//! batch): a full pool is refused at once (`Overloaded`, answered 429 with
//! `Retry-After`), never waited on; the inputs the refusal hands back are
//! dropped, since the request is answered there. The server holds no queue
//! of its own; the pool's bounded mailboxes are the only queue, and a client
//! under overload learns so immediately instead of hanging behind a flood.

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_core::{Call, HealthReport, Pool, PoolConfig, PoolError, PoolHandle, SpawnError};
use corral_embed::{
    Activation, EmbedError, EmbedInput, EmbedInputBackend, EmbedSpec, EmbedTokenizer, ModelKind,
    Tokenized, TruncationSide,
};

use crate::model::{BoxFuture, Embedded, ModelCard, ServedModel, TokenizeError};

/// The pool type the server runs: texts or token ids in, timed vectors out.
pub type EmbedPool = PoolHandle<EmbedInputBackend>;

/// Why [`PoolModel::spawn`] could not start a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnModelError {
    /// The model directory, its configuration or its tokenizer is not
    /// usable.
    #[error(transparent)]
    Model(#[from] EmbedError),
    /// The pool could not be started (a bad config, or the actor system).
    #[error(transparent)]
    Pool(#[from] SpawnError),
    /// The pool started, but its workers were not ready in time; it was
    /// stopped.
    #[error("workers not ready in {timeout:?}: {source}")]
    NotReady {
        /// How long it waited.
        timeout: Duration,
        /// What the pool said.
        source: PoolError,
    },
}

/// A served model backed by a Corral embedding pool.
#[derive(Clone)]
pub struct PoolModel {
    card: ModelCard,
    tokenizer: Arc<EmbedTokenizer>,
    pool: EmbedPool,
}

impl std::fmt::Debug for PoolModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolModel")
            .field("card", &self.card)
            .finish_non_exhaustive()
    }
}

impl PoolModel {
    /// Spawns a pool for `spec` (normalisation off: the server normalises,
    /// so that TEI's `normalize: false` can be honoured) and waits up to
    /// `ready_timeout` for its workers to load. The pool's metrics series
    /// carry the label `model = name` unless `config.metric_labels` already
    /// names a `model`.
    ///
    /// # Errors
    /// A bad model directory, a bad config, or workers not ready in time.
    pub async fn spawn(
        name: impl Into<String>,
        spec: EmbedSpec,
        config: PoolConfig,
        ready_timeout: Duration,
    ) -> Result<Self, SpawnModelError> {
        let name = name.into();
        let mut config = config;
        if !config.metric_labels.iter().any(|(k, _)| k == "model") {
            config.metric_labels.push(("model".into(), name.clone()));
        }
        let spec = spec.with_normalize(false);
        let tokenizer = EmbedTokenizer::load(&spec)?;
        let pool = Pool::<EmbedInputBackend>::spawn(spec.clone(), config).await?;
        if let Err(source) = pool.wait_ready(ready_timeout).await {
            let _ = pool.shutdown(Duration::ZERO).await;
            return Err(SpawnModelError::NotReady {
                timeout: ready_timeout,
                source,
            });
        }
        Ok(Self::new(name, &spec, tokenizer, pool)?)
    }

    /// Wraps a pool a host app already runs. The pool should be spawned
    /// with `normalize` off (the server normalises), and with
    /// `PoolConfig::metric_labels` holding `("model", name)` for its series
    /// to be labelled by model as the server's own are; `spec` is the one it
    /// was spawned with.
    ///
    /// # Errors
    /// When the model directory's configuration cannot be read.
    pub fn new(
        name: impl Into<String>,
        spec: &EmbedSpec,
        tokenizer: EmbedTokenizer,
        pool: EmbedPool,
    ) -> Result<Self, EmbedError> {
        let info = spec.model_info()?;
        let config = pool.config();
        let card = ModelCard {
            name: name.into(),
            kind: ModelKind::Embed,
            dimensions: info.dim,
            max_input_tokens: info.max_seq_length,
            pooling: info.pooling.to_string(),
            workers: config.workers,
            queue_capacity: config.queue_capacity,
            batch_queue_capacity: config.batch_queue_capacity,
            labels: Vec::new(),
            activation: Activation::Identity,
        };
        Ok(Self {
            card,
            tokenizer: Arc::new(tokenizer),
            pool,
        })
    }

    /// The pool behind this model.
    pub fn pool(&self) -> &EmbedPool {
        &self.pool
    }
}

impl ServedModel for PoolModel {
    fn card(&self) -> &ModelCard {
        &self.card
    }

    fn tokenize(&self, text: &str, side: TruncationSide) -> Result<Tokenized, TokenizeError> {
        self.tokenizer
            .encode(text, side)
            .map_err(|e| TokenizeError::Encode(e.to_string()))
    }

    fn wrap_ids(&self, ids: Vec<u32>, side: TruncationSide) -> Result<Tokenized, TokenizeError> {
        let vocab_size = self.tokenizer.vocab_size();
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
            return Err(TokenizeError::UnknownTokenId { id, vocab_size });
        }
        self.tokenizer
            .wrap_ids(ids, side)
            .map_err(|e| TokenizeError::Encode(e.to_string()))
    }

    fn embed(&self, inputs: Vec<Vec<u32>>) -> BoxFuture<'_, Result<Embedded, PoolError>> {
        Box::pin(async move {
            let inputs = inputs.into_iter().map(EmbedInput::Tokens).collect();
            let submitted = Instant::now();
            let outputs = self.pool.try_call_batch(inputs).await?;
            // One request runs in one batch (a retry after a failed worker
            // runs it again, alone): the last batch's figures are its own.
            let (queue_time, compute_time) = outputs
                .last()
                .map(|o| {
                    (
                        o.batch_started.saturating_duration_since(submitted),
                        o.batch_time,
                    )
                })
                .unzip();
            Ok(Embedded {
                vectors: outputs.into_iter().map(|o| o.vector).collect(),
                queue_time,
                compute_time,
            })
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<HealthReport, PoolError>> {
        Box::pin(self.pool.health())
    }

    fn shutdown(&self, deadline: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            match self.pool.shutdown(deadline).await {
                Ok(report) => tracing::info!(
                    model = %self.card.name,
                    drained = report.drained,
                    aborted = report.aborted,
                    "pool stopped"
                ),
                Err(e) => tracing::debug!(model = %self.card.name, "pool already stopped: {e}"),
            }
        })
    }
}
