//! The handlers: OpenAI's `/v1/embeddings` and `/v1/models`, TEI's
//! `/embed`, and `/health`, `/metrics`, `/info`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use corral_core::{Health, HealthReport, WorkerState};
use corral_embed::TruncationSide;
use serde_json::{json, Map, Value};

use crate::app::{no_route, AppState};
use crate::embed::{embed, parse_inputs, read_json, Answer, Options, OverLimit};
use crate::error::{ApiError, Dialect};

type AppStateRef = State<Arc<AppState>>;

fn opt_str<'a>(
    dialect: Dialect,
    body: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid(
            dialect,
            field,
            format!("`{field}` must be a string"),
        )),
    }
}

fn opt_bool(
    dialect: Dialect,
    body: &Map<String, Value>,
    field: &str,
) -> Result<Option<bool>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid(
            dialect,
            field,
            format!("`{field}` must be a boolean"),
        )),
    }
}

/// The time headers, in milliseconds.
fn with_times(mut response: Response, answer: &Answer) -> Response {
    let headers = response.headers_mut();
    for (name, t) in [
        ("x-queue-time-ms", answer.queue_time),
        ("x-compute-time-ms", answer.compute_time),
    ] {
        if let Some(t) = t {
            if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", t.as_secs_f64() * 1e3)) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
    }
    response
}

/// `POST /v1/embeddings`, as OpenAI defines it.
pub(crate) async fn openai_embeddings(
    State(state): AppStateRef,
    headers: HeaderMap,
    body: Body,
) -> Response {
    openai_inner(&state, &headers, body)
        .await
        .unwrap_or_else(|e| e.render(Dialect::OpenAi))
}

async fn openai_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let d = Dialect::OpenAi;
    let body = read_json(d, headers, body, state.config.max_body).await?;
    let inputs = parse_inputs(d, "input", body.get("input"))?;
    let model_name = opt_str(d, &body, "model")?;
    let model = state.model(model_name)?;
    let base64 = match opt_str(d, &body, "encoding_format")? {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                d,
                "encoding_format",
                format!("`encoding_format` must be \"float\" or \"base64\" (got {other:?})"),
            ))
        }
    };
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::invalid(d, "dimensions", "`dimensions` must be a positive integer")
                })?,
        ),
    };
    let _ = opt_str(d, &body, "user")?;
    let answer = embed(
        state,
        d,
        "input",
        model.clone(),
        inputs,
        Options {
            over_limit: OverLimit::Refuse,
            dimensions,
            normalize: true,
        },
    )
    .await?;
    let data: Vec<Value> = answer
        .vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let body = json!({
        "object": "list",
        "data": data,
        "model": model.card().name,
        "usage": { "prompt_tokens": answer.tokens, "total_tokens": answer.tokens },
    });
    Ok(with_times(Json(body).into_response(), &answer))
}

/// `POST /embed`, as Text Embeddings Inference defines it.
pub(crate) async fn tei_embed(
    State(state): AppStateRef,
    headers: HeaderMap,
    body: Body,
) -> Response {
    tei_inner(&state, &headers, body)
        .await
        .unwrap_or_else(|e| e.render(Dialect::Tei))
}

async fn tei_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let d = Dialect::Tei;
    let body = read_json(d, headers, body, state.config.max_body).await?;
    let inputs = parse_inputs(d, "inputs", body.get("inputs"))?;
    let model = state.model(opt_str(d, &body, "model")?)?;
    let normalize = opt_bool(d, &body, "normalize")?.unwrap_or(true);
    let truncate = opt_bool(d, &body, "truncate")?.unwrap_or(false);
    let side = match opt_str(d, &body, "truncation_direction")? {
        None => TruncationSide::Right,
        Some(s) if s.eq_ignore_ascii_case("right") => TruncationSide::Right,
        Some(s) if s.eq_ignore_ascii_case("left") => TruncationSide::Left,
        Some(other) => {
            return Err(ApiError::invalid(
                d,
                "truncation_direction",
                format!("`truncation_direction` must be \"Right\" or \"Left\" (got {other:?})"),
            ))
        }
    };
    let over = if truncate {
        OverLimit::Truncate(side)
    } else {
        OverLimit::Refuse
    };
    let answer = embed(
        state,
        d,
        "inputs",
        model,
        inputs,
        Options {
            over_limit: over,
            dimensions: None,
            normalize,
        },
    )
    .await?;
    Ok(with_times(Json(&answer.vectors).into_response(), &answer))
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
        None => no_route("/metrics"),
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
    no_route(uri.path())
}
