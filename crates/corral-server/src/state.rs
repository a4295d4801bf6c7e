//! [`ServerConfig`], a server's limits and access, and [`AppState`], what
//! every handler shares: the served models (and which one a request
//! names), the limits, the places and tokenising permits, and whether the
//! server is draining.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use corral_embed::ModelKind;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::error::ApiError;
use crate::model::ServedModel;
use crate::telemetry::install_metrics;

/// Limits and access of a server. Plain data with documented defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Most inputs in one request; more is a 400/413 naming the field.
    /// Default 512.
    pub max_batch_inputs: usize,
    /// Largest request body in bytes; more is a 413. Default 2 MiB.
    pub max_body: usize,
    /// Embedding requests (`POST`) the server holds at once — reading the
    /// body, tokenising, waiting for the pool — at most; past it a request
    /// is answered 429 with `Retry-After` at once, before its body is read.
    /// With `max_body` it bounds the memory requests can hold: about
    /// `max_concurrent_requests × max_body` for bodies (default 512 × 2 MiB
    /// = 1 GiB at worst; far less for real bodies). Default 512.
    pub max_concurrent_requests: usize,
    /// Requests whose inputs are tokenised at once off the async threads
    /// (those over a few KiB of text; smaller ones are tokenised inline).
    /// Tokenising holds far more than the text — up to about 170 bytes per
    /// byte for runs of words (each word's token strings, offsets and
    /// alignments). A long text is tokenised as a piece cut from the side it
    /// keeps, a few KiB for ordinary text, but a text with few word pieces
    /// per byte may be tokenised whole; so this, not
    /// `max_concurrent_requests`, bounds that memory: at most about
    /// `tokenize_concurrency × 170 × max_body`. The others wait, holding
    /// their place. Default: the number of cores (tokenising is CPU-bound;
    /// more at once would not finish sooner).
    pub tokenize_concurrency: usize,
    /// When set, every route but `/health` needs
    /// `Authorization: Bearer <key>`; otherwise 401. Default none.
    pub api_key: Option<String>,
    /// Where `/metrics` reads from; `None` answers it 404. Default: the
    /// process's recorder from [`install_metrics`] if it could be installed.
    pub metrics: Option<PrometheusHandle>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_batch_inputs: 512,
            max_body: 2 * 1024 * 1024,
            max_concurrent_requests: 512,
            tokenize_concurrency: corral_core::available_cores(),
            api_key: None,
            metrics: install_metrics().ok(),
        }
    }
}

/// What every handler shares.
pub(crate) struct AppState {
    /// Served models; when a request names none, the first whose kind
    /// serves the task.
    pub(crate) models: Vec<Arc<dyn ServedModel>>,
    pub(crate) config: ServerConfig,
    /// Set once shutdown began: new requests are answered 503.
    pub(crate) draining: AtomicBool,
    /// Places for embedding requests (`max_concurrent_requests`).
    pub(crate) places: Arc<tokio::sync::Semaphore>,
    /// Permits to tokenise off the async threads (`tokenize_concurrency`).
    pub(crate) tokenizing: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// The model for a request that asks `task` of it: the one `name`
    /// names, which must serve that task; else the first served model of
    /// the first of `kinds` that one is served for.
    ///
    /// # Errors
    /// 404 for a name not served; 424 naming the model's kind for a model
    /// that does not serve the task, or naming what is served when none
    /// does; 503 when nothing is served.
    pub(crate) fn model_for(
        &self,
        name: Option<&str>,
        kinds: &[ModelKind],
        task: &str,
        route: &str,
    ) -> Result<Arc<dyn ServedModel>, ApiError> {
        if let Some(name) = name {
            let model = self.model(Some(name))?;
            let kind = model.card().kind;
            if !kinds.contains(&kind) {
                return Err(ApiError::wrong_kind(name, kind.as_str(), task, route));
            }
            return Ok(model);
        }
        if self.models.is_empty() {
            return Err(ApiError::unavailable("no model is served"));
        }
        kinds
            .iter()
            .find_map(|&kind| self.models.iter().find(|m| m.card().kind == kind))
            .cloned()
            .ok_or_else(|| {
                if let [only] = &self.models[..] {
                    let card = only.card();
                    return ApiError::wrong_kind(&card.name, card.kind.as_str(), task, route);
                }
                let served: Vec<String> = self
                    .models
                    .iter()
                    .map(|m| format!("{} ({})", m.card().name, m.card().kind))
                    .collect();
                ApiError::no_model_for(task, route, &served)
            })
    }

    /// The model `name` names, or the default one (the first served).
    pub(crate) fn model(&self, name: Option<&str>) -> Result<Arc<dyn ServedModel>, ApiError> {
        match name {
            None => self
                .models
                .first()
                .cloned()
                .ok_or_else(|| ApiError::unavailable("no model is served")),
            Some(name) => self
                .models
                .iter()
                .find(|m| m.card().name == name)
                .cloned()
                .ok_or_else(|| {
                    let known: Vec<&str> =
                        self.models.iter().map(|m| m.card().name.as_str()).collect();
                    ApiError::unknown_model(name, &known)
                }),
        }
    }

    /// A state for `models` under `config`, not draining.
    pub(crate) fn new(models: Vec<Arc<dyn ServedModel>>, config: ServerConfig) -> Self {
        Self {
            places: Arc::new(tokio::sync::Semaphore::new(
                config.max_concurrent_requests.max(1),
            )),
            tokenizing: Arc::new(tokio::sync::Semaphore::new(
                config.tokenize_concurrency.max(1),
            )),
            models,
            config,
            draining: AtomicBool::new(false),
        }
    }

    /// 503 while draining.
    pub(crate) fn refuse_if_draining(&self) -> Result<(), ApiError> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(ApiError::unavailable("the server is shutting down"));
        }
        Ok(())
    }
}
