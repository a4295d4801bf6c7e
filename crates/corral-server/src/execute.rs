//! Runs one [`EmbedRequest`] against its model: pick the model, refuse
//! while draining, check the limits, tokenise (off the async threads when
//! large) with the prompt put before each text, refuse or cut what is over
//! the model's length, submit the token ids through the model seam, and
//! shape the vectors (`dimensions`, normalisation). The answer's body is the route's to shape.

use std::sync::Arc;
use std::time::Duration;

use corral_core::PoolError;
use corral_embed::{l2_normalize, ModelKind, Prompt, Tokenized, TruncationSide};

use crate::error::{ApiError, Dialect};
use crate::model::{
    BoxFuture, Embedded, ModelCard, Scored, ServedModel, SparseEmbedded, TokenizeError,
};
use crate::state::AppState;
use crate::telemetry::{COMPUTE_TIME, QUEUE_TIME, REQUEST_INPUTS, REQUEST_TOKENS};
use crate::types::{EmbedRequest, Inputs, OverLimit};

/// What one request got from its model, for the route to shape: vectors
/// for an embedding, scores for a rerank or a prediction.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The card of the model that ran it.
    pub(crate) card: ModelCard,
    /// One row per input, in order: a shaped vector, or one score per
    /// label (activated, or the raw logits when asked).
    pub(crate) rows: Vec<Vec<f32>>,
    /// Word pieces, special tokens included.
    pub(crate) tokens: usize,
    /// Between submission and the start of the batch that ran it.
    pub(crate) queue_time: Option<Duration>,
    /// The batch's own time.
    pub(crate) compute_time: Option<Duration>,
}

/// The checks every request makes before its inputs are tokenised: the
/// server is not draining (503), and the request holds at most
/// `max_batch_inputs` inputs (400 / TEI 413, naming `field`).
pub(crate) fn admit(
    state: &AppState,
    dialect: Dialect,
    field: &str,
    n: usize,
) -> Result<(), ApiError> {
    state.refuse_if_draining()?;
    let max = state.config.max_batch_inputs;
    if n > max {
        return Err(ApiError::over_limit(
            dialect,
            field,
            format!("`{field}` has {n} inputs; at most {max} are accepted"),
        ));
    }
    Ok(())
}

/// Refuses the first input the tokenizer cut (400 / TEI 413), unless the
/// request asked for cutting. `counted` says what the limit counts.
pub(crate) fn refuse_cut(
    dialect: Dialect,
    field: &str,
    over_limit: OverLimit,
    mut truncated: impl Iterator<Item = bool>,
    card: &ModelCard,
    counted: &str,
) -> Result<(), ApiError> {
    if over_limit != OverLimit::Refuse {
        return Ok(());
    }
    match truncated.position(|t| t) {
        None => Ok(()),
        Some(i) => Err(ApiError::over_limit(
            dialect,
            field,
            format!(
                "`{field}`[{i}] is longer than the model's limit of {} tokens ({counted}){}",
                card.max_input_tokens,
                match dialect {
                    Dialect::Tei => "; set `truncate: true` to cut it",
                    Dialect::OpenAi | Dialect::Cohere => "",
                }
            ),
        )),
    }
}

/// One request's trace span and metric series (labelled by model and task).
pub(crate) struct Meter {
    span: tracing::Span,
    labels: [(&'static str, String); 2],
}

impl Meter {
    /// Starts metering a request of `inputs` inputs to the model of `card`.
    pub(crate) fn start(card: &ModelCard, inputs: usize) -> Self {
        let span = tracing::Span::current();
        span.record("model", card.name.as_str());
        span.record("inputs", inputs);
        Self {
            span,
            labels: [
                ("model", card.name.clone()),
                ("task", card.kind.as_str().to_owned()),
            ],
        }
    }

    /// Records the request's size once tokenised, from each input's
    /// length in word pieces; answers the total.
    pub(crate) fn sized(&self, lengths: impl ExactSizeIterator<Item = usize>) -> usize {
        let inputs = lengths.len();
        let tokens = lengths.sum();
        self.span.record("tokens", tokens);
        metrics::histogram!(REQUEST_INPUTS, &self.labels).record(inputs as f64);
        metrics::histogram!(REQUEST_TOKENS, &self.labels).record(tokens as f64);
        tokens
    }

    /// Records where the request's time went, when the model knows.
    pub(crate) fn timed(&self, queue_time: Option<Duration>, compute_time: Option<Duration>) {
        if let Some(q) = queue_time {
            self.span.record("queue_ms", q.as_secs_f64() * 1e3);
            metrics::histogram!(QUEUE_TIME, &self.labels).record(q.as_secs_f64());
        }
        if let Some(c) = compute_time {
            self.span.record("compute_ms", c.as_secs_f64() * 1e3);
            metrics::histogram!(COMPUTE_TIME, &self.labels).record(c.as_secs_f64());
        }
    }
}

/// A request tokenised and checked, ready to submit to its model.
struct Prepared {
    model: Arc<dyn ServedModel>,
    card: ModelCard,
    meter: Meter,
    ids: Vec<Vec<u32>>,
    tokens: usize,
}

/// Picks the model (of one of `kinds`), refuses while draining, checks the
/// limits and `dimensions` (against `card.dimensions`), tokenises with the
/// prompt, and refuses what is over the model's length unless cutting was
/// asked for.
async fn prepare(
    state: &AppState,
    request: EmbedRequest,
    kinds: &[ModelKind],
    task: &str,
    route: &str,
) -> Result<Prepared, ApiError> {
    let EmbedRequest {
        dialect,
        model,
        inputs,
        over_limit,
        dimensions,
        prompt,
        normalize: _,
        encoding: _,
    } = request;
    let field = dialect.inputs_field();
    let model = state.model_for(model.as_deref(), kinds, task, route)?;
    let card = model.card().clone();
    let meter = Meter::start(&card, inputs.len());
    admit(state, dialect, field, inputs.len())?;
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
    let prompt = resolve_prompt(dialect, model.as_ref(), &inputs, &prompt)?;
    let side = over_limit.side();
    let tokenized = tokenize(state, model.clone(), inputs, prompt, side)
        .await?
        .map_err(|(i, e)| ApiError::invalid(dialect, field, format!("`{field}`[{i}]: {e}")))?;
    refuse_cut(
        dialect,
        field,
        over_limit,
        tokenized.iter().map(|t| t.truncated),
        &card,
        "special tokens included",
    )?;
    let tokens = meter.sized(tokenized.iter().map(|t| t.ids.len()));
    Ok(Prepared {
        model,
        card,
        meter,
        ids: tokenized.into_iter().map(|t| t.ids).collect(),
        tokens,
    })
}

/// What a model answers one request with: a row per input, and where the
/// time went when it knows.
pub(crate) trait Rows {
    /// How many rows (one per input, when the model is right).
    fn rows(&self) -> usize;
    /// Queue and compute time.
    fn times(&self) -> (Option<Duration>, Option<Duration>);
}

impl Rows for Embedded {
    fn rows(&self) -> usize {
        self.vectors.len()
    }
    fn times(&self) -> (Option<Duration>, Option<Duration>) {
        (self.queue_time, self.compute_time)
    }
}

impl Rows for Scored {
    fn rows(&self) -> usize {
        self.logits.len()
    }
    fn times(&self) -> (Option<Duration>, Option<Duration>) {
        (self.queue_time, self.compute_time)
    }
}

impl Rows for SparseEmbedded {
    fn rows(&self) -> usize {
        self.vectors.len()
    }
    fn times(&self) -> (Option<Duration>, Option<Duration>) {
        (self.queue_time, self.compute_time)
    }
}

/// Awaits a request submitted through the model seam, and checks what came
/// back: the pool's error as the client is to see it (503 with the model's
/// reason when it knows why it cannot serve), the times metered, and one
/// row (`what`) per input, else 500.
pub(crate) async fn answered<T: Rows>(
    dialect: Dialect,
    model: &dyn ServedModel,
    meter: &Meter,
    inputs: usize,
    what: &str,
    submitted: BoxFuture<'_, Result<T, PoolError>>,
) -> Result<T, ApiError> {
    let answer = submitted
        .await
        .map_err(|e| ApiError::from_model(dialect, e, model.unavailable()))?;
    let (queue_time, compute_time) = answer.times();
    meter.timed(queue_time, compute_time);
    if answer.rows() != inputs {
        return Err(ApiError::internal(format!(
            "the model answered {} {what} for {inputs} inputs",
            answer.rows()
        )));
    }
    Ok(answer)
}

/// Tokenises, checks, submits and shapes one request.
///
/// # Errors
/// Every refusal as the client is to see it: an unknown model (404),
/// draining (503), too many inputs or an input over the model's length
/// (400 / TEI 413), a bad `dimensions` or token id (400 / TEI 422), a
/// model that does not embed (424), and the pool's own errors.
pub(crate) async fn execute(
    state: &AppState,
    request: EmbedRequest,
    route: &str,
) -> Result<Answer, ApiError> {
    let dialect = request.dialect;
    let dimensions = request.dimensions;
    let normalize = request.normalize;
    let Prepared {
        model,
        card,
        meter,
        ids,
        tokens,
    } = prepare(state, request, &[ModelKind::Embed], "embed texts", route).await?;
    let n_inputs = ids.len();
    let embedded = answered(
        dialect,
        model.as_ref(),
        &meter,
        n_inputs,
        "vectors",
        model.embed(ids),
    )
    .await?;
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
        card,
        rows: vectors,
        tokens,
        queue_time: embedded.queue_time,
        compute_time: embedded.compute_time,
    })
}

/// Sparse vectors for one request (TEI's `/embed_sparse`): the same
/// checks, tokenising, bounds and metrics as [`execute`], on a model of
/// kind `sparse-embed`. `dimensions` is refused (a sparse vector is not
/// cut); `normalize` does not apply and is ignored.
///
/// # Errors
/// As [`execute`]; a model that gives no sparse vectors is 424.
pub(crate) async fn execute_sparse(
    state: &AppState,
    request: EmbedRequest,
    route: &str,
) -> Result<(ModelCard, SparseEmbedded), ApiError> {
    let dialect = request.dialect;
    if request.dimensions.is_some() {
        return Err(ApiError::invalid(
            dialect,
            "dimensions",
            "`dimensions` does not apply to sparse vectors",
        ));
    }
    let Prepared {
        model,
        card,
        meter,
        ids,
        ..
    } = prepare(
        state,
        request,
        &[ModelKind::SparseEmbed],
        "give sparse vectors",
        route,
    )
    .await?;
    let n_inputs = ids.len();
    let sparse = answered(
        dialect,
        model.as_ref(),
        &meter,
        n_inputs,
        "sparse vectors",
        model.embed_sparse(ids),
    )
    .await?;
    Ok((card, sparse))
}

/// The prompt string for `inputs`: the model's for `choice` for texts;
/// none for token ids, which refuse an explicit `prompt_name` or non-empty
/// `prompt`.
fn resolve_prompt(
    dialect: Dialect,
    model: &dyn ServedModel,
    inputs: &Inputs,
    choice: &Prompt,
) -> Result<Option<String>, ApiError> {
    let field: &str = match choice {
        Prompt::Named(_) => "prompt_name",
        _ => "prompt",
    };
    match (inputs, choice) {
        (Inputs::Ids(_), Prompt::Named(_)) => Err(ApiError::invalid(
            dialect,
            field,
            format!("`{field}`: a prompt applies to texts; token ids get none"),
        )),
        (Inputs::Ids(_), Prompt::Text(t)) if !t.is_empty() => Err(ApiError::invalid(
            dialect,
            field,
            format!("`{field}`: a prompt applies to texts; token ids get none"),
        )),
        (Inputs::Ids(_), _) => Ok(None),
        (Inputs::Texts(_), choice) => text_prompt(dialect, model, choice),
    }
}

/// The prompt string `choice` puts before each text on `model` (see
/// [`ServedModel::prompt`]), a bad choice refused naming its field.
pub(crate) fn text_prompt(
    dialect: Dialect,
    model: &dyn ServedModel,
    choice: &Prompt,
) -> Result<Option<String>, ApiError> {
    let field: &str = match choice {
        Prompt::Named(_) => "prompt_name",
        _ => "prompt",
    };
    model.prompt(choice).map_err(|e| match e {
        TokenizeError::Unsupported(what) => ApiError::unsupported(&model.card().name, &what),
        e => ApiError::invalid(dialect, field, format!("`{field}`: {e}")),
    })
}

/// Text bytes up to which a request is tokenised on the async thread: a
/// few sentences take tens of microseconds, less than handing them to the
/// blocking pool costs (and under a flood, that pool would start a thread
/// per request).
const INLINE_TOKENIZE_BYTES: usize = 4096;

/// Tokenises `inputs` with the model's tokenizer (see [`off_thread`]),
/// each text with `prompt` before it (as sentence-transformers: the string
/// prepended, then the whole tokenised and cut). An input the model cannot
/// tokenise comes back with its place.
async fn tokenize(
    state: &AppState,
    model: Arc<dyn ServedModel>,
    inputs: Inputs,
    prompt: Option<String>,
    side: TruncationSide,
) -> Result<Result<Vec<Tokenized>, (usize, TokenizeError)>, ApiError> {
    let prompt_len = prompt.as_ref().map_or(0, String::len);
    let bytes: usize = match &inputs {
        Inputs::Texts(texts) => texts.iter().map(|t| t.len() + prompt_len).sum(),
        Inputs::Ids(lists) => lists.iter().map(Vec::len).sum::<usize>() * 4,
    };
    off_thread(state, bytes, move || match inputs {
        Inputs::Texts(texts) => texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                match &prompt {
                    Some(p) => model.tokenize(&format!("{p}{t}"), side),
                    None => model.tokenize(t, side),
                }
                .map_err(|e| (i, e))
            })
            .collect::<Result<Vec<_>, _>>(),
        Inputs::Ids(lists) => lists
            .into_iter()
            .enumerate()
            .map(|(i, ids)| model.wrap_ids(ids, side).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>(),
    })
    .await
}

/// Runs tokenizer `work` over `bytes` of input: inline when small, else on
/// the blocking pool so the async threads never stall on a large body, at
/// most `tokenize_concurrency` requests at once (see
/// [`ServerConfig::tokenize_concurrency`](crate::ServerConfig)).
pub(crate) async fn off_thread<T: Send + 'static>(
    state: &AppState,
    bytes: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
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
        let done = work();
        drop(permit);
        done
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenising failed: {e}")))
}
