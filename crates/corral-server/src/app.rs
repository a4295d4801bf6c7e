//! The router and what wraps it: API key, HTTP metrics, one tracing span per
//! request, `/openapi.json` from the same table as the routes, and graceful
//! shutdown (stop accepting, let admitted requests
//! finish within the drain deadline, answer the rest 503).

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use tracing::field::Empty;

use crate::error::{ApiError, Dialect};
use crate::model::ServedModel;
use crate::openapi::{self, RouteDoc};
use crate::routes;
use crate::state::{AppState, ServerConfig};
use crate::telemetry::{HTTP_DURATION, HTTP_REQUESTS};
use crate::types::{cohere, infinity, openai, tei};

/// An HTTP server over a set of served models.
pub struct Server {
    state: Arc<AppState>,
}

impl Server {
    /// A server for `models` (at least one). A request that names no model
    /// goes to the first whose kind does the task asked.
    pub fn new(models: Vec<Arc<dyn ServedModel>>, config: ServerConfig) -> Self {
        Self {
            state: Arc::new(AppState::new(models, config)),
        }
    }

    /// The routes, with their layers, to mount in an axum app.
    pub fn router(&self) -> Router {
        let state = self.state.clone();
        let table = routes_table();
        let docs: Vec<(&'static str, RouteDoc)> =
            table.iter().map(|(path, _, doc)| (*path, *doc)).collect();
        let document = Arc::new(openapi::document(&docs, env!("CARGO_PKG_VERSION")));
        let mut router = Router::new();
        for (path, method_router, _) in table {
            router = router.route(path, method_router);
        }
        router
            .route(
                "/openapi.json",
                get(move || {
                    let document = document.clone();
                    async move { axum::Json(document.as_ref().clone()) }
                }),
            )
            .fallback(routes::not_found)
            .layer(middleware::from_fn_with_state(
                state.clone(),
                limit_concurrency,
            ))
            .layer(middleware::from_fn_with_state(
                state.clone(),
                require_api_key,
            ))
            .layer(middleware::from_fn(count_requests))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request| {
                        let route = req
                            .extensions()
                            .get::<MatchedPath>()
                            .map_or("unmatched", |p| p.as_str());
                        tracing::info_span!(
                            "request",
                            method = %req.method(),
                            route,
                            model = Empty,
                            inputs = Empty,
                            tokens = Empty,
                            status = Empty,
                            queue_ms = Empty,
                            compute_ms = Empty,
                        )
                    })
                    .on_request(())
                    .on_response(|res: &Response, latency: Duration, span: &tracing::Span| {
                        span.record("status", res.status().as_u16());
                        tracing::info!(latency_ms = latency.as_secs_f64() * 1e3, "answered");
                    }),
            )
            .with_state(state)
    }

    /// Serves on `listener` until `shutdown` completes; then stops
    /// accepting, lets admitted requests finish within `drain_timeout`,
    /// answers the rest 503, stops the pools and returns.
    ///
    /// # Errors
    /// An I/O error from the listener.
    ///
    /// # Cancel safety
    /// Dropping the future stops serving at once, without draining.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
        drain_timeout: Duration,
    ) -> std::io::Result<()> {
        let (fired_tx, mut fired_rx) = tokio::sync::watch::channel(false);
        let app = self.router();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = fired_rx.wait_for(|f| *f).await;
        });
        let mut server = tokio::spawn(async move { server.await });
        tokio::select! {
            res = &mut server => return res.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            () = shutdown => {}
        }
        tracing::info!(?drain_timeout, "shutting down: draining admitted requests");
        self.state.draining.store(true, Ordering::SeqCst);
        let _ = fired_tx.send(true);
        let drains: Vec<_> = self
            .state
            .models
            .iter()
            .cloned()
            .map(|m| tokio::spawn(async move { m.shutdown(drain_timeout).await }))
            .collect();
        for d in drains {
            let _ = d.await;
        }
        // Every admitted request has its answer now; connections close as
        // they deliver them. A client that reads nothing is not waited for.
        match tokio::time::timeout(Duration::from_secs(5), &mut server).await {
            Ok(res) => res.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            Err(_) => {
                server.abort();
                tracing::warn!("connections still open after the drain; closed");
                Ok(())
            }
        }
    }
}

/// Every route but `/openapi.json`: its path, its handler, and what the
/// OpenAPI document says of it — one table, so that the document lists
/// exactly what the router serves.
fn routes_table() -> Vec<(&'static str, MethodRouter<Arc<AppState>>, RouteDoc)> {
    vec![
        (
            "/v1/embeddings",
            post(routes::openai_embeddings),
            RouteDoc::post("Embeddings, as OpenAI's API", &[openai::embed_schema]),
        ),
        (
            "/embeddings",
            post(routes::openai_embeddings),
            RouteDoc::post(
                "Embeddings, as OpenAI's API (without /v1, as TEI serves it)",
                &[openai::embed_schema],
            ),
        ),
        (
            "/embed",
            post(routes::tei_embed),
            RouteDoc::post("Embeddings, as TEI's /embed", &[tei::embed_schema]),
        ),
        (
            "/embed_sparse",
            post(routes::tei_embed_sparse),
            RouteDoc::post(
                "Sparse vectors of a SPLADE model, as TEI's /embed_sparse",
                &[tei::embed_schema],
            ),
        ),
        (
            "/rerank",
            post(routes::rerank),
            RouteDoc::post(
                "Rerank: TEI's body (with `texts`) or Cohere's (with `documents`)",
                &[tei::rerank_schema, cohere::rerank_schema],
            ),
        ),
        (
            "/v1/rerank",
            post(routes::rerank),
            RouteDoc::post(
                "Rerank, as Cohere's, Jina's and infinity's APIs",
                &[cohere::rerank_schema],
            ),
        ),
        (
            "/v2/rerank",
            post(routes::rerank),
            RouteDoc::post(
                "Rerank, as Cohere's v2 API (its ClientV2) calls it: the same body",
                &[cohere::rerank_schema],
            ),
        ),
        (
            "/predict",
            post(routes::predict),
            RouteDoc::post(
                "Classify texts or pairs, as TEI's /predict",
                &[tei::predict_schema],
            ),
        ),
        (
            "/classify",
            post(routes::classify),
            RouteDoc::post(
                "Classify texts, as infinity's /classify",
                &[infinity::classify_schema],
            ),
        ),
        (
            "/tokenize",
            post(routes::tokenize),
            RouteDoc::post(
                "Tokens of texts, as TEI's /tokenize",
                &[tei::tokenize_schema],
            ),
        ),
        (
            "/decode",
            post(routes::decode),
            RouteDoc::post("Text of token ids, as TEI's /decode", &[tei::decode_schema]),
        ),
        (
            "/",
            post(routes::by_kind),
            RouteDoc::post(
                "TEI's route for the model's kind: /embed, /rerank, /predict or /embed_sparse",
                &[tei::embed_schema, tei::rerank_schema, tei::predict_schema],
            ),
        ),
        (
            "/invocations",
            post(routes::by_kind),
            RouteDoc::post(
                "The same as POST / (SageMaker's path)",
                &[tei::embed_schema, tei::rerank_schema, tei::predict_schema],
            ),
        ),
        (
            "/health",
            get(routes::health),
            RouteDoc::get("200 when every model serves, else 503 with the reasons"),
        ),
        (
            "/ping",
            get(routes::health),
            RouteDoc::get("The same as /health"),
        ),
        (
            "/metrics",
            get(routes::metrics),
            RouteDoc::get("Prometheus text"),
        ),
        (
            "/info",
            get(routes::info),
            RouteDoc::get("Models (kind, labels, dimensions, limits), limits, version"),
        ),
        (
            "/v1/models",
            get(routes::models),
            RouteDoc::get("Models in OpenAI's list shape, each with its card"),
        ),
    ]
}

/// The routes for `models` with [`ServerConfig::default`]: what a host app
/// that already runs pools mounts in its own axum app.
pub fn router(models: Vec<Arc<dyn ServedModel>>) -> Router {
    Server::new(models, ServerConfig::default()).router()
}

/// 401 unless the request carries the configured key (`/health` and
/// `/ping` are open).
async fn require_api_key(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(key) = state.config.api_key.as_deref() else {
        return next.run(req).await;
    };
    if matches!(req.uri().path(), "/health" | "/ping") {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), key.as_bytes())) {
        return next.run(req).await;
    }
    ApiError::unauthorized().render(Dialect::of_path(req.uri().path()))
}

/// Holds a place for every `POST` (the embedding routes) while it is
/// served; with none free, answers 429 at once, before the body is read.
/// `GET`s (health, metrics, info) are cheap and always served.
async fn limit_concurrency(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() != axum::http::Method::POST {
        return next.run(req).await;
    }
    match state.places.clone().try_acquire_owned() {
        Ok(place) => {
            let response = next.run(req).await;
            drop(place);
            response
        }
        Err(_) => {
            ApiError::overloaded(Duration::from_secs(1)).render(Dialect::of_path(req.uri().path()))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Request count and duration by route and status.
async fn count_requests(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "status" => status.clone())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route, "status" => status)
        .record(start.elapsed().as_secs_f64());
    response
}
