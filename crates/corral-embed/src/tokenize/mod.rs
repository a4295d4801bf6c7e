//! Text to word-piece ids: [`EmbedTokenizer`], the one tokenizer of the
//! workers (through [`crate::Embedder`]) and of front ends that tokenise
//! before they submit. It loads `tokenizer.json` with its padding and
//! truncation off (texts are packed, never padded here: only candle's
//! engine pads, for itself, inside the encoder), cuts the content to the
//! sentence-transformers `max_seq_length` itself and puts the model's
//! special tokens around it, and bounds the work spent on very long texts
//! by tokenizing only a piece long enough to fill the maximum length.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::config::ModelConfig;
use crate::input::effective_max_len;
use crate::model_dir::check_model_dir;
use crate::{EmbedError, EmbedSpec, ModelKind, Prompt, Prompts};

mod cut;
mod pair;
mod spans;

pub(crate) use cut::estimate_tokens;
use cut::{prefix_at_boundary, splits_at_punctuation, suffix_at_boundary};
use pair::{pair_template, PairTemplate};
pub use spans::SpannedToken;

/// A tokenised input, ready for [`crate::EmbedInput::Tokens`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    /// Word-piece ids with the model's special tokens, cut to the maximum
    /// sequence length.
    pub ids: Vec<u32>,
    /// Whether anything was cut.
    pub truncated: bool,
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

/// Bytes of text tried first per word piece of the maximum length before a
/// long text is tokenised further.
const PREFIX_BYTES_PER_TOKEN: usize = 8;

/// The model's tokenizer with the settings of a pool built from the same
/// [`EmbedSpec`] — it is the one its workers use: the same special tokens,
/// the same maximum length, the same ids. Cheap to share (`Sync`); every method blocks for as long as
/// tokenising takes, so call it off async threads.
#[derive(Clone)]
pub struct EmbedTokenizer {
    inner: Tokenizer,
    max_seq_length: usize,
    vocab_size: usize,
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    /// The special tokens and token types of a pair.
    pair: PairTemplate,
    /// Whether a long text may be cut at ASCII punctuation.
    punctuation: bool,
    /// The model's prompts.
    prompts: Prompts,
    /// The prompt the spec applies to texts by default (non-empty).
    prompt: Option<String>,
    /// Whether the model's pooling keeps a prompt's tokens (see
    /// `ModelConfig::include_prompt`).
    include_prompt: bool,
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
    /// Loads the tokenizer of the model `spec` names (a SPLADE model's
    /// with no prompts).
    ///
    /// # Errors
    /// As [`EmbedSpec::validate`].
    pub fn load(spec: &EmbedSpec) -> Result<Self, EmbedError> {
        check_model_dir(&spec.model_dir)?;
        if spec.serves_sparse()? {
            let info = spec.sparse_info()?;
            return Self::from_file(
                &spec.model_dir.join("tokenizer.json"),
                info.max_seq_length,
                info.vocab_size,
            );
        }
        let config = ModelConfig::load(&spec.model_dir)?;
        let tokenizer = Self::from_file(
            &spec.model_dir.join("tokenizer.json"),
            effective_max_len(spec, &config),
            config.vocab_size,
        )?;
        if config.task.kind == ModelKind::Embed {
            tokenizer.with_prompts(spec, &config)
        } else {
            Ok(tokenizer)
        }
    }

    /// This tokenizer with the model's prompts and the one `spec` applies
    /// by default.
    ///
    /// # Errors
    /// [`EmbedError::Config`] for a prompt name the model lacks, or a
    /// prompt on a model whose pooling leaves prompts out.
    pub(crate) fn with_prompts(
        mut self,
        spec: &EmbedSpec,
        config: &ModelConfig,
    ) -> Result<Self, EmbedError> {
        let st_path = spec.model_dir.join("config_sentence_transformers.json");
        self.prompts = config.prompts.clone();
        self.include_prompt = config.include_prompt;
        let default = config
            .prompts
            .default_name()
            .and_then(|n| config.prompts.get(n));
        let prompt = config
            .prompts
            .resolve(&spec.prompt, default)
            .map_err(|m| EmbedError::config(&st_path, m))?;
        if let Some(p) = &prompt {
            self.check_prompt(p)
                .map_err(|m| EmbedError::config(&st_path, m))?;
        }
        self.prompt = prompt;
        Ok(self)
    }

    fn check_prompt(&self, prompt: &str) -> Result<(), String> {
        if self.include_prompt || prompt.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the model's pooling leaves the prompt's tokens out \
                 (include_prompt: false), which Corral does not support; \
                 prompt {prompt:?} cannot be applied"
            ))
        }
    }

    /// The model's prompts (`config_sentence_transformers.json`).
    pub fn prompts(&self) -> &Prompts {
        &self.prompts
    }

    /// The prompt put before texts by default: the spec's
    /// [`EmbedSpec::prompt`] (by default the model's `default_prompt_name`);
    /// `None` for none.
    pub fn default_prompt(&self) -> Option<&str> {
        self.prompt.as_deref()
    }

    /// The prompt string `choice` picks for this tokenizer, `None` for
    /// none ([`Prompt::ModelDefault`] is [`EmbedTokenizer::default_prompt`]).
    ///
    /// # Errors
    /// [`EmbedError::InvalidInput`] for a name the model's prompts lack, or
    /// a prompt on a model whose pooling leaves prompts out
    /// (`include_prompt: false`).
    pub fn resolve_prompt(&self, choice: &Prompt) -> Result<Option<String>, EmbedError> {
        let prompt = self
            .prompts
            .resolve(choice, self.prompt.as_deref())
            .map_err(EmbedError::InvalidInput)?;
        if let Some(p) = &prompt {
            self.check_prompt(p).map_err(EmbedError::InvalidInput)?;
        }
        Ok(prompt)
    }

    /// Tokenises `prompt` + `text` as sentence-transformers does (the
    /// prompt string prepended, then the whole tokenised and cut from
    /// `side`), as [`EmbedTokenizer::encode`]. Cut from the left, a text
    /// over the limit loses the prompt first.
    ///
    /// # Errors
    /// As [`EmbedTokenizer::encode`].
    pub fn encode_prompted(
        &self,
        text: &str,
        prompt: Option<&str>,
        side: TruncationSide,
    ) -> Result<Tokenized, EmbedError> {
        match prompt {
            Some(p) if !p.is_empty() => self.encode(&format!("{p}{text}"), side),
            _ => self.encode(text, side),
        }
    }

    /// Loads `path` for a model of `max_seq_length` word pieces (special
    /// tokens included) and `vocab_size` ids.
    pub(crate) fn from_file(
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
        let pair = pair_template(&inner)?;
        Ok(Self {
            pair,
            prompts: Prompts::default(),
            prompt: None,
            include_prompt: true,
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

    /// Special tokens the pair template adds (3 for BERT, 4 for
    /// XLM-RoBERTa).
    pub(crate) fn pair_special_tokens(&self) -> usize {
        self.pair.added()
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
        let content = self.bounded_content(text, side, self.max_content_tokens())?;
        Ok(self.wrap_content(content.ids, side))
    }

    /// The word pieces of `text` (no special tokens): all of them, or, for
    /// a text of more than `budget` pieces, at least `budget + 1` of them
    /// from the kept `side` — tokenising a piece cut at a word boundary,
    /// doubled until it overflows `budget` or is the whole text.
    fn bounded_content(
        &self,
        text: &str,
        side: TruncationSide,
        budget: usize,
    ) -> Result<Content, EmbedError> {
        let bytes = self.max_seq_length * PREFIX_BYTES_PER_TOKEN;
        self.content_from(text, side, bytes, |ids| ids.len() > budget)
    }

    /// Tokenises pieces of `text` from `side`, from `bytes` bytes up,
    /// doubling, until `enough` says so or the piece is the whole text.
    fn content_from(
        &self,
        text: &str,
        side: TruncationSide,
        mut bytes: usize,
        enough: impl Fn(&[u32]) -> bool,
    ) -> Result<Content, EmbedError> {
        let cut = match side {
            TruncationSide::Right => prefix_at_boundary,
            TruncationSide::Left => suffix_at_boundary,
        };
        loop {
            let (piece, whole) = cut(text, bytes, self.punctuation);
            let ids = self.content_ids(piece)?;
            if whole || enough(&ids) {
                return Ok(Content { ids, whole, bytes });
            }
            bytes = bytes.saturating_mul(2);
        }
    }

    /// The text of `ids`, as the tokenizer's decoder gives it, special
    /// tokens left out when `skip_special_tokens`.
    ///
    /// # Errors
    /// [`EmbedError::InvalidInput`] for an id outside the vocabulary;
    /// [`EmbedError::Tokenizer`] if the decoder fails.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, EmbedError> {
        if let Some(bad) = ids
            .iter()
            .find(|&&id| id as usize >= self.vocab_size || self.inner.id_to_token(id).is_none())
        {
            return Err(EmbedError::InvalidInput(format!(
                "token id {bad} is not in the tokenizer's vocabulary"
            )));
        }
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| EmbedError::Tokenizer(format!("decoding: {e}")))
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

/// A text's word pieces as far as they were tokenised.
struct Content {
    ids: Vec<u32>,
    /// Whether `ids` are the whole text's.
    whole: bool,
    /// The bytes of the piece tokenised (at least; the whole text when
    /// `whole`).
    bytes: usize,
}
