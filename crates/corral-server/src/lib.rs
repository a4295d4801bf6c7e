//! Corral's HTTP front: OpenAI's `POST /v1/embeddings`, TEI's `POST /embed`,
//! `GET /health`, `GET /metrics` (Prometheus), `GET /info` and
//! `GET /v1/models`, over one Corral pool per served model.
//!
//! The server holds no queue of its own: a request is tokenised (off the
//! async threads, with the model's own tokenizer), checked against the
//! limits, and handed to its model's pool as token ids with `try_*`
//! admission — a full pool answers 429 with `Retry-After` at once.
//!
//! # Layout
//! - [`model`]: [`EmbedModel`], what the routes need from a served model.
//! - `pool`: [`PoolModel`], [`EmbedModel`] over a real pool — the one
//!   module that calls the pool's handle.
//! - `error`: errors in OpenAI's and TEI's body shapes, and the mapping of
//!   every `PoolError` to a status.
//! - `app`: the router, its layers (a place per `POST` among
//!   `max_concurrent_requests`, API key, request metrics, tracing),
//!   graceful shutdown. The body limit is not a layer: the embedding
//!   handlers read the body themselves, refusing one over `max_body`.
//! - `embed`: the path shared by both embedding routes (tokenise, check,
//!   submit, shape).
//! - `routes`: the handlers.
//! - [`telemetry`]: the Prometheus recorder and the server's series.
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
pub use pool::{EmbedPool, PoolModel};
pub use state::ServerConfig;
pub use telemetry::install_metrics;
