//! The seam between HTTP and a pool: [`ServedModel`], what a route needs from
//! one served model (its card, its tokenizer, embedding or scoring
//! pre-tokenised ids, health, shutdown). [`crate::PoolModel`] implements it
//! over a real Corral embedding pool; tests implement it with fakes to drive
//! every error cheaply.
//!
//! A model serves one task, its [`ModelCard::kind`]: the routes send it only
//! that task's work (`embed` for an embedder, `score` for a reranker or a
//! classifier, `embed_sparse` for a SPLADE model) and answer any other with 424. The methods of the tasks added
//! after embedding have defaults that say "this model cannot", so that an
//! embedder implements none of them.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use corral_core::{HealthReport, PoolError};
use corral_embed::{
    Activation, ModelKind, PairTokenized, Prompt, SparseVector, Tokenized, TruncationSide,
};
use serde::{Serialize, Serializer};

/// A boxed, sendable future (the trait is used as `dyn ServedModel`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What `/info` and `/v1/models` say about one served model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelCard {
    /// The name clients put in `model`.
    pub name: String,
    /// The task it serves (`embed`, `rerank`, `classify`, `sparse-embed`).
    #[serde(serialize_with = "kind_name")]
    pub kind: ModelKind,
    /// Length of the embeddings: the vocabulary size for `sparse-embed`
    /// (every index is below it); 0 for a reranker or a classifier.
    pub dimensions: usize,
    /// Word pieces per input, special tokens included.
    pub max_input_tokens: usize,
    /// Pooling (`mean`, `cls`, `lasttoken`, `splade`).
    pub pooling: String,
    /// Workers in the pool.
    pub workers: usize,
    /// Per-worker bound on single-input requests.
    pub queue_capacity: usize,
    /// Per-worker bound on multi-input requests.
    pub batch_queue_capacity: usize,
    /// A classifier's labels, in the order of its logits (`id2label`); a
    /// reranker's one label; empty for an embedder.
    pub labels: Vec<String>,
    /// How logits become the scores clients see (`identity` for an
    /// embedder, which has none).
    #[serde(serialize_with = "activation_name")]
    pub activation: Activation,
}

impl ModelCard {
    /// The name of label `i`: the card's, else `LABEL_{i}` as transformers
    /// names labels a config leaves unnamed.
    pub fn label(&self, i: usize) -> String {
        self.labels
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("LABEL_{i}"))
    }
}

fn kind_name<S: Serializer>(kind: &ModelKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

fn activation_name<S: Serializer>(a: &Activation, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.as_str())
}

/// Raw logits for one scoring request, with where the time went when the
/// model knows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scored {
    /// One list of raw logits per input, in order (one per label).
    pub logits: Vec<Vec<f32>>,
    /// Time between submission and the start of the batch that ran it.
    pub queue_time: Option<Duration>,
    /// Time the batch ran.
    pub compute_time: Option<Duration>,
}

/// One token of a text, as TEI's `POST /tokenize` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenSpan {
    /// Its id in the vocabulary.
    pub id: u32,
    /// Its text: the bytes of the input it covers when the model knows
    /// them, else the token decoded alone.
    pub text: String,
    /// Whether it is a special token (`[CLS]`, `</s>`, …).
    pub special: bool,
    /// Byte offset in the input where it starts; `None` for a special
    /// token, or when the model does not give offsets.
    pub start: Option<usize>,
    /// Byte offset in the input where it ends (exclusive); `None` as for
    /// `start`.
    pub stop: Option<usize>,
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

/// Sparse vectors for one request, with where the time went when the
/// model knows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SparseEmbedded {
    /// One sparse vector per input, in order (indices ascending).
    pub vectors: Vec<SparseVector>,
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
    /// The model does not offer this (say, decoding on a model whose
    /// tokenizer has no decoder): the server answers 424, naming it.
    #[error("the model cannot {0}")]
    Unsupported(String),
    /// The prompt asked for cannot be used: a name the model's prompts
    /// lack, or a model whose pooling leaves prompts out. Answered 400
    /// (OpenAI) / 422 (TEI), naming `prompt_name` or `prompt`.
    #[error("{0}")]
    Prompt(String),
}

/// One served model, as the routes see it.
pub trait ServedModel: Send + Sync + 'static {
    /// Name, task, dimensions or labels, limits.
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

    /// The prompt string `choice` puts before each text (`None` for none,
    /// an empty prompt included), as sentence-transformers applies
    /// `prompt_name` / `prompt`: [`Prompt::ModelDefault`] is the prompt the
    /// model is served with (its `default_prompt_name`, or the server's
    /// `--default-prompt-name`). The server prepends it to each text before
    /// [`Self::tokenize`], so the prompt's tokens count toward the limit.
    ///
    /// The default knows no prompts: no default, a string as given, any
    /// name refused.
    ///
    /// # Errors
    /// [`TokenizeError::Prompt`] for a name the model lacks, or a prompt it
    /// cannot apply.
    fn prompt(&self, choice: &Prompt) -> Result<Option<String>, TokenizeError> {
        match choice {
            Prompt::ModelDefault | Prompt::None => Ok(None),
            Prompt::Text(t) => Ok(Some(t.clone()).filter(|t| !t.is_empty())),
            Prompt::Named(name) => Err(TokenizeError::Prompt(format!(
                "unknown prompt name {name:?}: the model declares no prompts"
            ))),
        }
    }

    /// Embeds pre-tokenised inputs (special tokens included), refused at
    /// once when the pool is full. Dropping the future withdraws the
    /// request. Called only on a model whose kind is `embed`.
    ///
    /// # Errors
    /// The pool's [`PoolError`].
    fn embed(&self, inputs: Vec<Vec<u32>>) -> BoxFuture<'_, Result<Embedded, PoolError>>;

    /// Tokenises one text (`second: None`) or a pair with the model's pair
    /// template and token types, cut to the model's length as its tokenizer
    /// cuts pairs (and saying so). Blocking, like [`Self::tokenize`].
    ///
    /// The default tokenises a single text with [`Self::tokenize`] (cut
    /// from the right, every token type 0) and refuses a pair.
    ///
    /// # Errors
    /// [`TokenizeError::Encode`] when the tokenizer fails;
    /// [`TokenizeError::Unsupported`] for a pair by default.
    fn tokenize_pair(
        &self,
        first: &str,
        second: Option<&str>,
    ) -> Result<PairTokenized, TokenizeError> {
        if second.is_some() {
            return Err(TokenizeError::Unsupported(
                "tokenise a pair of texts".into(),
            ));
        }
        let Tokenized { ids, truncated } = self.tokenize(first, TruncationSide::Right)?;
        Ok(PairTokenized {
            type_ids: vec![0; ids.len()],
            ids,
            truncated,
        })
    }

    /// The text of `ids`, without the special tokens when
    /// `skip_special_tokens`. Blocking.
    ///
    /// # Errors
    /// [`TokenizeError::UnknownTokenId`] for an id outside the vocabulary;
    /// [`TokenizeError::Unsupported`] by default.
    fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizeError> {
        let _ = (ids, skip_special_tokens);
        Err(TokenizeError::Unsupported("decode token ids".into()))
    }

    /// The tokens of `text` as TEI's `/tokenize` lists them, with the
    /// special tokens when `add_special_tokens`. Blocking.
    ///
    /// The default tokenises with [`Self::tokenize_pair`] (so the text is
    /// cut to the model's length) and names each token with
    /// [`Self::decode`]: a token that decodes to nothing once special
    /// tokens are skipped is special; no offsets (`start` and `stop` are
    /// `None`).
    ///
    /// # Errors
    /// Those of [`Self::tokenize_pair`] and [`Self::decode`].
    fn tokens(
        &self,
        text: &str,
        add_special_tokens: bool,
    ) -> Result<Vec<TokenSpan>, TokenizeError> {
        let tokenized = self.tokenize_pair(text, None)?;
        let mut spans = Vec::with_capacity(tokenized.ids.len());
        for id in tokenized.ids {
            let special = self.decode(&[id], true)?.is_empty();
            if special && !add_special_tokens {
                continue;
            }
            spans.push(TokenSpan {
                id,
                text: self.decode(&[id], false)?,
                special,
                start: None,
                stop: None,
            });
        }
        Ok(spans)
    }

    /// Raw logits for pre-tokenised texts or pairs (special tokens and
    /// token types included), refused at once when the pool is full.
    /// Dropping the future withdraws the request. Called only on a model
    /// whose kind is `rerank` or `classify`.
    ///
    /// The default refuses every input: a model that does not score.
    ///
    /// # Errors
    /// The pool's [`PoolError`]; `InvalidInput` by default.
    fn score(&self, inputs: Vec<PairTokenized>) -> BoxFuture<'_, Result<Scored, PoolError>> {
        let _ = inputs;
        Box::pin(async move {
            Err(PoolError::InvalidInput(format!(
                "model `{}` does not score texts",
                self.card().name
            )))
        })
    }

    /// Sparse vectors over the vocabulary for pre-tokenised inputs (special
    /// tokens included), refused at once when the pool is full. Dropping
    /// the future withdraws the request. Called only on a model whose kind
    /// is `sparse-embed`.
    ///
    /// The default refuses every input: a model that gives no sparse
    /// vectors.
    ///
    /// # Errors
    /// The pool's [`PoolError`]; `InvalidInput` by default.
    fn embed_sparse(
        &self,
        inputs: Vec<Vec<u32>>,
    ) -> BoxFuture<'_, Result<SparseEmbedded, PoolError>> {
        let _ = inputs;
        Box::pin(async move {
            Err(PoolError::InvalidInput(format!(
                "model `{}` does not give sparse vectors",
                self.card().name
            )))
        })
    }

    /// Why the model cannot take work now, when it knows without asking
    /// (a [`crate::ClusterModel`] with no member in routing); `None` when
    /// it may. A request the model refuses or loses while this says why
    /// is answered 503 with this reason, and `/health` is 503 with it.
    fn unavailable(&self) -> Option<String> {
        None
    }

    /// Sets the model's levels in the `metrics` facade now, for `/metrics`
    /// to render (a [`crate::ClusterModel`]'s members; a pool records its
    /// own as they change, so the default does nothing).
    fn record_metrics(&self) {}

    /// The pool's own health report.
    ///
    /// # Errors
    /// `ShuttingDown` once the pool has stopped.
    fn health(&self) -> BoxFuture<'_, Result<HealthReport, PoolError>>;

    /// Drains the pool: admitted work finishes within `deadline`, the rest
    /// (and anything new) is answered `ShuttingDown`.
    fn shutdown(&self, deadline: Duration) -> BoxFuture<'_, ()>;
}
