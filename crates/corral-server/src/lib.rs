//! Corral's HTTP front, over one Corral pool per served model (or, for a
//! [`ClusterModel`], the pools of its group across the cluster), in the
//! dialects clients already speak: OpenAI's `POST /v1/embeddings` (and
//! `/embeddings`); TEI's `POST /embed`, `/rerank`, `/predict`, `/tokenize`,
//! `/decode`, and `POST /` and `/invocations` routed by the model's kind;
//! Cohere's rerank (`POST /v1/rerank`, and `/rerank` with `documents`, as
//! Jina and infinity take it); infinity's `POST /classify`; `GET /health`
//! (and `/ping`), `GET /metrics` (Prometheus), `GET /info` and
//! `GET /v1/models`; and `GET /openapi.json`, an OpenAPI document of every
//! route built from the router's own table and each body's type. Each model serves one task, its kind (`embed`,
//! `rerank`, `classify`); a task the model cannot do is answered 424,
//! naming its kind.
//!
//! The server holds no queue of its own: a request is tokenised (off the
//! async threads, with the model's own tokenizer), checked against the
//! limits, and handed to its model's pool as token ids with `try_*`
//! admission — a full pool answers 429 with `Retry-After` at once.
//!
//! # One request, one way down
//! `app` (layers: a place among `max_concurrent_requests`, API key,
//! metrics, tracing) → `routes` (read the body within `max_body`) →
//! `types` (parse it once into an `EmbedRequest`, a `RerankRequest` or a
//! `PredictRequest`, every error naming its field) → `execute` or `tasks`
//! (model of the right kind, limits, tokenising, the pool through
//! [`ServedModel`], shaping the vectors or activating the logits) → back in
//! `routes`, the answer in the route's dialect; any error on the way is an
//! `error::ApiError`, rendered in that dialect.
//!
//! # Layout
//! No two modules import each other; each imports only those listed
//! before it.
//! - [`telemetry`]: the Prometheus recorder and the server's series.
//! - [`model`]: [`ServedModel`], what the routes need from a served model
//!   (its [`ModelCard`], tokenizer, embedding and scoring), and its typed
//!   [`TokenizeError`].
//! - `pool`: [`PoolModel`], [`ScoringModel`] and [`SparseModel`], [`ServedModel`] over
//!   real pools, and [`spawn_model`], which serves a directory as what its
//!   `config.json` declares — the one
//!   module that calls the pool's handle.
//! - `cluster`: [`ClusterModel`], [`ServedModel`] over a
//!   `corral_cluster::ClusterHandle`: a model served by the pools of its
//!   group across the cluster, its directory read only for the tokenizer
//!   and the card; [`promise_of`], the settings a member promises and the
//!   front expects; [`serve_node_status`], a node's `/health` and
//!   `/metrics`.
//! - `error`: the dialects; errors in OpenAI's, TEI's and Cohere's body
//!   shapes, and the mapping of every `PoolError` to a status.
//! - `types`: the wire types, one file per dialect (`openai`, `tei`,
//!   `cohere`, `infinity`) over the shared parsing in its `mod.rs` — each
//!   dialect's bodies, the requests they parse into, the answers.
//! - `openapi`: the OpenAPI document of `/openapi.json`, from a table of
//!   routes and each body type's fields.
//! - `state`: [`ServerConfig`] and what every handler shares (models,
//!   limits, permits, draining).
//! - `execute`: runs an `EmbedRequest` against its model.
//! - `tasks`: runs a `RerankRequest` or a `PredictRequest` against its
//!   model, and `/tokenize` and `/decode`.
//! - `routes`: the handlers.
//! - `app`: [`Server`] — the router, its layers, graceful shutdown — and
//!   [`router`]. The body limit is not a layer: each task route reads the
//!   body itself, refusing one over `max_body`.
//!
//! ```no_run
//! # async fn host(model: corral_server::PoolModel) {
//! use std::sync::Arc;
//! let app: axum::Router = axum::Router::new()
//!     .nest("/embeddings-api", corral_server::router(vec![Arc::new(model)]));
//! # }
//! ```
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

mod app;
mod cluster;
mod error;
mod execute;
pub mod model;
mod openapi;
mod pool;
mod routes;
mod state;
mod tasks;
pub mod telemetry;
mod types;

pub use app::{router, Server};
pub use cluster::{fingerprint, promise_of, serve_node_status, ClusterModel, ClusterModelError};
pub use model::{
    Embedded, ModelCard, Scored, ServedModel, SparseEmbedded, TokenSpan, TokenizeError,
};
pub use pool::{
    spawn_model, EmbedPool, LocalBackend, LocalModel, PoolModel, ScorePool, ScoringModel,
    SparseModel, SpawnModelError,
};
pub use state::ServerConfig;
pub use telemetry::install_metrics;
