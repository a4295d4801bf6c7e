//! Awkward input embeds: empty and whitespace-only strings, a 1 MB text
//! (truncated, with work bounded by the maximum length), emoji, CJK and
//! control characters.

mod common;

use common::{norm, tiny_model, Tiny};
use corral_embed::{EmbedSpec, Embedder};
use tokenizers::{Tokenizer, TruncationParams};

fn awkward_texts() -> Vec<String> {
    vec![
        String::new(),
        " ".into(),
        " \t\n\r  ".into(),
        "😀🎉🚀 ❤️ 👩‍👩‍👧‍👦".into(),
        "我喜欢学习新的编程语言。東京は日本の首都です。".into(),
        "\u{0}\u{7}\u{1b}[31mred\u{1b}[0m\u{7f}\u{200b}\u{feff}".into(),
        "line one\nline two\r\nline three".into(),
        "\u{fffd}\u{10ffff}\u{e000}".into(),
        "the cat ".repeat(131_072),
        "x".repeat(1 << 20),
        "我".repeat(350_000),
        "\u{7}".repeat(1 << 20),
    ]
}

#[test]
fn awkward_texts_all_embed_to_finite_unit_vectors() {
    let (_tmp, dir) = tiny_model(&Tiny::default());
    let mut e = Embedder::load(&EmbedSpec::new(&dir), 1).unwrap();
    let texts = awkward_texts();
    let vectors = e.embed(&texts).unwrap();
    assert_eq!(vectors.len(), texts.len());
    for (t, v) in texts.iter().zip(&vectors) {
        let shown: String = t.chars().take(20).collect();
        assert_eq!(v.len(), e.dim(), "{shown:?}");
        assert!(v.iter().all(|x| x.is_finite()), "{shown:?}");
        assert!((norm(v) - 1.0).abs() < 1e-4, "{shown:?}: norm {}", norm(v));
    }
}

#[test]
fn a_megabyte_of_text_is_truncated_like_full_tokenization() {
    let (_tmp, dir) = tiny_model(&Tiny::default());
    let e = Embedder::load(&EmbedSpec::new(&dir), 1).unwrap();
    let mut full = Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    full.with_padding(None);
    full.with_truncation(Some(TruncationParams {
        max_length: e.max_seq_length(),
        ..TruncationParams::default()
    }))
    .unwrap();
    let mut mixed = String::new();
    while mixed.len() < (1 << 20) {
        mixed.push_str("hello,world! 我的 cat\u{7}s  sat\ton x");
        mixed.push_str(&"y".repeat(mixed.len() % 150));
        mixed.push(' ');
    }
    for text in awkward_texts().iter().chain([&mixed]) {
        let want = full.encode(text.as_str(), true).unwrap().get_ids().to_vec();
        let got = e.token_ids(text).unwrap();
        assert_eq!(got, want, "{:?}", text.chars().take(20).collect::<String>());
        assert!(got.len() <= e.max_seq_length());
    }
    assert_eq!(e.token_ids(&"the cat ".repeat(131_072)).unwrap().len(), 24);
}
