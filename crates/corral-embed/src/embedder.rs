//! A loaded embedding model, usable without the pool: tokenization,
//! length-sorted slicing of a batch, one packed batch per slice (ids plus
//! offsets, no padding) through the forward pass on a private thread pool,
//! pooled and normalised rows back.
//!
//! [`Embedder`] is what each pool worker holds (through
//! [`crate::EmbedBackend`]) and what benchmarks run directly to measure the
//! pool's own cost.

use std::path::Path;

use crate::config::ModelConfig;
use crate::encoder::{Encoder, PackedBatch};
use crate::input::{effective_max_len, EmbedInput};
use crate::model_dir::check_model_dir;
use crate::spec::{Engine, Quantize};
use crate::tokenize::{estimate_tokens, Encoded, TextTokenizer};
use crate::{EmbedError, EmbedSpec, Pooling};

/// Most texts in one forward pass, however short they are.
const MAX_FORWARD_ROWS: usize = 128;

/// A loaded sentence-embedding model.
pub struct Embedder {
    tokenizer: TextTokenizer,
    encoder: Encoder,
    pooling: Pooling,
    normalize: bool,
    max_seq_length: usize,
    hidden_size: usize,
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
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads the model `spec` describes, to run its forward passes on a
    /// private pool of `threads` threads (at least 1).
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
    /// bad `tokenizer.json`.
    pub fn load(spec: &EmbedSpec, threads: usize) -> Result<Self, EmbedError> {
        let dir: &Path = &spec.model_dir;
        check_model_dir(dir)?;
        let config = ModelConfig::load(dir)?;
        let max_seq_length = effective_max_len(spec, &config);
        let tokenizer = TextTokenizer::load(&dir.join("tokenizer.json"), max_seq_length)?;
        let threads = threads.max(1);
        let encoder = match spec.engine {
            Engine::Candle => {
                if spec.quantize != Quantize::None {
                    tracing::warn!("the candle engine has no int8 path: running in fp32");
                }
                Encoder::load_candle(dir, &config.arch)?
            }
            Engine::Fast => match &config.fast {
                Ok(fast) => Encoder::load_fast(dir, fast, threads, spec.quantize),
                Err(e) => Err(EmbedError::config(dir.join("config.json"), e.clone())),
            }
            .or_else(|e| {
                tracing::warn!(
                    model = %dir.display(),
                    "the fast encoder does not support this model ({e}); using candle's"
                );
                Encoder::load_candle(dir, &config.arch)
            })?,
        };
        tracing::debug!(engine = encoder.name(), threads, "encoder loaded");
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("corral-embed-{i}"))
            .build()
            .map_err(|e| EmbedError::ThreadPool(e.to_string()))?;
        Ok(Self {
            tokenizer,
            encoder,
            pooling: spec.pooling.or(config.pooling).unwrap_or(Pooling::Mean),
            normalize: spec.normalize,
            max_seq_length,
            hidden_size: config.hidden_size,
            vocab_size: config.vocab_size,
            max_forward_tokens: spec.max_forward_tokens.max(1),
            threads,
            pool,
        })
    }

    /// Length of the embeddings.
    pub fn dim(&self) -> usize {
        self.hidden_size
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

    /// Threads of the forward pass.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The word-piece ids `text` becomes, special tokens included, truncated
    /// to [`Embedder::max_seq_length`].
    ///
    /// # Errors
    /// [`EmbedError::Tokenizer`] if the tokenizer fails.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        Ok(self.tokenizer.encode(text)?.ids)
    }

    /// A cheap estimate of the word pieces of `text` (at least 1, at most
    /// [`Embedder::max_seq_length`]), without tokenizing.
    pub fn estimate_tokens(&self, text: &str) -> usize {
        estimate_tokens(text, self.max_seq_length)
    }

    /// Embeds `texts`, returning one vector per text, in order.
    ///
    /// Texts are sorted by length and run in slices of about
    /// `max_forward_tokens` tokens (counted as if padded to the slice's
    /// longest text, which is what the candle engine computes), each slice
    /// one packed batch, so what shares a batch does not change a text's
    /// vector beyond floating-point noise. Any string embeds, the empty one
    /// included.
    ///
    /// # Errors
    /// [`EmbedError::InvalidInput`] if the tokenizer refuses a text;
    /// [`EmbedError::Candle`] or [`EmbedError::Fast`] if the forward pass
    /// fails.
    pub fn embed<S: AsRef<str>>(&mut self, texts: &[S]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encoded = texts
            .iter()
            .map(|t| self.tokenizer.encode(t.as_ref()))
            .collect::<Result<Vec<Encoded>, _>>()?;
        self.embed_encoded(&encoded)
    }

    /// [`Embedder::embed`] for texts and pre-tokenised ids
    /// ([`EmbedInput::Tokens`], special tokens included).
    ///
    /// # Errors
    /// [`EmbedError::InvalidInput`] for an empty list of ids, one longer
    /// than [`Embedder::max_seq_length`] or an id outside the vocabulary;
    /// otherwise as [`Embedder::embed`].
    pub fn embed_inputs(&mut self, inputs: &[&EmbedInput]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encoded = inputs
            .iter()
            .map(|input| match input {
                EmbedInput::Text(t) => self.tokenizer.encode(t),
                EmbedInput::Tokens(ids) => self.check_ids(ids).map(|()| Encoded {
                    ids: ids.clone(),
                    type_ids: vec![0; ids.len()],
                }),
            })
            .collect::<Result<Vec<Encoded>, _>>()?;
        self.embed_encoded(&encoded)
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

    /// Length-sorted slices of `encoded`, each one packed batch.
    fn embed_encoded(&mut self, encoded: &[Encoded]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut order: Vec<usize> = (0..encoded.len()).collect();
        order.sort_by_key(|&i| encoded[i].ids.len());

        let mut out: Vec<Vec<f32>> = vec![Vec::new(); encoded.len()];
        let mut start = 0;
        while start < order.len() {
            let end = self.slice_end(&order, encoded, start);
            let slice = &order[start..end];
            let mut batch = PackedBatch::new();
            for &i in slice {
                batch.push(&encoded[i].ids, &encoded[i].type_ids);
            }
            let (pooling, normalize) = (self.pooling, self.normalize);
            let encoder = &mut self.encoder;
            let rows = self
                .pool
                .install(|| encoder.forward_pooled(&batch, pooling, normalize))?;
            for (v, &i) in rows.into_iter().zip(slice) {
                out[i] = v;
            }
            start = end;
        }
        Ok(out)
    }

    /// The end of the slice of `order` (sorted by length) that starts at
    /// `start`: as many texts as fit `max_forward_tokens` once padded to the
    /// slice's longest, at least one.
    fn slice_end(&self, order: &[usize], encoded: &[Encoded], start: usize) -> usize {
        let mut end = start + 1;
        while end < order.len() && end - start < MAX_FORWARD_ROWS {
            let longest = encoded[order[end]].ids.len();
            if (end - start + 1) * longest > self.max_forward_tokens {
                break;
            }
            end += 1;
        }
        end
    }
}
