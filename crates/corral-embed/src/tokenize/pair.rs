//! Pairs for cross-encoders and classifiers: the model's pair template,
//! read once from its tokenizer, and Hugging Face's `longest_first` cut.

use tokenizers::Tokenizer;

use super::{Content, EmbedTokenizer, TruncationSide, PREFIX_BYTES_PER_TOKEN};
use crate::{EmbedError, PairTokenized};

/// Where the post-processor puts special tokens around a pair, and the
/// token type of each part — read once from the tokenizer by encoding a
/// probe pair: `[CLS] a [SEP] b [SEP]` with types 0…0 1…1 for BERT,
/// `<s> a </s></s> b </s>` all type 0 for XLM-RoBERTa.
#[derive(Debug, Clone, Default)]
pub(super) struct PairTemplate {
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
    pub(super) fn added(&self) -> usize {
        self.prefix.len() + self.middle.len() + self.suffix.len()
    }
}

impl EmbedTokenizer {
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
pub(super) fn pair_template(tokenizer: &Tokenizer) -> Result<PairTemplate, EmbedError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
