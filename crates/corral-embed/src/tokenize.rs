//! Text to word-piece ids: [`EmbedTokenizer`], the one tokenizer of the
//! workers (through [`crate::Embedder`]) and of front ends that tokenise
//! before they submit. It loads `tokenizer.json` with its padding and
//! truncation off (texts are packed, never padded here: only candle's
//! engine pads, for itself, inside the encoder), cuts the content to the
//! sentence-transformers `max_seq_length` itself and puts the model's
//! special tokens around it, and bounds the work spent on very long texts
//! by tokenizing only a piece long enough to fill the maximum length.

use std::path::Path;

use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::Tokenizer;

use crate::config::ModelConfig;
use crate::input::effective_max_len;
use crate::model_dir::check_model_dir;
use crate::{EmbedError, EmbedSpec};

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

/// Whether `tokenizer` splits words at ASCII punctuation whatever surrounds
/// it — BERT's pre-tokenizer does; SentencePiece's Metaspace (XLM-RoBERTa)
/// and byte-level BPE keep punctuation inside a word, so for them only
/// whitespace is a safe place to cut a long text.
pub(crate) fn splits_at_punctuation(tokenizer: &Tokenizer) -> bool {
    matches!(
        tokenizer.get_pre_tokenizer(),
        Some(PreTokenizerWrapper::BertPreTokenizer(_))
    )
}

/// Characters of one run (no whitespace or ASCII punctuation) after which a
/// cut inside the run is safe: a word this long is `[UNK]` whole or cut
/// (WordPiece gives up on words over 100 characters), and with Chinese
/// character handling every ideograph is its own word anyway.
const SAFE_RUN_CHARS: usize = 1000;

/// `text` cut at the first word boundary at or after byte `budget`, and
/// whether that is the whole text.
///
/// A boundary is a whitespace character, an ASCII punctuation character
/// when `punctuation` (the BERT pre-tokenizer splits there whatever
/// surrounds it; see [`splits_at_punctuation`]), or the point where a run
/// without one reaches [`SAFE_RUN_CHARS`]; the word pieces of the prefix
/// are then the first word pieces of the whole text.
pub(crate) fn prefix_at_boundary(text: &str, budget: usize, punctuation: bool) -> (&str, bool) {
    if text.len() <= budget {
        return (text, true);
    }
    let mut start = budget;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    for (run, (i, c)) in text[start..].char_indices().enumerate() {
        if c.is_whitespace() || (punctuation && c.is_ascii_punctuation()) || run >= SAFE_RUN_CHARS {
            return (&text[..start + i], false);
        }
    }
    (text, true)
}

/// `text` cut at the last word boundary at or before `budget` bytes from its
/// end (the boundary character kept), and whether that is the whole text:
/// the mirror of [`prefix_at_boundary`], whose word pieces are the whole
/// text's last ones.
pub(crate) fn suffix_at_boundary(text: &str, budget: usize, punctuation: bool) -> (&str, bool) {
    if text.len() <= budget {
        return (text, true);
    }
    let mut end = text.len() - budget;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    // The character at `end` may itself be the boundary.
    let upto = end + text[end..].chars().next().map_or(0, char::len_utf8);
    for (run, (i, c)) in text[..upto].char_indices().rev().enumerate() {
        if c.is_whitespace() || (punctuation && c.is_ascii_punctuation()) || run >= SAFE_RUN_CHARS {
            return (&text[i..], false);
        }
    }
    (text, true)
}

/// A cheap upper-leaning estimate of the word pieces `text` becomes, capped
/// at `max_seq_length`: two special tokens, one piece per punctuation or
/// non-ASCII character, and one per started run of six ASCII letters/digits.
pub(crate) fn estimate_tokens(text: &str, max_seq_length: usize) -> usize {
    let mut count = 2usize;
    let mut run = 0usize;
    for c in text.chars() {
        if count >= max_seq_length {
            break;
        }
        if c.is_ascii_alphanumeric() {
            if run.is_multiple_of(6) {
                count += 1;
            }
            run += 1;
        } else {
            run = 0;
            if !c.is_whitespace() && !c.is_control() {
                count += 1;
            }
        }
    }
    count.clamp(1, max_seq_length.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_cuts_at_whitespace_after_budget() {
        assert_eq!(
            prefix_at_boundary("abc def ghi", 100, true),
            ("abc def ghi", true)
        );
        assert_eq!(prefix_at_boundary("abc def ghi", 2, true), ("abc", false));
        assert_eq!(
            prefix_at_boundary("abc def ghi", 4, true),
            ("abc def", false)
        );
        assert_eq!(
            prefix_at_boundary("abcdefghi", 4, true),
            ("abcdefghi", true)
        );
        // multi-byte characters around the budget
        assert_eq!(prefix_at_boundary("ééé ééé", 1, true), ("ééé", false));
        assert_eq!(prefix_at_boundary("abc,def", 1, true), ("abc", false));
        // Without punctuation boundaries only whitespace cuts.
        assert_eq!(
            prefix_at_boundary("abc,def ghi", 1, false),
            ("abc,def", false)
        );
        let run = "x".repeat(5000);
        assert_eq!(
            prefix_at_boundary(&run, 10, true).0.len(),
            10 + SAFE_RUN_CHARS
        );
    }

    #[test]
    fn suffix_cuts_at_whitespace_before_the_last_budget_bytes() {
        assert_eq!(
            suffix_at_boundary("abc def ghi", 100, true),
            ("abc def ghi", true)
        );
        assert_eq!(suffix_at_boundary("abc def ghi", 2, true), (" ghi", false));
        assert_eq!(suffix_at_boundary("abc def ghi", 4, true), (" ghi", false));
        assert_eq!(
            suffix_at_boundary("abc def ghi", 5, true),
            (" def ghi", false)
        );
        assert_eq!(
            suffix_at_boundary("abcdefghi", 4, true),
            ("abcdefghi", true)
        );
        assert_eq!(suffix_at_boundary("ééé ééé", 1, true), (" ééé", false));
        assert_eq!(suffix_at_boundary("abc,def", 1, true), (",def", false));
        assert_eq!(
            suffix_at_boundary("abc def,ghi", 1, false),
            (" def,ghi", false)
        );
        let run = "x".repeat(5000);
        assert_eq!(
            suffix_at_boundary(&run, 10, true).0.len(),
            10 + SAFE_RUN_CHARS
        );
    }

    #[test]
    fn estimate_is_at_least_one_and_capped() {
        assert!(estimate_tokens("", 256) >= 1);
        assert_eq!(estimate_tokens(&"word ".repeat(10_000), 256), 256);
        assert_eq!(estimate_tokens("hello world", 256), 4);
    }
}
