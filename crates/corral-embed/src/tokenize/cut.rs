//! Where a long text may be cut before it is tokenised, so that the word
//! pieces of the piece are the whole text's first (or last) ones, and a
//! cheap estimate of a text's word pieces.

use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::Tokenizer;

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
