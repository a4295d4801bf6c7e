//! Errors a client can act on, in the body shape of the route's dialect:
//! OpenAI's `{"error":{"message","type","param","code"}}` (also infinity's
//! `/classify`), TEI's `{"error","error_type"}`, or, on the Cohere-shaped
//! rerank routes, Cohere's `{"message"}` with OpenAI's `error` beside it
//! (infinity's and Jina's clients read that one). [`ApiError::from_pool`] is the one place a
//! [`PoolError`] becomes a status code:
//!
//! | `PoolError` | status | why |
//! |---|---|---|
//! | `Overloaded { retry_after }` | 429 + `Retry-After` (seconds, rounded up, ≥ 1) | every mailbox is full; retry later |
//! | `ShuttingDown` | 503 | draining or stopped |
//! | `TimedOut` | 503 + `Retry-After: 1` | no room in time; nothing ran |
//! | `DeadlinePassed` | 504 | the request's own deadline passed (the server sets none today) |
//! | `WorkerLost` | 503 + `Retry-After: 1` | its worker died and the retry budget is spent; may have run |
//! | `InvalidInput` | 400 (OpenAI) / 422 (TEI) | the request itself is wrong |
//! | `Backend` | 500 | the model failed |
//!
//! A task the model cannot do (reranking on an embedder, say) is 424 Failed
//! Dependency in every dialect, as TEI answers it, naming the model's kind
//! and the task asked.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use corral_core::PoolError;
use serde_json::json;

/// Which API's error body a route answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// OpenAI's `/v1/...` routes (and the operational ones).
    OpenAi,
    /// Text Embeddings Inference's routes (`/embed`, `/rerank` with
    /// `texts`, `/predict`, `/tokenize`, `/decode`, `/`, `/invocations`).
    Tei,
    /// Cohere's rerank API as Cohere, Jina and infinity serve it
    /// (`/v1/rerank`, `/v2/rerank`, and `/rerank` with `documents`).
    Cohere,
}

impl Dialect {
    /// The dialect of an error answered before the body is read: TEI's on
    /// TEI's routes, Cohere's on `/v1/rerank` and `/v2/rerank`, OpenAI's elsewhere. (`/rerank`
    /// is TEI's here: which shape a body has is known only once it is read.)
    pub(crate) fn of_path(path: &str) -> Self {
        match path {
            "/embed" | "/embed_sparse" | "/rerank" | "/predict" | "/tokenize" | "/decode" | "/"
            | "/invocations" => Self::Tei,
            "/v1/rerank" | "/v2/rerank" => Self::Cohere,
            _ => Self::OpenAi,
        }
    }

    /// The name of the field that carries the inputs: OpenAI's `input`,
    /// TEI's `inputs`, Cohere's `documents`.
    pub(crate) fn inputs_field(self) -> &'static str {
        match self {
            Self::OpenAi => "input",
            Self::Tei => "inputs",
            Self::Cohere => "documents",
        }
    }
}

/// An error answer: status, message, and the fields each dialect shows.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) param: Option<String>,
    openai_type: &'static str,
    code: Option<&'static str>,
    tei_type: &'static str,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            param: None,
            openai_type: "invalid_request_error",
            code: None,
            tei_type: "validation",
            retry_after: None,
        }
    }

    fn param(mut self, param: &str) -> Self {
        self.param = Some(param.to_owned());
        self
    }

    /// A malformed or wrong-typed field: 400 (OpenAI) / 422 (TEI).
    pub(crate) fn invalid(dialect: Dialect, param: &str, message: impl Into<String>) -> Self {
        let status = match dialect {
            Dialect::OpenAi | Dialect::Cohere => StatusCode::BAD_REQUEST,
            Dialect::Tei => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, message).param(param)
    }

    /// An empty batch: 400 in both dialects (TEI's `empty`).
    pub(crate) fn empty(param: &str) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            format!("`{param}` must not be empty"),
        );
        e.tei_type = "empty";
        e.param(param)
    }

    /// An input over a limit (too many inputs, a text over the model's
    /// length without truncation): 400 (OpenAI) / 413 (TEI's validation).
    pub(crate) fn over_limit(dialect: Dialect, param: &str, message: impl Into<String>) -> Self {
        let status = match dialect {
            Dialect::OpenAi | Dialect::Cohere => StatusCode::BAD_REQUEST,
            Dialect::Tei => StatusCode::PAYLOAD_TOO_LARGE,
        };
        Self::new(status, message).param(param)
    }

    /// A body over `--max-body`: 413.
    pub(crate) fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is over the server's limit of {limit} bytes"),
        )
    }

    /// A missing or wrong API key: 401.
    pub(crate) fn unauthorized() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API key (send `Authorization: Bearer <key>`)",
        );
        e.code = Some("invalid_api_key");
        e.tei_type = "unauthorized";
        e
    }

    /// An unknown model: 404.
    pub(crate) fn unknown_model(name: &str, known: &[&str]) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            format!(
                "model `{name}` is not served here (served: {})",
                known.join(", ")
            ),
        )
        .param("model");
        e.code = Some("model_not_found");
        e.tei_type = "validation";
        e
    }

    /// A task the model cannot do (TEI's answer, 424 Failed Dependency):
    /// names the model, its kind and the task asked — and, for a SPLADE
    /// model, the route that serves it (OpenAI's embedding shape cannot
    /// carry a sparse vector).
    pub(crate) fn wrong_kind(model: &str, kind: &str, task: &str, route: &str) -> Self {
        let hint = match kind {
            "sparse-embed" => {
                "; its sparse vectors are served on POST /embed_sparse \
                 (dense embedding bodies, OpenAI's included, cannot carry them)"
            }
            _ => "",
        };
        let mut e = Self::new(
            StatusCode::FAILED_DEPENDENCY,
            format!(
                "model `{model}` is of kind `{kind}`; it cannot {task} \
                 ({route} needs a model that can){hint}"
            ),
        )
        .param("model");
        e.code = Some("wrong_model_kind");
        e.tei_type = "backend";
        e
    }

    /// No served model does the task asked (none named): 424, naming what
    /// is served.
    pub(crate) fn no_model_for(task: &str, route: &str, served: &[String]) -> Self {
        let mut e = Self::new(
            StatusCode::FAILED_DEPENDENCY,
            format!(
                "no model served here can {task} ({route}; served, by kind: {})",
                served.join(", ")
            ),
        )
        .param("model");
        e.code = Some("wrong_model_kind");
        e.tei_type = "backend";
        e
    }

    /// Something the model's tokenizer does not offer: 424, naming it.
    pub(crate) fn unsupported(model: &str, what: &str) -> Self {
        let mut e = Self::new(
            StatusCode::FAILED_DEPENDENCY,
            format!("model `{model}` cannot {what}"),
        );
        e.code = Some("unsupported");
        e.tei_type = "backend";
        e
    }

    /// A path the server does not have (or a route it does not serve,
    /// like `/metrics` without a recorder): 404.
    pub(crate) fn not_found(path: &str) -> Self {
        // OpenAI answers an unknown URL `invalid_request_error` with no
        // code; TEI has no type of its own for it.
        let mut e = Self::new(StatusCode::NOT_FOUND, format!("no route {path}"));
        e.tei_type = "not_found";
        e
    }

    /// Full queues, the pool's or the server's own places: 429 with
    /// `Retry-After`.
    pub(crate) fn overloaded(retry_after: std::time::Duration) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "the model's queues are full; retry after the Retry-After delay",
        );
        e.openai_type = "rate_limit_error";
        e.code = Some("overloaded");
        e.tei_type = "overloaded";
        e.retry_after = Some(retry_after_secs(retry_after));
        e
    }

    /// No worker serving, or the server is draining: 503.
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, message);
        e.openai_type = "server_error";
        e.code = Some("service_unavailable");
        e.tei_type = "unhealthy";
        e
    }

    /// A failure of the server itself: 500.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::INTERNAL_SERVER_ERROR, message);
        e.openai_type = "server_error";
        e.tei_type = "backend";
        e
    }

    /// The status a [`PoolError`] maps to (see the module's table).
    pub(crate) fn from_pool(dialect: Dialect, err: PoolError) -> Self {
        match err {
            PoolError::Overloaded { retry_after } => Self::overloaded(retry_after),
            PoolError::ShuttingDown => Self::unavailable("the server is shutting down"),
            PoolError::TimedOut => {
                let mut e = Self::unavailable("no room in the model's queues in time; nothing ran");
                e.retry_after = Some(1);
                e
            }
            PoolError::DeadlinePassed => {
                let mut e = Self::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "the request's deadline passed before the model answered",
                );
                e.openai_type = "server_error";
                e.tei_type = "timeout";
                e
            }
            PoolError::WorkerLost => {
                let mut e = Self::unavailable(
                    "the worker running this request failed and was replaced; retry",
                );
                e.retry_after = Some(1);
                e
            }
            PoolError::InvalidInput(m) => Self::invalid(dialect, "input", m),
            PoolError::TooLarge(m) => Self::over_limit(dialect, "input", m),
            PoolError::Backend(m) => Self::internal(format!("the model failed: {m}")),
        }
    }

    /// As [`Self::from_pool`], but a refusal or a loss (`Overloaded`,
    /// `TimedOut`, `WorkerLost`) from a model that says why it cannot
    /// serve (`unavailable`: no member in routing) is 503 with that reason
    /// and `Retry-After: 1`.
    pub(crate) fn from_model(
        dialect: Dialect,
        err: PoolError,
        unavailable: Option<String>,
    ) -> Self {
        match (err, unavailable) {
            (
                PoolError::Overloaded { .. } | PoolError::TimedOut | PoolError::WorkerLost,
                Some(reason),
            ) => {
                let mut e = Self::unavailable(reason);
                e.retry_after = Some(1);
                e
            }
            (err, _) => Self::from_pool(dialect, err),
        }
    }

    /// The response in `dialect`'s body shape.
    pub(crate) fn render(&self, dialect: Dialect) -> Response {
        let body = match dialect {
            Dialect::OpenAi => json!({
                "error": {
                    "message": self.message,
                    "type": self.openai_type,
                    "param": self.param,
                    "code": self.code,
                }
            }),
            Dialect::Tei => json!({ "error": self.message, "error_type": self.tei_type }),
            Dialect::Cohere => json!({
                "message": self.message,
                "error": {
                    "message": self.message,
                    "type": self.openai_type,
                    "param": self.param,
                    "code": self.code,
                }
            }),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Whole seconds, rounded up, at least 1.
pub(crate) fn retry_after_secs(d: std::time::Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retry_after_rounds_up_to_at_least_one_second() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }

    /// A model that says why it cannot serve turns a refusal or a loss
    /// into 503 with that reason; other errors, and every error of a model
    /// that says nothing, map as `from_pool`.
    #[test]
    fn an_unavailable_model_answers_503_with_its_reason() {
        let full = PoolError::Overloaded {
            retry_after: Duration::from_millis(1500),
        };
        for err in [full.clone(), PoolError::TimedOut, PoolError::WorkerLost] {
            let e = ApiError::from_model(Dialect::OpenAi, err.clone(), Some("no member".into()));
            assert_eq!(
                (e.status.as_u16(), e.retry_after),
                (503, Some(1)),
                "{err:?}"
            );
            assert_eq!(e.message, "no member");
        }
        let e = ApiError::from_model(Dialect::OpenAi, full, None);
        assert_eq!((e.status.as_u16(), e.retry_after), (429, Some(2)));
        let e = ApiError::from_model(
            Dialect::Tei,
            PoolError::InvalidInput("x".into()),
            Some("no member".into()),
        );
        assert_eq!(e.status.as_u16(), 422);
    }

    #[test]
    fn every_pool_error_has_an_actionable_status() {
        let cases = [
            (
                PoolError::Overloaded {
                    retry_after: Duration::from_millis(1500),
                },
                429,
            ),
            (PoolError::ShuttingDown, 503),
            (PoolError::TimedOut, 503),
            (PoolError::DeadlinePassed, 504),
            (PoolError::WorkerLost, 503),
            (PoolError::InvalidInput("x".into()), 400),
            (PoolError::Backend("x".into()), 500),
            (PoolError::TooLarge("x".into()), 400),
        ];
        for (err, status) in cases {
            let e = ApiError::from_pool(Dialect::OpenAi, err.clone());
            assert_eq!(e.status.as_u16(), status, "{err:?}");
        }
        let e = ApiError::from_pool(Dialect::Tei, PoolError::InvalidInput("x".into()));
        assert_eq!(e.status.as_u16(), 422);
        let e = ApiError::from_pool(Dialect::Tei, PoolError::TooLarge("x".into()));
        assert_eq!(e.status.as_u16(), 413);
        let r = ApiError::from_pool(
            Dialect::OpenAi,
            PoolError::Overloaded {
                retry_after: Duration::from_millis(1500),
            },
        )
        .render(Dialect::OpenAi);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }
}
