//! Runs the requests beyond embedding against their model: reranking and
//! classification (pick a model of the right kind, refuse while draining,
//! check the limits, tokenise texts and pairs, refuse or cut what is over
//! the model's length, score through the model seam, activate), and TEI's
//! `/tokenize` and `/decode`. The answer's body is the route's to shape.

use std::sync::Arc;

use corral_embed::{ModelKind, PairTokenized, TruncationSide};

use crate::error::{ApiError, Dialect};
use crate::execute::{admit, answered, off_thread, refuse_cut, text_prompt, Answer, Meter};
use crate::model::{ModelCard, ServedModel, TokenSpan, TokenizeError};
use crate::state::AppState;
use crate::types::tei::{DecodeRequest, TokenizeRequest};
use crate::types::{OverLimit, PredictRequest, RerankRequest, Sequence};

/// Scores each document against the query with a reranker.
///
/// # Errors
/// As [`score`], naming the documents' field.
pub(crate) async fn rerank(
    state: &AppState,
    request: RerankRequest,
    route: &str,
) -> Result<Answer, ApiError> {
    let field = match request.dialect {
        Dialect::Tei => "texts",
        Dialect::OpenAi | Dialect::Cohere => "documents",
    };
    let model = state.model_for(
        request.model.as_deref(),
        &[ModelKind::Rerank],
        "rerank documents",
        route,
    )?;
    let query = request.query;
    let inputs = request
        .documents
        .into_iter()
        .map(|d| Sequence::Pair(query.clone(), d))
        .collect();
    score(
        state,
        model,
        Job {
            dialect: request.dialect,
            field,
            inputs,
            over_limit: request.over_limit,
            raw_scores: request.raw_scores,
        },
    )
    .await
}

/// Every label's score for each text or pair, with a classifier (or a
/// reranker, whose one label scores a pair).
///
/// # Errors
/// As [`score`], naming the inputs' field.
pub(crate) async fn predict(
    state: &AppState,
    request: PredictRequest,
    route: &str,
) -> Result<Answer, ApiError> {
    let model = state.model_for(
        request.model.as_deref(),
        &[ModelKind::Classify, ModelKind::Rerank],
        "classify texts",
        route,
    )?;
    score(
        state,
        model,
        Job {
            dialect: request.dialect,
            field: request.dialect.inputs_field(),
            inputs: request.inputs,
            over_limit: request.over_limit,
            raw_scores: request.raw_scores,
        },
    )
    .await
}

/// What [`score`] runs.
struct Job {
    dialect: Dialect,
    field: &'static str,
    inputs: Vec<Sequence>,
    over_limit: OverLimit,
    raw_scores: bool,
}

/// Tokenises, checks, submits and activates one scoring request.
///
/// Errors: draining (503), too many inputs or an input over the model's
/// length (400 / TEI 413), a text the tokenizer cannot encode (400 / TEI
/// 422), a pair the model cannot tokenise (424), the pool's own errors,
/// and a model that answers the wrong number of scores (500).
async fn score(
    state: &AppState,
    model: Arc<dyn ServedModel>,
    job: Job,
) -> Result<Answer, ApiError> {
    let Job {
        dialect,
        field,
        inputs,
        over_limit,
        raw_scores,
    } = job;
    let card = model.card().clone();
    let meter = Meter::start(&card, inputs.len());
    admit(state, dialect, field, inputs.len())?;
    let side = over_limit.side();
    let bytes = inputs
        .iter()
        .map(|s| match s {
            Sequence::Single(t) => t.len(),
            Sequence::Pair(a, b) => a.len() + b.len(),
        })
        .sum();
    let tokenizer = model.clone();
    let tokenized = off_thread(state, bytes, move || {
        inputs
            .iter()
            .enumerate()
            .map(|(i, s)| tokenize_sequence(tokenizer.as_ref(), s, side).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?
    .map_err(|(i, e)| match e {
        TokenizeError::Unsupported(what) => ApiError::unsupported(&card.name, &what),
        e => ApiError::invalid(dialect, field, format!("`{field}`[{i}]: {e}")),
    })?;
    refuse_cut(
        dialect,
        field,
        over_limit,
        tokenized.iter().map(|t| t.truncated),
        &card,
        "special tokens and the query included",
    )?;
    let n_inputs = tokenized.len();
    let tokens = meter.sized(tokenized.iter().map(|t| t.ids.len()));

    let scored = answered(
        dialect,
        model.as_ref(),
        &meter,
        n_inputs,
        "scores",
        model.score(tokenized),
    )
    .await?;
    // One logit per label; at least one where the card names none.
    let fits = |n: usize| {
        if card.labels.is_empty() {
            n > 0
        } else {
            n == card.labels.len()
        }
    };
    if let Some(bad) = scored.logits.iter().find(|l| !fits(l.len())) {
        return Err(ApiError::internal(format!(
            "the model answered {} logits for an input; it has {} labels",
            bad.len(),
            card.labels.len()
        )));
    }
    let scores = scored
        .logits
        .into_iter()
        .map(|mut logits| {
            if !raw_scores {
                card.activation.apply(&mut logits);
            }
            logits
        })
        .collect();
    Ok(Answer {
        card,
        rows: scores,
        tokens,
        queue_time: scored.queue_time,
        compute_time: scored.compute_time,
    })
}

/// A text (cut from `side`, every token type 0) or a pair (cut as the
/// model's tokenizer cuts pairs).
fn tokenize_sequence(
    model: &dyn ServedModel,
    sequence: &Sequence,
    side: TruncationSide,
) -> Result<PairTokenized, TokenizeError> {
    match sequence {
        Sequence::Single(text) => {
            let t = model.tokenize(text, side)?;
            Ok(PairTokenized {
                type_ids: vec![0; t.ids.len()],
                ids: t.ids,
                truncated: t.truncated,
            })
        }
        Sequence::Pair(first, second) => model.tokenize_pair(first, Some(second)),
    }
}

/// The tokens of each text, for `/tokenize` (any model's tokenizer), with
/// the prompt before it as `/embed` puts it, so the list is what `/embed`
/// embeds and counts.
///
/// # Errors
/// 404 for an unknown model, 413 for too many texts, 422 for a text the
/// tokenizer cannot encode or a prompt the model lacks, 424 when the model
/// cannot list tokens.
pub(crate) async fn tokens(
    state: &AppState,
    request: TokenizeRequest,
) -> Result<Vec<Vec<TokenSpan>>, ApiError> {
    let model = state.model(request.model.as_deref())?;
    admit(state, Dialect::Tei, "inputs", request.texts.len())?;
    let prompt = text_prompt(Dialect::Tei, model.as_ref(), &request.prompt)?;
    let prompt_len = prompt.as_ref().map_or(0, String::len);
    let bytes = request.texts.iter().map(|t| t.len() + prompt_len).sum();
    let add = request.add_special_tokens;
    let texts = request.texts;
    let tokenizer = model.clone();
    off_thread(state, bytes, move || {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                match &prompt {
                    Some(p) => tokenizer.tokens(&format!("{p}{t}"), add),
                    None => tokenizer.tokens(t, add),
                }
                .map_err(|e| (i, e))
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await?
    .map_err(|(i, e)| tokenizer_error(model.card(), "inputs", i, e))
}

/// The text of each list of ids, for `/decode`.
///
/// # Errors
/// 404 for an unknown model, 413 for too many lists, 422 for an id outside
/// the vocabulary, 424 when the model cannot decode.
pub(crate) async fn decode(
    state: &AppState,
    request: DecodeRequest,
) -> Result<Vec<String>, ApiError> {
    let model = state.model(request.model.as_deref())?;
    admit(state, Dialect::Tei, "ids", request.ids.len())?;
    let bytes = request.ids.iter().map(Vec::len).sum::<usize>() * 4;
    let skip = request.skip_special_tokens;
    let lists = request.ids;
    let tokenizer = model.clone();
    off_thread(state, bytes, move || {
        lists
            .iter()
            .enumerate()
            .map(|(i, ids)| tokenizer.decode(ids, skip).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?
    .map_err(|(i, e)| tokenizer_error(model.card(), "ids", i, e))
}

fn tokenizer_error(card: &ModelCard, field: &str, i: usize, e: TokenizeError) -> ApiError {
    match e {
        TokenizeError::Unsupported(what) => ApiError::unsupported(&card.name, &what),
        e => ApiError::invalid(Dialect::Tei, field, format!("`{field}`[{i}]: {e}")),
    }
}
