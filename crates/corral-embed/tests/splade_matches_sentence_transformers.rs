//! SPLADE against sentence-transformers: the tiny random masked-language
//! model in `tests/data/tiny-splade/` (saved by sentence-transformers'
//! `SparseEncoder` in `scripts/make_tiny_families.py`, committed; the tests
//! fail, never skip, without it) must give `SparseEncoder.encode`'s ids
//! exactly and its sparse vectors — the same nonzero indices, each value
//! within 1e-4 — for every text alone and in one batch, directly and
//! through a pool of `SparseBackend` workers; a SPLADE directory is refused
//! as a dense embedder, and a dense one as a SPLADE model.

use std::path::{Path, PathBuf};

use std::time::Duration;

use corral_core::{Call, Pool, PoolConfig};
use corral_embed::{EmbedSpec, Embedder, SparseBackend, SparseEncoder, SparseInput, SparseVector};
use serde::Deserialize;

/// Largest difference allowed between a Rust and a PyTorch value.
const TOL: f32 = 1e-4;

#[derive(Deserialize)]
struct Golden {
    max_tokens: usize,
    vocab_size: usize,
    texts: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-splade")
}

fn golden() -> Golden {
    let path = fixture_dir().join("golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the SPLADE fixture is missing ({}: {e}); it is committed — \
             regenerate it with scripts/make_tiny_families.py splade",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// The same indices, and values within [`TOL`].
fn assert_close(got: &SparseVector, want: &Case, what: &str) {
    assert_eq!(got.indices, want.indices, "{what} {:?}: indices", want.text);
    for ((i, g), w) in got.indices.iter().zip(&got.values).zip(&want.values) {
        assert!(
            (g - w).abs() <= TOL,
            "{what} {:?}: index {i}: {g} against {w}",
            want.text
        );
    }
}

#[test]
fn sparse_vectors_match_sentence_transformers_alone_and_in_a_batch() {
    let golden = golden();
    let mut enc = SparseEncoder::load(&EmbedSpec::new(fixture_dir()), 1).unwrap();
    assert_eq!(enc.vocab_size(), golden.vocab_size);
    assert_eq!(enc.max_seq_length(), golden.max_tokens);
    let texts: Vec<&str> = golden.texts.iter().map(|c| c.text.as_str()).collect();
    let batch = enc.encode(&texts).unwrap();
    assert_eq!(batch.len(), texts.len());
    let mut truncated = 0;
    for (c, got) in golden.texts.iter().zip(&batch) {
        assert_eq!(enc.token_ids(&c.text).unwrap(), c.ids, "{:?}", c.text);
        truncated += usize::from(c.ids.len() == golden.max_tokens);
        assert_close(got, c, "in a batch");
        let alone = enc.encode(&[c.text.as_str()]).unwrap();
        assert_close(&alone[0], c, "alone");
        assert!(got.values.iter().all(|&v| v > 0.0));
        assert_eq!(got.to_dense(golden.vocab_size).len(), golden.vocab_size);
    }
    assert!(truncated >= 1, "the golden set has an over-long text");
}

#[test]
fn a_splade_model_is_not_loaded_as_a_dense_embedder() {
    let msg = Embedder::load(&EmbedSpec::new(fixture_dir()), 1)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("SPLADE"), "{msg}");
    assert!(msg.contains("SparseEncoder"), "{msg}");
}

#[test]
fn a_dense_model_is_not_loaded_as_splade() {
    let dense = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-mpnet");
    let msg = SparseEncoder::load(&EmbedSpec::new(dense), 1)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("SpladePooling"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_sparse_backends_answers_each_request_with_its_own_vectors() {
    let golden = golden();
    let config = PoolConfig {
        name: "splade-test".into(),
        workers: 2,
        threads_per_worker: Some(1),
        max_batch_tokens: 96,
        max_client_batch: 16,
        ..PoolConfig::default()
    };
    let handle = Pool::<SparseBackend>::spawn(EmbedSpec::new(fixture_dir()), config)
        .await
        .unwrap();
    handle.wait_ready(Duration::from_secs(60)).await.unwrap();
    // Requests of 1 to 4 golden texts, sent at once, so that they share
    // batches in the pool.
    let requests: Vec<Vec<usize>> = (0..10)
        .map(|r| {
            (0..=(r % 4))
                .map(|i| (r + 3 * i) % golden.texts.len())
                .collect()
        })
        .collect();
    let tasks: Vec<_> = requests
        .iter()
        .map(|which| {
            let inputs: Vec<SparseInput> = which
                .iter()
                .map(|&i| golden.texts[i].text.clone().into())
                .collect();
            let h = handle.clone();
            tokio::spawn(async move { h.call_batch(inputs).await })
        })
        .collect();
    for (which, task) in requests.iter().zip(tasks) {
        let got = task.await.unwrap().unwrap();
        assert_eq!(got.len(), which.len());
        for (&i, out) in which.iter().zip(&got) {
            assert_close(&out.vector, &golden.texts[i], "through the pool");
        }
    }
}
