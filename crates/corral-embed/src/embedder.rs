//! A loaded embedding model, usable without the pool: tokenization, one
//! packed batch (ids plus offsets, no padding) through one forward pass on a
//! private thread pool, pooled and normalised rows back.
//!
//! [`Embedder`] is what each pool worker holds (through
//! [`crate::EmbedBackend`]) and what benchmarks run directly to measure the
//! pool's own cost. It does not cut a batch: the pool forms batches that
//! are one forward pass each by [`Embedder::batching`]'s rule, and a caller
//! without the pool bounds its own batches (`Batching::forwards` cuts them).

use std::path::Path;

use corral_core::Batching;

use crate::config::ModelConfig;
use crate::encoder::{Encoder, PackedBatch};
use crate::input::{effective_max_len, EmbedInput};
use crate::model_dir::check_model_dir;
use crate::pooling::{dense_pooling, l2_normalize};
use crate::spec::Engine;
use crate::tokenize::{estimate_tokens, EmbedTokenizer, TruncationSide};
use crate::{EmbedError, EmbedSpec, ModelKind, Pooling, Prompts};

/// Most texts in one forward pass, however short they are.
const MAX_FORWARD_ROWS: usize = 128;

/// A loaded sentence-embedding model.
pub struct Embedder {
    tokenizer: EmbedTokenizer,
    encoder: Encoder,
    pooling: Pooling,
    normalize: bool,
    max_seq_length: usize,
    hidden_size: usize,
    /// The embeddings' length: `truncate_dim`, else `hidden_size`.
    dim: usize,
    /// Word pieces the default prompt adds (an estimate; 0 without one).
    prompt_tokens: usize,
    vocab_size: usize,
    max_forward_tokens: usize,
    threads: usize,
    pool: rayon::ThreadPool,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("pooling", &self.pooling)
            .field("normalize", &self.normalize)
            .field("max_seq_length", &self.max_seq_length)
            .field("hidden_size", &self.hidden_size)
            .field("dim", &self.dim)
            .field("prompt", &self.tokenizer.default_prompt())
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads the model `spec` describes, to run its forward passes on a
    /// private pool of `threads` threads (at least 1) — on the fast engine
    /// a pool of every core, each forward taking its share of them: all of
    /// them when it is the only forward running in the process, never fewer
    /// than `threads` (see [`FastBert::set_max_threads`](crate::fast::FastBert::set_max_threads)).
    ///
    /// candle's matrix products run on the rayon pool they are called from,
    /// so the forward pass runs inside this pool. (Large element-wise ops go
    /// to candle's own process-wide pool, sized by `CANDLE_NUM_THREADS`,
    /// else `RAYON_NUM_THREADS`, else the core count; it serves one caller at
    /// a time.)
    ///
    /// # Errors
    /// [`EmbedError::ModelDir`] for a missing or incomplete directory (naming
    /// the command that fetches the default model), [`EmbedError::Config`]
    /// for unusable configuration or weights, [`EmbedError::Tokenizer`] for a
    /// bad `tokenizer.json`; [`EmbedError::WrongTask`] for a directory whose
    /// `config.json` declares a sequence-classification head (a reranker
    /// or classifier: load it with [`crate::Scorer`]); [`EmbedError::Config`]
    /// as well for a prompt name the model lacks, a prompt on a model whose
    /// pooling leaves prompts out, or a `truncate_dim` of 0 or over the
    /// hidden size.
    pub fn load(spec: &EmbedSpec, threads: usize) -> Result<Self, EmbedError> {
        let dir: &Path = &spec.model_dir;
        check_model_dir(dir)?;
        let config = ModelConfig::load(dir)?;
        if config.task.kind != ModelKind::Embed {
            return Err(EmbedError::WrongTask {
                dir: dir.to_path_buf(),
                kind: config.task.kind,
                architecture: config.task.architecture.clone(),
            });
        }
        let pooling = dense_pooling(spec, config.pooling)?;
        let max_seq_length = effective_max_len(spec, &config);
        let tokenizer = EmbedTokenizer::from_file(
            &dir.join("tokenizer.json"),
            max_seq_length,
            config.vocab_size,
        )?
        .with_prompts(spec, &config)?;
        let dim = effective_dim(spec, &config)?;
        let prompt_tokens = tokenizer
            .default_prompt()
            .map_or(0, |p| estimate_tokens(p, max_seq_length).saturating_sub(2));
        let threads = threads.max(1);
        let mut encoder = Encoder::load(spec, &config, threads)?;
        let pool_threads = elastic_threads(&mut encoder, threads);
        tracing::debug!(
            engine = encoder.name(),
            threads,
            pool_threads,
            "encoder loaded"
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(pool_threads)
            .thread_name(|i| format!("corral-embed-{i}"))
            .build()
            .map_err(|e| EmbedError::ThreadPool(e.to_string()))?;
        Ok(Self {
            tokenizer,
            encoder,
            pooling,
            normalize: spec.normalize,
            max_seq_length,
            hidden_size: config.hidden_size,
            dim,
            prompt_tokens,
            vocab_size: config.vocab_size,
            max_forward_tokens: spec.max_forward_tokens.max(1),
            threads,
            pool,
        })
    }

    /// Length of the embeddings: the Matryoshka `truncate_dim` when the
    /// spec or the model sets one, else the hidden size.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The model's prompts (`config_sentence_transformers.json`).
    pub fn prompts(&self) -> &Prompts {
        self.tokenizer.prompts()
    }

    /// The prompt put before every text ([`EmbedSpec::prompt`]), if any.
    pub fn prompt(&self) -> Option<&str> {
        self.tokenizer.default_prompt()
    }

    /// Word pieces a text is truncated to, special tokens included.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// The pooling in use.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Whether embeddings are L2-normalised.
    pub fn normalize(&self) -> bool {
        self.normalize
    }

    /// The engine that runs the forward pass: the one the spec asked for,
    /// or [`Engine::Candle`] where the fast engine does not support the
    /// model and loading fell back.
    pub fn engine(&self) -> Engine {
        self.encoder.engine()
    }

    /// Threads of the forward pass: on candle's engine all of them; on the
    /// fast engine the fewest a forward runs on — alone in the process it
    /// takes every core (see [`crate::Embedder::load`]).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// How a forward pass of this model is costed, in
    /// [`Embedder::estimate_tokens`]'s unit: padded (rows × the longest)
    /// on candle's engine, packed (the sum) on the fast one; at most
    /// `max_forward_tokens` and 128 texts. The pool forms its batches by
    /// this rule, so each batch it runs is one forward pass.
    pub fn batching(&self) -> Batching {
        let rule = match self.engine() {
            Engine::Candle => Batching::PADDED,
            Engine::Fast => Batching::PACKED,
        };
        rule.with_max_cost(self.max_forward_tokens)
            .with_max_inputs(MAX_FORWARD_ROWS)
    }

    /// The word-piece ids `text` becomes, with [`Embedder::prompt`] before
    /// it and the special tokens around, truncated to
    /// [`Embedder::max_seq_length`].
    ///
    /// # Errors
    /// [`EmbedError::InvalidInput`] if the tokenizer refuses the text.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        self.encode(text)
    }

    /// `text`'s ids, cut at the end; a text the tokenizer refuses is the
    /// caller's input, not a failure of the model.
    fn encode(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let prompt = self.tokenizer.default_prompt();
        match self
            .tokenizer
            .encode_prompted(text, prompt, TruncationSide::Right)
        {
            Ok(t) => Ok(t.ids),
            Err(EmbedError::Tokenizer(e)) => {
                Err(EmbedError::InvalidInput(format!("tokenizing: {e}")))
            }
            Err(e) => Err(e),
        }
    }

    /// A cheap estimate of the word pieces of `text` (at least 1, at most
    /// [`Embedder::max_seq_length`]), without tokenizing.
    pub fn estimate_tokens(&self, text: &str) -> usize {
        (estimate_tokens(text, self.max_seq_length) + self.prompt_tokens).min(self.max_seq_length)
    }

    /// Embeds `texts` in one forward pass (one packed batch), returning one
    /// vector per text, in order, each with [`Embedder::prompt`] put before
    /// it and [`Embedder::dim`] long. What shares a batch does not change a
    /// text's vector beyond floating-point noise. Any string embeds, the
    /// empty one included. The batch is not cut: keep it within
    /// [`Embedder::batching`] (the pool does), as one pass holds all of it.
    ///
    /// # Errors
    /// [`EmbedError::InvalidInput`] if the tokenizer refuses a text;
    /// [`EmbedError::Candle`] or [`EmbedError::Fast`] if the forward pass
    /// fails.
    pub fn embed<S: AsRef<str>>(&mut self, texts: &[S]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut batch = PackedBatch::new();
        for t in texts {
            batch.push(&self.encode(t.as_ref())?);
        }
        self.forward(&batch)
    }

    /// [`Embedder::embed`] for texts and pre-tokenised ids
    /// ([`EmbedInput::Tokens`], special tokens included; ids get no
    /// prompt).
    ///
    /// # Errors
    /// [`EmbedError::InvalidInput`] for an empty list of ids, one longer
    /// than [`Embedder::max_seq_length`] or an id outside the vocabulary;
    /// otherwise as [`Embedder::embed`].
    pub fn embed_inputs(&mut self, inputs: &[&EmbedInput]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut batch = PackedBatch::new();
        for input in inputs {
            match input {
                EmbedInput::Text(t) => batch.push(&self.encode(t)?),
                EmbedInput::Tokens(ids) => {
                    self.check_ids(ids)?;
                    batch.push(ids);
                }
            }
        }
        self.forward(&batch)
    }

    fn check_ids(&self, ids: &[u32]) -> Result<(), EmbedError> {
        if ids.is_empty() || ids.len() > self.max_seq_length {
            return Err(EmbedError::InvalidInput(format!(
                "{} token ids; between 1 and {} are accepted",
                ids.len(),
                self.max_seq_length
            )));
        }
        match ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            Some(bad) => Err(EmbedError::InvalidInput(format!(
                "token id {bad} is outside the vocabulary (0..{})",
                self.vocab_size
            ))),
            None => Ok(()),
        }
    }

    /// One forward pass over `batch`, on this embedder's thread pool.
    /// Matryoshka: with a `dim` under the hidden size, each vector is cut
    /// to it and then normalised.
    fn forward(&mut self, batch: &PackedBatch) -> Result<Vec<Vec<f32>>, EmbedError> {
        let (pooling, normalize) = (self.pooling, self.normalize);
        let dim = self.dim;
        let encoder = &mut self.encoder;
        if dim >= self.hidden_size {
            return self
                .pool
                .install(|| encoder.forward_pooled(batch, pooling, normalize));
        }
        let mut vectors = self
            .pool
            .install(|| encoder.forward_pooled(batch, pooling, false))?;
        for v in &mut vectors {
            v.truncate(dim);
            if normalize {
                l2_normalize(v);
            }
        }
        Ok(vectors)
    }
}

/// Makes a fast `encoder` elastic: each forward may take up to every core
/// while the process's other forwards leave them free, never fewer than
/// `threads`. Returns the threads its rayon pool needs: the cores (at
/// least `threads`) on the fast engine, `threads` on candle's, whose
/// matmuls take the whole pool they run in.
pub(crate) fn elastic_threads(encoder: &mut Encoder, threads: usize) -> usize {
    match encoder {
        Encoder::Fast { model, .. } => {
            let max = corral_core::available_cores().max(threads);
            model.set_max_threads(max);
            max
        }
        Encoder::Candle(_) => threads,
    }
}

/// The embeddings' length with `spec`: its `truncate_dim`, else the
/// model's, else the hidden size.
pub(crate) fn effective_dim(spec: &EmbedSpec, config: &ModelConfig) -> Result<usize, EmbedError> {
    match spec.truncate_dim.or(config.truncate_dim) {
        None => Ok(config.hidden_size),
        Some(d) if d >= 1 && d <= config.hidden_size => Ok(d),
        Some(d) => Err(EmbedError::config(
            spec.model_dir.join("config.json"),
            format!(
                "truncate_dim {d} must be between 1 and the hidden size {}",
                config.hidden_size
            ),
        )),
    }
}
