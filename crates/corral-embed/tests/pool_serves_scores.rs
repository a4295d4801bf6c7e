//! Reranking through the full pool: concurrent requests of pairs, texts and
//! tokens are answered on their own reply ports, in input order, with the
//! logits the scorer gives directly, whatever batch they shared.

use std::path::Path;
use std::time::Duration;

use corral_core::{Call, Pool, PoolConfig};
use corral_embed::{EmbedSpec, EmbedTokenizer, ScoreBackend, ScoreInput, Scorer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_score_requests_get_their_own_logits_in_order() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-bert-rerank");
    let spec = EmbedSpec::new(&dir);
    let mut direct = Scorer::load(&spec, 1).unwrap();
    let tokenizer = EmbedTokenizer::load(&spec).unwrap();
    let config = PoolConfig {
        name: "score-test".into(),
        workers: 2,
        threads_per_worker: Some(1),
        max_batch_tokens: 96,
        max_client_batch: 16,
        ..PoolConfig::default()
    };
    let handle = Pool::<ScoreBackend>::spawn(spec, config).await.unwrap();
    handle.wait_ready(Duration::from_secs(60)).await.unwrap();

    let requests: Vec<Vec<ScoreInput>> = (0..12)
        .map(|r| {
            (0..=(r % 5))
                .map(|i| {
                    let q = format!("what is a cat {r}");
                    let d = format!("the cat sat {i} {}", "on the mat ".repeat(i + r % 3));
                    match (r + i) % 3 {
                        0 => ScoreInput::pair(q, d),
                        1 => ScoreInput::Text(d),
                        _ => ScoreInput::Tokens(tokenizer.encode_pair(&q, Some(&d)).unwrap()),
                    }
                })
                .collect()
        })
        .collect();
    let tasks: Vec<_> = requests
        .iter()
        .cloned()
        .map(|inputs| {
            let h = handle.clone();
            tokio::spawn(async move { h.call_batch(inputs).await })
        })
        .collect();
    for (inputs, task) in requests.iter().zip(tasks) {
        let got = task.await.unwrap().unwrap();
        let refs: Vec<&ScoreInput> = inputs.iter().collect();
        let want = direct.score(&refs).unwrap();
        assert_eq!(got.len(), inputs.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.logits.len(), 1);
            assert!((g.logits[0] - w[0]).abs() <= 1e-5, "{g:?} vs {w:?}");
        }
    }
    handle.shutdown(Duration::from_secs(10)).await.unwrap();
}
