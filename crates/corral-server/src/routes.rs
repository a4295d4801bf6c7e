//! The handlers: OpenAI's `/v1/embeddings` (and `/embeddings`) and
//! `/v1/models`; TEI's `/embed`, `/rerank`, `/predict`, `/tokenize`,
//! `/decode`, `POST /` and `/invocations` (by the model's kind); Cohere's
//! `/v1/rerank` (and `/rerank` with `documents`); infinity's `/classify`;
//! and `/health` (`/ping`), `/metrics`, `/info`. Every task route takes one
//! way down: read the body within its limit, parse it once into its
//! request, run it ([`execute`] or [`tasks`](crate::tasks)), shape the
//! answer in the route's dialect.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use corral_core::{Health, HealthReport, WorkerState};
use serde_json::{json, Map, Value};

use corral_embed::ModelKind;

use crate::error::{ApiError, Dialect};
use crate::execute::{execute, execute_sparse, Answer};
use crate::state::AppState;
use crate::tasks;
use crate::types::cohere::{DocumentText, RerankResponse, RerankResult};
use crate::types::infinity::{parse_classify, ClassifyResponse};
use crate::types::openai::OpenAiResponse;
use crate::types::tei::{self, PredictResponse, Rank};
use crate::types::{
    cohere, named_model, rerank_dialect, EmbedRequest, PredictRequest, Prediction, RerankRequest,
    Usage,
};

type AppStateRef = State<Arc<AppState>>;

/// A task route's body, read within the server's limit before the handler
/// runs, with the route as errors name it (`POST /embed`). A body over the
/// limit is refused 413, and one that cannot be read 400/422, in the
/// dialect of its path (the door's, checked to be each handler's own).
pub(crate) struct Posted {
    bytes: Bytes,
    route: String,
}

impl FromRequest<Arc<AppState>> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Response> {
        let path = req.uri().path().to_owned();
        let dialect = Dialect::of_path(&path);
        let (parts, body) = req.into_parts();
        let bytes = read_body(dialect, &parts.headers, body, state.config.max_body)
            .await
            .map_err(|e| e.render(dialect))?;
        Ok(Self {
            bytes,
            route: format!("POST {path}"),
        })
    }
}

/// The handler's answer, or its error in `dialect`.
fn answer(dialect: Dialect, result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|e| e.render(dialect))
}

/// `POST /v1/embeddings` (and `POST /embeddings`), as OpenAI defines it.
pub(crate) async fn openai_embeddings(State(state): AppStateRef, body: Posted) -> Response {
    let dialect = Dialect::OpenAi;
    let request = EmbedRequest::parse(dialect, &body.bytes);
    answer(
        dialect,
        async { embeddings(&state, request?, &body.route).await }.await,
    )
}

/// `POST /embed`, as Text Embeddings Inference defines it.
pub(crate) async fn tei_embed(State(state): AppStateRef, body: Posted) -> Response {
    let dialect = Dialect::Tei;
    let request = EmbedRequest::parse(dialect, &body.bytes);
    answer(
        dialect,
        async { embeddings(&state, request?, &body.route).await }.await,
    )
}

/// `POST /embed_sparse`, as Text Embeddings Inference defines it: `/embed`'s
/// body, one list of `{index, value}` per input (a SPLADE model's).
pub(crate) async fn tei_embed_sparse(State(state): AppStateRef, body: Posted) -> Response {
    let dialect = Dialect::Tei;
    let request = EmbedRequest::parse(dialect, &body.bytes);
    answer(
        dialect,
        async { sparse_embeddings(&state, request?, &body.route).await }.await,
    )
}

/// Runs a sparse embedding request; TEI's body, with the time headers.
async fn sparse_embeddings(
    state: &AppState,
    request: EmbedRequest,
    route: &str,
) -> Result<Response, ApiError> {
    let (_, sparse) = execute_sparse(state, request, route).await?;
    let times = (sparse.queue_time, sparse.compute_time);
    let response = Json(tei::sparse_rows(sparse.vectors)).into_response();
    Ok(with_times(response, times))
}

/// `POST /rerank`: TEI's shape (`texts`) or Cohere's (`documents`), told
/// apart by which of the two the body has; `POST /v1/rerank` and
/// `POST /v2/rerank`: Cohere's.
pub(crate) async fn rerank(State(state): AppStateRef, body: Posted) -> Response {
    let dialect = if body.route == "POST /rerank" {
        rerank_dialect(&body.bytes)
    } else {
        Dialect::Cohere
    };
    let request = match dialect {
        Dialect::Cohere => cohere::parse_rerank(&body.bytes),
        _ => tei::parse_rerank(&body.bytes),
    };
    answer(
        dialect,
        async { rerank_request(&state, request?, &body.route).await }.await,
    )
}

/// `POST /predict`, as TEI defines it.
pub(crate) async fn predict(State(state): AppStateRef, body: Posted) -> Response {
    let request = tei::parse_predict(&body.bytes);
    answer(
        Dialect::Tei,
        async { predict_request(&state, request?, &body.route).await }.await,
    )
}

/// `POST /classify`, as infinity defines it.
pub(crate) async fn classify(State(state): AppStateRef, body: Posted) -> Response {
    let request = parse_classify(&body.bytes);
    answer(
        Dialect::OpenAi,
        async { predict_request(&state, request?, &body.route).await }.await,
    )
}

/// `POST /tokenize`, as TEI defines it.
pub(crate) async fn tokenize(State(state): AppStateRef, body: Posted) -> Response {
    let tokens = async {
        let tokens: tei::TokenizeResponse =
            tasks::tokens(&state, tei::parse_tokenize(&body.bytes)?).await?;
        Ok(Json(tokens).into_response())
    };
    answer(Dialect::Tei, tokens.await)
}

/// `POST /decode`, as TEI defines it.
pub(crate) async fn decode(State(state): AppStateRef, body: Posted) -> Response {
    let texts = async {
        let texts = tasks::decode(&state, tei::parse_decode(&body.bytes)?).await?;
        Ok(Json(texts).into_response())
    };
    answer(Dialect::Tei, texts.await)
}

/// `POST /` and `POST /invocations`, as TEI routes them: the body is the
/// TEI route's for the kind of the model it names (or of the first served
/// model) — `/embed`'s for an embedder, `/rerank`'s for a reranker,
/// `/predict`'s for a classifier, `/embed_sparse`'s for a SPLADE model.
pub(crate) async fn by_kind(State(state): AppStateRef, body: Posted) -> Response {
    let dialect = Dialect::Tei;
    let (bytes, route) = (&body.bytes, &body.route);
    let routed = async {
        let kind = state.model(named_model(bytes).as_deref())?.card().kind;
        match kind {
            ModelKind::Rerank => rerank_request(&state, tei::parse_rerank(bytes)?, route).await,
            ModelKind::Classify => predict_request(&state, tei::parse_predict(bytes)?, route).await,
            ModelKind::SparseEmbed => {
                sparse_embeddings(&state, EmbedRequest::parse(dialect, bytes)?, route).await
            }
            _ => embeddings(&state, EmbedRequest::parse(dialect, bytes)?, route).await,
        }
    };
    answer(dialect, routed.await)
}

/// Runs an embedding request and shapes the answer in its dialect's body,
/// with the time headers.
async fn embeddings(
    state: &AppState,
    request: EmbedRequest,
    route: &str,
) -> Result<Response, ApiError> {
    let dialect = request.dialect;
    let encoding = request.encoding;
    let answer = execute(state, request, route).await?;
    let times = (answer.queue_time, answer.compute_time);
    let response = match dialect {
        Dialect::Tei => Json(answer.rows).into_response(),
        Dialect::OpenAi | Dialect::Cohere => Json(OpenAiResponse::new(
            answer.card.name,
            answer.rows,
            answer.tokens,
            encoding,
        ))
        .into_response(),
    };
    Ok(with_times(response, times))
}

/// Runs a rerank request; the answer best first, in its dialect's body.
async fn rerank_request(
    state: &AppState,
    request: RerankRequest,
    route: &str,
) -> Result<Response, ApiError> {
    let dialect = request.dialect;
    let top_n = request.top_n;
    let echo = request.return_documents;
    let mut documents: Vec<Option<String>> = if echo {
        request.documents.iter().cloned().map(Some).collect()
    } else {
        Vec::new()
    };
    let answer: Answer = tasks::rerank(state, request, route).await?;
    let times = (answer.queue_time, answer.compute_time);
    let mut ranked: Vec<(usize, f32)> = answer
        .rows
        .iter()
        .map(|s| s.first().copied().unwrap_or(f32::NAN))
        .enumerate()
        .collect();
    // Best first; equal scores keep their input order.
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    if let Some(n) = top_n {
        ranked.truncate(n);
    }
    let mut text = |i: usize| documents.get_mut(i).and_then(Option::take);
    let response = match dialect {
        Dialect::Tei => Json(
            ranked
                .into_iter()
                .map(|(index, score)| Rank {
                    index,
                    text: text(index),
                    score,
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Dialect::OpenAi | Dialect::Cohere => Json(RerankResponse {
            object: "rerank",
            model: answer.card.name.clone(),
            results: ranked
                .into_iter()
                .map(|(index, relevance_score)| RerankResult {
                    index,
                    relevance_score,
                    document: text(index).map(|text| DocumentText { text }),
                })
                .collect(),
            usage: Usage::of(answer.tokens),
        })
        .into_response(),
    };
    Ok(with_times(response, times))
}

/// Runs a classification request; each input's labels best first, in its
/// dialect's body.
async fn predict_request(
    state: &AppState,
    request: PredictRequest,
    route: &str,
) -> Result<Response, ApiError> {
    let dialect = request.dialect;
    let batch = request.batch;
    let answer = tasks::predict(state, request, route).await?;
    let times = (answer.queue_time, answer.compute_time);
    let card = &answer.card;
    let mut each: Vec<Vec<Prediction>> = answer
        .rows
        .iter()
        .map(|scores| {
            let mut p: Vec<Prediction> = scores
                .iter()
                .enumerate()
                .map(|(i, &score)| Prediction {
                    score,
                    label: card.label(i),
                })
                .collect();
            p.sort_by(|a, b| b.score.total_cmp(&a.score));
            p
        })
        .collect();
    let response = match dialect {
        Dialect::Tei if batch => Json(PredictResponse::Batch(each)).into_response(),
        Dialect::Tei => {
            Json(PredictResponse::Single(each.pop().unwrap_or_default())).into_response()
        }
        Dialect::OpenAi | Dialect::Cohere => Json(ClassifyResponse {
            object: "classify",
            data: each,
            model: card.name.clone(),
            usage: Usage::of(answer.tokens),
        })
        .into_response(),
    };
    Ok(with_times(response, times))
}

/// Adds `x-queue-time-ms` and `x-compute-time-ms` when the model gave them.
fn with_times(
    mut response: Response,
    (queue, compute): (Option<std::time::Duration>, Option<std::time::Duration>),
) -> Response {
    for (name, t) in [("x-queue-time-ms", queue), ("x-compute-time-ms", compute)] {
        if let Some(t) = t {
            if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", t.as_secs_f64() * 1e3)) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(name), v);
            }
        }
    }
    response
}

/// Reads the body, refusing one over `limit` bytes (by its declared length
/// at once, else as it streams).
async fn read_body(
    dialect: Dialect,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let over = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .any(|e| e.to_string().contains("length limit exceeded"));
        if over {
            ApiError::body_too_large(limit)
        } else {
            ApiError::invalid(dialect, "body", format!("could not read the body: {e}"))
        }
    })
}

/// Why a pool does not serve, from its own report; `None` when it does.
fn not_serving(report: &HealthReport) -> Option<String> {
    let count = |s: WorkerState| report.workers.iter().filter(|w| w.state == s).count();
    let ready = count(WorkerState::Ready);
    if report.draining {
        return Some("draining for shutdown".into());
    }
    if ready > 0 {
        return None;
    }
    Some(format!(
        "no serving worker (health {:?}; of {} workers: {} loading, {} restarting, {} disabled)",
        report.health,
        report.workers.len(),
        count(WorkerState::Loading),
        count(WorkerState::Restarting),
        count(WorkerState::Disabled),
    ))
}

/// `GET /health` (and `GET /ping`, as SageMaker asks it): 200 when at least
/// one worker of every model serves, else 503 with each pool's own reason.
pub(crate) async fn health(State(state): AppStateRef) -> Response {
    let mut models = Map::new();
    let mut reasons = Vec::new();
    for m in &state.models {
        let name = m.card().name.clone();
        let entry = match m.health().await {
            Ok(report) => {
                let reason = m.unavailable().or_else(|| not_serving(&report));
                if let Some(r) = &reason {
                    reasons.push(format!("model {name}: {r}"));
                }
                json!({
                    "health": format!("{:?}", report.health),
                    "serving": reason.is_none(),
                    "reason": reason,
                    "ready_workers": report.workers.iter().filter(|w| w.state == WorkerState::Ready).count(),
                    "workers": report.workers.len(),
                    "queue_depth": report.total_depth(),
                    "waiting": report.waiting,
                })
            }
            Err(e) => {
                reasons.push(format!("model {name}: {e}"));
                json!({ "health": format!("{:?}", Health::Unhealthy), "serving": false, "reason": e.to_string() })
            }
        };
        models.insert(name, entry);
    }
    if state.models.is_empty() {
        reasons.push("no model is served".into());
    }
    let status = if reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if reasons.is_empty() { "ok" } else { "unavailable" },
        "reason": if reasons.is_empty() { Value::Null } else { Value::String(reasons.join("; ")) },
        "models": models,
    });
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): AppStateRef) -> Response {
    match &state.config.metrics {
        Some(handle) => {
            for m in &state.models {
                m.record_metrics();
            }
            handle.run_upkeep();
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4",
                )],
                handle.render(),
            )
                .into_response()
        }
        None => not_found_at("/metrics"),
    }
}

fn limits(state: &AppState) -> Value {
    json!({
        "max_batch_inputs": state.config.max_batch_inputs,
        "max_body_bytes": state.config.max_body,
        "api_key_required": state.config.api_key.is_some(),
    })
}

/// `GET /info`: models, dimensions, limits, version.
pub(crate) async fn info(State(state): AppStateRef) -> Response {
    let models: Vec<Value> = state.models.iter().map(|m| json!(m.card())).collect();
    Json(json!({
        "name": "corral",
        "version": env!("CARGO_PKG_VERSION"),
        "models": models,
        "limits": limits(&state),
    }))
    .into_response()
}

/// `GET /v1/models`: OpenAI's list shape, each entry with the model's card.
pub(crate) async fn models(State(state): AppStateRef) -> Response {
    let data: Vec<Value> = state
        .models
        .iter()
        .map(|m| {
            let mut entry = json!({ "id": m.card().name, "object": "model", "created": 0, "owned_by": "corral" });
            if let (Some(obj), Value::Object(card)) = (entry.as_object_mut(), json!(m.card())) {
                obj.extend(card);
            }
            entry
        })
        .collect();
    Json(json!({ "object": "list", "data": data, "version": env!("CARGO_PKG_VERSION"), "limits": limits(&state) }))
        .into_response()
}

/// Any other path: 404.
pub(crate) async fn not_found(uri: Uri) -> Response {
    not_found_at(uri.path())
}

fn not_found_at(path: &str) -> Response {
    ApiError::not_found(path).render(Dialect::of_path(path))
}
