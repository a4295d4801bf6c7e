//! A fake served model (a word-counting tokenizer, vectors made from the
//! ids, scripted pool answers, a gate that holds requests) and a server
//! started on 127.0.0.1:0 around it, so that every route and every error
//! status can be driven cheaply and exactly.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_core::{Health, HealthReport, PoolError, WorkerHealth, WorkerState};
use corral_embed::{Activation, ModelKind, PairTokenized, Tokenized, TruncationSide};
use corral_server::model::BoxFuture;
use corral_server::{
    Embedded, ModelCard, Scored, ServedModel, Server, ServerConfig, TokenizeError,
};
use std::sync::Mutex;
use tokio::sync::{oneshot, Notify};

pub mod fixtures;

pub const DIM: usize = 8;
pub const MAX_TOKENS: usize = 16;
pub const CLS: u32 = 101;
pub const SEP: u32 = 102;
pub const VOCAB: u32 = 1000;

/// What the fake pool answers.
#[derive(Debug, Clone)]
pub enum Script {
    /// Vectors from the ids.
    Answer,
    /// This error for every request.
    Fail(PoolError),
    /// Hold every request until the gate opens (or shutdown's deadline).
    Hold,
    /// Score, but answer one logit too many for each input (a model bug).
    ExtraLogit,
    /// Answer one row (vector, logits) fewer than the inputs (a model bug).
    MissingRow,
}

pub struct FakeModel {
    card: ModelCard,
    pub script: Mutex<Script>,
    pub health: Mutex<WorkerState>,
    pub gate: Notify,
    pub abort: Notify,
    pub shutting_down: AtomicBool,
    /// Requests the fake is holding now.
    pub held: AtomicUsize,
    /// Held requests whose future was dropped before they were answered.
    pub withdrawn: AtomicUsize,
    /// Inputs the fake received, ids included.
    pub received: Mutex<Vec<Vec<u32>>>,
    /// Scoring inputs the fake received.
    pub scored: Mutex<Vec<PairTokenized>>,
}

/// The labels of [`FakeModel::classifier`].
pub const LABELS: [&str; 3] = ["negative", "neutral", "positive"];

impl FakeModel {
    /// An embedder.
    pub fn new(name: &str) -> Arc<Self> {
        Self::of_kind(name, ModelKind::Embed, &[], Activation::Identity)
    }

    /// A reranker: one logit per pair, `type-1 tokens − 3` (the document's
    /// words + 1, − 3), activated by sigmoid.
    pub fn reranker(name: &str) -> Arc<Self> {
        Self::of_kind(name, ModelKind::Rerank, &["LABEL_0"], Activation::Sigmoid)
    }

    /// A classifier over [`LABELS`]: logit `j` is `j × (ids − 4)`, so one
    /// word is most `negative`, two are a tie, three or more most
    /// `positive`; softmax.
    pub fn classifier(name: &str) -> Arc<Self> {
        Self::of_kind(name, ModelKind::Classify, &LABELS, Activation::Softmax)
    }

    fn of_kind(name: &str, kind: ModelKind, labels: &[&str], activation: Activation) -> Arc<Self> {
        Arc::new(Self {
            card: ModelCard {
                name: name.into(),
                kind,
                labels: labels.iter().map(|l| (*l).to_owned()).collect(),
                activation,
                dimensions: DIM,
                max_input_tokens: MAX_TOKENS,
                pooling: "mean".into(),
                workers: 1,
                queue_capacity: 4,
                batch_queue_capacity: 2,
            },
            script: Mutex::new(Script::Answer),
            health: Mutex::new(WorkerState::Ready),
            gate: Notify::new(),
            abort: Notify::new(),
            shutting_down: AtomicBool::new(false),
            held: AtomicUsize::new(0),
            withdrawn: AtomicUsize::new(0),
            received: Mutex::new(Vec::new()),
            scored: Mutex::new(Vec::new()),
        })
    }

    /// The raw logits the fake gives for `t`.
    pub fn logits(&self, t: &PairTokenized) -> Vec<f32> {
        match self.card.kind {
            ModelKind::Rerank => {
                vec![t.type_ids.iter().filter(|&&ty| ty == 1).count() as f32 - 3.0]
            }
            _ => (0..self.card.labels.len())
                .map(|j| j as f32 * (t.ids.len() as f32 - 4.0))
                .collect(),
        }
    }

    /// Answers as the script says: `Ok` to go on, else the error.
    async fn follow_script(&self) -> Result<(), PoolError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(PoolError::ShuttingDown);
        }
        let script = self.script.lock().unwrap().clone();
        match script {
            Script::Fail(e) => Err(e),
            Script::Answer | Script::ExtraLogit | Script::MissingRow => Ok(()),
            Script::Hold => {
                self.held.fetch_add(1, Ordering::SeqCst);
                let mut guard = HeldGuard(self, false);
                let released = tokio::select! {
                    () = self.gate.notified() => true,
                    () = self.abort.notified() => false,
                };
                guard.1 = true;
                if released {
                    Ok(())
                } else {
                    Err(PoolError::ShuttingDown)
                }
            }
        }
    }

    fn words(text: &str) -> Vec<u32> {
        text.split_whitespace()
            .map(|w| 1 + w.len() as u32)
            .collect()
    }

    pub fn set(&self, script: Script) {
        *self.script.lock().unwrap() = script;
    }

    /// The raw vector the fake gives for `ids`: not normalised.
    pub fn vector(ids: &[u32]) -> Vec<f32> {
        (0..DIM)
            .map(|i| ids.len() as f32 + i as f32 + ids.iter().sum::<u32>() as f32 / 1000.0)
            .collect()
    }

    fn wrap(&self, mut content: Vec<u32>, side: TruncationSide) -> Tokenized {
        let budget = MAX_TOKENS - 2;
        let truncated = content.len() > budget;
        if truncated {
            match side {
                TruncationSide::Right => content.truncate(budget),
                TruncationSide::Left => {
                    content.drain(..content.len() - budget);
                }
            }
        }
        let mut ids = vec![CLS];
        ids.extend(content);
        ids.push(SEP);
        Tokenized { ids, truncated }
    }
}

struct HeldGuard<'a>(&'a FakeModel, bool);

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::SeqCst);
        if !self.1 {
            self.0.withdrawn.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl ServedModel for FakeModel {
    fn card(&self) -> &ModelCard {
        &self.card
    }

    /// One id per word: 1 + its length (so "a bb" is [2, 3]); a word
    /// `FAIL` cannot be encoded.
    fn tokenize(&self, text: &str, side: TruncationSide) -> Result<Tokenized, TokenizeError> {
        if text.split_whitespace().any(|w| w == "FAIL") {
            return Err(TokenizeError::Encode("FAIL is not a word".into()));
        }
        Ok(self.wrap(Self::words(text), side))
    }

    /// `[CLS] a [SEP] b [SEP]`, types 0 then 1, the longer side cut first
    /// to [`MAX_TOKENS`].
    fn tokenize_pair(
        &self,
        first: &str,
        second: Option<&str>,
    ) -> Result<PairTokenized, TokenizeError> {
        let Some(second) = second else {
            let t = self.tokenize(first, TruncationSide::Right)?;
            return Ok(PairTokenized {
                type_ids: vec![0; t.ids.len()],
                ids: t.ids,
                truncated: t.truncated,
            });
        };
        if format!("{first} {second}")
            .split_whitespace()
            .any(|w| w == "FAIL")
        {
            return Err(TokenizeError::Encode("FAIL is not a word".into()));
        }
        let (mut a, mut b) = (Self::words(first), Self::words(second));
        let mut truncated = false;
        while a.len() + b.len() > MAX_TOKENS - 3 {
            truncated = true;
            if a.len() > b.len() {
                a.pop();
            } else {
                b.pop();
            }
        }
        let mut ids = vec![CLS];
        ids.extend(&a);
        ids.push(SEP);
        let mut type_ids = vec![0; ids.len()];
        ids.extend(&b);
        ids.push(SEP);
        type_ids.resize(ids.len(), 1);
        Ok(PairTokenized {
            ids,
            type_ids,
            truncated,
        })
    }

    /// `[CLS]`, `[SEP]`, and `w{id}` for the others, joined by spaces.
    fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizeError> {
        let mut words = Vec::new();
        for &id in ids {
            if id >= VOCAB {
                return Err(TokenizeError::UnknownTokenId {
                    id,
                    vocab_size: VOCAB as usize,
                });
            }
            match id {
                CLS | SEP if skip_special_tokens => {}
                CLS => words.push("[CLS]".to_owned()),
                SEP => words.push("[SEP]".to_owned()),
                id => words.push(format!("w{id}")),
            }
        }
        Ok(words.join(" "))
    }

    fn score(&self, inputs: Vec<PairTokenized>) -> BoxFuture<'_, Result<Scored, PoolError>> {
        Box::pin(async move {
            self.scored.lock().unwrap().extend(inputs.iter().cloned());
            self.follow_script().await?;
            let extra = matches!(*self.script.lock().unwrap(), Script::ExtraLogit);
            let missing = usize::from(matches!(*self.script.lock().unwrap(), Script::MissingRow));
            Ok(Scored {
                logits: inputs
                    .iter()
                    .skip(missing)
                    .map(|t| {
                        let mut l = self.logits(t);
                        if extra {
                            l.push(0.0);
                        }
                        l
                    })
                    .collect(),
                queue_time: Some(Duration::from_millis(2)),
                compute_time: Some(Duration::from_millis(3)),
            })
        })
    }

    fn wrap_ids(&self, ids: Vec<u32>, side: TruncationSide) -> Result<Tokenized, TokenizeError> {
        if let Some(&id) = ids.iter().find(|&&i| i >= VOCAB) {
            return Err(TokenizeError::UnknownTokenId {
                id,
                vocab_size: VOCAB as usize,
            });
        }
        Ok(self.wrap(ids, side))
    }

    fn embed(&self, inputs: Vec<Vec<u32>>) -> BoxFuture<'_, Result<Embedded, PoolError>> {
        Box::pin(async move {
            if self.shutting_down.load(Ordering::SeqCst) {
                return Err(PoolError::ShuttingDown);
            }
            self.received.lock().unwrap().extend(inputs.iter().cloned());
            self.follow_script().await?;
            let missing = usize::from(matches!(*self.script.lock().unwrap(), Script::MissingRow));
            Ok(Embedded {
                vectors: inputs
                    .iter()
                    .skip(missing)
                    .map(|ids| Self::vector(ids))
                    .collect(),
                queue_time: Some(Duration::from_millis(2)),
                compute_time: Some(Duration::from_millis(3)),
            })
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<HealthReport, PoolError>> {
        Box::pin(async move {
            let state = *self.health.lock().unwrap();
            Ok(HealthReport {
                health: if state == WorkerState::Ready {
                    Health::Healthy
                } else {
                    Health::Degraded
                },
                workers: vec![WorkerHealth {
                    slot: 0,
                    worker_id: Some(1),
                    state,
                    queue_depth: self.held.load(Ordering::SeqCst),
                    running: 0,
                    last_pong_age: None,
                }],
                waiting: 0,
                retry_after: std::time::Duration::from_millis(100),
                draining: self.shutting_down.load(Ordering::SeqCst),
            })
        })
    }

    /// As the pool: refuse new work, let held work finish until `deadline`,
    /// then answer the rest `ShuttingDown`.
    fn shutdown(&self, deadline: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.shutting_down.store(true, Ordering::SeqCst);
            let end = Instant::now() + deadline;
            while self.held.load(Ordering::SeqCst) > 0 && Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Aborted work lets go at once; a fake that does not is a test
            // bug, reported within seconds rather than hanging the suite.
            let abort_by = Instant::now() + Duration::from_secs(5);
            while self.held.load(Ordering::SeqCst) > 0 {
                assert!(
                    Instant::now() < abort_by,
                    "the fake model's held requests ignored the abort"
                );
                self.abort.notify_waiters();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    }
}

/// A server on 127.0.0.1:0 with its shutdown trigger.
pub struct TestServer {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    trigger: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub async fn start(models: Vec<Arc<FakeModel>>, config: ServerConfig) -> Self {
        Self::start_with_drain(models, config, Duration::from_secs(5)).await
    }

    pub async fn start_with_drain(
        models: Vec<Arc<FakeModel>>,
        config: ServerConfig,
        drain: Duration,
    ) -> Self {
        let models: Vec<Arc<dyn ServedModel>> = models
            .into_iter()
            .map(|m| m as Arc<dyn ServedModel>)
            .collect();
        start_models(models, config, drain).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Starts the graceful shutdown.
    pub fn shutdown(&mut self) {
        if let Some(t) = self.trigger.take() {
            let _ = t.send(());
        }
    }
}

/// Starts a server for any models.
pub async fn start_models(
    models: Vec<Arc<dyn ServedModel>>,
    config: ServerConfig,
    drain: Duration,
) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, fired) = oneshot::channel::<()>();
    let server = Server::new(models, config);
    let done = tokio::spawn(server.serve(
        listener,
        async move {
            let _ = fired.await;
        },
        drain,
    ));
    TestServer {
        addr,
        client: reqwest::Client::new(),
        trigger: Some(trigger),
        done,
    }
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    check()
}

pub fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}
