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
use crate::{EmbedError, EmbedSpec, ModelKind, PairTokenized, Prompt, Prompts};

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

/// Where the post-processor puts special tokens around a pair, and the
/// token type of each part — read once from the tokenizer by encoding a
/// probe pair: `[CLS] a [SEP] b [SEP]` with types 0…0 1…1 for BERT,
/// `<s> a </s></s> b </s>` all type 0 for XLM-RoBERTa.
#[derive(Debug, Clone, Default)]
struct PairTemplate {
    /// Special tokens before the first text, between the two, after the
    /// second, with their types.
    prefix: Vec<(u32, u32)>,
    middle: Vec<(u32, u32)>,
    suffix: Vec<(u32, u32)>,
    /// The token type of the first text's and of the second text's tokens.
    first_type: u32,
    second_type: u32,
}

impl PairTemplate {
    /// Special tokens in a pair.
    fn added(&self) -> usize {
        self.prefix.len() + self.middle.len() + self.suffix.len()
    }
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

    /// Tokenises a text or a pair for a cross-encoder or classifier, as
    /// sentence-transformers' `CrossEncoder` does: the model's pair template
    /// (BERT `[CLS] a [SEP] b [SEP]`, token types 0 for the first text and
    /// its special tokens and 1 for the rest; XLM-RoBERTa
    /// `<s> a </s></s> b </s>`, all type 0), truncated to the maximum
    /// sequence length with Hugging Face's `longest_first` strategy — the
    /// longer text loses tokens first; when both are over half the budget,
    /// each keeps half (the longer one the odd token). `second: None`
    /// tokenises one text (`[CLS] a [SEP]`, all type 0), cut at the end.
    ///
    /// This is what the model's own tokenizer does with
    /// `truncation=True`, which `CrossEncoder.predict` passes. TEI's
    /// documentation describes `only_second` (only the document is cut);
    /// the two agree unless the query takes more than about half the
    /// budget.
    ///
    /// Work is bounded as in [`EmbedTokenizer::encode`]: each text is
    /// tokenised only as far as the maximum length needs. One case looks
    /// further: when both texts are over the budget alone and it is odd,
    /// the longer one keeps the odd token, so both are tokenised further
    /// (up to 64 times the first piece's bytes) to tell which is longer,
    /// and past that the one with more bytes counts as longer.
    ///
    /// # Errors
    /// [`EmbedError::Tokenizer`] if the tokenizer fails.
    pub fn encode_pair(
        &self,
        first: &str,
        second: Option<&str>,
    ) -> Result<PairTokenized, EmbedError> {
        let Some(second) = second else {
            let t = self.encode(first, TruncationSide::Right)?;
            return Ok(PairTokenized {
                type_ids: vec![0; t.ids.len()],
                ids: t.ids,
                truncated: t.truncated,
            });
        };
        let tpl = &self.pair;
        let budget = self.max_seq_length.saturating_sub(tpl.added());
        let side = TruncationSide::Right;
        let mut a = self.bounded_content(first, side, budget)?;
        let mut b = self.bounded_content(second, side, budget)?;
        let (over_a, over_b) = (a.ids.len() > budget, b.ids.len() > budget);
        // Which is longer matters only when both overflow and the budget
        // is odd (the longer keeps the odd token).
        let first_longer = if over_a && over_b && budget % 2 == 1 {
            self.first_is_longer(first, second, &mut a, &mut b)?
        } else {
            a.ids.len() > b.ids.len()
        };
        let (keep_a, keep_b) = longest_first(a.ids.len(), b.ids.len(), first_longer, budget);
        let truncated = keep_a < a.ids.len() || keep_b < b.ids.len();
        let mut ids = Vec::with_capacity(keep_a + keep_b + tpl.added());
        let mut type_ids = Vec::with_capacity(ids.capacity());
        let push_special = |part: &[(u32, u32)], ids: &mut Vec<u32>, types: &mut Vec<u32>| {
            for &(id, ty) in part {
                ids.push(id);
                types.push(ty);
            }
        };
        push_special(&tpl.prefix, &mut ids, &mut type_ids);
        ids.extend_from_slice(&a.ids[..keep_a]);
        type_ids.extend(std::iter::repeat_n(tpl.first_type, keep_a));
        push_special(&tpl.middle, &mut ids, &mut type_ids);
        ids.extend_from_slice(&b.ids[..keep_b]);
        type_ids.extend(std::iter::repeat_n(tpl.second_type, keep_b));
        push_special(&tpl.suffix, &mut ids, &mut type_ids);
        Ok(PairTokenized {
            ids,
            type_ids,
            truncated,
        })
    }

    /// Whether `first` has more word pieces than `second`, both being over
    /// the budget: their pieces are tokenised further in turn until one is
    /// whole and the other has more pieces than it (a piece's count never
    /// exceeds its whole text's), or up to [`TIE_BREAK_GROWTH`] times the
    /// first piece's bytes; past that, the one with more bytes.
    fn first_is_longer(
        &self,
        first: &str,
        second: &str,
        a: &mut Content,
        b: &mut Content,
    ) -> Result<bool, EmbedError> {
        let cap = (self.max_seq_length * PREFIX_BYTES_PER_TOKEN).saturating_mul(TIE_BREAK_GROWTH);
        loop {
            match (a.whole, b.whole) {
                (true, true) => return Ok(a.ids.len() > b.ids.len()),
                (true, false) if b.ids.len() > a.ids.len() => return Ok(false),
                (false, true) if a.ids.len() > b.ids.len() => return Ok(true),
                _ => {}
            }
            if a.bytes >= cap && b.bytes >= cap {
                return Ok(first.len() > second.len());
            }
            let side = TruncationSide::Right;
            if !a.whole && a.bytes < cap {
                *a = self.content_from(first, side, a.bytes * 2, |_| true)?;
            }
            if !b.whole && b.bytes < cap {
                *b = self.content_from(second, side, b.bytes * 2, |_| true)?;
            }
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

/// How far (times the first piece's bytes) [`EmbedTokenizer::encode_pair`]
/// tokenises two over-long texts to tell which is longer.
const TIE_BREAK_GROWTH: usize = 64;

/// Hugging Face's `longest_first` truncation of a pair of `n1` and `n2`
/// word pieces to `budget` (tokenizers' `truncate_encodings`): how many
/// each keeps. `first_longer` says whether the first text has more pieces
/// than the second (it may be known when the counts, cut short, are not).
pub(crate) fn longest_first(
    n1: usize,
    n2: usize,
    first_longer: bool,
    budget: usize,
) -> (usize, usize) {
    if n1 + n2 <= budget {
        return (n1, n2);
    }
    // Shorter and longer.
    let (short, long) = if first_longer { (n2, n1) } else { (n1, n2) };
    let (mut keep_short, mut keep_long) = if short > budget {
        (short, short)
    } else {
        (short, short.max(budget - short))
    };
    if keep_short + keep_long > budget {
        keep_short = budget / 2;
        keep_long = keep_short + budget % 2;
    }
    let (keep_short, keep_long) = (keep_short.min(short), keep_long.min(long));
    if first_longer {
        (keep_long, keep_short)
    } else {
        (keep_short, keep_long)
    }
}

/// Reads the pair template of `tokenizer` by encoding a probe pair and
/// sorting its tokens by their sequence (first text, second, or none: a
/// special token).
fn pair_template(tokenizer: &Tokenizer) -> Result<PairTemplate, EmbedError> {
    let enc = tokenizer
        .encode(("a", "b"), true)
        .map_err(|e| EmbedError::Tokenizer(format!("encoding a pair: {e}")))?;
    let mut tpl = PairTemplate::default();
    let mut seen = [false, false];
    for ((&id, &ty), seq) in enc
        .get_ids()
        .iter()
        .zip(enc.get_type_ids())
        .zip(enc.get_sequence_ids())
    {
        match seq {
            Some(0) => {
                seen[0] = true;
                tpl.first_type = ty;
            }
            Some(_) => {
                seen[1] = true;
                tpl.second_type = ty;
            }
            None if seen[1] => tpl.suffix.push((id, ty)),
            None if seen[0] => tpl.middle.push((id, ty)),
            None => tpl.prefix.push((id, ty)),
        }
    }
    if !(seen[0] && seen[1]) {
        return Err(EmbedError::Tokenizer(
            "the tokenizer's pair template drops one of the texts".into(),
        ));
    }
    Ok(tpl)
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
    fn longest_first_cuts_the_longer_text_then_both_as_hugging_face_does() {
        // Fits: nothing cut.
        assert_eq!(longest_first(10, 20, false, 30), (10, 20));
        // Only the longer one is cut, to what the shorter leaves.
        assert_eq!(longest_first(5, 100, false, 61), (5, 56));
        assert_eq!(longest_first(100, 5, true, 61), (56, 5));
        // Both over half: half each, the longer keeps the odd token.
        assert_eq!(longest_first(40, 45, false, 61), (30, 31));
        assert_eq!(longest_first(45, 40, true, 61), (31, 30));
        // A tie counts the second as the longer one.
        assert_eq!(longest_first(40, 40, false, 61), (30, 31));
        assert_eq!(longest_first(40, 45, false, 60), (30, 30));
        // The first alone over the budget.
        assert_eq!(longest_first(200, 9, true, 61), (52, 9));
        assert_eq!(longest_first(0, 200, false, 61), (0, 61));
    }

    #[test]
    fn estimate_is_at_least_one_and_capped() {
        assert!(estimate_tokens("", 256) >= 1);
        assert_eq!(estimate_tokens(&"word ".repeat(10_000), 256), 256);
        assert_eq!(estimate_tokens("hello world", 256), 4);
    }
}
