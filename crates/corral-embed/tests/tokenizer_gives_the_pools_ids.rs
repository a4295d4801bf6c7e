//! `EmbedTokenizer` — what a front end uses to tokenise before it submits
//! — gives the reference tokenizer's ids (the pool's own), says when it cut
//! a text, cuts from either side, and refuses ids outside the vocabulary;
//! ids submitted as `EmbedInput::Tokens` embed exactly as their text does.

use std::path::PathBuf;

use corral_embed::{model_dir, EmbedInput, EmbedSpec, EmbedTokenizer, Embedder, TruncationSide};
use serde::Deserialize;

#[derive(Deserialize)]
struct GoldenTokens {
    max_seq_length: usize,
    cases: Vec<TokenCase>,
}

#[derive(Deserialize)]
struct TokenCase {
    text: String,
    input_ids: Vec<u32>,
    truncated: bool,
}

fn spec() -> EmbedSpec {
    let dir = model_dir::resolve_model_dir(None).unwrap_or_else(|e| {
        panic!("this test needs all-MiniLM-L6-v2 (set CORRAL_MODEL_DIR or fetch it): {e}")
    });
    EmbedSpec::new(dir)
}

fn golden() -> GoldenTokens {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/minilm_l6_v2_public_tokens.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn tokenizer_gives_the_reference_ids_and_says_when_it_cut() {
    let tokens = golden();
    let t = EmbedTokenizer::load(&spec()).unwrap();
    assert_eq!(t.max_seq_length(), tokens.max_seq_length);
    for case in &tokens.cases {
        let got = t.encode(&case.text, TruncationSide::Right).unwrap();
        assert_eq!(got.ids, case.input_ids, "{:?}", case.text);
        assert_eq!(got.truncated, case.truncated, "{:?}", case.text);
    }
    let info = spec().model_info().unwrap();
    assert_eq!((info.dim, info.max_seq_length), (384, 256));
}

#[test]
fn left_truncation_keeps_the_end_and_ids_outside_the_vocabulary_are_refused() {
    let t = EmbedTokenizer::load(&spec()).unwrap();
    let long = golden()
        .cases
        .into_iter()
        .find(|c| c.truncated)
        .unwrap()
        .text;
    let right = t.encode(&long, TruncationSide::Right).unwrap();
    let left = t.encode(&long, TruncationSide::Left).unwrap();
    assert!(left.truncated);
    assert_eq!(left.ids.len(), 256);
    assert_eq!(left.ids[0], right.ids[0], "[CLS] stays");
    assert_eq!(left.ids[255], right.ids[255], "[SEP] stays");
    assert_ne!(left.ids[1..255], right.ids[1..255]);
    let wrapped = t.wrap_ids(vec![7592, 2088], TruncationSide::Right).unwrap();
    assert_eq!(wrapped.ids, vec![101, 7592, 2088, 102]);
    assert!(t
        .wrap_ids(vec![t.vocab_size() as u32], TruncationSide::Right)
        .is_err());
}

#[test]
fn token_ids_embed_as_their_text_does_and_bad_ids_are_invalid_input() {
    let spec = spec();
    let t = EmbedTokenizer::load(&spec).unwrap();
    let mut e = Embedder::load(&spec, 1).unwrap();
    let text = "The cat sat on the mat.";
    let ids = t.encode(text, TruncationSide::Right).unwrap().ids;
    let inputs = [EmbedInput::from(text), EmbedInput::Tokens(ids)];
    let out = e.embed_inputs(&inputs.iter().collect::<Vec<_>>()).unwrap();
    let diff = out[0]
        .iter()
        .zip(&out[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-5, "{diff}");
    for bad in [vec![], vec![101, 999_999, 102], vec![101; 257]] {
        let err = e.embed_inputs(&[&EmbedInput::Tokens(bad)]).unwrap_err();
        assert!(
            matches!(err, corral_embed::EmbedError::InvalidInput(_)),
            "{err}"
        );
    }
}

#[test]
fn a_long_text_cut_from_either_side_gives_the_whole_texts_pieces() {
    let spec = spec();
    let t = EmbedTokenizer::load(&spec).unwrap();
    let mut reference =
        tokenizers::Tokenizer::from_file(spec.model_dir.join("tokenizer.json")).unwrap();
    reference.with_truncation(None).unwrap();
    reference.with_padding(None);
    let whole = |text: &str| {
        reference
            .encode_fast(text, false)
            .unwrap()
            .get_ids()
            .to_vec()
    };
    // Long enough for several doublings of the piece tokenised; words,
    // punctuation, accents, ideographs and a run too long for one word.
    let mut long = String::new();
    for i in 0..4000 {
        long.push_str(&format!(
            "Sentence {i}, with café-crème, 日本語の文 and more. "
        ));
        if i % 997 == 0 {
            long.push_str(&"x".repeat(3000));
        }
    }
    let content = t.max_content_tokens();
    let all = whole(&long);
    assert!(all.len() > 20 * content, "{} pieces", all.len());
    let right = t.encode(&long, TruncationSide::Right).unwrap();
    let left = t.encode(&long, TruncationSide::Left).unwrap();
    assert!(right.truncated && left.truncated);
    assert_eq!(right.ids[1..=content], all[..content]);
    assert_eq!(left.ids[1..=content], all[all.len() - content..]);
    // Ends that start or stop inside the long run, and in the ideographs.
    for text in [
        format!("{} tail words here", "y".repeat(5000)),
        format!("head words here {}", "y".repeat(5000)),
        "日本語".repeat(3000),
    ] {
        let all = whole(&text);
        for side in [TruncationSide::Left, TruncationSide::Right] {
            let got = t.encode(&text, side).unwrap();
            let keep = all.len().min(content);
            let expect = match side {
                TruncationSide::Right => &all[..keep],
                TruncationSide::Left => &all[all.len() - keep..],
            };
            assert_eq!(got.ids[1..=keep], *expect, "{side:?} of {:.20}…", text);
        }
    }
}

#[test]
fn each_token_knows_the_bytes_of_the_text_it_came_from() {
    let t = EmbedTokenizer::load(&spec()).unwrap();
    let vocab: std::collections::HashMap<u32, String> = {
        let raw: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(spec().model_dir.join("tokenizer.json")).unwrap(),
        )
        .unwrap();
        raw["model"]["vocab"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(token, id)| (id.as_u64().unwrap() as u32, token.clone()))
            .collect()
    };
    let mut checked = 0;
    for case in golden().cases {
        let text = &case.text;
        let spans = t.encode_spans(text).unwrap();
        let ids: Vec<u32> = spans.iter().map(|s| s.id).collect();
        assert_eq!(ids, case.input_ids, "the pool's ids, cut alike: {text:?}");
        let (first, last) = (&spans[0], &spans[spans.len() - 1]);
        assert!(first.special && first.span.is_none(), "[CLS]: {first:?}");
        assert!(last.special && last.span.is_none(), "[SEP]: {last:?}");
        let mut at = 0;
        for s in &spans[1..spans.len() - 1] {
            let span = s.span.clone().expect("a content token has its bytes");
            assert!(
                span.start >= at && span.end <= text.len(),
                "{text:?}: {s:?}"
            );
            at = span.start;
            // An uncased WordPiece token is its bytes lowercased (a
            // continuation marked `##`), where the text is plain ASCII.
            let piece = &text[span];
            let token = vocab[&s.id].trim_start_matches("##");
            if piece.is_ascii() && token != "[UNK]" {
                assert_eq!(piece.to_lowercase(), token, "{text:?}: {s:?}");
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} tokens compared");
}
