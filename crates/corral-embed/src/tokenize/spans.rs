//! A text's tokens with where each came from in it, for front ends that
//! show tokens (TEI's `/tokenize`).

use std::ops::Range;

use super::{prefix_at_boundary, EmbedTokenizer, TruncationSide};
use crate::EmbedError;

/// One token of a text, as [`EmbedTokenizer::encode_spans`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpannedToken {
    /// Its id in the vocabulary.
    pub id: u32,
    /// Whether the tokenizer counts it special: one the model's template
    /// adds (`[CLS]`, `</s>`, …), or a special token spelled in the text.
    pub special: bool,
    /// The bytes of the text it covers; `None` for a token the template
    /// adds.
    pub span: Option<Range<usize>>,
}

impl EmbedTokenizer {
    /// The tokens [`Self::encode`] gives `text` (cut at the end, as the
    /// pool cuts texts), in order and with the same ids, each with the
    /// bytes of `text` it covers. The work is bounded as `encode`'s is.
    ///
    /// # Errors
    /// [`EmbedError::Tokenizer`] if the tokenizer fails.
    pub fn encode_spans(&self, text: &str) -> Result<Vec<SpannedToken>, EmbedError> {
        let budget = self.max_content_tokens();
        // The piece `encode` tokenised: cutting again at the same bytes
        // gives the same piece.
        let content = self.bounded_content(text, TruncationSide::Right, budget)?;
        let (piece, _) = prefix_at_boundary(text, content.bytes, self.punctuation);
        let enc = self
            .inner
            .encode(piece, false)
            .map_err(|e| EmbedError::Tokenizer(format!("encoding: {e}")))?;
        let added = |&id: &u32| SpannedToken {
            id,
            special: true,
            span: None,
        };
        let mut tokens = Vec::with_capacity(self.prefix.len() + budget + self.suffix.len());
        tokens.extend(self.prefix.iter().map(added));
        tokens.extend(
            enc.get_ids()
                .iter()
                .zip(enc.get_offsets())
                .zip(enc.get_special_tokens_mask())
                .take(budget)
                .map(|((&id, &(start, stop)), &mask)| SpannedToken {
                    id,
                    special: mask == 1,
                    span: Some(start..stop),
                }),
        );
        tokens.extend(self.suffix.iter().map(added));
        Ok(tokens)
    }
}
