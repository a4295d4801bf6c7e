//! What a pool takes when the caller has already tokenised: [`EmbedInput`]
//! (a text, or the word-piece ids the model's own tokenizer — the
//! [`crate::EmbedTokenizer`] the workers use too — gives it), so a front end
//! can count tokens, refuse over-long texts and hand the pool ids, and the
//! work is not done twice. [`ModelInfo`] says what a model directory serves
//! (dimensions, maximum length, pooling) without loading weights.

use crate::config::ModelConfig;
use crate::model_dir::check_model_dir;
use crate::{EmbedError, EmbedSpec, Pooling};

/// One input to an embedding pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbedInput {
    /// A text; the worker tokenises it (truncating at the maximum length).
    Text(String),
    /// Word-piece ids as [`crate::EmbedTokenizer::encode`] gives them, special
    /// tokens included, at most the maximum sequence length. Out-of-range
    /// ids, an empty list or one over the maximum length fail the request
    /// with an invalid-input error (they are never cut or clamped).
    Tokens(Vec<u32>),
}

impl From<String> for EmbedInput {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<&str> for EmbedInput {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<Vec<u32>> for EmbedInput {
    fn from(ids: Vec<u32>) -> Self {
        Self::Tokens(ids)
    }
}

/// What a model directory serves, read from its configuration only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// Length of the embeddings (the Matryoshka `truncate_dim` when the
    /// spec or the model sets one).
    pub dim: usize,
    /// Word pieces per input, special tokens included.
    pub max_seq_length: usize,
    /// The pooling the pool uses.
    pub pooling: Pooling,
    /// Whether embeddings are L2-normalised.
    pub normalize: bool,
}

impl EmbedSpec {
    /// What the pool would serve with this spec (dimensions, maximum length,
    /// pooling), without loading the weights.
    ///
    /// # Errors
    /// As [`EmbedSpec::validate`]; [`EmbedError::Config`] for
    /// [`Pooling::Splade`], which gives no embeddings.
    pub fn model_info(&self) -> Result<ModelInfo, EmbedError> {
        check_model_dir(&self.model_dir)?;
        let config = ModelConfig::load(&self.model_dir)?;
        Ok(ModelInfo {
            dim: crate::embedder::effective_dim(self, &config)?,
            max_seq_length: effective_max_len(self, &config),
            pooling: crate::pooling::dense_pooling(self, config.pooling)?,
            normalize: self.normalize,
        })
    }
}

/// The maximum sequence length a pool with `spec` uses.
pub(crate) fn effective_max_len(spec: &EmbedSpec, config: &ModelConfig) -> usize {
    spec.max_seq_length
        .map_or(config.max_seq_length, |m| m.clamp(2, config.max_seq_length))
}
