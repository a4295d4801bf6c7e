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
    PairTokenized, Prompt, ScoreBackend, ScoreInput, SparseBackend, SparseInput, Tokenized,
    TruncationSide,
};

use crate::model::{
    BoxFuture, Embedded, ModelCard, Scored, ServedModel, SparseEmbedded, TokenSpan, TokenizeError,
};

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
/// (`*ForSequenceClassification`) through a [`ScoringModel`], a SPLADE
/// model (`SpladePooling` in `modules.json`) through a [`SparseModel`]. The pool's
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
        ModelKind::SparseEmbed => {
            Arc::new(SparseModel::spawn(name, spec, config, ready_timeout).await?)
        }
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

/// The tokens of `text` as `/tokenize` lists them, from the model's own
/// tokenizer: each content token with the bytes of `text` it covers and
/// those bytes as its text; a token the template adds with its decoded
/// text and no offsets, listed only when `add_special_tokens`.
pub(crate) fn tokens(
    tokenizer: &EmbedTokenizer,
    text: &str,
    add_special_tokens: bool,
) -> Result<Vec<TokenSpan>, TokenizeError> {
    let spanned = tokenizer
        .encode_spans(text)
        .map_err(|e| TokenizeError::Encode(e.to_string()))?;
    let mut tokens = Vec::with_capacity(spanned.len());
    for t in spanned {
        let text = match &t.span {
            Some(span) => text.get(span.clone()).unwrap_or_default().to_owned(),
            None if !add_special_tokens => continue,
            None => decode(tokenizer, &[t.id], false)?,
        };
        tokens.push(TokenSpan {
            id: t.id,
            text,
            special: t.special,
            start: t.span.as_ref().map(|s| s.start),
            stop: t.span.map(|s| s.end),
        });
    }
    Ok(tokens)
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

/// A model served by one of Corral's pools in this process: its card and
/// tokenizer beside the pool that runs it. The backend decides the kind:
/// [`PoolModel`] embeds, [`ScoringModel`] reranks or classifies, and
/// [`spawn_model`] picks the one a directory declares. Tokenising, prompts,
/// decoding, health and draining are the same for both.
pub struct LocalModel<B: LocalBackend> {
    card: ModelCard,
    tokenizer: Arc<EmbedTokenizer>,
    pool: PoolHandle<B>,
}

/// A served model backed by a Corral embedding pool.
pub type PoolModel = LocalModel<EmbedInputBackend>;

/// A served reranker or classifier backed by a Corral scoring pool
/// ([`ScoreBackend`]): texts and pairs are tokenised here, with the model's
/// pair template and token types, and the pool answers raw logits; the
/// routes apply the card's activation.
pub type ScoringModel = LocalModel<ScoreBackend>;

/// A served SPLADE model backed by a pool of [`SparseBackend`] workers:
/// texts are tokenised here (prompts are not applied: a SPLADE model
/// declares none here), and the pool answers one sparse vector per input.
pub type SparseModel = LocalModel<SparseBackend>;

mod sealed {
    pub trait Sealed {}
    impl Sealed for corral_embed::EmbedInputBackend {}
    impl Sealed for corral_embed::ScoreBackend {}
    impl Sealed for corral_embed::SparseBackend {}
}

/// The backends a [`LocalModel`] runs: what sets an embedding pool apart
/// from a scoring or a sparse pool behind the seam (which kinds of model
/// it serves, its card, and its one task). Sealed: implemented for
/// [`EmbedInputBackend`], [`ScoreBackend`] and [`SparseBackend`] only.
pub trait LocalBackend: Backend<Spec = EmbedSpec> + sealed::Sealed + Sized {
    /// Whether this backend serves a model of `kind`.
    #[doc(hidden)]
    fn serves(kind: ModelKind) -> bool;

    /// What to use instead for a model it does not serve.
    #[doc(hidden)]
    const INSTEAD: &'static str;

    /// The spec the pool is spawned with.
    #[doc(hidden)]
    fn pool_spec(spec: EmbedSpec) -> EmbedSpec {
        spec
    }

    /// The card of the model in `spec`, served as `name` by `config`.
    #[doc(hidden)]
    fn card(name: String, spec: &EmbedSpec, config: &PoolConfig) -> Result<ModelCard, EmbedError>;

    /// [`ServedModel::embed`]: refused unless the backend embeds.
    #[doc(hidden)]
    fn embed(
        model: &LocalModel<Self>,
        inputs: Vec<Vec<u32>>,
    ) -> BoxFuture<'_, Result<Embedded, PoolError>> {
        let _ = inputs;
        Box::pin(async move {
            Err(PoolError::InvalidInput(format!(
                "model `{}` is a {} model: it does not embed",
                model.card.name, model.card.kind
            )))
        })
    }

    /// [`ServedModel::embed_sparse`]: refused unless the backend gives
    /// sparse vectors.
    #[doc(hidden)]
    fn embed_sparse(
        model: &LocalModel<Self>,
        inputs: Vec<Vec<u32>>,
    ) -> BoxFuture<'_, Result<SparseEmbedded, PoolError>> {
        let _ = inputs;
        Box::pin(async move {
            Err(PoolError::InvalidInput(format!(
                "model `{}` is a {} model: it does not give sparse vectors",
                model.card.name, model.card.kind
            )))
        })
    }

    /// [`ServedModel::score`]: refused unless the backend scores.
    #[doc(hidden)]
    fn score(
        model: &LocalModel<Self>,
        inputs: Vec<PairTokenized>,
    ) -> BoxFuture<'_, Result<Scored, PoolError>> {
        let _ = inputs;
        Box::pin(async move {
            Err(PoolError::InvalidInput(format!(
                "model `{}` is a {} model: it does not score texts",
                model.card.name, model.card.kind
            )))
        })
    }
}

impl LocalBackend for EmbedInputBackend {
    fn serves(kind: ModelKind) -> bool {
        kind == ModelKind::Embed
    }

    const INSTEAD: &'static str = "serve it with spawn_model or ScoringModel";

    /// Normalisation off: the server normalises, so that TEI's
    /// `normalize: false` can be honoured.
    fn pool_spec(spec: EmbedSpec) -> EmbedSpec {
        spec.with_normalize(false)
    }

    fn card(name: String, spec: &EmbedSpec, config: &PoolConfig) -> Result<ModelCard, EmbedError> {
        let info = spec.model_info()?;
        Ok(ModelCard {
            name,
            kind: ModelKind::Embed,
            dimensions: info.dim,
            max_input_tokens: info.max_seq_length,
            pooling: info.pooling.to_string(),
            workers: config.workers,
            queue_capacity: config.queue_capacity,
            batch_queue_capacity: config.batch_queue_capacity,
            labels: Vec::new(),
            activation: Activation::Identity,
        })
    }

    fn embed(
        model: &LocalModel<Self>,
        inputs: Vec<Vec<u32>>,
    ) -> BoxFuture<'_, Result<Embedded, PoolError>> {
        Box::pin(async move {
            let inputs = inputs.into_iter().map(EmbedInput::Tokens).collect();
            let (outputs, queue_time, compute_time) =
                timed_batch(&model.pool, inputs, |o| (o.batch_started, o.batch_time)).await?;
            Ok(Embedded {
                vectors: outputs.into_iter().map(|o| o.vector).collect(),
                queue_time,
                compute_time,
            })
        })
    }
}

impl LocalBackend for ScoreBackend {
    fn serves(kind: ModelKind) -> bool {
        matches!(kind, ModelKind::Rerank | ModelKind::Classify)
    }

    const INSTEAD: &'static str = "serve it with spawn_model or PoolModel";

    fn card(name: String, spec: &EmbedSpec, config: &PoolConfig) -> Result<ModelCard, EmbedError> {
        let info = spec.score_info()?;
        Ok(ModelCard {
            name,
            kind: info.kind,
            dimensions: 0,
            max_input_tokens: info.max_seq_length,
            pooling: "cls".into(),
            workers: config.workers,
            queue_capacity: config.queue_capacity,
            batch_queue_capacity: config.batch_queue_capacity,
            labels: info.labels,
            activation: info.activation,
        })
    }

    fn score(
        model: &LocalModel<Self>,
        inputs: Vec<PairTokenized>,
    ) -> BoxFuture<'_, Result<Scored, PoolError>> {
        Box::pin(async move {
            let inputs = inputs.into_iter().map(ScoreInput::Tokens).collect();
            let (outputs, queue_time, compute_time) =
                timed_batch(&model.pool, inputs, |o| (o.batch_started, o.batch_time)).await?;
            Ok(Scored {
                logits: outputs.into_iter().map(|o| o.logits).collect(),
                queue_time,
                compute_time,
            })
        })
    }
}

impl LocalBackend for SparseBackend {
    fn serves(kind: ModelKind) -> bool {
        kind == ModelKind::SparseEmbed
    }

    const INSTEAD: &'static str = "serve it with spawn_model, PoolModel or ScoringModel";

    fn card(name: String, spec: &EmbedSpec, config: &PoolConfig) -> Result<ModelCard, EmbedError> {
        let info = spec.sparse_info()?;
        Ok(ModelCard {
            name,
            kind: ModelKind::SparseEmbed,
            dimensions: info.vocab_size,
            max_input_tokens: info.max_seq_length,
            pooling: "splade".into(),
            workers: config.workers,
            queue_capacity: config.queue_capacity,
            batch_queue_capacity: config.batch_queue_capacity,
            labels: Vec::new(),
            activation: Activation::Identity,
        })
    }

    fn embed_sparse(
        model: &LocalModel<Self>,
        inputs: Vec<Vec<u32>>,
    ) -> BoxFuture<'_, Result<SparseEmbedded, PoolError>> {
        Box::pin(async move {
            let inputs = inputs.into_iter().map(SparseInput::Tokens).collect();
            let (outputs, queue_time, compute_time) =
                timed_batch(&model.pool, inputs, |o| (o.batch_started, o.batch_time)).await?;
            Ok(SparseEmbedded {
                vectors: outputs.into_iter().map(|o| o.vector).collect(),
                queue_time,
                compute_time,
            })
        })
    }
}

/// One request's inputs as one batch through any caller of the call
/// family (a local pool, or a pool across the cluster), refused at once
/// when it is full, with its queue and compute time read from the outputs'
/// batch.
pub(crate) async fn timed_batch<C: Call>(
    caller: &C,
    inputs: Vec<C::Input>,
    batch: impl Fn(&C::Output) -> (Instant, Duration),
) -> Result<TimedOutputs<C::Output>, PoolError> {
    let submitted = Instant::now();
    let outputs = caller.try_call_batch(inputs).await?;
    let (queue_time, compute_time) = timings(submitted, outputs.last().map(batch));
    Ok((outputs, queue_time, compute_time))
}

/// Outputs with their queue and compute time.
pub(crate) type TimedOutputs<O> = (Vec<O>, Option<Duration>, Option<Duration>);

impl<B: LocalBackend> Clone for LocalModel<B> {
    fn clone(&self) -> Self {
        Self {
            card: self.card.clone(),
            tokenizer: Arc::clone(&self.tokenizer),
            pool: self.pool.clone(),
        }
    }
}

impl<B: LocalBackend> std::fmt::Debug for LocalModel<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel")
            .field("card", &self.card)
            .finish_non_exhaustive()
    }
}

impl<B: LocalBackend> LocalModel<B> {
    /// Spawns a pool for `spec` and waits up to `ready_timeout` for its
    /// workers to load. An embedder's pool runs with normalisation off (the
    /// server normalises, so that TEI's `normalize: false` can be
    /// honoured). The pool's metrics series carry the label `model = name`
    /// unless `config.metric_labels` already names a `model`.
    ///
    /// # Errors
    /// A bad model directory, a bad config, workers not ready in time, or
    /// [`SpawnModelError::WrongKind`] for a directory of a kind this type
    /// does not serve (a reranker's or a classifier's for [`PoolModel`],
    /// an embedder's for [`ScoringModel`]).
    pub async fn spawn(
        name: impl Into<String>,
        spec: EmbedSpec,
        config: PoolConfig,
        ready_timeout: Duration,
    ) -> Result<Self, SpawnModelError> {
        let name = name.into();
        let kind = spec.model_kind()?;
        if !B::serves(kind) {
            return Err(SpawnModelError::WrongKind {
                kind,
                wanted: B::INSTEAD,
            });
        }
        let config = labelled(config, &name);
        let spec = B::pool_spec(spec);
        let tokenizer = EmbedTokenizer::load(&spec)?;
        let pool = spawn_ready::<B>(spec.clone(), config, ready_timeout).await?;
        Ok(Self::new(name, &spec, tokenizer, pool)?)
    }

    /// Wraps a pool a host app already runs; `spec` is the one it was
    /// spawned with. An embedding pool should be spawned with `normalize`
    /// off (the server normalises), and with `PoolConfig::metric_labels`
    /// holding `("model", name)` for its series to be labelled by model as
    /// the server's own are.
    ///
    /// # Errors
    /// When the model directory's configuration cannot be read.
    pub fn new(
        name: impl Into<String>,
        spec: &EmbedSpec,
        tokenizer: EmbedTokenizer,
        pool: PoolHandle<B>,
    ) -> Result<Self, EmbedError> {
        Ok(Self {
            card: B::card(name.into(), spec, pool.config())?,
            tokenizer: Arc::new(tokenizer),
            pool,
        })
    }

    /// The pool behind this model.
    pub fn pool(&self) -> &PoolHandle<B> {
        &self.pool
    }
}

impl<B: LocalBackend> ServedModel for LocalModel<B> {
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

    fn embed(&self, inputs: Vec<Vec<u32>>) -> BoxFuture<'_, Result<Embedded, PoolError>> {
        B::embed(self, inputs)
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

    fn tokens(
        &self,
        text: &str,
        add_special_tokens: bool,
    ) -> Result<Vec<TokenSpan>, TokenizeError> {
        tokens(&self.tokenizer, text, add_special_tokens)
    }

    fn score(&self, inputs: Vec<PairTokenized>) -> BoxFuture<'_, Result<Scored, PoolError>> {
        B::score(self, inputs)
    }

    fn embed_sparse(
        &self,
        inputs: Vec<Vec<u32>>,
    ) -> BoxFuture<'_, Result<SparseEmbedded, PoolError>> {
        B::embed_sparse(self, inputs)
    }

    fn health(&self) -> BoxFuture<'_, Result<HealthReport, PoolError>> {
        Box::pin(self.pool.health())
    }

    fn shutdown(&self, deadline: Duration) -> BoxFuture<'_, ()> {
        Box::pin(stop_pool(&self.pool, &self.card.name, deadline))
    }
}
