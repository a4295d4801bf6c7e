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
use corral_embed::{Tokenized, TruncationSide};
use corral_server::model::BoxFuture;
use corral_server::{EmbedModel, Embedded, ModelCard, Server, ServerConfig, TokenizeError};
use std::sync::Mutex;
use tokio::sync::{oneshot, Notify};

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
}

impl FakeModel {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Self {
            card: ModelCard {
                name: name.into(),
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
        })
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

impl EmbedModel for FakeModel {
    fn card(&self) -> &ModelCard {
        &self.card
    }

    /// One id per word: 1 + its length (so "a bb" is [2, 3]).
    fn tokenize(&self, text: &str, side: TruncationSide) -> Result<Tokenized, TokenizeError> {
        let content = text
            .split_whitespace()
            .map(|w| 1 + w.len() as u32)
            .collect();
        Ok(self.wrap(content, side))
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
            let script = self.script.lock().unwrap().clone();
            match script {
                Script::Fail(e) => return Err(e),
                Script::Answer => {}
                Script::Hold => {
                    self.held.fetch_add(1, Ordering::SeqCst);
                    let mut guard = HeldGuard(self, false);
                    let released = tokio::select! {
                        () = self.gate.notified() => true,
                        () = self.abort.notified() => false,
                    };
                    guard.1 = true;
                    if !released {
                        return Err(PoolError::ShuttingDown);
                    }
                }
            }
            Ok(Embedded {
                vectors: inputs.iter().map(|ids| Self::vector(ids)).collect(),
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
        let models: Vec<Arc<dyn EmbedModel>> = models
            .into_iter()
            .map(|m| m as Arc<dyn EmbedModel>)
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
    models: Vec<Arc<dyn EmbedModel>>,
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
