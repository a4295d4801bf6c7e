//! Corral's HTTP front: OpenAI's `POST /v1/embeddings`, TEI's `POST /embed`,
//! `GET /health`, `GET /metrics` (Prometheus), `GET /info` and
//! `GET /v1/models`, over one Corral pool per served model.
//!
//! The server holds no queue of its own: a request is tokenised (off the
//! async threads, with the model's own tokenizer), checked against the
//! limits, and handed to its model's pool as token ids with `try_*`
//! admission — a full pool answers 429 with `Retry-After` at once.
//!
//! # One request, one way down
//! `app` (layers: a place among `max_concurrent_requests`, API key,
//! metrics, tracing) → `routes` (read the body within `max_body`) →
//! `types` (parse it once into an `EmbedRequest`, every error naming its
//! field) → `execute` (model, limits, tokenising, the pool through
//! [`EmbedModel`], shaping the vectors) → back in `routes`, the answer in
//! the route's dialect; any error on the way is an `error::ApiError`,
//! rendered in that dialect.
//!
//! # Layout
//! No two modules import each other; each imports only those listed
//! before it.
//! - [`telemetry`]: the Prometheus recorder and the server's series.
//! - [`model`]: [`EmbedModel`], what the routes need from a served model,
//!   and its typed [`TokenizeError`].
//! - `pool`: [`PoolModel`], [`EmbedModel`] over a real pool — the one
//!   module that calls the pool's handle.
//! - `error`: the two dialects; errors in OpenAI's and TEI's body shapes,
//!   and the mapping of every `PoolError` to a status.
//! - `types`: the wire types — each dialect's body, the `EmbedRequest` both
//!   parse into, OpenAI's answer.
//! - `state`: [`ServerConfig`] and what every handler shares (models,
//!   limits, permits, draining).
//! - `execute`: runs an `EmbedRequest` against its model.
//! - `routes`: the handlers.
//! - `app`: [`Server`] — the router, its layers, graceful shutdown — and
//!   [`router`]. The body limit is not a layer: the embedding route reads
//!   the body itself, refusing one over `max_body`.
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
mod error;
mod execute;
pub mod model;
mod pool;
mod routes;
mod state;
pub mod telemetry;
mod types;

pub use app::{router, Server};
pub use model::{EmbedModel, Embedded, ModelCard, TokenizeError};
pub use pool::{EmbedPool, PoolModel, SpawnModelError};
pub use state::ServerConfig;
pub use telemetry::install_metrics;
