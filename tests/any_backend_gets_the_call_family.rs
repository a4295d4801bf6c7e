//! A backend of a new kind — a reranker, with input and output types of its
//! own — gets the whole call family (`call`, `call_timeout`, `try_call`,
//! their `_batch` forms and `submit`) by implementing nothing but
//! `Backend`: on the handle, on a `PoolRef`, and through code generic over
//! `Call`. Its refusals hand back its own inputs, exactly.

use std::time::Duration;

use corral::{
    Backend, BackendError, Call, CallError, LoadContext, Pool, PoolConfig, PoolHandle, Refusal,
    Submit,
};

/// A query and the passages to rank for it.
#[derive(Debug, Clone, PartialEq)]
struct Query {
    text: String,
    passages: Vec<String>,
}

fn query(text: &str, passages: &[&str]) -> Query {
    Query {
        text: text.to_owned(),
        passages: passages.iter().map(|&p| p.to_owned()).collect(),
    }
}

/// The passages' indices, most relevant first.
#[derive(Debug, Clone, PartialEq)]
struct Ranking(Vec<usize>);

/// Ranks passages by how many of the query's words they contain.
struct Ranker;

impl Backend for Ranker {
    type Spec = ();
    type Input = Query;
    type Output = Ranking;

    fn load(_: &(), _: &LoadContext) -> Result<Self, BackendError> {
        Ok(Ranker)
    }

    fn cost(&self, q: &Query) -> usize {
        1 + q.passages.len()
    }

    fn run(&mut self, batch: &[&Query]) -> Result<Vec<Ranking>, BackendError> {
        Ok(batch
            .iter()
            .map(|q| {
                let hits = |p: &String| q.text.split(' ').filter(|w| p.contains(w)).count();
                let mut order: Vec<usize> = (0..q.passages.len()).collect();
                order.sort_by_key(|&i| std::cmp::Reverse(hits(&q.passages[i])));
                Ranking(order)
            })
            .collect())
    }
}

/// Uses every method of the family through nothing but `Call`.
async fn every_method<C: Call<Input = Query, Output = Ranking>>(pool: &C) {
    let q = || query("red fox", &["a dog", "red fox", "a red hen"]);
    let want = Ranking(vec![1, 2, 0]);
    let wait = Duration::from_secs(5);
    assert_eq!(pool.call(q()).await, Ok(want.clone()));
    assert_eq!(pool.call_timeout(q(), wait).await, Ok(want.clone()));
    assert_eq!(pool.try_call(q()).await, Ok(want.clone()));
    let two = || vec![q(), query("dog", &["cat", "dog"])];
    let both = vec![want.clone(), Ranking(vec![1, 0])];
    assert_eq!(pool.call_batch(two()).await, Ok(both.clone()));
    assert_eq!(pool.call_batch_timeout(two(), wait).await, Ok(both.clone()));
    assert_eq!(pool.try_call_batch(two()).await, Ok(both.clone()));
    let request = Submit::wait(two(), wait).within(wait);
    assert_eq!(pool.submit(request).await, Ok(both));

    // Too many queries for one request: refused, the queries back as sent.
    let three = vec![q(), query("x", &[]), query("y", &["y"])];
    match pool.call_batch(three.clone()).await {
        Err(CallError::Refused {
            reason: Refusal::InvalidInput(_),
            inputs,
        }) => assert_eq!(inputs, three),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reranker_gets_the_whole_family_from_backend_alone() {
    let config = PoolConfig {
        workers: 2,
        max_client_batch: 2,
        ..PoolConfig::default()
    };
    let pool: PoolHandle<Ranker> = Pool::spawn((), config).await.unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();
    every_method(&pool).await;
    every_method(&pool.pool_ref()).await;

    pool.shutdown(Duration::from_secs(5)).await.unwrap();
    let q = query("gone", &["a", "b"]);
    match pool.pool_ref().try_call(q.clone()).await {
        Err(CallError::Refused {
            reason: Refusal::ShuttingDown,
            inputs,
        }) => assert_eq!(inputs, q),
        other => panic!("{other:?}"),
    }
}
