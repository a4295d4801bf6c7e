//! The seam between HTTP and a pool: [`EmbedModel`], what a route needs from
//! one served model (its card, its tokenizer, embedding pre-tokenised ids,
//! health, shutdown). [`crate::PoolModel`] implements it over a real Corral
//! pool; tests implement it with fakes to drive every error cheaply.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use corral_core::{HealthReport, PoolError};
use corral_embed::{Tokenized, TruncationSide};
use serde::Serialize;

/// A boxed, sendable future (the trait is used as `dyn EmbedModel`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What `/info` and `/v1/models` say about one served model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelCard {
    /// The name clients put in `model`.
    pub name: String,
    /// Length of the embeddings.
    pub dimensions: usize,
    /// Word pieces per input, special tokens included.
    pub max_input_tokens: usize,
    /// Pooling (`mean`, `cls`).
    pub pooling: String,
    /// Workers in the pool.
    pub workers: usize,
    /// Per-worker bound on single-input requests.
    pub queue_capacity: usize,
    /// Per-worker bound on multi-input requests.
    pub batch_queue_capacity: usize,
}

/// Vectors for one request, with where the time went when the model knows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Embedded {
    /// One raw (not normalised) vector per input, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Time between submission and the start of the batch that ran it.
    pub queue_time: Option<Duration>,
    /// Time the batch ran.
    pub compute_time: Option<Duration>,
}

/// Why a model could not tokenise an input. Every kind is about the input
/// the client sent: the server answers it 400 (OpenAI) / 422 (TEI), naming
/// the field and the input's place in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizeError {
    /// A client-tokenised input holds an id the model's vocabulary lacks.
    #[error("token id {id} is outside the vocabulary (0..{vocab_size})")]
    UnknownTokenId {
        /// The first such id.
        id: u32,
        /// How many ids the vocabulary has.
        vocab_size: usize,
    },
    /// The tokenizer could not encode the input.
    #[error("the tokenizer could not encode it: {0}")]
    Encode(String),
}

/// One served model, as the routes see it.
pub trait EmbedModel: Send + Sync + 'static {
    /// Name, dimensions, limits.
    fn card(&self) -> &ModelCard;

    /// Tokenises `text` with the model's own tokenizer and settings, cutting
    /// from `side` when over the limit (and saying so). Blocking: the
    /// server calls it off the async threads.
    ///
    /// # Errors
    /// [`TokenizeError::Encode`] when the tokenizer fails.
    fn tokenize(&self, text: &str, side: TruncationSide) -> Result<Tokenized, TokenizeError>;

    /// Wraps client-tokenised ids (no special tokens) with the special
    /// tokens, cutting from `side` when over the limit.
    ///
    /// # Errors
    /// [`TokenizeError::UnknownTokenId`] for an id outside the vocabulary.
    fn wrap_ids(&self, ids: Vec<u32>, side: TruncationSide) -> Result<Tokenized, TokenizeError>;

    /// Embeds pre-tokenised inputs (special tokens included), refused at
    /// once when the pool is full. Dropping the future withdraws the
    /// request.
    ///
    /// # Errors
    /// The pool's [`PoolError`].
    fn embed(&self, inputs: Vec<Vec<u32>>) -> BoxFuture<'_, Result<Embedded, PoolError>>;

    /// The pool's own health report.
    ///
    /// # Errors
    /// `ShuttingDown` once the pool has stopped.
    fn health(&self) -> BoxFuture<'_, Result<HealthReport, PoolError>>;

    /// Drains the pool: admitted work finishes within `deadline`, the rest
    /// (and anything new) is answered `ShuttingDown`.
    fn shutdown(&self, deadline: Duration) -> BoxFuture<'_, ()>;
}
