//! [`ServedModel`] over real Corral pools: [`PoolModel`] for an embedder,
//! [`ScoringModel`] for a reranker or a classifier, and [`spawn_model`],
//! which serves a model directory as what its `config.json` says it is.
//! Every call into `corral_core`'s `PoolHandle` lives in this module, so
//! that a change of the handle's API is adapted here and nowhere else.
//!
//! Admission is [`Call::try_call_batch`] (one request's inputs as one
//! batch): a full pool is refused at once (`Overloaded`, answered 429 with
//! `Retry-After`), never waited on; the inputs the refusal hands back are
//! dropped, since the request is answered there. The server holds no queue
//! of its own; the pool's bounded mailboxes are the only queue, and a client
//! under overload learns so immediately instead of hanging behind a flood.

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_core::{
    Backend, Call, HealthReport, Pool, PoolConfig, PoolError, PoolHandle, SpawnError,
};
use corral_embed::{
    Activation, EmbedError, EmbedInput, EmbedInputBackend, EmbedSpec, EmbedTokenizer, ModelKind,
    PairTokenized, Prompt, ScoreBackend, ScoreInput, Tokenized, TruncationSide,
};

use crate::model::{BoxFuture, Embedded, ModelCard, Scored, ServedModel, TokenizeError};

/// The pool type the server runs for an embedder: texts or token ids in,
/// timed vectors out.
pub type EmbedPool = PoolHandle<EmbedInputBackend>;

/// The pool type the server runs for a reranker or a classifier: texts,
/// pairs or their ids in, timed logits out.
pub type ScorePool = PoolHandle<ScoreBackend>;

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
    /// The directory holds another kind of model than the type asked for
    /// serves ([`spawn_model`] serves every kind).
    #[error("the model is a {kind} model; {wanted}")]
    WrongKind {
        /// What the directory's `config.json` declares.
        kind: ModelKind,
        /// What the caller should use instead.
        wanted: &'static str,
    },
}

/// Serves the model in `spec` as what its `config.json` declares: an
/// embedder through a [`PoolModel`], a reranker or a classifier
/// (`*ForSequenceClassification`) through a [`ScoringModel`]. The pool's
/// metrics carry `model = name`, as [`PoolModel::spawn`] says.
///
/// # Errors
/// A bad model directory, a bad config, or workers not ready in time.
pub async fn spawn_model(
    name: impl Into<String>,
    spec: EmbedSpec,
    config: PoolConfig,
    ready_timeout: Duration,
) -> Result<Arc<dyn ServedModel>, SpawnModelError> {
    Ok(match spec.model_kind()? {
        ModelKind::Embed => Arc::new(PoolModel::spawn(name, spec, config, ready_timeout).await?),
        _ => Arc::new(ScoringModel::spawn(name, spec, config, ready_timeout).await?),
    })
}

/// `config` with the label `model = name` unless it names a `model`.
fn labelled(mut config: PoolConfig, name: &str) -> PoolConfig {
    if !config.metric_labels.iter().any(|(k, _)| k == "model") {
        config.metric_labels.push(("model".into(), name.to_owned()));
    }
    config
}

/// Spawns a pool and waits up to `ready_timeout` for its workers; a pool
/// not ready in time is stopped.
async fn spawn_ready<B: Backend>(
    spec: B::Spec,
    config: PoolConfig,
    ready_timeout: Duration,
) -> Result<PoolHandle<B>, SpawnModelError> {
    let pool = Pool::<B>::spawn(spec, config).await?;
    if let Err(source) = pool.wait_ready(ready_timeout).await {
        let _ = pool.shutdown(Duration::ZERO).await;
        return Err(SpawnModelError::NotReady {
            timeout: ready_timeout,
            source,
        });
    }
    Ok(pool)
}

/// Drains `pool` within `deadline`, logging how it went.
async fn stop_pool<B: Backend>(pool: &PoolHandle<B>, name: &str, deadline: Duration) {
    match pool.shutdown(deadline).await {
        Ok(report) => tracing::info!(
            model = %name,
            drained = report.drained,
            aborted = report.aborted,
            "pool stopped"
        ),
        Err(e) => tracing::debug!(model = %name, "pool already stopped: {e}"),
    }
}

/// Queue and compute time of a request from its last output's batch: one
/// request runs in one batch (a retry after a failed worker runs it again,
/// alone), so the last batch's figures are its own.
pub(crate) fn timings(
    submitted: Instant,
    last: Option<(Instant, Duration)>,
) -> (Option<Duration>, Option<Duration>) {
    last.map(|(started, ran)| (started.saturating_duration_since(submitted), ran))
        .unzip()
}

/// Checks client-tokenised ids against the vocabulary.
pub(crate) fn check_ids(tokenizer: &EmbedTokenizer, ids: &[u32]) -> Result<(), TokenizeError> {
    let vocab_size = tokenizer.vocab_size();
    match ids.iter().find(|&&id| id as usize >= vocab_size) {
        Some(&id) => Err(TokenizeError::UnknownTokenId { id, vocab_size }),
        None => Ok(()),
    }
}

/// What every served model's tokenizer answers, for both kinds of pool.
pub(crate) fn tokenize(
    tokenizer: &EmbedTokenizer,
    text: &str,
    side: TruncationSide,
) -> Result<Tokenized, TokenizeError> {
    tokenizer
        .encode(text, side)
        .map_err(|e| TokenizeError::Encode(e.to_string()))
}

pub(crate) fn wrap_ids(
    tokenizer: &EmbedTokenizer,
    ids: Vec<u32>,
    side: TruncationSide,
) -> Result<Tokenized, TokenizeError> {
    check_ids(tokenizer, &ids)?;
    tokenizer
        .wrap_ids(ids, side)
        .map_err(|e| TokenizeError::Encode(e.to_string()))
}

pub(crate) fn decode(
    tokenizer: &EmbedTokenizer,
    ids: &[u32],
    skip_special_tokens: bool,
) -> Result<String, TokenizeError> {
    check_ids(tokenizer, ids)?;
    tokenizer
        .decode(ids, skip_special_tokens)
        .map_err(|e| TokenizeError::Encode(e.to_string()))
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
    /// A bad model directory, a bad config, workers not ready in time, or
    /// [`SpawnModelError::WrongKind`] for a reranker's or a classifier's
    /// directory.
    pub async fn spawn(
        name: impl Into<String>,
        spec: EmbedSpec,
        config: PoolConfig,
        ready_timeout: Duration,
    ) -> Result<Self, SpawnModelError> {
        let name = name.into();
        let kind = spec.model_kind()?;
        if kind != ModelKind::Embed {
            return Err(SpawnModelError::WrongKind {
                kind,
                wanted: "serve it with spawn_model or ScoringModel",
            });
        }
        let config = labelled(config, &name);
        let spec = spec.with_normalize(false);
        let tokenizer = EmbedTokenizer::load(&spec)?;
        let pool = spawn_ready::<EmbedInputBackend>(spec.clone(), config, ready_timeout).await?;
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
        tokenize(&self.tokenizer, text, side)
    }

    fn wrap_ids(&self, ids: Vec<u32>, side: TruncationSide) -> Result<Tokenized, TokenizeError> {
        wrap_ids(&self.tokenizer, ids, side)
    }

    fn prompt(&self, choice: &Prompt) -> Result<Option<String>, TokenizeError> {
        self.tokenizer.resolve_prompt(choice).map_err(|e| match e {
            EmbedError::InvalidInput(m) => TokenizeError::Prompt(m),
            e => TokenizeError::Prompt(e.to_string()),
        })
    }

    fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizeError> {
        decode(&self.tokenizer, ids, skip_special_tokens)
    }

    fn embed(&self, inputs: Vec<Vec<u32>>) -> BoxFuture<'_, Result<Embedded, PoolError>> {
        Box::pin(async move {
            let inputs = inputs.into_iter().map(EmbedInput::Tokens).collect();
            let submitted = Instant::now();
            let outputs = self.pool.try_call_batch(inputs).await?;
            let (queue_time, compute_time) = timings(
                submitted,
                outputs.last().map(|o| (o.batch_started, o.batch_time)),
            );
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
        Box::pin(stop_pool(&self.pool, &self.card.name, deadline))
    }
}

/// A served reranker or classifier backed by a Corral scoring pool
/// ([`ScoreBackend`]): texts and pairs are tokenised here, with the model's
/// pair template and token types, and the pool answers raw logits; the
/// routes apply the card's activation.
#[derive(Clone)]
pub struct ScoringModel {
    card: ModelCard,
    tokenizer: Arc<EmbedTokenizer>,
    pool: ScorePool,
}

impl std::fmt::Debug for ScoringModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScoringModel")
            .field("card", &self.card)
            .finish_non_exhaustive()
    }
}

impl ScoringModel {
    /// Spawns a scoring pool for `spec` and waits up to `ready_timeout` for
    /// its workers to load; metrics labelled as [`PoolModel::spawn`]'s.
    ///
    /// # Errors
    /// A bad model directory, a bad config, workers not ready in time, or
    /// [`SpawnModelError::WrongKind`] for an embedder's directory.
    pub async fn spawn(
        name: impl Into<String>,
        spec: EmbedSpec,
        config: PoolConfig,
        ready_timeout: Duration,
    ) -> Result<Self, SpawnModelError> {
        let name = name.into();
        let kind = spec.model_kind()?;
        if kind == ModelKind::Embed {
            return Err(SpawnModelError::WrongKind {
                kind,
                wanted: "serve it with spawn_model or PoolModel",
            });
        }
        let config = labelled(config, &name);
        let tokenizer = EmbedTokenizer::load(&spec)?;
        let pool = spawn_ready::<ScoreBackend>(spec.clone(), config, ready_timeout).await?;
        Ok(Self::new(name, &spec, tokenizer, pool)?)
    }

    /// Wraps a scoring pool a host app already runs; `spec` is the one it
    /// was spawned with.
    ///
    /// # Errors
    /// When the model directory's configuration cannot be read.
    pub fn new(
        name: impl Into<String>,
        spec: &EmbedSpec,
        tokenizer: EmbedTokenizer,
        pool: ScorePool,
    ) -> Result<Self, EmbedError> {
        let info = spec.score_info()?;
        let config = pool.config();
        let card = ModelCard {
            name: name.into(),
            kind: info.kind,
            dimensions: 0,
            max_input_tokens: info.max_seq_length,
            pooling: "cls".into(),
            workers: config.workers,
            queue_capacity: config.queue_capacity,
            batch_queue_capacity: config.batch_queue_capacity,
            labels: info.labels,
            activation: info.activation,
        };
        Ok(Self {
            card,
            tokenizer: Arc::new(tokenizer),
            pool,
        })
    }

    /// The pool behind this model.
    pub fn pool(&self) -> &ScorePool {
        &self.pool
    }
}

impl ServedModel for ScoringModel {
    fn card(&self) -> &ModelCard {
        &self.card
    }

    fn tokenize(&self, text: &str, side: TruncationSide) -> Result<Tokenized, TokenizeError> {
        tokenize(&self.tokenizer, text, side)
    }

    fn wrap_ids(&self, ids: Vec<u32>, side: TruncationSide) -> Result<Tokenized, TokenizeError> {
        wrap_ids(&self.tokenizer, ids, side)
    }

    fn embed(&self, _inputs: Vec<Vec<u32>>) -> BoxFuture<'_, Result<Embedded, PoolError>> {
        Box::pin(async move {
            Err(PoolError::InvalidInput(format!(
                "model `{}` is a {} model: it does not embed",
                self.card.name, self.card.kind
            )))
        })
    }

    fn tokenize_pair(
        &self,
        first: &str,
        second: Option<&str>,
    ) -> Result<PairTokenized, TokenizeError> {
        self.tokenizer
            .encode_pair(first, second)
            .map_err(|e| TokenizeError::Encode(e.to_string()))
    }

    fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizeError> {
        decode(&self.tokenizer, ids, skip_special_tokens)
    }

    fn score(&self, inputs: Vec<PairTokenized>) -> BoxFuture<'_, Result<Scored, PoolError>> {
        Box::pin(async move {
            let inputs = inputs.into_iter().map(ScoreInput::Tokens).collect();
            let submitted = Instant::now();
            let outputs = self.pool.try_call_batch(inputs).await?;
            let (queue_time, compute_time) = timings(
                submitted,
                outputs.last().map(|o| (o.batch_started, o.batch_time)),
            );
            Ok(Scored {
                logits: outputs.into_iter().map(|o| o.logits).collect(),
                queue_time,
                compute_time,
            })
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<HealthReport, PoolError>> {
        Box::pin(self.pool.health())
    }

    fn shutdown(&self, deadline: Duration) -> BoxFuture<'_, ()> {
        Box::pin(stop_pool(&self.pool, &self.card.name, deadline))
    }
}
