//! The handlers: OpenAI's `/v1/embeddings` and `/v1/models`, TEI's
//! `/embed`, and `/health`, `/metrics`, `/info`. Both embedding routes take
//! one way down: read the body within its limit, parse it once into an
//! [`EmbedRequest`], [`execute`] it, shape the answer in the route's
//! dialect.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use corral_core::{Health, HealthReport, WorkerState};
use serde_json::{json, Map, Value};

use crate::error::{ApiError, Dialect};
use crate::execute::execute;
use crate::state::AppState;
use crate::types::{EmbedRequest, OpenAiResponse};

type AppStateRef = State<Arc<AppState>>;

/// `POST /v1/embeddings`, as OpenAI defines it.
pub(crate) async fn openai_embeddings(
    State(state): AppStateRef,
    headers: HeaderMap,
    body: Body,
) -> Response {
    embeddings(&state, Dialect::OpenAi, &headers, body)
        .await
        .unwrap_or_else(|e| e.render(Dialect::OpenAi))
}

/// `POST /embed`, as Text Embeddings Inference defines it.
pub(crate) async fn tei_embed(
    State(state): AppStateRef,
    headers: HeaderMap,
    body: Body,
) -> Response {
    embeddings(&state, Dialect::Tei, &headers, body)
        .await
        .unwrap_or_else(|e| e.render(Dialect::Tei))
}

/// Both embedding routes, one way down: the body, read within its limit,
/// is parsed once into an [`EmbedRequest`], executed, and the answer shaped
/// in the dialect's body with the time headers.
async fn embeddings(
    state: &AppState,
    dialect: Dialect,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request = {
        let bytes = read_body(dialect, headers, body, state.config.max_body).await?;
        EmbedRequest::parse(dialect, &bytes)?
    };
    let encoding = request.encoding;
    let answer = execute(state, request).await?;
    let times = [
        ("x-queue-time-ms", answer.queue_time),
        ("x-compute-time-ms", answer.compute_time),
    ];
    let mut response = match dialect {
        Dialect::OpenAi => Json(OpenAiResponse::new(
            answer.model,
            answer.vectors,
            answer.tokens,
            encoding,
        ))
        .into_response(),
        Dialect::Tei => Json(answer.vectors).into_response(),
    };
    for (name, t) in times {
        if let Some(t) = t {
            if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", t.as_secs_f64() * 1e3)) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(name), v);
            }
        }
    }
    Ok(response)
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

/// `GET /health`: 200 when at least one worker of every model serves, else
/// 503 with each pool's own reason.
pub(crate) async fn health(State(state): AppStateRef) -> Response {
    let mut models = Map::new();
    let mut reasons = Vec::new();
    for m in &state.models {
        let name = m.card().name.clone();
        let entry = match m.health().await {
            Ok(report) => {
                let reason = not_serving(&report);
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
