//! What a pool takes when the caller has already tokenised: [`EmbedInput`]
//! (a text, or the word-piece ids the model's own tokenizer gives it), and
//! [`EmbedTokenizer`], the model's tokenizer with the pool's settings
//! (special tokens, maximum length), loadable without the weights — so a
//! front end can count tokens, refuse over-long texts and hand the pool ids,
//! and the work is not done twice. [`ModelInfo`] says what a model directory
//! serves (dimensions, maximum length, pooling) without loading weights.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::config::ModelConfig;
use crate::model_dir::check_model_dir;
use crate::tokenize::{prefix_at_boundary, splits_at_punctuation, suffix_at_boundary};
use crate::{EmbedError, EmbedSpec, Pooling};

/// One input to an embedding pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbedInput {
    /// A text; the worker tokenises it (truncating at the maximum length).
    Text(String),
    /// Word-piece ids as [`EmbedTokenizer::encode`] gives them, special
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

/// Which end of an over-long input is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TruncationSide {
    /// Keep the beginning (what the pool does with texts).
    #[default]
    Right,
    /// Keep the end.
    Left,
}

/// A tokenised input, ready for [`EmbedInput::Tokens`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    /// Word-piece ids with the model's special tokens, cut to the maximum
    /// sequence length.
    pub ids: Vec<u32>,
    /// Whether anything was cut.
    pub truncated: bool,
}

/// What a model directory serves, read from its configuration only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// Length of the embeddings.
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
    /// As [`EmbedSpec::validate`].
    pub fn model_info(&self) -> Result<ModelInfo, EmbedError> {
        check_model_dir(&self.model_dir)?;
        let config = ModelConfig::load(&self.model_dir)?;
        Ok(ModelInfo {
            dim: config.hidden_size,
            max_seq_length: effective_max_len(self, &config),
            pooling: self.pooling.or(config.pooling).unwrap_or(Pooling::Mean),
            normalize: self.normalize,
        })
    }
}

/// The maximum sequence length a pool with `spec` uses.
pub(crate) fn effective_max_len(spec: &EmbedSpec, config: &ModelConfig) -> usize {
    spec.max_seq_length
        .map_or(config.max_seq_length, |m| m.clamp(2, config.max_seq_length))
}

/// Bytes of text tried first per word piece before a long text is
/// tokenised further (as the pool's own tokenizer does).
const PREFIX_BYTES_PER_TOKEN: usize = 8;

/// The model's tokenizer with the settings a pool built from the same
/// [`EmbedSpec`] uses: the same special tokens, the same maximum length,
/// the same ids. Cheap to share (`Sync`); every method blocks for as long as
/// tokenising takes, so call it off async threads.
#[derive(Clone)]
pub struct EmbedTokenizer {
    inner: Tokenizer,
    max_seq_length: usize,
    vocab_size: usize,
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    /// Whether a long text may be cut at ASCII punctuation.
    punctuation: bool,
}

impl std::fmt::Debug for EmbedTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedTokenizer")
            .field("max_seq_length", &self.max_seq_length)
            .field("vocab_size", &self.vocab_size)
            .finish_non_exhaustive()
    }
}

impl EmbedTokenizer {
    /// Loads the tokenizer of the model `spec` names.
    ///
    /// # Errors
    /// As [`EmbedSpec::validate`].
    pub fn load(spec: &EmbedSpec) -> Result<Self, EmbedError> {
        check_model_dir(&spec.model_dir)?;
        let config = ModelConfig::load(&spec.model_dir)?;
        Self::from_file(
            &spec.model_dir.join("tokenizer.json"),
            effective_max_len(spec, &config),
            config.vocab_size,
        )
    }

    fn from_file(
        path: &Path,
        max_seq_length: usize,
        vocab_size: usize,
    ) -> Result<Self, EmbedError> {
        let mut inner = Tokenizer::from_file(path)
            .map_err(|e| EmbedError::Tokenizer(format!("loading {}: {e}", path.display())))?;
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| EmbedError::Tokenizer(format!("clearing truncation: {e}")))?;
        // The special tokens the post-processor puts around one text: those
        // before the first real token, and those after the last.
        let probe = inner
            .encode("a", true)
            .map_err(|e| EmbedError::Tokenizer(format!("encoding: {e}")))?;
        let mask = probe.get_special_tokens_mask();
        let ids = probe.get_ids();
        let first = mask.iter().position(|&m| m == 0).unwrap_or(ids.len());
        let last = mask
            .iter()
            .rposition(|&m| m == 0)
            .map_or(ids.len(), |i| i + 1);
        let prefix = ids[..first].to_vec();
        let suffix = ids[last.max(first)..].to_vec();
        if prefix.len() + suffix.len() >= max_seq_length {
            return Err(EmbedError::Tokenizer(format!(
                "max_seq_length {max_seq_length} leaves no room beside the special tokens"
            )));
        }
        Ok(Self {
            punctuation: splits_at_punctuation(&inner),
            inner,
            max_seq_length,
            vocab_size,
            prefix,
            suffix,
        })
    }

    /// Word pieces per input, special tokens included.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// Ids below this are valid.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Word pieces left for content once the special tokens are in.
    pub fn max_content_tokens(&self) -> usize {
        self.max_seq_length - self.prefix.len() - self.suffix.len()
    }

    /// Tokenises `text` as the pool would, cutting from `side` if it is over
    /// the maximum length (and saying so). A long text is tokenised as a
    /// piece cut at a word boundary from the kept side, doubled until it
    /// overflows the maximum length or is the whole text, so work and memory
    /// are bounded by the maximum length for ordinary text on either side.
    ///
    /// # Errors
    /// [`EmbedError::Tokenizer`] if the tokenizer fails.
    pub fn encode(&self, text: &str, side: TruncationSide) -> Result<Tokenized, EmbedError> {
        let budget = self.max_content_tokens();
        let cut = match side {
            TruncationSide::Right => prefix_at_boundary,
            TruncationSide::Left => suffix_at_boundary,
        };
        let mut bytes = self.max_seq_length * PREFIX_BYTES_PER_TOKEN;
        let content = loop {
            let (piece, whole) = cut(text, bytes, self.punctuation);
            let ids = self.content_ids(piece)?;
            if whole || ids.len() > budget {
                break ids;
            }
            bytes = bytes.saturating_mul(2);
        };
        Ok(self.wrap_content(content, side))
    }

    /// Puts the special tokens around word-piece ids a caller tokenised
    /// itself (without special tokens), cutting from `side` if they are
    /// over the maximum length.
    ///
    /// # Errors
    /// [`EmbedError::InvalidInput`] for an id outside the vocabulary.
    pub fn wrap_ids(&self, ids: Vec<u32>, side: TruncationSide) -> Result<Tokenized, EmbedError> {
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(EmbedError::InvalidInput(format!(
                "token id {bad} is outside the vocabulary (0..{})",
                self.vocab_size
            )));
        }
        Ok(self.wrap_content(ids, side))
    }

    fn content_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| EmbedError::Tokenizer(format!("encoding: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    fn wrap_content(&self, mut content: Vec<u32>, side: TruncationSide) -> Tokenized {
        let budget = self.max_content_tokens();
        let truncated = content.len() > budget;
        if truncated {
            match side {
                TruncationSide::Right => content.truncate(budget),
                TruncationSide::Left => {
                    content.drain(..content.len() - budget);
                }
            }
        }
        let mut ids = Vec::with_capacity(self.prefix.len() + content.len() + self.suffix.len());
        ids.extend_from_slice(&self.prefix);
        ids.extend_from_slice(&content);
        ids.extend_from_slice(&self.suffix);
        Tokenized { ids, truncated }
    }
}
