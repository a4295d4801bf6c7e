//! A loaded cross-encoder or sequence classifier, usable without the pool:
//! [`Scorer`] tokenises texts and pairs with the model's pair template
//! ([`crate::EmbedTokenizer::encode_pair`]), runs them as one packed
//! forward pass on a private thread pool (the same [`Encoder`] as
//! embeddings, with token types), and hands the first row of each text to
//! the classification head (`head`), which answers one logit per label.
//!
//! It is what each worker of a scoring pool holds (through
//! [`crate::ScoreBackend`]). As with [`crate::Embedder`], the pool forms
//! batches that are one forward pass each by [`Scorer::batching`]'s rule.

use std::path::Path;

use corral_core::Batching;

use crate::config::ModelConfig;
use crate::encoder::{Encoder, PackedBatch};
use crate::head::Head;
use crate::input::effective_max_len;
use crate::model_dir::check_model_dir;
use crate::spec::Engine;
use crate::tokenize::{estimate_tokens, EmbedTokenizer};
use crate::{Activation, EmbedError, EmbedSpec, ModelKind, PairTokenized, ScoreInput};

/// Most texts or pairs in one forward pass, however short they are.
const MAX_FORWARD_ROWS: usize = 128;

/// A loaded reranker (one label) or classifier (several).
pub struct Scorer {
    tokenizer: EmbedTokenizer,
    encoder: Encoder,
    head: Head,
    kind: ModelKind,
    labels: Vec<String>,
    activation: Activation,
    max_seq_length: usize,
    vocab_size: usize,
    type_vocab_size: usize,
    max_forward_tokens: usize,
    threads: usize,
    pool: rayon::ThreadPool,
}

impl std::fmt::Debug for Scorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scorer")
            .field("kind", &self.kind)
            .field("labels", &self.labels)
            .field("activation", &self.activation)
            .field("max_seq_length", &self.max_seq_length)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl Scorer {
    /// Loads the model `spec` describes — a `*ForSequenceClassification`
    /// directory — to run its forward passes on a private pool of
    /// `threads` threads (at least 1; on the fast engine every core, each
    /// forward taking its share, as [`crate::Embedder::load`] says). The
    /// encoder runs on the engine `spec` asks for (int8 or bf16 dense
    /// layers on the fast engine with [`crate::Quantize::Int8`] or
    /// [`crate::Quantize::Bf16`]); the head is always fp32. `spec.pooling`
    /// and `spec.normalize` do not apply.
    ///
    /// # Errors
    /// [`EmbedError::WrongTask`] (kind [`ModelKind::Embed`]) for a model
    /// without a classification head; otherwise as
    /// [`crate::Embedder::load`], and [`EmbedError::Config`] when the
    /// head's weights are missing.
    pub fn load(spec: &EmbedSpec, threads: usize) -> Result<Self, EmbedError> {
        let dir: &Path = &spec.model_dir;
        check_model_dir(dir)?;
        let config = ModelConfig::load(dir)?;
        if config.task.kind == ModelKind::Embed {
            return Err(EmbedError::WrongTask {
                dir: dir.to_path_buf(),
                kind: ModelKind::Embed,
                architecture: config.task.architecture.clone(),
            });
        }
        let max_seq_length = effective_max_len(spec, &config);
        let tokenizer = EmbedTokenizer::from_file(
            &dir.join("tokenizer.json"),
            max_seq_length,
            config.vocab_size,
        )?;
        if tokenizer.pair_special_tokens() >= max_seq_length {
            return Err(EmbedError::config(
                dir.join("config.json"),
                format!(
                    "max_seq_length {max_seq_length} leaves no room for a pair beside its {} \
                     special tokens",
                    tokenizer.pair_special_tokens()
                ),
            ));
        }
        let threads = threads.max(1);
        let head = Head::load(
            dir,
            &config.arch,
            config.hidden_size,
            config.task.labels.len(),
        )?;
        let mut encoder = Encoder::load(spec, &config, threads)?;
        let pool_threads = crate::embedder::elastic_threads(&mut encoder, threads);
        tracing::debug!(
            engine = encoder.name(),
            threads,
            pool_threads,
            "scorer loaded"
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(pool_threads)
            .thread_name(|i| format!("corral-score-{i}"))
            .build()
            .map_err(|e| EmbedError::ThreadPool(e.to_string()))?;
        Ok(Self {
            tokenizer,
            encoder,
            head,
            kind: config.task.kind,
            labels: config.task.labels,
            activation: config.task.activation,
            max_seq_length,
            vocab_size: config.vocab_size,
            type_vocab_size: config.type_vocab_size,
            max_forward_tokens: spec.max_forward_tokens.max(1),
            threads,
            pool,
        })
    }

    /// [`ModelKind::Rerank`] (one label) or [`ModelKind::Classify`].
    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// The labels, in `id2label` order: the order of each input's logits.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// How logits become the scores clients see (see
    /// [`crate::EmbedSpec::score_info`]).
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Word pieces a text or pair is truncated to, special tokens
    /// included.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// The engine that runs the encoder (see [`crate::Embedder::engine`]).
    pub fn engine(&self) -> Engine {
        self.encoder.engine()
    }

    /// Threads of the forward pass: on candle's engine all of them; on the
    /// fast engine the fewest a forward runs on — alone in the process it
    /// takes every core (see [`crate::Embedder::load`]).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The tokenizer the scorer uses.
    pub fn tokenizer(&self) -> &EmbedTokenizer {
        &self.tokenizer
    }

    /// How a forward pass is costed, in [`Scorer::estimate_tokens`]'s
    /// unit: as [`crate::Embedder::batching`] (packed on the fast engine,
    /// padded on candle's; at most `max_forward_tokens` and 128 inputs).
    pub fn batching(&self) -> Batching {
        let rule = match self.engine() {
            Engine::Candle => Batching::PADDED,
            Engine::Fast => Batching::PACKED,
        };
        rule.with_max_cost(self.max_forward_tokens)
            .with_max_inputs(MAX_FORWARD_ROWS)
    }

    /// A cheap estimate of the word pieces of `input` with its special
    /// tokens (at least 1, at most [`Scorer::max_seq_length`]), without
    /// tokenizing; the id count for [`ScoreInput::Tokens`].
    pub fn estimate_tokens(&self, input: &ScoreInput) -> usize {
        let max = self.max_seq_length;
        match input {
            ScoreInput::Text(t) => estimate_tokens(t, max),
            // Each estimate counts two special tokens; a pair has three or
            // four.
            ScoreInput::Pair(a, b) => (estimate_tokens(a, max) + estimate_tokens(b, max)).min(max),
            ScoreInput::Tokens(t) => t.ids.len().clamp(1, max),
        }
    }

    /// Raw logits (one per label, in [`Scorer::labels`] order) for each
    /// input, in input order, from one forward pass (one packed batch).
    /// Texts and pairs are tokenised as
    /// [`EmbedTokenizer::encode_pair`] does. What shares a batch does not
    /// change an input's logits beyond floating-point noise. The batch is
    /// not cut: keep it within [`Scorer::batching`] (the pool does).
    ///
    /// # Errors
    /// [`EmbedError::InvalidInput`] if the tokenizer refuses a text, or
    /// for [`ScoreInput::Tokens`] whose lengths disagree, that are empty
    /// or longer than [`Scorer::max_seq_length`], or hold an id or type
    /// out of range; [`EmbedError::Candle`] or [`EmbedError::Fast`] if the
    /// forward pass fails.
    pub fn score(&mut self, inputs: &[&ScoreInput]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut batch = PackedBatch::new();
        for input in inputs {
            match input {
                ScoreInput::Text(t) => self.push(&mut batch, t, None)?,
                ScoreInput::Pair(a, b) => self.push(&mut batch, a, Some(b))?,
                ScoreInput::Tokens(t) => {
                    self.check_tokens(t)?;
                    batch.push_typed(&t.ids, &t.type_ids);
                }
            }
        }
        let (encoder, head) = (&mut self.encoder, &self.head);
        self.pool.install(|| encoder.forward_scores(&batch, head))
    }

    /// Scores of `documents` against `query`, activated (sigmoid unless
    /// the model's configuration says identity), in input order: what
    /// sentence-transformers' `CrossEncoder.predict` gives for the pairs.
    /// Runs as many forward passes as [`Scorer::batching`] needs. For a
    /// classifier, each score is its first label's activated score.
    ///
    /// # Errors
    /// As [`Scorer::score`].
    pub fn rerank(&mut self, query: &str, documents: &[&str]) -> Result<Vec<f32>, EmbedError> {
        let inputs: Vec<ScoreInput> = documents
            .iter()
            .map(|d| ScoreInput::pair(query, *d))
            .collect();
        let costs: Vec<usize> = inputs.iter().map(|i| self.estimate_tokens(i)).collect();
        let mut scores = Vec::with_capacity(inputs.len());
        for range in self.batching().forwards(&costs) {
            let batch: Vec<&ScoreInput> = inputs[range].iter().collect();
            for mut logits in self.score(&batch)? {
                self.activation.apply(&mut logits);
                scores.push(logits.first().copied().unwrap_or(f32::NAN));
            }
        }
        Ok(scores)
    }

    /// Tokenises a text or pair into `batch`; a text the tokenizer
    /// refuses is the caller's input, not a failure of the model.
    fn push(
        &self,
        batch: &mut PackedBatch,
        first: &str,
        second: Option<&str>,
    ) -> Result<(), EmbedError> {
        let t = match self.tokenizer.encode_pair(first, second) {
            Ok(t) => t,
            Err(EmbedError::Tokenizer(e)) => {
                return Err(EmbedError::InvalidInput(format!("tokenizing: {e}")))
            }
            Err(e) => return Err(e),
        };
        batch.push_typed(&t.ids, &t.type_ids);
        Ok(())
    }

    fn check_tokens(&self, t: &PairTokenized) -> Result<(), EmbedError> {
        let bad = |m: String| Err(EmbedError::InvalidInput(m));
        if t.ids.is_empty() || t.ids.len() > self.max_seq_length {
            return bad(format!(
                "{} token ids; between 1 and {} are accepted",
                t.ids.len(),
                self.max_seq_length
            ));
        }
        if t.type_ids.len() != t.ids.len() {
            return bad(format!(
                "{} token types for {} token ids",
                t.type_ids.len(),
                t.ids.len()
            ));
        }
        if let Some(id) = t.ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            return bad(format!(
                "token id {id} is outside the vocabulary (0..{})",
                self.vocab_size
            ));
        }
        if let Some(ty) = t
            .type_ids
            .iter()
            .find(|&&ty| ty as usize >= self.type_vocab_size)
        {
            return bad(format!(
                "token type {ty} is outside the model's types (0..{})",
                self.type_vocab_size
            ));
        }
        Ok(())
    }
}
