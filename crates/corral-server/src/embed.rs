//! The path both embedding routes share: read the body within its limit,
//! parse `input`/`inputs` in any of its shapes, tokenise off the async
//! threads, refuse what is over a limit, submit token ids to the pool, and
//! shape the vectors (`dimensions`, normalisation).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use corral_embed::{l2_normalize, Tokenized, TruncationSide};
use serde_json::Value;

use crate::app::AppState;
use crate::error::{ApiError, Dialect};
use crate::model::EmbedModel;
use crate::telemetry::{COMPUTE_TIME, QUEUE_TIME, REQUEST_INPUTS, REQUEST_TOKENS};

/// The inputs of one request, as the client sent them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Inputs {
    /// Texts.
    Texts(Vec<String>),
    /// Token ids without special tokens, one list per input.
    Ids(Vec<Vec<u32>>),
}

impl Inputs {
    fn len(&self) -> usize {
        match self {
            Self::Texts(t) => t.len(),
            Self::Ids(i) => i.len(),
        }
    }
}

/// Reads the body, refusing one over `limit` bytes (by its declared length
/// at once, else as it streams), and parses it as a JSON object.
pub(crate) async fn read_json(
    dialect: Dialect,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let over = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .any(|e| e.to_string().contains("length limit exceeded"));
        if over {
            ApiError::body_too_large(limit)
        } else {
            ApiError::invalid(dialect, "body", format!("could not read the body: {e}"))
        }
    })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid(
            dialect,
            "body",
            "the body must be a JSON object",
        )),
        Err(e) => Err(ApiError::invalid(
            dialect,
            "body",
            format!("malformed JSON: {e}"),
        )),
    }
}

/// `input` as OpenAI defines it (also TEI's `inputs`): a string, an array
/// of strings, an array of token ids, or an array of arrays of token ids.
pub(crate) fn parse_inputs(
    dialect: Dialect,
    field: &str,
    v: Option<&Value>,
) -> Result<Inputs, ApiError> {
    let shape = || {
        ApiError::invalid(
            dialect,
            field,
            format!(
                "`{field}` must be a string, an array of strings, an array of token ids \
                 or an array of arrays of token ids"
            ),
        )
    };
    let id = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
    match v {
        None | Some(Value::Null) => Err(ApiError::invalid(
            dialect,
            field,
            format!("`{field}` is required"),
        )),
        Some(Value::String(s)) => Ok(Inputs::Texts(vec![s.clone()])),
        Some(Value::Array(items)) => {
            let Some(first) = items.first() else {
                return Err(ApiError::empty(field));
            };
            match first {
                Value::String(_) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned).ok_or_else(shape))
                    .collect::<Result<_, _>>()
                    .map(Inputs::Texts),
                Value::Number(_) => items
                    .iter()
                    .map(|i| id(i).ok_or_else(shape))
                    .collect::<Result<_, _>>()
                    .map(|ids| Inputs::Ids(vec![ids])),
                Value::Array(_) => items
                    .iter()
                    .map(|list| {
                        list.as_array()
                            .ok_or_else(shape)?
                            .iter()
                            .map(|i| id(i).ok_or_else(shape))
                            .collect::<Result<Vec<u32>, _>>()
                    })
                    .collect::<Result<_, _>>()
                    .map(Inputs::Ids),
                _ => Err(shape()),
            }
        }
        Some(_) => Err(shape()),
    }
}

/// What to do with an input over the model's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverLimit {
    /// Refuse the request, naming the input.
    Refuse,
    /// Cut it from this side.
    Truncate(TruncationSide),
}

/// How a request wants its inputs checked and its vectors shaped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// What to do with an input over the model's length.
    pub(crate) over_limit: OverLimit,
    /// Keep this many leading dimensions (then re-normalise).
    pub(crate) dimensions: Option<usize>,
    /// Scale each vector to unit L2 norm.
    pub(crate) normalize: bool,
}

/// Vectors for one request and what it cost.
pub(crate) struct Answer {
    pub(crate) vectors: Vec<Vec<f32>>,
    pub(crate) tokens: usize,
    pub(crate) queue_time: Option<Duration>,
    pub(crate) compute_time: Option<Duration>,
}

/// Tokenises, checks, submits and shapes one request.
pub(crate) async fn embed(
    state: &AppState,
    dialect: Dialect,
    field: &str,
    model: Arc<dyn EmbedModel>,
    inputs: Inputs,
    options: Options,
) -> Result<Answer, ApiError> {
    let Options {
        over_limit,
        dimensions,
        normalize,
    } = options;
    crate::app::refuse_if_draining(state)?;
    let card = model.card().clone();
    let span = tracing::Span::current();
    span.record("model", card.name.as_str());
    span.record("inputs", inputs.len());
    let max = state.config.max_batch_inputs;
    if inputs.len() > max {
        return Err(ApiError::over_limit(
            dialect,
            field,
            format!(
                "`{field}` has {} inputs; at most {max} are accepted",
                inputs.len()
            ),
        ));
    }
    if let Some(d) = dimensions {
        if d == 0 || d > card.dimensions {
            return Err(ApiError::invalid(
                dialect,
                "dimensions",
                format!(
                    "`dimensions` must be between 1 and the model's {} (got {d})",
                    card.dimensions
                ),
            ));
        }
    }
    let side = match over_limit {
        OverLimit::Refuse => TruncationSide::Right,
        OverLimit::Truncate(side) => side,
    };
    let tokenized = tokenize(state, model.clone(), inputs, side)
        .await?
        .map_err(|m| ApiError::invalid(dialect, field, m))?;
    if over_limit == OverLimit::Refuse {
        if let Some(i) = tokenized.iter().position(|t| t.truncated) {
            return Err(ApiError::over_limit(
                dialect,
                field,
                format!(
                    "`{field}`[{i}] is longer than the model's limit of {} tokens \
                     (special tokens included){}",
                    card.max_input_tokens,
                    match dialect {
                        Dialect::Tei => "; set `truncate: true` to cut it",
                        Dialect::OpenAi => "",
                    }
                ),
            ));
        }
    }
    let n_inputs = tokenized.len();
    let tokens: usize = tokenized.iter().map(|t| t.ids.len()).sum();
    span.record("tokens", tokens);
    let labels = [("model", card.name.clone())];
    metrics::histogram!(REQUEST_INPUTS, &labels).record(n_inputs as f64);
    metrics::histogram!(REQUEST_TOKENS, &labels).record(tokens as f64);

    let embedded = model
        .embed(tokenized.into_iter().map(|t| t.ids).collect())
        .await
        .map_err(|e| ApiError::from_pool(dialect, e))?;
    if let Some(q) = embedded.queue_time {
        span.record("queue_ms", q.as_secs_f64() * 1e3);
        metrics::histogram!(QUEUE_TIME, &labels).record(q.as_secs_f64());
    }
    if let Some(c) = embedded.compute_time {
        span.record("compute_ms", c.as_secs_f64() * 1e3);
        metrics::histogram!(COMPUTE_TIME, &labels).record(c.as_secs_f64());
    }
    if embedded.vectors.len() != n_inputs {
        return Err(ApiError::internal(format!(
            "the model answered {} vectors for {n_inputs} inputs",
            embedded.vectors.len()
        )));
    }
    let vectors = embedded
        .vectors
        .into_iter()
        .map(|mut v| {
            if let Some(d) = dimensions {
                v.truncate(d);
            }
            if normalize {
                l2_normalize(&mut v);
            }
            v
        })
        .collect();
    Ok(Answer {
        vectors,
        tokens,
        queue_time: embedded.queue_time,
        compute_time: embedded.compute_time,
    })
}

/// Text bytes up to which a request is tokenised on the async thread: a
/// few sentences take tens of microseconds, less than handing them to the
/// blocking pool costs (and under a flood, that pool would start a thread
/// per request).
const INLINE_TOKENIZE_BYTES: usize = 4096;

/// Tokenises `inputs` with the model's tokenizer: inline when small, else
/// on the blocking pool so the async threads never stall on a large body,
/// at most `tokenize_concurrency` requests at once (see
/// [`ServerConfig::tokenize_concurrency`](crate::ServerConfig)).
async fn tokenize(
    state: &AppState,
    model: Arc<dyn EmbedModel>,
    inputs: Inputs,
    side: TruncationSide,
) -> Result<Result<Vec<Tokenized>, String>, ApiError> {
    let bytes: usize = match &inputs {
        Inputs::Texts(texts) => texts.iter().map(String::len).sum(),
        Inputs::Ids(lists) => lists.iter().map(Vec::len).sum::<usize>() * 4,
    };
    let work = move || match inputs {
        Inputs::Texts(texts) => texts
            .iter()
            .map(|t| model.tokenize(t, side))
            .collect::<Result<Vec<_>, _>>(),
        Inputs::Ids(lists) => lists
            .into_iter()
            .map(|ids| model.wrap_ids(ids, side))
            .collect::<Result<Vec<_>, _>>(),
    };
    if bytes <= INLINE_TOKENIZE_BYTES {
        return Ok(work());
    }
    let permit = state
        .tokenizing
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::unavailable("the server is shutting down"))?;
    tokio::task::spawn_blocking(move || {
        let tokenized = work();
        drop(permit);
        tokenized
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenising failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn input_shapes_parse_and_bad_shapes_name_the_field() {
        let p = |v: Value| parse_inputs(Dialect::OpenAi, "input", Some(&v));
        assert_eq!(p(json!("a")).unwrap(), Inputs::Texts(vec!["a".into()]));
        assert_eq!(
            p(json!(["a", "b"])).unwrap(),
            Inputs::Texts(vec!["a".into(), "b".into()])
        );
        assert_eq!(p(json!([1, 2])).unwrap(), Inputs::Ids(vec![vec![1, 2]]));
        assert_eq!(
            p(json!([[1], [2, 3]])).unwrap(),
            Inputs::Ids(vec![vec![1], vec![2, 3]])
        );
        for bad in [
            json!(["a", 1]),
            json!([-1]),
            json!({}),
            json!(3),
            json!([[1], "a"]),
        ] {
            let e = p(bad).unwrap_err();
            assert_eq!(e.status.as_u16(), 400);
            assert!(e.message.contains("`input`"), "{}", e.message);
        }
        assert_eq!(p(json!([])).unwrap_err().status.as_u16(), 400);
    }

    #[test]
    fn normalising_gives_unit_norm() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }
}
