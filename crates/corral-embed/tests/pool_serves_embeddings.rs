//! Embeddings through the full pool: concurrent requests of mixed sizes are
//! answered on their own reply ports, in input order, with the vectors the
//! model gives directly; empty and oversized requests are `InvalidInput`.

mod common;

use std::time::Duration;

use common::{max_abs_diff, tiny_model, Tiny};
use corral_core::{Call, CallError, Pool, PoolConfig, Refusal};
use corral_embed::{EmbedBackend, EmbedSpec, Embedder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_get_their_own_vectors_in_order() {
    let (_tmp, dir) = tiny_model(&Tiny::default());
    let spec = EmbedSpec::new(&dir);
    let mut direct = Embedder::load(&spec, 1).unwrap();
    let config = PoolConfig {
        name: "embed-test".into(),
        workers: 2,
        threads_per_worker: Some(1),
        max_batch_tokens: 64,
        max_client_batch: 16,
        ..PoolConfig::default()
    };
    let handle = Pool::<EmbedBackend>::spawn(spec, config).await.unwrap();
    handle.wait_ready(Duration::from_secs(60)).await.unwrap();

    let requests: Vec<Vec<String>> = (0..12)
        .map(|r| {
            (0..=(r % 5))
                .map(|i| format!("request {r} text {i} {}", "the cat sat ".repeat(i + r % 3)))
                .collect()
        })
        .collect();
    let tasks: Vec<_> = requests
        .iter()
        .cloned()
        .map(|texts| {
            let h = handle.clone();
            tokio::spawn(async move { h.call_batch(texts).await })
        })
        .collect();
    for (texts, task) in requests.iter().zip(tasks) {
        let got = task.await.unwrap().unwrap();
        let want = direct.embed(texts).unwrap();
        assert_eq!(got.len(), texts.len());
        for (g, w) in got.iter().zip(&want) {
            assert!(max_abs_diff(g, w) <= 1e-5);
        }
    }
    let one = handle.call("hello world".to_string()).await.unwrap();
    assert!(max_abs_diff(&one, &direct.embed(&["hello world"]).unwrap()[0]) <= 1e-5);

    match handle.call_batch(Vec::new()).await {
        Err(CallError::Refused {
            reason: Refusal::InvalidInput(_),
            ..
        }) => {}
        other => panic!("empty request gave {other:?}"),
    }
    match handle.call_batch(vec![String::new(); 17]).await {
        Err(CallError::Refused {
            reason: Refusal::InvalidInput(msg),
            inputs,
        }) => {
            assert!(msg.contains("16"), "{msg}");
            assert_eq!(inputs, vec![String::new(); 17], "the texts come back");
        }
        other => panic!("oversized request gave {other:?}"),
    }
    handle.shutdown(Duration::from_secs(10)).await.unwrap();
}
